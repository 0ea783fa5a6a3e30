//! HTTP: request and status lines at the start of a segment (the `http.*` filter fields) and
//! responses with a 5xx status (the `http` app_error family).
//!
//! Only a line at the start of a segment counts, and only in the strict form
//! `HTTP/1.x DDD reason` — a body or a database row that merely mentions "HTTP/1.1 500" is not
//! a response. Like Wireshark, a 5xx is reported at the frame that completes the response:
//! when its headers or its `Content-Length` body run over several segments, the framer waits
//! for them (counting body bytes). Headers are read line by line as they come — only `Host`,
//! `Content-Length` and `Transfer-Encoding` are kept, and a header line cut by a segment end
//! waits in a small buffer of the budget — so a message in progress holds a few hundred bytes
//! at most; headers longer than [`MAX_HEADERS`] end them as far as the fields go.

use crate::analyzers::budget::{Claim, Lazy};
use crate::analyzers::errors::{wire_text, Found};
use crate::analyzers::secrets::before;

pub const MAX_HEADERS: usize = 8 * 1024;
/// A header line's first bytes kept while the line is cut by a segment end: the names this
/// reads and a host name fit.
const MAX_HEADER_LINE: usize = 320;
/// Longest Host value kept.
const MAX_HOST: usize = 255;

/// Request methods recognised at the start of a message (WebDAV's and SSDP's included).
pub const METHODS: &[&str] = &[
    "GET",
    "POST",
    "HEAD",
    "PUT",
    "DELETE",
    "OPTIONS",
    "PATCH",
    "CONNECT",
    "TRACE",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "M-SEARCH",
    "NOTIFY",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
];

/// The first line of a segment that starts an HTTP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Request { method: &'static str, uri: &'a [u8] },
    Status { code: u16, reason: &'a [u8] },
}

/// Parses the first line of `p` when it is a request or status line.
pub fn first_line(p: &[u8]) -> Option<Line<'_>> {
    line(p, false)
}

/// The first line of `p`; `cut`: the capture cut the segment off (snaplen), and a line without
/// its end is taken as it is, as Wireshark does with truncated frames.
fn line(p: &[u8], cut: bool) -> Option<Line<'_>> {
    // Cheap rejection first: this runs on every TCP segment.
    let starts = p.starts_with(b"HTTP/1.")
        || METHODS.iter().any(|m| p.len() > m.len() && p.starts_with(m.as_bytes()) && p[m.len()] == b' ');
    if !starts {
        return None;
    }
    let end = match p.iter().take(8192).position(|b| *b == b'\n') {
        Some(e) => e,
        None if cut => p.len().min(8192),
        None => return None,
    };
    let line = p[..end].strip_suffix(b"\r").unwrap_or(&p[..end]);
    if let Some(rest) = line.strip_prefix(b"HTTP/1.") {
        // "HTTP/1.1 500 Internal Server Error"
        if rest.len() < 5 || !matches!(rest[0], b'0' | b'1') || rest[1] != b' ' {
            return None;
        }
        let digits = &rest[2..5];
        if !digits.iter().all(u8::is_ascii_digit) || rest.get(5).is_some_and(|b| *b != b' ') {
            return None;
        }
        // Any three digits, as Wireshark reads them ("HTTP/1.1 999 Odd" is a response with
        // code 999); only 5xx are errors.
        let code = digits.iter().fold(0u16, |a, d| a * 10 + (d - b'0') as u16);
        return Some(Line::Status { code, reason: rest.get(6..).unwrap_or_default() });
    }
    let sp = line.iter().position(|b| *b == b' ')?;
    let method = METHODS.iter().find(|m| m.as_bytes() == &line[..sp])?;
    let rest = &line[sp + 1..];
    let sp2 = rest.iter().rposition(|b| *b == b' ')?;
    if !rest[sp2 + 1..].starts_with(b"HTTP/1.") {
        return None;
    }
    Some(Line::Request { method, uri: &rest[..sp2] })
}

/// A status line whose end is not in `p` yet ("HTTP/1.1 500 Internal Ser…", or a server that
/// sends only its status line and closes): its code, once the segment holds it.
pub fn status_start(p: &[u8]) -> Option<u16> {
    if p.len() < 12 || p.len() > 8192 || memchr::memchr(b'\n', p).is_some() {
        return None;
    }
    match line(p, true)? {
        Line::Status { code, .. } => Some(code),
        Line::Request { .. } => None,
    }
}

/// The value of header `name` (case-insensitive) in a header block.
pub fn header<'a>(headers: &'a [u8], name: &str) -> Option<&'a [u8]> {
    header_range(headers, name).map(|(s, e)| &headers[s..e])
}

/// Where the value of header `name` lies in `headers` (trimmed).
pub fn header_range(headers: &[u8], name: &str) -> Option<(usize, usize)> {
    let mut at = 0;
    let mut first = true;
    for raw in headers.split(|b| *b == b'\n') {
        let start = at;
        at += raw.len() + 1;
        if std::mem::take(&mut first) {
            continue;
        }
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        if line[..colon].eq_ignore_ascii_case(name.as_bytes()) {
            let v = &line[colon + 1..];
            let lead = v.len() - v.trim_ascii_start().len();
            let s = start + colon + 1 + lead;
            return Some((s, s + v.trim_ascii().len()));
        }
    }
    None
}

/// Whether `p` starts with a request method and a space (a request line may follow).
pub fn starts_request(p: &[u8]) -> bool {
    p.first().is_some_and(u8::is_ascii_uppercase)
        && METHODS.iter().any(|m| p.len() > m.len() && p.starts_with(m.as_bytes()) && p[m.len()] == b' ')
}

/// An HTTP message (request or response) being read until Wireshark would consider it
/// complete: headers, then a Content-Length or chunked body.
#[derive(Debug, Default)]
pub struct Pending {
    /// Requests: the method. Responses: none.
    method: Option<&'static str>,
    /// Responses: the status code (0 for requests).
    code: u16,
    reason: String,
    /// Requests: the Host header (the first one).
    host: Vec<u8>,
    /// A header line cut by a segment end.
    line: Lazy,
    header_bytes: usize,
    /// The start line has been read past.
    start_done: bool,
    /// The line before ended with CR LF (a blank line after it ends the headers).
    prev_crlf: bool,
    /// The segment before ended with the CR of a line whose LF starts this one.
    cr_before: bool,
    seen: u8,
    content_length: Option<u64>,
    /// Body bytes still expected (Content-Length).
    body_left: u64,
    chunked: bool,
    in_body: bool,
    /// The request was HEAD: the response has no body whatever its Content-Length says.
    head: bool,
}

const SEEN_HOST: u8 = 1;
const SEEN_LENGTH: u8 = 2;
const SEEN_ENCODING: u8 = 4;

impl Pending {
    /// The application error a response with a 5xx status is.
    pub fn error(&self) -> Option<Found> {
        self.code().filter(|c| (500..=599).contains(c)).map(|c| Found {
            code: c.to_string(),
            message: self.reason.clone(),
            detail: None,
        })
    }

    pub fn method(&self) -> Option<&'static str> {
        self.method
    }

    /// The status code of a response.
    pub fn code(&self) -> Option<u16> {
        (self.method.is_none() && self.code != 0).then_some(self.code)
    }

    /// The Host header of a request, once its headers are complete.
    pub fn host(&self) -> Option<&[u8]> {
        (!self.host.is_empty()).then_some(&self.host[..])
    }

    /// Any request or response starting at `p` (`p` captured of `seg_len` bytes); `head`: a
    /// response to a HEAD request. None when `p` does not start a message.
    pub fn any(p: &[u8], seg_len: usize, head: bool) -> Option<(Pending, bool)> {
        let cut = p.len() < seg_len;
        let first = match line(p, cut) {
            Some(l) => l,
            // A status line cut by the segment's end: its code is known, the rest of the
            // line comes with the next segment or never (the server closes after it).
            None if status_start(p).is_some() => line(p, true)?,
            // A request line longer than the segment (a long URL): the method is known, the rest
            // of the line comes with the next segments.
            None => {
                let method =
                    METHODS.iter().find(|m| p.len() > m.len() && p.starts_with(m.as_bytes()) && p[m.len()] == b' ')?;
                if p.contains(&b'\n') || cut {
                    return None;
                }
                Line::Request { method, uri: &[] }
            }
        };
        let mut m = match first {
            Line::Request { method, .. } => Pending { method: Some(method), ..Default::default() },
            Line::Status { code, reason } => {
                let reason = if (500..=599).contains(&code) { wire_text(reason) } else { String::new() };
                Pending { code, reason, head, ..Default::default() }
            }
        };
        // A segment cut by the capture's snaplen is dissected as it is, without reassembly.
        if cut {
            if m.method.is_some() {
                m.host = header(p, "host").map(|h| h[..h.len().min(MAX_HOST)].to_vec()).unwrap_or_default();
            }
            return Some((m, true));
        }
        let done = m.more(p, seg_len);
        Some((m, done))
    }

    /// One header line (with its line end, unless it was cut to [`MAX_HEADER_LINE`]; `crlf`:
    /// it ended with CR LF): the fields this keeps, and whether it ends the headers.
    fn header_line(&mut self, l: &[u8], crlf: bool) -> bool {
        if !std::mem::replace(&mut self.start_done, true) {
            self.prev_crlf = crlf;
            return false;
        }
        if crlf && (l == b"\r\n" || l == b"\n") && self.prev_crlf {
            return true;
        }
        self.prev_crlf = crlf;
        let l = l.strip_suffix(b"\n").unwrap_or(l);
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        let Some(colon) = l.iter().position(|b| *b == b':') else { return false };
        let (name, v) = (&l[..colon], l[colon + 1..].trim_ascii());
        let mut first = |bit: u8| {
            let new = self.seen & bit == 0;
            self.seen |= bit;
            new
        };
        if name.eq_ignore_ascii_case(b"host") && first(SEEN_HOST) {
            if self.method.is_some() {
                self.host = v[..v.len().min(MAX_HOST)].to_vec();
            }
        } else if name.eq_ignore_ascii_case(b"content-length") && first(SEEN_LENGTH) {
            self.content_length = std::str::from_utf8(v).ok().and_then(|v| v.parse::<u64>().ok());
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") && first(SEEN_ENCODING) {
            self.chunked = v.eq_ignore_ascii_case(b"chunked");
        }
        false
    }

    /// Reads header bytes from `p`; the offset just past the headers' end, when it is in `p`.
    fn headers(&mut self, p: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < p.len() {
            let Some(j) = memchr::memchr(b'\n', &p[i..]) else {
                self.line.push(&p[i..], MAX_HEADER_LINE);
                self.header_bytes += p.len() - i;
                self.cr_before = p.last() == Some(&b'\r');
                return None;
            };
            let chunk = &p[i..=i + j];
            self.header_bytes += chunk.len();
            // Whether the line ends with CR LF (its CR may have ended the segment before).
            let crlf = if j == 0 { self.cr_before } else { p[i + j - 1] == b'\r' };
            self.cr_before = false;
            let end = if self.line.is_empty() {
                self.header_line(chunk, crlf)
            } else {
                self.line.push(chunk, MAX_HEADER_LINE);
                let joined = std::mem::take(&mut self.line);
                self.header_line(joined.as_slice(), crlf)
            };
            i += j + 1;
            if end {
                return Some(i);
            }
        }
        None
    }

    /// Feeds the next segment of the message (`p` captured of `seg_len` bytes: the body is
    /// counted in wire bytes, headers are read from what was captured); true when complete.
    pub fn more(&mut self, p: &[u8], seg_len: usize) -> bool {
        let mut body = p;
        let mut body_len = seg_len.max(p.len());
        if !self.in_body {
            let Some(consumed) = self.headers(p) else {
                // Headers longer than the bound: report what is known now.
                return self.header_bytes >= MAX_HEADERS;
            };
            if self.header_bytes > MAX_HEADERS {
                return true;
            }
            body = &p[consumed..];
            body_len = body_len.saturating_sub(consumed);
            self.in_body = true;
            self.line.clear();
            if self.method.is_none() && (self.head || self.code == 204 || self.code == 304 || self.code < 200) {
                return true;
            }
            match (self.chunked, self.content_length) {
                (false, Some(0)) => return true,
                (false, Some(n)) => self.body_left = n,
                // No length: a request has no body; a response's runs to the close, and its
                // headers are what matters.
                (false, None) => return true,
                (true, _) => {}
            }
        }
        if self.chunked {
            return body.ends_with(b"0\r\n\r\n");
        }
        self.body_left = self.body_left.saturating_sub(body_len as u64);
        self.body_left == 0
    }

    /// In a Content-Length body: what is left is a byte count, whatever order the bytes come in.
    pub fn counting_body(&self) -> bool {
        self.in_body && !self.chunked
    }

    /// Body bytes still expected (Content-Length bodies).
    pub fn body_left(&self) -> u64 {
        self.body_left
    }

    /// `n` more body bytes (counted, not read); true when the body is complete.
    pub fn more_len(&mut self, n: usize) -> bool {
        self.body_left = self.body_left.saturating_sub(n as u64);
        self.body_left == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a segment starting a response amounts to, for the 5xx error path.
    enum Start {
        Ignore,
        Complete(Found),
        Waiting(Pending),
    }

    fn start_seg(p: &[u8], seg_len: usize, head: bool) -> Start {
        match Pending::any(p, seg_len, head) {
            Some((m, true)) => m.error().map_or(Start::Ignore, Start::Complete),
            Some((m, false)) if m.error().is_some() => Start::Waiting(m),
            _ => Start::Ignore,
        }
    }

    fn start(p: &[u8], head: bool) -> Start {
        start_seg(p, p.len(), head)
    }

    fn more(pend: &mut Pending, p: &[u8]) -> bool {
        pend.more(p, p.len())
    }

    #[test]
    fn snaplen_cut_responses_are_reported_at_once_and_bodies_count_wire_bytes() {
        let head = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 2902\r\n\r\n<html>";
        assert!(matches!(start_seg(head, 1448, false), Start::Complete(f) if f.code == "502"));
        let Start::Waiting(mut p) = start(head, false) else { panic!() };
        // Later segments cut to 100 captured bytes still carry 1448 bytes of body each.
        assert!(!p.more(&[b'x'; 100], 1448));
        assert!(p.more(&[b'x'; 100], 1448));
    }

    #[test]
    fn lines() {
        assert_eq!(
            first_line(b"HTTP/1.1 502 Bad Gateway\r\nServer: nginx\r\n\r\n"),
            Some(Line::Status { code: 502, reason: b"Bad Gateway" })
        );
        assert_eq!(
            first_line(b"GET /x?a=1 HTTP/1.1\r\nHost: h\r\n\r\n"),
            Some(Line::Request { method: "GET", uri: b"/x?a=1" })
        );
        assert_eq!(first_line(b"xxHTTP/1.1 500 Internal Server Error\r\n"), None);
        assert_eq!(first_line(b"HTTP/1.1 5000 x\r\n"), None);
        assert_eq!(first_line(b"HTTP/1.1 500"), None, "no end of line");
        assert_eq!(line(b"HTTP/1.1 500 Internal Se", true), Some(Line::Status { code: 500, reason: b"Internal Se" }));
    }

    #[test]
    fn body_over_three_segments_completes_at_the_last() {
        let Start::Waiting(mut p) =
            start(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 10\r\n\r\nabc", false)
        else {
            panic!("should wait for the body")
        };
        assert!(!more(&mut p, b"defg"));
        assert!(more(&mut p, b"hij"));
    }

    #[test]
    fn head_response_has_no_body() {
        assert!(matches!(
            start(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 10\r\n\r\n", true),
            Start::Complete(_)
        ));
    }

    #[test]
    fn split_headers_and_chunked_body() {
        let Start::Waiting(mut p) = start(b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chu", false) else {
            panic!()
        };
        assert!(!more(&mut p, b"nked\r\n\r\n5\r\nhello\r\n"));
        assert!(more(&mut p, b"0\r\n\r\n"));
    }

    #[test]
    fn success_is_ignored() {
        assert!(matches!(start(b"HTTP/1.1 200 OK\r\n\r\n", false), Start::Ignore));
    }
}

/// Out-of-order byte ranges held per message (beyond: the message is given up).
const MAX_HELD: usize = 16;

#[derive(Debug)]
struct Open {
    /// The end of the contiguous bytes seen so far.
    next_seq: u32,
    /// Byte ranges seen beyond a hole (Content-Length bodies only), as (start, end).
    held: [(u32, u32); MAX_HELD],
    n_held: usize,
    msg: Pending,
    /// Its bytes, claimed from the analyzers' budget while the message is followed.
    _claim: Claim,
}

/// Follows the HTTP messages of one connection, per direction, until they are complete, so
/// that the `http.*` fields are shown on the frame where Wireshark shows them: the one that
/// completes the headers and the Content-Length or chunked body — after filling the holes of
/// segments that came out of order or were retransmitted.
#[derive(Debug, Default)]
pub struct Tracker {
    open: [Option<Box<Open>>; 2],
    /// HEAD requests awaiting their response.
    heads: u32,
}

impl Tracker {
    /// One TCP segment of direction `dir` (`p` captured of `seg_len`; `retrans`: TCP analysis
    /// flagged it a retransmission); the message it completes, if any. `started` is told of a
    /// message that starts in this segment (complete or not).
    pub fn segment(
        &mut self,
        dir: usize,
        p: &[u8],
        seq: u32,
        seg_len: u32,
        retrans: bool,
        started: &mut dyn FnMut(&Pending, &[u8]),
    ) -> Option<Pending> {
        let end = seq.wrapping_add(seg_len);
        if let Some(o) = self.open[dir].as_mut() {
            let done = if seq == o.next_seq && !retrans {
                o.next_seq = end;
                o.msg.more(p, seg_len as usize)
            } else if o.msg.counting_body() && before(o.next_seq, end) {
                let body_end = o.next_seq.wrapping_add(o.msg.body_left().min(u32::MAX as u64 / 2) as u32);
                if !retrans && !before(seq, body_end) && Pending::any(p, seg_len as usize, false).is_some() {
                    // Past the end of this message's body, beyond a hole: the next message
                    // starts here (this one lost its tail before the capture).
                    self.open[dir] = None;
                    return self.start(dir, p, seq, seg_len, started);
                }
                if before(o.next_seq, seq) {
                    // Beyond a hole: kept until the hole is filled.
                    if o.n_held >= MAX_HELD {
                        self.open[dir] = None;
                        return None;
                    }
                    o.held[o.n_held] = (seq, end);
                    o.n_held += 1;
                    false
                } else {
                    // Fills (part of) the hole, or repeats and extends the known bytes.
                    let n = end.wrapping_sub(o.next_seq);
                    o.next_seq = end;
                    o.msg.more_len(n as usize)
                }
            } else if o.msg.counting_body() || retrans {
                // Bytes already seen.
                false
            } else {
                // A gap in headers or a chunked body: Wireshark would not complete it either.
                self.open[dir] = None;
                return None;
            };
            let mut done = done;
            // Held ranges the contiguous bytes now reach.
            while !done {
                let Some(i) = o.held[..o.n_held].iter().position(|&(s, _)| !before(o.next_seq, s)) else { break };
                let (_, e) = o.held[i];
                o.held[i] = o.held[o.n_held - 1];
                o.n_held -= 1;
                if before(o.next_seq, e) {
                    let n = e.wrapping_sub(o.next_seq);
                    o.next_seq = e;
                    done = o.msg.more_len(n as usize);
                }
            }
            return if done { self.open[dir].take().map(|o| o.msg) } else { None };
        }
        if retrans {
            // A retransmission only fills holes: its messages were dissected with the original.
            return None;
        }
        self.start(dir, p, seq, seg_len, started)
    }

    /// The connection closes: a response still open in direction `dir` (headers or body not
    /// complete, a status line never ended) is complete as far as it goes, as HTTP/1.0 ends a
    /// response with the close. Its status is what it said.
    pub fn close(&mut self, dir: usize) -> Option<Pending> {
        let o = self.open[dir].take()?;
        o.msg.code().is_some().then_some(o.msg)
    }

    /// A segment that may start a message.
    fn start(
        &mut self,
        dir: usize,
        p: &[u8],
        seq: u32,
        seg_len: u32,
        started: &mut dyn FnMut(&Pending, &[u8]),
    ) -> Option<Pending> {
        let end = seq.wrapping_add(seg_len);
        let starts_response = p.starts_with(b"HTTP/");
        if !starts_response && !p.first().is_some_and(u8::is_ascii_uppercase) {
            return None;
        }
        let head = starts_response && self.heads > 0;
        if head {
            self.heads -= 1;
        }
        let (msg, done) = Pending::any(p, seg_len as usize, head)?;
        if msg.method == Some("HEAD") {
            self.heads = self.heads.saturating_add(1).min(1024);
        }
        started(&msg, p);
        if done {
            return Some(msg);
        }
        // A message followed across segments holds its bytes of the budget; when the budget is
        // spent it is not followed (its fields are not shown; the refusal is counted).
        if let Some(claim) = Claim::new(std::mem::size_of::<Open>()) {
            self.open[dir] =
                Some(Box::new(Open { next_seq: end, held: [(0, 0); MAX_HELD], n_held: 0, msg, _claim: claim }));
        }
        None
    }
}

#[cfg(test)]
mod ssdp {
    /// SSDP (UPnP discovery) is HTTP over UDP; Wireshark shows its method and Host.
    #[test]
    fn m_search_is_a_request_with_a_host() {
        let p =
            b"M-SEARCH * HTTP/1.1\r\nHost:239.255.255.250:1900\r\nST:urn:x\r\nMan:\"ssdp:discover\"\r\nMX:3\r\n\r\n";
        let r = super::Pending::any(p, p.len(), false);
        let (m, done) = r.expect("a message");
        assert!(done);
        assert_eq!(m.method(), Some("M-SEARCH"));
        assert_eq!(m.host(), Some(&b"239.255.255.250:1900"[..]));
    }
}

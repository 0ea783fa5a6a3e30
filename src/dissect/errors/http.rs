//! HTTP: request and status lines at the start of a segment (the `http.*` filter fields) and
//! responses with a 5xx status (the `http` app_error family).
//!
//! Only a line at the start of a segment counts, and only in the strict form
//! `HTTP/1.x DDD reason` — a body or a database row that merely mentions "HTTP/1.1 500" is not
//! a response. Like Wireshark, a 5xx is reported at the frame that completes the response:
//! when its headers or its `Content-Length` body run over several segments, the framer waits
//! for them (counting body bytes, keeping at most [`MAX_HEADERS`] of headers).

use super::{wire_text, Found};

pub const MAX_HEADERS: usize = 8 * 1024;

pub const METHODS: &[&str] = &[
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "PROPFIND", "MKCOL", "COPY", "MOVE",
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

/// The first line of a segment whose end the capture cut off (snaplen): a line without its
/// end is taken as it is, as Wireshark does with truncated frames.
pub fn first_line_cut(p: &[u8]) -> Option<Line<'_>> {
    line(p, true)
}

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
        let code = digits.iter().fold(0u16, |a, d| a * 10 + (d - b'0') as u16);
        if !(100..=599).contains(&code) {
            return None;
        }
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

fn header_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// A 5xx response still waiting for the rest of its headers or body.
#[derive(Default)]
pub struct Pending {
    code: u16,
    reason: String,
    headers: Vec<u8>,
    /// Body bytes still expected (Content-Length).
    body_left: u64,
    chunked: bool,
    in_body: bool,
    /// The request was HEAD: the response has no body whatever its Content-Length says.
    head: bool,
}

/// What a segment starting with a status line amounts to.
pub enum Start {
    /// Not a 5xx response: nothing to keep.
    Ignore,
    Complete(Found),
    Waiting(Pending),
}

impl Pending {
    fn found(&self) -> Found {
        Found { code: self.code.to_string(), message: self.reason.clone(), detail: None }
    }

    /// A segment from the server that starts with a status line: `p` is what was captured of
    /// its `seg_len` bytes. `head`: the request was HEAD.
    pub fn start(p: &[u8], seg_len: usize, head: bool) -> Start {
        let cut = p.len() < seg_len;
        let Some(Line::Status { code, reason }) = line(p, cut) else { return Start::Ignore };
        if code < 500 {
            return Start::Ignore;
        }
        let mut pend = Pending { code, reason: wire_text(reason), head, ..Default::default() };
        // A segment cut by the capture's snaplen is dissected as it is, without reassembly
        // (as Wireshark does): the response is reported here.
        if cut {
            return Start::Complete(pend.found());
        }
        match pend.more(p, seg_len) {
            true => Start::Complete(pend.found()),
            false => Start::Waiting(pend),
        }
    }

    /// Feeds the next segment of the response (`p` captured of `seg_len` bytes: the body is
    /// counted in wire bytes, headers are read from what was captured); true when complete.
    pub fn more(&mut self, p: &[u8], seg_len: usize) -> bool {
        let mut body = p;
        let mut body_len = seg_len.max(p.len());
        if !self.in_body {
            let before = self.headers.len();
            let take = p.len().min(MAX_HEADERS.saturating_sub(before));
            self.headers.extend_from_slice(&p[..take]);
            // Look for the blank line, also across the boundary.
            let from = before.saturating_sub(3);
            let Some(end) = header_end(&self.headers[from..]).map(|e| e + from) else {
                // Headers longer than the bound: report what is known now.
                return self.headers.len() >= MAX_HEADERS;
            };
            let consumed = (end - before).min(p.len());
            body = &p[consumed..];
            body_len = body_len.saturating_sub(consumed);
            self.in_body = true;
            let h = &self.headers[..end];
            self.chunked = header(h, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"));
            let cl = header(h, "content-length").and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
            self.headers = Vec::new();
            if self.head || self.code == 204 || self.code == 304 {
                return true;
            }
            match (self.chunked, cl) {
                (false, Some(n)) => self.body_left = n,
                // No length: the body runs to the close; the headers are what matters.
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

    /// An empty message (a state's origin before anything was found).
    pub fn placeholder() -> Found {
        Found { code: String::new(), message: String::new(), detail: None }
    }

    /// The response will not complete (gap, end of capture): what was seen is reported.
    pub fn give_up(&self) -> Found {
        self.found()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(p: &[u8], head: bool) -> Start {
        Pending::start(p, p.len(), head)
    }

    fn more(pend: &mut Pending, p: &[u8]) -> bool {
        pend.more(p, p.len())
    }

    #[test]
    fn snaplen_cut_responses_are_reported_at_once_and_bodies_count_wire_bytes() {
        let head = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 2902\r\n\r\n<html>";
        assert!(matches!(Pending::start(head, 1448, false), Start::Complete(_)));
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
        assert_eq!(
            first_line_cut(b"HTTP/1.1 500 Internal Se"),
            Some(Line::Status { code: 500, reason: b"Internal Se" })
        );
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

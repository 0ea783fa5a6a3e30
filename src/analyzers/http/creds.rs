//! The credentials in a client's HTTP requests, read as they stream: the request line's URL
//! user-info (`http://user:pass@host/`) and password-like query parameters, the values of
//! `Authorization` and `Proxy-Authorization` (Basic, Digest, NTLM, Negotiate, Bearer: all of
//! it), and password-like fields of request bodies — urlencoded forms, multipart forms and JSON.
//!
//! Requests are read with a [`LineReader`](crate::analyzers::lines::LineReader) (request line,
//! headers, chunk sizes, trailers); bodies come to [`Requests::raw`] as raw bytes, Content-Length
//! or chunk by chunk, and are scanned byte by byte with a small state that crosses segments, so
//! a value cut anywhere is masked in every piece.

use crate::analyzers::budget::Lazy;
use crate::analyzers::lines::{After, LineHandler, Verdict};
use crate::analyzers::secrets::Secrets;
use crate::analyzers::{sasl, user_name, Here};

/// Whether a field or parameter name says it holds a password (case-insensitive, percent
/// escapes decoded): `password`, `passwd`, `pass`, `pwd`, `pin`, `passphrase`, `secret`,
/// `credential`, and names containing them (`user[password]`, `new_pwd`, `login_pin`).
pub fn password_name(raw: &[u8]) -> bool {
    let mut name = [0u8; 64];
    let mut n = 0;
    let mut i = 0;
    while i < raw.len() && n < name.len() {
        let b = match raw[i] {
            b'%' if i + 2 < raw.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(raw[i + 1]), hex(raw[i + 2])) {
                    (Some(h), Some(l)) => {
                        i += 2;
                        (h * 16 + l) as u8
                    }
                    _ => b'%',
                }
            }
            b'+' => b' ',
            c => c,
        };
        name[n] = b.to_ascii_lowercase();
        n += 1;
        i += 1;
    }
    let name = &name[..n];
    let has = |w: &[u8]| name.windows(w.len()).any(|x| x == w);
    if has(b"pass") || has(b"pwd") || has(b"secret") || has(b"credential") {
        return true;
    }
    // "pin" only as a word of its own (not "shipping", "spinner").
    name.windows(3).enumerate().any(|(k, w)| {
        w == b"pin"
            && (k == 0 || !name[k - 1].is_ascii_alphabetic())
            && name.get(k + 3).is_none_or(|c| !c.is_ascii_lowercase() || name[k + 3..].starts_with(b"code"))
    })
}

/// Which parts of a request line are secret: URL user-info and password-like query values.
pub fn request_line(l: &[u8], complete: bool) -> Verdict {
    let Some(sp) = l.iter().position(|b| *b == b' ') else {
        return if complete { Verdict::CLEAR } else { Verdict::CLEAR.decided_to(l.len()) };
    };
    let t0 = sp + 1;
    let t_end = l[t0..].iter().position(|b| *b == b' ').map(|k| t0 + k);
    let target = &l[t0..t_end.unwrap_or(l.len())];
    let target_done = t_end.is_some() || complete;
    let mut v = Verdict::CLEAR;
    // Absolute form: scheme://[user[:password]@]host…
    let mut path_at = 0;
    if let Some(k) = target.windows(3).position(|w| w == b"://").filter(|k| *k < 16) {
        let a0 = k + 3;
        match target[a0..].iter().position(|b| matches!(b, b'/' | b'?' | b'#')) {
            Some(e) => {
                if let Some(at) = target[a0..a0 + e].iter().rposition(|b| *b == b'@') {
                    v = v.with(t0 + a0, t0 + a0 + at);
                }
                path_at = a0 + e;
            }
            None if target_done => {
                if let Some(at) = target[a0..].iter().rposition(|b| *b == b'@') {
                    v = v.with(t0 + a0, t0 + a0 + at);
                }
                return v;
            }
            None => return v.decided_to(t0 + a0),
        }
    }
    let Some(q) = target[path_at..].iter().position(|b| *b == b'?').map(|k| path_at + k) else {
        return if target_done { v } else { v.decided_to(l.len()) };
    };
    let q_end = target[q..].iter().position(|b| *b == b'#').map_or(target.len(), |k| q + k);
    let mut p0 = q + 1;
    while p0 <= q_end {
        let p_end = target[p0..q_end].iter().position(|b| *b == b'&').map(|k| p0 + k);
        let last = p_end.is_none();
        let p_end = p_end.unwrap_or(q_end);
        if last && !target_done && q_end == target.len() {
            // The last parameter is not complete yet: its name may still grow.
            return v.decided_to(t0 + p0);
        }
        let param = &target[p0..p_end];
        if let Some(eq) = param.iter().position(|b| *b == b'=') {
            if password_name(&param[..eq]) {
                v = v.with(t0 + p0 + eq + 1, t0 + p_end);
            }
        }
        p0 = p_end + 1;
    }
    v
}

/// Whether a line (or its start) may be a request line: a method and a space, or a method's
/// beginning still being read.
fn could_be_request(line: &[u8], complete: bool) -> bool {
    let methods = super::message::METHODS;
    match line.iter().position(|b| *b == b' ' || *b == b':') {
        Some(k) => line[k] == b' ' && methods.iter().any(|m| m.as_bytes() == &line[..k]),
        None => !complete && methods.iter().any(|m| m.as_bytes().starts_with(line)),
    }
}

/// Headers whose value is a credential.
fn credential_header(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"authorization") || name.eq_ignore_ascii_case(b"proxy-authorization")
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum St {
    #[default]
    RequestLine,
    Headers,
    ChunkSize,
    /// The CR LF after a chunk's data.
    ChunkEnd,
    Trailers,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Kind {
    #[default]
    Other,
    Form,
    /// multipart/form-data and its boundary.
    Multipart(Vec<u8>),
    Json,
}

/// The client side of an HTTP connection, read for credentials (and HTTP Basic user names).
#[derive(Debug, Default)]
pub struct Requests {
    st: St,
    /// The header line before was a credential header (a folded continuation belongs to it).
    secret_header: bool,
    content_length: Option<u64>,
    chunked: bool,
    kind: Kind,
    body: Body,
    /// A Basic user name seen in the request being read, taken by the connection.
    pub basic: Option<Option<String>>,
}

impl LineHandler for Requests {
    fn classify(&self, line: &[u8], complete: bool) -> Verdict {
        match self.st {
            // Reading may have begun inside a request: what is not a request line is judged as a
            // header line.
            St::RequestLine if could_be_request(line, complete) => request_line(line, complete),
            St::RequestLine | St::Headers => {
                if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                    return if self.secret_header { Verdict::secret_from(0) } else { Verdict::CLEAR };
                }
                match line.iter().position(|b| *b == b':') {
                    Some(c) if credential_header(&line[..c]) => {
                        let lead = line[c + 1..].iter().take_while(|b| **b == b' ' || **b == b'\t').count();
                        Verdict::secret_from(c + 1 + lead)
                    }
                    Some(_) => Verdict::CLEAR,
                    None if complete => Verdict::CLEAR,
                    None => Verdict::UNDECIDED,
                }
            }
            St::ChunkSize | St::ChunkEnd | St::Trailers => Verdict::CLEAR,
        }
    }

    fn line(&mut self, line: &[u8], _from_client: bool, _here: &mut Here<'_>) -> After {
        match self.st {
            St::RequestLine if could_be_request(line, true) => {
                if super::message::starts_request(line) && line.windows(7).any(|w| w == b" HTTP/1") {
                    *self = Requests { st: St::Headers, basic: self.basic.take(), ..Default::default() };
                }
                After::Lines
            }
            // A header line where a request line was awaited: reading began inside a request.
            St::RequestLine if line.contains(&b':') => {
                *self = Requests { st: St::Headers, basic: self.basic.take(), ..Default::default() };
                self.line(line, true, _here)
            }
            St::RequestLine => After::Lines,
            St::Headers if line.is_empty() => self.body_starts(),
            St::Headers => {
                if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                    return After::Lines;
                }
                let Some(c) = line.iter().position(|b| *b == b':') else { return After::Lines };
                let (name, v) = (&line[..c], line[c + 1..].trim_ascii());
                self.secret_header = credential_header(name);
                let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
                if is(b"authorization") {
                    let (scheme, cred) = match v.iter().position(|b| *b == b' ') {
                        Some(i) => (&v[..i], v[i + 1..].trim_ascii()),
                        None => (v, &[][..]),
                    };
                    if scheme.eq_ignore_ascii_case(b"basic") {
                        // user:password — only the user is kept, and only when the value is one.
                        let user = sasl::b64(cred).and_then(|d| {
                            let colon = d.iter().position(|b| *b == b':')?;
                            user_name(&d[..colon])
                        });
                        self.basic = Some(user);
                    }
                } else if is(b"content-length") {
                    self.content_length = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
                } else if is(b"transfer-encoding") {
                    self.chunked = v.eq_ignore_ascii_case(b"chunked");
                } else if is(b"content-type") {
                    self.kind = content_kind(v);
                }
                After::Lines
            }
            St::ChunkSize => {
                let hex = line.split(|b| *b == b';').next().unwrap_or_default().trim_ascii();
                match std::str::from_utf8(hex).ok().and_then(|h| u64::from_str_radix(h, 16).ok()) {
                    Some(0) => {
                        self.st = St::Trailers;
                        After::Lines
                    }
                    Some(n) => {
                        self.st = St::ChunkEnd;
                        After::Raw { len: n, secret: false }
                    }
                    None => {
                        // Not a chunk size: the body is lost; read lines as requests again.
                        self.st = St::RequestLine;
                        After::Lines
                    }
                }
            }
            St::ChunkEnd => {
                self.st = St::ChunkSize;
                After::Lines
            }
            St::Trailers => {
                if line.is_empty() {
                    self.st = St::RequestLine;
                }
                After::Lines
            }
        }
    }

    fn raw(&mut self, bytes: &[u8], seq: u32, _from_client: bool, secrets: &mut Secrets) {
        self.body.feed(&self.kind, bytes, seq, secrets);
    }

    fn gap(&mut self, _from_client: bool) {
        // Whatever was being read is lost; the next request line starts over.
        self.st = St::RequestLine;
        self.body = Body::default();
    }
}

impl Requests {
    fn body_starts(&mut self) -> After {
        self.body = Body::default();
        if self.chunked {
            self.st = St::ChunkSize;
            return After::Lines;
        }
        self.st = St::RequestLine;
        match self.content_length {
            Some(n) if n > 0 => After::Raw { len: n, secret: false },
            _ => After::Lines,
        }
    }
}

fn content_kind(v: &[u8]) -> Kind {
    let main = v.split(|b| *b == b';').next().unwrap_or_default().trim_ascii();
    let is = |t: &[u8]| main.eq_ignore_ascii_case(t);
    if is(b"application/x-www-form-urlencoded") {
        Kind::Form
    } else if is(b"multipart/form-data") {
        let b = v
            .split(|b| *b == b';')
            .filter_map(|p| {
                let p = p.trim_ascii();
                p.get(..9).filter(|k| k.eq_ignore_ascii_case(b"boundary=")).map(|_| &p[9..])
            })
            .next()
            .unwrap_or_default();
        let b = b.strip_prefix(b"\"").and_then(|b| b.strip_suffix(b"\"")).unwrap_or(b);
        if b.is_empty() || b.len() > 70 {
            Kind::Other
        } else {
            Kind::Multipart(b.to_vec())
        }
    } else if main.len() >= 4 && main[main.len() - 4..].eq_ignore_ascii_case(b"json") {
        Kind::Json
    } else {
        Kind::Other
    }
}

/// Longest field name read (longer names are judged on their start).
const NAME: usize = 48;

/// Where a body scan is, across the segments of one body.
#[derive(Debug)]
struct Body {
    /// The field or key name being read, or the multipart part's name.
    name: [u8; NAME],
    name_len: usize,
    /// Form: in a value (after `=`).
    in_value: bool,
    secret: bool,
    json: Json,
    escape: bool,
    mp: Mp,
    /// Multipart: bytes of the delimiter matched so far, the header line being read, and
    /// whether it is the rest of the delimiter's line.
    matched: usize,
    header: Lazy,
    delimiter_line: bool,
}

impl Default for Body {
    fn default() -> Body {
        Body {
            name: [0; NAME],
            name_len: 0,
            in_value: false,
            secret: false,
            json: Json::default(),
            escape: false,
            mp: Mp::default(),
            matched: 0,
            header: Lazy::default(),
            delimiter_line: false,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Mp {
    #[default]
    Start,
    Preamble,
    Headers,
    Content,
    Epilogue,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Json {
    #[default]
    Outside,
    Key,
    AfterKey,
    AfterColon,
    Value,
    Number,
}

impl Body {
    fn push_name(&mut self, b: u8) {
        if self.name_len < NAME {
            self.name[self.name_len] = b;
            self.name_len += 1;
        }
    }

    fn feed(&mut self, kind: &Kind, bytes: &[u8], seq: u32, secrets: &mut Secrets) {
        let mut run: Option<usize> = None;
        let mut mark = |i: usize, secret: bool, run: &mut Option<usize>| match (secret, *run) {
            (true, None) => *run = Some(i),
            (false, Some(s)) => {
                secrets.add(seq.wrapping_add(s as u32), seq.wrapping_add(i as u32));
                *run = None;
            }
            _ => {}
        };
        for (i, &b) in bytes.iter().enumerate() {
            let secret = match kind {
                Kind::Form => self.form(b),
                Kind::Json => self.json(b),
                Kind::Multipart(boundary) => self.multipart(b, boundary),
                Kind::Other => false,
            };
            mark(i, secret, &mut run);
        }
        mark(bytes.len(), false, &mut run);
    }

    /// One byte of an urlencoded form; whether it is secret.
    fn form(&mut self, b: u8) -> bool {
        if self.in_value {
            if b == b'&' {
                self.in_value = false;
                self.name_len = 0;
                return false;
            }
            return self.secret;
        }
        match b {
            b'=' => {
                self.in_value = true;
                self.secret = password_name(&self.name[..self.name_len]);
            }
            b'&' => self.name_len = 0,
            _ => self.push_name(b),
        }
        false
    }

    /// One byte of JSON; whether it is secret (the string or number value of a password-like
    /// key, at any depth).
    fn json(&mut self, b: u8) -> bool {
        match self.json {
            Json::Key | Json::Value => {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    let was_value = self.json == Json::Value;
                    self.json = if was_value { Json::Outside } else { Json::AfterKey };
                    if !was_value {
                        self.secret = password_name(&self.name[..self.name_len]);
                    }
                    return false;
                }
                if self.json == Json::Key {
                    self.push_name(b);
                    false
                } else {
                    self.secret
                }
            }
            Json::Number => {
                if b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E') {
                    true
                } else {
                    self.json = Json::Outside;
                    false
                }
            }
            Json::AfterKey => {
                if b == b':' {
                    self.json = Json::AfterColon;
                } else if !b.is_ascii_whitespace() {
                    self.json = Json::Outside;
                    return self.json(b);
                }
                false
            }
            Json::AfterColon => match b {
                b'"' => {
                    self.json = Json::Value;
                    false
                }
                b'0'..=b'9' | b'-' if self.secret => {
                    self.json = Json::Number;
                    true
                }
                _ if b.is_ascii_whitespace() => false,
                _ => {
                    self.json = Json::Outside;
                    self.json(b)
                }
            },
            Json::Outside => {
                if b == b'"' {
                    // A string outside a value: a key (or an array's string, named by nothing).
                    self.json = Json::Key;
                    self.name_len = 0;
                    self.secret = false;
                }
                false
            }
        }
    }

    /// One byte of a multipart body; whether it is secret (all of a password-like part's
    /// content, with the delimiter that ends it: masking too much is the safe error).
    fn multipart(&mut self, b: u8, boundary: &[u8]) -> bool {
        // The delimiter is CR LF "--" boundary; the body may begin with "--" boundary.
        let at = |k: usize| match k {
            0 => b'\r',
            1 => b'\n',
            2 | 3 => b'-',
            k => boundary[k - 4],
        };
        match self.mp {
            Mp::Start => {
                self.mp = Mp::Preamble;
                self.matched = 2;
            }
            Mp::Epilogue => return false,
            Mp::Headers => {
                if b != b'\n' {
                    self.header.push(&[b], 512);
                    return false;
                }
                let line = std::mem::take(&mut self.header);
                let line = line.as_slice();
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if std::mem::take(&mut self.delimiter_line) {
                    if line.starts_with(b"--") {
                        self.mp = Mp::Epilogue;
                    }
                } else if line.is_empty() {
                    self.mp = Mp::Content;
                    self.secret = password_name(&self.name[..self.name_len]);
                } else {
                    self.part_header(line);
                }
                return false;
            }
            Mp::Preamble | Mp::Content => {}
        }
        let secret = self.mp == Mp::Content && self.secret;
        if b == at(self.matched) {
            self.matched += 1;
        } else {
            self.matched = usize::from(b == b'\r');
        }
        if self.matched == 4 + boundary.len() {
            self.matched = 0;
            self.mp = Mp::Headers;
            self.delimiter_line = true;
            self.name_len = 0;
            self.secret = false;
        }
        secret
    }

    /// `Content-Disposition: form-data; name="password"` gives the part's name.
    fn part_header(&mut self, line: &[u8]) {
        let Some(c) = line.iter().position(|b| *b == b':') else { return };
        if !line[..c].eq_ignore_ascii_case(b"content-disposition") {
            return;
        }
        for p in line[c + 1..].split(|b| *b == b';') {
            let p = p.trim_ascii();
            if p.len() > 5 && p[..5].eq_ignore_ascii_case(b"name=") {
                let v = &p[5..];
                let v = v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(v);
                self.name_len = 0;
                for &b in v.iter().take(NAME) {
                    self.push_name(b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::mask::Masks;

    fn spans(v: Verdict) -> Vec<(usize, usize)> {
        v.spans().collect()
    }

    #[test]
    fn password_names() {
        for n in ["password", "Passwd", "user%5Bpassword%5D", "pwd", "new_pass", "pin", "login_pin", "PinCode"] {
            assert!(password_name(n.as_bytes()), "{n}");
        }
        for n in ["user", "shipping", "spinner", "username", "email", "pinned"] {
            assert!(!password_name(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn request_lines() {
        let l = b"GET http://bob:pw@proxy.lan/x?a=1&password=s3&b=2 HTTP/1.1";
        let v = request_line(l, true);
        assert_eq!(spans(v), [(11, 17), (43, 45)]);
        assert!(request_line(b"GET /index.html HTTP/1.1", true).is_clear());
        // Cut inside the query: decided up to the parameter being read.
        let v = request_line(b"GET /login?user=a&pass", false);
        assert_eq!(v.decided, 18);
        let v = request_line(b"GET http://bob:p", false);
        assert_eq!(v.decided, 11);
    }

    fn scan(kind: Kind, body: &[u8], cut: usize) -> String {
        let mut b = Body::default();
        let mut s = Secrets::default();
        b.feed(&kind, &body[..cut], 100, &mut s);
        b.feed(&kind, &body[cut..], 100 + cut as u32, &mut s);
        let mut m = Masks::default();
        s.mask(100, body.len(), 0, &mut m);
        let mut out = body.to_vec();
        m.apply(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn form_json_and_multipart_fields_are_masked_wherever_the_body_is_cut() {
        let form = b"user=alice&password=s3cr%26t&remember=1";
        let json = br#"{"user": "alice", "auth": {"Password": "s3\"cret"}, "pin": 1234, "n": 1}"#;
        let mp = b"--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nalice\r\n--XyZ\r\nContent-Disposition: form-data; name=\"pwd\"\r\n\r\nhunter2\r\n--XyZ--\r\n";
        for cut in 0..form.len() {
            assert_eq!(scan(Kind::Form, form, cut), "user=alice&password=********&remember=1", "cut {cut}");
        }
        for cut in 0..json.len() {
            let out = scan(Kind::Json, json, cut);
            assert!(
                out.contains("\"alice\"") && !out.contains("s3") && !out.contains("cret") && !out.contains("1234"),
                "cut {cut}: {out}"
            );
        }
        for cut in 0..mp.len() {
            let out = scan(Kind::Multipart(b"XyZ".to_vec()), mp, cut);
            assert!(out.contains("alice") && !out.contains("hunter"), "cut {cut}: {out}");
        }
    }
}

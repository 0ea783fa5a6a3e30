//! Logins of the plaintext line protocols: POP3 (`USER`, `AUTH PLAIN`), IMAP (`LOGIN`,
//! `AUTHENTICATE PLAIN`), SMTP (`AUTH LOGIN`, `AUTH PLAIN`), FTP (`USER`) and HTTP
//! `Authorization: Basic`, with the outcome from the server's reply (+OK/-ERR, OK/NO, 235/535,
//! 230/530, HTTP status).
//!
//! One small state per TCP conversation (at most [`MAX_SESSIONS`]), lines read from each
//! segment. Passwords (PASS, the LOGIN password, SASL secrets, the Basic password) are read past
//! and dropped at once. Limitation: a command split across two TCP segments is not seen.

use crate::bounded::LruMap;
use std::net::IpAddr;

use base64::Engine;

use super::{name_from_wire, IdentityFact, Outcome, Source};
use crate::time::Ts;

/// Conversations with login state. Beyond it the oldest is dropped (its pending attempt
/// reported with outcome unknown).
pub const MAX_SESSIONS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Pop3,
    Imap,
    Smtp,
    Ftp,
    Http,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// POP3/FTP: USER sent, waiting for the server to accept the name.
    UserReply,
    /// Name accepted, the password comes next.
    AwaitPass,
    /// Password (or whole credentials) sent: the next verdict is the outcome.
    Final,
    /// SASL PLAIN: the server asked for the credentials, the client's next line has them.
    PlainCont,
    /// SMTP AUTH LOGIN: the client's next line is the base64 user name.
    SmtpUser,
    /// SMTP AUTH LOGIN: the client's next line is the base64 password (skipped).
    SmtpPass,
}

struct Pending {
    user: Option<String>,
    stage: Stage,
    /// IMAP command tag the verdict will carry.
    tag: Vec<u8>,
    mac: Option<[u8; 6]>,
    ip: Option<IpAddr>,
    ts: Ts,
    frame: u64,
}

struct Session {
    proto: Proto,
    pending: Option<Pending>,
    /// Start of a client line whose end is in a later segment (at most [`MAX_PARTIAL`] bytes).
    partial: Vec<u8>,
}

/// Longest unfinished client line carried to the next segment. Commands with a user name are
/// short; a longer fragment is dropped rather than buffered.
pub const MAX_PARTIAL: usize = 512;

/// What the caller knows about the segment.
pub struct Segment<'a> {
    pub conv: (u32, u64),
    pub payload: &'a [u8],
    pub from_client: bool,
    pub client_mac: Option<[u8; 6]>,
    pub client_ip: Option<IpAddr>,
    pub ts: Ts,
    pub frame: u64,
}

/// Login conversations followed; when full, the one idle longest is forgotten (its attempt
/// reported with an unknown verdict).
pub struct TextLogins {
    sessions: LruMap<(u32, u64), Session>,
}

impl Default for TextLogins {
    fn default() -> Self {
        TextLogins { sessions: LruMap::new(MAX_SESSIONS) }
    }
}

fn proto_for_port(p: u16) -> Option<Proto> {
    Some(match p {
        110 => Proto::Pop3,
        143 => Proto::Imap,
        25 | 587 => Proto::Smtp,
        21 => Proto::Ftp,
        _ => return None,
    })
}

const HTTP_METHODS: [&[u8]; 8] =
    [b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"PROPFIND "];

/// Which side is the client, by the well-known server port, or by an HTTP request line.
pub fn classify(sport: u16, dport: u16, payload: &[u8]) -> Option<bool> {
    if proto_for_port(dport).is_some() {
        return Some(true);
    }
    if proto_for_port(sport).is_some() {
        return Some(false);
    }
    if HTTP_METHODS.iter().any(|m| payload.starts_with(m)) {
        return Some(true);
    }
    if payload.starts_with(b"HTTP/1.") {
        return Some(false);
    }
    None
}

fn lines(p: &[u8]) -> impl Iterator<Item = &[u8]> {
    p.split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).filter(|l| !l.is_empty())
}

fn word(l: &[u8]) -> (&[u8], &[u8]) {
    let l = l.trim_ascii_start();
    match l.iter().position(|b| *b == b' ') {
        Some(i) => (&l[..i], l[i + 1..].trim_ascii_start()),
        None => (l, &[]),
    }
}

fn b64(s: &[u8]) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s.trim_ascii()).ok()
}

/// SASL PLAIN (RFC 4616): authzid NUL authcid NUL passwd — the login is authcid.
fn sasl_plain_user(s: &[u8]) -> Option<String> {
    let raw = b64(s)?;
    let mut parts = raw.split(|b| *b == 0);
    let _authzid = parts.next()?;
    let authcid = parts.next()?;
    (!authcid.is_empty()).then(|| name_from_wire(authcid))
}

/// An IMAP astring: quoted (quotes removed) or an atom.
fn imap_astring(s: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = s.strip_prefix(b"\"") {
        let end = rest.iter().position(|b| *b == b'"')?;
        Some(&rest[..end])
    } else {
        let end = s.iter().position(|b| *b == b' ').unwrap_or(s.len());
        (end > 0 && !s.starts_with(b"{")).then(|| &s[..end])
    }
}

impl TextLogins {
    /// Reads one segment; finished login attempts are appended to `out`.
    pub fn segment(&mut self, seg: &Segment<'_>, sport: u16, dport: u16, out: &mut Vec<IdentityFact>) {
        let proto = match proto_for_port(if seg.from_client { dport } else { sport }) {
            Some(p) => p,
            None => Proto::Http,
        };
        if !self.sessions.contains_key(&seg.conv) {
            // Only a client's login or a reply to one creates state.
            let interesting = seg.from_client
                && match proto {
                    // Header names start lines: one byte scan for line ends, not a 21-byte
                    // comparison at every offset of a full-size segment.
                    Proto::Http => seg
                        .payload
                        .split(|b| *b == b'\n')
                        .any(|l| l.get(..21).is_some_and(|h| h.eq_ignore_ascii_case(b"authorization: basic "))),
                    _ => true,
                };
            if !interesting {
                return;
            }
            let new = Session { proto, pending: None, partial: Vec::new() };
            if let Some((_, s)) = self.sessions.insert(seg.conv, new) {
                emit(s.proto, s.pending, Outcome::Unknown, out);
            }
        }
        let Some(s) = self.sessions.get_mut(&seg.conv) else { return };
        if !seg.from_client {
            for line in lines(seg.payload) {
                server_line(s, line, out);
            }
            return;
        }
        // Client data: complete lines are read now; an unfinished last line waits for the next
        // segment (a command split across segments).
        let (complete, tail) = match seg.payload.iter().rposition(|b| *b == b'\n') {
            Some(i) => (&seg.payload[..=i], &seg.payload[i + 1..]),
            None => (&seg.payload[..0], seg.payload),
        };
        if !s.partial.is_empty() && !complete.is_empty() {
            let first_end = complete.iter().position(|b| *b == b'\n').unwrap_or(0);
            let mut joined = std::mem::take(&mut s.partial);
            joined.extend_from_slice(&complete[..=first_end]);
            for line in lines(&joined) {
                client_line(s, line, seg, out);
            }
            for line in lines(&complete[first_end + 1..]) {
                client_line(s, line, seg, out);
            }
        } else {
            for line in lines(complete) {
                client_line(s, line, seg, out);
            }
        }
        if !tail.is_empty() {
            if s.partial.len() + tail.len() <= MAX_PARTIAL {
                s.partial.extend_from_slice(tail);
            } else {
                s.partial.clear();
            }
        }
    }

    /// Reports attempts still waiting for a verdict (end of capture) as unknown.
    pub fn flush(&mut self, out: &mut Vec<IdentityFact>) {
        for (_, s) in self.sessions.drain() {
            emit(s.proto, s.pending, Outcome::Unknown, out);
        }
    }
}

fn source(p: Proto) -> Source {
    match p {
        Proto::Pop3 => Source::Pop3,
        Proto::Imap => Source::Imap,
        Proto::Smtp => Source::Smtp,
        Proto::Ftp => Source::Ftp,
        Proto::Http => Source::HttpBasic,
    }
}

fn emit(proto: Proto, p: Option<Pending>, outcome: Outcome, out: &mut Vec<IdentityFact>) {
    let Some(p) = p else { return };
    let Some(user) = p.user else { return };
    out.push(IdentityFact {
        source: source(proto),
        mac: p.mac,
        ip: p.ip,
        user: Some(user),
        realm: None,
        hostname: None,
        outcome,
        error: None,
        ts: p.ts,
        frame: p.frame,
    });
}

fn start(
    s: &mut Session,
    seg: &Segment<'_>,
    user: Option<String>,
    stage: Stage,
    tag: &[u8],
    out: &mut Vec<IdentityFact>,
) {
    // A new attempt before the previous one got its verdict: the old one stays unknown.
    emit(s.proto, s.pending.take(), Outcome::Unknown, out);
    s.pending = Some(Pending {
        user,
        stage,
        tag: tag[..tag.len().min(32)].to_vec(),
        mac: seg.client_mac,
        ip: seg.client_ip,
        ts: seg.ts,
        frame: seg.frame,
    });
}

fn client_line(s: &mut Session, line: &[u8], seg: &Segment<'_>, out: &mut Vec<IdentityFact>) {
    // Continuation lines first: they carry credentials, not commands.
    if let Some(p) = s.pending.as_mut() {
        match p.stage {
            Stage::PlainCont => {
                p.user = sasl_plain_user(line);
                p.stage = Stage::Final;
                return;
            }
            Stage::SmtpUser => {
                p.user = b64(line).map(|u| name_from_wire(&u));
                p.stage = Stage::SmtpPass;
                return;
            }
            Stage::SmtpPass => {
                // The password: skipped.
                p.stage = Stage::Final;
                return;
            }
            _ => {}
        }
    }
    match s.proto {
        Proto::Pop3 | Proto::Ftp => {
            let (cmd, arg) = word(line);
            if cmd.eq_ignore_ascii_case(b"USER") && !arg.is_empty() {
                start(s, seg, Some(name_from_wire(arg)), Stage::UserReply, b"", out);
            } else if cmd.eq_ignore_ascii_case(b"PASS") {
                if let Some(p) = s.pending.as_mut() {
                    p.stage = Stage::Final;
                }
            } else if cmd.eq_ignore_ascii_case(b"AUTH") && s.proto == Proto::Pop3 {
                let (mech, ir) = word(arg);
                if mech.eq_ignore_ascii_case(b"PLAIN") {
                    let user = if ir.is_empty() { None } else { sasl_plain_user(ir) };
                    let stage = if ir.is_empty() { Stage::PlainCont } else { Stage::Final };
                    start(s, seg, user, stage, b"", out);
                }
            }
        }
        Proto::Imap => {
            let (tag, rest) = word(line);
            let (cmd, args) = word(rest);
            if cmd.eq_ignore_ascii_case(b"LOGIN") {
                if let Some(u) = imap_astring(args) {
                    start(s, seg, Some(name_from_wire(u)), Stage::Final, tag, out);
                }
            } else if cmd.eq_ignore_ascii_case(b"AUTHENTICATE") {
                let (mech, ir) = word(args);
                if mech.eq_ignore_ascii_case(b"PLAIN") {
                    let user = if ir.is_empty() { None } else { sasl_plain_user(ir) };
                    let stage = if ir.is_empty() { Stage::PlainCont } else { Stage::Final };
                    start(s, seg, user, stage, tag, out);
                }
            }
        }
        Proto::Smtp => {
            let (cmd, arg) = word(line);
            if cmd.eq_ignore_ascii_case(b"AUTH") {
                let (mech, ir) = word(arg);
                if mech.eq_ignore_ascii_case(b"LOGIN") {
                    let (user, stage) = if ir.is_empty() {
                        (None, Stage::SmtpUser)
                    } else {
                        (b64(ir).map(|u| name_from_wire(&u)), Stage::SmtpPass)
                    };
                    start(s, seg, user, stage, b"", out);
                } else if mech.eq_ignore_ascii_case(b"PLAIN") {
                    let user = if ir.is_empty() { None } else { sasl_plain_user(ir) };
                    let stage = if ir.is_empty() { Stage::PlainCont } else { Stage::Final };
                    start(s, seg, user, stage, b"", out);
                }
            }
        }
        Proto::Http => {
            let (name, value) = match line.iter().position(|b| *b == b':') {
                Some(i) => (&line[..i], line[i + 1..].trim_ascii()),
                None => return,
            };
            if name.eq_ignore_ascii_case(b"authorization") {
                let (scheme, cred) = word(value);
                if scheme.eq_ignore_ascii_case(b"basic") {
                    // user:password — only the user is kept.
                    let user = b64(cred).map(|d| {
                        let end = d.iter().position(|b| *b == b':').unwrap_or(d.len());
                        name_from_wire(&d[..end])
                    });
                    start(s, seg, user, Stage::Final, b"", out);
                }
            }
        }
    }
}

fn server_line(s: &mut Session, line: &[u8], out: &mut Vec<IdentityFact>) {
    let Some(p) = s.pending.as_mut() else { return };
    let verdict = match s.proto {
        Proto::Pop3 => {
            if line.starts_with(b"+OK") {
                if p.stage == Stage::UserReply {
                    p.stage = Stage::AwaitPass;
                    None
                } else if matches!(p.stage, Stage::Final) {
                    Some(Outcome::Success)
                } else {
                    None
                }
            } else if line.starts_with(b"-ERR") {
                Some(Outcome::Failure)
            } else {
                None
            }
        }
        Proto::Ftp => match line.get(..3) {
            Some(b"230") => Some(Outcome::Success),
            Some(b"530") => Some(Outcome::Failure),
            Some(b"331") | Some(b"332") => {
                p.stage = Stage::AwaitPass;
                None
            }
            _ => None,
        },
        Proto::Imap => {
            let (tag, rest) = word(line);
            if !p.tag.is_empty() && tag == p.tag.as_slice() {
                let (status, _) = word(rest);
                if status.eq_ignore_ascii_case(b"OK") {
                    Some(Outcome::Success)
                } else if status.eq_ignore_ascii_case(b"NO") || status.eq_ignore_ascii_case(b"BAD") {
                    Some(Outcome::Failure)
                } else {
                    None
                }
            } else {
                None
            }
        }
        Proto::Smtp => match line.get(..3) {
            Some(b"235") => Some(Outcome::Success),
            Some(c) if c.starts_with(b"5") || c.starts_with(b"4") => Some(Outcome::Failure),
            _ => None,
        },
        Proto::Http => {
            let (version, rest) = word(line);
            if !version.starts_with(b"HTTP/1.") {
                return;
            }
            match rest.first() {
                Some(b'1') => None,
                Some(b'2') | Some(b'3') => Some(Outcome::Success),
                Some(b'4') if rest.starts_with(b"401") || rest.starts_with(b"403") => Some(Outcome::Failure),
                Some(_) => Some(Outcome::Unknown),
                None => None,
            }
        }
    };
    if let Some(v) = verdict {
        emit(s.proto, s.pending.take(), v, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(payload: &[u8], from_client: bool, frame: u64) -> Segment<'_> {
        Segment { conv: (1, 1), payload, from_client, client_mac: None, client_ip: None, ts: Ts(frame as i64), frame }
    }

    #[test]
    fn a_command_split_across_segments_is_joined() {
        let mut t = TextLogins::default();
        let mut out = Vec::new();
        let steps: [(&[u8], bool); 4] =
            [(b"a1 LOG", true), (b"IN \"ali", true), (b"ce\" secret\r\n", true), (b"a1 OK done\r\n", false)];
        for (p, c) in steps {
            let (s, d) = if c { (40000, 143) } else { (143, 40000) };
            t.segment(&seg(p, c, 1), s, d, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].user.as_deref(), Some("alice"));
        assert_eq!(out[0].outcome, Outcome::Success);
    }

    #[test]
    fn pop3_user_pass_and_verdicts() {
        let mut t = TextLogins::default();
        let mut out = Vec::new();
        let steps: [(&[u8], bool); 6] = [
            (b"+OK ready\r\n", false),
            (b"user bob\r\n", true),
            (b"+OK\r\n", false),
            (b"pass hunter2\r\n", true),
            (b"-ERR [AUTH] failed\r\n", false),
            (b"USER bob\r\nPASS x\r\n", true),
        ];
        for (p, c) in steps {
            let (s, d) = if c { (40000, 110) } else { (110, 40000) };
            t.segment(&seg(p, c, 1), s, d, &mut out);
        }
        t.flush(&mut out);
        let got: Vec<(Option<&str>, Outcome)> = out.iter().map(|f| (f.user.as_deref(), f.outcome)).collect();
        assert_eq!(got, [(Some("bob"), Outcome::Failure), (Some("bob"), Outcome::Unknown)]);
    }
}

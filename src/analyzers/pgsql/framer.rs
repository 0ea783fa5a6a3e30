//! PostgreSQL: the backend's ErrorResponse (`E`) with its severity (`S`), SQLSTATE (`C`) and
//! message (`M`) fields. NoticeResponse (`N`) is a notice, not an error, and is skipped.
//! The framer walks the backend's messages (type byte + length) and copies only `E` messages.
//! A message header that is not a backend message (a capture that starts mid-stream) makes it
//! wait for the next segment, which it tries as a message start.

use crate::analyzers::errors::{wire_text, Body, Done, ErrorFramer, Found, Header};

#[derive(Debug, Default)]
enum St {
    #[default]
    Header,
    Body(Body),
    /// Out of step: try again at the next segment.
    Lost,
    /// The connection switched to TLS: nothing more to read.
    Tls,
}

#[derive(Debug, Default)]
pub struct Framer {
    hdr: Header<5>,
    st: St,
    /// A message has been seen (the one-byte answers to SSLRequest come only before).
    started: bool,
    /// A ReadyForQuery (`Z`) came since [`Framer::take_ready`] was last asked.
    ready: bool,
}

/// Message types a backend sends (protocol 3).
fn backend_type(t: u8) -> bool {
    b"RKSZTDCENI123nstAGHWcdVv".contains(&t)
}

/// Parses an ErrorResponse body (the fields after type and length).
pub fn parse_error(body: &[u8]) -> Option<Found> {
    let (mut sev, mut code, mut msg) = (None, None, None);
    let mut rest = body;
    while let Some((&t, tail)) = rest.split_first() {
        if t == 0 {
            break;
        }
        // A field without its terminator is one the capture cut: take what there is.
        let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
        let v = &tail[..end];
        match t {
            b'S' => sev = Some(v),
            b'C' => code = Some(v),
            b'M' => msg = Some(v),
            _ => {}
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    Some(Found { code: wire_text(code?), message: wire_text(msg.unwrap_or_default()), detail: sev.map(wire_text) })
}

impl Framer {
    /// Whether a ReadyForQuery came since the last call (the login is over).
    pub fn take_ready(&mut self) -> bool {
        std::mem::take(&mut self.ready)
    }

    /// The server accepted TLS: nothing more is readable.
    pub fn is_tls(&self) -> bool {
        matches!(self.st, St::Tls)
    }
}

impl ErrorFramer for Framer {
    fn feed(&mut self, p: &[u8], found: &mut Vec<Found>) {
        match self.st {
            St::Tls => return,
            St::Lost => {
                self.st = St::Header;
                self.hdr.clear();
            }
            _ => {}
        }
        // The one-byte answer to SSLRequest/GSSENCRequest comes in a segment of its own.
        if !self.started && self.hdr.is_empty() && p.len() == 1 && matches!(p[0], b'N' | b'S' | b'G') {
            if p[0] != b'N' {
                self.st = St::Tls;
            }
            return;
        }
        let mut i = 0;
        loop {
            match &mut self.st {
                St::Body(b) => match b.feed(p, &mut i) {
                    Done::Pending => return,
                    Done::Kept => {
                        found.extend(parse_error(b.message()));
                        self.st = St::Header;
                    }
                    Done::Skipped => self.st = St::Header,
                },
                St::Lost | St::Tls => return,
                _ if i == p.len() => return,
                St::Header => {
                    if let Some(h) = self.hdr.feed(p, &mut i) {
                        let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
                        if !backend_type(h[0]) || !(4..=1 << 30).contains(&len) {
                            self.st = St::Lost;
                            return;
                        }
                        self.started = true;
                        self.ready |= h[0] == b'Z';
                        self.st = St::Body(Body::new(len as usize - 4, h[0] == b'E', &[]));
                    }
                }
            }
        }
    }

    /// The segment just fed was cut by the capture: an ErrorResponse begun in it is reported
    /// from the fields that were captured.
    fn cut(&mut self, found: &mut Vec<Found>) {
        if let St::Body(b) = &self.st {
            found.extend(b.partial().and_then(parse_error));
        }
        let started = self.started;
        *self = Framer { started, ..Framer::default() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(t: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![t];
        v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn deadlock_after_rows_split_anywhere() {
        let mut s = msg(b'D', b"\x00\x01\x00\x00\x00\x05hello");
        s.extend(msg(b'N', b"SNOTICE\0C00000\0Mjust a notice\0\0"));
        s.extend(msg(b'E', b"SERROR\0VERROR\0C40P01\0Mdeadlock detected\0Dwhatever\0\0"));
        s.extend(msg(b'Z', b"E"));
        for cut in 0..s.len() {
            let mut f = Framer::default();
            let mut found = Vec::new();
            f.feed(&s[..cut], &mut found);
            f.feed(&s[cut..], &mut found);
            assert_eq!(found.len(), 1, "cut {cut}");
            assert_eq!(found[0].code, "40P01");
            assert_eq!(found[0].message, "deadlock detected");
            assert_eq!(found[0].detail.as_deref(), Some("ERROR"));
        }
    }

    #[test]
    fn ssl_refusal_byte_then_messages() {
        let mut f = Framer::default();
        let mut found = Vec::new();
        f.feed(b"N", &mut found);
        f.feed(&msg(b'E', b"SFATAL\0C28P01\0Mpassword authentication failed for user \"x\"\0\0"), &mut found);
        assert_eq!(found[0].code, "28P01");
        assert_eq!(found[0].detail.as_deref(), Some("FATAL"));
    }

    #[test]
    fn mid_stream_garbage_resyncs_at_next_segment() {
        let mut f = Framer::default();
        let mut found = Vec::new();
        f.feed(b"xx garbage that is no message", &mut found);
        f.feed(&msg(b'E', b"SERROR\0C23505\0Mduplicate key value violates unique constraint\0\0"), &mut found);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, "23505");
    }
}

//! PostgreSQL: the backend's ErrorResponse (`E`) with its severity (`S`), SQLSTATE (`C`) and
//! message (`M`) fields. NoticeResponse (`N`) is a notice, not an error, and is skipped.
//! The framer walks the backend's messages (type byte + length) and copies only `E` messages.
//! A message header that is not a backend message (a capture that starts mid-stream) makes it
//! wait for the next segment, which it tries as a message start.

use super::{wire_text, Found, MAX_MESSAGE};

#[derive(Default, Clone, Copy)]
enum St {
    #[default]
    Header,
    Collect(u32),
    Skip(u32),
    /// Out of step: try again at the next segment.
    Lost,
    /// The connection switched to TLS: nothing more to read.
    Tls,
}

#[derive(Default)]
pub struct Framer {
    hdr: [u8; 5],
    hdr_len: usize,
    st: St,
    buf: Vec<u8>,
    /// A message has been seen (the one-byte answers to SSLRequest come only before).
    started: bool,
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
        let end = tail.iter().position(|b| *b == 0)?;
        let v = &tail[..end];
        match t {
            b'S' => sev = Some(v),
            b'C' => code = Some(v),
            b'M' => msg = Some(v),
            _ => {}
        }
        rest = &tail[end + 1..];
    }
    Some(Found { code: wire_text(code?), message: wire_text(msg.unwrap_or_default()), detail: sev.map(wire_text) })
}

impl Framer {
    pub fn feed(&mut self, p: &[u8], found: &mut Vec<Found>) {
        match self.st {
            St::Tls => return,
            St::Lost => {
                self.st = St::Header;
                self.hdr_len = 0;
            }
            _ => {}
        }
        // The one-byte answer to SSLRequest/GSSENCRequest comes in a segment of its own.
        if !self.started && self.hdr_len == 0 && p.len() == 1 && matches!(p[0], b'N' | b'S' | b'G') {
            if p[0] != b'N' {
                self.st = St::Tls;
            }
            return;
        }
        let mut i = 0;
        while i < p.len() {
            match self.st {
                St::Header => {
                    let n = (5 - self.hdr_len).min(p.len() - i);
                    self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&p[i..i + n]);
                    self.hdr_len += n;
                    i += n;
                    if self.hdr_len < 5 {
                        break;
                    }
                    self.hdr_len = 0;
                    let len = u32::from_be_bytes([self.hdr[1], self.hdr[2], self.hdr[3], self.hdr[4]]);
                    if !backend_type(self.hdr[0]) || !(4..=1 << 30).contains(&len) {
                        self.st = St::Lost;
                        return;
                    }
                    self.started = true;
                    let body = len - 4;
                    self.st = if self.hdr[0] == b'E' && body as usize <= MAX_MESSAGE {
                        self.buf.clear();
                        St::Collect(body)
                    } else {
                        St::Skip(body)
                    };
                }
                St::Collect(need) => {
                    let n = (need as usize).min(p.len() - i);
                    self.buf.extend_from_slice(&p[i..i + n]);
                    i += n;
                    self.st = St::Collect(need - n as u32);
                }
                St::Skip(need) => {
                    let n = (need as usize).min(p.len() - i);
                    i += n;
                    self.st = St::Skip(need - n as u32);
                }
                St::Lost | St::Tls => return,
            }
            match self.st {
                St::Collect(0) => {
                    found.extend(parse_error(&self.buf));
                    self.buf = Vec::new();
                    self.st = St::Header;
                }
                St::Skip(0) => self.st = St::Header,
                _ => {}
            }
        }
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

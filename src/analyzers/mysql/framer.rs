//! MySQL/MariaDB: the server's ERR packet (`0xFF`, error number, optional `#` + SQLSTATE,
//! message). The framer walks the server's packets (3-byte length + sequence id) and copies
//! only a packet whose first byte is 0xFF — no result row is ever copied.

use crate::analyzers::errors::{wire_text, Body, Done, ErrorFramer, Found, Header};

#[derive(Debug, Default)]
enum St {
    #[default]
    Header,
    /// Packet length known, first payload byte not yet seen.
    Peek(u32),
    Body(Body),
}

#[derive(Debug, Default)]
pub struct Framer {
    hdr: Header<4>,
    st: St,
    /// First bytes of the packets seen since the caller last looked ([`Framer::take_firsts`]):
    /// during the login, 0x00 is OK, 0xFE a request to switch the authentication method.
    firsts: u8,
}

/// [`Framer::take_firsts`] bits.
pub const SAW_OK: u8 = 1;
pub const SAW_SWITCH: u8 = 2;
pub const SAW_ERR: u8 = 4;

/// Parses an ERR packet's payload (starting at the 0xFF marker).
pub fn parse_err(p: &[u8]) -> Option<Found> {
    if p.len() < 3 || p[0] != 0xff {
        return None;
    }
    let code = u16::from_le_bytes([p[1], p[2]]);
    // 0xFFFF is the progress-report packet of MariaDB, not an error.
    if code == 0xffff || code == 0 {
        return None;
    }
    let (sqlstate, msg) = if p.len() >= 9 && p[3] == b'#' { (Some(&p[4..9]), &p[9..]) } else { (None, &p[3..]) };
    Some(Found { code: code.to_string(), message: wire_text(msg), detail: sqlstate.map(wire_text) })
}

impl Framer {
    /// Which kinds of packets came since the last call.
    pub fn take_firsts(&mut self) -> u8 {
        std::mem::take(&mut self.firsts)
    }
}

impl ErrorFramer for Framer {
    /// Feeds the next in-order bytes of the server's stream.
    fn feed(&mut self, p: &[u8], found: &mut Vec<Found>) {
        let mut i = 0;
        loop {
            match &mut self.st {
                // A body completes even when its last byte ended the previous step.
                St::Body(b) => match b.feed(p, &mut i) {
                    Done::Pending => return,
                    Done::Kept => {
                        found.extend(parse_err(b.message()));
                        self.st = St::Header;
                    }
                    Done::Skipped => self.st = St::Header,
                },
                _ if i == p.len() => return,
                St::Header => {
                    if let Some(h) = self.hdr.feed(p, &mut i) {
                        let len = u32::from_le_bytes([h[0], h[1], h[2], 0]);
                        if len > 0 {
                            self.st = St::Peek(len);
                        }
                    }
                }
                St::Peek(len) => {
                    let first = p[i];
                    i += 1;
                    self.firsts |= match first {
                        0x00 => SAW_OK,
                        0xfe => SAW_SWITCH,
                        0xff => SAW_ERR,
                        _ => 0,
                    };
                    self.st = St::Body(Body::new(*len as usize - 1, first == 0xff, &[first]));
                }
            }
        }
    }

    /// The segment just fed was cut by the capture: an ERR packet begun in it is reported from
    /// what was captured.
    fn cut(&mut self, found: &mut Vec<Found>) {
        if let St::Body(b) = &self.st {
            found.extend(b.partial().and_then(parse_err));
        }
        let firsts = self.firsts;
        *self = Framer { firsts, ..Framer::default() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        v.push(seq);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn deadlock_err_split_over_segments_after_a_row() {
        let mut stream = packet(1, b"\x03defrow-data-that-is-not-an-error");
        let mut err = vec![0xff];
        err.extend_from_slice(&1213u16.to_le_bytes());
        err.extend_from_slice(b"#40001Deadlock found when trying to get lock; try restarting transaction");
        stream.extend(packet(2, &err));
        for cut in 0..stream.len() {
            let mut f = Framer::default();
            let mut found = Vec::new();
            f.feed(&stream[..cut], &mut found);
            f.feed(&stream[cut..], &mut found);
            assert_eq!(found.len(), 1, "cut {cut}");
            assert_eq!(found[0].code, "1213");
            assert_eq!(found[0].detail.as_deref(), Some("40001"));
            assert!(found[0].message.starts_with("Deadlock found"));
        }
    }

    #[test]
    fn handshake_error_without_sqlstate() {
        let mut err = vec![0xff];
        err.extend_from_slice(&1130u16.to_le_bytes());
        err.extend_from_slice(b"Host 'x' is not allowed to connect to this MySQL server");
        let mut found = Vec::new();
        Framer::default().feed(&packet(0, &err), &mut found);
        assert_eq!(found[0].code, "1130");
        assert_eq!(found[0].detail, None);
    }

    #[test]
    fn hostile_lengths_do_not_panic_or_grow() {
        let mut f = Framer::default();
        let mut found = Vec::new();
        f.feed(&[0xff, 0xff, 0xff, 0, 0xff, 1, 2], &mut found);
        f.feed(&[0xff; 100], &mut found);
        assert!(found.is_empty());
    }
}

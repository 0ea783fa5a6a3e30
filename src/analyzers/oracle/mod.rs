//! Oracle: `ORA-NNNNN: message` texts in the server's TNS data. TNS framing changed across
//! versions (2- or 4-byte lengths), so the server's bytes are searched for the error text
//! itself; the first `ORA-` code of a segment is reported (an error stack lists the cause
//! first), and a bounded tail is carried so a code split across segments is still found.

use crate::analyzers::budget::Lazy;
use crate::analyzers::errors::{wire_text, ErrorFramer, Family, Found, ServerStream};
use crate::analyzers::{Here, TcpSeg};

/// Bytes carried from one segment to the next: enough for a code and the start of its text.
const CARRY: usize = 160;
const MAX_LINE: usize = 512;

#[derive(Debug, Default)]
pub struct Scanner {
    carry: Lazy,
}

/// Finds the first `ORA-` + five digits in `b`; returns (start, end of the line).
fn find(b: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(k) = b[from..].windows(4).position(|w| w == b"ORA-") {
        let at = from + k;
        let digits = b.get(at + 4..at + 9)?;
        if digits.iter().all(u8::is_ascii_digit) {
            let rest = &b[at..b.len().min(at + MAX_LINE)];
            let end =
                rest.iter().position(|c| *c == b'\n' || *c == 0 || (*c < 0x20 && *c != b'\t')).unwrap_or(rest.len());
            return Some((at, at + end));
        }
        from = at + 4;
    }
    None
}

/// Parses one error line `ORA-00060: deadlock detected …`.
pub fn parse_line(line: &[u8]) -> Found {
    let code = wire_text(&line[..9]);
    let msg = line[9..].strip_prefix(b":").unwrap_or(&line[9..]);
    Found { code, message: wire_text(msg.trim_ascii()), detail: None }
}

impl ErrorFramer for Scanner {
    fn feed(&mut self, p: &[u8], found: &mut Vec<Found>) {
        let hit = if self.carry.is_empty() {
            find(p).map(|(s, e)| parse_line(&p[s..e]))
        } else {
            self.carry.push(&p[..p.len().min(MAX_LINE)], CARRY + MAX_LINE);
            let c = self.carry.as_slice();
            let r = find(c).map(|(s, e)| parse_line(&c[s..e]));
            if r.is_none() {
                find(p).map(|(s, e)| parse_line(&p[s..e]))
            } else {
                r
            }
        };
        self.carry.clear();
        match hit {
            Some(f) => found.push(f),
            None => self.carry.push(&p[p.len().saturating_sub(CARRY)..], CARRY + MAX_LINE),
        }
    }
}

/// An Oracle connection: its server's errors.
#[derive(Debug, Default)]
pub struct Oracle {
    server: ServerStream<Scanner>,
}

impl Oracle {
    pub fn segment(&mut self, s: TcpSeg<'_>, here: &mut Here<'_>) -> bool {
        if !s.from_client {
            self.server.segment(s, Family::Oracle, here);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlock_code_and_text() {
        let mut found = Vec::new();
        let mut s = Scanner::default();
        s.feed(b"\x00\x7f\x00\x00\x06\x00\x00\x00\x00\x00....ORA-00060: deadlock detected while waiting for resource\nORA-06512: at line 1\n", &mut found);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, "ORA-00060");
        assert_eq!(found[0].message, "deadlock detected while waiting for resource");
    }

    #[test]
    fn split_code_is_joined() {
        let mut found = Vec::new();
        let mut s = Scanner::default();
        s.feed(b"xxxxORA-000", &mut found);
        s.feed(b"01: unique constraint (A.B) violated\n", &mut found);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, "ORA-00001");
    }

    #[test]
    fn not_a_code() {
        let mut found = Vec::new();
        Scanner::default().feed(b"ORA-12 ORA-ABCDE ORA-", &mut found);
        assert!(found.is_empty());
    }
}

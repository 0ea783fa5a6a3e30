//! SQL Server (TDS): ERROR tokens (0xAA) in the server's tabular-result packets: error number,
//! state, class, UTF-16LE message, server and procedure names, line number.
//!
//! The framer strips the 8-byte TDS packet headers from the server's stream and scans the
//! packet bodies of tabular results (type 4) for ERROR tokens. Walking every token would need
//! the column metadata of every result set; instead a candidate 0xAA is accepted only when its
//! declared length equals the sum of its fields' lengths exactly, which rows of data do not
//! satisfy by chance. A token cut by a packet or segment boundary is completed from a bounded
//! carry buffer (at most [`MAX_MESSAGE`] bytes).

use crate::analyzers::budget::Lazy;
use crate::analyzers::errors::{wire_text, ErrorFramer, Found, Header, MAX_MESSAGE};

const TABULAR_RESULT: u8 = 0x04;
const ERROR_TOKEN: u8 = 0xaa;
const INFO_TOKEN: u8 = 0xab;
/// Status bit: last packet of the message.
const EOM: u8 = 0x01;

#[derive(Debug, Default)]
pub struct Framer {
    hdr: Header<8>,
    /// Body bytes left in the current packet.
    left: usize,
    scan: bool,
    eom: bool,
    /// Token bytes not yet scanned to the end (an ERROR token cut by a boundary).
    carry: Lazy,
    /// Report INFO tokens too.
    with_info: bool,
}

/// Outcome of looking for a token at `b[0]`.
enum Token {
    Valid(Found, usize),
    Incomplete,
    No,
}

fn utf16(b: &[u8]) -> String {
    let units: Vec<u16> = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    wire_text(String::from_utf16_lossy(&units).as_bytes())
}

fn token_at(b: &[u8], with_info: bool) -> Token {
    let t = b[0];
    if t != ERROR_TOKEN && !(with_info && t == INFO_TOKEN) {
        return Token::No;
    }
    if b.len() < 3 {
        return Token::Incomplete;
    }
    let len = u16::from_le_bytes([b[1], b[2]]) as usize;
    if len < 14 {
        return Token::No;
    }
    if b.len() < 3 + len {
        return if len <= MAX_MESSAGE { Token::Incomplete } else { Token::No };
    }
    let v = &b[3..3 + len];
    let number = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
    let (state, class) = (v[4], v[5]);
    let mlen = 2 * u16::from_le_bytes([v[6], v[7]]) as usize;
    let mut at = 8 + mlen;
    let msg = match v.get(8..at) {
        Some(m) => m,
        None => return Token::No,
    };
    for _ in 0..2 {
        // server name, procedure name (B_VARCHAR: a length in characters)
        match v.get(at) {
            Some(n) => at += 1 + 2 * *n as usize,
            None => return Token::No,
        }
    }
    // Line number: 4 bytes since TDS 7.2, 2 before.
    if at + 4 != len && at + 2 != len {
        return Token::No;
    }
    // Severity classes run 0..=25; errors are above 10, INFO below.
    if class > 25 || (t == ERROR_TOKEN && class <= 10) || number == 0 {
        return Token::No;
    }
    let found =
        Found { code: number.to_string(), message: utf16(msg), detail: Some(format!("class {class}, state {state}")) };
    Token::Valid(found, 3 + len)
}

/// Scans `b` for tokens; returns the offset from which bytes must be kept (an incomplete one).
fn scan(b: &[u8], with_info: bool, found: &mut Vec<Found>) -> usize {
    let mut i = 0;
    while i < b.len() {
        match b[i..].iter().position(|x| *x == ERROR_TOKEN || (with_info && *x == INFO_TOKEN)) {
            None => return b.len(),
            Some(k) => i += k,
        }
        match token_at(&b[i..], with_info) {
            Token::Valid(f, n) => {
                found.push(f);
                i += n;
            }
            Token::Incomplete => return i,
            Token::No => i += 1,
        }
    }
    b.len()
}

impl Framer {
    /// A framer that also reports INFO tokens (tests compare them with tshark's).
    pub fn with_info() -> Framer {
        Framer { with_info: true, ..Default::default() }
    }

    fn scan_chunk(&mut self, chunk: &[u8], found: &mut Vec<Found>) {
        if self.carry.is_empty() {
            let keep = scan(chunk, self.with_info, found);
            if keep < chunk.len() {
                self.carry.push(&chunk[keep..], MAX_MESSAGE);
            }
        } else {
            self.carry.push(chunk, MAX_MESSAGE);
            let keep = scan(self.carry.as_slice(), self.with_info, found);
            self.carry.consume(keep);
        }
        if self.carry.len() > MAX_MESSAGE {
            self.carry.clear();
        }
    }
}

impl ErrorFramer for Framer {
    fn feed(&mut self, p: &[u8], found: &mut Vec<Found>) {
        let mut i = 0;
        while i < p.len() {
            if self.left == 0 {
                let Some(h) = self.hdr.feed(p, &mut i) else { return };
                let len = u16::from_be_bytes([h[2], h[3]]) as usize;
                if len < 8 || h[0] == 0 || h[0] > 0x12 {
                    // Not a TDS header: out of step until the next gap or connection.
                    self.carry.clear();
                    return;
                }
                self.left = len - 8;
                self.scan = h[0] == TABULAR_RESULT;
                self.eom = h[1] & EOM != 0;
                if self.left == 0 {
                    continue;
                }
            }
            let n = self.left.min(p.len() - i);
            let chunk = &p[i..i + n];
            i += n;
            self.left -= n;
            if self.scan {
                self.scan_chunk(chunk, found);
            }
            if self.left == 0 && self.eom {
                self.carry.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_token(number: u32, class: u8, msg: &str) -> Vec<u8> {
        let m: Vec<u8> = msg.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let srv: Vec<u8> = "SQL1".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let mut v = number.to_le_bytes().to_vec();
        v.push(51); // state
        v.push(class);
        v.extend_from_slice(&(msg.encode_utf16().count() as u16).to_le_bytes());
        v.extend(m);
        v.push(4);
        v.extend(srv);
        v.push(0); // no procedure
        v.extend_from_slice(&1u32.to_le_bytes());
        let mut t = vec![ERROR_TOKEN];
        t.extend_from_slice(&(v.len() as u16).to_le_bytes());
        t.extend(v);
        t
    }

    fn packets(tokens: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let chunks: Vec<&[u8]> = tokens.chunks(size).collect();
        for (k, c) in chunks.iter().enumerate() {
            let status = if k + 1 == chunks.len() { EOM } else { 0 };
            out.extend_from_slice(&[TABULAR_RESULT, status]);
            out.extend_from_slice(&((c.len() + 8) as u16).to_be_bytes());
            out.extend_from_slice(&[0, 52, k as u8 + 1, 0]);
            out.extend_from_slice(c);
        }
        out
    }

    #[test]
    fn deadlock_victim_across_packets_and_segments() {
        let msg = "Transaction (Process ID 52) was deadlocked on lock resources with another process and has been chosen as the deadlock victim. Rerun the transaction.";
        let mut tokens = vec![0xfd, 0x10, 0, 0xc1, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // DONE
        tokens.extend(error_token(1205, 13, msg));
        tokens.extend([0xfd, 0x02, 0, 0xc1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for size in [16, 64, 4096] {
            let stream = packets(&tokens, size);
            for cut in (0..stream.len()).step_by(7) {
                let mut f = Framer::default();
                let mut found = Vec::new();
                f.feed(&stream[..cut], &mut found);
                f.feed(&stream[cut..], &mut found);
                assert_eq!(found.len(), 1, "size {size} cut {cut}");
                assert_eq!(found[0].code, "1205");
                assert_eq!(found[0].message, msg);
            }
        }
    }

    #[test]
    fn random_bytes_with_0xaa_are_not_errors() {
        let mut found = Vec::new();
        let mut data = vec![0xaa; 64];
        data.extend((0..=255u8).cycle().take(3000));
        Framer::default().feed(&packets(&data, 512), &mut found);
        assert!(found.is_empty());
    }
}

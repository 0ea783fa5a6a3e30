//! SNMP v1 and v2c (RFC 1157, 3416) over UDP, on any port: the community string, which is the
//! password of these versions. A datagram is SNMP when it has the message's shape — SEQUENCE {
//! version 0 or 1, community OCTET STRING, a PDU [0]..[8] } — whatever its ports.

use crate::capture::mask::Masks;

/// A BER length at `i`: (content start, length).
fn len_at(p: &[u8], i: usize) -> Option<(usize, usize)> {
    let l0 = *p.get(i)? as usize;
    if l0 < 0x80 {
        return Some((i + 1, l0));
    }
    let n = l0 & 0x7f;
    if n == 0 || n > 2 {
        return None;
    }
    let mut len = 0;
    for k in 0..n {
        len = (len << 8) | *p.get(i + 1 + k)? as usize;
    }
    Some((i + 1 + n, len))
}

/// Where the community is in a v1/v2c message (offsets in `p`).
pub fn community(p: &[u8]) -> Option<(usize, usize)> {
    if p.first() != Some(&0x30) {
        return None;
    }
    let (c, total) = len_at(p, 1)?;
    if c + total != p.len() || p.get(c..c + 3)? != [0x02, 0x01, 0x00] && p.get(c..c + 3)? != [0x02, 0x01, 0x01] {
        return None;
    }
    if *p.get(c + 3)? != 0x04 {
        return None;
    }
    let (s, n) = len_at(p, c + 4)?;
    let pdu = *p.get(s + n)?;
    (0xa0..=0xa8).contains(&pdu).then_some((s, s + n))
}

/// The community of one datagram, as masks from offset 0.
pub fn secret_spans(p: &[u8], out: &mut Masks) {
    if let Some((a, b)) = community(p) {
        out.add(a, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2c_get_community() {
        // version 1 (v2c), community "public", GetRequest [0] with an empty body.
        let p = [0x30, 0x0d, 0x02, 0x01, 0x01, 0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', 0xa0, 0x00];
        assert_eq!(community(&p), Some((7, 13)));
        for cut in 0..p.len() {
            let _ = community(&p[..cut]);
        }
        assert_eq!(community(b"\x30\x03\x02\x01\x03"), None, "v3 has no community");
    }
}

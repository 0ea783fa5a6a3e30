//! DNS messages (RFC 1035 §4.1), for the `dns.*` filter fields: header flags and the first
//! question's name. Also mDNS (5353) and LLMNR (5355), which Wireshark shows with the same
//! `dns.*` fields under their own protocol names.
//!
//! Over TCP, messages are length-prefixed; one split across segments is put back together
//! ([`DnsTcp`], in the flow) and shown in the frame completing it, as Wireshark does. The
//! first question's type and the answer count come with the name (the diff names exchanges
//! by them).

use super::join::Join;
use super::{Here, TcpSeg};
use crate::decode::{Decoded, Transport};

/// Which protocol name the message is shown under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dns,
    Mdns,
    Llmnr,
}

impl Kind {
    pub fn for_ports(a: u16, b: u16) -> Option<Kind> {
        let has = |p| a == p || b == p;
        if has(53) {
            Some(Kind::Dns)
        } else if has(5353) {
            Some(Kind::Mdns)
        } else if has(5355) {
            Some(Kind::Llmnr)
        } else {
            None
        }
    }
}

/// Longest name text kept (RFC 1035 allows 255 octets on the wire).
pub const MAX_NAME: usize = 255;

#[derive(Clone, Copy, Debug)]
pub struct DnsInfo {
    pub kind: Kind,
    /// The header was complete (12 bytes): flags are known.
    pub has_header: bool,
    pub response: bool,
    pub opcode: u8,
    pub rcode: u8,
    pub id: u16,
    pub questions: u16,
    pub answers: u16,
    /// The first question's type, if it could be read.
    pub qtype: Option<u16>,
    name: [u8; MAX_NAME],
    name_len: u8,
    has_name: bool,
}

impl DnsInfo {
    /// The first question's name, dotted (`<Root>` for the root), if it could be read.
    pub fn qname(&self) -> Option<&[u8]> {
        self.has_name.then(|| &self.name[..self.name_len as usize])
    }
}

/// Parses one message. `None` only for an empty payload (no DNS at all).
pub fn parse(m: &[u8], kind: Kind) -> Option<DnsInfo> {
    if m.is_empty() {
        return None;
    }
    let mut i = DnsInfo {
        kind,
        has_header: false,
        response: false,
        opcode: 0,
        rcode: 0,
        id: 0,
        questions: 0,
        answers: 0,
        qtype: None,
        name: [0; MAX_NAME],
        name_len: 0,
        has_name: false,
    };
    if m.len() < 12 {
        return Some(i);
    }
    let flags = u16::from_be_bytes([m[2], m[3]]);
    i.has_header = true;
    i.response = flags & 0x8000 != 0;
    i.opcode = ((flags >> 11) & 0xf) as u8;
    i.rcode = (flags & 0xf) as u8;
    i.id = u16::from_be_bytes([m[0], m[1]]);
    i.questions = u16::from_be_bytes([m[4], m[5]]);
    i.answers = u16::from_be_bytes([m[6], m[7]]);
    if i.questions > 0 {
        if let Some(n) = read_name(m, 12, &mut i.name) {
            i.name_len = n as u8;
            i.has_name = true;
        }
        i.qtype = qtype(m);
    }
    Some(i)
}

/// A TCP segment holding one or more whole length-prefixed messages; the first is returned.
pub fn parse_tcp_segment(p: &[u8], kind: Kind) -> Option<DnsInfo> {
    let mut off = 0;
    let mut first = None;
    while off < p.len() {
        let len = u16::from_be_bytes([*p.get(off)?, *p.get(off + 1)?]) as usize;
        let msg = p.get(off + 2..off + 2 + len)?;
        if first.is_none() {
            first = parse(msg, kind);
        }
        off += 2 + len;
    }
    first
}

/// The first question's type: the two bytes after its name.
fn qtype(p: &[u8]) -> Option<u16> {
    let mut i = 12;
    loop {
        let l = *p.get(i)? as usize;
        if l == 0 {
            i += 1;
            break;
        }
        if l & 0xc0 == 0xc0 {
            i += 2;
            break;
        }
        i += 1 + l;
    }
    Some(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]))
}

/// DNS over TCP: messages joined per direction.
#[derive(Debug, Default)]
pub struct DnsTcp {
    join: [Join; 2],
}

impl DnsTcp {
    pub fn segment(&mut self, s: TcpSeg<'_>, d: &Decoded<'_>, here: &mut Here<'_>) -> bool {
        if s.retrans || s.seg.data.is_empty() {
            return false;
        }
        let Transport::Tcp(t) = d.transport else { return false };
        let Some(kind) = Kind::for_ports(t.src_port, t.dst_port) else { return false };
        let j = &mut self.join[usize::from(!s.from_client)];
        here.out.dns = j.feed(s.seg.seq, s.seg.seg_len, s.seg.data, |b| parse_tcp_segment(b, kind));
        false
    }
}

/// Reads a possibly compressed name at `off` into `out` as dotted text; returns its length.
/// Compression pointers must point backwards and are followed at most 16 times (a loop in a
/// hostile message cannot spin).
fn read_name(m: &[u8], mut off: usize, out: &mut [u8; MAX_NAME]) -> Option<usize> {
    let mut n = 0usize;
    let mut jumps = 0;
    let mut first = true;
    loop {
        let len = *m.get(off)? as usize;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    break;
                }
                let label = m.get(off + 1..off + 1 + len)?;
                if !first && n < MAX_NAME {
                    out[n] = b'.';
                    n += 1;
                }
                first = false;
                for &c in label {
                    if n < MAX_NAME {
                        out[n] = c;
                        n += 1;
                    }
                }
                off += 1 + len;
            }
            0xc0 => {
                let target = ((len & 0x3f) << 8) | *m.get(off + 1)? as usize;
                jumps += 1;
                if jumps > 16 || target >= off {
                    return None;
                }
                off = target;
            }
            _ => return None, // extended label types (RFC 6891 §5) are not names we can show
        }
    }
    if first {
        let root = b"<Root>";
        out[..root.len()].copy_from_slice(root);
        n = root.len();
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[&str], flags: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34];
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        for l in name {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        m
    }

    #[test]
    fn query_and_response_fields() {
        let q = parse(&query(&["intranet", "branch", "lan"], 0x0100), Kind::Dns).unwrap();
        assert!(!q.response && q.has_header);
        assert_eq!(q.qname(), Some(&b"intranet.branch.lan"[..]));
        let r = parse(&query(&["nope", "lan"], 0x8183), Kind::Dns).unwrap();
        assert!(r.response);
        assert_eq!(r.rcode, 3);
        let root = parse(&query(&[], 0x0100), Kind::Dns).unwrap();
        assert_eq!(root.qname(), Some(&b"<Root>"[..]));
    }

    #[test]
    fn truncated_and_hostile_messages() {
        let m = query(&["a", "b"], 0x0100);
        for cut in 1..m.len() {
            let i = parse(&m[..cut], Kind::Dns).unwrap();
            assert_eq!(i.has_header, cut >= 12);
            assert!(i.qname().is_none() || cut >= 17, "cut {cut}");
        }
        // A pointer loop and a forward pointer are refused, not followed.
        let mut bad = query(&[], 0x0100);
        bad[12] = 0xc0;
        bad.insert(13, 12);
        assert!(parse(&bad, Kind::Dns).unwrap().qname().is_none());
    }

    #[test]
    fn tcp_segments_must_hold_whole_messages() {
        let m = query(&["ripe", "net"], 0x0100);
        let mut seg = (m.len() as u16).to_be_bytes().to_vec();
        seg.extend_from_slice(&m);
        assert!(parse_tcp_segment(&seg, Kind::Dns).is_some());
        assert!(parse_tcp_segment(&seg[..seg.len() - 1], Kind::Dns).is_none());
        assert!(parse_tcp_segment(&seg[1..], Kind::Dns).is_none());
    }
}

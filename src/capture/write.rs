//! Writing frames as pcapng: the evidence attached to alert mails and offered for download.
//! One section, one interface per link type, Enhanced Packet Blocks with nanosecond stamps.

use crate::rules::alerts::Evidence;

fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let pad = (4 - body.len() % 4) % 4;
    let len = (12 + body.len() + pad) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out.extend(std::iter::repeat_n(0u8, pad));
    out.extend_from_slice(&len.to_le_bytes());
}

/// The frames as a pcapng file (little-endian, `if_tsresol` = 9).
pub fn pcapng(frames: &[Evidence]) -> Vec<u8> {
    let mut out = Vec::new();
    // Section header: byte-order magic, version 1.0, section length unknown.
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut links: Vec<u16> = Vec::new();
    for f in frames {
        if !links.contains(&f.link) {
            links.push(f.link);
            let mut idb = Vec::new();
            idb.extend_from_slice(&f.link.to_le_bytes());
            idb.extend_from_slice(&0u16.to_le_bytes());
            idb.extend_from_slice(&0u32.to_le_bytes()); // snaplen: unlimited
                                                        // if_tsresol = 9 (nanoseconds), then end of options.
            idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
            block(&mut out, 1, &idb);
        }
    }
    for f in frames {
        let iface = links.iter().position(|l| *l == f.link).unwrap_or(0) as u32;
        let ns = f.ts.0.max(0) as u64;
        // Evidence leaves the box (mail, download): credentials are overwritten here, the one
        // place every evidence file is written.
        let mut data = f.data.clone();
        crate::redact::frame(f.link, f.orig_len, f.ts, &mut data);
        let mut epb = Vec::with_capacity(20 + data.len());
        epb.extend_from_slice(&iface.to_le_bytes());
        epb.extend_from_slice(&((ns >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ns as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&f.orig_len.max(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&data);
        block(&mut out, 6, &epb);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::file::FileSource;
    use crate::capture::PacketSource;
    use crate::time::Ts;

    #[test]
    fn our_reader_reads_back_what_we_write() {
        let frames = vec![
            Evidence { ts: Ts(1_700_000_000_123_456_789), link: 1, orig_len: 1514, data: vec![1, 2, 3, 4, 5] },
            Evidence { ts: Ts(1_700_000_001_000_000_000), link: 101, orig_len: 3, data: vec![0x45, 0, 0] },
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.pcapng");
        std::fs::write(&path, pcapng(&frames)).unwrap();
        let mut src = FileSource::open(&path).unwrap();
        let a = src.next_packet().unwrap().unwrap();
        assert_eq!((a.ts, a.orig_len, a.link.0, a.data), (frames[0].ts, 1514, 1, &[1u8, 2, 3, 4, 5][..]));
        let b = src.next_packet().unwrap().unwrap();
        assert_eq!((b.ts, b.link.0, b.data.len()), (frames[1].ts, 101, 3));
        assert!(src.next_packet().unwrap().is_none());
    }
}

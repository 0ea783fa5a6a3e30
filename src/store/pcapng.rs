//! Writing frames as pcapng: the pcap ring, the evidence windows cut from it, and the evidence
//! attached to alert mails. One section, one interface per link type, Enhanced Packet Blocks
//! with nanosecond stamps. The frames given are written as they are: their credentials were
//! masked by whoever kept them (the pipeline, from the analyzers' masks).

use crate::capture::Evidence;
use crate::time::Ts;

fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let pad = (4 - body.len() % 4) % 4;
    let len = (12 + body.len() + pad) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out.extend(std::iter::repeat_n(0u8, pad));
    out.extend_from_slice(&len.to_le_bytes());
}

/// Block type of an Enhanced Packet Block.
pub const EPB: u32 = 6;

/// A section header block: byte-order magic, version 1.0, section length unknown.
pub fn section_header(out: &mut Vec<u8>) {
    let mut shb = Vec::with_capacity(16);
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(out, 0x0a0d_0d0a, &shb);
}

/// An interface description block for `link` with nanosecond time stamps (`if_tsresol` = 9).
pub fn interface_block(out: &mut Vec<u8>, link: u16) {
    let mut idb = Vec::with_capacity(20);
    idb.extend_from_slice(&link.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&0u32.to_le_bytes()); // snaplen: unlimited
    idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
    block(out, 1, &idb);
}

/// Bytes [`packet_block`] appends for `caplen` captured bytes.
pub fn packet_block_len(caplen: usize) -> usize {
    32 + caplen.div_ceil(4) * 4
}

/// Appends an Enhanced Packet Block.
pub fn packet_block(out: &mut Vec<u8>, iface: u32, ts: Ts, orig_len: u32, data: &[u8]) {
    let ns = ts.0.max(0) as u64;
    let pad = (4 - data.len() % 4) % 4;
    let len = (32 + data.len() + pad) as u32;
    out.extend_from_slice(&EPB.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&iface.to_le_bytes());
    out.extend_from_slice(&((ns >> 32) as u32).to_le_bytes());
    out.extend_from_slice(&(ns as u32).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out.extend(std::iter::repeat_n(0u8, pad));
    out.extend_from_slice(&len.to_le_bytes());
}

/// A pcapng file written frame by frame: one section, one interface per link type, described
/// when first used.
pub struct Writer<W: std::io::Write> {
    out: W,
    links: Vec<u16>,
    buf: Vec<u8>,
    pub frames: u64,
    pub bytes: u64,
}

impl<W: std::io::Write> Writer<W> {
    pub fn new(mut out: W) -> std::io::Result<Writer<W>> {
        let mut buf = Vec::with_capacity(2048);
        section_header(&mut buf);
        out.write_all(&buf)?;
        let bytes = buf.len() as u64;
        Ok(Writer { out, links: Vec::new(), buf, frames: 0, bytes })
    }

    pub fn write(&mut self, link: u16, ts: Ts, orig_len: u32, data: &[u8]) -> std::io::Result<()> {
        self.buf.clear();
        let iface = match self.links.iter().position(|l| *l == link) {
            Some(i) => i,
            None => {
                interface_block(&mut self.buf, link);
                self.links.push(link);
                self.links.len() - 1
            }
        } as u32;
        packet_block(&mut self.buf, iface, ts, orig_len, data);
        self.out.write_all(&self.buf)?;
        self.frames += 1;
        self.bytes += self.buf.len() as u64;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The frames as a pcapng file (little-endian, `if_tsresol` = 9).
pub fn pcapng(frames: &[Evidence]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new()).expect("writing to memory");
    for f in frames {
        w.write(f.link, f.ts, f.orig_len, &f.data).expect("writing to memory");
    }
    w.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::file::FileSource;
    use crate::capture::PacketSource;

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

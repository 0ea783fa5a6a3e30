//! pcap and pcapng file reader.
//!
//! Own reader rather than libpcap's so that damage can be reported with the byte offset where it
//! starts, and so that frames are handed out as slices of one reusable buffer (no copy, no
//! allocation per packet). Supports classic pcap (both byte orders, micro- and nanosecond
//! variants) and pcapng (several sections and interfaces, each with its own link type, time
//! resolution and offset; Enhanced, Simple and obsolete Packet Blocks).

use super::{CaptureError, LinkType, PacketSource, RawPacket};
use crate::time::Ts;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Largest frame accepted. libpcap and Wireshark use 262144 for ordinary link types; a larger
/// length in a record header means the file is damaged, not that the frame is huge.
pub const MAX_FRAME_LEN: u32 = 262_144;
/// Largest pcapng block accepted (Wireshark's limit too); bounds the read buffer.
const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;
/// Interfaces per pcapng section. Real files have a handful; the bound stops a hostile file from
/// growing the table without limit.
const MAX_INTERFACES: usize = 1024;
const READ_CHUNK: usize = 1 << 20;

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    /// Timestamp units: `Pow10(6)` = microseconds, `Pow2(k)` = 2^-k seconds.
    resolution: Resolution,
    offset_secs: i64,
}

#[derive(Clone, Copy, Debug)]
enum Resolution {
    Pow10(u8),
    Pow2(u8),
}

impl Resolution {
    fn to_ts(self, units: u64, offset_secs: i64) -> Ts {
        // The usual resolutions (µs, ns) in 64 bits; i128 only when that could overflow.
        const POW10: [i64; 10] =
            [1_000_000_000, 100_000_000, 10_000_000, 1_000_000, 100_000, 10_000, 1_000, 100, 10, 1];
        if let Resolution::Pow10(k @ 0..=9) = self {
            let fast = i64::try_from(units)
                .ok()
                .and_then(|u| u.checked_mul(POW10[k as usize]))
                .and_then(|n| n.checked_add(offset_secs.checked_mul(1_000_000_000)?));
            if let Some(n) = fast {
                return Ts(n);
            }
        }
        let nanos: i128 = match self {
            Resolution::Pow10(k) if k <= 9 => units as i128 * 10i128.pow(9 - k as u32),
            Resolution::Pow10(k) => units as i128 / 10i128.pow((k as u32 - 9).min(38)),
            Resolution::Pow2(k) => ((units as i128) * 1_000_000_000) >> k.min(100),
        };
        let nanos = nanos + offset_secs as i128 * 1_000_000_000;
        Ts(nanos.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }
}

#[derive(Debug)]
enum Format {
    Pcap { swap: bool, nanos: bool, link: LinkType },
    Pcapng { swap: bool, interfaces: Vec<Interface> },
}

/// Where the next frame lies in the buffer (the frame itself is borrowed only at the end).
struct Meta {
    ts: Ts,
    orig_len: u32,
    link: LinkType,
    interface: u32,
    start: usize,
    len: usize,
}

/// Reads frames from a pcap or pcapng file. See the module docs.
pub struct FileSource {
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// File offset of `buf[0]`.
    base: u64,
    format: Format,
    frame: u64,
    finished: bool,
    file_len: Option<u64>,
}

impl FileSource {
    /// Opens a capture file; gzip-compressed ones (.pcap.gz, .pcapng.gz) are read as they are,
    /// like Wireshark does (offsets in messages are then offsets in the uncompressed data).
    /// Pipes and FIFOs are read too (`tcpdump -w - | mirrorwatch analyze /dev/stdin`): the
    /// bytes read to tell gzip are put back in front rather than sought back to.
    pub fn open(path: &Path) -> Result<FileSource, CaptureError> {
        let io = |e: std::io::Error| CaptureError::Io { offset: 0, reason: e.to_string() };
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        let mut magic = [0u8; 2];
        let mut n = 0;
        while n < 2 {
            match file.read(&mut magic[n..]).map_err(io)? {
                0 => break,
                k => n += k,
            }
        }
        let reader = std::io::Cursor::new(magic[..n].to_vec()).chain(file);
        if n == 2 && magic == [0x1f, 0x8b] {
            let gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(reader));
            return FileSource::from_reader(Box::new(gz));
        }
        let mut src = FileSource::from_reader(Box::new(reader))?;
        src.file_len = len;
        Ok(src)
    }

    pub fn from_reader(reader: Box<dyn Read + Send>) -> Result<FileSource, CaptureError> {
        let mut src = FileSource {
            reader,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            eof: false,
            base: 0,
            format: Format::Pcap { swap: false, nanos: false, link: LinkType::ETHERNET },
            frame: 0,
            finished: false,
            file_len: None,
        };
        src.read_file_header()?;
        Ok(src)
    }

    pub fn file_len(&self) -> Option<u64> {
        self.file_len
    }

    fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    fn available(&self) -> usize {
        self.end - self.start
    }

    /// Makes at least `n` bytes available at `buf[start..]`; false if the file ends first.
    fn fill(&mut self, n: usize) -> Result<bool, CaptureError> {
        if self.available() >= n {
            return Ok(true);
        }
        if self.start + n > self.buf.len() {
            // Compact: move the unread tail to the front, growing only for blocks larger than
            // the chunk (bounded by MAX_BLOCK_LEN through the callers).
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
            if n > self.buf.len() {
                self.buf.resize(n.next_power_of_two(), 0);
            }
        }
        while self.available() < n && !self.eof {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CaptureError::Io { offset: self.base + self.end as u64, reason: e.to_string() }),
            }
        }
        Ok(self.available() >= n)
    }

    fn truncated(&self, needed: usize) -> CaptureError {
        CaptureError::Truncated { offset: self.offset(), needed: needed as u64, available: self.available() as u64 }
    }

    fn read_file_header(&mut self) -> Result<(), CaptureError> {
        if !self.fill(24)? {
            if self.available() >= 4 {
                let magic = u32::from_le_bytes(self.buf[0..4].try_into().unwrap_or_default());
                if !matches!(magic, 0xa1b2c3d4 | 0xd4c3b2a1 | 0xa1b23c4d | 0x4d3cb2a1 | 0x0a0d0d0a) {
                    return Err(CaptureError::BadMagic { magic: magic.swap_bytes() });
                }
            }
            return Err(CaptureError::ShortHeader { len: self.available() as u64 });
        }
        let h = &self.buf[self.start..self.start + 24];
        let magic_le = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (swap, nanos) = match magic_le {
            0xa1b2c3d4 => (false, false),
            0xd4c3b2a1 => (true, false),
            0xa1b23c4d => (false, true),
            0x4d3cb2a1 => (true, true),
            0x0a0d0d0a => {
                self.format = Format::Pcapng { swap: false, interfaces: Vec::new() };
                // The section header block is read as an ordinary block.
                return Ok(());
            }
            other => return Err(CaptureError::BadMagic { magic: other.swap_bytes() }),
        };
        let rd32 = |b: &[u8]| {
            let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if swap {
                v.swap_bytes()
            } else {
                v
            }
        };
        // The link type is the low 16 bits; the upper bits may carry FCS information.
        let link = LinkType((rd32(&h[20..24]) & 0xffff) as u16);
        self.format = Format::Pcap { swap, nanos, link };
        self.start += 24;
        Ok(())
    }

    fn next_pcap(&mut self, swap: bool, nanos: bool, link: LinkType) -> Result<Option<Meta>, CaptureError> {
        if !self.fill(16)? {
            if self.available() == 0 {
                self.finished = true;
                return Ok(None);
            }
            return Err(self.truncated(16));
        }
        let h = &self.buf[self.start..self.start + 16];
        let rd = |i: usize| {
            let v = u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
            if swap {
                v.swap_bytes()
            } else {
                v
            }
        };
        let (sec, frac, incl, orig) = (rd(0), rd(4), rd(8), rd(12));
        if incl > MAX_FRAME_LEN {
            return Err(CaptureError::BadRecord {
                offset: self.offset(),
                reason: format!("captured length {incl} exceeds the maximum of {MAX_FRAME_LEN}"),
            });
        }
        let total = 16 + incl as usize;
        if !self.fill(total)? {
            return Err(self.truncated(total));
        }
        let ts = if nanos {
            Ts::from_secs_nanos(sec as i64, frac as i64)
        } else {
            Ts::from_secs_nanos(sec as i64, frac as i64 * 1000)
        };
        let data_start = self.start + 16;
        self.start += total;
        self.frame += 1;
        Ok(Some(Meta { ts, orig_len: orig.max(incl), link, interface: 0, start: data_start, len: incl as usize }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Meta>, CaptureError> {
        loop {
            if !self.fill(12)? {
                if self.available() == 0 {
                    self.finished = true;
                    return Ok(None);
                }
                return Err(self.truncated(12));
            }
            let s = self.start;
            let raw_type = u32::from_le_bytes(self.buf[s..s + 4].try_into().unwrap_or_default());
            if raw_type == 0x0a0d0d0a {
                self.read_section_header()?;
                continue;
            }
            let swap = matches!(self.format, Format::Pcapng { swap: true, .. });
            let rd = |b: &[u8], i: usize| {
                let v = u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                if swap {
                    v.swap_bytes()
                } else {
                    v
                }
            };
            let btype = rd(&self.buf[s..], 0);
            let blen = rd(&self.buf[s..], 4);
            if !(12..=MAX_BLOCK_LEN).contains(&blen) {
                return Err(CaptureError::BadRecord {
                    offset: self.offset(),
                    reason: format!("pcapng block type {btype:#x} has impossible length {blen}"),
                });
            }
            if !self.fill(blen as usize)? {
                return Err(self.truncated(blen as usize));
            }
            let block_off = self.offset();
            let s = self.start;
            let body_range = s + 8..s + blen as usize - 4;
            self.start += blen as usize;
            let body = &self.buf[body_range.clone()];
            match btype {
                1 => {
                    let iface = parse_idb(body, swap)
                        .map_err(|reason| CaptureError::BadRecord { offset: block_off, reason })?;
                    if let Format::Pcapng { interfaces, .. } = &mut self.format {
                        if interfaces.len() >= MAX_INTERFACES {
                            return Err(CaptureError::BadRecord {
                                offset: block_off,
                                reason: format!("more than {MAX_INTERFACES} interfaces in one section"),
                            });
                        }
                        interfaces.push(iface);
                    }
                }
                2 | 3 | 6 => {
                    let interfaces: &[Interface] = match &self.format {
                        Format::Pcapng { interfaces, .. } => interfaces,
                        Format::Pcap { .. } => &[],
                    };
                    let bad = |reason: String| CaptureError::BadRecord { offset: block_off, reason };
                    let (iface_id, ts_units, data_off, caplen, orig) = match btype {
                        6 => {
                            if body.len() < 20 {
                                return Err(bad("enhanced packet block too short".into()));
                            }
                            let units = ((rd(body, 4) as u64) << 32) | rd(body, 8) as u64;
                            (rd(body, 0), Some(units), 20usize, rd(body, 12), rd(body, 16))
                        }
                        2 => {
                            if body.len() < 20 {
                                return Err(bad("packet block too short".into()));
                            }
                            let id = if swap {
                                u16::from_be_bytes([body[0], body[1]])
                            } else {
                                u16::from_le_bytes([body[0], body[1]])
                            };
                            let units = ((rd(body, 4) as u64) << 32) | rd(body, 8) as u64;
                            (id as u32, Some(units), 20usize, rd(body, 12), rd(body, 16))
                        }
                        _ => {
                            if body.len() < 4 {
                                return Err(bad("simple packet block too short".into()));
                            }
                            let orig = rd(body, 0);
                            let snap = interfaces.first().map(|i| i.snaplen).unwrap_or(0);
                            let mut cap = (body.len() - 4) as u32;
                            cap = cap.min(orig);
                            if snap != 0 {
                                cap = cap.min(snap);
                            }
                            (0, None, 4usize, cap, orig)
                        }
                    };
                    let Some(iface) = interfaces.get(iface_id as usize).copied() else {
                        return Err(bad(format!("packet refers to interface {iface_id}, which was not described")));
                    };
                    if caplen > MAX_FRAME_LEN {
                        return Err(bad(format!("captured length {caplen} exceeds the maximum of {MAX_FRAME_LEN}")));
                    }
                    if data_off + caplen as usize > body.len() {
                        return Err(bad(format!("captured length {caplen} does not fit in its block of {blen} bytes")));
                    }
                    let ts = ts_units.map(|u| iface.resolution.to_ts(u, iface.offset_secs)).unwrap_or_default();
                    self.frame += 1;
                    let data_start = body_range.start + data_off;
                    return Ok(Some(Meta {
                        ts,
                        orig_len: orig.max(caplen),
                        link: iface.link,
                        interface: iface_id,
                        start: data_start,
                        len: caplen as usize,
                    }));
                }
                _ => {} // statistics, name resolution, custom blocks: nothing the pipeline needs
            }
        }
    }

    fn read_section_header(&mut self) -> Result<(), CaptureError> {
        if !self.fill(12)? {
            return Err(self.truncated(12));
        }
        let s = self.start;
        let bom = u32::from_le_bytes(self.buf[s + 8..s + 12].try_into().unwrap_or_default());
        let swap = match bom {
            0x1a2b3c4d => false,
            0x4d3c2b1a => true,
            other => {
                return Err(CaptureError::BadRecord {
                    offset: self.offset(),
                    reason: format!("pcapng section header has unknown byte-order magic {other:#010x}"),
                })
            }
        };
        let raw_len = u32::from_le_bytes(self.buf[s + 4..s + 8].try_into().unwrap_or_default());
        let blen = if swap { raw_len.swap_bytes() } else { raw_len };
        if !(28..=MAX_BLOCK_LEN).contains(&blen) {
            return Err(CaptureError::BadRecord {
                offset: self.offset(),
                reason: format!("pcapng section header has impossible length {blen}"),
            });
        }
        if !self.fill(blen as usize)? {
            return Err(self.truncated(blen as usize));
        }
        self.start += blen as usize;
        // A new section starts a new interface table.
        self.format = Format::Pcapng { swap, interfaces: Vec::new() };
        Ok(())
    }
}

fn parse_idb(body: &[u8], swap: bool) -> Result<Interface, String> {
    if body.len() < 8 {
        return Err("interface description block too short".into());
    }
    let rd16 = |i: usize| {
        let v = u16::from_le_bytes([body[i], body[i + 1]]);
        if swap {
            v.swap_bytes()
        } else {
            v
        }
    };
    let rd32 = |i: usize| {
        let v = u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        if swap {
            v.swap_bytes()
        } else {
            v
        }
    };
    let mut iface =
        Interface { link: LinkType(rd16(0)), snaplen: rd32(4), resolution: Resolution::Pow10(6), offset_secs: 0 };
    // Options: (code u16, len u16, value padded to 4) until opt_endofopt or the end.
    let mut i = 8;
    while i + 4 <= body.len() {
        let code = rd16(i);
        let len = rd16(i + 2) as usize;
        let v = i + 4;
        if code == 0 || v + len > body.len() {
            break;
        }
        match (code, len) {
            (9, 1) => {
                let r = body[v];
                iface.resolution = if r & 0x80 != 0 { Resolution::Pow2(r & 0x7f) } else { Resolution::Pow10(r) };
            }
            (14, 8) => {
                let b: [u8; 8] = body[v..v + 8].try_into().unwrap_or_default();
                iface.offset_secs = if swap { i64::from_be_bytes(b) } else { i64::from_le_bytes(b) };
            }
            _ => {}
        }
        i = v + len.div_ceil(4) * 4;
    }
    Ok(iface)
}

impl PacketSource for FileSource {
    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        if self.finished {
            return Ok(None);
        }
        let r = match self.format {
            Format::Pcap { swap, nanos, link } => self.next_pcap(swap, nanos, link),
            Format::Pcapng { .. } => self.next_pcapng(),
        };
        match r {
            Ok(Some(m)) => Ok(Some(RawPacket {
                frame: self.frame,
                ts: m.ts,
                orig_len: m.orig_len,
                link: m.link,
                interface: m.interface,
                data: &self.buf[m.start..m.start + m.len],
            })),
            Ok(None) => Ok(None),
            Err(e) => {
                self.finished = true;
                Err(e)
            }
        }
    }

    fn is_finished(&self) -> bool {
        self.finished
    }

    fn position(&self) -> u64 {
        self.offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_header(snaplen: u32, link: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&snaplen.to_le_bytes());
        v.extend_from_slice(&link.to_le_bytes());
        v
    }

    fn record(v: &mut Vec<u8>, sec: u32, usec: u32, data: &[u8], orig: u32) {
        v.extend_from_slice(&sec.to_le_bytes());
        v.extend_from_slice(&usec.to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(&orig.to_le_bytes());
        v.extend_from_slice(data);
    }

    fn source(bytes: Vec<u8>) -> Result<FileSource, CaptureError> {
        FileSource::from_reader(Box::new(std::io::Cursor::new(bytes)))
    }

    #[test]
    fn reads_pcap_records_and_reports_a_cut_record_with_its_offset() {
        let mut f = pcap_header(65535, 1);
        record(&mut f, 10, 5, &[1, 2, 3, 4], 4);
        record(&mut f, 11, 6, &[5, 6], 60);
        let whole = f.len();
        record(&mut f, 12, 7, &[9; 10], 10);
        f.truncate(whole + 20); // second-to-last byte of the third record's data missing
        let mut s = source(f).unwrap();
        let p = s.next_packet().unwrap().unwrap();
        assert_eq!((p.frame, p.data, p.ts, p.link), (1, &[1u8, 2, 3, 4][..], Ts(10_000_005_000), LinkType::ETHERNET));
        let p = s.next_packet().unwrap().unwrap();
        assert_eq!((p.frame, p.data.len(), p.orig_len), (2, 2, 60));
        let e = s.next_packet().unwrap_err();
        assert_eq!(e, CaptureError::Truncated { offset: whole as u64, needed: 26, available: 20 });
        assert!(s.next_packet().unwrap().is_none());
    }

    #[test]
    fn every_truncation_length_of_a_pcap_gives_an_error_not_a_panic() {
        let mut f = pcap_header(65535, 1);
        record(&mut f, 1, 0, &[0xab; 30], 30);
        for cut in 0..f.len() {
            let r = source(f[..cut].to_vec()).and_then(|mut s| s.next_packet().map(|p| p.is_some()));
            if cut == 24 {
                assert_eq!(r, Ok(false), "header only is an empty capture");
            } else {
                assert!(r.is_err(), "cut at {cut} must be an error");
            }
        }
    }

    #[test]
    fn rejects_bad_magic_and_huge_records() {
        let e = source(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()).err().unwrap();
        assert!(matches!(e, CaptureError::BadMagic { .. }), "{e}");
        let mut f = pcap_header(65535, 1);
        f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        let e = source(f).unwrap().next_packet().unwrap_err();
        assert!(matches!(e, CaptureError::BadRecord { offset: 24, .. }), "{e}");
    }

    fn block(t: u32, body: &[u8]) -> Vec<u8> {
        let len = 12 + body.len().div_ceil(4) * 4;
        let mut v = Vec::new();
        v.extend_from_slice(&t.to_le_bytes());
        v.extend_from_slice(&(len as u32).to_le_bytes());
        v.extend_from_slice(body);
        v.resize(len - 4, 0);
        v.extend_from_slice(&(len as u32).to_le_bytes());
        v
    }

    #[test]
    fn reads_pcapng_with_two_interfaces_and_nanosecond_resolution() {
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1a2b3c4du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let mut f = block(0x0a0d0d0a, &shb);
        let mut idb0 = vec![1, 0, 0, 0, 0, 0, 1, 0];
        idb0.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]); // tsresol = 10^-9
        f.extend(block(1, &idb0));
        f.extend(block(1, &[101, 0, 0, 0, 0, 0, 1, 0])); // raw IP, default microseconds
        let epb = |iface: u32, units: u64, data: &[u8]| {
            let mut b = Vec::new();
            b.extend_from_slice(&iface.to_le_bytes());
            b.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
            b.extend_from_slice(&(units as u32).to_le_bytes());
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(data);
            block(6, &b)
        };
        f.extend(epb(0, 1_500_000_000, &[1, 2, 3]));
        f.extend(block(5, &[0; 16])); // interface statistics: skipped
        f.extend(epb(1, 2_000_001, &[0x45]));
        let mut s = source(f.clone()).unwrap();
        let p = s.next_packet().unwrap().unwrap();
        assert_eq!((p.frame, p.ts, p.link, p.data.len()), (1, Ts(1_500_000_000), LinkType::ETHERNET, 3));
        let p = s.next_packet().unwrap().unwrap();
        assert_eq!((p.frame, p.ts, p.link, p.interface), (2, Ts(2_000_001_000), LinkType::RAW, 1));
        assert!(s.next_packet().unwrap().is_none());
        // Every cut inside the last block is reported, after the first frame was delivered.
        for cut in f.len() - 30..f.len() {
            let mut s = source(f[..cut].to_vec()).unwrap();
            assert!(s.next_packet().unwrap().is_some());
            assert!(s.next_packet().is_err(), "cut {cut}");
        }
    }
}

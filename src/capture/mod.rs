//! Packet sources: where frames come from.
//!
//! This module owns the boundary between the outside world (a capture file or a live interface)
//! and the pipeline. A source hands out one [`RawPacket`] at a time, borrowed from its own
//! buffer, so reading allocates nothing per packet. Frame numbers are 1-based per file, as
//! Wireshark numbers them.
//!
//! Damage is reported, never hidden: a file that ends mid-record or holds an impossible record
//! yields [`CaptureError`] naming the byte offset, after every whole packet before it was handed
//! out.

pub mod file;
pub mod live;
pub mod mask;

use crate::time::Ts;

/// Link-layer type of a frame (LINKTYPE_* values of the pcap/pcapng formats).
/// Open newtype: unknown values are carried, not rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkType(pub u16);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    /// PPP, with or without HDLC-like framing (Wireshark also reads Cisco HDLC frames in it).
    pub const PPP: LinkType = LinkType(9);
    pub const PPP_HDLC: LinkType = LinkType(50);
    /// PPPoE session frames without their Ethernet header.
    pub const PPP_ETHER: LinkType = LinkType(51);
    pub const C_HDLC: LinkType = LinkType(104);
    /// NetBSD's HDLC framing: Cisco HDLC to Wireshark.
    pub const C_HDLC_NETBSD: LinkType = LinkType(112);
    pub const RAW: LinkType = LinkType(101);
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// Name as tshark/capinfos prints the encapsulation.
    pub fn name(self) -> &'static str {
        match self {
            LinkType::NULL => "null",
            LinkType::ETHERNET => "ether",
            LinkType::RAW | LinkType::IPV4 | LinkType::IPV6 => "rawip",
            LinkType::LOOP => "loop",
            LinkType::LINUX_SLL => "linux-sll",
            LinkType::LINUX_SLL2 => "linux-sll2",
            LinkType::PPP | LinkType::PPP_HDLC => "ppp",
            LinkType::PPP_ETHER => "pppoes",
            LinkType::C_HDLC | LinkType::C_HDLC_NETBSD => "chdlc",
            _ => "unknown",
        }
    }

    /// Maps libpcap's DLT values (which differ from LINKTYPE for a few raw-IP values) to LINKTYPE.
    pub fn from_dlt(dlt: i32) -> LinkType {
        match dlt {
            12 | 14 => LinkType::RAW,
            other => LinkType(u16::try_from(other).unwrap_or(u16::MAX)),
        }
    }
}

/// One captured frame kept beyond its packet (alert evidence), its credentials already masked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub ts: Ts,
    /// pcap link type of `data`.
    pub link: u16,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// One captured frame, borrowed from the source's buffer until the next call.
#[derive(Clone, Copy, Debug)]
pub struct RawPacket<'a> {
    /// 1-based frame number within its file (or since the start of a live capture).
    pub frame: u64,
    pub ts: Ts,
    /// Length on the wire; `data.len()` is the captured length.
    pub orig_len: u32,
    pub link: LinkType,
    /// pcapng interface index (0 for pcap and live captures).
    pub interface: u32,
    pub data: &'a [u8],
}

/// Why a capture file could not be read further. Offsets are from the start of the file.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CaptureError {
    #[error("not a pcap or pcapng file (magic {magic:#010x} at offset 0)")]
    BadMagic { magic: u32 },
    #[error("file is {len} bytes, too short for a capture file header")]
    ShortHeader { len: u64 },
    #[error("truncated record at offset {offset}: needs {needed} bytes, only {available} left")]
    Truncated { offset: u64, needed: u64, available: u64 },
    #[error("bad record at offset {offset}: {reason}")]
    BadRecord { offset: u64, reason: String },
    #[error("read error at offset {offset}: {reason}")]
    Io { offset: u64, reason: String },
    #[error("capture error: {0}")]
    Live(String),
}

/// Interface and kernel drop counters of a live source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DropStats {
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
}

/// Anything that yields frames. File and live sources implement it, so the pipeline has one loop.
pub trait PacketSource {
    /// Next frame, `Ok(None)` at a clean end (or, for live sources, when nothing arrived within
    /// the poll interval — check [`PacketSource::is_finished`]).
    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError>;
    /// True once the source can yield no more frames.
    fn is_finished(&self) -> bool;
    /// Bytes consumed so far (files) for progress display.
    fn position(&self) -> u64 {
        0
    }
    /// Drop counters, where the source has them.
    fn drops(&mut self) -> Option<DropStats> {
        None
    }
}

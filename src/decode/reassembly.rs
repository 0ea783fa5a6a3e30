//! IPv4/IPv6 fragment reassembly, bounded.
//!
//! Wireshark reassembles fragmented datagrams and decodes their transport (UDP, DNS…) in the
//! frame that completes the datagram; the filters and flows must see the same. Fragments are
//! rare on a LAN, so datagrams in progress are few: at most [`MAX_DATAGRAMS`] at once, each at
//! most 65,535 bytes (the IP limit), dropped after [`TIMEOUT_SECS`] of packet time (Linux's
//! `ipfrag_time`). A full table evicts the oldest datagram and counts it.

use std::net::IpAddr;

use super::Decoded;
use crate::time::{Ts, NANOS_PER_SEC};

/// Datagrams reassembled at once. With 64 KiB each this bounds the memory to 4 MiB.
pub const MAX_DATAGRAMS: usize = 64;
const MAX_DATAGRAM_LEN: u32 = 65_535;
/// Fragments per datagram (a 64 KiB datagram in 8-byte fragments would be 8192; real ones are
/// a few dozen at most). Bounds the range list.
const MAX_FRAGMENTS: usize = 128;
pub const TIMEOUT_SECS: i64 = 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

struct Datagram {
    key: Key,
    first: Ts,
    buf: Vec<u8>,
    /// Received (offset, end) byte ranges.
    ranges: Vec<(u32, u32)>,
    total: Option<u32>,
}

impl Datagram {
    fn complete(&mut self) -> bool {
        let Some(total) = self.total else {
            return false;
        };
        self.ranges.sort_unstable();
        let mut covered = 0;
        for &(a, b) in &self.ranges {
            if a > covered {
                return false;
            }
            covered = covered.max(b);
        }
        covered >= total
    }
}

#[derive(Default)]
pub struct Reassembler {
    slots: Vec<Datagram>,
    pub stats: ReassemblyStats,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReassemblyStats {
    pub completed: u64,
    pub evicted: u64,
    pub expired: u64,
}

impl Reassembler {
    /// Takes the fragment in `d`; when it completes its datagram, writes the datagram's payload
    /// to `out` and returns true.
    pub fn offer(&mut self, d: &Decoded<'_>, out: &mut Vec<u8>) -> bool {
        let Some(ip) = d.ip.filter(|i| i.fragment) else {
            return false;
        };
        let now = d.ts;
        let before = self.slots.len();
        self.slots.retain(|g| {
            now.since(g.first) <= TIMEOUT_SECS * NANOS_PER_SEC && now.since(g.first) >= -TIMEOUT_SECS * NANOS_PER_SEC
        });
        self.stats.expired += (before - self.slots.len()) as u64;
        let key = Key { src: ip.src, dst: ip.dst, id: ip.frag_id, proto: ip.proto };
        let idx = match self.slots.iter().position(|g| g.key == key) {
            Some(i) => i,
            None => {
                if self.slots.len() >= MAX_DATAGRAMS {
                    self.slots.remove(0);
                    self.stats.evicted += 1;
                }
                self.slots.push(Datagram { key, first: now, buf: Vec::new(), ranges: Vec::new(), total: None });
                self.slots.len() - 1
            }
        };
        let g = &mut self.slots[idx];
        let start = ip.frag_offset.min(MAX_DATAGRAM_LEN);
        let end = (start + d.ip_payload.len() as u32).min(MAX_DATAGRAM_LEN);
        if g.buf.len() < end as usize {
            g.buf.resize(end as usize, 0);
        }
        g.buf[start as usize..end as usize].copy_from_slice(&d.ip_payload[..(end - start) as usize]);
        if g.ranges.len() < MAX_FRAGMENTS {
            g.ranges.push((start, end));
        }
        if !ip.more_fragments {
            g.total = Some(end);
        }
        if g.complete() {
            let g = self.slots.remove(idx);
            let total = g.total.unwrap_or(0) as usize;
            out.clear();
            out.extend_from_slice(&g.buf[..total.min(g.buf.len())]);
            self.stats.completed += 1;
            return true;
        }
        false
    }
}

//! Bounded bidirectional flow table.
//!
//! Owns every conversation's state: identity (addresses, ports, protocol, `tcp.stream`-style
//! index), per-direction packet and byte counts, the TCP sequence analysis of [`tcp`], and a slot
//! for the state higher layers keep per conversation (`A`: the application analyzers' state,
//! which is freed with the flow). The
//! table has a fixed capacity set by configuration and never grows past it: the slab and the
//! index are allocated once, and a full table evicts the least recently seen of a few sampled
//! flows (Redis-style sampled LRU: O(1), no per-packet allocation) and counts the eviction.
//!
//! Time is packet time. Idle timeouts run on a "flow clock" that follows packet timestamps but
//! ignores jumps larger than [`FlowConfig::clock_jump`] (merged or re-timed captures in the
//! corpus jump by years; without this every flow would expire at the jump and TCP analysis
//! would restart mid-connection) and never runs backwards.

pub mod tcp;

use std::collections::HashMap;
use std::net::IpAddr;

use crate::decode::{
    tcp_flags::{FIN, RST},
    Decoded, Transport, IPPROTO_TCP, IPPROTO_UDP,
};
use crate::time::{Ts, NANOS_PER_SEC};
use tcp::{SynCheck, TcpAnalysis, TcpConversation, TcpFlags};

/// Flow-table limits and timeouts (`[flows]` in the configuration).
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowConfig {
    /// Most conversations tracked at once. ~300 bytes each: 65536 flows ≈ 20 MiB.
    pub max_flows: usize,
    /// Idle time after which an open TCP conversation is closed, seconds.
    pub tcp_idle_secs: u64,
    /// Idle time after FIN/RST before a TCP conversation is forgotten, seconds. Kept for a while
    /// so a late retransmitted SYN or FIN is still analysed in its conversation.
    pub tcp_closed_secs: u64,
    /// Idle time for UDP and other conversations, seconds.
    pub udp_idle_secs: u64,
    /// A forward jump in packet time larger than this (seconds) is a clock jump, not idleness.
    pub clock_jump_secs: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            max_flows: 65_536,
            tcp_idle_secs: 3600,
            tcp_closed_secs: 300,
            udp_idle_secs: 300,
            clock_jump_secs: 3600,
        }
    }
}

/// Normalised conversation key: endpoint A is the lower (address, port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub a: IpAddr,
    pub b: IpAddr,
    pub a_port: u16,
    pub b_port: u16,
    pub proto: u8,
}

impl FlowKey {
    /// Key and direction (0: src is A, 1: src is B) of a packet.
    pub fn new(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: u8) -> (FlowKey, usize) {
        if (src, sport) <= (dst, dport) {
            (FlowKey { a: src, b: dst, a_port: sport, b_port: dport, proto }, 0)
        } else {
            (FlowKey { a: dst, b: src, a_port: dport, b_port: sport, proto }, 1)
        }
    }
}

/// Why a flow left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// FIN or RST seen, then idle for `tcp_closed_secs`.
    Closed,
    /// Idle past its timeout.
    Idle,
    /// Pushed out because the table was full.
    Evicted,
    /// Replaced by a new conversation on the same ports (new ISN).
    Reused,
    /// Still open when the capture ended.
    CaptureEnd,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::Idle => "idle",
            EndReason::Evicted => "evicted",
            EndReason::Reused => "reused",
            EndReason::CaptureEnd => "capture_end",
        }
    }
}

/// Counts of the TCP analysis flags per flow and per host pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TcpCounts {
    pub retransmissions: u32,
    pub fast_retransmissions: u32,
    pub spurious_retransmissions: u32,
    pub duplicate_acks: u32,
    pub out_of_order: u32,
    pub lost_segments: u32,
    pub zero_windows: u32,
}

impl TcpCounts {
    /// Column names of the counts, in the order of [`TcpCounts::values`] (the store's schema uses
    /// them in every table that holds TCP analysis counts).
    pub const COLUMNS: [&'static str; 7] = [
        "retransmissions",
        "fast_retransmissions",
        "spurious_retransmissions",
        "duplicate_acks",
        "out_of_order",
        "lost_segments",
        "zero_windows",
    ];

    pub fn values(&self) -> [u32; 7] {
        [
            self.retransmissions,
            self.fast_retransmissions,
            self.spurious_retransmissions,
            self.duplicate_acks,
            self.out_of_order,
            self.lost_segments,
            self.zero_windows,
        ]
    }

    pub fn add_flags(&mut self, f: TcpFlags) {
        let inc = |c: &mut u32, bit| {
            if f.has(bit) {
                *c = c.saturating_add(1)
            }
        };
        inc(&mut self.retransmissions, TcpFlags::RETRANSMISSION);
        inc(&mut self.fast_retransmissions, TcpFlags::FAST_RETRANSMISSION);
        inc(&mut self.spurious_retransmissions, TcpFlags::SPURIOUS_RETRANSMISSION);
        inc(&mut self.duplicate_acks, TcpFlags::DUPLICATE_ACK);
        inc(&mut self.out_of_order, TcpFlags::OUT_OF_ORDER);
        inc(&mut self.lost_segments, TcpFlags::LOST_SEGMENT);
        inc(&mut self.zero_windows, TcpFlags::ZERO_WINDOW);
    }
    pub fn add(&mut self, o: &TcpCounts) {
        self.retransmissions = self.retransmissions.saturating_add(o.retransmissions);
        self.fast_retransmissions = self.fast_retransmissions.saturating_add(o.fast_retransmissions);
        self.spurious_retransmissions = self.spurious_retransmissions.saturating_add(o.spurious_retransmissions);
        self.duplicate_acks = self.duplicate_acks.saturating_add(o.duplicate_acks);
        self.out_of_order = self.out_of_order.saturating_add(o.out_of_order);
        self.lost_segments = self.lost_segments.saturating_add(o.lost_segments);
        self.zero_windows = self.zero_windows.saturating_add(o.zero_windows);
    }
    pub fn is_empty(&self) -> bool {
        *self == TcpCounts::default()
    }
    /// `self - earlier` count by count (counts only grow within a minute).
    pub fn minus(&self, o: &TcpCounts) -> TcpCounts {
        TcpCounts {
            retransmissions: self.retransmissions.saturating_sub(o.retransmissions),
            fast_retransmissions: self.fast_retransmissions.saturating_sub(o.fast_retransmissions),
            spurious_retransmissions: self.spurious_retransmissions.saturating_sub(o.spurious_retransmissions),
            duplicate_acks: self.duplicate_acks.saturating_sub(o.duplicate_acks),
            out_of_order: self.out_of_order.saturating_sub(o.out_of_order),
            lost_segments: self.lost_segments.saturating_sub(o.lost_segments),
            zero_windows: self.zero_windows.saturating_sub(o.zero_windows),
        }
    }
}

/// One conversation, with the state `A` the application layer keeps for it.
#[derive(Clone, Debug)]
pub struct Flow<A = ()> {
    pub key: FlowKey,
    /// Index among conversations of its protocol, in order of creation (like `tcp.stream`).
    pub stream: u64,
    pub first_ts: Ts,
    pub last_ts: Ts,
    last_clock: i64,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub mac: [Option<[u8; 6]>; 2],
    pub tcp: TcpConversation,
    pub tcp_counts: TcpCounts,
    /// FIN or RST seen.
    pub closing: bool,
    pub app: A,
}

/// A flow that left the table, for the store (and its application state, for what it still
/// has to report).
#[derive(Clone, Debug)]
pub struct FlowRecord<A = ()> {
    pub flow: Flow<A>,
    pub reason: EndReason,
}

/// What the store keeps of a finished flow: everything but the TCP analysis state, so queued
/// rows stay small (the writer queue is bounded in rows, this bounds it in bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRow {
    pub key: FlowKey,
    pub stream: u64,
    pub first_ts: Ts,
    pub last_ts: Ts,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub mac: [Option<[u8; 6]>; 2],
    pub tcp_counts: TcpCounts,
    /// Which endpoint (0 = A, 1 = B) sent the first SYN, if seen.
    pub client: Option<u8>,
    pub reason: EndReason,
}

impl<A> FlowRecord<A> {
    pub fn row(&self) -> FlowRow {
        let f = &self.flow;
        FlowRow {
            key: f.key,
            stream: f.stream,
            first_ts: f.first_ts,
            last_ts: f.last_ts,
            packets: f.packets,
            bytes: f.bytes,
            mac: f.mac,
            tcp_counts: f.tcp_counts,
            client: f.tcp.client_dir,
            reason: self.reason,
        }
    }
}

/// What the table did with one packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowOutcome {
    /// Slot of the flow, if the packet belongs to one (TCP/UDP with ports).
    pub slot: Option<u32>,
    /// Direction within the flow.
    pub dir: u8,
    pub tcp: TcpAnalysis,
    /// The flow's stream index (`tcp.stream` for TCP).
    pub stream: u64,
    /// The direction that sent the connection's first SYN, when it was seen.
    pub client_dir: Option<u8>,
}

/// Counters about the table itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowTableStats {
    pub created: u64,
    pub tcp_streams: u64,
    pub udp_streams: u64,
    pub evicted: u64,
    pub expired: u64,
    pub clock_jumps: u64,
    pub active: u64,
}

type Map = HashMap<FlowKey, u32, foldhash::fast::RandomState>;

pub struct FlowTable<A = ()> {
    cfg: FlowConfig,
    /// Grown as flows come, up to `cap`: memory follows the flows a branch has at once, the
    /// configuration bounds it (a full table evicts).
    slots: Vec<Option<Flow<A>>>,
    cap: usize,
    free: Vec<u32>,
    index: Map,
    clock: i64,
    last_ts: Option<Ts>,
    next_sweep: i64,
    rng: u64,
    pub stats: FlowTableStats,
}

/// Flows examined when the table is full; 8 gives close-to-LRU choices at O(1) cost.
const EVICTION_SAMPLES: usize = 8;
/// Idle sweeps run every this many seconds of flow clock: each walks the whole slab, so at the
/// default 65536 slots this is well under a millisecond every ten seconds.
const SWEEP_INTERVAL_SECS: i64 = 10;

impl<A: Default> FlowTable<A> {
    pub fn new(cfg: FlowConfig) -> FlowTable<A> {
        let cap = cfg.max_flows.max(1);
        FlowTable {
            free: Vec::new(),
            // Reserved at once, touched as used: growing by doubling would copy the table and
            // leave the old one to the allocator (RSS counted twice at the end).
            index: Map::with_capacity_and_hasher(cap, Default::default()),
            slots: Vec::with_capacity(cap),
            cap,
            cfg,
            clock: 0,
            last_ts: None,
            next_sweep: SWEEP_INTERVAL_SECS * NANOS_PER_SEC,
            rng: 0x9e37_79b9_7f4a_7c15,
            stats: FlowTableStats::default(),
        }
    }

    /// Advances the flow clock to `ts`; returns flows that expired, through `out`.
    fn tick(&mut self, ts: Ts, out: &mut impl FnMut(FlowRecord<A>)) {
        if let Some(last) = self.last_ts {
            let delta = ts.since(last);
            if delta > self.cfg.clock_jump_secs as i64 * NANOS_PER_SEC {
                self.stats.clock_jumps += 1;
            } else if delta > 0 {
                self.clock += delta;
            }
            if delta > 0 {
                self.last_ts = Some(ts);
            }
        } else {
            self.last_ts = Some(ts);
        }
        if self.clock >= self.next_sweep {
            self.next_sweep = self.clock + SWEEP_INTERVAL_SECS * NANOS_PER_SEC;
            self.sweep(out);
        }
    }

    fn timeout_ns(&self, f: &Flow<A>) -> i64 {
        let secs = if f.key.proto != IPPROTO_TCP {
            self.cfg.udp_idle_secs
        } else if f.closing {
            self.cfg.tcp_closed_secs
        } else {
            self.cfg.tcp_idle_secs
        };
        secs as i64 * NANOS_PER_SEC
    }

    fn sweep(&mut self, out: &mut impl FnMut(FlowRecord<A>)) {
        for i in 0..self.slots.len() {
            let expired = match &self.slots[i] {
                Some(f) => self.clock - f.last_clock > self.timeout_ns(f),
                None => false,
            };
            if expired {
                let reason =
                    if self.slots[i].as_ref().is_some_and(|f| f.closing) { EndReason::Closed } else { EndReason::Idle };
                self.stats.expired += 1;
                self.remove(i as u32, reason, out);
            }
        }
    }

    fn remove(&mut self, slot: u32, reason: EndReason, out: &mut impl FnMut(FlowRecord<A>)) {
        if let Some(flow) = self.slots[slot as usize].take() {
            self.index.remove(&flow.key);
            self.free.push(slot);
            self.stats.active = self.stats.active.saturating_sub(1);
            out(FlowRecord { flow, reason });
        }
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*: eviction sampling only needs spread, not secrecy.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn evict_one(&mut self, out: &mut impl FnMut(FlowRecord<A>)) {
        let n = self.slots.len() as u64;
        let mut victim: Option<(u32, i64)> = None;
        for _ in 0..EVICTION_SAMPLES {
            let i = (self.next_rand() % n) as u32;
            if let Some(f) = &self.slots[i as usize] {
                if victim.is_none_or(|(_, c)| f.last_clock < c) {
                    victim = Some((i, f.last_clock));
                }
            }
        }
        let slot = match victim {
            Some((i, _)) => i,
            // All samples empty can only happen when the table is not actually full.
            None => match self.slots.iter().position(|s| s.is_some()) {
                Some(i) => i as u32,
                None => return,
            },
        };
        self.stats.evicted += 1;
        self.remove(slot, EndReason::Evicted, out);
    }

    fn insert(&mut self, key: FlowKey, ts: Ts, out: &mut impl FnMut(FlowRecord<A>)) -> u32 {
        if self.free.is_empty() {
            if self.slots.len() < self.cap {
                self.slots.push(None);
                self.free.push((self.slots.len() - 1) as u32);
            } else {
                self.evict_one(out);
            }
        }
        let slot = self.free.pop().unwrap_or(0);
        let stream = if key.proto == IPPROTO_TCP {
            self.stats.tcp_streams += 1;
            self.stats.tcp_streams - 1
        } else {
            self.stats.udp_streams += 1;
            self.stats.udp_streams - 1
        };
        self.stats.created += 1;
        self.stats.active += 1;
        self.slots[slot as usize] = Some(Flow {
            key,
            stream,
            first_ts: ts,
            last_ts: ts,
            last_clock: self.clock,
            packets: [0; 2],
            bytes: [0; 2],
            mac: [None; 2],
            tcp: TcpConversation::default(),
            tcp_counts: TcpCounts::default(),
            closing: false,
            app: A::default(),
        });
        self.index.insert(key, slot);
        slot
    }

    /// Accounts one decoded packet to its conversation and runs TCP analysis.
    /// Expired, evicted and replaced flows are handed to `out`.
    pub fn process(&mut self, d: &Decoded<'_>, out: &mut impl FnMut(FlowRecord<A>)) -> FlowOutcome {
        self.tick(d.ts, out);
        let Some(ip) = d.ip else {
            return FlowOutcome::default();
        };
        let (sport, dport, proto) = match d.transport {
            Transport::Tcp(t) => (t.src_port, t.dst_port, IPPROTO_TCP),
            Transport::Udp(u) => (u.src_port, u.dst_port, IPPROTO_UDP),
            _ => return FlowOutcome::default(),
        };
        let (key, dir) = FlowKey::new(ip.src, sport, ip.dst, dport, proto);
        let mut slot = match self.index.get(&key) {
            Some(&s) => s,
            None => self.insert(key, d.ts, out),
        };
        let mut reused = false;
        if let Transport::Tcp(t) = d.transport.tcp_analysed() {
            reused = self.slots[slot as usize]
                .as_ref()
                .is_some_and(|f| f.tcp.syn_check(dir, t) == SynCheck::NewConversation);
            if reused {
                self.remove(slot, EndReason::Reused, out);
                slot = self.insert(key, d.ts, out);
            }
        }
        let clock = self.clock;
        let Some(flow) = self.slots[slot as usize].as_mut() else {
            return FlowOutcome::default();
        };
        flow.last_ts = d.ts;
        flow.last_clock = clock;
        flow.packets[dir] += 1;
        flow.bytes[dir] += d.frame_len as u64;
        if flow.mac[dir].is_none() {
            flow.mac[dir] = d.eth_src;
        }
        let mut analysis = TcpAnalysis::default();
        if let Transport::Tcp(t) = d.transport.tcp_analysed() {
            analysis = flow.tcp.analyze(dir, t, d.ts, d.frame);
            if reused {
                analysis.flags.set(TcpFlags::REUSED_PORTS);
            }
            flow.tcp_counts.add_flags(analysis.flags);
            if t.has(FIN) || t.has(RST) {
                flow.closing = true;
            }
        }
        FlowOutcome {
            slot: Some(slot),
            dir: dir as u8,
            tcp: analysis,
            stream: flow.stream,
            client_dir: flow.tcp.client_dir,
        }
    }

    /// The application state of the flow in `slot`.
    pub fn app_mut(&mut self, slot: u32) -> Option<&mut A> {
        self.slots.get_mut(slot as usize)?.as_mut().map(|f| &mut f.app)
    }

    /// Hands every remaining flow to `out` (end of a capture file) and empties the table.
    pub fn drain(&mut self, out: &mut impl FnMut(FlowRecord<A>)) {
        for i in 0..self.slots.len() {
            if self.slots[i].is_some() {
                self.remove(i as u32, EndReason::CaptureEnd, out);
            }
        }
        self.clock = 0;
        self.last_ts = None;
        self.next_sweep = SWEEP_INTERVAL_SECS * NANOS_PER_SEC;
    }
}

#[cfg(test)]
pub(crate) mod tests;

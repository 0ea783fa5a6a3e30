//! What the pipeline hands to persistence: the [`StoreEvent`]s and the [`Sink`] they go to.
//!
//! A module of its own so that the store (which consumes them) and the pipeline (which makes
//! them) do not import each other: both depend on this one.

use std::net::IpAddr;

use crate::analyzers::errors::{AppError, Family};
use crate::flow::{FlowRow, TcpCounts};
use crate::identity::volume::Volume;
use crate::identity::IdentityFact;
use crate::rules::alerts;

/// Traffic totals of one minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinuteStats {
    /// Start of the minute, seconds since the epoch.
    pub minute: i64,
    pub packets: u64,
    pub bytes: u64,
    pub tcp_packets: u64,
    pub udp_packets: u64,
    pub other_packets: u64,
    pub truncated: u64,
    pub decode_errors: u64,
    /// Frames the capture lost (kernel buffer and interface drops together), live capture only.
    pub drops: u64,
    /// The part of `drops` the interface or its driver lost (the rest the kernel's capture
    /// buffer: the box did not read fast enough).
    pub if_drops: u64,
    /// Frames analysed but left out of the pcap ring (the disk too slow, full or gone): not
    /// part of `drops`, the analysis has them.
    pub ring_drops: u64,
    pub tcp: TcpCounts,
    /// Retransmissions between two private addresses (the "bad cable" signal).
    pub private_retransmissions: u64,
    /// Frames stamped beyond the wall clock, counted in this (trusted) minute instead.
    pub time_jumps: u64,
    /// Host pairs that did not fit in the per-minute table.
    pub pair_overflow: u64,
}

impl MinuteStats {
    /// What was added since `earlier`, a snapshot of the same minute (counts only grow).
    pub fn minus(&self, e: &MinuteStats) -> MinuteStats {
        MinuteStats {
            minute: self.minute,
            packets: self.packets - e.packets,
            bytes: self.bytes - e.bytes,
            tcp_packets: self.tcp_packets - e.tcp_packets,
            udp_packets: self.udp_packets - e.udp_packets,
            other_packets: self.other_packets - e.other_packets,
            truncated: self.truncated - e.truncated,
            decode_errors: self.decode_errors - e.decode_errors,
            drops: self.drops - e.drops,
            if_drops: self.if_drops - e.if_drops,
            ring_drops: self.ring_drops - e.ring_drops,
            tcp: self.tcp.minus(&e.tcp),
            private_retransmissions: self.private_retransmissions - e.private_retransmissions,
            time_jumps: self.time_jumps - e.time_jumps,
            pair_overflow: self.pair_overflow - e.pair_overflow,
        }
    }

    /// Nothing counted (a delta with nothing to store).
    pub fn is_zero(&self) -> bool {
        *self == MinuteStats { minute: self.minute, ..Default::default() }
    }
}

/// A change of one counter row of a minute. Rows of the open minute are stored with every
/// batch, so the top groups of a minute can change between two batches: a group that drops out
/// of the top gives its value back (negative delta) to "other".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterDelta {
    pub minute: i64,
    pub counter: String,
    pub key: String,
    pub delta: i64,
}

/// TCP analysis counts of one directed host pair (sender → receiver) in one minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairStats {
    pub minute: i64,
    /// None for the "other" row that collects pairs beyond the bound.
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub packets: u64,
    pub bytes: u64,
    pub tcp: TcpCounts,
}

/// Per-packet result, for callers that look at individual frames (differential tests, filters,
/// the transactions of a diff or of the store).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketOutcome {
    pub frame: u64,
    pub tcp: crate::flow::tcp::TcpAnalysis,
    pub is_tcp: bool,
    pub stream: Option<u64>,
}

/// One row of the store's exchanges: how exchanges of one kind between one client and one
/// service ended in one minute ([`crate::transactions`] pairs them). Everything adds up, so a
/// row can be handed over in parts (each batch) and summed into the hour: round-trip quantiles
/// are kept as sums weighted by their sample counts (`rtt_p50_wsum / rtt_n` is the mean of the
/// parts' medians — exact for one part, an approximation over several).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExchangeRow {
    /// The client's address, "" when several clients were folded into one row.
    pub client: String,
    pub proto: &'static str,
    pub server: String,
    pub name: String,
    pub outcome: String,
    pub good: bool,
    pub count: u64,
    pub bytes: u64,
    pub packets: u64,
    pub retransmissions: u64,
    pub rtt_n: u64,
    pub rtt_p50_wsum: i64,
    pub rtt_p90_wsum: i64,
    pub rtt_max_us: i64,
}

impl ExchangeRow {
    /// Adds another part of the same row (or a row folded into this one): as the store's upsert
    /// does.
    pub fn add(&mut self, o: &ExchangeRow) {
        self.count += o.count;
        self.bytes += o.bytes;
        self.packets += o.packets;
        self.retransmissions += o.retransmissions;
        self.rtt_n += o.rtt_n;
        self.rtt_p50_wsum += o.rtt_p50_wsum;
        self.rtt_p90_wsum += o.rtt_p90_wsum;
        self.rtt_max_us = self.rtt_max_us.max(o.rtt_max_us);
    }
}

/// The exchanges that ended in one minute since the last batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExchangeBatch {
    pub minute: i64,
    pub rows: Vec<ExchangeRow>,
}

/// What the pipeline hands to persistence.
#[derive(Clone, Debug)]
pub enum StoreEvent {
    Minute(MinuteStats),
    Pair(PairStats),
    Flow(FlowRow),
    Counter(CounterDelta),
    Identity(Box<IdentityFact>),
    IdentityEvent(Box<crate::identity::events::IdentityEvent>),
    UserVolume {
        minute: i64,
        user: String,
        volume: Volume,
    },
    /// One application error (at most [`crate::pipeline::MAX_ERROR_EXAMPLES`] per kind and minute are stored).
    AppError(Box<AppError>),
    /// How many errors of one kind a minute had (all of them, stored or not).
    AppErrorMinute(Box<AppErrorCount>),
    /// An alert episode started or cleared (stored, and queued for mail when it asks for it).
    Alert(Box<alerts::Notice>),
    /// Ongoing alerts rolled up (queued for mail).
    Digest(Box<alerts::Digest>),
    /// Exchanges rolled up per minute and hour (flows not kept in full live on here).
    Exchanges(Box<ExchangeBatch>),
}

/// Errors of one (family, code, server) in one minute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppErrorCount {
    pub minute: i64,
    pub family: Family,
    pub code: String,
    pub server: Option<IpAddr>,
    pub count: u64,
}

/// Where store events go. The SQLite writer implements it; tests plug in a Vec.
pub trait Sink {
    fn send(&mut self, ev: StoreEvent);
    /// Pushes buffered events on (end of input, or a timer in the daemon).
    fn flush(&mut self) {}
}

/// Sees every batch of store events on its way to the store's writer (the fleet export): on
/// the capture thread, so it must not wait.
pub trait Tap: Send {
    fn batch(&mut self, events: &[StoreEvent]);
}

/// Where events made outside the pipeline go besides the store: `disk.low` episodes, which
/// the pcap ring or the disk job write to the database themselves, are offered to the fleet
/// export through it. Without a listener (no `[export]`, a command, a test) nothing happens.
static OUTSIDE: std::sync::Mutex<Option<Box<dyn Tap>>> = std::sync::Mutex::new(None);

/// Makes `tap` the listener of [`outside_event`] (the daemon's export), or none.
pub fn listen_outside(tap: Option<Box<dyn Tap>>) {
    if let Ok(mut t) = OUTSIDE.lock() {
        *t = tap;
    }
}

/// An event made outside the pipeline, offered to the listener (which never waits).
pub fn outside_event(ev: StoreEvent) {
    if let Ok(mut t) = OUTSIDE.lock() {
        if let Some(tap) = t.as_mut() {
            tap.batch(std::slice::from_ref(&ev));
        }
    }
}

impl Sink for Vec<StoreEvent> {
    fn send(&mut self, ev: StoreEvent) {
        self.push(ev);
    }
}

/// A sink that discards everything (analyze without --db).
pub struct NullSink;
impl Sink for NullSink {
    fn send(&mut self, _ev: StoreEvent) {}
}

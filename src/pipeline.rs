//! The one packet pipeline shared by the daemon and the CLI.
//!
//! `decode → flow table + TCP analysis → per-minute aggregates → sink`. It is synchronous and
//! driven only by packet time, so `analyze` over a file stores exactly what the daemon would
//! have stored live. The pipeline owns the aggregates of the current minute (traffic totals and
//! TCP analysis per host pair, both bounded) and the run summary printed by `analyze --json`;
//! persistence is the sink's job (see [`crate::store`]). Nothing here logs or allocates per
//! packet: maps are sized once and cleared, overflow goes to named counters.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::analyzers::errors::{AppError, Family};
use crate::analyzers::{Analyzers, AppFacts, FlowApp, FlowRef};
use crate::capture::mask::{offset_in, Masks};
use crate::capture::RawPacket;
use crate::decode::reassembly::Reassembler;
use crate::decode::{self, Decoded, Transport};
use crate::filter::fields::Ctx;
use crate::flow::tcp::TcpAnalysis;
use crate::flow::{FlowConfig, FlowRecord, FlowTable, TcpCounts};
use crate::identity::events::IdentityEvents;
use crate::identity::volume::UserVolume;
use crate::rules::alerts::{self, AlertEngine, AlertOut, Context, Evidence};
use crate::rules::counters::{CounterEngine, CounterRow, CounterTotal};
use crate::rules::RuleSet;
use crate::summary::Summary;
use crate::time::{Ts, FUTURE_TOLERANCE_SECS};

pub use crate::event::{
    AppErrorCount, CounterDelta, ExchangeBatch, MinuteStats, NullSink, PacketOutcome, PairStats, Sink, StoreEvent,
};
use crate::transactions::Tracker;

/// Pipeline limits (`[pipeline]` in the configuration).
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Host pairs tracked per minute for TCP analysis counts. A branch office sees a few hundred;
    /// beyond the bound, pairs are summed into one "other" row and counted.
    pub max_host_pairs: usize,
    /// Distinct group keys a grouped counter tracks per minute (and over a run); frames of
    /// further keys go to "other". Bounds memory under scans and spoofed floods.
    pub max_groups: usize,
    /// Groups stored per counter and minute (largest first); the rest are summed as "other".
    pub top_groups: usize,
    /// Bytes the application analyzers may hold between segments, all flows together (lines,
    /// messages and error texts cut across segments; see `analyzers::budget`), like "16MiB".
    pub analyzer_buffers: String,
}

impl PipelineConfig {
    /// `analyzer_buffers` in bytes.
    pub fn analyzer_buffer_bytes(&self) -> anyhow::Result<usize> {
        crate::units::parse_size(&self.analyzer_buffers).map(|b| b as usize).ok_or_else(|| {
            anyhow::anyhow!("[pipeline] analyzer_buffers = {:?}: not a size like \"16MiB\"", self.analyzer_buffers)
        })
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig { max_host_pairs: 4096, max_groups: 1000, top_groups: 20, analyzer_buffers: "16MiB".into() }
    }
}

/// Successful logins remembered per address, to name the user in alerts.
const MAX_USER_BY_IP: usize = 10_000;

/// Individual errors stored per (family, code, server) and minute; a flood of identical errors
/// is counted in full but stored as examples only (SD cards wear out).
pub const MAX_ERROR_EXAMPLES: u64 = 100;

type ErrorKey = (Family, String, Option<IpAddr>);

pub use crate::decode::is_private;

#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct PairAgg {
    packets: u64,
    bytes: u64,
    tcp: TcpCounts,
}

impl PairAgg {
    fn minus(&self, e: &PairAgg) -> PairAgg {
        PairAgg { packets: self.packets - e.packets, bytes: self.bytes - e.bytes, tcp: self.tcp.minus(&e.tcp) }
    }
}

/// A pair's counts of the minute so far, and what of them the store already holds.
#[derive(Clone, Copy, Default)]
struct PairOpen {
    now: PairAgg,
    stored: PairAgg,
}

type PairMap = HashMap<(IpAddr, IpAddr), PairOpen, foldhash::fast::RandomState>;

/// What the store already holds of the open minute. Each batch carries what changed since
/// (upserts add up), so the store is at most a batch (about a second) behind the pipeline and a
/// crash loses no more (ARCHITECTURE.md, Store).
#[derive(Default)]
struct Stored {
    traffic: MinuteStats,
    counters: HashMap<(String, String), u64, foldhash::fast::RandomState>,
}

pub struct Pipeline<S: Sink> {
    pub flows: FlowTable<FlowApp>,
    reassembler: Reassembler,
    /// Reused buffer for reassembled datagrams.
    datagram: Vec<u8>,
    cfg: PipelineConfig,
    cur: Option<MinuteStats>,
    pairs: PairMap,
    other_pair: PairOpen,
    stored: Stored,
    pub summary: Summary,
    pub sink: S,
    counters: Option<CounterEngine>,
    analyzers: Analyzers,
    /// Facts of the frame being processed (reused, not copied per packet).
    app: AppFacts,
    /// Analyzer buffers the budget refused before this pipeline began (the summary counts its
    /// own).
    refused_before: u64,
    identity_events: IdentityEvents,
    /// Traffic per logged-in user; public so the run summary can read its totals.
    pub user_volume: UserVolume,
    /// Errors per kind in the current minute (bounded by `max_groups`), and how many of them
    /// the store holds.
    error_minute: HashMap<ErrorKey, (u64, u64), foldhash::fast::RandomState>,
    /// Name of the input being processed (file or interface), for the run summary.
    pub input: String,
    alerts: Option<AlertEngine>,
    alert_out: Vec<AlertOut>,
    counter_rows: Vec<CounterRow>,
    /// Last user logged in from each address (bounded), for the alerts' context.
    user_by_ip: HashMap<IpAddr, String, foldhash::fast::RandomState>,
    /// How often ongoing alerts are rolled into a digest, in packet time.
    pub digest_every_secs: u64,
    /// The last frames each alert-followed counter matched (indexed like the counters), attached
    /// to its alerts as evidence.
    evidence: Vec<EvidenceRing>,
    /// Newest packet time not beyond the wall clock, and the wall-clock limit last read (the
    /// clock is read again only when a frame claims to be beyond it).
    trusted: Option<Ts>,
    wall_limit: Ts,
    /// Store mode ([`Pipeline::store_exchanges`]): exchanges, and which flows are kept in full.
    store: Option<Box<StoreMode>>,
}

/// What store mode keeps: the exchanges (the tracker) and, per minute, how many flows and
/// exchange rows went to the store, so a flood (a scan's refusals, a retry loop's logins, a
/// thousand NXDOMAIN names) costs the SD card a bounded number of rows a minute.
struct StoreMode {
    tracker: Tracker,
    /// Flows kept in full this minute per (client, server, server port).
    kept: HashMap<(IpAddr, IpAddr, u16), u16, foldhash::fast::RandomState>,
    kept_minute: i64,
    /// The minute of the frame being processed.
    now_minute: i64,
    /// Exchange rows handed to the store this minute and this hour.
    rows_minute: (i64, usize),
    rows_hour: (i64, usize),
}

/// Flows kept in full per (client, server, port) and minute; the rest are in the exchanges.
const KEPT_PER_PAIR_MINUTE: u16 = 10;
/// (client, server, port) keys followed per minute for that bound; beyond, only long and large
/// flows are kept.
const KEPT_KEYS: usize = 4096;
/// Exchange rows stored per minute and per hour; beyond, exchanges are folded into "(other)"
/// rows per protocol and outcome class (bad outcomes go first within a batch).
const EXCHANGE_ROWS_MINUTE: usize = 300;
const EXCHANGE_ROWS_HOUR: usize = 3000;

impl StoreMode {
    /// A flow ended: its connection's exchange is finished; the flow is stored in full when
    /// [`kept_in_full`] and its key's budget for the minute allow.
    fn flow_ended<S: Sink>(&mut self, sink: &mut S, rec: &FlowRecord<FlowApp>) {
        let f = &rec.flow;
        if f.key.proto == 6 {
            self.tracker.end_stream(f.stream);
        }
        let keep = match kept_in_full(rec) {
            Keep::No => false,
            Keep::Always => true,
            Keep::Bounded => {
                // The packet clock's minute (flows end out of order: an idle one ends late).
                if self.now_minute != self.kept_minute {
                    self.kept.clear();
                    self.kept_minute = self.now_minute;
                }
                // The client is the SYN's sender, or else the end with the higher port.
                let a_client = match f.tcp.client_dir {
                    Some(d) => d == 0,
                    None => f.key.a_port > f.key.b_port,
                };
                let key = if a_client { (f.key.a, f.key.b, f.key.b_port) } else { (f.key.b, f.key.a, f.key.a_port) };
                let room = self.kept.len() < KEPT_KEYS || self.kept.contains_key(&key);
                match room.then(|| self.kept.entry(key).or_insert(0)) {
                    Some(n) if *n < KEPT_PER_PAIR_MINUTE => {
                        *n += 1;
                        true
                    }
                    _ => false,
                }
            }
        };
        if keep {
            sink.send(StoreEvent::Flow(rec.row()));
        }
    }
}

/// A flow this long is kept in full whatever else it is.
const LONG_FLOW_NS: i64 = 300 * crate::time::NANOS_PER_SEC;
/// A flow this large (both directions) is kept in full whatever else it is.
const LARGE_FLOW_BYTES: u64 = 10_000_000;

/// A flow ended: stored in full, or only in the exchanges (store mode).
fn flow_ended<S: Sink>(sink: &mut S, store: &mut Option<Box<StoreMode>>, rec: &FlowRecord<FlowApp>) {
    match store {
        Some(m) => m.flow_ended(sink, rec),
        None => sink.send(StoreEvent::Flow(rec.row())),
    }
}

/// Whether the store keeps a flow in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keep {
    No,
    /// Within its key's budget for the minute.
    Bounded,
    Always,
}

/// Whether the store keeps a flow in full rather than only in the exchanges: one with TCP
/// trouble (retransmissions, lost segments, zero windows, reordering), a reset, a login or an
/// application error, a SYN nobody answered (those within a budget per client, server and
/// minute), or a long or large one (always). The rest — most flows of a branch: short, clean,
/// answered — are counted in the exchanges.
fn kept_in_full(rec: &FlowRecord<FlowApp>) -> Keep {
    let f = &rec.flow;
    let c = &f.tcp_counts;
    let trouble = c.retransmissions
        + c.fast_retransmissions
        + c.spurious_retransmissions
        + c.lost_segments
        + c.zero_windows
        + c.out_of_order;
    let unanswered = f.key.proto == 6 && f.tcp.client_dir.is_some_and(|d| f.packets[(1 - d as usize) & 1] == 0);
    if f.last_ts.since(f.first_ts) >= LONG_FLOW_NS || f.bytes[0] + f.bytes[1] >= LARGE_FLOW_BYTES {
        Keep::Always
    } else if f.app.notable || trouble > 0 || unanswered {
        Keep::Bounded
    } else {
        Keep::No
    }
}

/// The last [`EVIDENCE_FRAMES`] frames of one counter; buffers are reused, so keeping evidence
/// costs a copy of the matching frame and no allocation once warm.
#[derive(Default)]
struct EvidenceRing {
    frames: Vec<Evidence>,
    next: usize,
}

const EVIDENCE_FRAMES: usize = 8;

impl EvidenceRing {
    /// Keeps a copy of the frame, its credentials masked.
    fn keep(&mut self, d: &Decoded<'_>, masks: &Masks) {
        if self.frames.len() < EVIDENCE_FRAMES {
            self.frames.push(Evidence { ts: d.ts, link: d.link.0, orig_len: d.frame_len, data: d.data.to_vec() });
            if let Some(f) = self.frames.last_mut() {
                masks.apply(&mut f.data);
            }
            return;
        }
        let slot = &mut self.frames[self.next];
        self.next = (self.next + 1) % EVIDENCE_FRAMES;
        slot.ts = d.ts;
        slot.link = d.link.0;
        slot.orig_len = d.frame_len;
        slot.data.clear();
        slot.data.extend_from_slice(d.data);
        masks.apply(&mut slot.data);
    }

    /// Oldest first.
    fn frames(&self) -> Vec<Evidence> {
        let mut v = self.frames[self.next..].to_vec();
        v.extend_from_slice(&self.frames[..self.next]);
        v
    }
}

impl<S: Sink> Pipeline<S> {
    pub fn new(flow_cfg: FlowConfig, cfg: PipelineConfig, sink: S) -> Pipeline<S> {
        crate::analyzers::budget::set_max(cfg.analyzer_buffer_bytes().unwrap_or(crate::analyzers::budget::DEFAULT_MAX));
        let pairs = PairMap::with_capacity_and_hasher(cfg.max_host_pairs, Default::default());
        Pipeline {
            flows: FlowTable::new(flow_cfg),
            reassembler: Reassembler::default(),
            datagram: Vec::new(),
            cfg,
            cur: None,
            pairs,
            other_pair: PairOpen::default(),
            stored: Stored::default(),
            summary: Summary::default(),
            sink,
            counters: None,
            analyzers: Analyzers::default(),
            app: AppFacts::default(),
            refused_before: crate::analyzers::budget::refused(),
            identity_events: IdentityEvents::default(),
            user_volume: UserVolume::default(),
            error_minute: HashMap::default(),
            input: String::new(),
            alerts: None,
            alert_out: Vec::new(),
            counter_rows: Vec::new(),
            user_by_ip: HashMap::default(),
            digest_every_secs: 3600,
            evidence: Vec::new(),
            trusted: None,
            wall_limit: Ts(i64::MIN),
            store: None,
        }
    }

    /// Store mode: exchanges are followed (request → answer, per client) and stored per minute
    /// and hour, and only the flows worth looking at one by one are stored in full
    /// ([`kept_in_full`]). `analyze --db` and the daemon run this way.
    pub fn store_exchanges(&mut self) {
        self.analyzers.exchanges = true;
        self.store = Some(Box::new(StoreMode {
            tracker: Tracker::live(),
            kept: HashMap::default(),
            kept_minute: i64::MIN,
            now_minute: i64::MIN,
            rows_minute: (i64::MIN, 0),
            rows_hour: (i64::MIN, 0),
        }));
    }

    /// Hands the exchanges finished since the last batch to the store, within the minute's and
    /// the hour's row budgets.
    fn store_exchange_rows(&mut self, minute: i64) {
        let Some(m) = self.store.as_mut() else { return };
        let services = m.tracker.take_services();
        if services.is_empty() {
            return;
        }
        let hour = minute - minute.rem_euclid(3600);
        if m.rows_minute.0 != minute {
            m.rows_minute = (minute, 0);
        }
        if m.rows_hour.0 != hour {
            m.rows_hour = (hour, 0);
        }
        let room =
            EXCHANGE_ROWS_MINUTE.saturating_sub(m.rows_minute.1).min(EXCHANGE_ROWS_HOUR.saturating_sub(m.rows_hour.1));
        let rows = crate::transactions::exchange_rows(services, room);
        m.rows_minute.1 += rows.len();
        m.rows_hour.1 += rows.len();
        self.sink.send(StoreEvent::Exchanges(Box::new(ExchangeBatch { minute, rows })));
    }

    /// Installs a rule set (at start, or on reload: the current minute's counts of the old rules
    /// are stored first, so a reload loses nothing).
    pub fn set_rules(&mut self, rules: RuleSet) {
        // The old rules' counts of the open minute are stored; the new rules count from zero
        // on top of them (upserts add up).
        self.store_counter_rows();
        self.stored.counters.clear();
        let mut engine = AlertEngine::new(&rules, self.digest_every_secs);
        if let Some(old) = self.alerts.take() {
            engine.carry_over(old);
        }
        self.alerts = (!engine.is_empty()).then_some(engine);
        self.counters = (!rules.counters.is_empty())
            .then(|| CounterEngine::new(rules.counters, self.cfg.max_groups, self.cfg.top_groups));
        self.evidence.clear();
        if let (Some(c), Some(a)) = (self.counters.as_mut(), self.alerts.as_ref()) {
            let followed = a.followed_counters();
            c.keep_evidence = (0..c.len()).map(|i| followed.iter().any(|f| f == c.id(i))).collect();
            self.evidence = (0..c.len()).map(|_| EvidenceRing::default()).collect();
        }
    }

    /// Counters that the alerts follow (whose stored minutes rebuild their baselines).
    pub fn followed_counters(&self) -> Vec<String> {
        self.alerts.as_ref().map(|a| a.followed_counters()).unwrap_or_default()
    }

    /// Restores alert state after a restart from the history the store read
    /// (`store::read::alert_history`); see [`AlertEngine::restore_minute`].
    /// Returns the ids of the active episodes no rule continues (to be cleared by the caller).
    pub fn restore_alerts(&mut self, h: &alerts::AlertHistory) -> Vec<i64> {
        let Some(engine) = self.alerts.as_mut() else { return h.active.iter().map(|e| e.id).collect() };
        for r in &h.minutes {
            engine.restore_minute(r);
        }
        for (rule, key, at) in &h.mails {
            engine.restore_mail(rule, key, *at);
        }
        // Newest first: of duplicates left by earlier versions, the newest goes on.
        let mut orphans = Vec::new();
        for ep in h.active.iter().rev() {
            if !engine.restore_episode(ep) {
                orphans.push(ep.id);
            }
        }
        orphans
    }

    /// Run totals of every counter (for `analyze --json`).
    pub fn counter_totals(&self) -> Vec<(String, CounterTotal)> {
        self.counters.as_ref().map(|c| c.totals()).unwrap_or_default()
    }

    /// Processes one frame.
    pub fn process(&mut self, pkt: &RawPacket<'_>) -> PacketOutcome {
        self.process_with(pkt, |_, o| *o)
    }

    /// Processes one frame and hands what filters see of it (the decoded frame — with its
    /// transport taken from the reassembled datagram when this fragment completed one —, the TCP
    /// analysis and the dissectors' facts) and the outcome to `f`.
    pub fn process_with<R>(&mut self, pkt: &RawPacket<'_>, f: impl FnOnce(&Ctx<'_, '_>, &PacketOutcome) -> R) -> R {
        let mut d = decode::decode(pkt);
        d.ts = self.trust(d.ts);
        if d.ip.is_some_and(|ip| ip.fragment) {
            let mut buf = std::mem::take(&mut self.datagram);
            if self.reassembler.offer(&d, &mut buf) {
                let whole = decode::with_reassembled(&d, &buf);
                let o = self.process_decoded(&whole);
                let ctx = Ctx { d: &whole, tcp: &o.tcp, stream: o.stream, app: &self.app };
                if let Some(m) = self.store.as_mut() {
                    m.tracker.observe(&ctx, &o);
                }
                let r = f(&ctx, &o);
                self.datagram = buf;
                return r;
            }
            self.datagram = buf;
        }
        let o = self.process_decoded(&d);
        let ctx = Ctx { d: &d, tcp: &o.tcp, stream: o.stream, app: &self.app };
        if let Some(m) = self.store.as_mut() {
            m.tracker.observe(&ctx, &o);
        }
        f(&ctx, &o)
    }

    /// The time a frame is analysed at: its own, unless it lies beyond the wall clock plus
    /// [`FUTURE_TOLERANCE_SECS`]; then the last trusted time (or the wall clock), counted.
    fn trust(&mut self, ts: Ts) -> Ts {
        if ts > self.wall_limit {
            let wall = crate::time::wall_now();
            self.wall_limit = Ts(wall.0.saturating_add(FUTURE_TOLERANCE_SECS * crate::time::NANOS_PER_SEC));
            if ts > self.wall_limit {
                self.summary.capture.time_jumps += 1;
                let at = self.trusted.unwrap_or(wall);
                let minute = at.minute();
                if self.cur.is_some_and(|m| m.minute != minute) {
                    self.flush_minute();
                }
                self.cur.get_or_insert_with(|| MinuteStats { minute, ..Default::default() }).time_jumps += 1;
                return at;
            }
        }
        self.trusted = Some(self.trusted.map_or(ts, |t| t.max(ts)));
        ts
    }

    fn process_decoded(&mut self, d: &Decoded<'_>) -> PacketOutcome {
        let minute = d.ts.minute();
        if self.cur.is_some_and(|m| m.minute != minute) {
            self.flush_minute();
        }
        // Exchanges and logins of this frame, and of flows that end while it is processed.
        self.app.exchanges.clear();
        if let Some(m) = self.store.as_mut() {
            m.now_minute = minute;
        }
        let (sink, analyzers, app, store) = (&mut self.sink, &mut self.analyzers, &mut self.app, &mut self.store);
        let fo = self.flows.process(d, &mut |mut rec: FlowRecord<FlowApp>| {
            analyzers.flow_end(&mut rec.flow.app, rec.flow.stream, app);
            flow_ended(sink, store, &rec);
        });

        let m = self.cur.get_or_insert_with(|| MinuteStats { minute, ..Default::default() });
        m.packets += 1;
        m.bytes += d.frame_len as u64;
        match d.transport {
            Transport::Tcp(_) => m.tcp_packets += 1,
            Transport::Udp(_) => m.udp_packets += 1,
            _ => m.other_packets += 1,
        }
        let truncated = d.cap_len < d.frame_len;
        if truncated {
            m.truncated += 1;
        }
        let decode_error = d.stop.is_some_and(|s| s.reason.is_error());
        if decode_error {
            m.decode_errors += 1;
        }
        let flags = fo.tcp.flags;
        let mut private_retrans = false;
        if let Some(ip) = d.ip {
            m.tcp.add_flags(flags);
            private_retrans = fo.tcp.is_retransmission() && is_private(&ip.src) && is_private(&ip.dst);
            if private_retrans {
                m.private_retransmissions += 1;
            }
            let key = (ip.src, ip.dst);
            let agg = if self.pairs.len() < self.cfg.max_host_pairs || self.pairs.contains_key(&key) {
                &mut self.pairs.entry(key).or_default().now
            } else {
                m.pair_overflow += 1;
                &mut self.other_pair.now
            };
            agg.packets += 1;
            agg.bytes += d.frame_len as u64;
            agg.tcp.add_flags(flags);
            self.user_volume.packet(ip.src, ip.dst, d.frame_len as u64);
        }
        self.summary.observe(d, &fo.tcp, private_retrans, truncated, decode_error);
        let stream = fo.slot.map(|_| fo.stream);
        let flow = fo.slot.and_then(|s| self.flows.app_mut(s)).map(|app| FlowRef {
            app,
            dir: fo.dir,
            stream: fo.stream,
            syn_dir: fo.client_dir,
        });
        self.analyzers.frame(d, &fo.tcp, flow, &mut self.app);
        // What makes the store keep this flow in full (the exchanges keep the rest).
        let notable = self.store.is_some()
            && (!self.app.logins.is_empty()
                || !self.app.errors.is_empty()
                || matches!(d.transport, Transport::Tcp(t) if t.has(decode::tcp_flags::RST)));
        if notable {
            if let Some(app) = fo.slot.and_then(|s| self.flows.app_mut(s)) {
                app.notable = true;
            }
        }
        if !self.app.logins.is_empty() {
            self.take_identities();
        }
        if let Some(c) = self.counters.as_mut() {
            c.observe(&Ctx { d, tcp: &fo.tcp, stream, app: &self.app });
            // User patterns (`app_error = true` counters) become application errors too.
            for &i in &c.matched_patterns {
                self.app.errors.push(pattern_error(d, &self.app.masks, c.id(i), stream));
            }
            for &i in &c.matched_evidence {
                if let Some(r) = self.evidence.get_mut(i) {
                    r.keep(d, &self.app.masks);
                }
            }
        }
        if !self.app.errors.is_empty() {
            let errors = std::mem::take(&mut self.app.errors);
            for e in &errors {
                self.app_error(e);
            }
            self.app.errors = errors;
            if self.alerts.as_ref().is_some_and(|a| a.wants("app_error")) {
                self.alert_app_errors(d, &fo.tcp, stream);
            }
        }
        PacketOutcome { frame: d.frame, tcp: fo.tcp, is_tcp: matches!(d.transport, Transport::Tcp(_)), stream }
    }

    /// Hands the frame's application errors to the alert engine, with the frame as evidence and
    /// the frame's fields for the alerts' `where` filters.
    fn alert_app_errors(&mut self, d: &Decoded<'_>, tcp: &TcpAnalysis, stream: Option<u64>) {
        let Some(engine) = self.alerts.as_mut() else { return };
        let ctx = Ctx { d, tcp, stream, app: &self.app };
        for e in &self.app.errors {
            let ev = alerts::Event {
                kind: "app_error",
                key: app_error_key(e),
                ts: e.ts,
                count: 1,
                summary: app_error_summary(e),
                context: Context {
                    ip: e.client.map(|c| c.0.to_string()),
                    peer: e.server.map(|s| format!("{}:{}", s.0, s.1)),
                    mac: e.client_mac.as_ref().map(decode::mac_text),
                    user: e.client.and_then(|c| self.user_by_ip.get(&c.0).cloned()),
                    frame: Some(e.frame),
                    file: (!self.input.is_empty()).then(|| self.input.clone()),
                },
                evidence: Some(alerts::EvidenceFrame {
                    ts: d.ts,
                    link: d.link.0,
                    orig_len: d.frame_len,
                    data: d.data,
                    masks: self.app.masks,
                }),
            };
            engine.event(ev, |f| f.matches(&ctx), &mut self.alert_out);
        }
        self.drain_alerts();
    }

    /// Sends what the alert engine produced to the store and the run summary.
    fn drain_alerts(&mut self) {
        for out in self.alert_out.drain(..) {
            match out {
                AlertOut::Notice(mut n) => {
                    // Counter alerts carry the last frames their counter matched.
                    if n.evidence.is_empty() && n.state == alerts::State::New {
                        let ring = self.alerts.as_ref().and_then(|a| a.counter_of(&n.rule)).and_then(|id| {
                            self.counters.as_ref().and_then(|c| c.index(id)).and_then(|i| self.evidence.get(i))
                        });
                        if let Some(r) = ring {
                            n.evidence = r.frames();
                        }
                    }
                    self.summary.add_alert(&n);
                    self.sink.send(StoreEvent::Alert(n));
                }
                AlertOut::Digest(g) => {
                    self.summary.add_digest(&g);
                    self.sink.send(StoreEvent::Digest(g));
                }
            }
        }
    }

    fn app_error(&mut self, e: &AppError) {
        self.summary.add_app_error(&self.input, e);
        let key = (e.family, e.code.clone(), e.server.map(|s| s.0));
        if self.error_minute.len() >= self.cfg.max_groups && !self.error_minute.contains_key(&key) {
            self.summary.app_error_overflow += 1;
            return;
        }
        let (n, _) = self.error_minute.entry(key).or_default();
        *n += 1;
        if *n <= MAX_ERROR_EXAMPLES {
            self.sink.send(StoreEvent::AppError(Box::new(e.clone())));
        }
    }

    fn take_identities(&mut self) {
        let mut events = Vec::new();
        let logins = std::mem::take(&mut self.app.logins);
        for f in logins {
            self.summary.identities.add(&f);
            if let (Some(ip), Some(user), crate::identity::Outcome::Success) = (f.ip, &f.user, f.outcome) {
                if self.user_by_ip.len() < MAX_USER_BY_IP || self.user_by_ip.contains_key(&ip) {
                    self.user_by_ip.insert(ip, user.clone());
                }
            }
            self.identity_events.observe(&f, &mut events);
            self.user_volume.observe(&f);
            self.sink.send(StoreEvent::Identity(Box::new(f)));
        }
        for e in events {
            // The run summary keeps the first events only; the store keeps them all.
            if self.summary.identity_events.len() < crate::summary::MAX_IDENTITY_EVENTS {
                self.summary.identity_events.push(e.clone());
            }
            if let Some(engine) = self.alerts.as_mut().filter(|a| a.wants(e.kind)) {
                let ev = alerts::Event {
                    kind: e.kind,
                    key: e.mac.clone(),
                    ts: e.at,
                    count: 1,
                    summary: match e.kind {
                        "identity.shared_mac" => format!(
                            "MAC {} carries several users ({}): a router or NAT behind the switch?",
                            e.mac,
                            e.users.join(", ")
                        ),
                        _ => format!(
                            "new identity {} on MAC {}",
                            e.users.first().or(e.hostname.as_ref()).map_or("?", |s| s),
                            e.mac
                        ),
                    },
                    context: Context {
                        ip: e.ip.clone(),
                        mac: Some(e.mac.clone()),
                        user: (!e.users.is_empty()).then(|| e.users.join(", ")),
                        frame: Some(e.frame),
                        file: (!self.input.is_empty()).then(|| self.input.clone()),
                        ..Default::default()
                    },
                    evidence: None,
                };
                engine.event(ev, |_| true, &mut self.alert_out);
            }
            self.sink.send(StoreEvent::IdentityEvent(Box::new(e)));
        }
        self.drain_alerts();
    }

    /// Adds capture drops (live sources) to the current minute: `kernel` lost by the kernel's
    /// capture buffer (the box read too slowly), `interface` by the interface or its driver;
    /// `ring`: frames analysed but not kept in the pcap ring (stored apart: analysis has them).
    pub fn add_drops(&mut self, now: Ts, kernel: u64, interface: u64, ring: u64) {
        let drops = kernel + interface;
        if drops + ring == 0 {
            return;
        }
        let minute = now.minute();
        let m = self.cur.get_or_insert_with(|| MinuteStats { minute, ..Default::default() });
        m.drops += drops;
        m.if_drops += interface;
        m.ring_drops += ring;
        self.summary.capture.drops += drops;
        let summary = match ring {
            0 => format!(
                "the capture lost {drops} frames ({kernel} in the kernel's capture buffer, {interface} at the interface)"
            ),
            _ => format!(
                "the capture lost {drops} frames ({kernel} in the kernel's capture buffer, {interface} at the interface); \
                 {ring} analysed frames were not kept in the pcap ring"
            ),
        };
        self.box_event("capture.drops", String::new(), now, drops + ring, summary);
    }

    /// An event about the box itself (`capture.drops`, `store.failing`) for the alerts that
    /// follow it.
    pub fn box_event(&mut self, kind: &'static str, key: String, now: Ts, count: u64, summary: String) {
        if let Some(engine) = self.alerts.as_mut().filter(|a| a.wants(kind)) {
            let context = Context { file: Some(self.input.clone()), ..Default::default() };
            let ev = alerts::Event { kind, key, ts: now, count, summary, context, evidence: None };
            engine.event(ev, |_| true, &mut self.alert_out);
            self.drain_alerts();
        }
    }

    /// Hands the store what changed in the open minute since the last batch (the daemon calls
    /// this once a second through [`Pipeline::tick`], and every minute end does).
    fn store_open_minute(&mut self) {
        let Some(m) = self.cur else { return };
        self.store_exchange_rows(m.minute);
        let d = m.minus(&self.stored.traffic);
        if !d.is_zero() {
            self.sink.send(StoreEvent::Minute(d));
            self.stored.traffic = m;
        }
        // Only pairs with TCP analysis events are stored: they are what the retransmission views
        // and baselines need, and storing every pair every minute would wear the SD card.
        let pairs = self.pairs.iter_mut().map(|(&(s, d), p)| (Some(s), Some(d), p));
        for (src, dst, p) in pairs.chain(std::iter::once((None, None, &mut self.other_pair))) {
            if p.now.tcp.is_empty() || p.now == p.stored {
                continue;
            }
            let d = p.now.minus(&p.stored);
            p.stored = p.now;
            let (packets, bytes, tcp) = (d.packets, d.bytes, d.tcp);
            self.sink.send(StoreEvent::Pair(PairStats { minute: m.minute, src, dst, packets, bytes, tcp }));
        }
        for ((family, code, server), (count, stored)) in self.error_minute.iter_mut() {
            if *count > *stored {
                let c = AppErrorCount {
                    minute: m.minute,
                    family: *family,
                    code: code.clone(),
                    server: *server,
                    count: *count - *stored,
                };
                *stored = *count;
                self.sink.send(StoreEvent::AppErrorMinute(Box::new(c)));
            }
        }
        // User volume is not ranked: what accumulated is handed over and counted afresh.
        let sink = &mut self.sink;
        self.user_volume.flush(|user, v| {
            sink.send(StoreEvent::UserVolume { minute: m.minute, user: user.to_string(), volume: *v })
        });
    }

    /// Counter rows of the open minute so far, as changes against what the store holds.
    fn store_counter_rows(&mut self) {
        let (Some(m), Some(c)) = (self.cur, self.counters.as_ref()) else { return };
        let mut rows = std::mem::take(&mut self.counter_rows);
        rows.clear();
        c.rows(m.minute, |row| rows.push(row));
        self.store_counter_deltas(m.minute, &rows);
        self.counter_rows = rows;
    }

    /// Stores `rows` (a snapshot of the minute's counter rows) as changes against what the
    /// store holds of that minute.
    fn store_counter_deltas(&mut self, minute: i64, rows: &[CounterRow]) {
        let mut now: HashMap<(String, String), u64, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(rows.len(), Default::default());
        for r in rows {
            now.insert((r.counter.clone(), r.key.clone()), r.value);
        }
        let mut send = |(counter, key): &(String, String), delta: i64| {
            let (counter, key) = (counter.clone(), key.clone());
            self.sink.send(StoreEvent::Counter(CounterDelta { minute, counter, key, delta }));
        };
        for (k, v) in &now {
            let before = self.stored.counters.get(k).copied().unwrap_or(0);
            if *v != before {
                send(k, *v as i64 - before as i64);
            }
        }
        // A row that left the snapshot (a group pushed out of the top) gives its value back.
        for (k, v) in &self.stored.counters {
            if *v != 0 && !now.contains_key(k) {
                send(k, -(*v as i64));
            }
        }
        self.stored.counters = now;
    }

    fn flush_minute(&mut self) {
        self.store_open_minute();
        let Some(m) = self.cur.take() else { return };
        // The minute's final counter rows serve the store (as changes) and the alert engine.
        let mut rows = std::mem::take(&mut self.counter_rows);
        rows.clear();
        if let Some(c) = self.counters.as_mut() {
            c.flush(m.minute, |row| rows.push(row));
            self.summary.group_overflow = c.group_overflow;
        }
        self.store_counter_deltas(m.minute, &rows);
        self.counter_rows = rows;
        self.pairs.clear();
        self.other_pair = PairOpen::default();
        self.error_minute.clear();
        self.stored = Stored::default();
        if let Some(engine) = self.alerts.as_mut() {
            engine.counter_minute(m.minute, &self.counter_rows, &mut self.alert_out);
            engine.tick(alerts::minute_end(m.minute), &mut self.alert_out);
        }
        self.counter_rows.clear();
        self.drain_alerts();
        self.summary.pair_overflow += m.pair_overflow;
    }

    /// End of one input file: flushes the minute and every open flow (frame numbers and TCP
    /// state are per file, as in Wireshark).
    pub fn end_of_file(&mut self) {
        let last_minute = self.cur.map(|m| m.minute);
        // The last frame's exchanges were taken with it; from here on, those the end closes.
        self.app.exchanges.clear();
        self.flush_minute();
        let (sink, analyzers, app, store) = (&mut self.sink, &mut self.analyzers, &mut self.app, &mut self.store);
        self.flows.drain(&mut |mut rec: FlowRecord<FlowApp>| {
            analyzers.flow_end(&mut rec.flow.app, rec.flow.stream, app);
            flow_ended(sink, store, &rec);
        });
        self.analyzers.flush(&mut self.app);
        // The exchanges the end of the file closed, and what still waited for an answer.
        if let Some(m) = self.store.as_mut() {
            for x in &self.app.exchanges {
                m.tracker.exchange(x);
            }
            m.tracker.finish_pending();
        }
        if let Some(minute) = last_minute {
            self.store_exchange_rows(minute);
        }
        self.take_identities();
        let refused = crate::analyzers::budget::refused();
        self.summary.app_error_overflow += refused.saturating_sub(self.refused_before);
        self.refused_before = refused;
        self.summary.identity_overflow = self.summary.identities.overflow + self.identity_events.overflow;
        self.summary.user_volume_overflow_bytes = self.user_volume.overflow_bytes;
        let stats = std::mem::take(&mut self.flows.stats);
        self.summary.add_flow_stats(&stats);
        self.sink.flush();
    }

    /// Follow exchanges (request → answer) for the diff's transactions; off by default.
    pub fn track_exchanges(&mut self) {
        self.analyzers.exchanges = true;
    }

    /// The credential masks of the frame processed last (offsets in its data), for whoever keeps
    /// the frame (the pcap ring).
    pub fn masks(&self) -> &Masks {
        &self.app.masks
    }

    /// Exchanges reported since the last frame (those of the flows the end of a file closed).
    pub fn take_exchanges(&mut self) -> Vec<crate::analyzers::Exchange> {
        std::mem::take(&mut self.app.exchanges)
    }

    /// End of the whole input (`analyze`, the end of a replay, daemon shutdown): the last
    /// digest of ongoing alerts.
    pub fn finish_alerts(&mut self) {
        if let Some(engine) = self.alerts.as_mut() {
            engine.finish(&mut self.alert_out);
        }
        self.drain_alerts();
        self.summary.alert_overflow = self.alerts.as_ref().map_or(0, |a| a.overflow);
        self.sink.flush();
    }

    /// Daemon timer (once a second): ends the current minute if packet time has moved past it,
    /// else hands the store what the open minute gained since the last tick.
    pub fn tick(&mut self, now: Ts) {
        if self.cur.is_some_and(|m| m.minute < now.minute()) {
            self.flush_minute();
        } else {
            self.store_open_minute();
            self.store_counter_rows();
        }
        if let Some(engine) = self.alerts.as_mut() {
            engine.tick(now, &mut self.alert_out);
            self.drain_alerts();
        }
        self.sink.flush();
    }
}

/// A frame matched by a counter with `app_error = true`: the error is the counter's id, the
/// message the start of the payload (printable, bounded, credentials masked).
fn pattern_error(d: &Decoded<'_>, masks: &Masks, id: &str, stream: Option<u64>) -> AppError {
    let ports = match d.transport {
        Transport::Tcp(t) => Some((t.src_port, t.dst_port)),
        Transport::Udp(u) => Some((u.src_port, u.dst_port)),
        _ => None,
    };
    let p = if d.payload.is_empty() { d.data } else { d.payload };
    let mut p = p[..p.len().min(200)].to_vec();
    match offset_in(d.data, d.payload).filter(|_| !d.payload.is_empty()) {
        Some(at) => masks.apply_at(at, &mut p),
        None if d.payload.is_empty() => masks.apply(&mut p),
        // A reassembled datagram's payload is not in the frame: its credentials are not known
        // byte by byte, so none of it is shown.
        None if !masks.is_empty() => p.fill(crate::capture::mask::MASK_BYTE),
        None => {}
    }
    let text: String = String::from_utf8_lossy(&p).chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let (src, dst) = match (d.ip, ports) {
        (Some(ip), Some((sp, dp))) => (Some((ip.src, sp)), Some((ip.dst, dp))),
        (Some(ip), None) => (Some((ip.src, 0)), Some((ip.dst, 0))),
        _ => (None, None),
    };
    // The sender of the matching text is taken as the server (it reports the error).
    AppError {
        family: Family::Pattern,
        code: id.to_string(),
        message: text.split_whitespace().collect::<Vec<_>>().join(" "),
        detail: None,
        frame: d.frame,
        ts: d.ts,
        client: dst,
        server: src,
        client_mac: d.eth_dst,
        stream,
    }
}

/// The alert key of an application error: one episode per kind of error and server.
pub fn app_error_key(e: &AppError) -> String {
    match e.server {
        Some((ip, port)) => format!("{} {} {ip}:{port}", e.family.name(), e.code),
        None => format!("{} {}", e.family.name(), e.code),
    }
}

/// One line saying what the error is and where.
pub fn app_error_summary(e: &AppError) -> String {
    let what = match e.family {
        Family::Mysql => "MySQL error",
        Family::Postgresql => "PostgreSQL error",
        Family::Tds => "SQL Server error",
        Family::Oracle => "Oracle error",
        Family::Http => "HTTP",
        Family::Pattern => "pattern",
    };
    let server = e.server.map(|(ip, port)| format!(" from {ip}:{port}")).unwrap_or_default();
    let client = e.client.map(|(ip, _)| format!(" to {ip}")).unwrap_or_default();
    format!("{what} {} {}{server}{client}", e.code, e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_store_events_stay_small() {
        // The writer queue is bounded in events; this keeps it bounded in bytes (store/mod.rs).
        assert!(std::mem::size_of::<StoreEvent>() <= 176, "{}", std::mem::size_of::<StoreEvent>());
    }

    #[test]
    fn capture_drops_raise_their_alert_and_reach_the_store() {
        let rules = RuleSet::parse_text(
            std::path::Path::new("d.toml"),
            "[[alert]]\nid = \"drops\"\nevent = \"capture.drops\"\nwindow = \"10m\"\nabove = 100\nmail = true\n",
        )
        .unwrap();
        let mut p = Pipeline::new(FlowConfig::default(), PipelineConfig::default(), Vec::new());
        p.set_rules(rules);
        let t = |s: i64| Ts::from_secs_nanos(1_700_000_000 + s, 0);
        p.add_drops(t(0), 50, 10, 0); // 60 in the window: below the threshold
        p.add_drops(t(1), 50, 0, 0); // 110: fires
        p.add_drops(t(2), 0, 500, 0); // ongoing: no second notice
        p.tick(t(700)); // ten quiet minutes: cleared
        let notices: Vec<(alerts::State, bool)> = p
            .sink
            .iter()
            .filter_map(|e| match e {
                StoreEvent::Alert(n) => Some((n.state, n.mail)),
                _ => None,
            })
            .collect();
        assert_eq!(notices, vec![(alerts::State::New, true), (alerts::State::Cleared, false)]);
        assert_eq!(p.summary.capture.drops, 610);
        // Each minute keeps the total and the interface's share.
        let (drops, if_drops) = p.sink.iter().fold((0, 0), |(d, i), e| match e {
            StoreEvent::Minute(m) => (d + m.drops, i + m.if_drops),
            _ => (d, i),
        });
        assert_eq!((drops, if_drops), (610, 510));
    }
}

//! Fleet export (`[export]`): the events a central team ingests with the engines it already runs —
//! JSON lines in the spirit of Suricata's EVE (a rotated file that Vector, Fluent Bit or Filebeat
//! tail) and RFC 5424 syslog over TCP or TLS (rsyslog, syslog-ng, a SIEM).
//!
//! Owns the export queue, the export thread and its two writers. The capture thread only
//! clones the store events worth exporting into a queue bounded in events ([`ExportTap`]): when
//! the export thread falls behind (a slow disk, a collector that stalls), the batch is dropped
//! and counted, capture never waits. Everything else (JSON, rotation, connecting, TLS) happens
//! on the export thread. The events are those the store receives, so the analyzers' credential
//! masking holds for them as for the store; `fields` can also leave user names out.

pub mod community_id;
pub mod jsonl;
pub mod record;
pub mod syslog;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::event::StoreEvent;
use crate::store::StoreHealth;

/// The event types, as `event_type` names them.
pub const EVENT_TYPES: [&str; 6] = ["alert", "identity", "app_error", "flow", "exchange", "stats"];

/// Fields `fields` may leave out ("-user" drops user names everywhere, alert texts included).
pub const DROPPABLE: [&str; 6] = ["user", "realm", "hostname", "mac", "message", "summary"];

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// JSON lines file, e.g. "/var/lib/mirrorwatch/events.jsonl"; "" writes none.
    pub jsonl: String,
    /// "tcp://host:port" or "tls://host:port"; "" sends none.
    pub syslog: String,
    /// The box's name in every event (and syslog's HOSTNAME); "" is the host name.
    pub host: String,
    /// Free text naming the branch, in every event.
    pub branch: String,
    /// Which event types are exported (default: all of them).
    pub events: Vec<String>,
    /// Fields left out of every event, each as "-name" (see [`DROPPABLE`]), e.g. ["-user"].
    pub fields: Vec<String>,
    /// The JSON lines file is rotated when it reaches this size ...
    pub rotate_size: String,
    /// ... or this age, whichever comes first.
    pub rotate_age: String,
    /// Rotated files kept (events.jsonl.1 … .N); older ones are deleted.
    pub keep_files: usize,
    /// Events waiting for the export thread at most; beyond that they are dropped and counted.
    pub queue: usize,
    /// Events held back while the syslog collector is away (sent once it is back); beyond
    /// that the oldest are dropped and counted.
    pub syslog_backlog: usize,
    /// CA certificate(s) (PEM) the syslog server's certificate must chain to (tls://); without
    /// it, the Mozilla roots.
    pub syslog_ca: String,
    /// Client certificate chain and key (PEM) for collectors that ask for one.
    pub syslog_cert: String,
    pub syslog_key: String,
    /// Syslog facility: "local0" … "local7", "daemon" or "user".
    pub syslog_facility: String,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            jsonl: String::new(),
            syslog: String::new(),
            host: String::new(),
            branch: String::new(),
            events: EVENT_TYPES.iter().map(|s| s.to_string()).collect(),
            fields: Vec::new(),
            rotate_size: "64MiB".into(),
            rotate_age: "1d".into(),
            keep_files: 7,
            queue: 20_000,
            syslog_backlog: 100_000,
            syslog_ca: String::new(),
            syslog_cert: String::new(),
            syslog_key: String::new(),
            syslog_facility: "local0".into(),
        }
    }
}

/// The checked form of [`ExportConfig`].
#[derive(Clone, Debug)]
pub struct Settings {
    pub jsonl: Option<jsonl::Rotation>,
    pub syslog: Option<syslog::Target>,
    pub host: String,
    pub branch: String,
    pub events: Vec<&'static str>,
    pub drop: Vec<&'static str>,
    pub queue: usize,
    pub syslog_backlog: usize,
}

impl ExportConfig {
    /// Whether anything is exported.
    pub fn enabled(&self) -> bool {
        !self.jsonl.is_empty() || !self.syslog.is_empty()
    }

    /// The first bad key and why (the config names its line).
    pub fn bad_value(&self) -> Option<(&'static str, String)> {
        self.settings().err()
    }

    pub fn settings(&self) -> Result<Settings, (&'static str, String)> {
        let mut events = Vec::new();
        for e in &self.events {
            match EVENT_TYPES.iter().find(|t| **t == e.as_str()) {
                Some(t) => events.push(*t),
                None => {
                    return Err(("events", format!("[export] events: {e:?} is none of {}", EVENT_TYPES.join(", "))))
                }
            }
        }
        let mut drop = Vec::new();
        for f in &self.fields {
            match f.strip_prefix('-').and_then(|n| DROPPABLE.iter().find(|d| **d == n)) {
                Some(d) => drop.push(*d),
                None => {
                    return Err((
                        "fields",
                        format!("[export] fields: {f:?}: a field to leave out, one of -{}", DROPPABLE.join(", -")),
                    ))
                }
            }
        }
        if !(1..=10_000_000).contains(&self.queue) {
            return Err(("queue", format!("[export] queue: {}: from 1 to 10000000 events", self.queue)));
        }
        if !(1..=10_000_000).contains(&self.syslog_backlog) {
            return Err((
                "syslog_backlog",
                format!("[export] syslog_backlog: {}: from 1 to 10000000 events", self.syslog_backlog),
            ));
        }
        let jsonl = match self.jsonl.is_empty() {
            true => None,
            false => {
                let size = crate::units::parse_size(&self.rotate_size).filter(|s| *s >= 4096).ok_or((
                    "rotate_size",
                    format!("[export] rotate_size: {:?}: a size of at least 4KiB", self.rotate_size),
                ))?;
                let age = crate::units::parse_duration(&self.rotate_age).filter(|a| *a >= 60).ok_or((
                    "rotate_age",
                    format!("[export] rotate_age: {:?}: a duration of at least 1m", self.rotate_age),
                ))?;
                if self.keep_files > 1000 {
                    return Err(("keep_files", format!("[export] keep_files: {}: at most 1000", self.keep_files)));
                }
                Some(jsonl::Rotation {
                    path: PathBuf::from(&self.jsonl),
                    max_bytes: size,
                    max_age: Duration::from_secs(age),
                    keep: self.keep_files,
                })
            }
        };
        let syslog = match self.syslog.is_empty() {
            true => None,
            false => Some(syslog::Target::parse(self).map_err(|e| ("syslog", format!("[export] syslog: {e}")))?),
        };
        let host = match self.host.trim() {
            "" => hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "mirrorwatch".into()),
            h => h.to_string(),
        };
        Ok(Settings {
            jsonl,
            syslog,
            host,
            branch: self.branch.clone(),
            events,
            drop,
            queue: self.queue,
            syslog_backlog: self.syslog_backlog,
        })
    }
}

/// What the export did, for `/metrics`, the overview and the `stats` events.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Events waiting for the export thread.
    pub queued: AtomicU64,
    /// Events the queue had no room for (the export thread behind).
    pub queue_dropped: AtomicU64,
    pub jsonl_written: AtomicU64,
    /// Events the JSON lines file could not take (disk full, medium gone).
    pub jsonl_dropped: AtomicU64,
    pub syslog_sent: AtomicU64,
    /// Events given up while the collector was away longer than its backlog lasts.
    pub syslog_dropped: AtomicU64,
    pub syslog_connected: AtomicBool,
    pub syslog_connects: AtomicU64,
    /// The last connection or write error, for the overview.
    pub syslog_error: std::sync::Mutex<String>,
    pub jsonl_configured: AtomicBool,
    pub syslog_configured: AtomicBool,
}

impl ExportStats {
    /// Every event lost on the way, whichever writer lost it.
    pub fn dropped(&self) -> u64 {
        self.queue_dropped.load(Ordering::Relaxed)
            + self.jsonl_dropped.load(Ordering::Relaxed)
            + self.syslog_dropped.load(Ordering::Relaxed)
    }
}

/// The export thread and the handle that stops it.
pub struct Exporter {
    tx: Sender<Vec<StoreEvent>>,
    pub stats: Arc<ExportStats>,
    queue: u64,
    wanted: Wanted,
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

/// The capture thread's end of the queue (given to the store's sink, which hands it each
/// batch it sends to the writer).
pub struct ExportTap {
    tx: Sender<Vec<StoreEvent>>,
    stats: Arc<ExportStats>,
    queue: u64,
    wanted: Wanted,
}

/// Which store events become export events (decided on the capture thread, so nothing else is
/// cloned).
#[derive(Clone, Copy, Debug)]
struct Wanted {
    alert: bool,
    identity: bool,
    app_error: bool,
    flow: bool,
    exchange: bool,
    stats: bool,
}

impl Wanted {
    fn of(s: &Settings) -> Wanted {
        let has = |t: &str| s.events.contains(&t);
        Wanted {
            alert: has("alert"),
            // Leaving user names out learns them from the identities, exported or not.
            identity: has("identity") || s.drop.contains(&"user"),
            app_error: has("app_error"),
            flow: has("flow"),
            exchange: has("exchange"),
            stats: has("stats"),
        }
    }

    fn wants(&self, ev: &StoreEvent) -> bool {
        match ev {
            StoreEvent::Alert(_) => self.alert,
            StoreEvent::Identity(_) => self.identity,
            StoreEvent::AppError(_) => self.app_error,
            StoreEvent::Flow(_) => self.flow,
            StoreEvent::Exchanges(_) => self.exchange,
            StoreEvent::Minute(_) => self.stats,
            _ => false,
        }
    }
}

impl crate::event::Tap for ExportTap {
    fn batch(&mut self, events: &[StoreEvent]) {
        // Bounded in events, not batches (a busy second is one batch): what does not fit is
        // dropped and counted.
        let room = self.queue.saturating_sub(self.stats.queued.load(Ordering::Relaxed)) as usize;
        let mut wanted = events.iter().filter(|e| self.wanted.wants(e));
        let picked: Vec<StoreEvent> = wanted.by_ref().take(room).cloned().collect();
        let left_out = wanted.count() as u64;
        if left_out > 0 {
            self.stats.queue_dropped.fetch_add(left_out, Ordering::Relaxed);
        }
        if picked.is_empty() {
            return;
        }
        let n = picked.len() as u64;
        self.stats.queued.fetch_add(n, Ordering::Relaxed);
        if self.tx.send(picked).is_err() {
            self.stats.queued.fetch_sub(n, Ordering::Relaxed);
            self.stats.queue_dropped.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl Exporter {
    /// Starts the export thread (the JSON lines file is opened now: a path that cannot be
    /// written is said at start). `health`: the store's, for the `stats` events.
    pub fn start(cfg: &ExportConfig, health: Option<Arc<StoreHealth>>) -> anyhow::Result<Exporter> {
        let settings = cfg.settings().map_err(|(_, why)| anyhow::anyhow!(why))?;
        let stats = Arc::new(ExportStats::default());
        let file = match &settings.jsonl {
            Some(r) => {
                Some(jsonl::Writer::open(r.clone()).with_context(|| format!("[export] jsonl {}", r.path.display()))?)
            }
            None => None,
        };
        stats.jsonl_configured.store(file.is_some(), Ordering::Relaxed);
        stats.syslog_configured.store(settings.syslog.is_some(), Ordering::Relaxed);
        let sender = match &settings.syslog {
            Some(t) => {
                Some(syslog::Syslog::start(t.clone(), &settings.host, settings.syslog_backlog, Arc::clone(&stats))?)
            }
            None => None,
        };
        let (tx, rx) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut worker = Worker {
            records: record::Builder::new(&settings),
            file,
            sender,
            stats: Arc::clone(&stats),
            health,
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name("export".into())
            .spawn(move || worker.run(rx))
            .context("starting the export thread")?;
        if let Some(r) = &settings.jsonl {
            tracing::info!("exporting events to {}", r.path.display());
        }
        if let Some(t) = &settings.syslog {
            tracing::info!("exporting events to syslog {t}");
        }
        Ok(Exporter {
            tx,
            stats,
            queue: settings.queue as u64,
            wanted: Wanted::of(&settings),
            thread: Some(thread),
            stop,
        })
    }

    pub fn tap(&self) -> ExportTap {
        ExportTap { tx: self.tx.clone(), stats: Arc::clone(&self.stats), queue: self.queue, wanted: self.wanted }
    }

    /// Writes what is queued (the taps must be gone: the store's sink finished) and stops. A
    /// collector that does not answer gets a few seconds, not the daemon's whole stop timeout.
    pub fn finish(mut self) {
        let Some(t) = self.thread.take() else { return };
        let (tx, _) = channel();
        drop(std::mem::replace(&mut self.tx, tx));
        let t0 = std::time::Instant::now();
        while !t.is_finished() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop.store(true, Ordering::Relaxed);
        let _ = t.join();
        let s = &self.stats;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        tracing::info!(
            "export stopped: {} events written to the JSON lines file, {} sent to syslog; dropped: {} queue, {} file, {} syslog",
            n(&s.jsonl_written),
            n(&s.syslog_sent),
            n(&s.queue_dropped),
            n(&s.jsonl_dropped),
            n(&s.syslog_dropped)
        );
    }
}

struct Worker {
    records: record::Builder,
    file: Option<jsonl::Writer>,
    sender: Option<syslog::Syslog>,
    stats: Arc<ExportStats>,
    health: Option<Arc<StoreHealth>>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(&mut self, rx: Receiver<Vec<StoreEvent>>) {
        let mut out = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(batch) => {
                    self.stats.queued.fetch_sub(batch.len() as u64, Ordering::Relaxed);
                    self.records.set_store_state(self.store_state());
                    for ev in &batch {
                        self.records.event(ev, &mut out);
                    }
                    self.write(&mut out);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.tick();
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        // The open minute's statistics, then the last writes.
        self.records.set_store_state(self.store_state());
        self.records.close_minute(&mut out);
        self.write(&mut out);
        if let Some(f) = self.file.as_mut() {
            f.flush(&self.stats);
        }
        if let Some(s) = self.sender.take() {
            s.finish();
        }
    }

    fn store_state(&self) -> record::StoreState {
        let mut st = record::StoreState { export_dropped: self.stats.dropped(), ..Default::default() };
        if let Some(h) = &self.health {
            st.failing = h.failing().map(|(_, why)| why);
            st.held_events = h.held_events.load(Ordering::Relaxed);
            st.lost_events = h.lost_events.load(Ordering::Relaxed);
        }
        st
    }

    fn write(&mut self, out: &mut Vec<record::Line>) {
        if out.is_empty() {
            return;
        }
        let lines = std::mem::take(out);
        if let Some(f) = self.file.as_mut() {
            for line in &lines {
                f.write(&line.json, &self.stats);
            }
            f.flush(&self.stats);
        }
        if let Some(s) = self.sender.as_mut() {
            s.send(lines);
        }
    }

    fn tick(&mut self) {
        if let Some(f) = self.file.as_mut() {
            f.tick(&self.stats);
        }
    }
}

//! SQLite persistence: one writer thread, batched transactions, versioned schema.
//!
//! The pipeline never touches the database: [`SqliteSink`] buffers [`StoreEvent`]s and hands
//! them in batches (at most [`BATCH_MAX`] events or one second old) over a bounded channel to the
//! writer thread, which writes each batch in one transaction. SD cards and USB sticks wear with
//! every write, so batching is the point, not an optimisation. The database runs in WAL mode with
//! `synchronous=NORMAL`: a power cut loses at most the last batch and never corrupts the file.
//!
//! Counters are upserted (`+=`): a minute that appears twice (time running backwards in a merged
//! capture, or two files of one day) adds up instead of overwriting.

pub mod schema;

use std::net::IpAddr;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use crate::decode::mac_text;
use crate::flow::TcpCounts;

use crate::pipeline::{Sink, StoreEvent};

/// Events per batch. Bounds the writer's transaction size and the memory a batch holds.
pub const BATCH_MAX: usize = 4096;
/// Batches queued for the writer. With BATCH_MAX and events of at most ~170 bytes this bounds
/// the queue to ~6 MiB; SQLite writes thousands of rows per millisecond, so 8 is plenty.
const QUEUE_BATCHES: usize = 8;
const BATCH_AGE: Duration = Duration::from_secs(1);

/// Opens (creating if needed) a database and brings its schema up to date.
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut conn = Connection::open(path).with_context(|| format!("opening database {}", path.display()))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    schema::migrate(&mut conn).with_context(|| format!("migrating database {}", path.display()))?;
    Ok(conn)
}

/// Whether a full queue blocks the pipeline (files: lose nothing) or drops the batch and counts
/// it (live capture: never stall the capture thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    Block,
    Drop,
}

/// Sink that feeds the writer thread.
pub struct SqliteSink {
    tx: Option<SyncSender<Vec<StoreEvent>>>,
    batch: Vec<StoreEvent>,
    batch_started: Instant,
    mode: Backpressure,
    /// Events dropped because the writer could not keep up (live mode only).
    pub dropped_events: u64,
    writer: Option<JoinHandle<anyhow::Result<WriterStats>>>,
}

/// What the writer did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub batches: u64,
    pub events: u64,
}

impl SqliteSink {
    /// Opens the database (running migrations) and starts the writer thread.
    pub fn start(path: &Path, mode: Backpressure) -> anyhow::Result<SqliteSink> {
        let conn = open(path)?;
        let (tx, rx) = sync_channel::<Vec<StoreEvent>>(QUEUE_BATCHES);
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .context("starting the store writer thread")?;
        Ok(SqliteSink {
            tx: Some(tx),
            batch: Vec::with_capacity(BATCH_MAX),
            batch_started: Instant::now(),
            mode,
            dropped_events: 0,
            writer: Some(writer),
        })
    }

    fn send_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_MAX));
        self.batch_started = Instant::now();
        let Some(tx) = &self.tx else { return };
        match self.mode {
            Backpressure::Block => {
                if let Err(e) = tx.send(batch) {
                    self.dropped_events += e.0.len() as u64;
                }
            }
            Backpressure::Drop => match tx.try_send(batch) {
                Ok(()) => {}
                Err(TrySendError::Full(b)) | Err(TrySendError::Disconnected(b)) => {
                    self.dropped_events += b.len() as u64;
                }
            },
        }
    }

    /// Flushes, stops the writer and waits for it; returns its statistics or its error.
    pub fn finish(mut self) -> anyhow::Result<WriterStats> {
        self.send_batch();
        self.tx = None;
        match self.writer.take() {
            Some(h) => h.join().map_err(|_| anyhow::anyhow!("store writer thread panicked"))?,
            None => Ok(WriterStats::default()),
        }
    }
}

impl Sink for SqliteSink {
    fn send(&mut self, ev: StoreEvent) {
        self.batch.push(ev);
        if self.batch.len() >= BATCH_MAX || self.batch_started.elapsed() >= BATCH_AGE {
            self.send_batch();
        }
    }

    fn flush(&mut self) {
        self.send_batch();
    }
}

impl Drop for SqliteSink {
    fn drop(&mut self) {
        self.send_batch();
        self.tx = None;
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

fn ip_text(ip: Option<IpAddr>) -> String {
    ip.map(|i| i.to_string()).unwrap_or_else(|| "other".into())
}

fn writer_loop(mut conn: Connection, rx: Receiver<Vec<StoreEvent>>) -> anyhow::Result<WriterStats> {
    let mut stats = WriterStats::default();
    while let Ok(batch) = rx.recv() {
        if let Err(e) = write_batch(&mut conn, &batch) {
            // Data loss: the one case that is logged at ERROR (operator action needed).
            tracing::error!("store writer: batch of {} events lost: {e:#}", batch.len());
            return Err(e);
        }
        stats.batches += 1;
        stats.events += batch.len() as u64;
    }
    Ok(stats)
}

/// `INSERT … ON CONFLICT(keys) DO UPDATE SET c = c + excluded.c` for every non-key column: the
/// store adds counters up instead of overwriting them (see the module docs).
fn upsert_sql(table: &str, keys: &[&str], counters: &[&str]) -> String {
    let cols: Vec<&str> = keys.iter().chain(counters).copied().collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let sets: Vec<String> = counters.iter().map(|c| format!("{c} = {c} + excluded.{c}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT({}) DO UPDATE SET {}",
        cols.join(", "),
        marks.join(", "),
        keys.join(", "),
        sets.join(", ")
    )
}

fn with_tcp(cols: &[&'static str]) -> Vec<&'static str> {
    cols.iter().copied().chain(TcpCounts::COLUMNS).collect()
}

fn write_batch(conn: &mut Connection, batch: &[StoreEvent]) -> anyhow::Result<()> {
    let minute_sql = upsert_sql(
        "traffic_minute",
        &["minute"],
        &with_tcp(&[
            "packets",
            "bytes",
            "tcp_packets",
            "udp_packets",
            "other_packets",
            "truncated",
            "decode_errors",
            "drops",
            "private_retransmissions",
        ]),
    );
    let pair_sql = upsert_sql("tcp_pair_minute", &["minute", "src", "dst"], &with_tcp(&["packets", "bytes"]));
    let flow_cols = with_tcp(&[
        "proto",
        "stream",
        "a_ip",
        "a_port",
        "b_ip",
        "b_port",
        "a_mac",
        "b_mac",
        "first_us",
        "last_us",
        "packets_ab",
        "packets_ba",
        "bytes_ab",
        "bytes_ba",
        "end_reason",
        "client",
    ]);
    let flow_sql = format!(
        "INSERT INTO flows ({}) VALUES ({})",
        flow_cols.join(", "),
        (1..=flow_cols.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
    );
    let counter_sql = upsert_sql("counter_minute", &["counter", "minute", "key"], &["value"]);
    let volume_sql = upsert_sql("user_volume_minute", &["minute", "user"], &["bytes_in", "bytes_out", "packets"]);
    let tx = conn.transaction()?;
    {
        let mut counter = tx.prepare_cached(&counter_sql)?;
        let mut volume = tx.prepare_cached(&volume_sql)?;
        let mut id_event = tx.prepare_cached(
            "INSERT INTO identity_events (ts, kind, mac, ip, users, hostname, frame) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut identity = tx.prepare_cached(
            "INSERT INTO identities (mac, ip, user, realm, hostname, source, outcome, error, first_us, last_us, count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1)
             ON CONFLICT (mac, ip, user, realm, hostname, source, outcome, error) DO UPDATE SET
                count = count + 1, first_us = min(first_us, excluded.first_us),
                last_us = max(last_us, excluded.last_us)",
        )?;
        let mut minute = tx.prepare_cached(&minute_sql)?;
        let mut pair = tx.prepare_cached(&pair_sql)?;
        let mut flow = tx.prepare_cached(&flow_sql)?;
        let mut app_error = tx.prepare_cached(
            "INSERT INTO app_errors (ts_us, frame, family, code, message, detail, client_ip, client_port,
                server_ip, server_port, client_mac, stream) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        let mut error_minute = tx.prepare_cached(
            "INSERT INTO app_error_minute (minute, family, code, server, count) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (minute, family, code, server) DO UPDATE SET count = count + excluded.count",
        )?;
        let mut alert_new = tx.prepare_cached(
            "INSERT INTO alerts (rule, key, severity, since_us, state, summary, count, value, baseline, threshold,
                mail, suppressed, context) VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (rule, key, since_us) DO UPDATE SET count = excluded.count",
        )?;
        let mut alert_clear = tx.prepare_cached(
            "UPDATE alerts SET state = 'cleared', cleared_us = ?4, count = ?5 WHERE rule = ?1 AND key = ?2 AND since_us = ?3",
        )?;
        let mut outbox = tx.prepare_cached(
            "INSERT INTO outbox (created_us, kind, alert_id, payload, evidence, next_try_us) VALUES (?1, ?2, ?3, ?4, ?5, ?1)",
        )?;
        for ev in batch {
            match ev {
                StoreEvent::Alert(n) => {
                    use crate::rules::alerts::State;
                    match n.state {
                        State::New => {
                            alert_new.execute(rusqlite::params![
                                n.rule,
                                n.key,
                                n.severity,
                                n.since.0 / 1000,
                                n.summary,
                                n.count as i64,
                                n.value.map(|v| v as i64),
                                n.baseline,
                                n.threshold,
                                n.mail,
                                n.suppressed,
                                serde_json::to_string(&n.context)?,
                            ])?;
                            if n.mail {
                                let id = tx.last_insert_rowid();
                                let pcap = (!n.evidence.is_empty()).then(|| crate::capture::write::pcapng(&n.evidence));
                                outbox.execute(rusqlite::params![
                                    wall_us(),
                                    "alert",
                                    id,
                                    serde_json::to_string(&**n)?,
                                    pcap
                                ])?;
                            }
                        }
                        State::Cleared => {
                            alert_clear.execute(rusqlite::params![
                                n.rule,
                                n.key,
                                n.since.0 / 1000,
                                n.ts.0 / 1000,
                                n.count as i64
                            ])?;
                        }
                    }
                }
                StoreEvent::Digest(d) => {
                    let mut d = (**d).clone();
                    d.lines.retain(|l| l.mail);
                    if !d.lines.is_empty() {
                        outbox.execute(rusqlite::params![
                            wall_us(),
                            "digest",
                            None::<i64>,
                            serde_json::to_string(&d)?,
                            None::<Vec<u8>>
                        ])?;
                    }
                }
                StoreEvent::AppError(e) => {
                    app_error.execute(rusqlite::params![
                        e.ts.0 / 1000,
                        e.frame as i64,
                        e.family.name(),
                        e.code,
                        e.message,
                        e.detail,
                        e.client.map(|c| c.0.to_string()),
                        e.client.map(|c| c.1),
                        e.server.map(|c| c.0.to_string()),
                        e.server.map(|c| c.1),
                        e.client_mac.as_ref().map(mac_text),
                        e.stream.map(|s| s as i64),
                    ])?;
                }
                StoreEvent::AppErrorMinute(c) => {
                    error_minute.execute(rusqlite::params![
                        c.minute,
                        c.family.name(),
                        c.code,
                        c.server.map(|s| s.to_string()).unwrap_or_default(),
                        c.count as i64
                    ])?;
                }
                StoreEvent::IdentityEvent(e) => {
                    id_event.execute(rusqlite::params![
                        e.ts,
                        e.kind,
                        e.mac,
                        e.ip,
                        serde_json::to_string(&e.users)?,
                        e.hostname,
                        e.frame as i64
                    ])?;
                }
                StoreEvent::UserVolume { minute, user, volume: v } => {
                    volume.execute(rusqlite::params![
                        minute,
                        user,
                        v.bytes_in as i64,
                        v.bytes_out as i64,
                        v.packets as i64
                    ])?;
                }
                StoreEvent::Identity(f) => {
                    let t = |s: &Option<String>| s.clone().unwrap_or_default();
                    let src = serde_json::to_value(f.source).ok().and_then(|v| v.as_str().map(String::from));
                    let outcome = serde_json::to_value(f.outcome).ok().and_then(|v| v.as_str().map(String::from));
                    identity.execute(rusqlite::params![
                        f.mac.as_ref().map(mac_text).unwrap_or_default(),
                        f.ip.map(|i| i.to_string()).unwrap_or_default(),
                        t(&f.user),
                        t(&f.realm),
                        t(&f.hostname),
                        src.unwrap_or_default(),
                        outcome.unwrap_or_default(),
                        t(&f.error),
                        f.ts.0 / 1000,
                        f.ts.0 / 1000,
                    ])?;
                }
                StoreEvent::Counter(c) => {
                    counter.execute(rusqlite::params![c.counter, c.minute, c.key, c.value as i64])?;
                }
                StoreEvent::Minute(m) => {
                    let head: [Value; 10] = [
                        m.minute.into(),
                        (m.packets as i64).into(),
                        (m.bytes as i64).into(),
                        (m.tcp_packets as i64).into(),
                        (m.udp_packets as i64).into(),
                        (m.other_packets as i64).into(),
                        (m.truncated as i64).into(),
                        (m.decode_errors as i64).into(),
                        (m.drops as i64).into(),
                        (m.private_retransmissions as i64).into(),
                    ];
                    minute.execute(params_from_iter(head.into_iter().chain(tcp_values(&m.tcp))))?;
                }
                StoreEvent::Pair(p) => {
                    let head: [Value; 5] = [
                        p.minute.into(),
                        ip_text(p.src).into(),
                        ip_text(p.dst).into(),
                        (p.packets as i64).into(),
                        (p.bytes as i64).into(),
                    ];
                    pair.execute(params_from_iter(head.into_iter().chain(tcp_values(&p.tcp))))?;
                }
                StoreEvent::Flow(f) => {
                    let client = f.client.map(|d| if d == 0 { "a" } else { "b" });
                    let head: [Value; 16] = [
                        (f.key.proto as i64).into(),
                        (f.stream as i64).into(),
                        f.key.a.to_string().into(),
                        (f.key.a_port as i64).into(),
                        f.key.b.to_string().into(),
                        (f.key.b_port as i64).into(),
                        f.mac[0].as_ref().map(mac_text).into(),
                        f.mac[1].as_ref().map(mac_text).into(),
                        (f.first_ts.0 / 1000).into(),
                        (f.last_ts.0 / 1000).into(),
                        (f.packets[0] as i64).into(),
                        (f.packets[1] as i64).into(),
                        (f.bytes[0] as i64).into(),
                        (f.bytes[1] as i64).into(),
                        f.reason.as_str().to_owned().into(),
                        client.map(str::to_owned).into(),
                    ];
                    flow.execute(params_from_iter(head.into_iter().chain(tcp_values(&f.tcp_counts))))?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

fn tcp_values(t: &TcpCounts) -> impl Iterator<Item = Value> {
    t.values().into_iter().map(|v| Value::Integer(v as i64))
}

/// Wall-clock microseconds since the epoch (outbox times are about mail, not packets).
pub fn wall_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Stored counter minutes, and (alert, key, last mail) triples.
pub type AlertHistory = (Vec<crate::rules::counters::CounterRow>, Vec<(String, String, crate::time::Ts)>);

/// What the alert engine needs back after a restart: the stored minutes (oldest first) of the
/// given counters over the baseline period before the newest one, and when each (alert, key)
/// last mailed.
pub fn alert_history(db: &Path, counters: &[String]) -> rusqlite::Result<AlertHistory> {
    let conn = Connection::open(db)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let newest: Option<i64> = conn.query_row("SELECT max(minute) FROM counter_minute", [], |r| r.get(0))?;
    let mut rows = Vec::new();
    if let Some(newest) = newest {
        let from = newest - crate::rules::alerts::BASELINE_DAYS * 86_400;
        let mut st = conn.prepare(
            "SELECT minute, key, value FROM counter_minute WHERE counter = ?1 AND minute > ?2 ORDER BY minute, key",
        )?;
        for c in counters {
            let it = st.query_map(rusqlite::params![c, from], |r| {
                Ok(crate::rules::counters::CounterRow {
                    minute: r.get(0)?,
                    counter: c.clone(),
                    key: r.get(1)?,
                    value: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })?;
            for r in it {
                rows.push(r?);
            }
        }
    }
    rows.sort_by_key(|r| r.minute);
    let mut st = conn.prepare("SELECT rule, key, max(since_us) FROM alerts WHERE mail = 1 GROUP BY rule, key")?;
    let mails = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, crate::time::Ts(r.get::<_, i64>(2)?.saturating_mul(1000)))))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((rows, mails))
}

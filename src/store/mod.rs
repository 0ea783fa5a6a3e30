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
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rusqlite::{params, Connection};

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
    let mut conn =
        Connection::open(path).with_context(|| format!("opening database {}", path.display()))?;
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
    pub path: PathBuf,
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
            path: path.to_path_buf(),
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
            Some(h) => h
                .join()
                .map_err(|_| anyhow::anyhow!("store writer thread panicked"))?,
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

fn mac_text(m: Option<[u8; 6]>) -> Option<String> {
    m.map(|m| {
        format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    })
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

fn write_batch(conn: &mut Connection, batch: &[StoreEvent]) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut minute = tx.prepare_cached(
            "INSERT INTO traffic_minute (minute, packets, bytes, tcp_packets, udp_packets, other_packets,
                truncated, decode_errors, drops, retransmissions, fast_retransmissions,
                spurious_retransmissions, duplicate_acks, out_of_order, lost_segments, zero_windows,
                private_retransmissions)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
             ON CONFLICT(minute) DO UPDATE SET packets = packets + excluded.packets,
                bytes = bytes + excluded.bytes, tcp_packets = tcp_packets + excluded.tcp_packets,
                udp_packets = udp_packets + excluded.udp_packets,
                other_packets = other_packets + excluded.other_packets,
                truncated = truncated + excluded.truncated,
                decode_errors = decode_errors + excluded.decode_errors, drops = drops + excluded.drops,
                retransmissions = retransmissions + excluded.retransmissions,
                fast_retransmissions = fast_retransmissions + excluded.fast_retransmissions,
                spurious_retransmissions = spurious_retransmissions + excluded.spurious_retransmissions,
                duplicate_acks = duplicate_acks + excluded.duplicate_acks,
                out_of_order = out_of_order + excluded.out_of_order,
                lost_segments = lost_segments + excluded.lost_segments,
                zero_windows = zero_windows + excluded.zero_windows,
                private_retransmissions = private_retransmissions + excluded.private_retransmissions",
        )?;
        let mut pair = tx.prepare_cached(
            "INSERT INTO tcp_pair_minute (minute, src, dst, packets, bytes, retransmissions,
                fast_retransmissions, spurious_retransmissions, duplicate_acks, out_of_order,
                lost_segments, zero_windows)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT(minute, src, dst) DO UPDATE SET packets = packets + excluded.packets,
                bytes = bytes + excluded.bytes, retransmissions = retransmissions + excluded.retransmissions,
                fast_retransmissions = fast_retransmissions + excluded.fast_retransmissions,
                spurious_retransmissions = spurious_retransmissions + excluded.spurious_retransmissions,
                duplicate_acks = duplicate_acks + excluded.duplicate_acks,
                out_of_order = out_of_order + excluded.out_of_order,
                lost_segments = lost_segments + excluded.lost_segments,
                zero_windows = zero_windows + excluded.zero_windows",
        )?;
        let mut flow = tx.prepare_cached(
            "INSERT INTO flows (proto, stream, a_ip, a_port, b_ip, b_port, a_mac, b_mac, first_us, last_us,
                packets_ab, packets_ba, bytes_ab, bytes_ba, retransmissions, fast_retransmissions,
                spurious_retransmissions, duplicate_acks, out_of_order, lost_segments, zero_windows,
                end_reason, client)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
                ?20, ?21, ?22, ?23)",
        )?;
        for ev in batch {
            match ev {
                StoreEvent::Minute(m) => {
                    let t = &m.tcp;
                    minute.execute(params![
                        m.minute,
                        m.packets as i64,
                        m.bytes as i64,
                        m.tcp_packets as i64,
                        m.udp_packets as i64,
                        m.other_packets as i64,
                        m.truncated as i64,
                        m.decode_errors as i64,
                        m.drops as i64,
                        t.retransmissions,
                        t.fast_retransmissions,
                        t.spurious_retransmissions,
                        t.duplicate_acks,
                        t.out_of_order,
                        t.lost_segments,
                        t.zero_windows,
                        m.private_retransmissions as i64,
                    ])?;
                }
                StoreEvent::Pair(p) => {
                    let t = &p.tcp;
                    pair.execute(params![
                        p.minute,
                        ip_text(p.src),
                        ip_text(p.dst),
                        p.packets as i64,
                        p.bytes as i64,
                        t.retransmissions,
                        t.fast_retransmissions,
                        t.spurious_retransmissions,
                        t.duplicate_acks,
                        t.out_of_order,
                        t.lost_segments,
                        t.zero_windows,
                    ])?;
                }
                StoreEvent::Flow(f) => {
                    let t = &f.tcp_counts;
                    let client = f.client.map(|d| if d == 0 { "a" } else { "b" });
                    flow.execute(params![
                        f.key.proto,
                        f.stream as i64,
                        f.key.a.to_string(),
                        f.key.a_port,
                        f.key.b.to_string(),
                        f.key.b_port,
                        mac_text(f.mac[0]),
                        mac_text(f.mac[1]),
                        f.first_ts.0 / 1000,
                        f.last_ts.0 / 1000,
                        f.packets[0] as i64,
                        f.packets[1] as i64,
                        f.bytes[0] as i64,
                        f.bytes[1] as i64,
                        t.retransmissions,
                        t.fast_retransmissions,
                        t.spurious_retransmissions,
                        t.duplicate_acks,
                        t.out_of_order,
                        t.lost_segments,
                        t.zero_windows,
                        f.reason.as_str(),
                        client,
                    ])?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

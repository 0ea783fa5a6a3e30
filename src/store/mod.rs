//! SQLite persistence: one writer thread, batched transactions, versioned schema.
//!
//! The pipeline never touches the database: [`SqliteSink`] buffers [`StoreEvent`]s and hands
//! them in batches (at most [`BATCH_MAX`] events or one second old) over a bounded channel to the
//! writer thread, which writes each batch in one transaction. SD cards and USB sticks wear with
//! every write, so batching is the point, not an optimisation. The database runs in WAL mode and
//! never corrupts on a crash. The daemon syncs each batch (`synchronous=FULL`: one fsync a
//! second at most), so a power cut loses at most the last second; `analyze` leaves it to the
//! kernel (`NORMAL`).
//!
//! Counters are upserted (`+=`): a minute that appears twice (time running backwards in a merged
//! capture, or two files of one day) adds up instead of overwriting.

mod batch;
pub mod dashboard;
pub mod disk_alerts;
pub mod pcapng;
pub mod read;
pub mod ring;
pub mod schema;
pub mod settings;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rusqlite::Connection;

use crate::event::{Sink, StoreEvent};

/// Events per batch. Bounds the writer's transaction size and the memory a batch holds.
pub const BATCH_MAX: usize = 4096;
/// Batches queued for the writer. With BATCH_MAX and events of at most ~170 bytes this bounds
/// the queue to ~6 MiB; SQLite writes thousands of rows per millisecond, so 8 is plenty.
const QUEUE_BATCHES: usize = 8;
const BATCH_AGE: Duration = Duration::from_secs(1);
/// Events the writer holds while the database refuses writes (another connection holds the
/// lock, an I/O error, a full disk): ≤ ~11 MiB inline. Beyond it the oldest batch is dropped
/// and counted (live capture), or the pipeline waits (files).
pub const HOLD_EVENTS: usize = 65_536;
/// Backoff between attempts while the store fails.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// A batch that fails for a reason that is not transient (a bug, a damaged file) is tried this
/// often, then dropped and counted, so one bad batch cannot stop the store for good.
const PERMANENT_ATTEMPTS: u32 = 3;
/// How long the writer keeps trying to write what it holds once the pipeline has stopped.
const SHUTDOWN_GRACE_LIVE: Duration = Duration::from_secs(3);
const SHUTDOWN_GRACE_FILES: Duration = Duration::from_secs(60);
/// How often an idle writer looks whether its database is still there.
const IDLE_CHECK: Duration = Duration::from_secs(2);
/// While failing, a health line is logged this often.
const HEALTH_LOG_EVERY: Duration = Duration::from_secs(10);

/// Opens the database only if it exists, for every part of the daemon but the store writer
/// (the mailer, the jobs, the alert restore, the dashboard's writes): a store whose stick was
/// pulled must not be created again, empty, on the card under the mount point, where the
/// writer would then take it for the store come back.
pub fn open_existing(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

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
    // The writer retries by itself: a short busy wait keeps it draining the channel (which must
    // not fill up behind a lock) and its health current while another connection writes.
    conn.busy_timeout(Duration::from_millis(250))?;
    Ok(conn)
}

/// [`open`], and with `durable` every commit synced to disk before it returns: in WAL mode
/// `synchronous=NORMAL` syncs only at checkpoints, so a power cut could take back minutes of
/// commits; `FULL` costs one fsync per batch (at most about one a second in the daemon).
fn open_durable(path: &Path, durable: bool) -> anyhow::Result<Connection> {
    let c = open(path)?;
    if durable {
        c.pragma_update(None, "synchronous", "FULL")?;
    }
    Ok(c)
}

/// Whether a full queue blocks the pipeline (files: lose nothing) or drops the batch and counts
/// it (live capture: never stall the capture thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    Block,
    Drop,
}

/// The writer's health, shared with the daemon (read once a second, never locked on the
/// capture path but for the error text).
#[derive(Debug, Default)]
pub struct StoreHealth {
    /// Wall-clock µs of the first failure of the current failing spell; 0 while writes succeed.
    pub failing_since_us: AtomicI64,
    /// Failed attempts to write a batch, since start.
    pub failures: AtomicU64,
    /// Events the writer gave up on (held beyond [`HOLD_EVENTS`], a batch refused for good, or
    /// still unwritten at shutdown).
    pub lost_events: AtomicU64,
    /// Events waiting in the writer for the store to accept them.
    pub held_events: AtomicU64,
    pub last_error: Mutex<String>,
    /// Wall-clock µs at which the writer began the write it is in; 0 while it is not writing
    /// (idle, or waiting out a backoff). The systemd watchdog stops when a write hangs.
    pub writing_since_us: AtomicI64,
    /// Events written, since start.
    pub written_events: AtomicU64,
    /// The daemon is stopping (SIGTERM): a failing store gets the short grace, so the process
    /// ends within the unit's TimeoutStopSec, saying what it could not store.
    pub stopping: std::sync::atomic::AtomicBool,
}

impl StoreHealth {
    /// Since when writes fail (wall-clock µs), and why; `None` while the store is healthy.
    pub fn failing(&self) -> Option<(i64, String)> {
        let since = self.failing_since_us.load(Ordering::Relaxed);
        (since != 0).then(|| (since, self.last_error.lock().map(|e| e.clone()).unwrap_or_default()))
    }
}

/// Sink that feeds the writer thread.
pub struct SqliteSink {
    tx: Option<SyncSender<Vec<StoreEvent>>>,
    batch: Vec<StoreEvent>,
    batch_started: Instant,
    mode: Backpressure,
    /// Events dropped because the writer could not keep up (live mode only).
    pub dropped_events: u64,
    /// Events handed to the writer (or dropped on the way), since start.
    sent_events: u64,
    /// The writer's health (shared with the writer thread).
    pub health: Arc<StoreHealth>,
    writer: Option<JoinHandle<anyhow::Result<WriterStats>>>,
    /// The daemon's stop flag: a blocked send gives up when it is set (a replay into a locked
    /// store must still stop on SIGTERM).
    stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Sees each batch before the writer does (the fleet export).
    tap: Option<Box<dyn crate::event::Tap>>,
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
        Self::start_with(path, mode, true)
    }

    /// `outbox`: whether mailed alerts are queued for the mailer. Without a `[mail]` section
    /// nothing would ever send (and delete) them, so alerts are stored without outbox rows.
    /// For a command (`analyze --db`): the database is opened now or the error is returned, so
    /// a path that cannot be written is said at once, not after the writer's retries.
    pub fn start_with(path: &Path, mode: Backpressure, outbox: bool) -> anyhow::Result<SqliteSink> {
        let conn = open_durable(path, false)?;
        Self::spawn(path, Some(conn), mode, outbox, None, false)
    }

    /// [`start_with`](Self::start_with); `evidence_window` (µs before and after): each new
    /// alert about the traffic gets an evidence window for the pcap ring to cut. `durable`: each
    /// batch is on disk when its transaction ends (`synchronous=FULL`, one fsync a second), so a
    /// power cut loses at most the last second; without it (files) the kernel decides when.
    pub fn start_opts(
        path: &Path,
        mode: Backpressure,
        outbox: bool,
        evidence_window: Option<(i64, i64)>,
        durable: bool,
    ) -> anyhow::Result<SqliteSink> {
        // A database that cannot be opened for a passing reason (a full disk, a medium that is
        // not there yet) is opened by the writer later, with the same retries as its writes:
        // capture and analysis start anyway. Anything else (a schema from a newer version, a
        // file that is no database) stops here.
        let conn = match open_durable(path, durable) {
            Ok(c) => Some(c),
            Err(e) if is_transient(&e) => {
                tracing::error!("store not opened yet, retrying in the writer: {e:#}");
                None
            }
            Err(e) => return Err(e),
        };
        Self::spawn(path, conn, mode, outbox, evidence_window, durable)
    }

    fn spawn(
        path: &Path,
        conn: Option<Connection>,
        mode: Backpressure,
        outbox: bool,
        evidence_window: Option<(i64, i64)>,
        durable: bool,
    ) -> anyhow::Result<SqliteSink> {
        let path = path.to_path_buf();
        let (tx, rx) = sync_channel::<Vec<StoreEvent>>(QUEUE_BATCHES);
        let health = Arc::new(StoreHealth::default());
        let h = Arc::clone(&health);
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || Writer::new(path, conn, mode, h, outbox, evidence_window, durable).run(rx))
            .context("starting the store writer thread")?;
        Ok(SqliteSink {
            tx: Some(tx),
            batch: Vec::with_capacity(BATCH_MAX),
            batch_started: Instant::now(),
            mode,
            dropped_events: 0,
            sent_events: 0,
            health,
            writer: Some(writer),
            stop: None,
            tap: None,
        })
    }

    /// Hands over what is batched and waits (at most `timeout`) until the writer has written
    /// or given up on every event sent so far.
    pub fn wait_idle(&mut self, timeout: Duration) {
        self.send_batch();
        let t0 = Instant::now();
        // A stop (SIGTERM) ends the wait: the daemon must be gone within the unit's stop timeout.
        while t0.elapsed() < timeout && !self.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
            let done = self.health.written_events.load(Ordering::Relaxed)
                + self.health.lost_events.load(Ordering::Relaxed)
                + self.dropped_events;
            if done >= self.sent_events {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_MAX));
        self.batch_started = Instant::now();
        if let Some(t) = self.tap.as_mut() {
            t.batch(&batch);
        }
        self.sent_events += batch.len() as u64;
        let Some(tx) = &self.tx else { return };
        match self.mode {
            Backpressure::Block => {
                let Some(stop) = &self.stop else {
                    if let Err(e) = tx.send(batch) {
                        self.dropped_events += e.0.len() as u64;
                    }
                    return;
                };
                // Wait for room, unless the daemon is stopping.
                let mut batch = batch;
                loop {
                    match tx.try_send(batch) {
                        Ok(()) => return,
                        Err(TrySendError::Full(b)) if !stop.load(Ordering::Relaxed) => {
                            batch = b;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(TrySendError::Full(b)) | Err(TrySendError::Disconnected(b)) => {
                            self.health.stopping.store(true, Ordering::Relaxed);
                            self.dropped_events += b.len() as u64;
                            return;
                        }
                    }
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
    /// Gives up a blocked send once `stop` is set (see [`SqliteSink::stop`]).
    pub fn stop_on(&mut self, stop: Arc<std::sync::atomic::AtomicBool>) {
        self.stop = Some(stop);
    }

    /// Hands each batch to `tap` too (before the writer sees it).
    pub fn set_tap(&mut self, tap: Box<dyn crate::event::Tap>) {
        self.tap = Some(tap);
    }

    pub fn finish(mut self) -> anyhow::Result<WriterStats> {
        self.send_batch();
        self.tx = None;
        self.tap = None;
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

/// The database file the writer has open is no longer the one at its path: the directory was
/// deleted, the USB stick pulled, or another file system mounted over it. SQLite would go on
/// writing into the unlinked file, where nothing can read it again.
#[derive(Debug, thiserror::Error)]
#[error("store vanished: {0}")]
pub struct Vanished(String);

/// Where an open database lives: (device, inode) of the file and the device of its directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    dir_dev: u64,
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        let dir =
            std::fs::metadata(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))).ok()?;
        Some(FileId { dev: m.dev(), ino: m.ino(), dir_dev: dir.dev() })
    }
}

/// Errors worth waiting out: another connection holds the lock, the medium hiccups, the disk is
/// full (retention or the admin frees it), the store vanished (until it is back). Anything else
/// is a bug or damage.
fn is_transient(e: &anyhow::Error) -> bool {
    use rusqlite::ErrorCode::*;
    if e.downcast_ref::<Vanished>().is_some() {
        return true;
    }
    match e.downcast_ref::<rusqlite::Error>() {
        Some(rusqlite::Error::SqliteFailure(f, _)) => matches!(
            f.code,
            DatabaseBusy | DatabaseLocked | SystemIoFailure | DiskFull | CannotOpen | ReadOnly | OutOfMemory
        ),
        _ => false,
    }
}

/// The writer thread: writes batches in order, holding them (bounded) and retrying with backoff
/// while the database refuses, and resuming by itself.
struct Writer {
    path: std::path::PathBuf,
    /// `None` until the database could be opened.
    conn: Option<Connection>,
    mode: Backpressure,
    health: Arc<StoreHealth>,
    held: VecDeque<Vec<StoreEvent>>,
    held_events: usize,
    stats: WriterStats,
    backoff: Duration,
    /// Failed attempts at the oldest held batch.
    attempts: u32,
    /// Failures and losses of the current failing spell, stored once writes work again.
    spell_failures: u64,
    spell_lost: u64,
    /// What began the spell (stored with it: "vanished", "locked", "disk full"…).
    spell_cause: String,
    last_health_log: Option<Instant>,
    outbox: bool,
    evidence_window: Option<(i64, i64)>,
    durable: bool,
    /// The open database's identity, checked before every batch.
    id: Option<FileId>,
    /// The directory's device when the store was first opened: after a vanish the store is
    /// opened again only on that file system (or where a database is back), never created on
    /// the card under an unmounted stick's mount point.
    home_dev: Option<u64>,
}

impl Writer {
    fn new(
        path: std::path::PathBuf,
        conn: Option<Connection>,
        mode: Backpressure,
        health: Arc<StoreHealth>,
        outbox: bool,
        evidence_window: Option<(i64, i64)>,
        durable: bool,
    ) -> Writer {
        Writer {
            outbox,
            evidence_window,
            durable,
            path,
            conn,
            mode,
            health,
            held: VecDeque::new(),
            held_events: 0,
            stats: WriterStats::default(),
            backoff: RETRY_MIN,
            attempts: 0,
            spell_failures: 0,
            spell_lost: 0,
            spell_cause: String::new(),
            last_health_log: None,
            id: None,
            home_dev: None,
        }
        .with_identity()
    }

    fn with_identity(mut self) -> Writer {
        if self.conn.is_some() {
            self.id = FileId::of(&self.path);
            self.home_dev = self.id.map(|i| i.dir_dev);
        }
        self
    }

    /// Whether the open database is still the file at its path (one `stat` per batch).
    fn check_still_there(&mut self) -> anyhow::Result<()> {
        let (Some(_), Some(id)) = (&self.conn, self.id) else { return Ok(()) };
        let now = FileId::of(&self.path);
        if now == Some(id) {
            return Ok(());
        }
        self.conn = None;
        self.id = None;
        let why = match now {
            None => format!("{} is gone (directory deleted or medium removed)", self.path.display()),
            Some(n) if n.dir_dev != id.dir_dev => {
                format!("{} is on another file system now (remounted)", self.path.display())
            }
            Some(_) => format!("{} was replaced by another file", self.path.display()),
        };
        Err(Vanished(format!("{why}; holding events until it is back")).into())
    }

    /// Opens the database again after it vanished: only where it was (the same file system)
    /// or where a database is back; never by creating the directory.
    fn reopen(&mut self) -> anyhow::Result<Connection> {
        use std::os::unix::fs::MetadataExt;
        if let Some(home) = self.home_dev {
            let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let dir_dev = std::fs::metadata(dir).map(|m| m.dev()).ok();
            let back = dir_dev == Some(home) || self.path.exists();
            if !back {
                return Err(Vanished(format!(
                    "{} is not back yet ({})",
                    self.path.display(),
                    if dir_dev.is_some() { "another file system is mounted there" } else { "no directory" }
                ))
                .into());
            }
        }
        let c = open_durable(&self.path, self.durable)?;
        self.id = FileId::of(&self.path);
        self.home_dev = self.home_dev.or(self.id.map(|i| i.dir_dev));
        Ok(c)
    }

    fn hold(&mut self, b: Vec<StoreEvent>) {
        self.held_events += b.len();
        self.held.push_back(b);
        // Live capture: the newest data wins; the oldest held batch is dropped and counted.
        while self.held_events > HOLD_EVENTS && self.held.len() > 1 {
            let old = self.held.pop_front().expect("non-empty");
            self.lose(old.len());
            self.attempts = 0;
        }
        self.health.held_events.store(self.held_events as u64, Ordering::Relaxed);
    }

    fn lose(&mut self, n: usize) {
        self.held_events -= n;
        self.spell_lost += n as u64;
        self.health.lost_events.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Whether more batches may be taken from the channel now (files: the pipeline waits rather
    /// than lose anything when the writer holds its maximum).
    fn may_take(&self) -> bool {
        self.mode == Backpressure::Drop || self.held_events < HOLD_EVENTS
    }

    fn run(mut self, rx: Receiver<Vec<StoreEvent>>) -> anyhow::Result<WriterStats> {
        let mut closed_at: Option<Instant> = None;
        loop {
            if self.held.is_empty() {
                // Idle, the store is still looked at: a store that vanishes while nothing is
                // written shows as failing at once, and one that is back is opened again.
                match rx.recv_timeout(IDLE_CHECK) {
                    Ok(b) => self.hold(b),
                    Err(RecvTimeoutError::Timeout) => {
                        self.idle_check();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return Ok(self.stats),
                }
            }
            while closed_at.is_none() && self.may_take() {
                match rx.try_recv() {
                    Ok(b) => self.hold(b),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => closed_at = Some(Instant::now()),
                }
            }
            match self.write_oldest() {
                Ok(()) => continue,
                Err(e) => {
                    let grace = match self.mode {
                        _ if self.health.stopping.load(Ordering::Relaxed) => SHUTDOWN_GRACE_LIVE,
                        Backpressure::Drop => SHUTDOWN_GRACE_LIVE,
                        Backpressure::Block => SHUTDOWN_GRACE_FILES,
                    };
                    if closed_at.is_some_and(|t| t.elapsed() >= grace) {
                        let n = self.held_events;
                        self.lose(n);
                        tracing::error!("store writer: stopped with {n} events unwritten: {e:#}");
                        return Err(e.context(format!("{n} events could not be stored")));
                    }
                    // Wait out the backoff, taking new batches meanwhile (the channel must not
                    // fill up behind a failing store).
                    let until = Instant::now() + self.backoff;
                    while let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
                        if closed_at.is_some() || !self.may_take() {
                            std::thread::sleep(left);
                            break;
                        }
                        match rx.recv_timeout(left) {
                            Ok(b) => self.hold(b),
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => closed_at = Some(Instant::now()),
                        }
                    }
                    self.backoff = (self.backoff * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Writes the oldest held batch. On failure the batch stays held (its transaction rolled
    /// back, so a retry cannot count anything twice).
    fn write_oldest(&mut self) -> anyhow::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        self.health.writing_since_us.store(wall_us(), Ordering::Relaxed);
        let written = match self.check_still_there() {
            Err(e) => Err(e),
            Ok(()) => {
                let batch = self.held.front().expect("non-empty");
                match &mut self.conn {
                    Some(c) => batch::write(c, batch, self.outbox, self.evidence_window),
                    None => match self.reopen() {
                        Ok(mut c) => {
                            tracing::info!("store opened: {}", self.path.display());
                            let batch = self.held.front().expect("non-empty");
                            let r = batch::write(&mut c, batch, self.outbox, self.evidence_window);
                            self.conn = Some(c);
                            r
                        }
                        Err(e) => Err(e),
                    },
                }
            }
        };
        self.health.writing_since_us.store(0, Ordering::Relaxed);
        match written {
            Ok(()) => {
                let b = self.held.pop_front().expect("non-empty");
                self.held_events -= b.len();
                self.health.held_events.store(self.held_events as u64, Ordering::Relaxed);
                self.stats.batches += 1;
                self.stats.events += b.len() as u64;
                self.health.written_events.fetch_add(b.len() as u64, Ordering::Relaxed);
                self.attempts = 0;
                self.backoff = RETRY_MIN;
                if self.health.failing_since_us.load(Ordering::Relaxed) != 0 {
                    self.recovered();
                }
                Ok(())
            }
            Err(e) => {
                self.attempts += 1;
                self.failed(&e);
                if !is_transient(&e) && self.attempts >= PERMANENT_ATTEMPTS {
                    let b = self.held.pop_front().expect("non-empty");
                    tracing::error!(
                        "store writer: batch of {} events dropped after {} attempts: {e:#}",
                        b.len(),
                        self.attempts
                    );
                    self.lose(b.len());
                    self.health.held_events.store(self.held_events as u64, Ordering::Relaxed);
                    self.attempts = 0;
                }
                Err(e)
            }
        }
    }

    /// A failed attempt: counted, and the spell reported (at its start, then every
    /// [`HEALTH_LOG_EVERY`]).
    fn failed(&mut self, e: &anyhow::Error) {
        self.spell_failures += 1;
        self.health.failures.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.health.last_error.lock() {
            *last = format!("{e:#}");
        }
        let now = wall_us();
        let first = self.health.failing_since_us.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed).is_ok();
        if first {
            self.spell_cause = format!("{e:#}");
            tracing::error!("store failing: {e:#}; holding up to {HOLD_EVENTS} events and retrying");
            self.last_health_log = Some(Instant::now());
        } else if self.last_health_log.is_none_or(|t| t.elapsed() >= HEALTH_LOG_EVERY) {
            self.last_health_log = Some(Instant::now());
            let since = (now - self.health.failing_since_us.load(Ordering::Relaxed)) / 1_000_000;
            tracing::warn!(
                "store health: failing for {since} s ({} attempts): {e:#}; {} events held, {} lost",
                self.spell_failures,
                self.held_events,
                self.spell_lost
            );
        }
    }

    /// With nothing to write: whether the store is still there, and once it vanished, whether
    /// it is back.
    fn idle_check(&mut self) {
        if self.conn.is_some() {
            if let Err(e) = self.check_still_there() {
                self.failed(&e);
            }
        } else if self.home_dev.is_some() && self.health.failing_since_us.load(Ordering::Relaxed) != 0 {
            match self.reopen() {
                Ok(c) => {
                    tracing::info!("store opened: {}", self.path.display());
                    self.conn = Some(c);
                    self.backoff = RETRY_MIN;
                    self.recovered();
                }
                Err(e) => self.failed(&e),
            }
        }
    }

    /// Writes work again: the spell is stored as health events and logged.
    fn recovered(&mut self) {
        let since = self.health.failing_since_us.swap(0, Ordering::Relaxed);
        let now = wall_us();
        let last = self.health.last_error.lock().map(|e| e.clone()).unwrap_or_default();
        let cause = std::mem::take(&mut self.spell_cause);
        let error = if cause.is_empty() || cause == last { last } else { format!("{cause} (last: {last})") };
        let mut rows = vec![
            (since, "store.failing", self.spell_failures, error),
            (now, "store.recovered", ((now - since) / 1_000_000).max(0) as u64, "seconds failing".to_string()),
        ];
        if self.spell_lost > 0 {
            rows.push((now, "store.lost", self.spell_lost, "events dropped while the store failed".to_string()));
        }
        let Some(conn) = &self.conn else { return };
        let res: rusqlite::Result<()> = rows.iter().try_for_each(|(ts, kind, n, detail)| {
            conn.execute(
                "INSERT INTO health_events (ts_us, kind, count, detail) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![ts, kind, *n as i64, detail],
            )
            .map(|_| ())
        });
        if let Err(e) = res {
            tracing::warn!("store health events not recorded: {e}");
        }
        tracing::info!(
            "store recovered after {} s: {} failed attempts, {} events lost",
            (now - since) / 1_000_000,
            self.spell_failures,
            self.spell_lost
        );
        self.spell_failures = 0;
        self.spell_lost = 0;
    }
}

/// Wall-clock microseconds since the epoch (outbox times are about mail, not packets).
pub fn wall_us() -> i64 {
    crate::time::wall_now().0 / 1000
}

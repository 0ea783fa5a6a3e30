//! The pcap ring: every captured frame, credentials masked, in rotating pcapng files under
//! `<store dir>/ring/`, and the evidence windows cut from it around alerts, kept under
//! `<store dir>/evidence/` until the admin deletes them. Database, ring and evidence share
//! `[store] disk_budget`: the oldest ring file goes first.
//!
//! The capture thread only copies each frame into a buffer from a fixed pool and overwrites the
//! bytes the analyzers reported as credentials ([`Ring::push`]: no allocation, no system call);
//! when no buffer is free the frame is left out of the ring and counted, and analysis goes on.
//! No clear credential reaches a buffer, so none can reach a file. The writer thread appends the
//! buffers to the
//! current file, rotates, deletes, cuts windows, and watches the disk (`disk.low`). A full disk
//! or a vanished USB stick stops the writing, never the capture; writing resumes by itself.
//!
//! Crash safety: files are only appended to and a restart starts a new one, so a power cut costs
//! the unwritten buffers (about a second) and at worst a torn last block, where readers stop.
//! The windows to cut are rows of the `evidence` table, written in the same transaction as
//! their alert: a window pending at a crash is cut from the ring files after the restart.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rusqlite::{params, Connection, OptionalExtension};

use super::pcapng as write;
use crate::capture::file::FileSource;
use crate::capture::mask::Masks;
use crate::capture::{PacketSource, RawPacket};
use crate::store::wall_us;
use crate::time::Ts;

/// Capacity of one buffer: a frame of the largest size a capture file may hold fits.
const CHUNK_BYTES: usize = 512 * 1024;
/// How often the writer looks at the budget, the pending windows and the disk.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// After a write error the writer tries again this much later (frames meanwhile are lost).
const RETRY: Duration = Duration::from_secs(5);
/// A window whose end the ring has not reached (the traffic stopped) is cut this long after
/// its end by the wall clock.
const WINDOW_GRACE_US: i64 = 30_000_000;
/// Windows of alerts close together share one file while the span stays within this.
const MERGE_SPAN_US: i64 = 600_000_000;
/// Free space the ring leaves on the file system: 5 % of it, at most this.
const RESERVE_MAX: u64 = 64 << 20;

/// The ring's configuration, from `[store]`.
#[derive(Clone, Debug)]
pub struct RingSettings {
    /// `[store] dir`: the ring, the evidence and (usually) the database live here.
    pub store_dir: PathBuf,
    pub db: PathBuf,
    pub budget: u64,
    pub file_size: u64,
    /// Memory for frames on their way to disk.
    pub buffer: u64,
    pub evidence_max: u64,
    /// The `disk.low` rules come from here.
    pub rules_dir: PathBuf,
}

impl RingSettings {
    pub fn from_config(
        cfg: &super::settings::StoreConfig,
        db: &Path,
        rules_dir: &Path,
    ) -> anyhow::Result<RingSettings> {
        let size = |key: &str, v: &str| {
            crate::units::parse_size(v)
                .ok_or_else(|| anyhow::anyhow!("[store] {key} = {v:?}: not a size like \"64MiB\""))
        };
        let budget = size("disk_budget", &cfg.disk_budget)?;
        // At least eight files fit in the budget, so deleting the oldest frees a useful share.
        let file_size = size("ring_file_size", &cfg.ring_file_size)?.min(budget / 8).max(64 * 1024);
        Ok(RingSettings {
            store_dir: cfg.dir.clone(),
            db: db.to_path_buf(),
            budget,
            file_size,
            buffer: size("ring_buffer", &cfg.ring_buffer)?.max(2 * CHUNK_BYTES as u64),
            evidence_max: size("evidence_max", &cfg.evidence_max)?,
            rules_dir: rules_dir.to_path_buf(),
        })
    }

    pub fn ring_dir(&self) -> PathBuf {
        self.store_dir.join("ring")
    }

    pub fn evidence_dir(&self) -> PathBuf {
        evidence_dir(&self.store_dir)
    }
}

/// The ring's files in `dir` (`ring-<seq>-<time>.pcapng`), oldest first, with their sequence
/// numbers.
pub fn ring_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let seq = name.strip_prefix("ring-")?.split('-').next()?.parse::<u64>().ok()?;
                    name.ends_with(".pcapng").then(|| (seq, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Where the evidence windows are kept.
pub fn evidence_dir(store_dir: &Path) -> PathBuf {
    store_dir.join("evidence")
}

/// What the ring did; read by the dashboard and `/metrics`.
#[derive(Debug, Default)]
pub struct RingStats {
    pub frames_written: AtomicU64,
    /// Frames left out of the ring: no free buffer (the disk too slow) or writing failed.
    pub frames_lost: AtomicU64,
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    /// Packet time of the oldest and newest frame in the ring, ns (0: none).
    pub oldest_ns: AtomicI64,
    pub newest_ns: AtomicI64,
    pub files_deleted: AtomicU64,
    pub evidence_bytes: AtomicU64,
    /// Wall-clock µs since which writes fail (0: they do not), and why.
    pub failing_since_us: AtomicI64,
    pub error: Mutex<String>,
}

struct Chunk {
    buf: Vec<u8>,
    link: u16,
    frames: u32,
    oldest_ns: i64,
    newest_ns: i64,
}

enum Msg {
    Chunk(Chunk),
    /// The input has ended (a replayed file): pending windows are cut now.
    EndOfInput,
}

/// The capture thread's side of the ring.
pub struct Ring {
    tx: Option<SyncSender<Msg>>,
    free: Receiver<Chunk>,
    cur: Option<Chunk>,
    pub stats: Arc<RingStats>,
    thread: Option<JoinHandle<()>>,
    /// Files: wait for a free buffer rather than leave a frame out.
    blocking: bool,
    /// Set when the daemon stops: the writer finishes the file it writes and leaves windows
    /// pending (cut after the restart) instead of waiting on a database another process may
    /// hold locked.
    stopping: Arc<AtomicBool>,
}

impl Ring {
    /// Creates the directories and starts the writer thread. The database must exist (the
    /// store writer has migrated it).
    pub fn start(s: RingSettings) -> anyhow::Result<Ring> {
        let chunks = (s.buffer as usize / CHUNK_BYTES).max(2);
        let (free_tx, free) = sync_channel(chunks);
        for _ in 0..chunks {
            free_tx.send(Chunk {
                buf: Vec::with_capacity(CHUNK_BYTES),
                link: 0,
                frames: 0,
                oldest_ns: 0,
                newest_ns: 0,
            })?;
        }
        // The writer holds at most every buffer: sends never block.
        let (tx, rx) = sync_channel(chunks + 1);
        let stats = Arc::new(RingStats::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let mut w = RingWriter::new(s, Arc::clone(&stats), free_tx, Arc::clone(&stopping));
        w.scan();
        let thread = std::thread::Builder::new()
            .name("pcap-ring".into())
            .spawn(move || w.run(rx))
            .context("starting the pcap ring thread")?;
        Ok(Ring { tx: Some(tx), free, cur: None, stats, thread: Some(thread), blocking: false, stopping })
    }

    /// A replayed file waits for the disk instead of leaving frames out (live capture never
    /// waits).
    pub fn blocking(mut self) -> Ring {
        self.blocking = true;
        self
    }

    /// Copies one frame into the ring's buffers with its credentials (`masks`, offsets in the
    /// frame) overwritten; never blocks.
    pub fn push(&mut self, pkt: &RawPacket<'_>, masks: &Masks) {
        let need = write::packet_block_len(pkt.data.len());
        if let Some(c) = &self.cur {
            if c.link != pkt.link.0 || c.buf.len() + need > CHUNK_BYTES {
                self.flush();
            }
        }
        if self.cur.is_none() {
            let next = match self.blocking {
                true => self.free.recv().map_err(|_| ()),
                false => self.free.try_recv().map_err(|_| ()),
            };
            match next {
                Ok(mut c) => {
                    c.buf.clear();
                    c.frames = 0;
                    c.oldest_ns = i64::MAX;
                    c.newest_ns = i64::MIN;
                    c.link = pkt.link.0;
                    self.cur = Some(c);
                }
                Err(_) => {
                    self.stats.frames_lost.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        let Some(c) = self.cur.as_mut() else { return };
        if need > CHUNK_BYTES {
            // Larger than any frame a capture holds: not kept, but counted.
            self.stats.frames_lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let at = c.buf.len() + 28;
        write::packet_block(&mut c.buf, 0, pkt.ts, pkt.orig_len, pkt.data);
        if !masks.is_empty() {
            masks.apply(&mut c.buf[at..at + pkt.data.len()]);
        }
        c.frames += 1;
        c.oldest_ns = c.oldest_ns.min(pkt.ts.0);
        c.newest_ns = c.newest_ns.max(pkt.ts.0);
    }

    /// Hands the frames buffered so far to the writer (once a second: at most that is lost by
    /// a power cut).
    pub fn flush(&mut self) {
        if let (Some(c), Some(tx)) = (self.cur.take(), &self.tx) {
            if c.frames > 0 {
                // Never blocks: the channel holds every buffer there is.
                let _ = tx.try_send(Msg::Chunk(c));
            } else {
                self.cur = Some(c);
            }
        }
    }

    /// A replayed file has ended: the windows still waiting for frames are cut now.
    pub fn end_of_input(&mut self) {
        self.flush();
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::EndOfInput);
        }
    }

    /// The daemon is stopping: no more window cuts (they wait for the restart), so the writer
    /// is free to close its file as soon as the frames still buffered are written.
    pub fn stop_soon(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Writes what is buffered and stops the writer.
    pub fn finish(mut self) {
        self.flush();
        // Drop closes the channel and joins the writer.
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug)]
struct RingFile {
    path: PathBuf,
    first_ns: i64,
    /// Newest frame written (files found at start: the next file's first frame).
    last_ns: i64,
    bytes: u64,
}

struct Current {
    file: File,
    /// The file's inode: a ring file deleted under the writer (its directory removed, the
    /// stick pulled) is noticed, not appended to in the void.
    ino: u64,
    link: u16,
    /// Size at which this file is closed (fixed when it was opened).
    limit: u64,
}

/// An evidence window waiting to be cut (a row of the `evidence` table).
#[derive(Clone, Copy, Debug)]
struct Window {
    id: i64,
    from_us: i64,
    to_us: i64,
    at_us: i64,
    created_us: i64,
}

struct RingWriter {
    s: RingSettings,
    stats: Arc<RingStats>,
    free: SyncSender<Chunk>,
    /// Oldest first; the current file, when open, is the last.
    files: VecDeque<RingFile>,
    cur: Option<Current>,
    next_seq: u64,
    retry_at: Option<Instant>,
    conn: Option<Connection>,
    pending: Vec<Window>,
    /// Failed cuts per window (a window is given up after three).
    attempts: HashMap<i64, u32>,
    end_of_input: bool,
    disk: DiskWatch,
    last_disk_check: Option<Instant>,
    stopping: Arc<AtomicBool>,
    /// The store directory's device when the ring started: ring files are written only there,
    /// never into the mount point an unmounted stick leaves behind.
    home_dev: Option<u64>,
}

impl RingWriter {
    fn new(s: RingSettings, stats: Arc<RingStats>, free: SyncSender<Chunk>, stopping: Arc<AtomicBool>) -> RingWriter {
        RingWriter {
            s,
            stats,
            free,
            files: VecDeque::new(),
            cur: None,
            next_seq: 1,
            retry_at: None,
            conn: None,
            pending: Vec::new(),
            attempts: HashMap::new(),
            end_of_input: false,
            disk: DiskWatch::default(),
            last_disk_check: None,
            stopping,
            home_dev: None,
        }
    }

    /// Finds the ring files of earlier runs (their first frame is read; a file holding none is
    /// deleted) and removes half-written evidence.
    fn scan(&mut self) {
        self.home_dev = std::fs::metadata(&self.s.store_dir).ok().map(|m| std::os::unix::fs::MetadataExt::dev(&m));
        for (seq, path) in ring_files(&self.s.ring_dir()) {
            self.next_seq = self.next_seq.max(seq + 1);
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let first = FileSource::open(&path).ok().and_then(|mut f| f.next_packet().ok().flatten().map(|p| p.ts.0));
            match first {
                Some(first_ns) => {
                    // A file of an earlier run ends where the next one begins.
                    if let Some(prev) = self.files.back_mut() {
                        prev.last_ns = first_ns;
                    }
                    self.files.push_back(RingFile { path, first_ns, last_ns: i64::MAX, bytes });
                }
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        // The newest file of an earlier run ends where it ends; its frames are older than now.
        if let Some(last) = self.files.back_mut() {
            last.last_ns = last.last_ns.min(crate::time::wall_now().0);
        }
        if let Ok(rd) = std::fs::read_dir(self.s.evidence_dir()) {
            for e in rd.filter_map(|e| e.ok()) {
                if e.file_name().to_string_lossy().ends_with(".part") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        self.publish();
    }

    fn run(mut self, rx: Receiver<Msg>) {
        let mut last = Instant::now() - HOUSEKEEPING;
        loop {
            match rx.recv_timeout(HOUSEKEEPING) {
                Ok(Msg::Chunk(mut c)) => {
                    self.write_chunk(&mut c);
                    let _ = self.free.try_send(c);
                }
                Ok(Msg::EndOfInput) => {
                    self.end_of_input = true;
                    last = Instant::now() - HOUSEKEEPING;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last.elapsed() >= HOUSEKEEPING && !self.stopping.load(Ordering::Relaxed) {
                last = Instant::now();
                self.housekeeping();
            }
        }
        // Stopping: the current file is complete on disk; windows still pending are cut after
        // the restart (their rows stay).
        self.cur = None;
        self.publish();
        tracing::info!(
            "pcap ring: {} frames kept, {} left out (disk too slow, full or gone)",
            self.stats.frames_written.load(Ordering::Relaxed),
            self.stats.frames_lost.load(Ordering::Relaxed)
        );
    }

    fn write_chunk(&mut self, c: &mut Chunk) {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            self.stats.frames_lost.fetch_add(c.frames as u64, Ordering::Relaxed);
            return;
        }
        match self.append(c) {
            Ok(()) => {
                if self.retry_at.take().is_some() {
                    tracing::info!("pcap ring: writing again in {}", self.s.ring_dir().display());
                }
                self.stats.failing_since_us.store(0, Ordering::Relaxed);
                self.stats.frames_written.fetch_add(c.frames as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.frames_lost.fetch_add(c.frames as u64, Ordering::Relaxed);
                // A block may be half written: this file is not appended to again.
                self.cur = None;
                if self.retry_at.is_none() {
                    tracing::error!("pcap ring: writing stopped, frames are analysed but not kept: {e:#}");
                    let _ = self.stats.failing_since_us.compare_exchange(
                        0,
                        wall_us(),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                if let Ok(mut m) = self.stats.error.lock() {
                    *m = format!("{e:#}");
                }
                self.retry_at = Some(Instant::now() + RETRY);
            }
        }
        self.publish();
    }

    fn append(&mut self, c: &Chunk) -> anyhow::Result<()> {
        let len = c.buf.len() as u64;
        let full = |cur: &Current| self.files.back().is_some_and(|f| f.bytes + len > cur.limit);
        if self.cur.as_ref().is_none_or(|cur| cur.link != c.link || full(cur)) {
            self.open_file(c.link, c.oldest_ns)?;
        }
        let cur = self.cur.as_mut().expect("opened");
        if let Err(e) = cur.file.write_all(&c.buf) {
            // The disk is full: the oldest ring files give their room back, and the next chunk
            // goes to a new file.
            if e.raw_os_error() == Some(28) {
                self.make_room(true, 0);
            }
            return Err(e).context("appending to the ring file");
        }
        let f = self.files.back_mut().expect("current file");
        f.bytes += len;
        f.first_ns = f.first_ns.min(c.oldest_ns);
        f.last_ns = f.last_ns.max(c.newest_ns);
        Ok(())
    }

    fn open_file(&mut self, link: u16, first_ns: i64) -> anyhow::Result<()> {
        self.cur = None;
        // Room for the whole new file, so the ring stays within the budget as it grows.
        let size = self.file_size();
        self.make_room(false, size);
        // Short of space even with its old files gone: the ring stops, and the rest of the disk
        // stays for the database, which matters more.
        let (avail, total) = fs_space(&self.s.store_dir);
        let reserve = reserve(total);
        if avail < reserve + size {
            anyhow::bail!(
                "no room for a ring file: {} free, the ring leaves {} to the database",
                crate::units::format_size(avail),
                crate::units::format_size(reserve)
            );
        }
        let dir = self.s.ring_dir();
        let dev = std::fs::metadata(&self.s.store_dir).ok().map(|m| std::os::unix::fs::MetadataExt::dev(&m));
        if self.home_dev.is_some() && dev != self.home_dev {
            anyhow::bail!(
                "{} is not on its file system (unmounted?): frames not kept until it is back",
                self.s.store_dir.display()
            );
        }
        // The ring directory only inside a store directory that exists: a store gone with its
        // USB stick is not created again on the card under the mount point.
        match std::fs::create_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e).with_context(|| format!("creating {}", dir.display()));
            }
            _ => {}
        }
        let seq = self.next_seq;
        let stamp = crate::time::wall_now().rfc3339().replace([':', '-'], "");
        let stamp: String = stamp.chars().take(15).collect();
        let path = dir.join(format!("ring-{seq:08}-{stamp}Z.pcapng"));
        let mut file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let mut head = Vec::with_capacity(64);
        write::section_header(&mut head);
        write::interface_block(&mut head, link);
        if let Err(e) = file.write_all(&head) {
            let _ = std::fs::remove_file(&path);
            return Err(e).with_context(|| format!("writing {}", path.display()));
        }
        self.next_seq += 1;
        self.files.push_back(RingFile { path, first_ns, last_ns: first_ns, bytes: head.len() as u64 });
        let ino = std::os::unix::fs::MetadataExt::ino(&file.metadata()?);
        self.cur = Some(Current { file, link, limit: size, ino });
        Ok(())
    }

    /// Size of a ring file: as configured, but at most a sixteenth of the file system (a small
    /// stick still holds a ring of many files).
    fn file_size(&self) -> u64 {
        let (_, total) = fs_space(&self.s.store_dir);
        self.s.file_size.min(total / 16).max(64 * 1024)
    }

    /// Bytes under the budget besides the ring: the database, the evidence and the uploads.
    fn others(&self) -> u64 {
        let db = ["", "-wal", "-shm"]
            .iter()
            .map(|sfx| {
                let mut p = self.s.db.clone().into_os_string();
                p.push(sfx);
                std::fs::metadata(PathBuf::from(p)).map(|m| m.len()).unwrap_or(0)
            })
            .sum::<u64>();
        let evidence = dir_bytes(&self.s.evidence_dir());
        self.stats.evidence_bytes.store(evidence, Ordering::Relaxed);
        db + evidence + dir_bytes(&self.s.store_dir.join("captures"))
    }

    fn ring_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// Deletes the oldest ring files while the store is over its budget or the file system is
    /// nearly full. The current file stays; so do files a pending window needs, unless the disk
    /// itself is full (`disk_full`: a write has just failed for lack of space). `incoming`: bytes
    /// about to be written.
    fn make_room(&mut self, disk_full: bool, incoming: u64) {
        let others = self.others();
        let mut ring = self.ring_bytes();
        let (mut avail, total) = fs_space(&self.s.store_dir);
        let reserve = reserve(total);
        let keep = usize::from(self.cur.is_some());
        while self.files.len() > keep
            && (others + ring + incoming > self.s.budget || avail < reserve + incoming || disk_full)
        {
            let oldest = &self.files[0];
            let pinned = self.pending.iter().any(|w| self.needs_oldest(w));
            if pinned && !disk_full && avail >= reserve {
                break;
            }
            match std::fs::remove_file(&oldest.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!("pcap ring: cannot delete {}: {e}", oldest.path.display());
                    break;
                }
            }
            let f = self.files.pop_front().expect("non-empty");
            ring -= f.bytes;
            avail += f.bytes;
            self.stats.files_deleted.fetch_add(1, Ordering::Relaxed);
            if disk_full {
                // One file at a time: the write is tried again with the room it gave.
                break;
            }
        }
        self.publish();
    }

    /// The bytes a window's evidence file may hold: what [`RingWriter::cut`] keeps.
    fn evidence_bytes(&self) -> u64 {
        self.s.evidence_max.min(self.s.budget / 4).max(1)
    }

    /// Whether the oldest ring file holds frames a pending window will keep. The cut keeps the
    /// frames nearest the alert, at most half of `evidence_max` before it: a file older than
    /// that half (newer files before the alert already hold it) is not needed, so a window pins
    /// its own bytes, never the minute or more of traffic its time span covers on a busy port.
    fn needs_oldest(&self, w: &Window) -> bool {
        let Some(oldest) = self.files.front() else { return false };
        let (from_ns, at_ns, to_ns) =
            (w.from_us.saturating_mul(1000), w.at_us.saturating_mul(1000), w.to_us.saturating_mul(1000));
        if oldest.last_ns < from_ns || oldest.first_ns > to_ns {
            return false;
        }
        let nearer_before: u64 =
            self.files.iter().skip(1).filter(|f| f.first_ns <= at_ns && f.last_ns >= from_ns).map(|f| f.bytes).sum();
        nearer_before < self.evidence_bytes() / 2
    }

    /// Whether the ring already holds a full after-half of a window (half of `evidence_max`
    /// after its alert): the cut would keep no more, so it is cut now instead of pinning the
    /// ring's files until the window's end.
    fn after_half_full(&self, w: &Window) -> bool {
        let at_ns = w.at_us.saturating_mul(1000);
        let after: u64 = self.files.iter().filter(|f| f.first_ns > at_ns).map(|f| f.bytes).sum();
        after >= self.evidence_bytes() / 2
    }

    fn publish(&self) {
        self.stats.files.store(self.files.len() as u64, Ordering::Relaxed);
        self.stats.bytes.store(self.ring_bytes(), Ordering::Relaxed);
        self.stats.oldest_ns.store(self.files.front().map(|f| f.first_ns).unwrap_or(0), Ordering::Relaxed);
        let newest = self.files.iter().map(|f| f.last_ns).filter(|t| *t != i64::MAX).max().unwrap_or(0);
        self.stats.newest_ns.store(newest, Ordering::Relaxed);
    }

    fn db(&mut self) -> anyhow::Result<&Connection> {
        if self.conn.is_none() {
            // Never created here: the store writer creates and migrates it.
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let c = Connection::open_with_flags(&self.s.db, flags)
                .with_context(|| format!("opening {}", self.s.db.display()))?;
            // Short: a window not cut now is cut at the next housekeeping, and a stopping daemon
            // must not wait long on a lock someone else holds.
            c.busy_timeout(Duration::from_secs(2))?;
            self.conn = Some(c);
        }
        Ok(self.conn.as_ref().expect("opened"))
    }

    /// Whether the current ring file is still at its path; when it is not, the store went away
    /// under the ring: the files it knew are forgotten and writing pauses until the directory
    /// is back (`open_file` fails meanwhile and the ring reports failing).
    fn check_vanished(&mut self) {
        let Some(cur) = &self.cur else { return };
        let Some(path) = self.files.back().map(|f| f.path.clone()) else { return };
        let here = std::fs::metadata(&path).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).ok();
        if here == Some(cur.ino) {
            return;
        }
        tracing::error!(
            "pcap ring: {} vanished (store directory deleted or unmounted): frames not kept until it is back",
            path.display()
        );
        self.cur = None;
        self.conn = None;
        self.files.retain(|f| f.path.exists());
        self.retry_at = Some(Instant::now() + RETRY);
        let _ = self.stats.failing_since_us.compare_exchange(0, wall_us(), Ordering::Relaxed, Ordering::Relaxed);
        if let Ok(mut m) = self.stats.error.lock() {
            *m = format!("{} vanished", path.display());
        }
        self.publish();
    }

    fn housekeeping(&mut self) {
        self.check_vanished();
        match self.load_pending() {
            Ok(()) => {}
            Err(e) => {
                tracing::debug!("pcap ring: pending windows not read: {e:#}");
                self.conn = None;
            }
        }
        self.make_room(false, 0);
        self.cut_ready();
        if self.last_disk_check.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            self.last_disk_check = Some(Instant::now());
            self.check_disk();
        }
    }

    fn load_pending(&mut self) -> anyhow::Result<()> {
        let conn = self.db()?;
        let mut st = conn.prepare_cached(
            "SELECT id, from_us, to_us, at_us, created_us FROM evidence WHERE state = 'pending' ORDER BY id LIMIT 64",
        )?;
        let rows = st.query_map([], |r| {
            Ok(Window { id: r.get(0)?, from_us: r.get(1)?, to_us: r.get(2)?, at_us: r.get(3)?, created_us: r.get(4)? })
        })?;
        let v = rows.collect::<Result<Vec<_>, _>>()?;
        drop(st);
        self.pending = v;
        Ok(())
    }

    /// Cuts the windows whose end the ring has passed (or that waited long enough).
    fn cut_ready(&mut self) {
        let newest_us = self.stats.newest_ns.load(Ordering::Relaxed) / 1000;
        let now = wall_us();
        let ready: Vec<Window> = self
            .pending
            .iter()
            .filter(|w| {
                self.end_of_input
                    || newest_us >= w.to_us
                    || now - w.created_us > (w.to_us - w.at_us) + WINDOW_GRACE_US
                    || self.after_half_full(w)
            })
            .copied()
            .collect();
        for w in ready {
            if self.stopping.load(Ordering::Relaxed) {
                break;
            }
            if let Err(e) = self.cut(&w) {
                if is_busy(&e) {
                    // Someone else holds the database: not the window's fault, try again later.
                    tracing::debug!("evidence window {}: database busy, cut later", w.id);
                    break;
                }
                let n = self.attempts.entry(w.id).or_insert(0);
                *n += 1;
                tracing::warn!("evidence window {}: not cut (attempt {n}): {e:#}", w.id);
                if *n >= 3 {
                    let note = format!("not cut: {e:#}");
                    let _ = self.db().and_then(|c| {
                        c.execute("UPDATE evidence SET state = 'failed', note = ?2 WHERE id = ?1", params![w.id, note])
                            .map_err(Into::into)
                    });
                }
            } else {
                self.attempts.remove(&w.id);
            }
        }
    }

    /// Copies the frames of one window from the ring into its evidence file. At most
    /// `evidence_max` bytes: the frames nearest the alert are kept (at most half before it).
    fn cut(&mut self, w: &Window) -> anyhow::Result<()> {
        let (from_ns, to_ns, at_ns) = (w.from_us * 1000, w.to_us * 1000, w.at_us * 1000);
        let files: Vec<PathBuf> =
            self.files.iter().filter(|f| f.first_ns <= to_ns && f.last_ns >= from_ns).map(|f| f.path.clone()).collect();
        let ring_from = self.files.front().map(|f| f.first_ns).unwrap_or(i64::MAX);
        // Evidence may use half the budget: the oldest windows make room for the new one (a new
        // alert's frames matter more than last month's), except the one pinned as the baseline.
        let mut others = self.others();
        let evidence_now = self.stats.evidence_bytes.load(Ordering::Relaxed);
        let need = self.s.evidence_max.min(self.s.budget / 4);
        if evidence_now + need > self.s.budget / 2 {
            let freed = self.evict_windows(evidence_now + need - self.s.budget / 2)?;
            if freed > 0 {
                others = self.others();
            }
        }
        let evidence_now = self.stats.evidence_bytes.load(Ordering::Relaxed);
        if evidence_now > self.s.budget / 2 || others > self.s.budget {
            let note = "not kept: evidence already uses half of disk_budget; delete old evidence on the captures page";
            self.db()?
                .execute("UPDATE evidence SET state = 'skipped', note = ?2 WHERE id = ?1", params![w.id, note])?;
            tracing::warn!("evidence window {}: {note}", w.id);
            self.pending.retain(|p| p.id != w.id);
            return Ok(());
        }
        // Pass 1: how much comes before the alert, to keep only the nearest half's worth.
        let max = self.s.evidence_max;
        let mut before = 0u64;
        for_each_frame(&files, from_ns, to_ns, |p| {
            if p.ts.0 < at_ns {
                before += write::packet_block_len(p.data.len()) as u64;
            }
            true
        });
        let mut skip = before.saturating_sub(max / 2);
        let dir = self.s.evidence_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let name = format!("window-{}.pcapng", w.id);
        let part = dir.join(format!("{name}.part"));
        let out = std::io::BufWriter::new(File::create(&part).with_context(|| format!("creating {}", part.display()))?);
        let mut wr = write::Writer::new(out)?;
        let mut err: Option<std::io::Error> = None;
        let mut truncated = false;
        for_each_frame(&files, from_ns, to_ns, |p| {
            let len = write::packet_block_len(p.data.len()) as u64;
            if skip > 0 {
                skip = skip.saturating_sub(len);
                truncated = true;
                return true;
            }
            if wr.bytes + len > max {
                truncated = true;
                return false;
            }
            if let Err(e) = wr.write(p.link.0, p.ts, p.orig_len, p.data) {
                err = Some(e);
                return false;
            }
            true
        });
        let (frames, bytes) = (wr.frames, wr.bytes);
        let done = match err {
            Some(e) => Err(e),
            None => wr.into_inner().into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all()),
        };
        if let Err(e) = done {
            let _ = std::fs::remove_file(&part);
            return Err(e).context("writing the evidence file");
        }
        let mut notes = Vec::new();
        // The capture may simply have begun after the window's start; frames the ring deleted
        // are worth saying.
        if ring_from > from_ns && self.stats.files_deleted.load(Ordering::Relaxed) > 0 {
            notes.push(format!(
                "the ring held frames only from {}",
                if ring_from == i64::MAX { "no time".to_string() } else { Ts(ring_from).rfc3339() }
            ));
        }
        if truncated {
            notes.push(format!("cut to the {} nearest the alert (evidence_max)", crate::units::format_size(max)));
        }
        let (state, file) = if frames == 0 {
            let _ = std::fs::remove_file(&part);
            ("empty", None)
        } else {
            std::fs::rename(&part, dir.join(&name)).context("naming the evidence file")?;
            ("kept", Some(name))
        };
        self.db()?.execute(
            "UPDATE evidence SET state = ?2, file = ?3, frames = ?4, bytes = ?5, note = ?6, cut_us = ?7 WHERE id = ?1",
            params![w.id, state, file, frames as i64, bytes as i64, notes.join("; "), wall_us()],
        )?;
        tracing::info!("evidence window {}: {frames} frames, {bytes} bytes ({state})", w.id);
        self.pending.retain(|p| p.id != w.id);
        Ok(())
    }

    /// Deletes the oldest kept evidence windows until `want` bytes are freed; the window pinned
    /// as the diff baseline stays. The rows stay too (state `evicted`, with a note), so an
    /// alert still says what became of its evidence. Returns the bytes freed.
    fn evict_windows(&mut self, want: u64) -> anyhow::Result<u64> {
        let pinned = std::fs::read_to_string(self.s.store_dir.join("captures").join("baseline"))
            .ok()
            .and_then(|s| s.trim().strip_prefix("window:").and_then(|n| n.parse::<i64>().ok()));
        let conn = self.db()?;
        let mut st = conn.prepare_cached(
            "SELECT id, file FROM evidence WHERE state = 'kept' AND file IS NOT NULL ORDER BY id LIMIT 256",
        )?;
        let old: Vec<(i64, String)> = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        drop(st);
        let dir = self.s.evidence_dir();
        let (mut freed, mut count) = (0u64, 0usize);
        for (id, file) in old {
            if freed >= want {
                break;
            }
            if Some(id) == pinned || !file.starts_with("window-") || file.contains(['/', '\\']) {
                continue;
            }
            let path = dir.join(&file);
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("deleting {}", path.display())),
            }
            let note = "deleted to make room for newer evidence (half of disk_budget)";
            self.db()?.execute(
                "UPDATE evidence SET state = 'evicted', file = NULL, note = ?2 WHERE id = ?1",
                params![id, note],
            )?;
            freed += len;
            count += 1;
        }
        if count > 0 {
            tracing::info!("evidence: {count} oldest windows deleted ({freed} bytes) to keep the newest");
        }
        Ok(freed)
    }

    fn check_disk(&mut self) {
        let others = self.others();
        let ring = self.ring_bytes();
        let newest = self.files.back().map(|f| f.bytes).unwrap_or(0);
        let (avail, total) = fs_space(&self.s.store_dir);
        let low = disk_low(avail + ring.saturating_sub(newest), total, others, self.s.budget);
        let writing_fails = self.retry_at.is_some();
        let msg = format!(
            "{} free of {}; database and evidence {}, pcap ring {} of a {} budget{}",
            crate::units::format_size(avail),
            crate::units::format_size(total),
            crate::units::format_size(others),
            crate::units::format_size(ring),
            crate::units::format_size(self.s.budget),
            if writing_fails { "; the ring cannot write" } else { "" }
        );
        let rules_dir = self.s.rules_dir.clone();
        let store_dir = self.s.store_dir.clone();
        let low = low || writing_fails;
        let mut disk = std::mem::take(&mut self.disk);
        let r = self.db().and_then(|c| disk.update(c, &rules_dir, &store_dir, low, &msg));
        self.disk = disk;
        if let Err(e) = r {
            tracing::debug!("disk.low not recorded yet: {e:#}");
            self.conn = None;
        }
    }
}

/// Free space the ring leaves to the database on a file system of `total` bytes.
/// Whether an error is SQLite waiting for another connection's lock.
fn is_busy(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<rusqlite::Error>()
            .and_then(|e| e.sqlite_error_code())
            .is_some_and(|code| matches!(code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
    })
}

fn reserve(total: u64) -> u64 {
    (total / 20).min(RESERVE_MAX)
}

/// Whether the store is short of disk: under 5 % of the file system free (counting what the
/// ring would give back), or the database and evidence alone above 90 % of the budget.
pub fn disk_low(avail: u64, total: u64, others: u64, budget: u64) -> bool {
    avail.saturating_mul(100) / total.max(1) < 5 || others > budget / 10 * 9
}

/// The `disk.low` episode: raised when the disk is low, cleared when it is not. A shortage the
/// database could not record while it lasted (the disk was full) is recorded afterwards, raised
/// and cleared, so it is not forgotten.
#[derive(Default)]
struct DiskWatch {
    low_since_us: Option<i64>,
    recorded: bool,
}

impl DiskWatch {
    fn update(&mut self, conn: &Connection, rules_dir: &Path, dir: &Path, low: bool, msg: &str) -> anyhow::Result<()> {
        let now = wall_us();
        if low {
            let since = *self.low_since_us.get_or_insert(now);
            if !self.recorded {
                tracing::warn!("disk.low: {msg}");
                super::disk_alerts::raise_disk_low_at(conn, rules_dir, dir, msg, since)?;
                self.recorded = true;
            }
        } else if self.low_since_us.is_some() {
            if !self.recorded {
                super::disk_alerts::raise_disk_low_at(conn, rules_dir, dir, msg, self.low_since_us.unwrap_or(now))?;
                self.recorded = true;
            }
            super::disk_alerts::clear_disk_low(conn, rules_dir, dir, now)?;
            tracing::info!("disk.low cleared: {msg}");
            *self = DiskWatch::default();
        }
        Ok(())
    }
}

/// Frames with `from_ns <= ts <= to_ns` of the files, in order, until `f` says stop. A file
/// that ends in a torn block (a power cut) is read up to its last complete block.
fn for_each_frame(files: &[PathBuf], from_ns: i64, to_ns: i64, mut f: impl FnMut(&RawPacket<'_>) -> bool) {
    for path in files {
        let Ok(mut src) = FileSource::open(path) else { continue };
        while let Ok(Some(p)) = src.next_packet() {
            if p.ts.0 < from_ns || p.ts.0 > to_ns {
                continue;
            }
            if !f(&p) {
                return;
            }
        }
    }
}

fn dir_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
        })
        .unwrap_or(0)
}

/// Free and total bytes of the file system holding `dir` (or its nearest existing parent).
fn fs_space(dir: &Path) -> (u64, u64) {
    let mut p = dir;
    loop {
        if p.exists() {
            break;
        }
        match p.parent() {
            Some(q) => p = q,
            None => break,
        }
    }
    (fs4::available_space(p).unwrap_or(u64::MAX / 4), fs4::total_space(p).unwrap_or(u64::MAX / 4))
}

/// The evidence window an alert at `at_us` (packet time) needs: inserted with the alert, or
/// merged into a pending window it overlaps while their span stays within ten minutes. Returns
/// the window's id.
pub fn add_window(tx: &Connection, alert_id: i64, at_us: i64, before_us: i64, after_us: i64) -> rusqlite::Result<i64> {
    let (from, to) = (at_us - before_us, at_us + after_us);
    let existing: Option<(i64, i64)> = tx
        .query_row(
            "SELECT id, from_us FROM evidence WHERE state = 'pending' AND from_us <= ?2 AND to_us >= ?1
              ORDER BY id DESC LIMIT 1",
            params![from, to],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let id = match existing {
        Some((id, start)) if to - start.min(from) <= MERGE_SPAN_US => {
            tx.execute(
                "UPDATE evidence SET from_us = min(from_us, ?2), to_us = max(to_us, ?3) WHERE id = ?1",
                params![id, from, to],
            )?;
            id
        }
        _ => {
            tx.execute(
                "INSERT INTO evidence (alert_id, from_us, to_us, at_us, created_us, state) VALUES (?1, ?2, ?3, ?4, ?5, 'pending')",
                params![alert_id, from, to, at_us, wall_us()],
            )?;
            tx.last_insert_rowid()
        }
    };
    tx.execute("UPDATE alerts SET evidence_id = ?2 WHERE id = ?1", params![alert_id, id])?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring writer on `dir` (no thread): budget, file size and evidence_max as given.
    fn writer(dir: &Path, budget: u64, file_size: u64, evidence_max: u64) -> RingWriter {
        let s = RingSettings {
            store_dir: dir.to_path_buf(),
            db: dir.join("m.db"),
            budget,
            file_size,
            buffer: 1 << 20,
            evidence_max,
            rules_dir: dir.to_path_buf(),
        };
        let (free, _rx) = sync_channel(1);
        RingWriter::new(s, Arc::new(RingStats::default()), free, Arc::default())
    }

    #[test]
    fn files_of_an_earlier_run_end_where_the_next_begins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ring")).unwrap();
        for (seq, t) in [(3u64, 1_000i64), (4, 5_000)] {
            let path = dir.path().join("ring").join(format!("ring-{seq:08}-20260101T000000Z.pcapng"));
            let mut w = write::Writer::new(File::create(path).unwrap()).unwrap();
            w.write(1, Ts(t), 4, &[1, 2, 3, 4]).unwrap();
            w.write(1, Ts(t + 100), 4, &[1, 2, 3, 4]).unwrap();
        }
        let mut w = writer(dir.path(), 1 << 30, 1 << 20, 1 << 20);
        w.scan();
        let spans: Vec<(i64, i64)> = w.files.iter().map(|f| (f.first_ns, f.last_ns)).collect();
        assert_eq!(spans[0], (1_000, 5_000));
        assert_eq!(spans[1].0, 5_000);
        assert!(spans[1].1 < i64::MAX, "the newest ends by now at the latest");
        assert_eq!(w.next_seq, 5, "new files continue the numbering");
    }

    #[test]
    fn disk_is_low_when_free_space_or_budget_runs_out() {
        assert!(disk_low(4, 100, 0, 1000));
        assert!(!disk_low(5, 100, 0, 1000));
        assert!(disk_low(50, 100, 901, 1000));
        assert!(!disk_low(50, 100, 900, 1000));
    }

    #[test]
    fn a_pending_window_pins_its_own_bytes_not_its_whole_time_span() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ring")).unwrap();
        let mut w = writer(dir.path(), 4 << 20, 512 << 10, 32 << 20);
        // A busy port: twenty files of 512 KiB, ten seconds each (the ring holds 200 s).
        let sec = 1_000_000_000i64;
        for i in 0..20i64 {
            let path = dir.path().join("ring").join(format!("ring-{i:08}.pcapng"));
            std::fs::write(&path, b"x").unwrap();
            w.files.push_back(RingFile {
                path,
                first_ns: i * 10 * sec,
                last_ns: (i + 1) * 10 * sec - 1,
                bytes: 512 << 10,
            });
        }
        // An alert at 150 s, its window 60 s before and after: 110 s, 5.5 MiB of this ring,
        // more than the whole budget; its evidence file may hold 1 MiB (a quarter of the budget).
        let win = Window { id: 1, from_us: 90_000_000, to_us: 210_000_000, at_us: 150_000_000, created_us: 0 };
        w.pending.push(win);
        w.make_room(false, 0);
        let kept: Vec<i64> = w.files.iter().map(|f| f.first_ns / (10 * sec)).collect();
        assert!(w.ring_bytes() <= 4 << 20, "the ring rotates within its budget: {kept:?}");
        assert!(kept.contains(&14) && kept.contains(&15), "the frames nearest the alert stay: {kept:?}");
        // The after-half is already in the ring (files after 150 s hold 2 MiB): the window is
        // cut now rather than pinning the ring until 210 s.
        assert!(w.after_half_full(&win));
        let fresh = Window { at_us: 195_000_000, ..win };
        assert!(!w.after_half_full(&fresh), "a window whose after-half is still coming waits");
    }
}

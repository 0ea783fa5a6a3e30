//! The JSON lines file: appended line by line, flushed with every batch (so a tailing shipper
//! sees events within a second), rotated by size or age into `PATH.1` … `PATH.N` (the oldest
//! deleted), as logrotate's `copytruncate`-free scheme that Vector, Fluent Bit and Filebeat
//! follow by inode.
//!
//! A medium that fails (full, pulled) costs the lines it could not take, counted; the file is
//! opened again a second later.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::ExportStats;

#[derive(Clone, Debug)]
pub struct Rotation {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub max_age: Duration,
    /// Rotated files kept.
    pub keep: usize,
}

pub struct Writer {
    rot: Rotation,
    file: Option<BufWriter<File>>,
    size: u64,
    /// When the current file was begun.
    begun: SystemTime,
    /// Lines in the buffer, counted as written once flushed.
    buffered: u64,
    /// Whether the last open or write failed (said once per episode).
    failing: bool,
}

impl Writer {
    /// Opens (or creates) the file now, so a path that cannot be written is said at start.
    pub fn open(rot: Rotation) -> std::io::Result<Writer> {
        let mut w = Writer { rot, file: None, size: 0, begun: SystemTime::now(), buffered: 0, failing: false };
        w.reopen()?;
        Ok(w)
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        if let Some(dir) = self.rot.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new().create(true).append(true).open(&self.rot.path)?;
        let meta = f.metadata()?;
        self.size = meta.len();
        // A file continued after a restart keeps its age (its birth time where the file system
        // has one).
        self.begun =
            if self.size == 0 { SystemTime::now() } else { meta.created().unwrap_or_else(|_| SystemTime::now()) };
        self.file = Some(BufWriter::with_capacity(64 * 1024, f));
        Ok(())
    }

    fn fail(&mut self, what: &str, e: &std::io::Error, lost: u64, stats: &ExportStats) {
        stats.jsonl_dropped.fetch_add(lost, Ordering::Relaxed);
        if !self.failing {
            tracing::error!(
                "[export] jsonl {}: {what}: {e}; events are dropped until it works again",
                self.rot.path.display()
            );
        }
        self.failing = true;
        self.file = None;
        self.buffered = 0;
    }

    pub fn write(&mut self, line: &[u8], stats: &ExportStats) {
        let len = line.len() as u64 + 1;
        let too_old = self.begun.elapsed().is_ok_and(|a| a >= self.rot.max_age);
        if self.file.is_some() && self.size > 0 && (self.size + len > self.rot.max_bytes || too_old) {
            self.rotate(stats);
        }
        if self.file.is_none() {
            if let Err(e) = self.reopen() {
                self.fail("cannot open", &e, 1, stats);
                return;
            }
        }
        let Some(f) = self.file.as_mut() else { return };
        match f.write_all(line).and_then(|()| f.write_all(b"\n")) {
            Ok(()) => {
                self.size += len;
                self.buffered += 1;
            }
            Err(e) => {
                let lost = self.buffered + 1;
                self.fail("cannot write", &e, lost, stats);
            }
        }
    }

    pub fn flush(&mut self, stats: &ExportStats) {
        let Some(f) = self.file.as_mut() else { return };
        match f.flush() {
            Ok(()) => {
                stats.jsonl_written.fetch_add(self.buffered, Ordering::Relaxed);
                self.buffered = 0;
                if self.failing {
                    tracing::info!("[export] jsonl {}: writing again", self.rot.path.display());
                    self.failing = false;
                }
            }
            Err(e) => {
                let lost = self.buffered;
                self.fail("cannot write", &e, lost, stats);
            }
        }
    }

    /// Once a second: an idle file still rotates by age; a failed one is opened again.
    pub fn tick(&mut self, stats: &ExportStats) {
        if self.file.is_none() && self.reopen().is_err() {
            return;
        }
        if self.size > 0 && self.begun.elapsed().is_ok_and(|a| a >= self.rot.max_age) {
            self.rotate(stats);
        }
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut p = self.rot.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    /// PATH → PATH.1 → … → PATH.keep; the one beyond is deleted.
    fn rotate(&mut self, stats: &ExportStats) {
        self.flush(stats);
        self.file = None;
        let keep = self.rot.keep;
        let _ = std::fs::remove_file(self.numbered(keep + 1));
        if keep == 0 {
            let _ = std::fs::remove_file(&self.rot.path);
        } else {
            let _ = std::fs::remove_file(self.numbered(keep));
            for n in (1..keep).rev() {
                let _ = std::fs::rename(self.numbered(n), self.numbered(n + 1));
            }
            if let Err(e) = std::fs::rename(&self.rot.path, self.numbered(1)) {
                tracing::warn!("[export] jsonl {}: not rotated: {e}", self.rot.path.display());
            }
        }
        if let Err(e) = self.reopen() {
            self.fail("cannot open", &e, 0, stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let rot = Rotation { path: path.clone(), max_bytes: 4096, max_age: Duration::from_secs(86_400), keep: 3 };
        let stats = ExportStats::default();
        let mut w = Writer::open(rot).unwrap();
        let line = vec![b'x'; 999];
        for _ in 0..40 {
            w.write(&line, &stats);
            w.flush(&stats);
        }
        assert_eq!(stats.jsonl_written.load(Ordering::Relaxed), 40);
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["events.jsonl", "events.jsonl.1", "events.jsonl.2", "events.jsonl.3"]);
        for n in &names {
            let len = std::fs::metadata(dir.path().join(n)).unwrap().len();
            assert!(len <= 4096 && len % 1000 == 0, "{n}: {len} bytes");
        }
        // 4 lines a file: 40 lines, the newest 16 kept, none cut.
        let kept: u64 = names.iter().map(|n| std::fs::metadata(dir.path().join(n)).unwrap().len() / 1000).sum();
        assert_eq!(kept, 16);
    }

    #[test]
    fn an_idle_file_rotates_by_age_and_a_restart_continues_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let rot = Rotation { path: path.clone(), max_bytes: 1 << 20, max_age: Duration::from_secs(3600), keep: 2 };
        let stats = ExportStats::default();
        let mut w = Writer::open(rot.clone()).unwrap();
        w.write(b"{\"n\":1}", &stats);
        w.flush(&stats);
        drop(w);
        // Opened again (a restart): appended to, not replaced.
        let mut w = Writer::open(rot).unwrap();
        w.write(b"{\"n\":2}", &stats);
        w.flush(&stats);
        w.tick(&stats);
        assert!(!dir.path().join("events.jsonl.1").exists(), "young: not rotated");
        w.begun = SystemTime::now() - Duration::from_secs(7200);
        w.tick(&stats);
        assert_eq!(std::fs::read_to_string(dir.path().join("events.jsonl.1")).unwrap(), "{\"n\":1}\n{\"n\":2}\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "", "a new, empty file");
        w.tick(&stats);
        assert!(!dir.path().join("events.jsonl.2").exists(), "an empty file is not rotated");
    }
}

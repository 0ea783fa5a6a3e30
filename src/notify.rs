//! systemd's notify protocol (`Type=notify`, `WatchdogSec=`): READY once the capture, the store
//! and the dashboard run, a STATUS line, STOPPING at shutdown, and the watchdog fed only while
//! the capture loop turns and the store writer is not stuck in a write — so a hung daemon is
//! restarted by systemd instead of silently capturing nothing.
//!
//! Without `NOTIFY_SOCKET` (a terminal, a test, another supervisor) everything here is a no-op.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// A write the store writer has been in for longer than this is a stuck writer (SQLite's busy
/// wait is 250 ms, a batch takes milliseconds; a vanished USB stick can hang an fsync).
pub const WRITER_STUCK: Duration = Duration::from_secs(30);

pub struct Notifier {
    sock: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
    last_ping: Option<Instant>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket) and `WATCHDOG_USEC`
    /// (ignored when `WATCHDOG_PID` names another process).
    pub fn from_env() -> Notifier {
        let sock = std::env::var("NOTIFY_SOCKET").ok().and_then(|path| {
            let addr = match path.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()).ok()?,
                None => SocketAddr::from_pathname(&path).ok()?,
            };
            Some((UnixDatagram::unbound().ok()?, addr))
        });
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us)
            .map(Duration::from_micros);
        Notifier { sock, watchdog, last_ping: None }
    }

    pub fn enabled(&self) -> bool {
        self.sock.is_some()
    }

    fn send(&self, msg: &str) {
        if let Some((s, addr)) = &self.sock {
            if let Err(e) = s.send_to_addr(msg.as_bytes(), addr) {
                tracing::warn!("systemd notify: {e}");
            }
        }
    }

    /// The daemon is up: capture, store and dashboard run.
    pub fn ready(&mut self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
        self.last_ping = Some(Instant::now());
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping: flushing the store");
    }

    /// Called from the capture loop's once-a-second tick (so a stuck loop feeds nothing): feeds
    /// the watchdog at half its interval while `healthy`.
    pub fn tick(&mut self, healthy: bool) {
        let Some(interval) = self.watchdog else { return };
        if !healthy {
            return;
        }
        if self.last_ping.is_none_or(|t| t.elapsed() >= interval / 2) {
            self.send("WATCHDOG=1");
            self.last_ping = Some(Instant::now());
        }
    }
}

/// Whether the store writer is idle or in a write that has not lasted [`WRITER_STUCK`].
pub fn writer_healthy(health: &crate::store::StoreHealth) -> bool {
    let since = health.writing_since_us.load(std::sync::atomic::Ordering::Relaxed);
    since == 0 || crate::store::wall_us().saturating_sub(since) < WRITER_STUCK.as_micros() as i64
}

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_fed_only_while_healthy_and_at_half_its_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_nonblocking(true).unwrap();
        let mut n = Notifier {
            sock: Some((UnixDatagram::unbound().unwrap(), SocketAddr::from_pathname(&path).unwrap())),
            watchdog: Some(Duration::from_millis(200)),
            last_ping: None,
        };
        let recv = || {
            let mut buf = [0u8; 256];
            let mut got = Vec::new();
            while let Ok(k) = rx.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..k]).into_owned());
            }
            got
        };
        n.ready("capturing on eth1\nsecond line");
        assert_eq!(recv(), vec!["READY=1\nSTATUS=capturing on eth1 second line".to_string()]);
        n.tick(true);
        assert!(recv().is_empty(), "fed before half the interval");
        std::thread::sleep(Duration::from_millis(110));
        n.tick(false);
        assert!(recv().is_empty(), "fed while unhealthy");
        n.tick(true);
        assert_eq!(recv(), vec!["WATCHDOG=1".to_string()]);
        n.stopping();
        assert!(recv()[0].starts_with("STOPPING=1"));
    }

    #[test]
    fn a_writer_in_a_long_write_is_stuck() {
        let h = crate::store::StoreHealth::default();
        assert!(writer_healthy(&h));
        h.writing_since_us.store(crate::store::wall_us() - 1_000_000, std::sync::atomic::Ordering::Relaxed);
        assert!(writer_healthy(&h));
        h.writing_since_us.store(crate::store::wall_us() - 31_000_000, std::sync::atomic::Ordering::Relaxed);
        assert!(!writer_healthy(&h));
    }
}

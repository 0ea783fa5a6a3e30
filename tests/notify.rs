//! The daemon speaks systemd's notify protocol: READY once it runs, the watchdog fed while it
//! is healthy, STOPPING at SIGTERM, and the exit within 5 s (`Type=notify`, `WatchdogSec=`).

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the daemon if the test fails before it stops it.
struct Guard(u32);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).stderr(Stdio::null()).status();
    }
}

#[test]
fn ready_watchdog_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("notify.sock");
    let rx = UnixDatagram::bind(&sock).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .args(["run", "--listen", "", "--config", "/dev/null", "--replay"])
        .arg(common::lab_dir().join("lab-dns-dnsmasq.pcap"))
        .arg("--db")
        .arg(dir.path().join("mw.db"))
        .env("NOTIFY_SOCKET", &sock)
        .env("WATCHDOG_USEC", "400000")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = Guard(child.id());
    let mut got: Vec<String> = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && got.iter().filter(|m| *m == "WATCHDOG=1").count() < 4 {
        if let Ok(n) = rx.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(got.first().is_some_and(|m| m.starts_with("READY=1\nSTATUS=replaying ")), "{got:?}");
    assert!(got.iter().filter(|m| *m == "WATCHDOG=1").count() >= 4, "{got:?}");
    let t0 = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "still running 5 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Exited and reaped: its pid is no longer ours to signal.
    std::mem::forget(guard);
    assert!(status.success(), "{status:?}");
    let mut rest = Vec::new();
    while let Ok(n) = rx.recv(&mut buf) {
        rest.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(rest.iter().any(|m| m.starts_with("STOPPING=1")), "{rest:?}");
    // The replay was stored before the exit.
    let conn = rusqlite::Connection::open(dir.path().join("mw.db")).unwrap();
    let n: i64 = conn.query_row("SELECT sum(packets) FROM traffic_minute", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 79);
}

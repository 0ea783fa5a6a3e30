//! Baseline alerts over a week of packet time: a capture built from real lab captures,
//! time-shifted with editcap and merged with mergecap — a quiet week (one lossy exchange an
//! hour) then a rise (eight lossy bulk downloads within the hour) — must raise the
//! "retransmissions rising" alert exactly once, against the right baseline, and clear it.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn tool(name: &str) -> bool {
    let ok = Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "{name} missing (apt install tshark)");
        eprintln!("SKIP: {name} not installed");
    }
    ok
}

fn shift(src: &Path, secs: i64, out: &Path) {
    let st = Command::new("editcap").args(["-F", "pcap", "-t", &secs.to_string()]).arg(src).arg(out).status().unwrap();
    assert!(st.success());
}

/// Time-shifted copies of lab captures: one lossy exchange an hour for `hours` (from hour
/// `from`), and with `rise`, eight lossy bulk downloads within hour 168. Returns the merged file.
fn build(dir: &Path, name: &str, from: i64, hours: i64, rise: bool) -> std::path::PathBuf {
    let lab = common::lab_dir();
    let week = -8 * 86_400;
    let mut parts = Vec::new();
    for hour in from..from + hours {
        let p = dir.join(format!("{name}-quiet{hour:03}.pcap"));
        shift(&lab.join("lab-http-short-loss8.pcap"), week + hour * 3600, &p);
        parts.push(p);
    }
    if rise {
        for k in 0..8 {
            let p = dir.join(format!("{name}-rise{k}.pcap"));
            shift(&lab.join("lab-http-bulk-loss2.pcap"), week + 168 * 3600 + 60 + k * 420, &p);
            parts.push(p);
        }
    }
    let merged = dir.join(format!("{name}.pcap"));
    let st = Command::new("mergecap").args(["-F", "pcap", "-w"]).arg(&merged).args(&parts).status().unwrap();
    assert!(st.success());
    merged
}

/// The shipped counter, with an alert on hourly windows (the shipped one uses 5 minutes).
fn rules(dir: &Path) -> std::path::PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/tcp.toml")).unwrap();
    let counter = shipped.split("[[alert]]").next().unwrap();
    std::fs::write(
        rules.join("t.toml"),
        format!(
            "{counter}\n[[alert]]\nid = \"rising\"\ncounter = \"lan-retransmissions\"\nwindow = \"1h\"\nabove_baseline = 3.0\nmin_count = 50\nmail = true\n"
        ),
    )
    .unwrap();
    rules
}

fn analyze(rules: &Path, capture: &Path, db: Option<&Path>) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"));
    cmd.args(["analyze", "--json", "--rules"]).arg(rules).arg(capture);
    if let Some(db) = db {
        cmd.arg("--db").arg(db);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_quiet_week_then_a_rise_fires_once_and_clears() {
    if !tool("editcap") || !tool("mergecap") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let merged = build(dir.path(), "week", 0, 172, true);
    let v = analyze(&rules(dir.path()), &merged, None);
    let alerts = v["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["rule"], "rising");
    assert_eq!(a["key"], "10.77.2.20 10.77.1.10");
    assert_eq!(a["state"], "cleared");
    assert_eq!(a["mail"], true);
    // The last frames the counter matched travel with the alert (the mail's pcapng).
    assert_eq!(a["evidence_frames"], 8);
    // Fired within the hour of the rise (day 7 after the start), against the hourly median.
    let first = v["first_ts"].as_str().unwrap();
    let (start, fired) = (secs(first), secs(a["ts"].as_str().unwrap()));
    assert!((168 * 3600..169 * 3600).contains(&(fired - start)), "fired {} h after the start", (fired - start) / 3600);
    let baseline = a["baseline"].as_f64().unwrap();
    assert!(baseline > 0.0 && a["value"].as_f64().unwrap() > 3.0 * baseline, "{a}");
    assert!(secs(a["cleared_ts"].as_str().unwrap()) > fired);
}

/// The week is stored first (`analyze --db`); then the daemon starts on the same database and
/// replays only the rise. It must fire at once: the baseline comes back from the store, it is
/// not learnt again (which would take 24 h).
#[test]
fn the_daemon_rebuilds_baselines_from_the_store_after_a_restart() {
    if !tool("editcap") || !tool("mergecap") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let quiet = build(dir.path(), "quiet", 0, 168, false);
    let rise = build(dir.path(), "rise", 168, 4, true);
    let rules = rules(dir.path());
    let db = dir.path().join("m.db");
    let v = analyze(&rules, &quiet, Some(&db));
    assert_eq!(v["alerts"].as_array().unwrap().len(), 0);
    // Without the stored week, the rise alone raises nothing.
    assert_eq!(analyze(&rules, &rise, None)["alerts"].as_array().unwrap().len(), 0);
    std::fs::write(dir.path().join("m.toml"), format!("[store]\ndir = \"{}\"\n", dir.path().display())).unwrap();
    let daemon = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .args(["run", "--listen", "", "--config"])
        .arg(dir.path().join("m.toml"))
        .arg("--db")
        .arg(&db)
        .arg("--rules")
        .arg(&rules)
        .arg("--replay")
        .arg(&rise)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rows = || -> i64 {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c.query_row("SELECT count(*) FROM alerts WHERE rule = 'rising'", [], |r| r.get(0)).unwrap_or(0)
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while rows() == 0 && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let _ = Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
    let out = daemon.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("alert state restored"), "{log}");
    assert_eq!(rows(), 1, "{log}");
}

/// Seconds since the epoch of an RFC 3339 time.
fn secs(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp()
}

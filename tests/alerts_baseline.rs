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

#[test]
fn a_quiet_week_then_a_rise_fires_once_and_clears() {
    if !tool("editcap") || !tool("mergecap") {
        return;
    }
    let lab = common::lab_dir();
    let dir = tempfile::tempdir().unwrap();
    let week = -8 * 86_400;
    let mut parts = Vec::new();
    for hour in 0..172 {
        let p = dir.path().join(format!("quiet{hour:03}.pcap"));
        shift(&lab.join("lab-http-short-loss8.pcap"), week + hour * 3600, &p);
        parts.push(p);
    }
    for k in 0..8 {
        let p = dir.path().join(format!("rise{k}.pcap"));
        shift(&lab.join("lab-http-bulk-loss2.pcap"), week + 168 * 3600 + 60 + k * 420, &p);
        parts.push(p);
    }
    let merged = dir.path().join("week.pcap");
    let st = Command::new("mergecap").args(["-F", "pcap", "-w"]).arg(&merged).args(&parts).status().unwrap();
    assert!(st.success());
    // The shipped counter, with an alert on hourly windows (the shipped one uses 5 minutes).
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/tcp.toml")).unwrap();
    let counter = shipped.split("[[alert]]").next().unwrap();
    std::fs::write(
        rules.join("t.toml"),
        format!(
            "{counter}\n[[alert]]\nid = \"rising\"\ncounter = \"lan-retransmissions\"\nwindow = \"1h\"\nabove_baseline = 3.0\nmin_count = 50\nmail = true\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .args(["analyze", "--json", "--rules"])
        .arg(&rules)
        .arg(&merged)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let alerts = v["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["rule"], "rising");
    assert_eq!(a["key"], "10.77.2.20 10.77.1.10");
    assert_eq!(a["state"], "cleared");
    assert_eq!(a["mail"], true);
    // Fired within the hour of the rise (day 7 after the start), against the hourly median.
    let first = v["first_ts"].as_str().unwrap();
    let (start, fired) = (secs(first), secs(a["ts"].as_str().unwrap()));
    assert!((168 * 3600..169 * 3600).contains(&(fired - start)), "fired {} h after the start", (fired - start) / 3600);
    let baseline = a["baseline"].as_f64().unwrap();
    assert!(baseline > 0.0 && a["value"].as_f64().unwrap() > 3.0 * baseline, "{a}");
    assert!(secs(a["cleared_ts"].as_str().unwrap()) > fired);
}

/// Seconds since the epoch of an RFC 3339 time.
fn secs(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp()
}

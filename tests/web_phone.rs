//! The dashboard on a store of months, on a phone and a laptop: `mirrorwatch run --replay` of
//! a three-million-frame capture (the lab captures repeated every 20 minutes over a week of
//! packet time: thousands of alerts, hundreds of evidence windows, a full pcap ring), then
//! Debian's chromium (tests/web/phone.mjs) at 390×844 and 1366×768, in English and Japanese:
//! no page wider than the screen and no word broken across lines, the phone's navigation
//! behind its menu button, alerts ordered and folded and paged and filtered, evidence windows
//! paged and deleted together after a confirmation, the rule preview over the pcap ring
//! (> 0 frames, and exactly the frames of the ring's last hour). Screenshots go to
//! `$MIRRORWATCH_SCREENSHOTS` (default target/screenshots/phone; docs/screenshots/phone holds
//! a copy).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "branch phone 7";

fn mw() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
}

/// Frames of `file` (classic pcap) at or after `since_us` of packet time, and the newest.
fn frames_in_last(file: &Path, secs: u64) -> u64 {
    let b = std::fs::read(file).unwrap();
    let rd = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as u64;
    let mut ts = Vec::new();
    let mut i = 24;
    while i + 16 <= b.len() {
        ts.push(rd(i) * 1_000_000 + rd(i + 4));
        i += 16 + rd(i + 8) as usize;
    }
    let newest = ts.iter().copied().max().unwrap_or(0);
    ts.iter().filter(|&&t| t >= newest - secs * 1_000_000).count() as u64
}

#[test]
fn the_dashboard_on_a_phone_and_a_laptop_over_a_store_of_months() {
    if let Err(why) = common::browser_ready() {
        common::skip_or_fail(&why);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A week of packet time: the lab captures every 20 minutes, 520 times.
    let lab: Vec<_> = std::fs::read_dir(common::lab_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let big = dir.join("week.pcap");
    let frames = common::loop_captures(&lab, 520, 1200, 1_780_000_000, &big);
    assert!(frames > 2_500_000, "{frames} frames");
    let ring_hour = frames_in_last(&big, 3600);

    let rules = dir.join("rules");
    std::fs::create_dir(&rules).unwrap();
    for e in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&p, rules.join(p.file_name().unwrap())).unwrap();
        }
    }
    // A small budget, so evidence fills its half and the ring makes room by itself.
    let config = dir.join("mirrorwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[web]\npassword_file = \"{}\"\n[store]\ndir = \"{}\"\ndisk_budget = \"256MiB\"\nring_file_size = \"16MiB\"\nevidence_max = \"1MiB\"\n",
            dir.join("dashboard.passwd").display(),
            dir.display()
        ),
    )
    .unwrap();
    common::set_password(&config, PASSWORD);

    let started = Instant::now();
    let mut child = mw()
        .args(["run", "--listen", "127.0.0.1:0", "--rules"])
        .arg(&rules)
        .arg("--config")
        .arg(&config)
        .arg("--replay")
        .arg(&big)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let daemon = common::Stopped(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line.find("dashboard on http://") {
                let rest = &line[i + "dashboard on ".len()..];
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").trim_end_matches('/').to_string());
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(60)).expect("the dashboard address was not logged");
    // Settled: every frame stored, no evidence window still to cut.
    let db = dir.join("mirrorwatch.db");
    let deadline = Instant::now() + Duration::from_secs(600);
    let (alerts, windows) = loop {
        let done = rusqlite::Connection::open(&db).ok().and_then(|c| {
            let stored: i64 =
                c.query_row("SELECT coalesce(sum(packets), 0) FROM traffic_minute", [], |r| r.get(0)).ok()?;
            let pending: i64 =
                c.query_row("SELECT count(*) FROM evidence WHERE state = 'pending'", [], |r| r.get(0)).ok()?;
            let alerts: i64 = c.query_row("SELECT count(*) FROM alerts", [], |r| r.get(0)).ok()?;
            let windows: i64 = c.query_row("SELECT count(*) FROM evidence", [], |r| r.get(0)).ok()?;
            (stored as u64 == frames && pending == 0).then_some((alerts, windows))
        });
        if let Some(d) = done {
            break d;
        }
        assert!(Instant::now() < deadline, "replay not settled in time");
        std::thread::sleep(Duration::from_millis(500));
    };
    std::thread::sleep(Duration::from_millis(1500));
    eprintln!("replayed {frames} frames in {:?}: {alerts} alerts, {windows} evidence windows", started.elapsed());
    assert!(alerts > 1000 && windows > 100, "{alerts} alerts, {windows} windows");
    let evicted: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM evidence WHERE state = 'evicted'", [], |r| r.get(0))
        .unwrap();
    assert!(evicted > 0, "the ring deletes the oldest windows itself when evidence fills its half of the budget");

    let shots = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(std::env::var("MIRRORWATCH_SCREENSHOTS").unwrap_or_else(|_| "target/screenshots".into()))
        .join("phone");
    let cfg = serde_json::json!({
        "base": base,
        "password": PASSWORD,
        "screenshots": shots,
        "checks": ["layout", "alerts", "captures", "preview"],
    });
    let cfg_path = dir.join("phone.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let out = Command::new("node").arg("phone.mjs").arg(&cfg_path).current_dir(common::web_dir()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap_or_default();
    assert!(out.status.success(), "browser test failed: {}", seen["failed"]);
    assert!(seen["checks"].as_array().unwrap().len() >= 90, "{seen}");
    // The preview read exactly the ring's last hour of packet time.
    assert_eq!(seen["preview_frames"].as_u64(), Some(ring_hour), "{seen}");
    drop(daemon);
}

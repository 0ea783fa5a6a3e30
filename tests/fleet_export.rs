//! The fleet export's JSON lines (`[export] jsonl`), written by the daemon replaying lab
//! captures: every event type, Community IDs equal to the reference implementation's (PyPI
//! `communityid`), identities and alerts equal to what the dashboard reads from the store, no
//! credential in any form, and `fields = ["-user"]` leaving every user name out.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Run {
    pub events: Vec<Value>,
    pub raw: String,
    pub db: PathBuf,
    pub log: String,
    _dir: tempfile::TempDir,
}

/// `mirrorwatch run --replay CAPTURE` with `[export]` set to `export` (plus `jsonl`), stopped
/// with SIGTERM once the replay is through.
pub fn replay_export(capture: &Path, export: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("events.jsonl");
    let cfg = dir.path().join("mirrorwatch.toml");
    std::fs::write(&cfg, format!("[export]\njsonl = {:?}\n{export}\n", jsonl.to_str().unwrap())).unwrap();
    let db = dir.path().join("store.db");
    let log = dir.path().join("daemon.log");
    let mut child = common::Stopped(
        Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
            .args(["run", "--listen", "", "--config"])
            .arg(&cfg)
            .arg("--rules")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
            .arg("--replay")
            .arg(capture)
            .arg("--db")
            .arg(&db)
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("replayed ") {
        assert!(Instant::now() < deadline, "replay did not finish: {}", std::fs::read_to_string(&log).unwrap());
        assert!(child.0.try_wait().unwrap().is_none(), "daemon exited: {}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    let status = child.0.wait().unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status:?}: {log}");
    let raw = std::fs::read_to_string(&jsonl).unwrap();
    let events = raw.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    Run { events, raw, db, log, _dir: dir }
}

fn lab(name: &str) -> PathBuf {
    common::lab_dir().join(name)
}

fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event_type"] == t).collect()
}

/// The reference Community IDs of `tuples` (src, sport, dst, dport, proto), from the PyPI
/// `communityid` package.
fn reference_ids(tuples: &[(String, u64, String, u64, u64)]) -> Vec<String> {
    let script = r#"
import sys, communityid
c = communityid.CommunityID(seed=0)
for line in sys.stdin:
    s, sp, d, dp, p = line.split()
    t = communityid.FlowTuple(int(p), s, d, int(sp), int(dp))
    print(c.calc(t))
"#;
    let mut child = match Command::new("python3")
        .args(["-c", script])
        .env("PYTHONPATH", Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyref"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("python3: {e}"),
    };
    let input: String = tuples.iter().map(|(s, sp, d, dp, p)| format!("{s} {sp} {d} {dp} {p}\n")).collect();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the reference implementation did not run (scripts/install-deps.sh installs it into target/pyref): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

fn community_ids_match_the_reference(events: &[Value]) -> usize {
    let with: Vec<&Value> = events.iter().filter(|e| e.get("community_id").is_some()).collect();
    let proto = |p: &Value| match p.as_str() {
        Some("TCP") => 6,
        Some("UDP") => 17,
        Some("SCTP") => 132,
        other => other.and_then(|s| s.parse().ok()).unwrap(),
    };
    let tuples: Vec<_> = with
        .iter()
        .map(|e| {
            (
                e["src_ip"].as_str().unwrap().to_string(),
                e["src_port"].as_u64().unwrap(),
                e["dest_ip"].as_str().unwrap().to_string(),
                e["dest_port"].as_u64().unwrap(),
                proto(&e["proto"]),
            )
        })
        .collect();
    let want = reference_ids(&tuples);
    assert_eq!(want.len(), with.len());
    for (e, w) in with.iter().zip(&want) {
        assert_eq!(e["community_id"].as_str(), Some(w.as_str()), "{e}");
    }
    with.len()
}

#[test]
fn the_daemon_exports_every_event_type_as_the_dashboard_sees_it() {
    // PostgreSQL errors and logins, then Kerberos logins and host names, then a NAT with two
    // users (alerts raised and cleared), then a lossy bulk download (retransmissions).
    let dir = tempfile::tempdir().unwrap();
    let merged = dir.path().join("lab.pcap");
    common::loop_captures(
        &[
            lab("lab-pgsql-errors.pcap"),
            lab("lab-kerberos-kdc.pcap"),
            lab("lab-nat-two-users-basic.pcap"),
            lab("lab-http-bulk-loss2.pcap"),
        ],
        1,
        3600,
        1_796_000_000,
        &merged,
    );
    let run = replay_export(&merged, "host = \"mw-osaka\"\nbranch = \"Osaka 3F\"");
    let ev = &run.events;
    for t in ["alert", "identity", "app_error", "flow", "exchange", "stats"] {
        assert!(!of_type(ev, t).is_empty(), "no {t} event:\n{}", run.raw);
    }
    for e in ev {
        assert_eq!((e["host"].as_str(), e["branch"].as_str()), (Some("mw-osaka"), Some("Osaka 3F")), "{e}");
        let ts = e["timestamp"].as_str().unwrap();
        assert!(ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "RFC 3339 with µs: {ts}");
    }
    let n = community_ids_match_the_reference(ev);
    assert!(n >= of_type(ev, "flow").len() + of_type(ev, "app_error").len(), "every flow and error has one");

    // Identities: the same set as the store's (what the identities page lists).
    let conn = rusqlite::Connection::open(&run.db).unwrap();
    let stored: BTreeSet<(String, String, String, String, String, String)> = conn
        .prepare("SELECT user, hostname, source, mac, ip, outcome FROM identities")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let exported: BTreeSet<_> = of_type(ev, "identity")
        .iter()
        .map(|e| {
            let i = &e["identity"];
            (s(&i["user"]), s(&i["hostname"]), s(&i["source"]), s(&e["src_mac"]), s(&e["src_ip"]), s(&i["outcome"]))
        })
        .collect();
    assert_eq!(exported, stored);
    assert!(stored.len() >= 8, "{stored:?}");
    for e in of_type(ev, "identity") {
        let i = &e["identity"];
        assert!(i["first_seen"].as_str() <= i["last_seen"].as_str(), "{e}");
    }

    // Alerts: every stored episode raised once, the cleared ones cleared once.
    let alerts: Vec<(String, String, String)> = conn
        .prepare("SELECT rule, key, state FROM alerts ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let exported = |state: &str| -> Vec<(String, String)> {
        let mut v: Vec<_> = of_type(ev, "alert")
            .iter()
            .filter(|e| e["alert"]["state"] == state)
            .map(|e| (s(&e["alert"]["rule"]), s(&e["alert"]["key"])))
            .collect();
        v.sort();
        v
    };
    let mut raised: Vec<_> = alerts.iter().map(|(r, k, _)| (r.clone(), k.clone())).collect();
    raised.sort();
    let mut cleared: Vec<_> =
        alerts.iter().filter(|(_, _, st)| st == "cleared").map(|(r, k, _)| (r.clone(), k.clone())).collect();
    cleared.sort();
    assert_eq!(exported("raised"), raised);
    assert_eq!(exported("cleared"), cleared);
    assert!(raised.iter().any(|(r, _)| r == "shared-mac"), "{raised:?}");

    // App errors: as stored.
    let stored: i64 = conn.query_row("SELECT count(*) FROM app_errors", [], |r| r.get(0)).unwrap();
    assert_eq!(of_type(ev, "app_error").len() as i64, stored);
    // Flows: those the store keeps in full.
    let stored: i64 = conn.query_row("SELECT count(*) FROM flows", [], |r| r.get(0)).unwrap();
    assert_eq!(of_type(ev, "flow").len() as i64, stored);
    // Stats: the minutes' frames add up to the capture's.
    let frames: u64 = of_type(ev, "stats").iter().map(|e| e["stats"]["packets"].as_u64().unwrap()).sum();
    let stored: i64 = conn.query_row("SELECT sum(packets) FROM traffic_minute", [], |r| r.get(0)).unwrap();
    assert_eq!(frames as i64, stored);
    let retrans: u64 = of_type(ev, "flow").iter().map(|e| e["tcp"]["retransmissions"].as_u64().unwrap_or(0)).sum();
    assert!(retrans > 0, "the lossy download's flow carries its retransmissions");
    assert!(run.log.contains("export stopped:"), "{}", run.log);
}

#[test]
fn no_credential_reaches_the_export_and_user_names_can_be_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let merged = dir.path().join("logins.pcap");
    let mut files: Vec<PathBuf> = common::captures_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/logins"));
    files.extend(
        ["lab-mail-dovecot.pcap", "lab-ftp-smtp-logins.pcap", "lab-nat-two-users-basic.pcap", "lab-kerberos-kdc.pcap"]
            .map(lab),
    );
    let frames = common::loop_captures(&files, 1, 36_000, 1_796_000_000, &merged);
    assert!(frames > 100);
    let all = replay_export(&merged, "");
    let with_users = |raw: &str| ["alice", "bob", "carol"].iter().filter(|u| raw.contains(*u)).count();
    assert!(with_users(&all.raw) >= 2, "the logins are exported with their user names");
    for secret in common::lab_secrets() {
        let s = String::from_utf8_lossy(&secret).into_owned();
        assert!(!all.raw.contains(&s), "a credential in the export: {s}");
    }

    let anonymous = replay_export(&merged, "fields = [\"-user\"]");
    let named: Vec<&str> =
        anonymous.raw.lines().filter(|l| ["alice", "bob", "carol"].iter().any(|u| l.contains(u))).collect();
    assert!(named.is_empty(), "user names left out everywhere, alert texts included:\n{}", named.join("\n"));
    assert!(!of_type(&anonymous.events, "identity").is_empty());
    assert!(of_type(&anonymous.events, "alert").iter().any(|e| e["alert"]["rule"] == "shared-mac"));
    assert_eq!(anonymous.events.len(), all.events.len(), "the same events, fewer fields");
    // Alerts only: the names are still learned from the identities, and still left out.
    let alerts_only = replay_export(&merged, "events = [\"alert\"]\nfields = [\"-user\"]");
    assert!(!alerts_only.events.is_empty() && alerts_only.events.iter().all(|e| e["event_type"] == "alert"));
    assert_eq!(with_users(&alerts_only.raw), 0, "{}", alerts_only.raw);
}

#[test]
fn a_bad_export_setting_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mirrorwatch.toml");
    for (text, says) in [
        ("[export]\nsyslog = \"udp://logs:514\"\n", ":2:"),
        ("[export]\nfields = [\"-password\"]\n", ":2:"),
        ("[export]\nevents = [\"flows\"]\n", ":2:"),
        ("[export]\njsonl = \"x\"\nrotate_size = \"1\"\n", ":3:"),
        ("[export]\nsylog = \"tcp://x:1\"\n", ":2:"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
            .args(["run", "--listen", "", "--config"])
            .arg(&cfg)
            .arg("--replay")
            .arg(lab("lab-http-clean.pcap"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {err}");
        assert!(err.contains(&format!("mirrorwatch.toml{says}")), "{text}: {err}");
    }
}

#[test]
fn the_shipped_configuration_documents_valid_export_keys() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("image/deb/mirrorwatch.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    mirrorwatch::config::Config::parse(&text, &path).unwrap();
    // Each commented key of [export], uncommented alone, is a valid setting.
    let start = text.find("[export]").expect("[export] documented");
    let mut tried = 0;
    for line in text[start..].lines().filter(|l| l.starts_with("# ") && l.contains(" = ")) {
        let key = line.trim_start_matches("# ").split(' ').next().unwrap();
        let setting = line.trim_start_matches("# ");
        let one = text.replacen(line, setting, 1);
        let cfg = mirrorwatch::config::Config::parse(&one, &path).unwrap_or_else(|e| panic!("{setting}: {e}"));
        assert!(serde_json::to_string(&cfg.export).unwrap().contains(key), "{key}");
        tried += 1;
    }
    assert!(tried >= 14, "{tried} keys");
}

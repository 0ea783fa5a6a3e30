//! The daemon's jobs on a real SQLite file filled by `analyze --db`: retention measured from
//! the newest data, the daily report queued as mail, the disk watchdog raising `disk.low`.

mod common;

use std::path::Path;
use std::process::Command;

use mirrorwatch::config::Config;
use mirrorwatch::jobs::{Job, Jobs};
use rusqlite::Connection;

fn analyze_into(db: &Path, captures: &[&str]) {
    let lab = common::lab_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .arg("analyze")
        .args(captures.iter().map(|c| lab.join(c)))
        .arg("--db")
        .arg(db)
        .args(["--rules"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn count(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn config(dir: &Path, mail: bool) -> Config {
    let mut cfg = Config::default();
    cfg.store.dir = dir.to_path_buf();
    if mail {
        cfg.mail.server = "127.0.0.1".into();
        cfg.mail.to = vec!["netadmin@example.com".into()];
    }
    cfg
}

#[test]
fn retention_keeps_the_last_days_before_the_newest_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    analyze_into(&db, &["lab-pgsql-errors.pcap", "lab-http-clean.pcap"]);
    let c = Connection::open(&db).unwrap();
    // Age half of the data by 40 days (as if the box had been running for weeks).
    c.execute_batch(
        "UPDATE traffic_minute SET minute = minute - 40 * 86400 WHERE minute < (SELECT max(minute) FROM traffic_minute);
         UPDATE app_errors SET ts_us = ts_us - 40 * 86400 * 1000000;
         UPDATE app_error_minute SET minute = minute - 40 * 86400;",
    )
    .unwrap();
    let before = count(&c, "SELECT count(*) FROM traffic_minute");
    assert!(before >= 2);
    let jobs = Jobs::new(&config(dir.path(), false), &db, &dir.path().join("rules"));
    let msg = jobs.run(Job::Retention).unwrap();
    assert!(msg.contains("deleted"), "{msg}");
    assert_eq!(count(&c, "SELECT count(*) FROM traffic_minute"), 1, "only the newest minute is recent");
    assert_eq!(count(&c, "SELECT count(*) FROM app_errors"), 0);
    assert_eq!(count(&c, "SELECT count(*) FROM app_error_minute"), 0);
    // Identities and alerts are kept three times longer.
    assert!(count(&c, "SELECT count(*) FROM alerts") > 0);
}

#[test]
fn the_daily_report_is_queued_as_mail() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    analyze_into(&db, &["lab-mariadb-errors.pcap", "lab-http-nginx-5xx.pcap"]);
    let jobs = Jobs::new(&config(dir.path(), true), &db, &dir.path().join("rules"));
    let msg = jobs.run(Job::Digest).unwrap();
    assert!(msg.contains("app errors"), "{msg}");
    let c = Connection::open(&db).unwrap();
    let payload: String = c.query_row("SELECT payload FROM outbox WHERE kind = 'daily'", [], |r| r.get(0)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(v["app_errors"], 11, "{v}"); // 3 MariaDB + 8 nginx
    assert!(v["top"].as_array().unwrap().iter().any(|t| t.as_str().unwrap().starts_with("http 500")), "{v}");
}

#[test]
fn the_disk_watchdog_raises_disk_low_once_per_suppression() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    analyze_into(&db, &["lab-http-clean.pcap"]);
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("d.toml"),
        "[[alert]]\nid = \"disk-low\"\nevent = \"disk.low\"\nmail = true\nsuppress = \"1d\"\n",
    )
    .unwrap();
    let mut cfg = config(dir.path(), true);
    cfg.store.disk_budget = "10KiB".into(); // the database alone is bigger
    let jobs = Jobs::new(&cfg, &db, &rules);
    jobs.run(Job::Disk).unwrap();
    jobs.run(Job::Disk).unwrap();
    let c = Connection::open(&db).unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM alerts WHERE rule = 'disk-low'"), 1);
    assert_eq!(count(&c, "SELECT count(*) FROM outbox WHERE kind = 'alert'"), 1);
    jobs.run(Job::Optimize).unwrap();
}

#[test]
fn unsent_mail_has_a_bound_when_mail_never_works() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    analyze_into(&db, &["lab-http-clean.pcap"]);
    let c = Connection::open(&db).unwrap();
    let now = mirrorwatch::store::wall_us();
    // A mail server that never answered: 1,500 pending mails with evidence, 200 of them old.
    for i in 0..1500i64 {
        let created = if i < 200 { now - 8 * 86_400_000_000 } else { now - i };
        c.execute(
            "INSERT INTO outbox (created_us, kind, payload, evidence, next_try_us) VALUES (?1, 'alert', '{}', x'00ff', ?1)",
            [created],
        )
        .unwrap();
    }
    mirrorwatch::jobs::retention(&c, 30).unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM outbox WHERE state = 'pending'"), 1000);
    assert_eq!(count(&c, "SELECT count(*) FROM outbox WHERE state = 'failed' AND evidence IS NOT NULL"), 0);
    assert!(count(&c, "SELECT count(*) FROM outbox") <= 1200);
}

/// A store that outgrows its share of `disk_budget` before its retention days are up (a busy
/// branch: ~15 GB a day in per-minute rows would fill a stick in days): the retention job
/// deletes the oldest hours until the database is within half the budget, the newest day always
/// stays, identities stay, and the dashboard says how many days the store holds.
#[test]
fn the_database_stays_within_its_share_of_disk_budget_oldest_hours_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mirrorwatch.db");
    let c = mirrorwatch::store::open(&db).unwrap();
    // Ten days of minutes, each with 30 counter groups (~1.2 KiB a minute).
    let start = 1_790_000_000i64 / 86_400 * 86_400;
    let end = start + 10 * 86_400 - 60;
    c.execute_batch(&format!(
        "WITH RECURSIVE m(x) AS (SELECT {start} UNION ALL SELECT x + 60 FROM m WHERE x < {end})
         INSERT INTO traffic_minute (minute, packets, bytes, tcp_packets, udp_packets, other_packets, truncated,
            decode_errors, drops, retransmissions, fast_retransmissions, spurious_retransmissions, duplicate_acks,
            out_of_order, lost_segments, zero_windows, private_retransmissions)
         SELECT x, 100, 10000, 90, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 FROM m;
         WITH RECURSIVE m(x) AS (SELECT {start} UNION ALL SELECT x + 60 FROM m WHERE x < {end}),
              k(y) AS (SELECT 1 UNION ALL SELECT y + 1 FROM k WHERE y < 30)
         INSERT INTO counter_minute (minute, counter, key, value)
         SELECT x, 'http-requests', printf('10.1.%d.%d -> 192.168.200.%d:443', y, y, y), x % 97 FROM m, k;
         INSERT INTO identities (mac, ip, user, realm, hostname, source, outcome, error, first_us, last_us, count)
         VALUES ('02:00:00:00:00:01', '10.1.1.1', 'alice', 'CORP', '', 'kerberos', 'ok', '', {first}, {first}, 1);",
        first = start * 1_000_000
    ))
    .unwrap();
    let used = mirrorwatch::jobs::db_used_bytes(&c).unwrap();
    assert!(used > 20 << 20, "{used}");
    // A budget whose half is a third of what the store uses now.
    let mut cfg = config(dir.path(), false);
    cfg.store.disk_budget = format!("{}", used * 2 / 3);
    cfg.store.retention_days = 30;
    let msg = Jobs::new(&cfg, &db, dir.path()).run(Job::Retention).unwrap();
    let after = mirrorwatch::jobs::db_used_bytes(&c).unwrap();
    assert!(after <= used / 3, "{after} > {} ({msg})", used / 3);
    let (from, to): (i64, i64) =
        c.query_row("SELECT min(minute), max(minute) FROM traffic_minute", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(to, end, "the newest minute stays");
    assert!(from > start + 5 * 86_400, "the oldest days went first: from {from}");
    assert_eq!(from % 3600, 0, "whole hours go");
    assert_eq!(count(&c, &format!("SELECT count(*) FROM counter_minute WHERE minute < {from}")), 0);
    assert_eq!(count(&c, "SELECT count(*) FROM identities"), 1, "identities keep their own retention");
    assert!(msg.contains("oldest hours"), "{msg}");
    // A second run finds it within its share and deletes nothing.
    let again = Jobs::new(&cfg, &db, dir.path()).run(Job::Retention).unwrap();
    assert!(again.contains("of its"), "{again}");
    assert_eq!(count(&c, "SELECT min(minute) FROM traffic_minute"), from);
    eprintln!("{msg}");
}

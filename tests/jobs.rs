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

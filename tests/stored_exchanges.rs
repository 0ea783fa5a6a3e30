//! The store for 30 days: flows kept in full only when worth looking at one by one, the rest as
//! exchanges per minute and hour; counters' hourly rollups; and `diff --db`, two stored periods
//! compared with the file diff's findings. Real lab captures (tests/data), the real program, a
//! real SQLite file; tshark counts the connections the exchanges must hold.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

fn mw(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).args(args).output().expect("running mirrorwatch")
}

fn ok(args: &[&str]) -> String {
    let out = mw(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn diff_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/diff")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// 2026-11-23 14:10 UTC: a Monday afternoon, ten minutes into an hour.
const LAST_WEEK: u64 = 1_795_443_000;
const WEEK: u64 = 604_800;

/// The findings that name what changed (not rates or timings, which need frames the store
/// does not keep): (kind, service, normal, failure).
fn outcome_findings(v: &Value) -> BTreeSet<(String, String, String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| matches!(f["kind"].as_str(), Some("changed_outcome" | "error_only_in_failure" | "only_in_failure")))
        .map(|f| {
            let t = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (t("kind"), t("service"), t("normal"), t("failure"))
        })
        .collect()
}

#[test]
fn a_stored_week_diffs_like_the_two_captures() {
    let work = tempfile::tempdir().unwrap();
    for (normal, failure) in [
        ("diff-dns-normal", "diff-dns-nxdomain"),
        ("diff-dns-normal", "diff-dns-dead"),
        ("diff-web-normal", "diff-web-failure"),
        ("diff-db-login-normal", "diff-db-login-failure"),
        ("diff-db-deadlock-normal", "diff-db-deadlock-failure"),
        ("diff-tls-normal", "diff-tls-failure"),
    ] {
        let (n, f) = (diff_dir().join(format!("{normal}.pcap")), diff_dir().join(format!("{failure}.pcap")));
        let file_diff: Value = serde_json::from_str(&ok(&["diff", s(&n), s(&f), "--format", "json"])).unwrap();
        let want = outcome_findings(&file_diff);
        assert!(!want.is_empty(), "{failure}: the file diff finds nothing to compare with");

        // Last week's capture, and this week's failure at the same time of day, into one store.
        let db = work.path().join(format!("{failure}.db"));
        let (nw, fw) = (work.path().join("normal.pcap"), work.path().join("failure.pcap"));
        loop_captures(std::slice::from_ref(&n), 1, 600, LAST_WEEK, &nw);
        loop_captures(std::slice::from_ref(&f), 1, 600, LAST_WEEK + WEEK, &fw);
        ok(&["analyze", s(&nw), "--db", s(&db)]);
        ok(&["analyze", s(&fw), "--db", s(&db)]);
        // The hour of the failure against the same hour a week earlier (the default span).
        let from = "2026-11-30 14:00";
        let to = "2026-11-30 15:00";
        let stored: Value =
            serde_json::from_str(&ok(&["diff", "--db", s(&db), "--from", from, "--to", to, "--format", "json"]))
                .unwrap();
        assert_eq!(outcome_findings(&stored), want, "{failure}: stored periods against the two captures");
        // The frames and exchanges of both periods are the captures'.
        for (side, file) in [("normal", &file_diff["normal"]), ("failure", &file_diff["failure"])] {
            assert_eq!(stored[side]["frames"], file["frames"], "{failure}: {side} frames");
            assert_eq!(stored[side]["exchanges"], file["exchanges"], "{failure}: {side} exchanges");
        }
        // The text report names the periods and the change.
        let text = ok(&["diff", "--db", s(&db), "--from", from, "--to", to, "--against", "2026-11-23 14:00"]);
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(text.contains("2026-11-23 14:00") && text.contains("2026-11-30 15:00"), "{text}");
        let kind = want.iter().next().unwrap().0.replace('_', " ");
        assert!(text.contains(&kind), "{text}");
        // Two quiet hours: no differences.
        let quiet = ok(&["diff", "--db", s(&db), "--from", "2026-11-30 16:00", "--to", "2026-11-30 17:00"]);
        assert!(quiet.contains("No differences"), "{quiet}");
    }
}

#[test]
fn diff_db_says_what_is_wrong_with_its_arguments() {
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("none.db");
    let out = mw(&["diff", "--db", s(&missing)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such store"));
    let db = work.path().join("s.db");
    ok(&["analyze", s(&diff_dir().join("diff-dns-normal.pcap")), "--db", s(&db)]);
    for (args, says) in [
        (vec!["--from", "yesterday"], "not a time"),
        (vec!["--from", "-1h", "--to", "-2h"], "must come before"),
        (vec!["--against", "7x"], "not a time"),
    ] {
        let mut a = vec!["diff", "--db", s(&db)];
        a.extend(args);
        let out = mw(&a);
        assert!(!out.status.success(), "{a:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{a:?}: {err}");
    }
    // Captures and --db do not mix.
    assert!(!mw(&["diff", "a.pcap", "b.pcap", "--db", s(&db)]).status.success());
}

/// Connections opened by a SYN (not retransmitted), as tshark counts them.
fn tshark_syns(file: &Path) -> usize {
    tshark_fields(
        file,
        Some("tcp.flags.syn == 1 && tcp.flags.ack == 0 && !tcp.analysis.retransmission"),
        &["frame.number"],
    )
    .len()
}

#[test]
fn flows_worth_a_look_are_kept_and_every_connection_is_in_the_exchanges() {
    if !have_tshark() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    for name in ["lab-http-short-loss8", "lab-http-clean", "lab-mail-dovecot", "lab-http-nginx-5xx"] {
        let file = lab_dir().join(format!("{name}.pcap"));
        let db = work.path().join(format!("{name}.db"));
        ok(&["analyze", s(&file), "--db", s(&db)]);
        let conn = rusqlite::Connection::open(&db).unwrap();
        let q = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        // Every connection's exchange: as many as tshark sees SYNs (each ends in one outcome).
        let syn_outcomes = q("SELECT coalesce(sum(count), 0) FROM exchange_minute
                               WHERE proto = 'tcp' AND outcome <> 'seen mid-stream'");
        assert_eq!(syn_outcomes as usize, tshark_syns(&file), "{name}: TCP exchanges against tshark's SYNs");
        // The hour holds what its minutes hold.
        let by_minute = q("SELECT coalesce(sum(count), 0) + coalesce(sum(bytes), 0) FROM exchange_minute");
        let by_hour = q("SELECT coalesce(sum(count), 0) + coalesce(sum(bytes), 0) FROM exchange_hour");
        assert_eq!(by_minute, by_hour, "{name}: hour against minutes");
        // Every retransmission is in the exchanges; flows with them are kept in full, at most
        // ten per client, server and minute.
        let exchange_retrans = q("SELECT coalesce(sum(retransmissions), 0) FROM exchange_minute WHERE proto = 'tcp'");
        let all_retrans = q("SELECT coalesce(sum(retransmissions), 0) FROM traffic_minute");
        assert_eq!(exchange_retrans, all_retrans, "{name}: retransmissions in the exchanges");
        let per_key_minute = q("SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM flows
                                 GROUP BY first_us / 60000000, a_ip, b_ip, min(a_port, b_port))");
        // (Budgets go by the minute a flow ends in; a minute of starts can span two of them.)
        assert!(per_key_minute <= 20, "{name}: {per_key_minute} flows kept for one key in a minute");
        if all_retrans > 0 {
            assert!(q("SELECT count(*) FROM flows WHERE retransmissions > 0") > 0, "{name}: no lossy flow kept");
        }
        // The bytes of the TCP connections are in the exchanges (frames of TCP flows).
        let tcp_bytes: i64 =
            tshark_fields(&file, Some("tcp"), &["frame.len"]).iter().map(|r| r[0].parse::<i64>().unwrap()).sum();
        let stored_bytes = q("SELECT coalesce(sum(bytes), 0) FROM exchange_minute WHERE proto = 'tcp'");
        assert_eq!(stored_bytes, tcp_bytes, "{name}: TCP bytes in the exchanges");
        let kept = q("SELECT count(*) FROM flows");
        let flows = q("SELECT count(*) FROM flows WHERE retransmissions + fast_retransmissions + lost_segments
                        + zero_windows + out_of_order + spurious_retransmissions > 0");
        eprintln!("{name}: {kept} flows kept in full ({flows} with TCP trouble), {syn_outcomes} connections");
    }
    // A clean capture keeps no flow in full.
    let db = work.path().join("lab-http-clean.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let kept: i64 = conn.query_row("SELECT count(*) FROM flows", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, 0, "a clean capture's flows live on in the exchanges only");
}

#[test]
fn counter_hours_hold_their_minutes() {
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("c.db");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    // Two hours of history: the lab captures looped every 10 minutes.
    let files: Vec<PathBuf> = ["lab-http-short-loss8", "lab-dns-dnsmasq", "lab-mail-dovecot"]
        .iter()
        .map(|n| lab_dir().join(format!("{n}.pcap")))
        .collect();
    let looped = work.path().join("looped.pcap");
    loop_captures(&files, 12, 600, LAST_WEEK, &looped);
    ok(&["analyze", s(&looped), "--db", s(&db), "--rules", s(&rules)]);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows = |sql: &str| -> Vec<(String, i64, String, i64)> {
        let mut st = conn.prepare(sql).unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(|r| r.unwrap()).collect()
    };
    let hours = rows("SELECT counter, hour, key, value FROM counter_hour ORDER BY 1, 2, 3");
    let minutes = rows(
        "SELECT counter, (minute / 3600) * 3600 AS h, key, sum(value) FROM counter_minute
          GROUP BY 1, 2, 3 HAVING sum(value) > 0 ORDER BY 1, 2, 3",
    );
    assert!(hours.len() > 10, "{hours:?}");
    assert_eq!(hours, minutes);
}

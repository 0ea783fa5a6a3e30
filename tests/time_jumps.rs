//! Packet time is not trusted for deletion: a frame stamped in 2099 (a Pi without a real-time
//! clock, a damaged or crafted file) is analysed at the last trusted time and counted as a time
//! jump, and retention never measures from a minute beyond the wall clock, so one bad stamp can
//! no longer make the next retention run delete every real row.

mod common;

use std::process::Command;

use mirrorwatch::capture::file::FileSource;
use mirrorwatch::capture::PacketSource;
use mirrorwatch::rules::alerts::Evidence;
use mirrorwatch::time::Ts;
use rusqlite::Connection;

const Y2099: i64 = 4_070_908_800;
const Y1971: i64 = 31_536_000;

#[test]
fn a_frame_in_2099_and_one_in_1971_cannot_empty_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut src = FileSource::open(&common::lab_dir().join("lab-http-short-loss8.pcap")).unwrap();
    let mut frames = Vec::new();
    while let Some(p) = src.next_packet().unwrap() {
        frames.push(Evidence { ts: p.ts, link: p.link.0, orig_len: p.orig_len, data: p.data.to_vec() });
    }
    let n = frames.len() as i64;
    frames[100].ts = Ts::from_secs_nanos(Y2099, 0);
    frames[200].ts = Ts::from_secs_nanos(Y1971, 0);
    let pcap = dir.path().join("jumps.pcapng");
    std::fs::write(&pcap, mirrorwatch::store::pcapng::pcapng(&frames)).unwrap();
    let db = dir.path().join("m.db");
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .args(["analyze", "--json", "--db"])
        .arg(&db)
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["capture"]["time_jumps"], 1);
    assert_eq!(j["packets"], n);

    let c = Connection::open(&db).unwrap();
    let q = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(q(&format!("SELECT count(*) FROM traffic_minute WHERE minute >= {Y2099} - 86400")), 0, "no 2099 row");
    assert_eq!(q("SELECT sum(packets) FROM traffic_minute"), n, "every frame counted");
    assert_eq!(q("SELECT sum(time_jumps) FROM traffic_minute"), 1);
    let real = q(&format!("SELECT sum(packets) FROM traffic_minute WHERE minute > {Y1971}"));

    // A future row that reached the store anyway (older versions, a hand-made file).
    c.execute(&format!("INSERT INTO traffic_minute (minute, packets, bytes, tcp_packets, udp_packets, other_packets, truncated, decode_errors, drops, retransmissions, fast_retransmissions, spurious_retransmissions, duplicate_acks, out_of_order, lost_segments, zero_windows, private_retransmissions) VALUES ({Y2099}, 1, 60, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)"), []).unwrap();
    let msg = mirrorwatch::jobs::retention(&c, 30).unwrap();
    assert_eq!(
        q(&format!("SELECT sum(packets) FROM traffic_minute WHERE minute > {Y1971} AND minute < {Y2099}")),
        real,
        "retention kept every real row ({msg})"
    );
    assert_eq!(
        q(&format!("SELECT count(*) FROM traffic_minute WHERE minute <= {Y1971}")),
        0,
        "the 1971 minute is old: deleted"
    );
}

/// A Pi boots in 1970 until NTP sets the clock: minutes stamped then are kept (counted) but are
/// never what retention or the alert baselines measure from, and retention waits while the
/// wall clock itself reads 1970.
#[test]
fn a_clock_that_starts_in_1970_reaches_neither_retention_nor_baselines() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mw.db");
    let conn = mirrorwatch::store::open(&db).unwrap();
    let now = mirrorwatch::time::wall_now().secs() / 60 * 60;
    let boot = 600; // 1970-01-01T00:10:00Z
    for m in [boot, boot + 60, now - 120, now - 60] {
        conn.execute(
            "INSERT INTO traffic_minute (minute, packets, bytes, tcp_packets, udp_packets, other_packets, truncated,
               decode_errors, drops, retransmissions, fast_retransmissions, spurious_retransmissions, duplicate_acks,
               out_of_order, lost_segments, zero_windows, private_retransmissions)
             VALUES (?1, 10, 1000, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)",
            [m],
        )
        .unwrap();
        conn.execute("INSERT INTO counter_minute (minute, counter, key, value) VALUES (?1, 'c', '', 5)", [m]).unwrap();
    }
    let count = || -> i64 { conn.query_row("SELECT count(*) FROM traffic_minute", [], |r| r.get(0)).unwrap() };
    // While the clock reads 1970: nothing is measured from it, nothing is deleted.
    assert_eq!(mirrorwatch::store::read::newest_minute(&conn, boot + 120).unwrap(), None);
    let msg = mirrorwatch::jobs::retention_at(&conn, 30, boot + 120).unwrap();
    assert!(msg.contains("not set"), "{msg}");
    assert_eq!(count(), 4);
    // Once set: the baselines rebuilt at a restart hold no 1970 minute (all four are stored)…
    let h = mirrorwatch::store::read::alert_history(&db, &["c".to_string()]).unwrap();
    assert_eq!(h.minutes.len(), 2, "{:?}", h.minutes.iter().map(|r| r.minute).collect::<Vec<_>>());
    assert!(h.minutes.iter().all(|r| r.minute >= mirrorwatch::time::CLOCK_FLOOR_SECS));
    // …and retention measures from the real newest minute; the real minutes stay.
    assert_eq!(mirrorwatch::store::read::newest_minute(&conn, now).unwrap(), Some(now - 60));
    mirrorwatch::jobs::retention_at(&conn, 30, now).unwrap();
    let real: i64 =
        conn.query_row("SELECT count(*) FROM traffic_minute WHERE minute >= ?1", [now - 120], |r| r.get(0)).unwrap();
    assert_eq!(real, 2);
}

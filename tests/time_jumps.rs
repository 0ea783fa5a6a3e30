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
    std::fs::write(&pcap, mirrorwatch::capture::write::pcapng(&frames)).unwrap();
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

//! Counters per minute against tshark's `-z io,stat,60,EXPR` (its Frames column for packet
//! counters, Bytes for byte counters; `COUNT(frame)EXPR` counts 0 in tshark 4.0, and io,stat
//! splits its argument at commas, so sets are written as `||` here). tshark's intervals start
//! at the first frame, ours at
//! UTC minute boundaries, so each capture is first shifted with editcap to start exactly on a
//! minute; then interval i is minute `start + 60 i` and the two must agree row for row.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;

const EXPRS: &[(&str, &str)] = &[
    ("retrans", "tcp.analysis.retransmission"),
    (
        "lan-retrans",
        "tcp.analysis.retransmission && (ip.src == 10.0.0.0/8 || ip.src == 172.16.0.0/12 || ip.src == 192.168.0.0/16) \
         && (ip.dst == 10.0.0.0/8 || ip.dst == 172.16.0.0/12 || ip.dst == 192.168.0.0/16)",
    ),
    ("resets", "tcp.flags.reset == 1 && !icmp"),
    ("syn-no-answer", "tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.analysis.retransmission"),
    ("data", "tcp.len > 0"),
    ("udp", "udp"),
    ("dupack", "tcp.analysis.duplicate_ack"),
];
const FILES: &[&str] = &[
    "diff-http-espn-failure.pcapng",
    "mysql-auth-errors-1130-1045.pcap",
    "krb-tso-smb2.pcapng",
    "nbns-names-browser.pcap",
    "krb-as-req-udp-kinit.pcap",
    "pgsql-errors-divzero-aborted.pcap",
];

/// Interval index -> (frames, bytes), from tshark's io,stat table.
fn io_stat(file: &Path, item: &str) -> BTreeMap<u64, (u64, u64)> {
    let out = Command::new("tshark")
        .args(["-n", "-q", "-r"])
        .arg(file)
        .args(["-z", &format!("io,stat,60,{item}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut m = BTreeMap::new();
    for line in text.lines() {
        // "|  0 <> 60 |     54 |  3924 |" or "| 60 <> Dur|     30 |  2148 |"
        let cells: Vec<&str> = line.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
        if cells.len() == 3 && cells[0].contains("<>") {
            let start: u64 = cells[0].split("<>").next().unwrap().trim().parse().unwrap();
            m.insert(start / 60, (cells[1].parse().unwrap(), cells[2].parse().unwrap()));
        }
    }
    m
}

fn first_ts(file: &Path) -> f64 {
    let out = Command::new("capinfos").args(["-a", "-T", "-r", "-S"]).arg(file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().last().unwrap().parse().unwrap()
}

#[test]
fn per_minute_counters_equal_tshark_io_stat() {
    let Some(dir) = corpus_dir() else { return };
    if !have_tshark() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let mut text = String::new();
    for (id, f) in EXPRS {
        text += &format!("[[counter]]\nid = \"{id}\"\nfilter = \"{f}\"\n\n");
    }
    text += "[[counter]]\nid = \"bytes\"\nfilter = \"ip\"\nvalue = \"bytes\"\n";
    std::fs::write(rules.join("t.toml"), text).unwrap();
    let mut rows_checked = 0;
    for name in FILES {
        let src = dir.join(name);
        let shifted = tmp.path().join(format!("shifted-{name}"));
        let t0 = first_ts(&src);
        let start = (t0 / 60.0).ceil() * 60.0;
        let st = Command::new("editcap")
            .arg("-t")
            .arg(format!("{:.6}", start - t0))
            .arg(&src)
            .arg(&shifted)
            .status()
            .unwrap();
        assert!(st.success());
        let start = start as i64;
        let db = tmp.path().join(format!("{name}.db"));
        let out = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
            .arg("analyze")
            .arg(&shifted)
            .arg("--rules")
            .arg(&rules)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let conn = rusqlite::Connection::open(&db).unwrap();
        let ours = |id: &str| -> BTreeMap<u64, u64> {
            let mut stmt =
                conn.prepare("SELECT minute, value FROM counter_minute WHERE counter = ?1 AND key = ''").unwrap();
            stmt.query_map([id], |r| Ok((((r.get::<_, i64>(0)? - start) / 60) as u64, r.get::<_, i64>(1)? as u64)))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        let mut checks: Vec<(&str, &str, bool)> = EXPRS.iter().map(|(id, f)| (*id, *f, false)).collect();
        checks.push(("bytes", "ip", true));
        for (id, item, bytes) in checks {
            let theirs: BTreeMap<u64, u64> = io_stat(&shifted, item)
                .into_iter()
                .map(|(i, (frames, b))| (i, if bytes { b } else { frames }))
                .filter(|(_, v)| *v > 0) // we store no row for an empty minute
                .collect();
            assert_eq!(ours(id), theirs, "{name}: {id} ({item})");
            rows_checked += theirs.len();
        }
    }
    eprintln!("{rows_checked} non-empty (counter, minute) rows equal to tshark io,stat");
    assert!(rows_checked > 40);
}

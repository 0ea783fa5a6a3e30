//! `mirrorwatch analyze` run as a program: the JSON contract, agreement with the tshark oracle
//! over the corpus, damaged inputs (message, offset, exit code) and the SQLite it writes.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn analyze(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).arg("analyze").args(args).output().expect("running mirrorwatch")
}

fn analyze_json(file: &Path) -> (Value, Output) {
    let out = analyze(&[file.as_os_str(), "--json".as_ref()]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: bad JSON ({e}): {}", file.display(), String::from_utf8_lossy(&out.stderr)));
    (v, out)
}

#[test]
fn json_has_every_contract_key() {
    let Some(dir) = corpus_dir() else { return };
    let (v, out) = analyze_json(&dir.join("tcp-retrans-mixed-spurious.pcap"));
    assert!(out.status.success());
    for key in ["packets", "bytes", "first_ts", "last_ts", "flows", "identities", "app_errors", "counters", "alerts"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for key in ["retransmissions", "fast_retransmissions", "spurious_retransmissions", "private_retransmissions"] {
        assert!(v["tcp"].get(key).is_some(), "missing tcp.{key}");
    }
    for key in ["link_type", "truncated_frames", "decode_errors"] {
        assert!(v["capture"].get(key).is_some(), "missing capture.{key}");
    }
    assert_eq!(v["first_ts"], "2009-11-24T00:51:49.119790Z");
    assert_eq!(v["last_ts"], "2009-11-24T00:52:19.991813Z");
    assert_eq!(v["capture"]["link_type"], "ether");
    assert_eq!(v["flows"], 1);
}

/// Every corpus file: packet count and the retransmission counters equal tshark's (oracle).
#[test]
fn summary_counts_equal_the_tshark_oracle_for_every_corpus_file() {
    let Some(dir) = corpus_dir() else { return };
    let oracle: Value = serde_json::from_slice(&std::fs::read(dir.join("oracle/corpus-oracle.json")).expect("oracle"))
        .expect("oracle json");
    let files = oracle["files"].as_object().expect("files");
    let mut checked = 0;
    for (name, o) in files {
        let (v, _) = analyze_json(&dir.join(name));
        let c = &o["counts"];
        let pairs = [
            (&v["packets"], &c["frames"], "packets"),
            (&v["tcp"]["retransmissions"], &c["tcp_retransmission"], "retransmissions"),
            (&v["tcp"]["fast_retransmissions"], &c["tcp_fast_retransmission"], "fast"),
            (&v["tcp"]["spurious_retransmissions"], &c["tcp_spurious_retransmission"], "spurious"),
            (&v["tcp"]["private_retransmissions"], &c["tcp_retransmission_private_to_private"], "private"),
            (&v["tcp"]["duplicate_acks"], &c["tcp_duplicate_ack"], "dupack"),
            (&v["tcp"]["out_of_order"], &c["tcp_out_of_order"], "ooo"),
            (&v["tcp"]["lost_segments"], &c["tcp_lost_segment"], "lost"),
            (&v["capture"]["truncated_frames"], &c["truncated_frames_caplen_lt_len"], "truncated"),
        ];
        for (ours, theirs, what) in pairs {
            assert_eq!(ours.as_u64(), theirs.as_u64(), "{name}: {what}");
        }
        assert_eq!(v["bytes"].as_u64(), o["capinfos"]["data_size_bytes"].as_u64(), "{name}: bytes");
        checked += 1;
    }
    assert!(checked >= 60, "only {checked} files checked");
}

#[test]
fn file_cut_mid_record_is_read_up_to_the_damage_and_exits_1() {
    let Some(dir) = corpus_dir() else { return };
    let (v, out) = analyze_json(&dir.join("trunc-cut-mid-packet.pcap"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["packets"], 124);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("trunc-cut-mid-packet.pcap: truncated record at offset 99955: needs 76 bytes, only 45 left (after frame 124)"),
        "{err}"
    );
    let (v, out) = analyze_json(&dir.join("trunc-cut-mid-block.pcapng"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["packets"], 223);
    assert!(String::from_utf8_lossy(&out.stderr).contains("trunc-cut-mid-block.pcapng: truncated record at offset"));
}

#[test]
fn degenerate_snaplen_and_length_mismatch_are_not_errors() {
    let Some(dir) = corpus_dir() else { return };
    let (v, out) = analyze_json(&dir.join("trunc-snaplen1-hdr.pcap"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!((v["packets"].as_u64(), v["capture"]["truncated_frames"].as_u64()), (Some(1), Some(1)));
    assert_eq!(v["capture"]["stopped_layers"]["link.truncated"], 1);
    let (v, out) = analyze_json(&dir.join("trunc-snaplen68-tcp-headers.pcap"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(v["capture"]["truncated_frames"], 24);
    assert_eq!(v["capture"]["decode_errors"], 0);
}

#[test]
fn bad_magic_missing_file_and_empty_file_are_reported_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.pcap");
    std::fs::write(&text, "GET / HTTP/1.1\r\nHost: example\r\n\r\n").unwrap();
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.path().join("missing.pcap");
    for (file, msg) in [
        (&text, "notes.pcap: not a pcap or pcapng file (magic 0x47455420 at offset 0)"),
        (&empty, "empty.pcap: file is 0 bytes, too short for a capture file header"),
        (&missing, "missing.pcap: read error at offset 0: No such file or directory"),
    ] {
        let (v, out) = analyze_json(file);
        assert_eq!(out.status.code(), Some(1), "{}", file.display());
        assert_eq!(v["packets"], 0);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{err}");
    }
}

#[test]
fn a_bad_file_does_not_stop_the_others() {
    let Some(dir) = corpus_dir() else { return };
    let out = analyze(&[
        dir.join("trunc-cut-mid-packet.pcap").as_os_str(),
        dir.join("tcp-retrans-rto.pcapng").as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["packets"], 130);
    assert_eq!(v["tcp"]["retransmissions"], 5);
    assert_eq!(v["files"][1]["error"], Value::Null);
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).arg("analyze").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn database_holds_what_the_summary_says() {
    let Some(dir) = corpus_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("mw.db");
    let file = dir.join("tcp-retrans-ssh-dups.pcap");
    let out = analyze(&[file.as_os_str(), "--db".as_ref(), db.as_os_str(), "--json".as_ref()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, mirrorwatch::store::schema::version());
    let (packets, bytes, retrans): (i64, i64, i64) = conn
        .query_row("SELECT sum(packets), sum(bytes), sum(retransmissions) FROM traffic_minute", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(packets as u64, v["packets"].as_u64().unwrap());
    assert_eq!(bytes as u64, v["bytes"].as_u64().unwrap());
    assert_eq!(retrans as u64, v["tcp"]["retransmissions"].as_u64().unwrap());
    let pair_retrans: i64 =
        conn.query_row("SELECT sum(retransmissions) FROM tcp_pair_minute", [], |r| r.get(0)).unwrap();
    assert_eq!(pair_retrans, retrans);
    let (flows, flow_retrans): (i64, i64) =
        conn.query_row("SELECT count(*), sum(retransmissions) FROM flows", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(flows as u64, v["flows"].as_u64().unwrap());
    assert_eq!(flow_retrans, retrans);
    // Analysing the same file again into the same database adds up (upsert), loses nothing.
    let out = analyze(&[file.as_os_str(), "--db".as_ref(), db.as_os_str()]);
    assert!(out.status.success());
    let packets2: i64 = conn.query_row("SELECT sum(packets) FROM traffic_minute", [], |r| r.get(0)).unwrap();
    assert_eq!(packets2, 2 * packets);
}

#[test]
fn a_capture_is_read_from_a_pipe_as_from_a_file() {
    let file = lab_dir().join("lab-http-clean.pcap");
    let (want, _) = analyze_json(&file);
    // Plain and gzip-compressed, through standard input (no seeking back to probe for gzip).
    for gz in [false, true] {
        let bytes = std::fs::read(&file).unwrap();
        let bytes = if gz {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&bytes).unwrap();
            e.finish().unwrap()
        } else {
            bytes
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
            .args(["analyze", "/dev/stdin", "--json"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &bytes));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success(), "gzip {gz}: {}", String::from_utf8_lossy(&out.stderr));
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        for k in ["packets", "bytes", "flows", "tcp"] {
            assert_eq!(got[k], want[k], "gzip {gz}: {k}");
        }
    }
}

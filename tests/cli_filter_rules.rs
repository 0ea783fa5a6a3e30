//! `mirrorwatch filter` and `mirrorwatch rules check` as programs: output format like
//! `tshark -Y … -T fields -e frame.number`, error messages with a caret, exit codes.

mod common;

use std::process::{Command, Output};

fn mw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).args(args).output().unwrap()
}

#[test]
fn filter_prints_frame_numbers_like_tshark() {
    let Some(dir) = common::corpus_dir() else { return };
    let f = dir.join("smtp-auth-login-netbios-dns.pcap");
    let out = mw(&["filter", "icmp && tcp", f.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "26\n28\n29\n30\n");
    let out = mw(&["filter", "ip.src != 10.10.1.4", f.to_str().unwrap(), "--count"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "92\n");
    if common::have_tshark() {
        let t = common::tshark_fields(&f, Some("tcp.len > 0 && !icmp"), &["frame.number"]);
        let ours = mw(&["filter", "tcp.len > 0 && !icmp", f.to_str().unwrap()]);
        let want: String = t.iter().map(|r| format!("{}\n", r[0])).collect();
        assert_eq!(String::from_utf8_lossy(&ours.stdout), want);
    }
}

#[test]
fn bad_filter_shows_a_caret_and_exits_1() {
    let Some(dir) = common::corpus_dir() else { return };
    let f = dir.join("tcp-retrans-rto.pcapng");
    let out = mw(&["filter", "tcp.port in {80 443}", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("column 17: \"443\" was unexpected (set elements are separated by commas)"), "{err}");
    assert!(err.contains("    tcp.port in {80 443}\n                    ^"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn filter_help_lists_the_fields() {
    let out = mw(&["filter", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for f in ["tcp.analysis.retransmission", "http.response.code", "kerberos.CNameString", "app_error.code"] {
        assert!(text.contains(f), "{f} missing from:\n{text}");
    }
}

#[test]
fn rules_check_accepts_the_shipped_rules_and_rejects_a_bad_file() {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let out = mw(&["rules", "check", shipped.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("counters"));

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("bad.toml"),
        "[[counter]]\nid = \"x\"\nfilter = \"tcp.flags.syn == true\"\ncolour = \"red\"\n",
    )
    .unwrap();
    let out = mw(&["rules", "check", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let path = tmp.path().join("bad.toml");
    assert!(err.contains(&format!("{}:4:1: unknown field `colour`", path.display())), "{err}");
}

#[test]
fn analyze_fills_counters_from_rules() {
    let Some(dir) = common::corpus_dir() else { return };
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let f = dir.join("smtp-auth-login-netbios-dns.pcap");
    let out = mw(&["analyze", f.to_str().unwrap(), "--rules", shipped.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v["counters"]["icmp-unreachable"];
    assert_eq!(c["total"], 4);
    assert_eq!(c["groups"][0]["key"], "10.10.1.4");
    assert_eq!(c["groups"][0]["count"], 4);
    // Same numbers as the filter command.
    let n = mw(&["filter", "icmp.type == 3 || icmpv6.type == 1", f.to_str().unwrap(), "--count"]);
    assert_eq!(String::from_utf8_lossy(&n.stdout).trim(), "4");
    assert!(v["counters"]["tcp-resets"]["total"].is_u64());
}

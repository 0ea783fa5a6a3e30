//! Odd traces against the oracle (tests/lab/make-odd-captures.py makes them from real lab
//! traffic): for every expression, the frame numbers must be the ones `tshark -Y` gives, and
//! what the analysis reports must be what tshark shows.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn odd(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/odd").join(name)
}

use common::{our_frames as ours, tshark_frames as theirs};

fn analyze(file: &Path) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).arg("analyze").arg(file).arg("--json").output().unwrap();
    serde_json::from_slice(&o.stdout).unwrap()
}

const EXPRESSIONS: &[&str] = &[
    "tcp",
    "udp",
    "tcp.analysis.flags",
    "tcp.analysis.retransmission",
    "tcp.analysis.fast_retransmission",
    "tcp.analysis.spurious_retransmission",
    "tcp.analysis.duplicate_ack",
    "tcp.analysis.lost_segment",
    "tcp.analysis.out_of_order",
    "tcp.len > 1000",
    "tcp.len == 1048",
    "tcp.len == 0",
    "tcp.hdr_len == 60",
    "tcp.port == 8080",
    "tcp.stream == 0",
    "ip.addr == 10.77.2.20",
    "ip.dst == 10.77.2.20",
    "ip.dst == 10.77.9.9",
    "ip.addr == 10.77.9.9",
    "tcp.stream == 1",
    "tcp.stream == 3",
    "http",
    "http.request",
    "http.response",
    "http.response.code == 999",
    "http.response.code == 600",
    "http.response.code == 99",
    "http.response.code >= 500",
    "http.response.code < 100",
    "dhcp",
    "dhcp.option.hostname",
    "dhcp.option.hostname == \"nas1\"",
    "dhcp.option.hostname matches \"^nas1$\"",
];

#[test]
fn odd_traces_match_tshark() {
    if !common::have_tshark() {
        return common::skip_or_fail("tshark is not installed");
    }
    let files = common::captures_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/odd"));
    assert!(files.len() >= 2, "{files:?}");
    for f in &files {
        for e in EXPRESSIONS {
            assert_eq!(ours(e, f), theirs(e, f), "{} -Y '{e}'", f.display());
        }
    }
}

#[test]
fn a_frame_shorter_than_its_ip_length_is_analysed_with_what_it_carries() {
    if !common::have_tshark() {
        return common::skip_or_fail("tshark is not installed");
    }
    let f = odd("odd-ipv4-short-frames.pcap");
    // The gaps the short frames leave are what tshark reports as segments not captured.
    let lost = theirs("tcp.analysis.lost_segment", &f);
    assert!(lost.len() > 20, "{lost:?}");
    let j = analyze(&f);
    assert_eq!(j["tcp"]["retransmissions"].as_u64().unwrap() as usize, theirs("tcp.analysis.retransmission", &f).len());
}

#[test]
fn a_source_route_names_the_destination_and_the_conversation() {
    if !common::have_tshark() {
        return common::skip_or_fail("tshark is not installed");
    }
    let f = odd("odd-ipv4-source-route.pcap");
    // The client's packets of two downloads go to the route's final hop: conversations of
    // their own, whose retransmissions tshark counts apart.
    assert_eq!(ours("ip.dst == 10.77.9.9", &f).len(), 101);
    let j = analyze(&f);
    assert_eq!(j["tcp"]["retransmissions"].as_u64().unwrap() as usize, theirs("tcp.analysis.retransmission", &f).len());
    assert_eq!(j["flows"].as_u64().unwrap(), 5, "two downloads split in two, one whole");
}

#[test]
fn status_codes_outside_100_to_599_are_responses_but_not_errors() {
    let j = analyze(&odd("lab-http-odd-status.pcap"));
    let codes: Vec<&str> = j["app_errors"].as_array().unwrap().iter().filter_map(|e| e["code"].as_str()).collect();
    assert_eq!(codes, ["503"], "only 5xx are application errors");
}

#[test]
fn dns_quoted_in_icmp_errors_is_dns_to_filters() {
    if !common::have_tshark() {
        return common::skip_or_fail("tshark is not installed");
    }
    // Queries to a resolver that is down: each comes back quoted in a port unreachable.
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for f in [data.join("diff/diff-dns-dead.pcap"), data.join("logins/login-telnet-std.pcap")] {
        for e in ["dns", "icmp && dns", "dns.qry.name contains \".\"", "dns.flags.response == 0"] {
            assert_eq!(ours(e, &f), theirs(e, &f), "{} -Y '{e}'", f.display());
        }
        assert!(!ours("icmp && dns", &f).is_empty());
    }
}

#[test]
fn a_dhcp_host_name_ends_at_its_nul() {
    let j = analyze(&odd("odd-dhcp-hostname-nul.pcap"));
    let names: Vec<&str> = j["identities"].as_array().unwrap().iter().filter_map(|i| i["hostname"].as_str()).collect();
    assert!(!names.is_empty());
    assert!(names.iter().all(|n| *n == "nas1"), "{names:?}");
}

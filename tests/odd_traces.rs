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
    "tcp.analysis.reused_ports",
    "tcp.analysis.ack_lost_segment",
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
    "kerberos",
    "kerberos.msg_type == 12",
    "kerberos.CNameString == \"alice\"",
    "kerberos.CNameString contains \"$\"",
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
    // The bare "HTTP/1.1 500 Internal Server Error" the server closed after (no line end, no
    // headers) is one too, on its FIN (tshark shows no HTTP there; it was missed before).
    assert_eq!(codes, ["500", "503"], "only 5xx are application errors");
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

/// The analysis's retransmission count of a capture, and tshark's frames for the flag.
fn retransmissions(f: &Path) -> (u64, usize) {
    let j = analyze(f);
    (j["tcp"]["retransmissions"].as_u64().unwrap(), theirs("tcp.analysis.retransmission", f).len())
}

#[test]
fn a_syn_repeated_after_a_reset_does_not_turn_the_connection_into_retransmissions() {
    if !common::have_tshark() {
        return common::skip_or_fail("tshark is not installed");
    }
    // tests/lab/make-port-reuse.sh: a new connection from the port of one the server still
    // holds; challenge ACK, RST with that ACK's number, the SYN repeated, 20 exchanges.
    let f = odd("lab-tcp-port-reuse-rst.pcap");
    assert_eq!(ours("tcp.analysis.reused_ports", &f).len(), 2, "the new SYN and its SYN/ACK");
    // Only the repeated SYN is a retransmission (the 20 requests were 21 before).
    assert_eq!(retransmissions(&f), (1, 1));
    assert_eq!(ours("tcp.stream == 1", &f), theirs("tcp.stream == 1", &f));
}

#[test]
fn a_handshake_without_a_usable_time_leaves_the_out_of_order_threshold_at_3_ms() {
    if !common::have_tshark() {
        return common::skip_or_fail("tshark is not installed");
    }
    // The first SYN stamped at the epoch: no RTT for that download, so resends within 3 ms
    // of the highest segment are out of order (one of them was a retransmission before).
    let f = odd("odd-tcp-epoch-clock.pcap");
    assert_eq!(retransmissions(&f), (13, 13));
    assert_eq!(ours("tcp.analysis.out_of_order", &f).len(), 4);
    // A millisecond clock: SYN and ACK in the same millisecond are "no RTT yet", the next ACK
    // gives it, and with it resends beyond it are retransmissions again (8 before, 10 now).
    let f = odd("odd-tcp-millisecond-clock.pcap");
    assert_eq!(retransmissions(&f), (10, 10));
}

#[test]
fn a_resend_after_an_ack_of_an_unseen_segment_is_a_fast_retransmission() {
    if !common::have_tshark() {
        return common::skip_or_fail("tshark is not installed");
    }
    // Through text2pcap every frame is shorter than its IPv4 length: ACKs of bytes the frames
    // did not carry leave Wireshark's unsigned duplicate-ACK count at -1, which passes ">= 2".
    let f = odd("odd-text2pcap-short-loss8.pcap");
    let fast = theirs("tcp.analysis.fast_retransmission", &f);
    assert_eq!(fast.len(), 7);
    assert_eq!(ours("tcp.analysis.fast_retransmission", &f), fast);
    assert_eq!(retransmissions(&f), (29, 29));
}

#[test]
fn an_ipv4_option_shorter_than_its_fields_ends_the_packet_as_malformed() {
    if !common::have_tshark() {
        return common::skip_or_fail("tshark is not installed");
    }
    // 3-byte router alert and timestamp options on server packets, a CIPSO tag running past
    // its option on client packets: IPv4 to filters, no TCP, counted where the decoder stopped.
    let f = odd("odd-ipv4-malformed-option.pcap");
    let (tcp, ip) = (theirs("tcp", &f), theirs("ip", &f));
    assert_eq!(ip.len() - tcp.len(), 107);
    assert_eq!(ours("tcp", &f), tcp);
    assert_eq!(ours("ip", &f), ip);
    let j = analyze(&f);
    assert_eq!(j["capture"]["stopped_layers"]["ipv4.malformed"], 107);
    // The segments tshark never saw are not there to be retransmitted (14 before, 9 now).
    assert_eq!(retransmissions(&f), (9, 9));
}

#[test]
fn a_ticket_request_seen_alone_names_its_client_when_its_body_does() {
    // Two TGS-REQs without an AS exchange or a reply, whose request body carries the optional
    // client name (tshark: kerberos.CNameString "alice", "WS7$"): a user and a host (nothing before).
    let j = analyze(&odd("odd-kerberos-tgs-cname.pcap"));
    let ids = j["identities"].as_array().unwrap();
    let users: Vec<&str> = ids.iter().filter_map(|i| i["user"].as_str()).collect();
    let hosts: Vec<&str> = ids.iter().filter_map(|i| i["hostname"].as_str()).collect();
    assert_eq!((users, hosts), (vec!["alice"], vec!["WS7"]));
    assert!(ids.iter().all(|i| i["source"] == "kerberos" && i["realm"] == "BRANCH.LAN" && i["outcome"] == "unknown"));
}

#[test]
fn kerberos_inside_smb2_session_setup_is_kerberos_to_filters() {
    if !common::have_tshark() {
        return common::skip_or_fail("tshark is not installed");
    }
    // The AP-REQ/AP-REP (or KRB-ERROR) in SPNEGO in SMB2 SESSION_SETUP, on the frame that
    // completes the message: a Windows capture (corpus, TSO frames) and a login cut into
    // 300-byte segments (nothing outside port 88 before).
    let mut files = vec![odd("odd-smb2-kerberos-split.pcap")];
    if let Some(dir) = common::corpus_dir() {
        files.push(dir.join("krb-tso-smb2.pcapng"));
    }
    for f in &files {
        for e in [
            "kerberos",
            "kerberos && !(tcp.port == 88 || udp.port == 88)",
            "kerberos.msg_type == 14",
            "kerberos.msg_type == 15",
            "kerberos.msg_type == 30",
            "kerberos.realm",
        ] {
            assert_eq!(ours(e, f), theirs(e, f), "{} -Y '{e}'", f.display());
        }
        assert!(!ours("kerberos && tcp.port == 445", f).is_empty(), "{}", f.display());
    }
}

//! Tunnelled traffic against the oracle: HTTP downloads through 3 % loss, captured inside a
//! VXLAN overlay, ERSPAN type II and III and GRE mirror sessions, plain GRE, IP in IP (IPIP,
//! 6in4, 4in6, IPv6 in IPv6), Geneve, GTP-U, and as a WAN port carries them: in a PPPoE session
//! (untagged, VLAN, QinQ, compressed protocol field) and under MPLS labels
//! (tests/lab/make-tunnel-captures.sh). The inner frames are analysed as if captured directly,
//! the outer headers stay visible to filters: for every expression, the frame numbers must be
//! the ones `tshark -Y` gives.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn tunnel_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tunnel")
}

use common::{our_frames as ours, tshark_frames as theirs};

const EXPRESSIONS: &[&str] = &[
    "tcp",
    "tcp.analysis.flags",
    "tcp.analysis.retransmission",
    "tcp.analysis.fast_retransmission",
    "tcp.analysis.duplicate_ack",
    "tcp.analysis.lost_segment",
    "tcp.analysis.out_of_order",
    "tcp.flags.syn == 1 && tcp.flags.ack == 0",
    "tcp.port == 8080",
    "tcp.len > 1000",
    "ip.addr == 10.77.2.20",
    "ip.src == 10.77.1.10",
    "ip.dst == 10.89.5.2",
    "udp",
    "udp.port == 4789",
    "gre",
    "erspan",
    "vxlan",
    "vxlan.vni == 100",
    "gre.proto == 0x88be",
    "gre.proto == 0x22eb",
    "gre.proto == 0x6558",
    "gre.proto == 0x0800",
    "icmpv6",
    "pppoes",
    "pppoe.session_id == 0x1234",
    "vlan",
    "vlan.id == 10",
    "mpls",
    "mpls.label == 100",
    "mpls.label == 200",
    "ipv6",
    "ipv6.addr == fd77:2::20",
    "ipv6.src == fd77:1::10",
    "ip.proto == 4",
    "ip.proto == 41",
    "geneve",
    "geneve.vni == 0x123",
    "udp.port == 6081",
    "gtp",
    "gtp.teid == 0x1234",
    "udp.port == 2152",
    "http.request.method == \"GET\"",
    "frame contains \"HTTP/1.0 200\"",
    "ppp",
    "chdlc",
    "wlan",
    "gre.proto == 0x880b",
    "gre.proto == 0x883e",
    "gre.proto == 0x8847",
    "gre.proto == 0x6400",
    "gre.proto == 0x8210",
    "mpls.label == 300",
    "nsh",
    "gre.proto == 0x894f",
];

#[test]
fn tunnelled_frames_match_tshark() {
    if !common::have_tshark() {
        return common::skip_or_fail("tshark is not installed");
    }
    let files = common::captures_in(&tunnel_dir());
    assert_eq!(files.len(), 29, "{files:?}");
    let mut compared = 0;
    for f in &files {
        for e in EXPRESSIONS {
            let (a, b) = (ours(e, f), theirs(e, f));
            assert_eq!(a, b, "{} -Y '{e}'", f.display());
            compared += 1;
        }
        // The inner TCP is what is analysed: as many TCP frames as tshark sees, none skipped.
        assert!(!theirs("tcp", f).is_empty());
    }
    assert_eq!(compared, files.len() * EXPRESSIONS.len());
}

#[test]
fn tunnels_are_opened_not_counted_as_stopped() {
    for f in common::captures_in(&tunnel_dir()) {
        let o = Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).arg("analyze").arg(&f).arg("--json").output().unwrap();
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let stops = &j["capture"]["stopped_layers"];
        for layer in ["gre", "vxlan", "pppoe", "mpls", "ipip", "geneve", "gtp"] {
            assert!(
                stops.as_object().is_none_or(|m| !m.keys().any(|k| k.starts_with(layer))),
                "{}: {stops}",
                f.display()
            );
        }
        // Retransmissions are found inside the tunnel, between the inner private addresses.
        assert!(j["tcp"]["retransmissions"].as_u64().unwrap() > 0, "{}", f.display());
        assert!(j["tcp"]["private_retransmissions"].as_u64().unwrap() > 0, "{}", f.display());
    }
}

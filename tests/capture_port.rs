//! The mirror port is listen-only: after `mirrorwatch prepare-port` the interface has no
//! address, no IPv6 (so no router solicitation, DAD or MLD), answers no ARP, and its transmit
//! counter does not move while the daemon captures pings, ARP, IPv6 multicast and TCP
//! connection attempts aimed at it — whereas before, with an address, it answered them.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(o.status.success(), "failed: {cmd}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn root_with_tools() -> bool {
    let root = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    root.unwrap_or(false)
        && ["ip", "ping", "curl"]
            .iter()
            .all(|t| Command::new("sh").arg("-c").arg(format!("command -v {t}")).status().is_ok_and(|s| s.success()))
}

struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

#[test]
fn the_capture_port_transmits_nothing() {
    if !root_with_tools() {
        common::skip_or_fail("capture port test needs root, iproute2, ping and curl");
        return;
    }
    let tag = format!("mwp{}", std::process::id() % 100_000);
    let (box_ns, sw_ns) = (format!("{tag}-box"), format!("{tag}-sw"));
    let (cap, peer) = (format!("{tag}c"), format!("{tag}s"));
    sh(&format!("ip netns add {box_ns} && ip netns add {sw_ns}"));
    let _guard = Netns(vec![box_ns.clone(), sw_ns.clone()]);
    sh(&format!(
        "ip link add {cap} type veth peer name {peer} && ip link set {cap} netns {box_ns} && ip link set {peer} netns {sw_ns} && \
         ip -n {box_ns} addr add 10.66.0.1/24 dev {cap} && ip -n {box_ns} link set {cap} up && \
         ip -n {sw_ns} addr add 10.66.0.2/24 dev {peer} && ip -n {sw_ns} link set {peer} up"
    ));
    let tx = || -> u64 {
        sh(&format!("ip netns exec {box_ns} cat /sys/class/net/{cap}/statistics/tx_packets")).trim().parse().unwrap()
    };
    let traffic = || {
        // Pings to the port's old address and to the subnet (ARP), IPv6 all-nodes multicast,
        // a TCP connection attempt; none may be answered.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ip netns exec {sw_ns} ping -c 2 -W 1 -i 0.2 10.66.0.1; ip netns exec {sw_ns} ping -c 1 -W 1 10.66.0.9; \
                 ip netns exec {sw_ns} ping -6 -c 2 -W 1 -i 0.2 ff02::1%{peer}; \
                 ip netns exec {sw_ns} curl -s -m 2 http://10.66.0.1:80/"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    // Control: with an address, the port answers (the measurement can see a transmission).
    std::thread::sleep(Duration::from_millis(500));
    let before = tx();
    traffic();
    assert!(tx() > before, "the control run transmitted nothing: the counter cannot be trusted");

    // prepare-port, run in the box's namespace as the unit runs it before the daemon.
    let out = Command::new("ip")
        .args(["netns", "exec", &box_ns, env!("CARGO_BIN_EXE_mirrorwatch"), "prepare-port", "--interface", &cap])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let addrs = sh(&format!("ip -n {box_ns} -o addr show dev {cap}"));
    assert!(addrs.trim().is_empty(), "addresses left: {addrs}");
    let link = sh(&format!("ip -n {box_ns} link show dev {cap}"));
    assert!(link.contains("PROMISC") && link.contains("NOARP") && link.contains(",UP"), "{link}");
    let v6 = sh(&format!("ip netns exec {box_ns} cat /proc/sys/net/ipv6/conf/{cap}/disable_ipv6"));
    assert_eq!(v6.trim(), "1");

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mw.db");
    let mut daemon = Command::new("ip")
        .args([
            "netns",
            "exec",
            &box_ns,
            env!("CARGO_BIN_EXE_mirrorwatch"),
            "run",
            "--listen",
            "",
            "--config",
            "/dev/null",
        ])
        .args(["--interface", &cap, "--db"])
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let quiet = tx();
    traffic();
    std::thread::sleep(Duration::from_secs(2));
    let after = tx();
    let _ = Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
    let _ = daemon.wait();
    assert_eq!(after, quiet, "the capture port transmitted {} frames", after - quiet);
    // And the daemon saw the traffic it did not answer.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let seen: i64 = conn.query_row("SELECT coalesce(sum(packets), 0) FROM traffic_minute", [], |r| r.get(0)).unwrap();
    assert!(seen >= 5, "captured {seen} frames");
}

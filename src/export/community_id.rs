//! Community ID v1 (<https://github.com/corelight/community-id-spec>): the flow hash Zeek,
//! Suricata and Arkime put on their records, so a central team joins ours with theirs.
//!
//! `1:` + base64(SHA-1(seed ‖ lower address ‖ higher address ‖ proto ‖ 0 ‖ lower port ‖
//! higher port)), all in network byte order; the endpoints are ordered by address, then port,
//! so both directions of a flow hash alike.

use std::net::IpAddr;

use base64::Engine;

/// The flow's Community ID with the seed every tool uses by default (0). `None` for mixed
/// address families (no such flow).
pub fn community_id(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: u8) -> Option<String> {
    community_id_seeded(0, src, sport, dst, dport, proto)
}

pub fn community_id_seeded(seed: u16, src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: u8) -> Option<String> {
    let mut buf = [0u8; 2 + 16 + 16 + 2 + 4];
    buf[..2].copy_from_slice(&seed.to_be_bytes());
    let (sa, da, len) = match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (a.to_ipv6_mapped().octets(), b.to_ipv6_mapped().octets(), 4),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.octets(), b.octets(), 16),
        _ => return None,
    };
    let (s, d) = (&sa[16 - len..], &da[16 - len..]);
    // Ports take part only for protocols that have them (TCP, UDP, SCTP); ICMP's type and code
    // mapping is not needed: the flow table keeps no ICMP flows.
    let ports = matches!(proto, 6 | 17 | 132);
    let (sport, dport) = if ports { (sport, dport) } else { (0, 0) };
    let ordered = s < d || (s == d && sport <= dport);
    let ((a, ap), (b, bp)) = if ordered { ((s, sport), (d, dport)) } else { ((d, dport), (s, sport)) };
    let mut n = 2;
    for part in [a, b] {
        buf[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    buf[n] = proto;
    buf[n + 1] = 0;
    n += 2;
    if ports {
        buf[n..n + 2].copy_from_slice(&ap.to_be_bytes());
        buf[n + 2..n + 4].copy_from_slice(&bp.to_be_bytes());
        n += 4;
    }
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &buf[..n]);
    Some(format!("1:{}", base64::engine::general_purpose::STANDARD.encode(digest.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of the reference implementation (PyPI `communityid` 1.5,
    /// `CommunityID().calc(FlowTuple.make_tcp(...))`); the integration test compares every
    /// exported flow with it as well.
    #[test]
    fn equals_the_reference_implementation() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases = [
            (ip("128.232.110.120"), 34855, ip("66.35.250.204"), 80, 6, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
            (ip("66.35.250.204"), 80, ip("128.232.110.120"), 34855, 6, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
            (ip("192.168.1.52"), 54585, ip("8.8.8.8"), 53, 17, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
            (
                ip("fe80::200:86ff:fe05:80da"),
                0,
                ip("fe80::260:97ff:fe07:69ea"),
                0,
                50,
                "1:1Zll8nj8/lG0iQHhD9jh9TAkadw=",
            ),
        ];
        for (s, sp, d, dp, p, want) in cases {
            assert_eq!(community_id(s, sp, d, dp, p).as_deref(), Some(want), "{s}:{sp} {d}:{dp} proto {p}");
        }
        assert_eq!(community_id(ip("10.0.0.1"), 1, ip("::1"), 2, 6), None);
    }
}

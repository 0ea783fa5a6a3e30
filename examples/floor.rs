//! The naive floor of `benches/throughput.sh`: what the least a flow-keeping reader costs, with
//! no analysis at all — libpcap reads the file, etherparse slices each frame, and a std
//! `HashMap` (SipHash) keeps packets and bytes per 5-tuple. mirrorwatch's full pipeline is
//! measured against it (packets per CPU-second and instructions per packet).
//!
//!   cargo run --release --example floor -- TRACE [MAX_FRAMES]

use std::collections::HashMap;
use std::net::IpAddr;

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};

type Key = (IpAddr, IpAddr, u16, u16, u8);

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or_else(|| anyhow::anyhow!("usage: floor TRACE [MAX_FRAMES]"))?;
    let max: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(u64::MAX);
    let mut cap = pcap::Capture::from_file(&path)?;
    let mut flows: HashMap<Key, (u64, u64)> = HashMap::new();
    let (mut frames, mut undecoded) = (0u64, 0u64);
    while frames < max {
        let pkt = match cap.next_packet() {
            Ok(p) => p,
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => return Err(e.into()),
        };
        frames += 1;
        // Lax: a frame cut by the snaplen still yields its headers.
        let Ok(s) = LaxSlicedPacket::from_ethernet(pkt.data) else {
            undecoded += 1;
            continue;
        };
        let (src, dst, proto) = match &s.net {
            Some(LaxNetSlice::Ipv4(v4)) => {
                let h = v4.header();
                (IpAddr::from(h.source_addr()), IpAddr::from(h.destination_addr()), h.protocol().0)
            }
            Some(LaxNetSlice::Ipv6(v6)) => {
                let h = v6.header();
                (IpAddr::from(h.source_addr()), IpAddr::from(h.destination_addr()), h.next_header().0)
            }
            _ => {
                undecoded += 1;
                continue;
            }
        };
        let (sp, dp) = match &s.transport {
            Some(TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port()),
            Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
            _ => (0, 0),
        };
        // Both directions on one flow: the lower endpoint first.
        let key = if (src, sp) <= (dst, dp) { (src, dst, sp, dp, proto) } else { (dst, src, dp, sp, proto) };
        let e = flows.entry(key).or_default();
        e.0 += 1;
        e.1 += pkt.header.len as u64;
    }
    println!("{frames} frames, {} flows, {undecoded} not IP", flows.len());
    Ok(())
}

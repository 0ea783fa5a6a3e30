//! Flow-table behaviour: conversation identity (S7), bounds and eviction, clock jumps.

use super::*;
use crate::capture::{LinkType, RawPacket};
use crate::decode::decode;

/// Ethernet + IPv4 + TCP frame (checksums are not checked by the decoder).
// One argument per header field keeps the test frames readable at the call sites.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tcp_frame(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    len: usize,
) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (40 + len) as u16;
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.extend_from_slice(&[0x50, flags, 0x20, 0x00, 0, 0, 0, 0]);
    f.extend(std::iter::repeat_n(b'x', len));
    f
}

fn feed(table: &mut FlowTable, frames: &[(f64, Vec<u8>)], out: &mut Vec<FlowRecord>) -> Vec<FlowOutcome> {
    frames
        .iter()
        .enumerate()
        .map(|(i, (t, data))| {
            let pkt = RawPacket {
                frame: i as u64 + 1,
                ts: Ts((t * 1e9) as i64),
                orig_len: data.len() as u32,
                link: LinkType::ETHERNET,
                interface: 0,
                data,
            };
            table.process(&decode(&pkt), &mut |r| out.push(r))
        })
        .collect()
}

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;

#[test]
fn s7_same_isn_stays_in_the_stream_new_isn_starts_a_new_one() {
    let p = 1007;
    let frames = vec![
        (0.0, tcp_frame(A, B, p, 80, 1000, 0, SYN, 0)),
        (1.0, tcp_frame(A, B, p, 80, 1000, 0, SYN, 0)),
        (1.01, tcp_frame(B, A, 80, p, 5000, 1001, SYN | ACK, 0)),
        (1.02, tcp_frame(A, B, p, 80, 1001, 5001, ACK, 0)),
        (2.0, tcp_frame(A, B, p, 80, 1001, 5001, FIN | ACK, 0)),
        (2.01, tcp_frame(B, A, 80, p, 5001, 1002, FIN | ACK, 0)),
        (2.02, tcp_frame(A, B, p, 80, 1002, 5002, ACK, 0)),
        (3.0, tcp_frame(A, B, p, 80, 1000, 0, SYN, 0)),
        (4.0, tcp_frame(A, B, p, 80, 9000, 0, SYN, 0)),
    ];
    let mut table = FlowTable::new(FlowConfig::default());
    let mut out = Vec::new();
    let r = feed(&mut table, &frames, &mut out);
    let streams: Vec<u64> = r.iter().map(|o| o.stream).collect();
    assert_eq!(streams, [0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert!(r[1].tcp.flags.has(TcpFlags::RETRANSMISSION));
    assert!(r[7].tcp.flags.has(TcpFlags::RETRANSMISSION));
    assert_eq!(r[8].tcp.flags, TcpFlags(TcpFlags::REUSED_PORTS));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].reason, EndReason::Reused);
    assert_eq!(out[0].flow.packets, [6, 2]);
}

#[test]
fn full_table_evicts_and_counts_instead_of_growing() {
    let cfg = FlowConfig { max_flows: 16, ..FlowConfig::default() };
    let mut table = FlowTable::new(cfg);
    let mut out = Vec::new();
    let frames: Vec<(f64, Vec<u8>)> =
        (0..100u16).map(|i| (i as f64 * 0.001, tcp_frame(A, B, 2000 + i, 80, 1, 0, SYN, 0))).collect();
    feed(&mut table, &frames, &mut out);
    assert_eq!(table.stats.active, 16);
    assert_eq!(table.stats.evicted, 84);
    assert_eq!(out.len(), 84);
    assert!(out.iter().all(|r| r.reason == EndReason::Evicted));
    assert_eq!(table.slots.len(), 16);
}

#[test]
fn idle_flows_expire_on_packet_time_but_not_across_a_clock_jump() {
    let cfg = FlowConfig { udp_idle_secs: 60, tcp_idle_secs: 60, clock_jump_secs: 3600, ..FlowConfig::default() };
    let mut table = FlowTable::new(cfg);
    let mut out = Vec::new();
    let year = 365.0 * 86400.0;
    feed(
        &mut table,
        &[
            (0.0, tcp_frame(A, B, 1, 80, 1, 0, SYN, 0)),
            // Years later (a merged capture): the first flow survives the jump.
            (year, tcp_frame(A, B, 2, 80, 1, 0, SYN, 0)),
            (year + 30.0, tcp_frame(A, B, 2, 80, 2, 0, ACK, 0)),
        ],
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(table.stats.clock_jumps, 1);
    // 120 s of ordinary packet time later, both have been idle for more than 60 s.
    feed(&mut table, &[(year + 150.0, tcp_frame(A, B, 3, 80, 1, 0, SYN, 0))], &mut out);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|r| r.reason == EndReason::Idle));
}

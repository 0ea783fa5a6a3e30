//! The synthetic scenarios S1–S11 of `shared/reference/wireshark-semantics.md` §3 (each checked
//! there with tshark 4.0.17), plus sequence-number wrap-around, replayed through
//! [`TcpConversation::analyze`].

use super::*;
use crate::time::NANOS_PER_SEC;

const C: usize = 0; // client direction
const S: usize = 1; // server direction

struct Seg {
    t_ms: f64,
    dir: usize,
    seq: u32,
    ack: u32,
    flags: &'static str,
    win: u16,
    len: u32,
}

fn seg(t_ms: f64, dir: usize, seq: u32, ack: u32, flags: &'static str, win: u16, len: u32) -> Seg {
    Seg { t_ms, dir, seq, ack, flags, win, len }
}

fn hdr(s: &Seg) -> TcpHeader {
    let mut f = 0;
    for c in s.flags.chars() {
        f |= match c {
            'F' => FIN,
            'S' => SYN,
            'R' => RST,
            'P' => PSH,
            'A' => ACK,
            _ => 0,
        };
    }
    TcpHeader {
        src_port: if s.dir == C { 1000 } else { 80 },
        dst_port: if s.dir == C { 80 } else { 1000 },
        seq: s.seq,
        ack: s.ack,
        flags: f,
        window: s.win,
        header_len: 20,
        seg_len: s.len,
        wscale: None,
        malformed: false,
    }
}

/// Runs the segments and returns each frame's flag names.
fn run(segs: &[Seg]) -> Vec<Vec<&'static str>> {
    run_from(Ts(100 * NANOS_PER_SEC), segs)
}

/// [`run`] with the capture's clock starting at `base` (generated captures start at the epoch).
fn run_from(base: Ts, segs: &[Seg]) -> Vec<Vec<&'static str>> {
    let mut conv = TcpConversation::default();
    segs.iter()
        .enumerate()
        .map(|(i, s)| {
            let ts = Ts(base.0 + (s.t_ms * 1e6) as i64);
            let a = conv.analyze(s.dir, &hdr(s), ts, i as u64 + 1);
            TcpFlags::NAMES.iter().filter(|(b, _)| a.flags.has(*b)).map(|(_, n)| *n).collect()
        })
        .collect()
}

fn expect(got: &[Vec<&str>], want: &[&[&str]]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let mut g = g.clone();
        let mut w = w.to_vec();
        g.sort();
        w.sort();
        assert_eq!(g, w, "frame {}", i + 1);
    }
}

#[test]
fn s1_lost_segment_then_out_of_order_then_retransmission() {
    let r = run(&[
        seg(0.0, C, 1001, 5001, "A", 1000, 100),
        seg(1.0, C, 1201, 5001, "A", 1000, 100),
        seg(2.0, C, 1101, 5001, "A", 1000, 100),
        seg(500.0, C, 1001, 5001, "A", 1000, 100),
    ]);
    expect(&r, &[&[], &["lost_segment"], &["out_of_order"], &["retransmission"]]);
}

#[test]
fn s2_duplicate_acks_then_fast_retransmission() {
    let r = run(&[
        seg(0.0, C, 10001, 5001, "A", 1000, 100),
        seg(1.0, C, 10101, 5001, "A", 1000, 100),
        seg(2.0, C, 10201, 5001, "A", 1000, 100),
        seg(10.0, S, 5001, 10101, "A", 1000, 0),
        seg(11.0, S, 5001, 10101, "A", 1000, 0),
        seg(12.0, S, 5001, 10101, "A", 1000, 0),
        seg(13.0, S, 5001, 10101, "A", 1000, 0),
        seg(15.0, C, 10101, 5001, "A", 1000, 100),
    ]);
    expect(
        &r,
        &[
            &[],
            &[],
            &[],
            &[],
            &["duplicate_ack"],
            &["duplicate_ack"],
            &["duplicate_ack"],
            &["fast_retransmission", "retransmission"],
        ],
    );
}

#[test]
fn s2_dup_ack_numbers_count_up() {
    let mut conv = TcpConversation::default();
    let segs = [
        seg(0.0, C, 10001, 5001, "A", 1000, 100),
        seg(10.0, S, 5001, 10101, "A", 1000, 0),
        seg(11.0, S, 5001, 10101, "A", 1000, 0),
        seg(12.0, S, 5001, 10101, "A", 1000, 0),
    ];
    let nums: Vec<u32> = segs
        .iter()
        .enumerate()
        .map(|(i, s)| conv.analyze(s.dir, &hdr(s), Ts((s.t_ms * 1e6) as i64), i as u64 + 1).dupack_num)
        .collect();
    assert_eq!(nums, [0, 0, 1, 2]);
    assert_eq!(conv.dir[S].lastnondupack, 2);
}

#[test]
fn s3_spurious_retransmission() {
    let r = run(&[
        seg(0.0, C, 1, 5001, "A", 1000, 100),
        seg(10.0, S, 5001, 101, "A", 1000, 0),
        seg(500.0, C, 1, 5001, "A", 1000, 100),
    ]);
    expect(&r, &[&[], &[], &["spurious_retransmission", "retransmission"]]);
}

#[test]
fn s4_keep_alive_window_events_and_zero_window_probes() {
    let r = run(&[
        seg(0.0, C, 1, 5001, "A", 1000, 100),
        seg(10.0, S, 5001, 101, "A", 1000, 0),
        seg(1000.0, C, 100, 5001, "A", 1000, 0),
        seg(1010.0, S, 5001, 101, "A", 1000, 0),
        seg(1020.0, S, 5001, 101, "A", 2000, 0),
        seg(1030.0, S, 5001, 101, "A", 0, 0),
        seg(1500.0, C, 101, 5001, "A", 1000, 1),
        seg(1510.0, S, 5001, 101, "A", 0, 0),
        seg(2000.0, C, 101, 5001, "A", 1000, 1),
        seg(2010.0, S, 5001, 102, "A", 1000, 0),
        seg(2500.0, C, 102, 5001, "A", 1000, 100),
    ]);
    expect(
        &r,
        &[
            &[],
            &[],
            &["keep_alive"],
            &["keep_alive_ack"],
            &["window_update"],
            &["zero_window"],
            &["zero_window_probe"],
            &["zero_window_probe_ack", "zero_window"],
            &["zero_window_probe"],
            &["ack_lost_segment"],
            &["lost_segment"],
        ],
    );
}

#[test]
fn s5_acked_unseen_segment_is_reported_once() {
    let r = run(&[
        seg(0.0, C, 1, 5001, "A", 1000, 100),
        seg(1.0, C, 201, 5001, "A", 1000, 100),
        seg(10.0, S, 5001, 301, "A", 1000, 10),
        seg(30.0, C, 301, 5011, "A", 1000, 100),
        seg(40.0, S, 5011, 401, "A", 1000, 0),
    ]);
    expect(&r, &[&[], &["lost_segment"], &["ack_lost_segment"], &[], &[]]);
}

#[test]
fn s6_segment_filling_the_hole_exactly_is_a_retransmission() {
    let r = run(&[
        seg(0.0, C, 1, 5001, "A", 1000, 100),
        seg(0.5, C, 201, 5001, "A", 1000, 0),
        seg(1.0, C, 101, 5001, "A", 1000, 100),
    ]);
    expect(&r, &[&[], &["lost_segment"], &["retransmission"]]);
}

#[test]
fn s8_data_after_a_one_byte_keep_alive_is_not_a_retransmission() {
    let r = run(&[
        seg(0.0, C, 1, 5001, "A", 1000, 100),
        seg(1000.0, C, 100, 5001, "A", 1000, 1),
        seg(2000.0, C, 100, 5001, "A", 1000, 50),
    ]);
    expect(&r, &[&[], &["keep_alive"], &[]]);
}

#[test]
fn s9_out_of_order_window_is_the_initial_rtt() {
    let r = run(&[
        seg(0.0, C, 1000, 0, "S", 8192, 0),
        seg(10.0, S, 5000, 1001, "SA", 200, 0),
        seg(20.0, C, 1001, 5001, "A", 8192, 0),
        seg(30.0, C, 1001, 5001, "A", 8192, 200),
        seg(50.0, C, 1401, 5001, "A", 8192, 100),
        seg(60.0, C, 1301, 5001, "A", 8192, 100),
    ]);
    expect(&r, &[&[], &[], &[], &["window_full"], &["lost_segment"], &["out_of_order"]]);
}

#[test]
fn s10_without_handshake_the_window_is_3ms() {
    let r = run(&[
        seg(30.0, C, 1001, 5001, "A", 8192, 200),
        seg(50.0, C, 1401, 5001, "A", 8192, 100),
        seg(60.0, C, 1301, 5001, "A", 8192, 100),
    ]);
    expect(&r, &[&[], &["lost_segment"], &["retransmission"]]);
}

#[test]
fn s11_syn_with_the_same_isn_after_rst_is_a_retransmission() {
    let r = run(&[
        seg(0.0, C, 1000, 0, "S", 8192, 0),
        seg(10.0, S, 5000, 1001, "SA", 8192, 0),
        seg(20.0, C, 1001, 5001, "A", 8192, 0),
        seg(500.0, C, 1001, 5001, "RA", 0, 0),
        seg(1000.0, C, 1000, 0, "S", 8192, 0),
    ]);
    expect(&r, &[&[], &[], &[], &[], &["retransmission"]]);
}

#[test]
fn sequence_numbers_wrap_around() {
    // Data crossing 2^32: no false "lost segment", and a resend before the wrap is a retransmission.
    let r = run(&[
        seg(0.0, C, u32::MAX - 99, 5001, "A", 1000, 100),
        seg(1.0, C, 0, 5001, "A", 1000, 100),
        seg(2.0, C, 100, 5001, "A", 1000, 100),
        seg(500.0, C, 0, 5001, "A", 1000, 100),
    ]);
    expect(&r, &[&[], &[], &[], &["retransmission"]]);
}

#[test]
fn syn_and_fin_consume_one_sequence_number() {
    let mut conv = TcpConversation::default();
    let segs = [
        seg(0.0, C, 1000, 0, "S", 8192, 0),
        seg(10.0, S, 5000, 1001, "SA", 8192, 0),
        seg(20.0, C, 1001, 5001, "A", 8192, 0),
        seg(30.0, C, 1001, 5001, "FA", 8192, 0),
    ];
    for (i, s) in segs.iter().enumerate() {
        conv.analyze(s.dir, &hdr(s), Ts(NANOS_PER_SEC + (s.t_ms * 1e6) as i64), i as u64 + 1);
    }
    assert_eq!(conv.dir[C].nextseq, 1002);
    assert_eq!(conv.dir[S].nextseq, 5001);
    assert_eq!(conv.first_rtt_ns, 20_000_000);
}

#[test]
fn zero_length_acks_never_count_as_retransmissions() {
    let r = run(&[
        seg(0.0, C, 1, 5001, "A", 1000, 100),
        seg(10.0, S, 5001, 101, "A", 1000, 0),
        seg(20.0, S, 5001, 101, "A", 1000, 0),
        seg(900.0, S, 5001, 101, "A", 1000, 0),
    ]);
    expect(&r, &[&[], &[], &["duplicate_ack"], &["duplicate_ack"]]);
}

#[test]
fn a_resend_stamped_before_the_previous_segment_is_a_retransmission_not_out_of_order() {
    // From a lab trace captured on a multi-queue interface: the initial RTT is 57 µs; frame 4 is
    // stamped 11 µs *before* frame 3, so Wireshark's unsigned time difference is huge and the
    // out-of-order test fails. Frame 5, 0 µs after the newest data, is out-of-order.
    let r = run(&[
        seg(0.0, C, 1000, 0, "S", 8192, 0),
        seg(0.042, S, 5000, 1001, "SA", 8192, 0),
        seg(0.057, C, 1001, 5001, "A", 8192, 0),
        seg(10.000, S, 5001, 1001, "A", 8192, 1448),
        seg(10.010, S, 8897, 1001, "A", 8192, 1448),
        seg(9.999, S, 6449, 1001, "A", 8192, 1448),
        seg(10.010, S, 7673, 1001, "A", 8192, 100),
    ]);
    expect(&r, &[&[], &[], &[], &[], &["lost_segment"], &["retransmission"], &["out_of_order"]]);
}

/// The handshake of the out-of-order cases below: SYN at 0, SYN/ACK at 0.01 ms, ACK at 0.02 ms
/// (an RTT of 20 µs), then 1, 2 and 3 from the client, 3 arriving 1 ms before 2.
fn ooo_after_fast_handshake() -> Vec<Seg> {
    vec![
        seg(0.0, C, 1000, 0, "S", 8192, 0),
        seg(0.01, S, 5000, 1001, "SA", 8192, 0),
        seg(0.02, C, 1001, 5001, "A", 8192, 0),
        seg(1.0, C, 1001, 5001, "A", 8192, 100),
        seg(2.0, C, 1201, 5001, "A", 8192, 100),
        seg(3.0, C, 1101, 5001, "A", 8192, 100),
    ]
}

#[test]
fn a_known_rtt_sets_the_out_of_order_threshold() {
    // 1 ms after the highest segment is beyond the 20 µs RTT: a retransmission.
    let r = run(&ooo_after_fast_handshake());
    expect(&r, &[&[], &[], &[], &[], &["lost_segment"], &["retransmission"]]);
}

#[test]
fn a_syn_stamped_at_the_epoch_leaves_the_rtt_unknown() {
    // A generated capture whose clock starts at 0: Wireshark's zero time is "no SYN seen", so
    // the threshold stays 3 ms and segment 2 is out of order (tshark 4.0.17: ooo, not retrans).
    let r = run_from(Ts(0), &ooo_after_fast_handshake());
    expect(&r, &[&[], &[], &[], &[], &["lost_segment"], &["out_of_order"]]);
}

#[test]
fn an_ack_stamped_like_its_syn_leaves_the_rtt_to_the_next_ack() {
    // Millisecond clocks: SYN, SYN/ACK and ACK share a timestamp (RTT 0, "unknown"); the next
    // ACK, 4 ms later, gives an RTT of 4 ms, so 3.5 ms after the highest segment is out of order.
    let mut conv = TcpConversation::default();
    let segs = [
        seg(0.0, C, 1000, 0, "S", 8192, 0),
        seg(0.0, S, 5000, 1001, "SA", 8192, 0),
        seg(0.0, C, 1001, 5001, "A", 8192, 0),
        seg(4.0, C, 1001, 5001, "A", 8192, 100),
        seg(5.0, C, 1201, 5001, "A", 8192, 100),
        seg(8.5, C, 1101, 5001, "A", 8192, 100),
    ];
    let mut last = TcpAnalysis::default();
    for (i, s) in segs.iter().enumerate() {
        last = conv.analyze(s.dir, &hdr(s), Ts(NANOS_PER_SEC + (s.t_ms * 1e6) as i64), i as u64 + 1);
        if i == 2 {
            assert_eq!(conv.first_rtt_ns, 0, "an RTT of 0 is no RTT");
        }
    }
    assert_eq!(conv.first_rtt_ns, 4_000_000);
    assert!(last.flags.has(TcpFlags::OUT_OF_ORDER), "{:?}", last.flags);
}

#[test]
fn the_ack_that_gives_the_rtt_is_judged_without_it() {
    // No pure ACK ends the handshake: the first ACK after the SYN is a data segment, and the
    // next one goes back 0.5 ms. Both are judged with the 3 ms default (dissect_tcp sets
    // ts_first_rtt after the analysis): out of order (tshark 4.0.17).
    let r = run(&[
        seg(0.0, C, 1000, 0, "S", 8192, 0),
        seg(0.01, S, 5000, 1001, "SA", 8192, 0),
        seg(1.0, C, 1201, 5001, "A", 8192, 100),
        seg(1.5, C, 1001, 5001, "A", 8192, 100),
    ]);
    expect(&r, &[&[], &[], &["lost_segment"], &["out_of_order"]]);
    // The server's first data gives an RTT of 50 µs once analysed: its segment 5101, 0.54 ms
    // after the highest, is then a retransmission (tshark 4.0.17).
    let r = run(&[
        seg(0.0, C, 1000, 0, "S", 8192, 0),
        seg(0.01, S, 5000, 1001, "SA", 8192, 0),
        seg(0.05, S, 5001, 1001, "A", 8192, 100),
        seg(0.06, S, 5201, 1001, "A", 8192, 100),
        seg(0.5, C, 1001, 5101, "A", 8192, 0),
        seg(0.6, S, 5101, 1001, "A", 8192, 100),
    ]);
    expect(&r, &[&[], &[], &[], &["lost_segment"], &[], &["retransmission"]]);
}

#[test]
fn a_repeated_syn_takes_back_the_sequence_an_rst_moved() {
    // Wireshark issue 17616: the server still holds an older connection on these ports and
    // answers the SYN with a challenge ACK; the client's RST carries that ACK's number (far
    // ahead of its own ISN); the client repeats its SYN (same ISN) and the connection goes on.
    // The repeated SYN is a retransmission, the data after it is not.
    let r = run(&[
        seg(0.0, C, 1000, 0, "S", 8192, 0),
        seg(0.1, S, 7000, 900_000, "A", 8192, 0),
        seg(0.2, C, 900_000, 0, "R", 0, 0),
        seg(1000.0, C, 1000, 0, "S", 8192, 0),
        seg(1000.1, S, 9000, 1001, "SA", 8192, 0),
        seg(1000.2, C, 1001, 9001, "A", 8192, 0),
        seg(1000.3, C, 1001, 9001, "PA", 8192, 100),
        seg(1000.4, S, 9001, 1101, "A", 8192, 0),
    ]);
    // tshark 4.0.17: the challenge ACK and the handshake's ACK acknowledge unseen segments, the
    // SYN/ACK (new server ISN) is reused_ports; the data and its ACK are clean.
    expect(
        &r,
        &[
            &[],
            &["ack_lost_segment"],
            &[],
            &["retransmission"],
            &["reused_ports", "lost_segment"],
            &["ack_lost_segment"],
            &[],
            &[],
        ],
    );
}

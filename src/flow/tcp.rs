//! TCP sequence analysis with Wireshark 4.0's `tcp.analysis.*` semantics.
//!
//! One [`TcpConversation`] holds the two directions' state (Wireshark's `tcp_flow_t`), and
//! [`TcpConversation::analyze`] runs the checks of `tcp_analyze_sequence_number()` in the same
//! order, with the same state updates. The names (`nextseq`, `lastack`, `maxseqtobeacked`,
//! `dupacknum`…) are Wireshark's so a reader can follow the reference
//! (`shared/reference/wireshark-semantics.md` §2). Sequence numbers are raw; comparisons use
//! 32-bit wrap-around arithmetic; 0 means "unknown" exactly where Wireshark treats it so.
//!
//! Not kept: the unacked-segment list (it only feeds RTT/bytes-in-flight fields, not flags), so
//! memory per conversation is fixed.

use crate::decode::{tcp_flags::*, TcpHeader};
use crate::time::Ts;

/// `tcp.analysis.*` flags of one segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u32);

impl TcpFlags {
    pub const RETRANSMISSION: u32 = 1 << 0;
    pub const FAST_RETRANSMISSION: u32 = 1 << 1;
    pub const SPURIOUS_RETRANSMISSION: u32 = 1 << 2;
    pub const OUT_OF_ORDER: u32 = 1 << 3;
    pub const LOST_SEGMENT: u32 = 1 << 4;
    pub const ACK_LOST_SEGMENT: u32 = 1 << 5;
    pub const DUPLICATE_ACK: u32 = 1 << 6;
    pub const ZERO_WINDOW: u32 = 1 << 7;
    pub const ZERO_WINDOW_PROBE: u32 = 1 << 8;
    pub const ZERO_WINDOW_PROBE_ACK: u32 = 1 << 9;
    pub const KEEP_ALIVE: u32 = 1 << 10;
    pub const KEEP_ALIVE_ACK: u32 = 1 << 11;
    pub const WINDOW_UPDATE: u32 = 1 << 12;
    pub const WINDOW_FULL: u32 = 1 << 13;
    pub const REUSED_PORTS: u32 = 1 << 14;

    /// Wireshark field names, in bit order.
    pub const NAMES: [(u32, &'static str); 15] = [
        (Self::RETRANSMISSION, "retransmission"),
        (Self::FAST_RETRANSMISSION, "fast_retransmission"),
        (Self::SPURIOUS_RETRANSMISSION, "spurious_retransmission"),
        (Self::OUT_OF_ORDER, "out_of_order"),
        (Self::LOST_SEGMENT, "lost_segment"),
        (Self::ACK_LOST_SEGMENT, "ack_lost_segment"),
        (Self::DUPLICATE_ACK, "duplicate_ack"),
        (Self::ZERO_WINDOW, "zero_window"),
        (Self::ZERO_WINDOW_PROBE, "zero_window_probe"),
        (Self::ZERO_WINDOW_PROBE_ACK, "zero_window_probe_ack"),
        (Self::KEEP_ALIVE, "keep_alive"),
        (Self::KEEP_ALIVE_ACK, "keep_alive_ack"),
        (Self::WINDOW_UPDATE, "window_update"),
        (Self::WINDOW_FULL, "window_full"),
        (Self::REUSED_PORTS, "reused_ports"),
    ];

    pub fn has(self, f: u32) -> bool {
        self.0 & f != 0
    }
    pub fn set(&mut self, f: u32) {
        self.0 |= f;
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Looks a flag up by its `tcp.analysis.` field name.
    pub fn by_name(name: &str) -> Option<u32> {
        Self::NAMES.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }
}

/// Result of analysing one segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpAnalysis {
    pub flags: TcpFlags,
    /// For duplicate ACKs: the dup-ACK number (`tcp.analysis.duplicate_ack_num`).
    pub dupack_num: u32,
}

impl TcpAnalysis {
    /// Wireshark's `tcp.analysis.retransmission` is also set on fast and spurious retransmissions.
    pub fn is_retransmission(&self) -> bool {
        self.flags.has(TcpFlags::RETRANSMISSION)
    }
}

fn gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}
fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
fn le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// Wireshark computes these time differences in a `guint64` (`(secs diff) * 1e9 + nsecs diff`),
/// so a negative delta — packets out of time order, as multi-queue captures produce — wraps to a
/// huge value and fails `t < limit`. Seen on a lab trace: a resent segment stamped 11 µs before
/// the previous one is a Retransmission, not Out-Of-Order.
fn within(delta_ns: i64, limit_ns: i64) -> bool {
    (delta_ns as u64) < (limit_ns as u64)
}

/// Window scale state (`win_scale` in Wireshark).
const WSCALE_UNKNOWN: i8 = -1;
const WSCALE_NONE: i8 = -2;

/// One direction of a conversation (Wireshark's `tcp_flow_t` + `tcp_analyze_seq_flow_info_t`).
#[derive(Clone, Copy, Debug)]
pub struct TcpDirection {
    pub base_seq: u32,
    pub base_seq_set: bool,
    pub nextseq: u32,
    pub nextseqtime: Ts,
    pub maxseqtobeacked: u32,
    pub lastack: u32,
    pub lastacktime: Ts,
    /// Raw window field of the last segment; u32::MAX until one is seen (Wireshark's
    /// G_MAXUINT32), so a first segment is never taken for a zero-window probe.
    pub window: u32,
    pub win_scale: i8,
    /// True while `window` came from a SYN (the SYN's window is never scaled).
    window_from_syn: bool,
    pub lastsegmentflags: TcpFlags,
    pub dupacknum: i32,
    pub lastnondupack: u64,
}

impl Default for TcpDirection {
    fn default() -> Self {
        TcpDirection {
            base_seq: 0,
            base_seq_set: false,
            nextseq: 0,
            nextseqtime: Ts(0),
            maxseqtobeacked: 0,
            lastack: 0,
            lastacktime: Ts(0),
            window: u32::MAX,
            win_scale: WSCALE_UNKNOWN,
            window_from_syn: false,
            lastsegmentflags: TcpFlags(0),
            dupacknum: 0,
            lastnondupack: 0,
        }
    }
}

/// Both directions plus per-conversation timing. Direction 0 is the endpoint with the lower
/// (address, port); the caller says which direction a segment travels.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConversation {
    pub dir: [TcpDirection; 2],
    /// Time of the most recent SYN (`ts_mru_syn`); retransmitted SYNs move it. A zero time is
    /// "no SYN seen", as Wireshark tests it (`nstime_is_zero`): a SYN stamped at the epoch, as
    /// generated captures often are, leaves the conversation without an RTT.
    pub ts_mru_syn: Ts,
    /// Initial RTT (`ts_first_rtt`): most recent SYN to the first ACK that follows it; zero is
    /// "not known yet", so a handshake whose SYN and ACK share a timestamp (millisecond clocks)
    /// takes the RTT from the next ACK, as tshark does.
    pub first_rtt_ns: i64,
    /// Which endpoint sent the first SYN (the client), if seen.
    pub client_dir: Option<u8>,
}

/// What the caller must do before analysing a SYN (conversation identity, §2.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynCheck {
    SameConversation,
    /// A SYN with a new ISN on a known conversation: a new `tcp.stream` starts (reused ports).
    NewConversation,
}

impl TcpConversation {
    /// Wireshark starts a new conversation when a SYN (no ACK) carries a sequence number other
    /// than the stored base of that direction.
    pub fn syn_check(&self, dir: usize, t: &TcpHeader) -> SynCheck {
        let fwd = &self.dir[dir & 1];
        if t.has(SYN) && !t.has(ACK) && fwd.base_seq_set && t.seq != fwd.base_seq {
            SynCheck::NewConversation
        } else {
            SynCheck::SameConversation
        }
    }

    /// Runs the sequence analysis for one segment travelling in direction `dir` (0 or 1).
    pub fn analyze(&mut self, dir: usize, t: &TcpHeader, now: Ts, frame: u64) -> TcpAnalysis {
        let dir = dir & 1;
        let (fwd_i, rev_i) = (dir, 1 - dir);
        let flags = t.flags;
        let (seq, ack, seglen, win) = (t.seq, t.ack, t.seg_len, t.window as u32);
        let syn_fin_rst = flags & (SYN | FIN | RST) != 0;
        let mut a = TcpAnalysis::default();

        // Base sequence numbers (set in the analysis in 4.0); the conversation's timing is
        // updated after the analysis (step 14), as dissect_tcp does, so the frame that gives the
        // first RTT is not judged by it.
        if flags & SYN != 0 {
            if flags & ACK == 0 {
                self.client_dir.get_or_insert(dir as u8);
            } else if self.client_dir.is_none() {
                self.client_dir = Some(1 - dir as u8);
            }
            // Window scaling: a SYN without the option means no scaling for this direction; a
            // SYN/ACK without it turns scaling off for both (RFC 7323 §2.2).
            let fwd = &mut self.dir[fwd_i];
            fwd.win_scale = t.wscale.map(|s| s.min(14) as i8).unwrap_or(WSCALE_NONE);
            if flags & ACK != 0 && t.wscale.is_none() {
                self.dir[rev_i].win_scale = WSCALE_NONE;
            }
        }
        {
            let fwd = &mut self.dir[fwd_i];
            if flags & (SYN | ACK) == SYN && fwd.base_seq_set && seq == fwd.base_seq {
                // A repeated SYN (same ISN): the highest sequence seen is taken back to the last
                // contiguous one, because an RST sent in between with the sequence number of a
                // stale ACK (RFC 793 §3.4) moved it (Wireshark issue 17616). Without this, every
                // segment of the connection that follows is a "retransmission".
                fwd.nextseq = fwd.maxseqtobeacked;
            }
            if !fwd.base_seq_set {
                fwd.base_seq = if flags & SYN != 0 { seq } else { seq.wrapping_sub(1) };
                fwd.base_seq_set = true;
            } else if flags & SYN != 0 && flags & ACK != 0 && seq != fwd.base_seq {
                // A SYN/ACK with a new ISN overwrites the base (reused ports, same stream).
                fwd.base_seq = seq;
                a.flags.set(TcpFlags::REUSED_PORTS);
            }
        }
        if flags & ACK != 0 && !self.dir[rev_i].base_seq_set {
            self.dir[rev_i].base_seq = ack.wrapping_sub(1);
            self.dir[rev_i].base_seq_set = true;
        }

        let [d0, d1] = &mut self.dir;
        let (fwd, rev) = if dir == 0 { (d0, d1) } else { (d1, d0) };

        'checks: {
            // 1. Zero-window probe.
            if seglen == 1 && seq == fwd.nextseq && rev.window == 0 {
                a.flags.set(TcpFlags::ZERO_WINDOW_PROBE);
                break 'checks;
            }
            // 2. Zero window.
            if win == 0 && !syn_fin_rst {
                a.flags.set(TcpFlags::ZERO_WINDOW);
            }
            // 3. Previous segment not captured.
            if fwd.nextseq != 0 && gt(seq, fwd.nextseq) && flags & RST == 0 {
                a.flags.set(TcpFlags::LOST_SEGMENT);
            }
            // 4. Keep-alive.
            if seglen <= 1 && !syn_fin_rst && seq == fwd.nextseq.wrapping_sub(1) {
                a.flags.set(TcpFlags::KEEP_ALIVE);
            }
            // 5. Window update.
            if seglen == 0 && win != 0 && win != fwd.window && seq == fwd.nextseq && ack == fwd.lastack && !syn_fin_rst
            {
                a.flags.set(TcpFlags::WINDOW_UPDATE);
            }
            // 6. Window full.
            if seglen > 0 && rev.win_scale != WSCALE_UNKNOWN && !syn_fin_rst && rev.window != u32::MAX {
                let shift = if rev.window_from_syn || rev.win_scale == WSCALE_NONE { 0 } else { rev.win_scale as u32 };
                let edge = rev.lastack.wrapping_add(rev.window << shift);
                if seq.wrapping_add(seglen) == edge {
                    a.flags.set(TcpFlags::WINDOW_FULL);
                }
            }
            let same_ack_point = seglen == 0 && seq == fwd.nextseq && ack == fwd.lastack && !syn_fin_rst;
            // 7. Keep-alive ACK.
            if same_ack_point && win != 0 && win == fwd.window && rev.lastsegmentflags.has(TcpFlags::KEEP_ALIVE) {
                a.flags.set(TcpFlags::KEEP_ALIVE_ACK);
                break 'checks;
            }
            // 8. Zero-window probe ACK.
            if same_ack_point && win == 0 && fwd.window == 0 && rev.lastsegmentflags.has(TcpFlags::ZERO_WINDOW_PROBE) {
                a.flags.set(TcpFlags::ZERO_WINDOW_PROBE_ACK);
                break 'checks;
            }
            // 9. Duplicate ACK.
            if same_ack_point && win != 0 && win == fwd.window {
                fwd.dupacknum = if fwd.dupacknum < 0 { 1 } else { fwd.dupacknum + 1 };
                a.flags.set(TcpFlags::DUPLICATE_ACK);
                a.dupack_num = fwd.dupacknum as u32;
            }
        }
        // 10. A new ACK number resets the duplicate-ACK count.
        if ack != fwd.lastack {
            fwd.lastnondupack = frame;
            fwd.dupacknum = 0;
        }
        // 11. ACKed unseen segment.
        if rev.maxseqtobeacked != 0 && gt(ack, rev.maxseqtobeacked) && flags & ACK != 0 {
            if lt(rev.maxseqtobeacked, rev.nextseq) {
                rev.maxseqtobeacked = rev.nextseq;
                a.flags.set(TcpFlags::ACK_LOST_SEGMENT);
            } else if rev.dupacknum == 0 {
                a.flags.set(TcpFlags::ACK_LOST_SEGMENT);
                rev.dupacknum = -1;
            }
        }
        // 12. Retransmission family.
        let syn_fin = flags & (SYN | FIN) != 0;
        if (seglen > 0 || syn_fin) && !a.flags.has(TcpFlags::KEEP_ALIVE) {
            let mut seq_not_advanced = fwd.nextseq != 0 && lt(seq, fwd.nextseq);
            if seglen > 1 && fwd.nextseq.wrapping_sub(1) == seq {
                seq_not_advanced = false;
            }
            'retrans: {
                if seglen > 0 && rev.lastack != 0 && le(seq.wrapping_add(seglen), rev.lastack) {
                    a.flags.set(TcpFlags::SPURIOUS_RETRANSMISSION | TcpFlags::RETRANSMISSION);
                    break 'retrans;
                }
                if !seq_not_advanced {
                    break 'retrans;
                }
                // Fast retransmission is tested before out-of-order (tcp.fastrt_supersedes_ooo).
                // `dupacknum` is a guint32 in 4.0: the -1 left by an ACK of an unseen segment
                // passes `>= 2`, so the reverse side's next resend at its ACK point is "fast".
                let dupacks = rev.dupacknum as u32;
                if dupacks >= 2 && rev.lastack == seq && within(now.since(rev.lastacktime), 20_000_000) {
                    a.flags.set(TcpFlags::FAST_RETRANSMISSION | TcpFlags::RETRANSMISSION);
                    break 'retrans;
                }
                let ooo_thres = match self.first_rtt_ns {
                    0 => 3_000_000,
                    rtt => rtt,
                };
                let end = seq.wrapping_add(seglen).wrapping_add(syn_fin as u32);
                if within(now.since(fwd.nextseqtime), ooo_thres) && fwd.nextseq != end {
                    a.flags.set(TcpFlags::OUT_OF_ORDER);
                    break 'retrans;
                }
                a.flags.set(TcpFlags::RETRANSMISSION);
            }
        }
        // 13. Bookkeeping.
        let zwp = a.flags.has(TcpFlags::ZERO_WINDOW_PROBE);
        let nextseq = seq.wrapping_add(seglen).wrapping_add(syn_fin as u32);
        if (gt(nextseq, fwd.nextseq) || fwd.nextseq == 0) && !zwp {
            fwd.nextseq = nextseq;
            fwd.nextseqtime = now;
        }
        if (seq == fwd.maxseqtobeacked || fwd.maxseqtobeacked == 0) && !zwp {
            fwd.maxseqtobeacked = fwd.nextseq;
        }
        fwd.window = win;
        fwd.window_from_syn = flags & SYN != 0;
        fwd.lastack = ack;
        fwd.lastacktime = now;
        fwd.lastsegmentflags = a.flags;
        // 14. Conversation timing: the most recent SYN, and the first RTT from the first ACK
        // after it (an ACK stamped like its SYN leaves it unknown).
        if flags & (SYN | ACK) == SYN {
            self.ts_mru_syn = now;
        } else if flags & (SYN | ACK) == ACK && self.ts_mru_syn != Ts(0) && self.first_rtt_ns == 0 {
            self.first_rtt_ns = now.since(self.ts_mru_syn);
        }
        a
    }
}

#[cfg(test)]
mod tests;

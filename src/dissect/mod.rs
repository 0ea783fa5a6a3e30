//! Application-layer dissectors that the filter fields need. Each is a pure parser over one
//! frame's payload producing a small fixed-size fact; nothing here keeps state or allocates.

pub mod dns;

use crate::decode::{Decoded, Transport};
use crate::flow::tcp::TcpAnalysis;
use crate::identity::{self, dhcp::Dhcp, text::TextLogins, IdentityFact};

/// What the dissectors found in one frame.
#[derive(Clone, Copy, Debug, Default)]
pub struct AppFacts {
    pub dns: Option<dns::DnsInfo>,
}

impl AppFacts {
    /// Dissects one frame on its own (no reassembly): for callers without a pipeline.
    pub fn dissect(d: &Decoded<'_>, tcp: &TcpAnalysis) -> AppFacts {
        Dissectors::default().dissect(d, tcp, None)
    }
}

/// Messages split across TCP segments waiting for the rest, per (flow slot, direction).
/// At most [`MAX_PENDING`] at once, each at most [`MAX_PENDING_BYTES`]: DNS over TCP is rare
/// and its messages small; a longer one (zone transfer) is given up, not buffered.
pub const MAX_PENDING: usize = 64;
pub const MAX_PENDING_BYTES: usize = 16 * 1024;

struct Pending {
    key: (u32, u8),
    next_seq: u32,
    buf: Vec<u8>,
}

/// The dissectors with their (bounded) cross-segment state.
#[derive(Default)]
pub struct Dissectors {
    pending: Vec<Pending>,
    logins: TextLogins,
    dhcp: Dhcp,
    /// Identity facts found in the current frame (or flushed at the end), taken by the caller.
    pub identities: Vec<IdentityFact>,
}

impl Dissectors {
    /// `flow` is the frame's (flow slot, direction, stream), when it belongs to a flow.
    pub fn dissect(&mut self, d: &Decoded<'_>, tcp: &TcpAnalysis, flow: Option<(u32, u8, u64)>) -> AppFacts {
        let mut f = AppFacts::default();
        match d.transport {
            Transport::Udp(u) => {
                if let Some(kind) = dns::Kind::for_ports(u.src_port, u.dst_port) {
                    f.dns = dns::parse(d.payload, kind);
                }
                if matches!(u.src_port, 67 | 68) && matches!(u.dst_port, 67 | 68) {
                    self.dhcp.message(d.payload, d.ts, d.frame, &mut self.identities);
                }
            }
            // Wireshark hands retransmitted data to no subdissector (tcp.no_subdissector_on_error).
            Transport::Tcp(t) if !tcp.is_retransmission() && !d.payload.is_empty() => {
                if let Some(kind) = dns::Kind::for_ports(t.src_port, t.dst_port) {
                    f.dns = self.dns_tcp(d.payload, t.seq, t.seg_len, kind, flow.map(|(s, dir, _)| (s, dir)));
                }
                if let (Some((slot, _, stream)), Some(from_client)) =
                    (flow, identity::text::classify(t.src_port, t.dst_port, d.payload))
                {
                    let ip = d.ip.map(|i| if from_client { i.src } else { i.dst });
                    let mac = if from_client { d.eth_src } else { d.eth_dst };
                    let seg = identity::text::Segment {
                        conv: (slot, stream),
                        payload: d.payload,
                        from_client,
                        client_mac: mac,
                        client_ip: ip,
                        ts: d.ts,
                        frame: d.frame,
                    };
                    self.logins.segment(&seg, t.src_port, t.dst_port, &mut self.identities);
                }
            }
            _ => {}
        }
        f
    }

    /// End of input: attempts without a verdict are reported (outcome unknown).
    pub fn flush_identities(&mut self) {
        self.logins.flush(&mut self.identities);
    }

    fn dns_tcp(
        &mut self,
        p: &[u8],
        seq: u32,
        seg_len: u32,
        kind: dns::Kind,
        flow: Option<(u32, u8)>,
    ) -> Option<dns::DnsInfo> {
        let Some(key) = flow else { return dns::parse_tcp_segment(p, kind) };
        let next = seq.wrapping_add(seg_len);
        if let Some(i) = self.pending.iter().position(|e| e.key == key) {
            let e = &mut self.pending[i];
            if e.next_seq == seq && e.buf.len() + p.len() <= MAX_PENDING_BYTES {
                e.buf.extend_from_slice(p);
                e.next_seq = next;
                if let Some(info) = dns::parse_tcp_segment(&e.buf, kind) {
                    self.pending.swap_remove(i);
                    return Some(info);
                }
                return None;
            }
            self.pending.swap_remove(i);
        }
        if let Some(info) = dns::parse_tcp_segment(p, kind) {
            return Some(info);
        }
        // The start of a message that continues in later segments.
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        if p.len() <= MAX_PENDING_BYTES {
            self.pending.push(Pending { key, next_seq: next, buf: p.to_vec() });
        }
        None
    }

    /// Forgets partial messages (end of a file: flow slots restart).
    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

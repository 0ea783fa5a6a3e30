//! The run summary that `analyze --json` prints (keys are a contract: ARCHITECTURE.md).
//!
//! Counting happens per packet into fixed-size fields; the JSON value is only built at the end.

use serde_json::{json, Map, Value};

use crate::capture::LinkType;
use crate::decode::{Decoded, Layer, StopReason};
use crate::flow::tcp::TcpAnalysis;
use crate::flow::{FlowTableStats, TcpCounts};
use crate::time::Ts;

const LAYERS: [Layer; 14] = [
    Layer::Link,
    Layer::Vlan,
    Layer::Ipv4,
    Layer::Ipv6,
    Layer::Tcp,
    Layer::Udp,
    Layer::Icmp,
    Layer::Gre,
    Layer::Vxlan,
    Layer::Pppoe,
    Layer::Mpls,
    Layer::IpInIp,
    Layer::Geneve,
    Layer::Gtp,
];
const REASONS: [StopReason; 5] = [
    StopReason::Truncated,
    StopReason::Malformed,
    StopReason::TooManyTags,
    StopReason::UnsupportedLink,
    StopReason::Unsupported,
];

fn layer_name(l: Layer) -> &'static str {
    match l {
        Layer::Link => "link",
        Layer::Vlan => "vlan",
        Layer::Ipv4 => "ipv4",
        Layer::Ipv6 => "ipv6",
        Layer::Tcp => "tcp",
        Layer::Udp => "udp",
        Layer::Icmp => "icmp",
        Layer::Gre => "gre",
        Layer::Vxlan => "vxlan",
        Layer::Pppoe => "pppoe",
        Layer::Mpls => "mpls",
        Layer::IpInIp => "ipip",
        Layer::Geneve => "geneve",
        Layer::Gtp => "gtp",
        Layer::Ppp => "ppp",
        Layer::Wlan => "wlan",
        Layer::Nsh => "nsh",
    }
}

fn reason_name(r: StopReason) -> &'static str {
    match r {
        StopReason::Truncated => "truncated",
        StopReason::Malformed => "malformed",
        StopReason::TooManyTags => "too_many_tags",
        StopReason::UnsupportedLink => "unsupported_link",
        StopReason::Unsupported => "unsupported",
    }
}

/// Identity events kept in a run summary.
pub const MAX_IDENTITY_EVENTS: usize = 10_000;
/// Application errors listed in the run summary (all are counted; the store keeps examples).
pub const MAX_APP_ERRORS: usize = 10_000;

/// Capture-level counters.
#[derive(Clone, Debug, Default)]
pub struct CaptureCounters {
    pub link_type: Option<LinkType>,
    pub truncated_frames: u64,
    pub decode_errors: u64,
    pub drops: u64,
    /// Frames stamped beyond the wall clock (see `time::FUTURE_TOLERANCE_SECS`).
    pub time_jumps: u64,
    /// Frames whose decoding stopped early, by (layer, reason).
    pub stops: [[u64; REASONS.len()]; LAYERS.len()],
}

/// Totals of a run (one or more files).
#[derive(Default)]
pub struct Summary {
    pub packets: u64,
    pub bytes: u64,
    pub first_ts: Option<Ts>,
    pub last_ts: Option<Ts>,
    pub tcp: TcpCounts,
    pub private_retransmissions: u64,
    pub capture: CaptureCounters,
    /// Flow-table counters, summed over finished files (the table restarts per file).
    pub flows: FlowTableStats,
    pub pair_overflow: u64,
    /// Frames of counter groups that did not fit the per-minute group tables.
    pub group_overflow: u64,
    /// Identity facts not kept because the binding or MAC tables were full.
    pub identity_overflow: u64,
    /// Bytes of users beyond the per-minute user table.
    pub user_volume_overflow_bytes: u64,
    /// Distinct identity bindings of the run.
    pub identities: crate::identity::Bindings,
    /// identity.new / identity.shared_mac events, in order (bounded by the bindings' bounds).
    pub identity_events: Vec<crate::identity::events::IdentityEvent>,
    /// Top users by bytes received, set at the end.
    pub user_volume: Vec<(String, crate::identity::volume::Volume)>,
    /// Counter totals of the run, set at the end.
    pub counters: Vec<(String, crate::rules::counters::CounterTotal)>,
    pub app_errors: Vec<Value>,
    /// One entry per alert episode (new, then updated when it clears).
    pub alerts: Vec<Value>,
    pub digests: Vec<Value>,
    pub alert_overflow: u64,
    /// Errors beyond [`MAX_APP_ERRORS`] or beyond the per-minute kinds bound.
    pub app_error_overflow: u64,
}

/// How reading one input file ended.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FileReport {
    pub file: String,
    pub packets: u64,
    /// Set when the file was damaged or unreadable: where and why reading stopped.
    pub error: Option<String>,
}

impl Summary {
    pub fn observe(
        &mut self,
        d: &Decoded<'_>,
        tcp: &TcpAnalysis,
        private_retrans: bool,
        truncated: bool,
        decode_error: bool,
    ) {
        self.packets += 1;
        self.bytes += d.frame_len as u64;
        if self.first_ts.is_none_or(|t| d.ts < t) {
            self.first_ts = Some(d.ts);
        }
        if self.last_ts.is_none_or(|t| d.ts > t) {
            self.last_ts = Some(d.ts);
        }
        if !tcp.flags.is_empty() {
            self.tcp.add_flags(tcp.flags);
        }
        if private_retrans {
            self.private_retransmissions += 1;
        }
        self.capture.link_type.get_or_insert(d.link);
        if truncated {
            self.capture.truncated_frames += 1;
        }
        if decode_error {
            self.capture.decode_errors += 1;
        }
        if let Some(s) = d.stop {
            let li = LAYERS.iter().position(|l| *l == s.layer).unwrap_or(0);
            let ri = REASONS.iter().position(|r| *r == s.reason).unwrap_or(0);
            self.capture.stops[li][ri] += 1;
        }
    }

    /// Folds the flow-table counters of a finished file into the run totals.
    pub fn add_alert(&mut self, n: &crate::rules::alerts::Notice) {
        use crate::rules::alerts::State;
        let since = n.since.rfc3339();
        match n.state {
            State::New if self.alerts.len() < MAX_APP_ERRORS => self.alerts.push(json!({
                "rule": n.rule,
                "ts": since,
                "severity": n.severity,
                "summary": n.summary,
                "key": n.key,
                "state": "active",
                "cleared_ts": null,
                "count": n.count,
                "value": n.value,
                "baseline": n.baseline,
                "threshold": n.threshold,
                "mail": n.mail,
                "suppressed": n.suppressed,
                "context": n.context,
                "evidence_frames": n.evidence.len(),
            })),
            State::New => self.alert_overflow += 1,
            State::Cleared => {
                if let Some(a) =
                    self.alerts.iter_mut().rev().find(|a| a["rule"] == n.rule && a["key"] == n.key && a["ts"] == since)
                {
                    a["state"] = json!("cleared");
                    a["cleared_ts"] = json!(n.ts.rfc3339());
                    a["count"] = json!(n.count);
                }
            }
        }
    }

    pub fn add_digest(&mut self, d: &crate::rules::alerts::Digest) {
        if self.digests.len() < MAX_APP_ERRORS {
            self.digests.push(json!(d));
        }
    }

    pub fn add_app_error(&mut self, file: &str, e: &crate::analyzers::errors::AppError) {
        if self.app_errors.len() >= MAX_APP_ERRORS {
            self.app_error_overflow += 1;
            return;
        }
        let ep =
            |p: Option<(std::net::IpAddr, u16)>| p.map(|(ip, port)| std::net::SocketAddr::new(ip, port).to_string());
        self.app_errors.push(json!({
            "file": file,
            "frame": e.frame,
            "ts": e.ts.rfc3339(),
            "family": e.family.name(),
            "code": e.code,
            "message": e.message,
            "detail": e.detail,
            "client": ep(e.client),
            "server": ep(e.server),
            "client_ip": e.client.map(|c| c.0.to_string()),
            "client_port": e.client.map(|c| c.1),
            "server_ip": e.server.map(|c| c.0.to_string()),
            "server_port": e.server.map(|c| c.1),
            "client_mac": e.client_mac.as_ref().map(crate::decode::mac_text),
            "tcp_stream": e.stream,
        }));
    }

    pub fn add_flow_stats(&mut self, s: &FlowTableStats) {
        let d = &mut self.flows;
        d.created += s.created;
        d.tcp_streams += s.tcp_streams;
        d.udp_streams += s.udp_streams;
        d.evicted += s.evicted;
        d.expired += s.expired;
        d.clock_jumps += s.clock_jumps;
    }

    /// The `analyze --json` object.
    pub fn to_json(&self, files: &[FileReport]) -> Value {
        let mut stops = Map::new();
        for (li, l) in LAYERS.iter().enumerate() {
            for (ri, r) in REASONS.iter().enumerate() {
                let n = self.capture.stops[li][ri];
                if n > 0 {
                    stops.insert(format!("{}.{}", layer_name(*l), reason_name(*r)), json!(n));
                }
            }
        }
        let fs = &self.flows;
        let t = &self.tcp;
        json!({
            "packets": self.packets,
            "bytes": self.bytes,
            "first_ts": self.first_ts.map(|t| t.rfc3339()),
            "last_ts": self.last_ts.map(|t| t.rfc3339()),
            "flows": fs.created,
            "tcp": {
                "retransmissions": t.retransmissions,
                "fast_retransmissions": t.fast_retransmissions,
                "spurious_retransmissions": t.spurious_retransmissions,
                "private_retransmissions": self.private_retransmissions,
                "duplicate_acks": t.duplicate_acks,
                "out_of_order": t.out_of_order,
                "lost_segments": t.lost_segments,
                "zero_windows": t.zero_windows,
                "streams": fs.tcp_streams,
            },
            "udp": { "streams": fs.udp_streams },
            "identities": self.identities.to_json(),
            "identity_events": self.identity_events,
            "user_volume": self.user_volume.iter().map(|(u, v)| json!({
                "user": u, "bytes_in": v.bytes_in, "bytes_out": v.bytes_out, "packets": v.packets
            })).collect::<Vec<_>>(),
            "app_errors": self.app_errors,
            "counters": self.counters.iter().map(|(id, t)| (id.clone(), json!(t))).collect::<Map<String, Value>>(),
            "alerts": self.alerts,
            "alert_digests": self.digests,
            "capture": {
                "link_type": self.capture.link_type.map(|l| l.name()),
                "truncated_frames": self.capture.truncated_frames,
                "decode_errors": self.capture.decode_errors,
                "drops": self.capture.drops,
                "time_jumps": self.capture.time_jumps,
                "stopped_layers": stops,
                "flow_evictions": fs.evicted,
                "flow_expirations": fs.expired,
                "clock_jumps": fs.clock_jumps,
                "host_pair_overflow": self.pair_overflow,
                "counter_group_overflow": self.group_overflow,
                "identity_overflow": self.identity_overflow,
                "user_volume_overflow_bytes": self.user_volume_overflow_bytes,
                "app_error_overflow": self.app_error_overflow,
                "alert_overflow": self.alert_overflow,
            },
            "files": files,
        })
    }
}

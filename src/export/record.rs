//! Store events → export events: one JSON object per line, EVE-like. Common fields first
//! (`timestamp`, `event_type`, `host`, `branch`, and where a flow is known `src_ip`, `src_port`,
//! `dest_ip`, `dest_port`, `proto`, `community_id`), then an object named after the event type.
//!
//! Runs on the export thread. `stats` and `exchange` events are made when a minute closes (a
//! later minute arrives, or the export stops), so each carries the whole minute.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use serde_json::{json, Map, Value};

use super::community_id::community_id;
use super::Settings;
use crate::bounded::LruMap;
use crate::decode::mac_text;
use crate::event::{ExchangeRow, MinuteStats, StoreEvent};
use crate::flow::{FlowRow, TcpCounts};
use crate::identity::IdentityFact;
use crate::rules::alerts::{Notice, State};
use crate::time::Ts;

/// One export event, ready for the writers.
#[derive(Clone, Debug)]
pub struct Line {
    pub event_type: &'static str,
    /// Syslog severity (RFC 5424: 2 critical … 6 informational).
    pub severity: u8,
    pub json: Vec<u8>,
}

/// The store's state, for the `stats` events.
#[derive(Clone, Debug, Default)]
pub struct StoreState {
    pub failing: Option<String>,
    pub held_events: u64,
    pub lost_events: u64,
    pub export_dropped: u64,
}

/// User names recently seen (for leaving them out of alert texts with `-user`).
const USERS_KEPT: usize = 4096;
/// Identities whose first sighting is remembered (for `first_seen`).
const IDENTITIES_KEPT: usize = 50_000;

type IdentityKey = (crate::identity::Source, Option<String>, Option<String>, Option<[u8; 6]>, Option<IpAddr>);

pub struct Builder {
    host: String,
    branch: String,
    events: Vec<&'static str>,
    drop: Vec<&'static str>,
    users: LruMap<String, ()>,
    first_seen: LruMap<IdentityKey, Ts>,
    /// The minute being summed for `stats` and `exchange`.
    minute: Option<i64>,
    stats: MinuteStats,
    exchanges: HashMap<(String, &'static str, String, String, String), ExchangeRow>,
    store: StoreState,
}

impl Builder {
    pub fn new(s: &Settings) -> Builder {
        Builder {
            host: s.host.clone(),
            branch: s.branch.clone(),
            events: s.events.clone(),
            drop: s.drop.clone(),
            users: LruMap::new(USERS_KEPT),
            first_seen: LruMap::new(IDENTITIES_KEPT),
            minute: None,
            stats: MinuteStats::default(),
            exchanges: HashMap::new(),
            store: StoreState::default(),
        }
    }

    pub fn set_store_state(&mut self, st: StoreState) {
        self.store = st;
    }

    fn wants(&self, t: &str) -> bool {
        self.events.contains(&t)
    }

    /// The export events of one store event (none, one, or a closed minute's).
    pub fn event(&mut self, ev: &StoreEvent, out: &mut Vec<Line>) {
        match ev {
            StoreEvent::Flow(f) if self.wants("flow") => out.push(self.flow(f)),
            StoreEvent::Identity(f) => {
                if let Some(u) = &f.user {
                    self.users.insert(u.clone(), ());
                }
                if self.wants("identity") {
                    out.push(self.identity(f));
                }
            }
            StoreEvent::AppError(e) if self.wants("app_error") => out.push(self.app_error(e)),
            StoreEvent::Alert(n) if self.wants("alert") => out.push(self.alert(n)),
            StoreEvent::Minute(m) => {
                self.at_minute(m.minute, out);
                add_stats(&mut self.stats, m);
            }
            StoreEvent::Exchanges(b) => {
                self.at_minute(b.minute, out);
                for r in &b.rows {
                    let key = (r.client.clone(), r.proto, r.server.clone(), r.name.clone(), r.outcome.clone());
                    match self.exchanges.get_mut(&key) {
                        Some(row) => row.add(r),
                        None => {
                            self.exchanges.insert(key, r.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A later minute closes the open one (an earlier one is summed into it: a late part).
    fn at_minute(&mut self, minute: i64, out: &mut Vec<Line>) {
        match self.minute {
            Some(open) if minute > open => self.close_minute(out),
            Some(_) => return,
            None => {}
        }
        self.minute = Some(minute);
    }

    /// The open minute's `exchange` and `stats` events.
    pub fn close_minute(&mut self, out: &mut Vec<Line>) {
        let Some(minute) = self.minute.take() else { return };
        let ts = Ts::from_secs_nanos(minute, 0);
        let mut rows: Vec<ExchangeRow> = self.exchanges.drain().map(|(_, r)| r).collect();
        rows.sort_by(|a, b| (&a.client, a.proto, &a.server, &a.name).cmp(&(&b.client, b.proto, &b.server, &b.name)));
        if self.wants("exchange") {
            for r in &rows {
                out.push(self.exchange(ts, r));
            }
        }
        let s = std::mem::take(&mut self.stats);
        if self.wants("stats") {
            out.push(self.stats_line(ts, &s));
        }
    }

    fn line(&self, event_type: &'static str, severity: u8, ts: Ts, mut fields: Map<String, Value>) -> Line {
        let mut obj = Map::new();
        obj.insert("timestamp".into(), Value::String(ts.rfc3339()));
        obj.insert("event_type".into(), Value::String(event_type.into()));
        obj.insert("host".into(), Value::String(self.host.clone()));
        obj.insert("branch".into(), Value::String(self.branch.clone()));
        obj.append(&mut fields);
        let mut v = Value::Object(obj);
        if !self.drop.is_empty() {
            drop_fields(&mut v, &self.drop);
        }
        Line { event_type, severity, json: serde_json::to_vec(&v).unwrap_or_default() }
    }

    fn flow(&self, f: &FlowRow) -> Line {
        let k = &f.key;
        // The client is the endpoint that sent the SYN; without one (UDP), the higher port.
        let client_is_b = match f.client {
            Some(c) => c == 1,
            None => k.b_port > k.a_port,
        };
        let (c, s) = if client_is_b { (1, 0) } else { (0, 1) };
        let ends = [(k.a, k.a_port), (k.b, k.b_port)];
        let mut m = endpoints(Some(ends[c]), Some(ends[s]), k.proto);
        if let Some(mac) = f.mac[c] {
            m.insert("src_mac".into(), Value::String(mac_text(&mac)));
        }
        if let Some(mac) = f.mac[s] {
            m.insert("dest_mac".into(), Value::String(mac_text(&mac)));
        }
        m.insert(
            "flow".into(),
            json!({
                "pkts_toserver": f.packets[c],
                "pkts_toclient": f.packets[s],
                "bytes_toserver": f.bytes[c],
                "bytes_toclient": f.bytes[s],
                "start": f.first_ts.rfc3339(),
                "end": f.last_ts.rfc3339(),
                "age": f.last_ts.since(f.first_ts).max(0) / 1_000_000_000,
                "reason": f.reason.as_str(),
                "stream": f.stream,
            }),
        );
        if k.proto == 6 {
            m.insert("tcp".into(), tcp_counts(&f.tcp_counts));
        }
        let trouble = f.tcp_counts.retransmissions + f.tcp_counts.lost_segments + f.tcp_counts.zero_windows > 0;
        self.line("flow", if trouble { 5 } else { 6 }, f.last_ts, m)
    }

    fn identity(&mut self, f: &IdentityFact) -> Line {
        let key: IdentityKey = (f.source, f.user.clone(), f.hostname.clone(), f.mac, f.ip);
        let first = match self.first_seen.get_mut(&key) {
            Some(t) => *t,
            None => {
                self.first_seen.insert(key, f.ts);
                f.ts
            }
        };
        let mut m = Map::new();
        if let Some(ip) = f.ip {
            m.insert("src_ip".into(), Value::String(ip.to_string()));
        }
        if let Some(mac) = &f.mac {
            m.insert("src_mac".into(), Value::String(mac_text(mac)));
        }
        let mut id = Map::new();
        for (k, v) in [("user", &f.user), ("realm", &f.realm), ("hostname", &f.hostname), ("error", &f.error)] {
            if let Some(v) = v {
                id.insert(k.into(), Value::String(v.clone()));
            }
        }
        // Named as the store and `analyze --json` name it (its serde form).
        id.insert("source".into(), serde_json::to_value(f.source).unwrap_or(Value::Null));
        id.insert("outcome".into(), serde_json::to_value(f.outcome).unwrap_or(Value::Null));
        id.insert("first_seen".into(), Value::String(first.min(f.ts).rfc3339()));
        id.insert("last_seen".into(), Value::String(f.ts.rfc3339()));
        id.insert("frame".into(), json!(f.frame));
        m.insert("identity".into(), Value::Object(id));
        let sev = if f.outcome == crate::identity::Outcome::Failure { 5 } else { 6 };
        self.line("identity", sev, f.ts, m)
    }

    fn app_error(&self, e: &crate::analyzers::errors::AppError) -> Line {
        let mut m = endpoints(e.client, e.server, 6);
        if let Some(mac) = &e.client_mac {
            m.insert("src_mac".into(), Value::String(mac_text(mac)));
        }
        m.insert(
            "app_error".into(),
            json!({
                "family": e.family.name(),
                "code": e.code,
                "message": e.message,
                "detail": e.detail,
                "frame": e.frame,
                "stream": e.stream,
            }),
        );
        self.line("app_error", 4, e.ts, m)
    }

    fn alert(&self, n: &Notice) -> Line {
        let mut m = Map::new();
        let c = &n.context;
        for (k, v) in [("src_ip", &c.ip), ("dest_ip", &c.peer), ("src_mac", &c.mac)] {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.clone()));
            }
        }
        let redact_users = self.drop.contains(&"user");
        let text = |s: &str| if redact_users { self.without_users(s) } else { s.to_string() };
        let state = match n.state {
            State::New => "raised",
            State::Cleared => "cleared",
        };
        m.insert(
            "alert".into(),
            json!({
                "rule": n.rule,
                "description": n.description,
                "severity": n.severity,
                "state": state,
                "summary": text(&n.summary),
                "key": text(&n.key),
                "since": n.since.rfc3339(),
                "count": n.count,
                "value": n.value,
                "baseline": n.baseline,
                "threshold": n.threshold,
                "window_secs": n.window_secs,
                "user": c.user,
                "frame": c.frame,
                "file": c.file,
                "mailed": n.mail,
            }),
        );
        let sev = match (n.state, n.severity.as_str()) {
            (State::Cleared, _) => 5,
            (_, "critical") => 2,
            (_, "warning") => 4,
            _ => 6,
        };
        self.line("alert", sev, n.ts, m)
    }

    fn exchange(&self, ts: Ts, r: &ExchangeRow) -> Line {
        let mut m = Map::new();
        if !r.client.is_empty() {
            m.insert("src_ip".into(), Value::String(r.client.clone()));
        }
        match r.server.parse::<SocketAddr>() {
            Ok(a) => {
                m.insert("dest_ip".into(), Value::String(a.ip().to_string()));
                m.insert("dest_port".into(), json!(a.port()));
            }
            Err(_) if !r.server.is_empty() => {
                m.insert("dest_ip".into(), Value::String(r.server.clone()));
            }
            Err(_) => {}
        }
        m.insert("app_proto".into(), Value::String(r.proto.to_ascii_lowercase()));
        let avg = |wsum: i64| if r.rtt_n > 0 { Some(wsum / r.rtt_n as i64) } else { None };
        // Login exchanges are named by their principal ("AS-REQ alice@BRANCH.LAN").
        let name = if self.drop.contains(&"user") { self.without_users(&r.name) } else { r.name.clone() };
        m.insert(
            "exchange".into(),
            json!({
                "name": name,
                "outcome": r.outcome,
                "good": r.good,
                "count": r.count,
                "bytes": r.bytes,
                "packets": r.packets,
                "retransmissions": r.retransmissions,
                "rtt_p50_us": avg(r.rtt_p50_wsum),
                "rtt_p90_us": avg(r.rtt_p90_wsum),
                "rtt_max_us": (r.rtt_n > 0).then_some(r.rtt_max_us),
            }),
        );
        self.line("exchange", if r.good { 6 } else { 5 }, ts, m)
    }

    fn stats_line(&self, ts: Ts, s: &MinuteStats) -> Line {
        let st = &self.store;
        let mut m = Map::new();
        m.insert(
            "stats".into(),
            json!({
                "packets": s.packets,
                "bytes": s.bytes,
                "tcp_packets": s.tcp_packets,
                "udp_packets": s.udp_packets,
                "other_packets": s.other_packets,
                "truncated": s.truncated,
                "decode_errors": s.decode_errors,
                "time_jumps": s.time_jumps,
                "drops": {
                    "capture": s.drops,
                    "interface": s.if_drops,
                    "ring": s.ring_drops,
                    "export": st.export_dropped,
                },
                "tcp": tcp_counts(&s.tcp),
                "private_retransmissions": s.private_retransmissions,
                "store": {
                    "failing": st.failing.is_some(),
                    "error": st.failing,
                    "held_events": st.held_events,
                    "lost_events": st.lost_events,
                },
            }),
        );
        let sev = if st.failing.is_some() || s.drops > 0 { 4 } else { 6 };
        self.line("stats", sev, ts, m)
    }

    /// `s` with every user name seen recently replaced by "(user)", where it stands as a word.
    fn without_users(&self, s: &str) -> String {
        let mut out = s.to_string();
        let mut names: Vec<&String> = self.users.iter_keys().collect();
        // Longer names first, so "ann" does not cut "anna" in two.
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        for name in names {
            out = replace_word(&out, name, "(user)");
        }
        out
    }
}

fn tcp_counts(t: &TcpCounts) -> Value {
    let mut m = Map::new();
    for (k, v) in TcpCounts::COLUMNS.iter().zip(t.values()) {
        m.insert((*k).into(), json!(v));
    }
    Value::Object(m)
}

fn add_stats(a: &mut MinuteStats, d: &MinuteStats) {
    a.minute = d.minute;
    a.packets += d.packets;
    a.bytes += d.bytes;
    a.tcp_packets += d.tcp_packets;
    a.udp_packets += d.udp_packets;
    a.other_packets += d.other_packets;
    a.truncated += d.truncated;
    a.decode_errors += d.decode_errors;
    a.drops += d.drops;
    a.if_drops += d.if_drops;
    a.ring_drops += d.ring_drops;
    a.private_retransmissions += d.private_retransmissions;
    a.time_jumps += d.time_jumps;
    a.pair_overflow += d.pair_overflow;
    a.tcp.add(&d.tcp);
}

/// `src_*`/`dest_*`, `proto` and `community_id` of a flow's two ends.
fn endpoints(src: Option<(IpAddr, u16)>, dst: Option<(IpAddr, u16)>, proto: u8) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some((ip, port)) = src {
        m.insert("src_ip".into(), Value::String(ip.to_string()));
        m.insert("src_port".into(), json!(port));
    }
    if let Some((ip, port)) = dst {
        m.insert("dest_ip".into(), Value::String(ip.to_string()));
        m.insert("dest_port".into(), json!(port));
    }
    let name = match proto {
        6 => "TCP".to_string(),
        17 => "UDP".to_string(),
        132 => "SCTP".to_string(),
        p => p.to_string(),
    };
    m.insert("proto".into(), Value::String(name));
    if let (Some((s, sp)), Some((d, dp))) = (src, dst) {
        if let Some(id) = community_id(s, sp, d, dp, proto) {
            m.insert("community_id".into(), Value::String(id));
        }
    }
    m
}

/// Removes the fields named in `drop` (and their `src_`/`dest_` forms; "user" also "users")
/// at every depth.
fn drop_fields(v: &mut Value, drop: &[&str]) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| {
                !drop.iter().any(|d| {
                    k == d
                        || k.strip_prefix("src_") == Some(d)
                        || k.strip_prefix("dest_") == Some(d)
                        || (*d == "user" && k == "users")
                })
            });
            for (_, v) in m.iter_mut() {
                drop_fields(v, drop);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| drop_fields(v, drop)),
        _ => {}
    }
}

/// Replaces `word` in `s` where neither side continues a name (letters, digits, `.`, `_`, `-`).
fn replace_word(s: &str, word: &str, with: &str) -> String {
    if word.is_empty() {
        return s.to_string();
    }
    let cont = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '$'));
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back().or_else(|| out.chars().next_back());
        let after = rest[i + word.len()..].chars().next();
        out.push_str(&rest[..i]);
        if cont(before) || cont(after) {
            out.push_str(word);
        } else {
            out.push_str(with);
        }
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_replaced_only_whole() {
        assert_eq!(
            replace_word("alice and alice2 and xalice, alice", "alice", "(user)"),
            "(user) and alice2 and xalice, (user)"
        );
        assert_eq!(replace_word("MAC used by bob, anna", "ann", "(user)"), "MAC used by bob, anna");
    }

    #[test]
    fn dropped_fields_go_at_every_depth() {
        let mut v = json!({"src_mac": "a", "identity": {"user": "u", "realm": "R"}, "alert": {"users": ["u"]}});
        drop_fields(&mut v, &["user", "mac"]);
        assert_eq!(v, json!({"identity": {"realm": "R"}, "alert": {}}));
    }
}

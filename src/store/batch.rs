//! One batch of the writer thread in one SQLite transaction: each kind of event has its own
//! statement and its own function, the statements are prepared once per connection (rusqlite's
//! cache), and their SQL is built once per process.
//!
//! Counters and per-minute rows are upserts that add up (`c = c + excluded.c`): the pipeline
//! hands over what changed since the last batch, so a crash loses at most the batch in flight.

use std::net::IpAddr;
use std::sync::LazyLock;

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Transaction};

use super::{ring, wall_us};
use crate::analyzers::errors::AppError;
use crate::decode::mac_text;
use crate::event::{AppErrorCount, CounterDelta, ExchangeBatch, MinuteStats, PairStats, StoreEvent};
use crate::flow::{FlowRow, TcpCounts};
use crate::identity::events::IdentityEvent;
use crate::identity::volume::Volume;
use crate::identity::IdentityFact;
use crate::rules::alerts::{Digest, Notice, State};

/// `INSERT … ON CONFLICT(keys) DO UPDATE SET c = c + excluded.c` for every non-key column: the
/// store adds counters up instead of overwriting them (see the module docs).
fn upsert_sql(table: &str, keys: &[&str], counters: &[&str]) -> String {
    let cols: Vec<&str> = keys.iter().chain(counters).copied().collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let sets: Vec<String> = counters.iter().map(|c| format!("{c} = {c} + excluded.{c}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT({}) DO UPDATE SET {}",
        cols.join(", "),
        marks.join(", "),
        keys.join(", "),
        sets.join(", ")
    )
}

fn with_tcp(cols: &[&'static str]) -> Vec<&'static str> {
    cols.iter().copied().chain(TcpCounts::COLUMNS).collect()
}

static MINUTE_SQL: LazyLock<String> = LazyLock::new(|| {
    upsert_sql(
        "traffic_minute",
        &["minute"],
        &with_tcp(&[
            "packets",
            "bytes",
            "tcp_packets",
            "udp_packets",
            "other_packets",
            "truncated",
            "decode_errors",
            "drops",
            "private_retransmissions",
            "time_jumps",
            "if_drops",
            "ring_drops",
        ]),
    )
});
static PAIR_SQL: LazyLock<String> =
    LazyLock::new(|| upsert_sql("tcp_pair_minute", &["minute", "src", "dst"], &with_tcp(&["packets", "bytes"])));
/// The same deltas into the hour (events of the open minute are deltas: they add up).
static PAIR_HOUR_SQL: LazyLock<String> =
    LazyLock::new(|| upsert_sql("tcp_pair_hour", &["hour", "src", "dst"], &with_tcp(&["packets", "bytes"])));
static FLOW_SQL: LazyLock<String> = LazyLock::new(|| {
    let cols = with_tcp(&[
        "proto",
        "stream",
        "a_ip",
        "a_port",
        "b_ip",
        "b_port",
        "a_mac",
        "b_mac",
        "first_us",
        "last_us",
        "packets_ab",
        "packets_ba",
        "bytes_ab",
        "bytes_ba",
        "end_reason",
        "client",
    ]);
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    format!("INSERT INTO flows ({}) VALUES ({})", cols.join(", "), marks.join(", "))
});
static COUNTER_SQL: LazyLock<String> =
    LazyLock::new(|| upsert_sql("counter_minute", &["counter", "minute", "key"], &["value"]));
/// The same deltas into the hour: a 7-day counter page reads hours, not minutes.
static COUNTER_HOUR_SQL: LazyLock<String> =
    LazyLock::new(|| upsert_sql("counter_hour", &["counter", "hour", "key"], &["value"]));
const COUNTER_HOUR_GONE_SQL: &str =
    "DELETE FROM counter_hour WHERE counter = ?1 AND hour = ?2 AND key = ?3 AND value <= 0";
/// Exchanges add up like counters (see [`crate::event::ExchangeRow::add`]), except the longest
/// round trip, which keeps the larger.
fn exchange_sql(table: &str, time: &str) -> String {
    let keys = [time, "proto", "server", "name", "outcome", "client"];
    let sums = ["count", "bytes", "packets", "retransmissions", "rtt_n", "rtt_p50_wsum", "rtt_p90_wsum"];
    let cols: Vec<&str> = keys.iter().chain(&sums).chain(&["rtt_max_us", "good"]).copied().collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let sets: Vec<String> = sums.iter().map(|c| format!("{c} = {c} + excluded.{c}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT({}) DO UPDATE SET {}, rtt_max_us = max(rtt_max_us, excluded.rtt_max_us)",
        cols.join(", "),
        marks.join(", "),
        keys.join(", "),
        sets.join(", ")
    )
}
static EXCHANGE_MINUTE_SQL: LazyLock<String> = LazyLock::new(|| exchange_sql("exchange_minute", "minute"));
static EXCHANGE_HOUR_SQL: LazyLock<String> = LazyLock::new(|| exchange_sql("exchange_hour", "hour"));
static VOLUME_SQL: LazyLock<String> =
    LazyLock::new(|| upsert_sql("user_volume_minute", &["minute", "user"], &["bytes_in", "bytes_out", "packets"]));

const COUNTER_GONE_SQL: &str =
    "DELETE FROM counter_minute WHERE counter = ?1 AND minute = ?2 AND key = ?3 AND value <= 0";
const IDENTITY_EVENT_SQL: &str =
    "INSERT INTO identity_events (ts, kind, mac, ip, users, hostname, frame) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const IDENTITY_SQL: &str =
    "INSERT INTO identities (mac, ip, user, realm, hostname, source, outcome, error, first_us, last_us, count)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1)
     ON CONFLICT (mac, ip, user, realm, hostname, source, outcome, error) DO UPDATE SET
        count = count + 1, first_us = min(first_us, excluded.first_us),
        last_us = max(last_us, excluded.last_us)";
const APP_ERROR_SQL: &str =
    "INSERT INTO app_errors (ts_us, frame, family, code, message, detail, client_ip, client_port,
        server_ip, server_port, client_mac, stream) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
const ERROR_MINUTE_SQL: &str =
    "INSERT INTO app_error_minute (minute, family, code, server, count) VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (minute, family, code, server) DO UPDATE SET count = count + excluded.count";
const ALERT_NEW_SQL: &str =
    "INSERT INTO alerts (rule, key, severity, since_us, state, summary, count, value, baseline, threshold,
        mail, suppressed, context) VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
     ON CONFLICT (rule, key, since_us) DO UPDATE SET count = excluded.count";
const ALERT_ID_SQL: &str = "SELECT id FROM alerts WHERE rule = ?1 AND key = ?2 AND since_us = ?3";
const ALERT_CLEAR_SQL: &str =
    "UPDATE alerts SET state = 'cleared', cleared_us = ?4, count = ?5 WHERE rule = ?1 AND key = ?2 AND since_us = ?3";
const OUTBOX_SQL: &str =
    "INSERT INTO outbox (created_us, kind, alert_id, payload, evidence, next_try_us) VALUES (?1, ?2, ?3, ?4, ?5, ?1)";

fn ip_text(ip: Option<IpAddr>) -> String {
    ip.map(crate::decode::ip_text).unwrap_or_else(|| "other".into())
}

fn tcp_values(t: &TcpCounts) -> impl Iterator<Item = Value> {
    t.values().into_iter().map(|v| Value::Integer(v as i64))
}

/// Writes one batch in one transaction. `with_outbox`: alerts and digests to mail are queued;
/// `evidence_window`: (before, after) µs of the evidence window each alert about the traffic
/// gets (with the pcap ring on).
pub(super) fn write(
    conn: &mut rusqlite::Connection,
    batch: &[StoreEvent],
    with_outbox: bool,
    evidence_window: Option<(i64, i64)>,
) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    let w = Batch { tx: &tx, with_outbox, evidence_window };
    for ev in batch {
        w.event(ev)?;
    }
    tx.commit()?;
    Ok(())
}

struct Batch<'t> {
    tx: &'t Transaction<'t>,
    with_outbox: bool,
    evidence_window: Option<(i64, i64)>,
}

impl Batch<'_> {
    fn event(&self, ev: &StoreEvent) -> anyhow::Result<()> {
        match ev {
            StoreEvent::Alert(n) => self.alert(n),
            StoreEvent::Digest(d) => self.digest(d),
            StoreEvent::AppError(e) => self.app_error(e),
            StoreEvent::AppErrorMinute(c) => self.app_error_minute(c),
            StoreEvent::IdentityEvent(e) => self.identity_event(e),
            StoreEvent::UserVolume { minute, user, volume } => self.user_volume(*minute, user, volume),
            StoreEvent::Identity(f) => self.identity(f),
            StoreEvent::Counter(c) => self.counter(c),
            StoreEvent::Minute(m) => self.minute(m),
            StoreEvent::Pair(p) => self.pair(p),
            StoreEvent::Flow(f) => self.flow(f),
            StoreEvent::Exchanges(x) => self.exchanges(x),
        }
    }

    /// Exchanges of a minute, into the minute and its hour.
    fn exchanges(&self, x: &ExchangeBatch) -> anyhow::Result<()> {
        let hour = x.minute - x.minute.rem_euclid(3600);
        let mut by_minute = self.tx.prepare_cached(&EXCHANGE_MINUTE_SQL)?;
        let mut by_hour = self.tx.prepare_cached(&EXCHANGE_HOUR_SQL)?;
        for r in &x.rows {
            let counts = [r.count, r.bytes, r.packets, r.retransmissions, r.rtt_n].map(|v| v as i64);
            for (stmt, t) in [(&mut by_minute, x.minute), (&mut by_hour, hour)] {
                stmt.execute(params![
                    t,
                    r.proto,
                    r.server,
                    r.name,
                    r.outcome,
                    r.client,
                    counts[0],
                    counts[1],
                    counts[2],
                    counts[3],
                    counts[4],
                    r.rtt_p50_wsum,
                    r.rtt_p90_wsum,
                    r.rtt_max_us,
                    r.good,
                ])?;
            }
        }
        Ok(())
    }

    /// A new episode (with its evidence window and, to mail, its outbox row) or a cleared one.
    fn alert(&self, n: &Notice) -> anyhow::Result<()> {
        if n.state == State::Cleared {
            self.tx.prepare_cached(ALERT_CLEAR_SQL)?.execute(params![
                n.rule,
                n.key,
                n.since.0 / 1000,
                n.ts.0 / 1000,
                n.count as i64
            ])?;
            return Ok(());
        }
        self.tx.prepare_cached(ALERT_NEW_SQL)?.execute(params![
            n.rule,
            n.key,
            n.severity,
            n.since.0 / 1000,
            n.summary,
            n.count as i64,
            n.value.map(|v| v as i64),
            n.baseline,
            n.threshold,
            n.mail,
            n.suppressed,
            serde_json::to_string(&n.context)?,
        ])?;
        // The episode's row (an upsert does not always set last_insert_rowid).
        let id: i64 =
            self.tx.prepare_cached(ALERT_ID_SQL)?.query_row(params![n.rule, n.key, n.since.0 / 1000], |r| r.get(0))?;
        if let (Some((before, after)), true) = (self.evidence_window, n.traffic) {
            ring::add_window(self.tx, id, n.ts.0 / 1000, before, after)?;
        }
        if n.mail && self.with_outbox {
            let pcap = (!n.evidence.is_empty()).then(|| super::pcapng::pcapng(&n.evidence));
            self.tx.prepare_cached(OUTBOX_SQL)?.execute(params![
                wall_us(),
                "alert",
                id,
                serde_json::to_string(n)?,
                pcap
            ])?;
        }
        Ok(())
    }

    /// A digest of what kept happening: queued when it has lines to mail.
    fn digest(&self, d: &Digest) -> anyhow::Result<()> {
        let mut d = d.clone();
        d.lines.retain(|l| l.mail);
        if !d.lines.is_empty() && self.with_outbox {
            self.tx.prepare_cached(OUTBOX_SQL)?.execute(params![
                wall_us(),
                "digest",
                None::<i64>,
                serde_json::to_string(&d)?,
                None::<Vec<u8>>
            ])?;
        }
        Ok(())
    }

    fn app_error(&self, e: &AppError) -> anyhow::Result<()> {
        self.tx.prepare_cached(APP_ERROR_SQL)?.execute(params![
            e.ts.0 / 1000,
            e.frame as i64,
            e.family.name(),
            e.code,
            e.message,
            e.detail,
            e.client.map(|c| c.0.to_string()),
            e.client.map(|c| c.1),
            e.server.map(|c| c.0.to_string()),
            e.server.map(|c| c.1),
            e.client_mac.as_ref().map(mac_text),
            e.stream.map(|s| s as i64),
        ])?;
        Ok(())
    }

    fn app_error_minute(&self, c: &AppErrorCount) -> anyhow::Result<()> {
        self.tx.prepare_cached(ERROR_MINUTE_SQL)?.execute(params![
            c.minute,
            c.family.name(),
            c.code,
            c.server.map(|s| s.to_string()).unwrap_or_default(),
            c.count as i64
        ])?;
        Ok(())
    }

    fn identity_event(&self, e: &IdentityEvent) -> anyhow::Result<()> {
        self.tx.prepare_cached(IDENTITY_EVENT_SQL)?.execute(params![
            e.ts,
            e.kind,
            e.mac,
            e.ip,
            serde_json::to_string(&e.users)?,
            e.hostname,
            e.frame as i64
        ])?;
        Ok(())
    }

    fn user_volume(&self, minute: i64, user: &str, v: &Volume) -> anyhow::Result<()> {
        self.tx.prepare_cached(&VOLUME_SQL)?.execute(params![
            minute,
            user,
            v.bytes_in as i64,
            v.bytes_out as i64,
            v.packets as i64
        ])?;
        Ok(())
    }

    fn identity(&self, f: &IdentityFact) -> anyhow::Result<()> {
        let t = |s: &Option<String>| s.clone().unwrap_or_default();
        let text = |v: serde_json::Result<serde_json::Value>| v.ok().and_then(|v| v.as_str().map(String::from));
        self.tx.prepare_cached(IDENTITY_SQL)?.execute(params![
            f.mac.as_ref().map(mac_text).unwrap_or_default(),
            f.ip.map(|i| i.to_string()).unwrap_or_default(),
            t(&f.user),
            t(&f.realm),
            t(&f.hostname),
            text(serde_json::to_value(f.source)).unwrap_or_default(),
            text(serde_json::to_value(f.outcome)).unwrap_or_default(),
            t(&f.error),
            f.ts.0 / 1000,
            f.ts.0 / 1000,
        ])?;
        Ok(())
    }

    fn counter(&self, c: &CounterDelta) -> anyhow::Result<()> {
        self.tx.prepare_cached(&COUNTER_SQL)?.execute(params![c.counter, c.minute, c.key, c.delta])?;
        let hour = c.minute - c.minute.rem_euclid(3600);
        self.tx.prepare_cached(&COUNTER_HOUR_SQL)?.execute(params![c.counter, hour, c.key, c.delta])?;
        if c.delta < 0 {
            // A group pushed out of a minute's top gave its value to "other".
            self.tx.prepare_cached(COUNTER_GONE_SQL)?.execute(params![c.counter, c.minute, c.key])?;
            self.tx.prepare_cached(COUNTER_HOUR_GONE_SQL)?.execute(params![c.counter, hour, c.key])?;
        }
        Ok(())
    }

    fn minute(&self, m: &MinuteStats) -> anyhow::Result<()> {
        let head: [Value; 13] = [
            m.minute.into(),
            (m.packets as i64).into(),
            (m.bytes as i64).into(),
            (m.tcp_packets as i64).into(),
            (m.udp_packets as i64).into(),
            (m.other_packets as i64).into(),
            (m.truncated as i64).into(),
            (m.decode_errors as i64).into(),
            (m.drops as i64).into(),
            (m.private_retransmissions as i64).into(),
            (m.time_jumps as i64).into(),
            (m.if_drops as i64).into(),
            (m.ring_drops as i64).into(),
        ];
        self.tx.prepare_cached(&MINUTE_SQL)?.execute(params_from_iter(head.into_iter().chain(tcp_values(&m.tcp))))?;
        Ok(())
    }

    /// A host pair's minute, and the same counts added to its hour.
    fn pair(&self, p: &PairStats) -> anyhow::Result<()> {
        let head: [Value; 5] = [
            p.minute.into(),
            ip_text(p.src).into(),
            ip_text(p.dst).into(),
            (p.packets as i64).into(),
            (p.bytes as i64).into(),
        ];
        self.tx.prepare_cached(&PAIR_SQL)?.execute(params_from_iter(head.iter().cloned().chain(tcp_values(&p.tcp))))?;
        let mut hour_head = head;
        hour_head[0] = p.minute.div_euclid(3600).saturating_mul(3600).into();
        self.tx
            .prepare_cached(&PAIR_HOUR_SQL)?
            .execute(params_from_iter(hour_head.into_iter().chain(tcp_values(&p.tcp))))?;
        Ok(())
    }

    fn flow(&self, f: &FlowRow) -> anyhow::Result<()> {
        let client = f.client.map(|d| if d == 0 { "a" } else { "b" });
        let head: [Value; 16] = [
            (f.key.proto as i64).into(),
            (f.stream as i64).into(),
            crate::decode::ip_text(f.key.a).into(),
            (f.key.a_port as i64).into(),
            crate::decode::ip_text(f.key.b).into(),
            (f.key.b_port as i64).into(),
            f.mac[0].as_ref().map(mac_text).into(),
            f.mac[1].as_ref().map(mac_text).into(),
            (f.first_ts.0 / 1000).into(),
            (f.last_ts.0 / 1000).into(),
            (f.packets[0] as i64).into(),
            (f.packets[1] as i64).into(),
            (f.bytes[0] as i64).into(),
            (f.bytes[1] as i64).into(),
            f.reason.as_str().to_owned().into(),
            client.map(str::to_owned).into(),
        ];
        self.tx
            .prepare_cached(&FLOW_SQL)?
            .execute(params_from_iter(head.into_iter().chain(tcp_values(&f.tcp_counts))))?;
        Ok(())
    }
}

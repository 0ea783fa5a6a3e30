//! `disk.low` episodes written by whoever watches the disk (the pcap ring every 10 s, the disk
//! job otherwise): raised for every alert rule that follows the event, honouring suppression,
//! with their mails queued in the outbox; cleared when the shortage ends.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

use super::wall_us;
use crate::rules::alerts::{Notice, State};
use crate::rules::{AlertSource, RuleSet};

/// The alert rules that follow `disk.low` (none while the rule files do not load).
fn disk_rules(rules_dir: &Path) -> Vec<crate::rules::AlertRule> {
    let Ok(rules) = RuleSet::load_dir(rules_dir) else { return Vec::new() };
    rules.alerts.into_iter().filter(|a| matches!(&a.source, AlertSource::Event(e) if e == "disk.low")).collect()
}

/// Records a `disk.low` alert for every rule that follows it, honouring its suppression.
pub fn raise_disk_low(conn: &Connection, rules_dir: &Path, dir: &Path, msg: &str) -> anyhow::Result<()> {
    raise_disk_low_at(conn, rules_dir, dir, msg, wall_us())
}

/// [`raise_disk_low`] for a shortage that began at `since` (wall-clock µs). An episode that is
/// still active is not raised again.
pub fn raise_disk_low_at(conn: &Connection, rules_dir: &Path, dir: &Path, msg: &str, since: i64) -> anyhow::Result<()> {
    let key = dir.display().to_string();
    for r in &disk_rules(rules_dir) {
        let active: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM alerts WHERE rule = ?1 AND key = ?2 AND state = 'active')",
            params![r.id, key],
            |x| x.get(0),
        )?;
        let last: Option<i64> = conn
            .query_row("SELECT max(since_us) FROM alerts WHERE rule = ?1 AND key = ?2", params![r.id, key], |x| {
                x.get(0)
            })
            .optional()?
            .flatten();
        if active || last.is_some_and(|t| since - t < r.suppress_secs as i64 * 1_000_000) {
            continue;
        }
        let summary = format!("storage almost full at {key}: {msg}");
        conn.execute(
            "INSERT INTO alerts (rule, key, severity, since_us, state, summary, count, mail, suppressed, context)
             VALUES (?1, ?2, ?3, ?4, 'active', ?5, 1, ?6, 0, '{}')",
            params![r.id, key, r.severity, since, summary, r.mail],
        )?;
        notice(r, &key, State::New, since, since, summary.clone());
        if r.mail {
            let id = conn.last_insert_rowid();
            let ts = crate::time::Ts(since * 1000).rfc3339();
            let payload = json!({
                "rule": r.id, "description": r.description, "key": key, "severity": r.severity, "state": "new",
                "ts": ts, "since": ts, "summary": summary, "count": 1, "window_secs": r.window_secs,
                "context": {},
            });
            conn.execute(
                "INSERT INTO outbox (created_us, kind, alert_id, payload, next_try_us) VALUES (?1, 'alert', ?2, ?3, ?1)",
                params![wall_us(), id, payload.to_string()],
            )?;
        }
    }
    Ok(())
}

/// Ends the active `disk.low` episodes of `dir` (the next shortage is a new one). Returns how
/// many ended.
pub fn clear_disk_low(conn: &Connection, rules_dir: &Path, dir: &Path, now: i64) -> anyhow::Result<usize> {
    let mut n = 0;
    let key = dir.display().to_string();
    for r in disk_rules(rules_dir) {
        let since: Option<i64> = conn
            .query_row(
                "SELECT min(since_us) FROM alerts WHERE state = 'active' AND rule = ?1 AND key = ?2",
                params![r.id, key],
                |x| x.get(0),
            )
            .optional()?
            .flatten();
        let cleared = conn.execute(
            "UPDATE alerts SET state = 'cleared', cleared_us = ?1 WHERE state = 'active' AND rule = ?2 AND key = ?3",
            params![now, r.id, key],
        )?;
        if let (true, Some(since)) = (cleared > 0, since) {
            notice(&r, &key, State::Cleared, since, now, format!("cleared: storage at {key} has room again"));
        }
        n += cleared;
    }
    Ok(n)
}

/// The episode's start or end for the fleet export (the pipeline's alerts reach it with the
/// store's batches; these are written here directly).
fn notice(r: &crate::rules::AlertRule, key: &str, state: State, since_us: i64, at_us: i64, summary: String) {
    crate::event::outside_event(crate::event::StoreEvent::Alert(Box::new(Notice {
        rule: r.id.clone(),
        description: r.description.clone(),
        key: key.to_string(),
        severity: r.severity.clone(),
        state,
        ts: crate::time::Ts(at_us.saturating_mul(1000)),
        since: crate::time::Ts(since_us.saturating_mul(1000)),
        summary,
        count: 1,
        value: None,
        baseline: None,
        threshold: None,
        window_secs: r.window_secs,
        mail: r.mail,
        suppressed: false,
        context: Default::default(),
        evidence: Vec::new(),
        traffic: false,
    })));
}

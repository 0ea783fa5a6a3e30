//! Scheduled jobs of the daemon (`[jobs]`, 5-field crontab expressions, UTC): retention, the
//! daily digest mail, the disk watchdog and SQLite maintenance.
//!
//! Jobs run on their own thread with their own SQLite connection; their writes are small
//! (deletes, one outbox row) and the writer thread's batches wait for them through SQLite's
//! busy timeout. Retention is measured from the newest stored minute, not from the wall clock,
//! so a replayed capture from last year is kept like live data (time is packet time).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use croner::Cron;
use rusqlite::{params, Connection};
use serde_json::json;

use crate::config::{Config, JobsConfig};
use crate::store::wall_us;
use crate::units::parse_size;

pub use crate::units::parse_cron;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    Retention,
    Digest,
    Disk,
    Optimize,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::Retention => "retention",
            Job::Digest => "digest",
            Job::Disk => "disk",
            Job::Optimize => "optimize",
        }
    }
}

/// The schedule, checked at start so a typo stops the daemon with a clear message.
pub fn schedule(cfg: &JobsConfig) -> anyhow::Result<Vec<(Job, Cron)>> {
    [
        (Job::Retention, &cfg.retention),
        (Job::Digest, &cfg.digest),
        (Job::Disk, &cfg.disk),
        (Job::Optimize, &cfg.optimize),
    ]
    .into_iter()
    .filter(|(_, e)| !e.trim().is_empty())
    .map(|(j, e)| parse_cron(e).map(|c| (j, c)).with_context(|| format!("[jobs] {}", j.name())))
    .collect()
}

/// Unsent mails kept at most (the newest win).
pub const MAX_PENDING_MAIL: i64 = 1000;

pub struct Jobs {
    cfg: Config,
    db: PathBuf,
    rules_dir: PathBuf,
}

impl Jobs {
    pub fn new(cfg: &Config, db: &Path, rules_dir: &Path) -> Jobs {
        Jobs { cfg: cfg.clone(), db: db.to_path_buf(), rules_dir: rules_dir.to_path_buf() }
    }

    fn open(&self) -> anyhow::Result<Connection> {
        let c = crate::store::open_existing(&self.db).with_context(|| format!("opening {}", self.db.display()))?;
        c.busy_timeout(Duration::from_secs(30))?;
        Ok(c)
    }

    pub fn run(&self, job: Job) -> anyhow::Result<String> {
        let conn = self.open()?;
        match job {
            Job::Retention => {
                let days = retention(&conn, self.cfg.store.retention_days)?;
                let budget = parse_size(&self.cfg.store.disk_budget).unwrap_or(u64::MAX);
                let trimmed = trim_to_budget(&conn, db_share(budget))?;
                Ok(format!("{days}; {trimmed}"))
            }
            Job::Digest => daily_digest(&conn, crate::mail::enabled(&self.cfg.mail)),
            Job::Disk => self.disk(&conn),
            Job::Optimize => {
                conn.execute_batch("PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE);")?;
                Ok("optimized".into())
            }
        }
    }

    /// Disk watchdog: free space on the store's file system below 5 %, or the store directory
    /// above 90 % of `disk_budget`, raises `disk.low` (when a rule follows it).
    fn disk(&self, conn: &Connection) -> anyhow::Result<String> {
        let dir = &self.cfg.store.dir;
        let probe = if dir.exists() { dir.clone() } else { self.db.parent().unwrap_or(Path::new(".")).to_path_buf() };
        let avail = fs4::available_space(&probe)?;
        let total = fs4::total_space(&probe)?.max(1);
        let used = dir_size(&probe);
        // The pcap ring fills its share of the budget by design and gives it back on demand:
        // what counts is the rest, and the free space with what the ring would return.
        let ring = dir_size(&probe.join("ring"));
        let budget = parse_size(&self.cfg.store.disk_budget).unwrap_or(u64::MAX);
        let low = crate::store::ring::disk_low(avail + ring, total, used - ring.min(used), budget);
        let msg = format!(
            "{} free of {}; store uses {} of a {} budget ({} of it pcap ring)",
            mib(avail),
            mib(total),
            mib(used),
            mib(budget),
            mib(ring)
        );
        if low {
            crate::store::disk_alerts::raise_disk_low(conn, &self.rules_dir, &probe, &msg)?;
        } else {
            // Space is back: the episodes of the disk.low rules end (the next shortage is new).
            if crate::store::disk_alerts::clear_disk_low(conn, &self.rules_dir, &probe, wall_us())? > 0 {
                tracing::info!("disk.low cleared: {msg}");
            }
        }
        Ok(msg)
    }

    /// Runs the jobs when due until `stop` is set.
    pub fn spawn(self, plan: Vec<(Job, Cron)>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
        std::thread::Builder::new()
            .name("jobs".into())
            .spawn(move || {
                let next = |c: &Cron, after: DateTime<Utc>| c.find_next_occurrence(&after, false).ok();
                let mut due: Vec<(Job, Cron, Option<DateTime<Utc>>)> =
                    plan.into_iter().map(|(j, c)| (j, c.clone(), next(&c, Utc::now()))).collect();
                while !stop.load(Ordering::Relaxed) {
                    let now = Utc::now();
                    for (job, cron, at) in due.iter_mut() {
                        if at.is_some_and(|t| t <= now) {
                            match self.run(*job) {
                                Ok(m) => tracing::info!("job {}: {m}", job.name()),
                                Err(e) => tracing::error!("job {}: {e:#}", job.name()),
                            }
                            *at = next(cron, now);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
            .expect("spawning the jobs thread")
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1_048_576.0)
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Deletes what is older than `days` before the newest stored minute — never what is younger
/// than `days` of wall time, and never measured from a minute beyond the wall clock (a frame
/// stamped 2099 must not make retention delete every real row).
pub fn retention(conn: &Connection, days: u64) -> anyhow::Result<String> {
    retention_at(conn, days, crate::time::wall_now().secs())
}

/// [`retention`] with the wall clock given: nothing is deleted while the clock is not set (a Pi
/// that booted in 1970 would measure thirty days back from the wrong year).
pub fn retention_at(conn: &Connection, days: u64, wall: i64) -> anyhow::Result<String> {
    if wall < crate::time::CLOCK_FLOOR_SECS {
        return Ok("the clock is not set yet: retention waits".into());
    }
    let newest = crate::store::read::newest_minute(conn, wall)?;
    let Some(newest) = newest else { return Ok("nothing stored yet".into()) };
    let cut = newest.min(wall).saturating_sub((days as i64).saturating_mul(86_400));
    let cut_text = crate::time::Ts(cut * 1_000_000_000).rfc3339();
    let mut deleted = delete_before(conn, cut, Some(days))?;
    // Sent and failed mail is kept a while for the dashboard. Unsent mail waits a week for the
    // mail server (then it is marked failed and its evidence dropped), and at most
    // MAX_PENDING_MAIL rows wait at once: the outbox has a bound even when mail never works.
    let now = wall_us();
    deleted += conn.execute(
        "DELETE FROM outbox WHERE state IN ('sent', 'failed') AND coalesce(sent_us, created_us) < ?1",
        [now - days as i64 * 86_400_000_000],
    )?;
    conn.execute(
        "UPDATE outbox SET state = 'failed', evidence = NULL, last_error = 'not sent within 7 days'
         WHERE state = 'pending' AND created_us < ?1",
        [now - 7 * 86_400_000_000],
    )?;
    deleted += conn.execute(
        "DELETE FROM outbox WHERE state = 'pending' AND id NOT IN
           (SELECT id FROM outbox WHERE state = 'pending' ORDER BY id DESC LIMIT ?1)",
        [MAX_PENDING_MAIL],
    )?;
    deleted += conn.execute("DELETE FROM health_events WHERE ts_us < ?1", [now - 3 * days as i64 * 86_400_000_000])?;
    Ok(format!("{deleted} rows older than {cut_text} deleted"))
}

/// The database's share of `disk_budget`: half (the pcap ring and the evidence take the rest,
/// and the ring gives its room back first).
pub fn db_share(budget: u64) -> u64 {
    budget / 2
}

/// Bytes the database's rows use (its pages minus the free ones: deleted rows' pages are reused
/// before the file grows again).
pub fn db_used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * page) as u64)
}

/// Keeps the database within `share` bytes: while it uses more, the oldest hour of minutes goes
/// (with the flows, errors and events of that hour; identities and alerts, which are small and
/// matter longer, keep their own retention), one transaction an hour so the writer is never
/// held long. The newest day is never deleted: a share too small for one day is the
/// configuration's mistake, reported, not a store emptied.
pub fn trim_to_budget(conn: &Connection, share: u64) -> anyhow::Result<String> {
    let mut used = db_used_bytes(conn)?;
    if used <= share {
        return Ok(format!("database {} of its {} share", mib(used), mib(share)));
    }
    let before = used;
    let newest: Option<i64> = conn.query_row("SELECT max(minute) FROM traffic_minute", [], |r| r.get(0))?;
    let Some(newest) = newest else {
        return Ok(format!("database {} over its {} share, no minutes to trim", mib(used), mib(share)));
    };
    let mut deleted = 0usize;
    let mut hours = 0;
    while used > share {
        let oldest: Option<i64> = conn.query_row("SELECT min(minute) FROM traffic_minute", [], |r| r.get(0))?;
        let Some(oldest) = oldest else { break };
        let cut = (oldest.div_euclid(3600) + 1) * 3600;
        if cut > newest - 86_400 {
            tracing::warn!(
                "store: the database uses {} of its {} share with only a day of minutes left: disk_budget is too small",
                mib(used),
                mib(share)
            );
            break;
        }
        conn.execute_batch("BEGIN IMMEDIATE")?;
        match delete_before(conn, cut, None) {
            Ok(n) => {
                conn.execute_batch("COMMIT")?;
                deleted += n;
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        hours += 1;
        used = db_used_bytes(conn)?;
    }
    let since: Option<i64> = conn.query_row("SELECT min(minute) FROM traffic_minute", [], |r| r.get(0))?;
    let since = since.map(|m| crate::time::Ts(m * 1_000_000_000).rfc3339()).unwrap_or_default();
    Ok(format!(
        "database {} over its {} share: {hours} oldest hours ({deleted} rows) deleted, {} used, minutes since {since}",
        mib(before),
        mib(share),
        mib(used)
    ))
}

/// Deletes the minutes, flows and errors before `cut` (seconds), and with `keep_days` the
/// identities and cleared alerts `2 × keep_days` earlier still (kept three times longer: who
/// was where, what happened); without, those stay.
fn delete_before(conn: &Connection, cut: i64, keep_days: Option<u64>) -> anyhow::Result<usize> {
    let cut_us = cut * 1_000_000;
    let cut_text = crate::time::Ts(cut * 1_000_000_000).rfc3339();
    // i64::MIN: nothing is that old.
    let long = keep_days.map_or(i64::MIN, |d| cut_us - 2 * d as i64 * 86_400_000_000);
    let mut deleted = 0usize;
    for (sql, p) in [
        ("DELETE FROM traffic_minute WHERE minute < ?1", cut),
        ("DELETE FROM tcp_pair_minute WHERE minute < ?1", cut),
        // An hour goes once all of it is older than the cut.
        ("DELETE FROM tcp_pair_hour WHERE hour + 3600 <= ?1", cut),
        ("DELETE FROM counter_minute WHERE minute < ?1", cut),
        ("DELETE FROM counter_hour WHERE hour + 3600 <= ?1", cut),
        ("DELETE FROM exchange_minute WHERE minute < ?1", cut),
        ("DELETE FROM exchange_hour WHERE hour + 3600 <= ?1", cut),
        ("DELETE FROM user_volume_minute WHERE minute < ?1", cut),
        ("DELETE FROM app_error_minute WHERE minute < ?1", cut),
        ("DELETE FROM app_errors WHERE ts_us < ?1", cut_us),
        ("DELETE FROM flows WHERE last_us < ?1", cut_us),
        ("DELETE FROM identities WHERE last_us < ?1", long),
        ("DELETE FROM alerts WHERE state = 'cleared' AND since_us < ?1", long),
    ] {
        deleted += conn.execute(sql, [p])?;
    }
    deleted += conn.execute("DELETE FROM identity_events WHERE ts < ?1", [&cut_text])?;
    Ok(deleted)
}

/// The daily report: the last 24 hours before the newest stored minute, as an outbox row.
pub fn daily_digest(conn: &Connection, mail: bool) -> anyhow::Result<String> {
    let newest = crate::store::read::newest_minute(conn, crate::time::wall_now().secs())?;
    let Some(newest) = newest else { return Ok("nothing stored yet".into()) };
    let from = newest + 60 - 86_400;
    let (packets, bytes, drops, pr): (i64, i64, i64, i64) = conn.query_row(
        "SELECT coalesce(sum(packets),0), coalesce(sum(bytes),0), coalesce(sum(drops),0), coalesce(sum(private_retransmissions),0)
         FROM traffic_minute WHERE minute >= ?1",
        [from],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let retrans: i64 = conn.query_row(
        "SELECT coalesce(sum(retransmissions),0) FROM tcp_pair_minute WHERE minute >= ?1",
        [from],
        |r| r.get(0),
    )?;
    let errors: i64 =
        conn.query_row("SELECT coalesce(sum(count),0) FROM app_error_minute WHERE minute >= ?1", [from], |r| r.get(0))?;
    let alerts: i64 =
        conn.query_row("SELECT count(*) FROM alerts WHERE since_us >= ?1", [from * 1_000_000], |r| r.get(0))?;
    let from_text = crate::time::Ts(from * 1_000_000_000).rfc3339();
    let new_ids: i64 = conn.query_row(
        "SELECT count(*) FROM identity_events WHERE kind = 'identity.new' AND ts >= ?1",
        [&from_text],
        |r| r.get(0),
    )?;
    // The day's largest error kinds and retransmitting host pairs, one line each.
    let mut top = Vec::new();
    for (sql, between, unit) in [
        (
            "SELECT family, code, sum(count) AS n FROM app_error_minute WHERE minute >= ?1
             GROUP BY family, code ORDER BY n DESC LIMIT 10",
            " ",
            "errors",
        ),
        (
            "SELECT src, dst, sum(retransmissions) AS n FROM tcp_pair_minute WHERE minute >= ?1
             GROUP BY src, dst HAVING n > 0 ORDER BY n DESC LIMIT 5",
            " → ",
            "retransmissions",
        ),
    ] {
        let mut st = conn.prepare(sql)?;
        let rows = st.query_map([from], |r| {
            Ok(format!("{}{between}{}: {} {unit}", r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
        })?;
        for r in rows {
            top.push(r?);
        }
    }
    let day = crate::time::Ts(newest * 1_000_000_000).rfc3339()[..10].to_string();
    let payload = json!({
        "day": day, "from": from_text, "packets": packets, "bytes": bytes, "drops": drops,
        "retransmissions": retrans, "private_retransmissions": pr, "app_errors": errors, "alerts": alerts,
        "new_identities": new_ids, "top": top,
    });
    if mail {
        conn.execute(
            "INSERT INTO outbox (created_us, kind, payload, next_try_us) VALUES (?1, 'daily', ?2, ?1)",
            params![wall_us(), payload.to_string()],
        )?;
    }
    Ok(format!("daily report for {day}: {packets} packets, {errors} app errors, {alerts} alerts"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_field_crontab() {
        let c = parse_cron("*/15 * * * *").unwrap();
        let t: DateTime<Utc> = "2026-01-01T10:07:00Z".parse().unwrap();
        assert_eq!(c.find_next_occurrence(&t, false).unwrap().to_rfc3339(), "2026-01-01T10:15:00+00:00");
        let d = parse_cron("0 8 * * *").unwrap();
        assert_eq!(d.find_next_occurrence(&t, false).unwrap().to_rfc3339(), "2026-01-02T08:00:00+00:00");
        assert!(parse_cron("0 0 8 * * *").is_err(), "six fields are not crontab");
        assert!(parse_cron("61 * * * *").is_err());
    }
}

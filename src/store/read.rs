//! The store's typed read layer: the queries the jobs, the mailer, the alert restore and the
//! dashboard share, so each question about stored time is answered one way. Times are integer
//! seconds (minutes) or microseconds since the epoch, as in the schema.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use crate::rules::counters::CounterRow;
use crate::time::Ts;

use crate::time::FUTURE_TOLERANCE_SECS;

/// The newest stored traffic minute that is not beyond the wall clock `wall` (seconds) plus the
/// tolerance: rows from a wrong clock are never what time is measured from.
pub fn newest_minute(conn: &Connection, wall: i64) -> rusqlite::Result<Option<i64>> {
    newest_in(conn, "traffic_minute", wall)
}

/// The same for the rule counters' minutes (the alert baselines are rebuilt from them).
pub fn newest_counter_minute(conn: &Connection, wall: i64) -> rusqlite::Result<Option<i64>> {
    newest_in(conn, "counter_minute", wall)
}

fn newest_in(conn: &Connection, table: &str, wall: i64) -> rusqlite::Result<Option<i64>> {
    let limit = wall.saturating_add(FUTURE_TOLERANCE_SECS);
    // Nor from a clock that was not set (a Pi in 1970 before NTP).
    conn.query_row(
        &format!("SELECT max(minute) FROM {table} WHERE minute <= ?1 AND minute >= ?2"),
        [limit, crate::time::CLOCK_FLOOR_SECS],
        |r| r.get(0),
    )
    .optional()
    .map(Option::flatten)
}

pub use crate::rules::alerts::AlertHistory;

/// Reads the [`AlertHistory`] of `counters` from the database at `db`.
pub fn alert_history(db: &Path, counters: &[String]) -> rusqlite::Result<AlertHistory> {
    let conn = super::open_existing(db)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let mut minutes = Vec::new();
    if let Some(newest) = newest_counter_minute(&conn, crate::time::wall_now().secs())? {
        let from = (newest - crate::rules::alerts::BASELINE_DAYS * 86_400).max(crate::time::CLOCK_FLOOR_SECS - 60);
        let mut st = conn.prepare(
            "SELECT minute, key, value FROM counter_minute WHERE counter = ?1 AND minute > ?2 ORDER BY minute, key",
        )?;
        for c in counters {
            let it = st.query_map(rusqlite::params![c, from], |r| {
                Ok(CounterRow {
                    minute: r.get(0)?,
                    counter: c.clone(),
                    key: r.get(1)?,
                    value: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })?;
            for r in it {
                minutes.push(r?);
            }
        }
    }
    minutes.sort_by_key(|r| r.minute);
    let mut st = conn.prepare("SELECT rule, key, max(since_us) FROM alerts WHERE mail = 1 GROUP BY rule, key")?;
    let mails = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, Ts(r.get::<_, i64>(2)?.saturating_mul(1000)))))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // Oldest first; bounded (an alert tracks at most MAX_KEYS keys, and a store from a version
    // that never cleared them may hold thousands: those beyond are cleared as orphans).
    let mut st = conn.prepare(
        "SELECT id, rule, key, since_us, count, summary FROM alerts WHERE state = 'active' ORDER BY since_us, id",
    )?;
    let active = st
        .query_map([], |r| {
            Ok(crate::rules::alerts::ActiveEpisode {
                id: r.get(0)?,
                rule: r.get(1)?,
                key: r.get(2)?,
                since: Ts(r.get::<_, i64>(3)?.saturating_mul(1000)),
                count: r.get::<_, i64>(4)?.max(0) as u64,
                summary: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(AlertHistory { minutes, mails, active })
}

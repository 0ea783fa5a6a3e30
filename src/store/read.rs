//! The store's typed read layer: the queries the jobs, the mailer, the alert restore and the
//! dashboard share, so each question about stored time is answered one way. Times are integer
//! seconds (minutes) or microseconds since the epoch, as in the schema.

use rusqlite::{Connection, OptionalExtension};

use crate::pipeline::FUTURE_TOLERANCE_SECS;

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
    conn.query_row(&format!("SELECT max(minute) FROM {table} WHERE minute <= ?1"), [limit], |r| r.get(0))
        .optional()
        .map(Option::flatten)
}

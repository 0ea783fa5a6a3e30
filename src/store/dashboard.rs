//! The dashboard's part of the typed read layer: every question a page or `/api` route asks of
//! the store, answered by one query here, so the pages and the JSON API show the same numbers.
//!
//! Ranges are half-open `[from, to)` in seconds since the epoch and are anchored by the caller at
//! the newest trusted minute (see [`super::read::newest_minute`]), not at the wall clock: a replayed
//! capture or a box whose clock is behind still shows its data. Long ranges are summed into at most
//! [`MAX_POINTS`] buckets, so a week of minutes never reaches the browser as 10,080 points. Every
//! list has a `LIMIT`: a page never grows with the table.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// Points per chart at most; a range is summed into buckets of whole minutes to fit.
pub const MAX_POINTS: i64 = 720;
/// Rows per list at most.
pub const MAX_ROWS: usize = 200;

/// A time range, seconds since the epoch, `from` inclusive, `to` exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Range {
    pub from: i64,
    pub to: i64,
}

impl Range {
    /// The `secs` before `end` (an anchor such as the end of the newest minute).
    pub fn last(end: i64, secs: i64) -> Range {
        Range { from: end.saturating_sub(secs.max(60)), to: end }
    }
    /// Bucket width in seconds: whole minutes, so that the range fits in [`MAX_POINTS`]; whole
    /// hours beyond two days, so that long ranges read the hourly rollups.
    pub fn bucket(&self) -> i64 {
        let minutes = ((self.to - self.from).max(60) + 59) / 60;
        let b = ((minutes + MAX_POINTS - 1) / MAX_POINTS).max(1) * 60;
        if self.to - self.from > HOURLY_BEYOND {
            (b + 3599) / 3600 * 3600
        } else {
            b
        }
    }

    /// The whole hours inside the range `[h0, h1)`, read from the hourly rollups, with the
    /// minutes before and after them read from the minute tables. A range without a whole hour
    /// gives `h0 = h1 = to` (all minutes).
    pub fn hours(&self) -> (i64, i64) {
        let h0 = (self.from + 3599).div_euclid(3600) * 3600;
        let h1 = self.to.div_euclid(3600) * 3600;
        if h1 > h0 {
            (h0, h1)
        } else {
            (self.to, self.to)
        }
    }
}

/// Ranges longer than this are drawn in whole hours (and read from the hourly rollups).
pub const HOURLY_BEYOND: i64 = 2 * 86_400;

/// One chart point: bucket start (seconds) and the sum over the bucket.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Point {
    pub t: i64,
    pub v: f64,
}

/// Where "now" is for the dashboard: the end of the newest stored minute that is not beyond the
/// wall clock, or the wall clock when nothing is stored yet.
pub fn anchor(conn: &Connection, wall_secs: i64) -> rusqlite::Result<i64> {
    // Display only: a capture from 2010 analysed today is shown at its own time (retention and
    // baselines, unlike the pages, ignore minutes from before the clock floor).
    let limit = wall_secs.saturating_add(crate::time::FUTURE_TOLERANCE_SECS);
    let newest: Option<i64> =
        conn.query_row("SELECT max(minute) FROM traffic_minute WHERE minute <= ?1", [limit], |r| r.get(0))?;
    Ok(match newest {
        Some(m) => m + 60,
        None => wall_secs.div_euclid(60) * 60 + 60,
    })
}

/// The oldest stored traffic minute not before `not_before`.
pub fn oldest_minute(conn: &Connection, not_before: i64) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT min(minute) FROM traffic_minute WHERE minute >= ?1", [not_before], |r| r.get(0))
}

/// Traffic of the whole capture: packets, bytes and drops per bucket.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrafficSeries {
    pub bucket: i64,
    pub packets: Vec<Point>,
    pub bytes: Vec<Point>,
    pub drops: Vec<Point>,
    pub retransmissions: Vec<Point>,
}

pub fn traffic_series(conn: &Connection, r: Range) -> rusqlite::Result<TrafficSeries> {
    let b = r.bucket();
    let mut st = conn.prepare_cached(
        "SELECT (minute / ?1) * ?1 AS t, sum(packets), sum(bytes), sum(drops), sum(private_retransmissions)
           FROM traffic_minute WHERE minute >= ?2 AND minute < ?3 GROUP BY t ORDER BY t",
    )?;
    let mut s = TrafficSeries { bucket: b, ..Default::default() };
    let rows = st.query_map(params![b, r.from, r.to], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, f64>(1)?,
            row.get::<_, f64>(2)?,
            row.get::<_, f64>(3)?,
            row.get::<_, f64>(4)?,
        ))
    })?;
    for row in rows {
        let (t, p, by, d, rt) = row?;
        s.packets.push(Point { t, v: p });
        s.bytes.push(Point { t, v: by });
        s.drops.push(Point { t, v: d });
        s.retransmissions.push(Point { t, v: rt });
    }
    Ok(s)
}

/// One stored traffic minute.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MinuteTraffic {
    pub minute: i64,
    pub packets: i64,
    pub bytes: i64,
    pub drops: i64,
    pub time_jumps: i64,
}

/// The newest stored minute not beyond `limit` (seconds).
pub fn latest_minute(conn: &Connection, limit: i64) -> rusqlite::Result<Option<MinuteTraffic>> {
    conn.query_row(
        "SELECT minute, packets, bytes, drops, time_jumps FROM traffic_minute WHERE minute < ?1
          ORDER BY minute DESC LIMIT 1",
        [limit],
        |r| {
            Ok(MinuteTraffic {
                minute: r.get(0)?,
                packets: r.get(1)?,
                bytes: r.get(2)?,
                drops: r.get(3)?,
                time_jumps: r.get(4)?,
            })
        },
    )
    .optional()
}

/// Sums over a range of the traffic table.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrafficTotals {
    pub packets: i64,
    pub bytes: i64,
    pub drops: i64,
    /// The part of `drops` lost at the interface (the rest in the kernel's capture buffer).
    pub if_drops: i64,
    /// Frames analysed but not kept in the pcap ring.
    pub ring_drops: i64,
    pub retransmissions: i64,
    pub private_retransmissions: i64,
    pub time_jumps: i64,
}

pub fn traffic_totals(conn: &Connection, r: Range) -> rusqlite::Result<TrafficTotals> {
    conn.query_row(
        "SELECT coalesce(sum(packets),0), coalesce(sum(bytes),0), coalesce(sum(drops),0),
                coalesce(sum(retransmissions),0), coalesce(sum(private_retransmissions),0),
                coalesce(sum(time_jumps),0), coalesce(sum(if_drops),0), coalesce(sum(ring_drops),0)
           FROM traffic_minute WHERE minute >= ?1 AND minute < ?2",
        [r.from, r.to],
        |row| {
            Ok(TrafficTotals {
                packets: row.get(0)?,
                bytes: row.get(1)?,
                drops: row.get(2)?,
                retransmissions: row.get(3)?,
                private_retransmissions: row.get(4)?,
                time_jumps: row.get(5)?,
                if_drops: row.get(6)?,
                ring_drops: row.get(7)?,
            })
        },
    )
}

/// A rule counter as stored: its total over a range and its newest minute.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CounterInfo {
    pub id: String,
    pub total: i64,
    pub last_minute: Option<i64>,
    pub last_value: i64,
    pub grouped: bool,
}

/// Every counter with rows in the store (totals over `r`), by id. The ids are found by skipping
/// through the primary key (one probe per counter, not a scan of the table).
pub fn counters(conn: &Connection, r: Range) -> rusqlite::Result<Vec<CounterInfo>> {
    let mut ids = conn.prepare_cached(
        "WITH RECURSIVE ids(c) AS (
            SELECT (SELECT min(counter) FROM counter_minute)
            UNION ALL SELECT (SELECT min(counter) FROM counter_minute WHERE counter > ids.c) FROM ids WHERE c IS NOT NULL)
         SELECT c FROM ids WHERE c IS NOT NULL LIMIT 1000",
    )?;
    let ids: Vec<String> = ids.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?;
    // Whole hours from the hourly rollups, the edges from the minutes.
    let mut total = conn.prepare_cached(
        "SELECT coalesce((SELECT sum(value) FROM counter_minute WHERE counter = ?1 AND key = '' AND minute >= ?2 AND minute < ?3), 0)
              + coalesce((SELECT sum(value) FROM counter_hour WHERE counter = ?1 AND key = '' AND hour >= ?3 AND hour < ?4), 0)
              + coalesce((SELECT sum(value) FROM counter_minute WHERE counter = ?1 AND key = '' AND minute >= ?4 AND minute < ?5), 0)",
    )?;
    let (h0, h1) = r.hours();
    let mut last = conn.prepare_cached(
        "SELECT minute, value FROM counter_minute WHERE counter = ?1 AND key = '' AND minute < ?2
          ORDER BY minute DESC LIMIT 1",
    )?;
    let mut grouped = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM counter_minute WHERE counter = ?1 AND minute = ?2 AND key <> '')",
    )?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some((minute, value)) =
            last.query_row(params![id, r.to], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))).optional()?
        else {
            continue;
        };
        out.push(CounterInfo {
            total: total.query_row(params![id, r.from, h0, h1, r.to], |row| row.get(0))?,
            last_minute: Some(minute),
            last_value: value,
            grouped: grouped.query_row(params![id, minute], |row| row.get(0))?,
            id,
        });
    }
    Ok(out)
}

/// A counter's series: its total (`key` = "") or one group.
pub fn counter_series(conn: &Connection, counter: &str, key: &str, r: Range) -> rusqlite::Result<Vec<Point>> {
    let b = r.bucket();
    // Buckets of whole hours read the hourly rollups for the whole hours of the range.
    let (h0, h1) = if b % 3600 == 0 { r.hours() } else { (r.to, r.to) };
    let mut st = conn.prepare_cached(
        "SELECT t, sum(v) FROM (
            SELECT (minute / ?1) * ?1 AS t, value AS v FROM counter_minute
             WHERE counter = ?2 AND key = ?3 AND minute >= ?4 AND minute < ?5
            UNION ALL SELECT (hour / ?1) * ?1, value FROM counter_hour
             WHERE counter = ?2 AND key = ?3 AND hour >= ?5 AND hour < ?6
            UNION ALL SELECT (minute / ?1) * ?1, value FROM counter_minute
             WHERE counter = ?2 AND key = ?3 AND minute >= ?6 AND minute < ?7)
          GROUP BY t ORDER BY t",
    )?;
    let rows = st.query_map(params![b, counter, key, r.from, h0, h1, r.to], |row| {
        Ok(Point { t: row.get(0)?, v: row.get(1)? })
    })?;
    rows.collect()
}

/// One group of a grouped counter, summed over a range.
#[derive(Clone, Debug, Serialize)]
pub struct GroupTotal {
    pub key: String,
    pub total: i64,
}

/// The top groups of a counter over a range (`other` included: it is what fell beyond the top-N).
pub fn counter_groups(conn: &Connection, counter: &str, r: Range, limit: usize) -> rusqlite::Result<Vec<GroupTotal>> {
    let (h0, h1) = r.hours();
    let mut st = conn.prepare_cached(
        "SELECT key, sum(v) AS s FROM (
            SELECT key, value AS v FROM counter_minute WHERE counter = ?1 AND minute >= ?2 AND minute < ?3 AND key <> ''
            UNION ALL SELECT key, value FROM counter_hour WHERE counter = ?1 AND hour >= ?3 AND hour < ?4 AND key <> ''
            UNION ALL SELECT key, value FROM counter_minute WHERE counter = ?1 AND minute >= ?4 AND minute < ?5 AND key <> '')
          GROUP BY key ORDER BY s DESC, key LIMIT ?6",
    )?;
    let rows = st.query_map(params![counter, r.from, h0, h1, r.to, limit.min(MAX_ROWS) as i64], |row| {
        Ok(GroupTotal { key: row.get(0)?, total: row.get(1)? })
    })?;
    rows.collect()
}

/// One identity binding (a user, host name or both behind a MAC and address).
#[derive(Clone, Debug, Serialize)]
pub struct Identity {
    pub mac: String,
    pub ip: String,
    pub user: String,
    pub realm: String,
    pub hostname: String,
    pub source: String,
    pub outcome: String,
    pub error: String,
    pub first_us: i64,
    pub last_us: i64,
    pub count: i64,
}

const IDENTITY_COLS: &str = "mac, ip, user, realm, hostname, source, outcome, error, first_us, last_us, count";

fn identity_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Identity> {
    Ok(Identity {
        mac: r.get(0)?,
        ip: r.get(1)?,
        user: r.get(2)?,
        realm: r.get(3)?,
        hostname: r.get(4)?,
        source: r.get(5)?,
        outcome: r.get(6)?,
        error: r.get(7)?,
        first_us: r.get(8)?,
        last_us: r.get(9)?,
        count: r.get(10)?,
    })
}

/// `LIKE` pattern matching `q` anywhere, with its own `%`, `_` and `\` taken literally.
fn like_anywhere(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Identities whose user, MAC, address or host name contains `q` (case-insensitive for ASCII),
/// most recently seen first; an empty `q` lists the most recent ones.
pub fn identities(conn: &Connection, q: &str) -> rusqlite::Result<Vec<Identity>> {
    Ok(identities_page(conn, &IdentityFilter { q: q.to_string(), ..IdentityFilter::default() }, 0, MAX_ROWS)?.0)
}

/// What the identities page filters by: text anywhere (user, MAC, IP, host, realm), the
/// protocol that told, the outcome.
#[derive(Clone, Debug, Default)]
pub struct IdentityFilter {
    pub q: String,
    pub source: Option<String>,
    pub outcome: Option<String>,
}

/// A page of identities, the newest first, and how many match.
pub fn identities_page(
    conn: &Connection,
    f: &IdentityFilter,
    offset: usize,
    limit: usize,
) -> rusqlite::Result<(Vec<Identity>, i64)> {
    let q = f.q.trim();
    const WHERE: &str = "(?1 = '' OR user LIKE ?2 ESCAPE '\\' OR mac LIKE ?2 ESCAPE '\\' OR ip LIKE ?2 ESCAPE '\\'
             OR hostname LIKE ?2 ESCAPE '\\' OR realm LIKE ?2 ESCAPE '\\')
          AND (?3 IS NULL OR source = ?3) AND (?4 IS NULL OR outcome = ?4)";
    let sql = format!("SELECT {IDENTITY_COLS} FROM identities WHERE {WHERE} ORDER BY last_us DESC LIMIT ?5 OFFSET ?6");
    let like = like_anywhere(q);
    let mut st = conn.prepare_cached(&sql)?;
    let rows =
        st.query_map(params![q, like, f.source, f.outcome, limit.min(MAX_ROWS) as i64, offset as i64], identity_row)?;
    let list = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let total = conn.query_row(
        &format!("SELECT count(*) FROM identities WHERE {WHERE}"),
        params![q, like, f.source, f.outcome],
        |r| r.get(0),
    )?;
    Ok((list, total))
}

/// The protocols that told identities (the filter's choices).
pub fn identity_sources(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare_cached("SELECT DISTINCT source FROM identities ORDER BY 1 LIMIT 100")?;
    let rows = st.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Everything one MAC did, oldest first: who, when, by which protocol, with which outcome.
pub fn mac_history(conn: &Connection, mac: &str) -> rusqlite::Result<Vec<Identity>> {
    let sql = format!("SELECT {IDENTITY_COLS} FROM identities WHERE mac = ?1 ORDER BY first_us LIMIT {MAX_ROWS}");
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map([mac], identity_row)?;
    rows.collect()
}

/// An identity event: a new binding or one MAC with several users.
#[derive(Clone, Debug, Serialize)]
pub struct IdentityEvent {
    pub ts: String,
    pub kind: String,
    pub mac: String,
    pub ip: Option<String>,
    pub users: Vec<String>,
    pub hostname: Option<String>,
    pub frame: i64,
}

/// The newest identity events of `kind` (e.g. "identity.shared_mac"), for `mac` if given.
pub fn identity_events(conn: &Connection, kind: &str, mac: Option<&str>) -> rusqlite::Result<Vec<IdentityEvent>> {
    let mut st = conn.prepare_cached(
        "SELECT ts, kind, mac, ip, users, hostname, frame FROM identity_events
          WHERE kind = ?1 AND (?2 IS NULL OR mac = ?2) ORDER BY id DESC LIMIT 100",
    )?;
    let rows = st.query_map(params![kind, mac], |r| {
        let users: String = r.get(4)?;
        Ok(IdentityEvent {
            ts: r.get(0)?,
            kind: r.get(1)?,
            mac: r.get(2)?,
            ip: r.get(3)?,
            users: serde_json::from_str(&users).unwrap_or_default(),
            hostname: r.get(5)?,
            frame: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// Traffic of one logged-in user over a range.
#[derive(Clone, Debug, Serialize)]
pub struct UserVolume {
    pub user: String,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub packets: i64,
}

pub fn top_users(conn: &Connection, r: Range, limit: usize) -> rusqlite::Result<Vec<UserVolume>> {
    let mut st = conn.prepare_cached(
        "SELECT user, sum(bytes_in), sum(bytes_out), sum(packets) FROM user_volume_minute
          WHERE minute >= ?1 AND minute < ?2 GROUP BY user
          ORDER BY sum(bytes_in) + sum(bytes_out) DESC LIMIT ?3",
    )?;
    let rows = st.query_map(params![r.from, r.to, limit.min(MAX_ROWS) as i64], |row| {
        Ok(UserVolume { user: row.get(0)?, bytes_in: row.get(1)?, bytes_out: row.get(2)?, packets: row.get(3)? })
    })?;
    rows.collect()
}

/// Retransmissions between one sender and one receiver: over the range, and the rate of the
/// week before it (the pair's own baseline).
#[derive(Clone, Debug, Serialize)]
pub struct PairRetrans {
    pub src: String,
    pub dst: String,
    pub private: bool,
    pub packets: i64,
    pub bytes: i64,
    pub retransmissions: i64,
    pub fast_retransmissions: i64,
    pub lost_segments: i64,
    pub duplicate_acks: i64,
    /// Retransmitted share of the pair's packets in the range, in percent.
    pub rate_pct: f64,
    /// The same share over the 7 days before the range; `None` when the pair was not seen then.
    pub baseline_pct: Option<f64>,
}

impl PairRetrans {
    /// How many times its own baseline the pair's rate is now (the rogue media converter shows
    /// as a pair far above its usual rate). A pair without a baseline compares with 0.1 %.
    pub fn times_baseline(&self) -> f64 {
        let base = self.baseline_pct.unwrap_or(0.0).max(0.1);
        self.rate_pct / base
    }
}

/// Host pairs with retransmissions in `r`, most retransmissions first; only `pair` if given.
/// Whole hours of the range are read from `tcp_pair_hour`, the ragged ends from the minutes.
pub fn retrans_pairs(
    conn: &Connection,
    r: Range,
    limit: usize,
    pair: Option<(&str, &str)>,
) -> rusqlite::Result<Vec<PairRetrans>> {
    const COLS: &str = "src, dst, packets, bytes, retransmissions, fast_retransmissions, lost_segments, duplicate_acks";
    let mut st = conn.prepare_cached(&format!(
        "SELECT src, dst, sum(packets), sum(bytes), sum(retransmissions), sum(fast_retransmissions),
                sum(lost_segments), sum(duplicate_acks)
           FROM (SELECT {COLS} FROM tcp_pair_minute WHERE minute >= ?1 AND minute < ?2
                 UNION ALL SELECT {COLS} FROM tcp_pair_hour WHERE hour >= ?2 AND hour < ?3
                 UNION ALL SELECT {COLS} FROM tcp_pair_minute WHERE minute >= ?3 AND minute < ?4)
          WHERE ?6 IS NULL OR (src = ?6 AND dst = ?7)
          GROUP BY src, dst HAVING sum(retransmissions) > 0
          ORDER BY sum(retransmissions) DESC, src, dst LIMIT ?5"
    ))?;
    // The pair's own hours only, through the tcp_pair_hour_series index.
    let mut base = conn.prepare_cached(
        "SELECT sum(packets), sum(retransmissions) FROM tcp_pair_hour INDEXED BY tcp_pair_hour_series
          WHERE src = ?3 AND dst = ?4 AND hour >= ?1 AND hour < ?2",
    )?;
    // [from, h0) minutes, [h0, h1) hours, [h1, to) minutes; a range inside one hour is all minutes.
    let (mut h0, mut h1) = ((r.from + 3599).div_euclid(3600) * 3600, r.to.div_euclid(3600) * 3600);
    if h0 >= h1 {
        (h0, h1) = (r.to, r.to);
    }
    let (ps, pd) = (pair.map(|p| p.0), pair.map(|p| p.1));
    let rows = st
        .query_map(params![r.from, h0, h1, r.to, limit.min(MAX_ROWS) as i64, ps, pd], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                [row.get::<_, i64>(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?],
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // The week before the range, in whole hours.
    let base_to = r.from.div_euclid(3600) * 3600;
    let base_from = base_to - 7 * 86_400;
    let mut out = Vec::with_capacity(rows.len());
    for (src, dst, [packets, bytes, retrans, fast, lost, dup]) in rows {
        let (bp, br): (Option<i64>, Option<i64>) =
            base.query_row(params![base_from, base_to, src, dst], |row| Ok((row.get(0)?, row.get(1)?)))?;
        let baseline_pct = match (bp, br) {
            (Some(p), Some(rt)) if p > 0 => Some(100.0 * rt as f64 / p as f64),
            _ => None,
        };
        let private = [&src, &dst].iter().all(|a| a.parse().is_ok_and(|ip| crate::decode::is_private(&ip)));
        out.push(PairRetrans {
            rate_pct: if packets > 0 { 100.0 * retrans as f64 / packets as f64 } else { 0.0 },
            src,
            dst,
            private,
            packets,
            bytes,
            retransmissions: retrans,
            fast_retransmissions: fast,
            lost_segments: lost,
            duplicate_acks: dup,
            baseline_pct,
        });
    }
    Ok(out)
}

/// One pair's retransmissions and packets per bucket.
pub fn pair_series(conn: &Connection, src: &str, dst: &str, r: Range) -> rusqlite::Result<(Vec<Point>, Vec<Point>)> {
    let b = r.bucket();
    let mut st = conn.prepare_cached(
        "SELECT (minute / ?1) * ?1 AS t, sum(retransmissions), sum(packets) FROM tcp_pair_minute
          WHERE minute >= ?2 AND minute < ?3 AND src = ?4 AND dst = ?5 GROUP BY t ORDER BY t",
    )?;
    let (mut rt, mut pk) = (Vec::new(), Vec::new());
    let rows = st.query_map(params![b, r.from, r.to, src, dst], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, f64>(1)?, row.get::<_, f64>(2)?))
    })?;
    for row in rows {
        let (t, a, p) = row?;
        rt.push(Point { t, v: a });
        pk.push(Point { t, v: p });
    }
    Ok((rt, pk))
}

/// Application errors of one kind at one server over a range.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorKind {
    pub family: String,
    pub code: String,
    pub server: String,
    pub count: i64,
    pub first_minute: i64,
    pub last_minute: i64,
}

pub fn app_error_kinds(conn: &Connection, r: Range) -> rusqlite::Result<Vec<ErrorKind>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT family, code, server, sum(count), min(minute), max(minute) FROM app_error_minute
          WHERE minute >= ?1 AND minute < ?2 GROUP BY family, code, server
          ORDER BY sum(count) DESC, family, code LIMIT {MAX_ROWS}"
    ))?;
    let rows = st.query_map([r.from, r.to], |row| {
        Ok(ErrorKind {
            family: row.get(0)?,
            code: row.get(1)?,
            server: row.get(2)?,
            count: row.get(3)?,
            first_minute: row.get(4)?,
            last_minute: row.get(5)?,
        })
    })?;
    rows.collect()
}

/// Errors per bucket (all kinds, or one family).
pub fn app_error_series(conn: &Connection, family: Option<&str>, r: Range) -> rusqlite::Result<Vec<Point>> {
    let b = r.bucket();
    let mut st = conn.prepare_cached(
        "SELECT (minute / ?1) * ?1 AS t, sum(count) FROM app_error_minute
          WHERE minute >= ?2 AND minute < ?3 AND (?4 IS NULL OR family = ?4) GROUP BY t ORDER BY t",
    )?;
    let rows = st.query_map(params![b, r.from, r.to, family], |row| Ok(Point { t: row.get(0)?, v: row.get(1)? }))?;
    rows.collect()
}

/// One stored error example (its message as seen on the wire; credentials never reach it).
#[derive(Clone, Debug, Serialize)]
pub struct ErrorExample {
    pub ts_us: i64,
    pub frame: i64,
    pub family: String,
    pub code: String,
    pub message: String,
    pub client: String,
    pub server: String,
}

pub fn app_error_examples(conn: &Connection, r: Range, family: Option<&str>) -> rusqlite::Result<Vec<ErrorExample>> {
    Ok(app_error_page(conn, r, family, None, 0, 100)?.0)
}

/// A page of stored errors in `r`, the newest first, and how many there are.
pub fn app_error_page(
    conn: &Connection,
    r: Range,
    family: Option<&str>,
    code: Option<&str>,
    offset: usize,
    limit: usize,
) -> rusqlite::Result<(Vec<ErrorExample>, i64)> {
    let (from, to) = (r.from * 1_000_000, r.to * 1_000_000);
    let total = conn.query_row(
        "SELECT count(*) FROM app_errors WHERE ts_us >= ?1 AND ts_us < ?2 AND (?3 IS NULL OR family = ?3)
            AND (?4 IS NULL OR code = ?4)",
        params![from, to, family, code],
        |r| r.get(0),
    )?;
    let mut st = conn.prepare_cached(
        "SELECT ts_us, frame, family, code, message, coalesce(client_ip, ''), coalesce(server_ip, ''), server_port
           FROM app_errors WHERE ts_us >= ?1 AND ts_us < ?2 AND (?3 IS NULL OR family = ?3) AND (?4 IS NULL OR code = ?4)
          ORDER BY ts_us DESC LIMIT ?5 OFFSET ?6",
    )?;
    let rows = st.query_map(params![from, to, family, code, limit.min(MAX_ROWS) as i64, offset as i64], |row| {
        let server: String = row.get(6)?;
        let port: Option<i64> = row.get(7)?;
        Ok(ErrorExample {
            ts_us: row.get(0)?,
            frame: row.get(1)?,
            family: row.get(2)?,
            code: row.get(3)?,
            message: row.get(4)?,
            client: row.get(5)?,
            server: match port {
                Some(p) if server.contains(':') => format!("[{server}]:{p}"),
                Some(p) => format!("{server}:{p}"),
                None => server,
            },
        })
    })?;
    Ok((rows.collect::<rusqlite::Result<Vec<_>>>()?, total))
}

/// One alert episode.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    pub id: i64,
    pub rule: String,
    pub key: String,
    pub severity: String,
    pub state: String,
    pub since_us: i64,
    pub cleared_us: Option<i64>,
    pub summary: String,
    pub count: i64,
    pub value: Option<i64>,
    pub baseline: Option<f64>,
    pub threshold: Option<f64>,
    pub mail: bool,
    pub suppressed: bool,
    pub acked_us: Option<i64>,
    /// Size of the evidence pcapng kept with the alert's mail, if any.
    pub evidence_bytes: Option<i64>,
    /// The evidence window cut from the pcap ring: its id, state and size.
    pub window_id: Option<i64>,
    pub window_state: Option<String>,
    pub window_bytes: Option<i64>,
    /// Episodes of the same (rule, key) folded into this row (1 when not folded), and when the
    /// first of them began.
    pub episodes: i64,
    pub first_us: i64,
}

/// Which alerts a page asks for; `None` is "any".
#[derive(Clone, Debug, Default)]
pub struct AlertFilter {
    pub severity: Option<String>,
    pub rule: Option<String>,
    /// `active` or `cleared`.
    pub state: Option<String>,
    /// Episodes that began at or after / before these times (µs).
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    /// One row per (rule, key): its newest episode, with the number of episodes folded into it.
    pub fold: bool,
    /// Just this alert (the one a mail links to).
    pub id: Option<i64>,
}

impl AlertFilter {
    pub fn active() -> AlertFilter {
        AlertFilter { state: Some("active".into()), fold: true, ..AlertFilter::default() }
    }
}

/// A page of alerts and how many rows the filter finds in all.
#[derive(Clone, Debug, Serialize)]
pub struct AlertPage {
    pub alerts: Vec<Alert>,
    pub total: i64,
}

/// Alerts, the active ones first, then by severity (critical, warning, info), then the newest;
/// folded per (rule, key) when the filter says so: the same database error repeated all day is
/// one row with its number of episodes, not a page of copies.
pub fn alerts(conn: &Connection, f: &AlertFilter, offset: usize, limit: usize) -> rusqlite::Result<AlertPage> {
    const WHERE: &str = "(?1 IS NULL OR a.severity = ?1) AND (?2 IS NULL OR a.rule = ?2)
        AND (?3 IS NULL OR a.state = ?3) AND (?4 IS NULL OR a.since_us >= ?4) AND (?5 IS NULL OR a.since_us < ?5) AND (?6 IS NULL OR a.id = ?6)";
    // Within a (rule, key), the episode shown is the active one if any, else the newest.
    let rank = if f.fold {
        "row_number() OVER (PARTITION BY a.rule, a.key ORDER BY a.state = 'active' DESC, a.since_us DESC)"
    } else {
        "1"
    };
    let episodes = if f.fold { "count(*) OVER (PARTITION BY a.rule, a.key)" } else { "1" };
    let first = if f.fold { "min(a.since_us) OVER (PARTITION BY a.rule, a.key)" } else { "a.since_us" };
    let sql = format!(
        "WITH f AS (SELECT a.*, {rank} AS rn, {episodes} AS episodes, {first} AS first_us FROM alerts a WHERE {WHERE})
         SELECT a.id, a.rule, a.key, a.severity, a.state, a.since_us, a.cleared_us, a.summary, a.count,
                a.value, a.baseline, a.threshold, a.mail, a.suppressed, a.acked_us,
                (SELECT max(length(evidence)) FROM outbox o WHERE o.alert_id = a.id),
                e.id, e.state, e.bytes, a.episodes, a.first_us
           FROM f a LEFT JOIN evidence e ON e.id = a.evidence_id WHERE a.rn = 1
          ORDER BY a.state = 'active' DESC,
                   CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 WHEN 'info' THEN 2 ELSE 3 END,
                   a.since_us DESC, a.id DESC
          LIMIT ?7 OFFSET ?8"
    );
    let args =
        params![f.severity, f.rule, f.state, f.from_us, f.to_us, f.id, limit.min(MAX_ROWS) as i64, offset as i64];
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(args, |r| {
        Ok(Alert {
            id: r.get(0)?,
            rule: r.get(1)?,
            key: r.get(2)?,
            severity: r.get(3)?,
            state: r.get(4)?,
            since_us: r.get(5)?,
            cleared_us: r.get(6)?,
            summary: r.get(7)?,
            count: r.get(8)?,
            value: r.get(9)?,
            baseline: r.get(10)?,
            threshold: r.get(11)?,
            mail: r.get(12)?,
            suppressed: r.get(13)?,
            acked_us: r.get(14)?,
            evidence_bytes: r.get(15)?,
            window_id: r.get(16)?,
            window_state: r.get(17)?,
            window_bytes: r.get(18)?,
            episodes: r.get(19)?,
            first_us: r.get(20)?,
        })
    })?;
    let alerts = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let count_sql = if f.fold {
        format!("SELECT count(*) FROM (SELECT 1 FROM alerts a WHERE {WHERE} GROUP BY a.rule, a.key)")
    } else {
        format!("SELECT count(*) FROM alerts a WHERE {WHERE}")
    };
    let total =
        conn.query_row(&count_sql, params![f.severity, f.rule, f.state, f.from_us, f.to_us, f.id], |r| r.get(0))?;
    Ok(AlertPage { alerts, total })
}

/// Names for addresses: the newest host name (DHCP, Kerberos) and logged-in user seen on each
/// address, "host · user" when both are known. Addresses without a name are left out.
pub fn names_for_ips(conn: &Connection, ips: &[String]) -> rusqlite::Result<std::collections::HashMap<String, String>> {
    let mut st = conn.prepare_cached(
        "SELECT (SELECT hostname FROM identities WHERE ip = ?1 AND hostname != '' ORDER BY last_us DESC LIMIT 1),
                (SELECT user FROM identities WHERE ip = ?1 AND user != '' AND outcome != 'failure'
                  ORDER BY last_us DESC LIMIT 1)",
    )?;
    let mut names = std::collections::HashMap::new();
    for ip in ips.iter().take(MAX_ROWS) {
        let (host, user): (Option<String>, Option<String>) = st.query_row([ip], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let name = match (host, user) {
            (Some(h), Some(u)) if !h.eq_ignore_ascii_case(&u) => format!("{h} · {u}"),
            (Some(h), _) => h,
            (None, Some(u)) => u,
            (None, None) => continue,
        };
        names.insert(ip.clone(), name);
    }
    Ok(names)
}

/// The addresses in alert keys ("postgresql 40P01 10.0.0.5:5432", "10.0.0.7"): IPv4 and IPv6,
/// without their port.
pub fn ips_in_keys<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut ips: Vec<String> = keys.flat_map(key_ips).collect();
    ips.sort_unstable();
    ips.dedup();
    ips
}

/// The addresses in one key, without ports.
pub fn key_ips(key: &str) -> Vec<String> {
    key.split([' ', ',', '>', '<', '(', ')'])
        .filter_map(|tok| {
            let tok = tok.trim_matches(|c| c == '[' || c == ']');
            if let Ok(a) = tok.parse::<std::net::IpAddr>() {
                return Some(a.to_string());
            }
            if let Ok(sa) = tok.parse::<std::net::SocketAddr>() {
                return Some(sa.ip().to_string());
            }
            // [v6]:port
            let host = tok.rsplit_once("]:").map(|(h, _)| h.trim_start_matches('['));
            host.and_then(|h| h.parse::<std::net::IpAddr>().ok()).map(|a| a.to_string())
        })
        .collect()
}

/// The rule names that have alerts (for the filter's choices).
pub fn alert_rules(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare_cached(&format!("SELECT DISTINCT rule FROM alerts ORDER BY rule LIMIT {MAX_ROWS}"))?;
    let rows = st.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Active alerts per severity.
pub fn active_alert_counts(conn: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut st = conn
        .prepare_cached("SELECT severity, count(*) FROM alerts WHERE state = 'active' GROUP BY severity ORDER BY 1")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// The evidence pcapng of an alert (the newest outbox row of the alert that has one).
pub fn alert_evidence(conn: &Connection, alert_id: i64) -> rusqlite::Result<Option<(String, Vec<u8>)>> {
    conn.query_row(
        "SELECT a.rule, o.evidence FROM outbox o JOIN alerts a ON a.id = o.alert_id
          WHERE o.alert_id = ?1 AND o.evidence IS NOT NULL ORDER BY o.id DESC LIMIT 1",
        [alert_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// A stored capture: the evidence files kept with alert mails.
#[derive(Clone, Debug, Serialize)]
pub struct Capture {
    pub alert_id: i64,
    pub rule: String,
    pub since_us: i64,
    pub bytes: i64,
}

pub fn captures(conn: &Connection) -> rusqlite::Result<Vec<Capture>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT a.id, a.rule, a.since_us, max(length(o.evidence)) FROM outbox o JOIN alerts a ON a.id = o.alert_id
          WHERE o.evidence IS NOT NULL GROUP BY a.id ORDER BY a.since_us DESC LIMIT {MAX_ROWS}"
    ))?;
    let rows = st.query_map([], |r| {
        Ok(Capture { alert_id: r.get(0)?, rule: r.get(1)?, since_us: r.get(2)?, bytes: r.get(3)? })
    })?;
    rows.collect()
}

/// An evidence window cut from the pcap ring (or waiting to be), newest first.
#[derive(Clone, Debug, Serialize)]
pub struct Window {
    pub id: i64,
    pub alert_id: i64,
    pub rule: String,
    /// The alert, and the window's bounds (packet time, µs).
    pub at_us: i64,
    pub from_us: i64,
    pub to_us: i64,
    /// pending | kept | empty | skipped | failed | evicted (deleted for newer evidence)
    pub state: String,
    /// File name under `<store dir>/evidence/`.
    pub file: Option<String>,
    pub frames: Option<i64>,
    pub bytes: Option<i64>,
    pub note: Option<String>,
}

const WINDOW_COLS: &str =
    "e.id, e.alert_id, coalesce(a.rule, ''), e.at_us, e.from_us, e.to_us, e.state, e.file, e.frames, e.bytes, e.note";

fn window_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Window> {
    Ok(Window {
        id: r.get(0)?,
        alert_id: r.get(1)?,
        rule: r.get(2)?,
        at_us: r.get(3)?,
        from_us: r.get(4)?,
        to_us: r.get(5)?,
        state: r.get(6)?,
        file: r.get(7)?,
        frames: r.get(8)?,
        bytes: r.get(9)?,
        note: r.get(10)?,
    })
}

pub fn windows(conn: &Connection) -> rusqlite::Result<Vec<Window>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {WINDOW_COLS} FROM evidence e LEFT JOIN alerts a ON a.id = e.alert_id
          ORDER BY e.id DESC LIMIT {MAX_ROWS}"
    ))?;
    let rows = st.query_map([], window_row)?;
    rows.collect()
}

/// A page of evidence windows, newest first, with how many there are and the bytes kept.
pub fn windows_page(conn: &Connection, offset: usize, limit: usize) -> rusqlite::Result<(Vec<Window>, i64, i64)> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {WINDOW_COLS} FROM evidence e LEFT JOIN alerts a ON a.id = e.alert_id
          ORDER BY e.id DESC LIMIT ?1 OFFSET ?2"
    ))?;
    let rows = st.query_map(params![limit.min(MAX_ROWS) as i64, offset as i64], window_row)?;
    let list = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let (total, kept) = conn.query_row(
        "SELECT count(*), coalesce(sum(CASE WHEN state = 'kept' THEN bytes END), 0) FROM evidence",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((list, total, kept))
}

pub fn window(conn: &Connection, id: i64) -> rusqlite::Result<Option<Window>> {
    conn.query_row(
        &format!("SELECT {WINDOW_COLS} FROM evidence e LEFT JOIN alerts a ON a.id = e.alert_id WHERE e.id = ?1"),
        [id],
        window_row,
    )
    .optional()
}

/// The evidence window of an alert (alerts close together share one).
pub fn window_of_alert(conn: &Connection, alert_id: i64) -> rusqlite::Result<Option<Window>> {
    conn.query_row(
        &format!(
            "SELECT {WINDOW_COLS} FROM alerts x JOIN evidence e ON e.id = x.evidence_id
               LEFT JOIN alerts a ON a.id = e.alert_id WHERE x.id = ?1"
        ),
        [alert_id],
        window_row,
    )
    .optional()
}

/// Forgets a window the admin deleted (its file is removed by the caller); its alerts stay.
pub fn delete_window(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    conn.execute("UPDATE alerts SET evidence_id = NULL WHERE evidence_id = ?1", [id])?;
    Ok(conn.execute("DELETE FROM evidence WHERE id = ?1", [id])? > 0)
}

/// The newest evidence blobs (for the rule preview on a live box), newest first, at most
/// `max_bytes` together.
pub fn recent_evidence(conn: &Connection, max_bytes: usize) -> rusqlite::Result<Vec<Vec<u8>>> {
    let mut st =
        conn.prepare_cached("SELECT evidence FROM outbox WHERE evidence IS NOT NULL ORDER BY id DESC LIMIT 500")?;
    let mut rows = st.query([])?;
    let (mut out, mut total) = (Vec::new(), 0usize);
    while let Some(r) = rows.next()? {
        let b: Vec<u8> = r.get(0)?;
        total += b.len();
        if total > max_bytes {
            break;
        }
        out.push(b);
    }
    Ok(out)
}

/// Marks an alert episode as acknowledged by the admin (wall-clock µs). Returns whether it
/// existed.
pub fn acknowledge(conn: &Connection, alert_id: i64, now_us: i64) -> rusqlite::Result<bool> {
    Ok(conn.execute("UPDATE alerts SET acked_us = ?2 WHERE id = ?1 AND acked_us IS NULL", params![alert_id, now_us])?
        > 0
        || conn.query_row("SELECT count(*) FROM alerts WHERE id = ?1", [alert_id], |r| r.get::<_, i64>(0))? > 0)
}

/// Store health as the dashboard shows it: failing spells and losses, newest first.
#[derive(Clone, Debug, Serialize)]
pub struct HealthEvent {
    pub ts_us: i64,
    pub kind: String,
    pub count: i64,
    pub detail: String,
}

/// The first and the last stored minute (seconds): how much history the store holds.
pub fn stored_span(conn: &Connection) -> rusqlite::Result<Option<(i64, i64)>> {
    let (from, to): (Option<i64>, Option<i64>) =
        conn.query_row("SELECT min(minute), max(minute) FROM traffic_minute", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(from.zip(to))
}

pub fn health_events(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<HealthEvent>> {
    let mut st =
        conn.prepare_cached("SELECT ts_us, kind, count, detail FROM health_events ORDER BY id DESC LIMIT ?1")?;
    let rows = st.query_map([limit.min(MAX_ROWS) as i64], |r| {
        Ok(HealthEvent { ts_us: r.get(0)?, kind: r.get(1)?, count: r.get(2)?, detail: r.get(3)? })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_fit_the_point_budget() {
        assert_eq!(Range::last(86_400 * 10, 3600).bucket(), 60);
        assert_eq!(Range::last(86_400 * 10, 86_400).bucket(), 120);
        // Beyond two days, whole hours (the hourly rollups answer).
        let week = Range::last(86_400 * 10, 7 * 86_400);
        assert_eq!(week.bucket(), 3600);
        assert!((week.to - week.from) / week.bucket() <= MAX_POINTS);
        let two_days = Range::last(86_400 * 10, 2 * 86_400);
        assert_eq!(two_days.bucket(), 240);
    }

    #[test]
    fn ranges_split_into_whole_hours_and_minute_edges() {
        assert_eq!(Range { from: 3600 + 600, to: 5 * 3600 + 120 }.hours(), (2 * 3600, 5 * 3600));
        assert_eq!(Range { from: 3600, to: 2 * 3600 }.hours(), (3600, 2 * 3600));
        // No whole hour inside: all minutes.
        assert_eq!(Range { from: 3600 + 60, to: 2 * 3600 + 60 }.hours(), (2 * 3600 + 60, 2 * 3600 + 60));
    }

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_anywhere("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}

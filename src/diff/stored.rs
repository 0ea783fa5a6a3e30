//! "Now against last week" on the box: two periods of the store, summarised from the stored
//! exchanges (`exchange_minute`, `exchange_hour`) as the same [`CaptureTx`] a capture gives, so
//! the same [`super::compare`] finds the same kinds of differences ("DNS A intranet: NOERROR last
//! week, NXDOMAIN now"). Clients are summed: a service is (protocol, server, name), as in a
//! file diff. Whole hours are read from the hourly rollups, the edges of a range from the minutes.
//!
//! What a stored period cannot give: frame numbers (the findings cite none, the ladder is not
//! drawn) and exact round-trip medians (the stored medians of each minute and client, weighted by
//! their sample counts, stand in).

use rusqlite::{params, Connection};

use crate::store::dashboard::Range;
use crate::transactions::{CaptureTx, ServiceKey};

/// Round-trip samples a stored row stands for at most (its median repeated, weighted by count).
const RTT_WEIGHT_MAX: u64 = 32;

/// The protocol names the tracker writes (the key holds a `&'static str`).
fn proto_name(p: &str) -> &'static str {
    const KNOWN: [&str; 14] = [
        "tcp", "dns", "http", "tls", "kerberos", "pop3", "imap", "smtp", "ftp", "icmp", "error", "ldap", "mysql",
        "pgsql",
    ];
    KNOWN.iter().find(|k| **k == p).copied().unwrap_or("other")
}

/// The stored exchanges of `[from, to)` (seconds) as one capture's transactions, named `label`.
pub fn period(conn: &Connection, from: i64, to: i64, label: String) -> rusqlite::Result<CaptureTx> {
    let r = Range { from, to };
    let (h0, h1) = r.hours();
    let mut st = conn.prepare_cached(
        "SELECT proto, server, name, outcome, max(good), sum(count), sum(packets), sum(retransmissions),
                sum(rtt_n), sum(rtt_p50_wsum) FROM (
            SELECT * FROM exchange_minute WHERE minute >= ?1 AND minute < ?2
            UNION ALL SELECT * FROM exchange_hour WHERE hour >= ?2 AND hour < ?3
            UNION ALL SELECT * FROM exchange_minute WHERE minute >= ?3 AND minute < ?4)
          GROUP BY proto, server, name, outcome",
    )?;
    let mut tx = CaptureTx { file: label, ..Default::default() };
    let mut rows = st.query(params![from, h0, h1, to])?;
    while let Some(row) = rows.next()? {
        let proto: String = row.get(0)?;
        let key = ServiceKey { proto: proto_name(&proto), server: row.get(1)?, name: row.get(2)?, client: None };
        let outcome: String = row.get(3)?;
        let (good, count, packets, retrans): (bool, i64, i64, i64) =
            (row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?);
        let (rtt_n, p50_wsum): (i64, i64) = (row.get(8)?, row.get(9)?);
        let s = tx.services.entry(key).or_default();
        s.packets += packets.max(0) as u64;
        s.retransmissions += retrans.max(0) as u64;
        if rtt_n > 0 {
            let median = p50_wsum / rtt_n;
            s.rtt_us.extend(std::iter::repeat_n(median, (rtt_n as u64).min(RTT_WEIGHT_MAX) as usize));
        }
        if count > 0 {
            let o = s.outcomes.entry(outcome).or_default();
            o.count += count as u64;
            o.good |= good;
        }
    }
    // The whole traffic of the period (the exchanges count only what ended in it).
    let (frames, tcp, retrans): (i64, i64, i64) = conn.query_row(
        "SELECT coalesce(sum(packets), 0), coalesce(sum(tcp_packets), 0), coalesce(sum(retransmissions), 0)
           FROM traffic_minute WHERE minute >= ?1 AND minute < ?2",
        params![from, to],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    tx.frames = frames.max(0) as u64;
    tx.tcp_packets = tcp.max(0) as u64;
    tx.tcp_retransmissions = retrans.max(0) as u64;
    Ok(tx)
}

/// "2026-11-29 14:00 – 15:00 UTC" for a report's heading.
pub fn label(store: &str, from: i64, to: i64) -> String {
    let f = crate::time::Ts(from * 1_000_000_000).rfc3339();
    let t = crate::time::Ts(to * 1_000_000_000).rfc3339();
    let short = |s: &str| s.get(..16).unwrap_or(s).replace('T', " ");
    format!("{store} {} – {} UTC", short(&f), short(&t))
}

/// A time as the command line gives it: RFC 3339 (`2026-12-06T14:00:00Z`), a UTC date and time
/// (`2026-12-06 14:00`, `2026-12-06T14:00`), a date (midnight UTC), `now`, or `now` minus a
/// duration (`-1h`, `-90m`, `-7d`), relative to `now` (seconds).
pub fn parse_time(s: &str, now: i64) -> Result<i64, String> {
    let t = s.trim();
    if t == "now" {
        return Ok(now);
    }
    if let Some(d) = t.strip_prefix('-') {
        return parse_span(d).map(|d| now - d);
    }
    let norm = t.replace(' ', "T");
    let with_secs = match norm.len() {
        10 => format!("{norm}T00:00:00Z"),
        16 => format!("{norm}:00Z"),
        19 => format!("{norm}Z"),
        _ => norm.clone(),
    };
    chrono::DateTime::parse_from_rfc3339(&with_secs)
        .map(|d| d.timestamp())
        .map_err(|_| format!("{s:?}: not a time (2026-12-06T14:00:00Z, \"2026-12-06 14:00\" UTC, now, -1h)"))
}

/// A span: `90s`, `30m`, `1h`, `7d`, `1w`.
pub fn parse_span(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = n.parse().map_err(|_| format!("{s:?}: not a span (90s, 30m, 1h, 7d, 1w)"))?;
    let mult = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{s:?}: not a span (90s, 30m, 1h, 7d, 1w)")),
    };
    n.checked_mul(mult).filter(|v| *v > 0 && *v <= 400 * 86_400).ok_or_else(|| format!("{s:?}: out of range"))
}

/// `[from, to)` in seconds.
pub type Period = (i64, i64);

/// The two periods of a stored diff: `[from, to)` now, and the normal one it is compared with —
/// `against` is either a span back (`7d`: the same period a week earlier) or the start of a
/// period of the same length. Returns ((normal from, to), (failure from, to)).
pub fn periods(from: &str, to: &str, against: &str, now: i64) -> Result<(Period, Period), String> {
    let to = parse_time(to, now)?;
    let from = parse_time(from, now)?;
    if from >= to {
        return Err(format!("--from must come before --to ({from} ≥ {to})"));
    }
    let normal_from = match parse_span(against) {
        Ok(back) => from - back,
        Err(_) => parse_time(against, now)?,
    };
    Ok(((normal_from, normal_from + (to - from)), (from, to)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_spans() {
        let now = 1_796_058_360;
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(parse_time("-1h", now), Ok(now - 3600));
        assert_eq!(parse_time("2026-12-06T14:00:00Z", now), Ok(1_796_565_600));
        assert_eq!(parse_time("2026-12-06 14:00", now), Ok(1_796_565_600));
        assert_eq!(parse_time("2026-12-06", now), Ok(1_796_515_200));
        assert!(parse_time("yesterday", now).is_err());
        assert_eq!(parse_span("1w"), Ok(604_800));
        assert!(parse_span("0h").is_err());
        assert!(parse_span("99999999999999d").is_err());
        let ((nf, nt), (ff, ft)) = periods("-1h", "now", "7d", now).unwrap();
        assert_eq!((ft - ff, nt - nf, ff - nf), (3600, 3600, 604_800));
        let ((nf, _), _) = periods("2026-12-06 14:00", "2026-12-06 15:00", "2026-12-05 09:00", now).unwrap();
        assert_eq!(nf, 1_796_565_600 - 86_400 - 5 * 3600);
        assert!(periods("now", "-1h", "7d", now).is_err());
    }
}

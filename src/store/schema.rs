//! Schema migrations, versioned by `PRAGMA user_version`. Each entry upgrades from the version
//! equal to its index; entries are never edited once released, only appended.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: traffic per minute, TCP analysis per host pair per minute, finished flows.
    "CREATE TABLE traffic_minute (
        minute INTEGER PRIMARY KEY,          -- start of the minute, seconds since the epoch (UTC)
        packets INTEGER NOT NULL, bytes INTEGER NOT NULL,
        tcp_packets INTEGER NOT NULL, udp_packets INTEGER NOT NULL, other_packets INTEGER NOT NULL,
        truncated INTEGER NOT NULL, decode_errors INTEGER NOT NULL, drops INTEGER NOT NULL,
        retransmissions INTEGER NOT NULL, fast_retransmissions INTEGER NOT NULL,
        spurious_retransmissions INTEGER NOT NULL, duplicate_acks INTEGER NOT NULL,
        out_of_order INTEGER NOT NULL, lost_segments INTEGER NOT NULL, zero_windows INTEGER NOT NULL,
        private_retransmissions INTEGER NOT NULL
    );
    CREATE TABLE tcp_pair_minute (
        minute INTEGER NOT NULL, src TEXT NOT NULL, dst TEXT NOT NULL,  -- sender -> receiver
        packets INTEGER NOT NULL, bytes INTEGER NOT NULL,
        retransmissions INTEGER NOT NULL, fast_retransmissions INTEGER NOT NULL,
        spurious_retransmissions INTEGER NOT NULL, duplicate_acks INTEGER NOT NULL,
        out_of_order INTEGER NOT NULL, lost_segments INTEGER NOT NULL, zero_windows INTEGER NOT NULL,
        PRIMARY KEY (minute, src, dst)
    ) WITHOUT ROWID;
    CREATE TABLE flows (
        id INTEGER PRIMARY KEY,
        proto INTEGER NOT NULL, stream INTEGER NOT NULL,
        a_ip TEXT NOT NULL, a_port INTEGER NOT NULL, b_ip TEXT NOT NULL, b_port INTEGER NOT NULL,
        a_mac TEXT, b_mac TEXT,
        first_us INTEGER NOT NULL, last_us INTEGER NOT NULL,  -- microseconds since the epoch
        packets_ab INTEGER NOT NULL, packets_ba INTEGER NOT NULL,
        bytes_ab INTEGER NOT NULL, bytes_ba INTEGER NOT NULL,
        retransmissions INTEGER NOT NULL, fast_retransmissions INTEGER NOT NULL,
        spurious_retransmissions INTEGER NOT NULL, duplicate_acks INTEGER NOT NULL,
        out_of_order INTEGER NOT NULL, lost_segments INTEGER NOT NULL, zero_windows INTEGER NOT NULL,
        end_reason TEXT NOT NULL,            -- closed | idle | evicted | reused | capture_end
        client TEXT                          -- 'a' or 'b': which end sent the first SYN
    );
    CREATE INDEX flows_last ON flows(last_us);
    CREATE INDEX flows_retrans ON flows(retransmissions) WHERE retransmissions > 0;",
    // 2: rule counters per minute; key '' is the counter's total, 'other' the groups beyond the top.
    "CREATE TABLE counter_minute (
        minute INTEGER NOT NULL, counter TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL,
        PRIMARY KEY (counter, minute, key)
    ) WITHOUT ROWID;
    CREATE INDEX counter_minute_time ON counter_minute(minute);",
    // 3: identity bindings ('' for an absent value, so the key is unique).
    "CREATE TABLE identities (
        mac TEXT NOT NULL, ip TEXT NOT NULL, user TEXT NOT NULL, realm TEXT NOT NULL,
        hostname TEXT NOT NULL, source TEXT NOT NULL, outcome TEXT NOT NULL,
        error TEXT NOT NULL,                 -- why a failure failed, e.g. KDC_ERR_PREAUTH_FAILED (24)
        first_us INTEGER NOT NULL, last_us INTEGER NOT NULL, count INTEGER NOT NULL,
        PRIMARY KEY (mac, ip, user, realm, hostname, source, outcome, error)
    ) WITHOUT ROWID;
    CREATE INDEX identities_user ON identities(user);
    CREATE INDEX identities_last ON identities(last_us);",
    // 4: traffic per logged-in user and minute (bytes_in = to the user's address).
    "CREATE TABLE user_volume_minute (
        minute INTEGER NOT NULL, user TEXT NOT NULL,
        bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL, packets INTEGER NOT NULL,
        PRIMARY KEY (minute, user)
    ) WITHOUT ROWID;",
    // 5: identity events (identity.new, identity.shared_mac) for the dashboard and the alerts.
    "CREATE TABLE identity_events (
        id INTEGER PRIMARY KEY, ts TEXT NOT NULL, kind TEXT NOT NULL, mac TEXT NOT NULL, ip TEXT,
        users TEXT NOT NULL,                 -- JSON array, oldest first
        hostname TEXT, frame INTEGER NOT NULL
    );
    CREATE INDEX identity_events_ts ON identity_events(ts);",
    // 6: application errors: examples (bounded per kind and minute) and full counts per minute.
    "CREATE TABLE app_errors (
        id INTEGER PRIMARY KEY, ts_us INTEGER NOT NULL, frame INTEGER NOT NULL,
        family TEXT NOT NULL, code TEXT NOT NULL, message TEXT NOT NULL, detail TEXT,
        client_ip TEXT, client_port INTEGER, server_ip TEXT, server_port INTEGER,
        client_mac TEXT, stream INTEGER
    );
    CREATE INDEX app_errors_ts ON app_errors(ts_us);
    CREATE TABLE app_error_minute (
        minute INTEGER NOT NULL, family TEXT NOT NULL, code TEXT NOT NULL, server TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (minute, family, code, server)
    ) WITHOUT ROWID;",
    // 7: alert episodes, and the outbox the mailer drains (wall-clock times: it is about mail).
    "CREATE TABLE alerts (
        id INTEGER PRIMARY KEY, rule TEXT NOT NULL, key TEXT NOT NULL, severity TEXT NOT NULL,
        since_us INTEGER NOT NULL, state TEXT NOT NULL,   -- active | cleared
        cleared_us INTEGER, summary TEXT NOT NULL, count INTEGER NOT NULL,
        value INTEGER, baseline REAL, threshold REAL,
        mail INTEGER NOT NULL, suppressed INTEGER NOT NULL, context TEXT NOT NULL
    );
    CREATE UNIQUE INDEX alerts_episode ON alerts(rule, key, since_us);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY, created_us INTEGER NOT NULL,
        kind TEXT NOT NULL,                     -- alert | digest | daily | disk
        alert_id INTEGER, payload TEXT NOT NULL, evidence BLOB,
        state TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed
        attempts INTEGER NOT NULL DEFAULT 0, next_try_us INTEGER NOT NULL,
        last_error TEXT, sent_us INTEGER
    );
    CREATE INDEX outbox_pending ON outbox(state, next_try_us);",
    // 8: the box's own health: store failures and recoveries, events it had to drop, packet
    // timestamps it did not trust (time jumps). Wall-clock times.
    "CREATE TABLE health_events (
        id INTEGER PRIMARY KEY, ts_us INTEGER NOT NULL,
        kind TEXT NOT NULL,                  -- store.failing | store.recovered | store.lost | time.jump
        count INTEGER NOT NULL, detail TEXT NOT NULL
    );
    CREATE INDEX health_events_ts ON health_events(ts_us);
    -- frames stamped beyond the wall clock, counted at the last trusted minute instead
    ALTER TABLE traffic_minute ADD COLUMN time_jumps INTEGER NOT NULL DEFAULT 0;",
    // 9: the admin acknowledges an alert episode on the dashboard (wall-clock µs); the lookup
    // of an alert's evidence goes by alert.
    "ALTER TABLE alerts ADD COLUMN acked_us INTEGER;
    CREATE INDEX outbox_alert ON outbox(alert_id) WHERE alert_id IS NOT NULL;",
    // 10: the dashboard's questions by series. A counter's total over a range reads only that
    // series' rows (covering index). Host pairs are summed per hour as well: the retransmissions
    // page sums a day or a week of pairs and each pair's own 7-day baseline from 60 times fewer
    // rows (on a week of a busy branch: 0.9 s before, see benches/web_pages.sh).
    "CREATE INDEX counter_minute_series ON counter_minute(counter, key, minute, value);
    CREATE TABLE tcp_pair_hour (
        hour INTEGER NOT NULL, src TEXT NOT NULL, dst TEXT NOT NULL,   -- start of the hour, seconds
        packets INTEGER NOT NULL, bytes INTEGER NOT NULL,
        retransmissions INTEGER NOT NULL, fast_retransmissions INTEGER NOT NULL,
        spurious_retransmissions INTEGER NOT NULL, duplicate_acks INTEGER NOT NULL,
        out_of_order INTEGER NOT NULL, lost_segments INTEGER NOT NULL, zero_windows INTEGER NOT NULL,
        PRIMARY KEY (hour, src, dst)
    ) WITHOUT ROWID;
    CREATE INDEX tcp_pair_hour_series ON tcp_pair_hour(src, dst, hour);
    INSERT INTO tcp_pair_hour
        SELECT (minute / 3600) * 3600, src, dst, sum(packets), sum(bytes), sum(retransmissions),
               sum(fast_retransmissions), sum(spurious_retransmissions), sum(duplicate_acks),
               sum(out_of_order), sum(lost_segments), sum(zero_windows)
          FROM tcp_pair_minute GROUP BY 1, 2, 3;",
    // 11: of the frames the capture lost (`drops`), those the interface or its driver lost; the
    // rest the kernel's capture buffer lost (the box did not read fast enough).
    "ALTER TABLE traffic_minute ADD COLUMN if_drops INTEGER NOT NULL DEFAULT 0;",
    // 12: evidence windows cut from the pcap ring around alerts (packet-time µs; the file is
    // under <store dir>/evidence/). Written with the alert, so a window pending at a crash is
    // still cut after the restart. Alerts close together share a window.
    "CREATE TABLE evidence (
        id INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL,
        from_us INTEGER NOT NULL, to_us INTEGER NOT NULL, at_us INTEGER NOT NULL,
        created_us INTEGER NOT NULL,            -- wall clock
        state TEXT NOT NULL,                    -- pending | kept | empty | skipped | failed
        file TEXT, frames INTEGER, bytes INTEGER, note TEXT, cut_us INTEGER
    );
    CREATE INDEX evidence_pending ON evidence(state) WHERE state = 'pending';
    ALTER TABLE alerts ADD COLUMN evidence_id INTEGER;",
    // 13: frames analysed but left out of the pcap ring, per minute (userland drops: the
    // capture has them, the disk did not take them).
    "ALTER TABLE traffic_minute ADD COLUMN ring_drops INTEGER NOT NULL DEFAULT 0;",
    // 14: host and user names looked up by address (the overview and alerts name the hosts
    // their keys carry).
    "CREATE INDEX identities_ip ON identities(ip, last_us);",
    // 15: a store for 30 days. Flows are kept in full only when an admin looks at them one by
    // one (trouble, resets, logins, errors, unanswered, long or large: `pipeline::kept_in_full`);
    // the rest live on as exchanges — how exchanges between a client and a service ended,
    // counted per minute and per hour (`transactions::exchange_rows`). Round-trip quantiles are
    // sums weighted by their sample counts (divide by rtt_n). Counters get hourly rollups, so a
    // week's page reads 168 rows a series instead of 10,080.
    "CREATE TABLE exchange_minute (
        minute INTEGER NOT NULL,
        proto TEXT NOT NULL, server TEXT NOT NULL, name TEXT NOT NULL, outcome TEXT NOT NULL,
        client TEXT NOT NULL,                -- '' for rows folded over clients
        good INTEGER NOT NULL,
        count INTEGER NOT NULL, bytes INTEGER NOT NULL, packets INTEGER NOT NULL,
        retransmissions INTEGER NOT NULL,
        rtt_n INTEGER NOT NULL, rtt_p50_wsum INTEGER NOT NULL, rtt_p90_wsum INTEGER NOT NULL,
        rtt_max_us INTEGER NOT NULL,
        PRIMARY KEY (minute, proto, server, name, outcome, client)
    ) WITHOUT ROWID;
    CREATE TABLE exchange_hour (
        hour INTEGER NOT NULL,
        proto TEXT NOT NULL, server TEXT NOT NULL, name TEXT NOT NULL, outcome TEXT NOT NULL,
        client TEXT NOT NULL,
        good INTEGER NOT NULL,
        count INTEGER NOT NULL, bytes INTEGER NOT NULL, packets INTEGER NOT NULL,
        retransmissions INTEGER NOT NULL,
        rtt_n INTEGER NOT NULL, rtt_p50_wsum INTEGER NOT NULL, rtt_p90_wsum INTEGER NOT NULL,
        rtt_max_us INTEGER NOT NULL,
        PRIMARY KEY (hour, proto, server, name, outcome, client)
    ) WITHOUT ROWID;
    CREATE TABLE counter_hour (
        hour INTEGER NOT NULL, counter TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL,
        PRIMARY KEY (counter, hour, key)
    ) WITHOUT ROWID;
    CREATE INDEX counter_hour_series ON counter_hour(counter, key, hour, value);
    INSERT INTO counter_hour (counter, hour, key, value)
        SELECT counter, (minute / 3600) * 3600, key, sum(value) FROM counter_minute GROUP BY 1, 2, 3;",
];

/// Current schema version.
pub fn version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Applies the migrations the database has not seen yet, each in its own transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > version() {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "database schema version {current} is newer than this program's ({})",
            version()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

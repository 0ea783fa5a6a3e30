#!/usr/bin/env python3
"""Fills a mirrorwatch database (schema already created) with a week of a busy branch office:
every minute of traffic, 30 host pairs with TCP analysis events per minute (one of them a bad
cable: 4 % retransmitted in the last day), 12 rule counters (6 grouped, 10 groups each), 60
users' volume, database and HTTP errors, 500 identity bindings, 200 alert episodes.
benches/web_pages.sh times the dashboard's pages on it."""
import json, random, sqlite3, sys

db, end = sys.argv[1], int(sys.argv[2])          # end: start of the newest minute (seconds)
random.seed(7)
c = sqlite3.connect(db)
c.execute("PRAGMA journal_mode=WAL")
week = 7 * 1440
minutes = [end - 60 * i for i in range(week)][::-1]
pairs = [(f"10.1.{i // 10}.{i % 10 + 10}", f"10.1.9.{i + 1}") for i in range(30)]
counters = ["lan-retransmissions", "tcp-resets", "syn-without-answer", "zero-windows", "dns-failures", "http-5xx",
            "app-errors", "arp-per-mac", "broadcasts-per-mac", "bytes-per-client-mac", "lost-segments", "icmp-unreachable"]
users = [f"user{i:02d}" for i in range(60)]
with c:
    # (Columns added by later migrations keep their defaults.)
    c.executemany("INSERT OR REPLACE INTO traffic_minute (minute, packets, bytes, tcp_packets, udp_packets, other_packets, truncated, decode_errors, drops, retransmissions, fast_retransmissions, spurious_retransmissions, duplicate_acks, out_of_order, lost_segments, zero_windows, private_retransmissions, time_jumps) VALUES (?,?,?,?,?,?,0,0,0,?,?,0,?,?,?,0,?,0)", (
        (m, p, p * 700, p * 8 // 10, p // 10, p // 10, p // 100, p // 400, p // 50, p // 300, p // 200, p // 120)
        for m in minutes for p in [random.randint(20000, 60000)]))
    rows = []
    for m in minutes:
        for i, (s, d) in enumerate(pairs):
            p = random.randint(200, 3000)
            bad = i == 0 and m > end - 86400
            r = int(p * (0.04 if bad else random.uniform(0, 0.003)))
            rows.append((m, s, d, p, p * 900, r, r // 5, 0, r // 2, r // 4, r // 3, 0))
    c.executemany("INSERT OR REPLACE INTO tcp_pair_minute VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    rows = []
    for m in minutes:
        for k, name in enumerate(counters):
            total = random.randint(0, 500)
            rows.append((m, name, "", total))
            if k % 2 == 0:
                for g in range(10):
                    rows.append((m, name, f"10.1.{g}.{k} -> 10.1.9.{g}", total // (g + 2)))
    # The store writes every pair's deltas into its hour as well.
    c.execute("""INSERT INTO tcp_pair_hour SELECT (minute / 3600) * 3600, src, dst, sum(packets), sum(bytes),
                 sum(retransmissions), sum(fast_retransmissions), sum(spurious_retransmissions), sum(duplicate_acks),
                 sum(out_of_order), sum(lost_segments), sum(zero_windows) FROM tcp_pair_minute GROUP BY 1, 2, 3""")
    c.executemany("INSERT OR REPLACE INTO counter_minute VALUES (?,?,?,?)", rows)
    # ...and every counter delta into its hour (the 7-day counter page reads hours).
    c.execute("""INSERT OR REPLACE INTO counter_hour (counter, hour, key, value)
                 SELECT counter, (minute / 3600) * 3600, key, sum(value) FROM counter_minute GROUP BY 1, 2, 3""")
    c.executemany("INSERT OR REPLACE INTO user_volume_minute VALUES (?,?,?,?,?)", (
        (m, u, random.randint(1000, 10**7), random.randint(1000, 10**6), random.randint(10, 9000))
        for m in minutes for u in random.sample(users, 20)))
    errs = [("postgresql", "40P01"), ("mysql", "1213"), ("http", "502"), ("tds", "1205"), ("oracle", "ORA-00060")]
    c.executemany("INSERT OR REPLACE INTO app_error_minute VALUES (?,?,?,?,?)", (
        (m, f, code, "10.1.9.5:5432", random.randint(1, 5)) for m in minutes[::5] for f, code in random.sample(errs, 2)))
    c.executemany("INSERT INTO app_errors (ts_us, frame, family, code, message, client_ip, client_port, server_ip, server_port) VALUES (?,?,?,?,?,?,?,?,?)", (
        (m * 1_000_000, i, f, code, f"{f} error {code}: deadlock detected while waiting for resource", "10.1.0.7", 40000, "10.1.9.5", 5432)
        for i, m in enumerate(minutes[::2]) for f, code in [random.choice(errs)]))
    c.executemany("INSERT OR REPLACE INTO identities VALUES (?,?,?,?,?,?,?,?,?,?,?)", (
        (f"02:00:00:00:{i // 256:02x}:{i % 256:02x}", f"10.1.{i // 250}.{i % 250}", random.choice(users), "BRANCH.LAN",
         "", random.choice(["kerberos", "imap", "pop3", "http-basic"]), random.choice(["success", "failure"]), "",
         (end - 600000 + i) * 1_000_000, (end - i) * 1_000_000, random.randint(1, 100)) for i in range(500)))
    c.executemany("INSERT INTO identity_events (ts, kind, mac, ip, users, hostname, frame) VALUES (?,?,?,?,?,?,?)", (
        ("2026-11-30T08:00:00Z", "identity.shared_mac", f"02:00:00:00:00:{i:02x}", "10.1.0.9", json.dumps(random.sample(users, 3)), None, i)
        for i in range(100)))
    c.executemany("INSERT OR IGNORE INTO alerts (rule, key, severity, since_us, state, summary, count, mail, suppressed, context) VALUES (?,?,?,?,?,?,?,?,?,?)", (
        (random.choice(["db-deadlock", "http-5xx-burst", "lan-retransmissions-rising"]), f"key{i}",
         random.choice(["warning", "critical", "info"]), (end - i * 3000) * 1_000_000, "active" if i < 10 else "cleared",
         f"summary {i}", random.randint(1, 50), 1, 0, "{}") for i in range(200)))
print(sum(r[0] for r in c.execute("SELECT count(*) FROM tcp_pair_minute UNION ALL SELECT count(*) FROM counter_minute UNION ALL SELECT count(*) FROM user_volume_minute")), "rows")

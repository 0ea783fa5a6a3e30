#!/usr/bin/env bash
# Installs what is needed, builds mirrorwatch and runs it on bundled lab captures (HTTP
# downloads through a lossy link, DNS, logins, database deadlocks, nginx 5xx) with the shipped
# rules, writing demo.db and printing what it found.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked
db=${MIRRORWATCH_DEMO_DB:-demo.db}
rm -f "$db" "$db-wal" "$db-shm"
./target/release/mirrorwatch analyze tests/data/lab/lab-http-bulk-loss2.pcap tests/data/lab/lab-http-short-loss8.pcap \
    tests/data/lab/lab-dns-dnsmasq.pcap tests/data/lab/lab-mail-dovecot.pcap tests/data/lab/lab-kerberos-kdc.pcap \
    tests/data/lab/lab-nat-two-users-basic.pcap tests/data/lab/lab-pgsql-errors.pcap \
    tests/data/lab/lab-mariadb-errors.pcap tests/data/lab/lab-http-nginx-5xx.pcap --rules rules --db "$db"
echo
echo "Retransmissions per host pair and minute, from $db:"
sqlite3 -header -column "$db" \
  "SELECT datetime(minute, 'unixepoch') AS minute, src, dst, packets, retransmissions, fast_retransmissions AS fast
     FROM tcp_pair_minute ORDER BY retransmissions DESC LIMIT 10"
echo
echo "Who logged in from where, from $db:"
sqlite3 -header -column "$db" \
  "SELECT source, user, hostname, realm, mac, ip, outcome, error, count FROM identities ORDER BY first_us"
echo
echo "Application errors on the wire, from $db:"
sqlite3 -header -column "$db" \
  "SELECT family, code, substr(message, 1, 60) AS message, client_ip, server_ip || ':' || server_port AS server, frame
     FROM app_errors ORDER BY ts_us"
echo
echo "Alerts (mail queued in the outbox when [mail] is configured for the daemon), from $db:"
sqlite3 -header -column "$db" \
  "SELECT rule, severity, state, substr(summary, 1, 70) AS summary, mail FROM alerts ORDER BY since_us"

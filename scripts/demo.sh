#!/usr/bin/env bash
# Installs what is needed, builds mirrorwatch and runs it on bundled lab captures (HTTP
# downloads through a lossy link, DNS, logins, database deadlocks, nginx 5xx) with the shipped
# rules, writing demo.db and printing what it found. On a terminal it then serves the
# dashboard on the same captures (http://127.0.0.1:8080/, MIRRORWATCH_DEMO_LISTEN to change)
# with a fresh random password it prints, until Ctrl-C; elsewhere it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked
db=${MIRRORWATCH_DEMO_DB:-demo.db}
rm -f "$db" "$db-wal" "$db-shm"
lab=tests/data/lab
files=("$lab/lab-http-bulk-loss2.pcap" "$lab/lab-http-short-loss8.pcap" "$lab/lab-dns-dnsmasq.pcap"
       "$lab/lab-mail-dovecot.pcap" "$lab/lab-kerberos-kdc.pcap" "$lab/lab-nat-two-users-basic.pcap"
       "$lab/lab-pgsql-errors.pcap" "$lab/lab-mariadb-errors.pcap" "$lab/lab-http-nginx-5xx.pcap")
./target/release/mirrorwatch analyze "${files[@]}" --rules rules --db "$db"
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

if [ -t 1 ] && [ -t 0 ]; then
    # The dashboard: its own config, a copy of the rules to edit, a password nobody else knows.
    mkdir -p demo
    [ -d demo/rules ] || cp -r rules demo/rules
    printf '[web]\npassword_file = "%s/demo/dashboard.passwd"\nmetrics_token_file = "%s/demo/metrics.token"\n' \
        "$PWD" "$PWD" > demo/mirrorwatch.toml
    password=$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 12)
    printf '%s\n' "$password" | ./target/release/mirrorwatch passwd --config demo/mirrorwatch.toml --password-stdin >/dev/null
    echo
    echo "Dashboard password: $password   (log in at the address below; Ctrl-C stops)"
    exec ./target/release/mirrorwatch analyze "${files[@]}" --rules demo/rules --config demo/mirrorwatch.toml \
        --serve "${MIRRORWATCH_DEMO_LISTEN:-127.0.0.1:8080}" >/dev/null
fi

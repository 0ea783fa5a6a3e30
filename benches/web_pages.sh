#!/usr/bin/env bash
# How long each dashboard page and API route takes on a week of a busy branch's data
# (benches/week_db.py: ~1.5 M rows), served by `analyze --serve` on that database: the median
# of 5 requests per URL, in milliseconds, over keep-alive. A Pi 3 is roughly 5-8x slower than a
# laptop core; the target is well under a second there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --quiet --bin mirrorwatch
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
db=$work/week.db
# The schema, then the week.
target/release/mirrorwatch analyze tests/data/lab/lab-dns-dnsmasq.pcap --db "$db" >/dev/null
end=$(( $(date +%s) / 60 * 60 - 60 ))
python3 benches/week_db.py "$db" "$end"
printf '[web]\npassword_file = "%s/pw"\nmetrics_token_file = "%s/token"\n' "$work" "$work" > "$work/mw.toml"
echo bench-token > "$work/token"
echo bench-password | target/release/mirrorwatch passwd --config "$work/mw.toml" --password-stdin >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cp -r rules "$work/rules"
# --serve re-analyses the small file into the same database: the week stays.
target/release/mirrorwatch analyze tests/data/lab/lab-dns-dnsmasq.pcap --db "$db" --rules "$work/rules" \
    --config "$work/mw.toml" --serve "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
python3 - "$port" <<'PY'
import http.client, statistics, sys, time, urllib.parse
port = int(sys.argv[1])
for _ in range(100):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", "/login", urllib.parse.urlencode({"password": "bench-password"}), {"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse(); r.read(); cookie = r.getheader("Set-Cookie").split(";")[0]; break
    except (OSError, AttributeError):
        time.sleep(0.2)
urls = []
for r in ["1h", "24h", "7d"]:
    urls += [f"/?range={r}", f"/counters?range={r}", f"/counters/lan-retransmissions?range={r}",
             f"/retransmissions?range={r}", f"/retransmissions/pair?src=10.1.0.10&dst=10.1.9.1&range={r}",
             f"/errors?range={r}"]
urls += ["/identities", "/identities?q=user1", "/identities/mac/02:00:00:00:00:05", "/alerts", "/rules",
         "/api/status", "/api/counters?range=7d", "/api/counters/lan-retransmissions?range=7d",
         "/api/retransmissions?range=7d", "/api/app-errors?range=7d", "/api/identities?q=10.1", "/api/alerts", "/metrics"]
print(f"{'url':62} {'ms':>8} {'bytes':>9}")
worst = 0
for u in urls:
    times = []
    for _ in range(5):
        h = {"Cookie": cookie}
        if u == "/metrics": h["Authorization"] = "Bearer bench-token"
        t = time.perf_counter(); c.request("GET", u, headers=h); r = c.getresponse(); body = r.read()
        times.append((time.perf_counter() - t) * 1000)
        assert r.status == 200, (u, r.status, body[:200])
    m = statistics.median(times); worst = max(worst, m)
    print(f"{u:62} {m:8.1f} {len(body):9}")
print(f"slowest median: {worst:.1f} ms")
PY

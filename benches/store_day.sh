#!/usr/bin/env bash
# The store a busy branch makes in a day: the full-frame trace of benches/throughput.sh
# (target/bench/full-2m.pcap: 2 M frames, 500 s, 120 k flows) replayed every EVERY seconds
# for a day (examples/timeshift.rs streams the shifted copies through a FIFO: no file of that
# size), analysed with the shipped rules into a fresh store; then its size, the rows of each
# table and the share of each, and what 30 days come to against the 4 GiB budget.
#
#   benches/store_day.sh [TRACE] [EVERY_SECS=1800] [COPIES=48]
#
# Default: 48 copies every 30 minutes (the trace's 500 s busy, then quiet), about 96 M frames
# and 5.7 M flows in the simulated day.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
trace=${1:-$root/target/bench/full-2m.pcap}
every=${2:-1800}
copies=${3:-48}
[ -f "$trace" ] || { echo "no trace: run TRACE_ONLY=1 benches/throughput.sh first" >&2; exit 1; }
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin mirrorwatch --example timeshift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkfifo "$work/day.pcap"
"$root/target/release/examples/timeshift" "$trace" "$copies" "$every" > "$work/day.pcap" &
/usr/bin/time -f '%U %S %M' -o "$work/time" \
    "$root/target/release/mirrorwatch" analyze "$work/day.pcap" --rules "$root/rules" --db "$work/day.db" --json \
    > "$work/day.json"
wait
read -r user sys rss < "$work/time"
db=$work/day.db
python3 - "$db" "$work/day.json" "$user" "$sys" "$rss" "$copies" "$every" <<'PY'
import json, os, sqlite3, sys
db, js, user, sys_, rss, copies, every = sys.argv[1:]
v = json.load(open(js))
c = sqlite3.connect(db)
size = os.path.getsize(db)
span = int(copies) * int(every)
print(f"simulated {span / 3600:.1f} h: {v['packets']:,} frames, {v['flows']:,} flows, "
      f"{float(user) + float(sys_):.0f} CPU-s, peak RSS {int(rss) / 1024:.1f} MiB")
print(f"store: {size / 2**20:.1f} MiB ({size / v['flows']:.1f} bytes a flow); "
      f"30 days: {size * 30 * 86400 / span / 2**30:.2f} GiB")
rows = {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t, in
        c.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
pages = dict(c.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
for t, n in sorted(rows.items(), key=lambda x: -pages.get(x[0], 0)):
    if pages.get(t, 0) >= 65536:
        print(f"  {t:20} {n:>10,} rows {pages[t] / 2**20:8.2f} MiB")
PY

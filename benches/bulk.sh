#!/usr/bin/env bash
# What one big plaintext transfer costs the pipeline: a 100 MB text file (log-like lines, the
# kind the error analyzers read) downloaded over plain HTTP in network namespaces, captured with
# full frames, then instructions per packet of `analyze --rules rules --db` on it next to the
# mixed trace's (benches/throughput.sh), both on 200,000 frames. A bulk flow lowers the
# throughput of a mix by as much as its frames cost more than the mix's average.
#
#   benches/bulk.sh          (root; nginx-light, curl, tcpdump, valgrind)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bulk=$root/target/bench/bulk-text.pcap
mix=$root/target/bench/full-2m.pcap
P=mwbulk
if [ ! -f "$bulk" ]; then
    . "$root/tests/lab/netns.sh"
    work=$(mktemp -d)
    trap 'lab_down $P; rm -rf "$work"' EXIT
    mkdir -p "$work/www"; chmod 755 "$work" "$work/www"
    python3 - "$work/www/app.log" <<'PY'
import sys
line = b"2026-12-06 14:00:00,123 INFO  [worker-7] order 1234567 committed in 12 ms for branch 42 (user alice)\n"
with open(sys.argv[1], "wb") as f:
    for _ in range(100_000_000 // len(line)):
        f.write(line)
PY
    cat > "$work/nginx.conf" <<NGINX
worker_processes 1; pid $work/nginx.pid; error_log $work/error.log; daemon off;
events { worker_connections 64; }
http { access_log off; default_type text/plain; server { listen 80; root $work/www; } }
NGINX
    lab_up $P
    ip netns exec $P-srv nginx -c "$work/nginx.conf" &
    sleep 1
    ip netns exec $P-rtr tcpdump -q -s 1600 -B 65536 -i $P-r0 -w "$work/bulk.pcap" 2>/dev/null &
    td=$!
    sleep 1
    ip netns exec $P-cli curl -s -m 120 -o /dev/null http://10.77.2.20/app.log
    sleep 1
    kill "$td"; wait "$td" 2>/dev/null || true
    mkdir -p "$(dirname "$bulk")"
    editcap -F pcap "$work/bulk.pcap" "$bulk"
fi
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin mirrorwatch
bin=$root/target/release/mirrorwatch
ipp() { # pcap
    local slice db out
    slice=$(mktemp --suffix=.pcap); db=$(mktemp -u --suffix=.db); out=$(mktemp)
    editcap -r "$1" "$slice" 1-200000
    local n; n=$(capinfos -c -M "$slice" | awk '/Number of packets/ {print $4}')
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
        "$bin" analyze "$slice" --json --rules "$root/rules" --db "$db" >/dev/null 2>"$out" || true
    sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$out" | tr -d , | awk -v n="$n" '{ printf "%.0f", $1 / n }'
    rm -f "$slice" "$db" "$db-wal" "$db-shm" "$out"
}
b=$(ipp "$bulk"); m=$(ipp "$mix")
echo "bulk: $(capinfos -c -M "$bulk" | awk '/Number of packets/ {print $4}') frames of one 100 MB plaintext download"
echo "instructions per packet: plaintext bulk $b, mixed trace $m ($(awk -v b="$b" -v m="$m" 'BEGIN { printf "%+.0f %%", (b / m - 1) * 100 }') per frame)"

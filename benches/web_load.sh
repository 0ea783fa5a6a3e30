#!/usr/bin/env bash
# The dashboard under load while the store writes at full speed: `mirrorwatch run --replay` of
# the flood bench's normal capture (600,000 full-size frames, shipped rules), once alone, once
# with 50 concurrent API clients (benches/web_load.py) and once under attack from the LAN
# (benches/web_attack.py: 1,500 half-sent requests held, wrong passwords from 60 addresses, 20
# API readers). Reports the replay's packets per CPU-second of the capture thread and its wall
# time in each case, the clients' p50/p99 latency, and checks that nothing was lost: every
# frame is in traffic_minute, no "database is locked", no store failure.
#
#   benches/web_load.sh [CONNECTIONS]      (default 300000, 6 frames each: 1.8 M frames, 2.6 GB)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-300000}
cd "$root"
cargo build --release --quiet --bin mirrorwatch --example flood
cap=$root/target/bench/web-load-$n/normal.pcap
[ -f "$cap" ] || target/release/examples/flood "$(dirname "$cap")" "$n"
rm -f "$(dirname "$cap")/flood.pcap"
frames=$(target/release/mirrorwatch analyze "$cap" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["packets"])')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
password=load-test-password
printf '[web]\npassword_file = "%s/pw"\nmetrics_token_file = "%s/token"\n[store]\ndir = "%s"\n' "$work" "$work" "$work" > "$work/mw.toml"
echo token-for-load > "$work/token"
echo "$password" | target/release/mirrorwatch passwd --config "$work/mw.toml" --password-stdin >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cpu_of() { # pid tid -> utime+stime seconds
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/task/$2/stat"
}

run() { # label readers(0/1)
    local label=$1 readers=$2 db=$work/$1.db log=$work/$1.log
    rm -f "$db"* "$work/stop"
    local t0; t0=$(date +%s.%N)
    target/release/mirrorwatch run --config "$work/mw.toml" --replay "$cap" --db "$db" --rules rules \
        --listen "127.0.0.1:$port" 2> "$log" &
    local pid=$!
    local client=""
    if [ "$readers" = 1 ]; then
        TOKEN_FILE=$work/token python3 benches/web_load.py 127.0.0.1 "$port" "$password" "$work/stop" > "$work/$label.json" &
        client=$!
    elif [ "$readers" = 2 ]; then
        python3 benches/web_attack.py 127.0.0.1 "$port" "$password" "$work/stop" > "$work/$label.json" &
        client=$!
    fi
    until grep -q "replayed .* frames" "$log"; do
        kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
        sleep 0.05
    done
    local t1; t1=$(date +%s.%N)
    local cpu; cpu=$(cpu_of "$pid" "$pid")
    touch "$work/stop"
    [ -n "$client" ] && wait "$client"
    kill -TERM "$pid"; wait "$pid" || true
    local stored; stored=$(sqlite3 "$db" 'select sum(packets) from traffic_minute')
    local locked; locked=$(grep -c "database is locked" "$log" || true)
    local lost; lost=$(sqlite3 "$db" "select coalesce(sum(count),0) from health_events where kind in ('store.lost','store.failing')")
    awk -v l="$label" -v f="$frames" -v c="$cpu" -v w="$(echo "$t1 - $t0" | bc)" -v s="$stored" -v k="$locked" -v x="$lost" \
        'BEGIN { printf "%-14s %8d frames  %6.2f CPU-s capture thread  %9.0f packets/CPU-s  %6.2f s wall  stored %d  locked %d  store failures %d\n", l, f, c, f / c, w, s, k, x }'
    [ "$readers" != 0 ] && echo "    clients: $(cat "$work/$label.json")"
    return 0
}
run alone 0
run with-readers 1
run under-attack 2

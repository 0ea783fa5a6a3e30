#!/usr/bin/env bash
# What the fleet export costs capture, and that a stalled collector costs it nothing: the
# daemon replays the same full-frame trace (`run --replay`, store, rules) four times —
#   none      no [export]
#   jsonl     every event type to a JSON lines file
#   stalled   JSON lines and syslog to a collector that accepts the connection and never reads
#             (its socket buffers fill, every write waits out its timeout), a syslog backlog of
#             100 events so it overflows
#   hung      the same to a collector that never accepts (each connection attempt waits 5 s)
#   full      the stalled collector with no room at all (queue = 1, backlog = 1)
# and prints, for each, the capture thread's CPU seconds (the replaying main thread:
# /proc/PID/task/PID/stat) and frames per CPU-second, the whole process's CPU, and the export's
# written and dropped counts from its last log line.
#
#   benches/export.sh [TRACE]     (default target/bench/full-2m.pcap, made by benches/throughput.sh;
#                                  MW_BIN= another build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
trace=${1:-$root/target/bench/full-2m.pcap}
[ -f "$trace" ] || { echo "no trace $trace: benches/throughput.sh makes it" >&2; exit 1; }
bin=${MW_BIN:+$(realpath "$MW_BIN")}
if [ -z "$bin" ]; then
    (cd "$root" && cargo build --release --quiet)
    bin=$root/target/release/mirrorwatch
fi
frames=$(capinfos -Mc "$trace" | awk -F': *' '/Number of packets/ {print $2}')
work=$(mktemp -d)
collector=""
cleanup() {
    [ -n "$collector" ] && kill "$collector" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A collector that accepts and never reads (4 KiB receive buffer), and one that never accepts
# (its backlog full: connection attempts wait out their timeout, as to a hung host).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hung=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind(('127.0.0.1', $port)); s.listen(8)
h = socket.socket(); h.bind(('127.0.0.1', $hung)); h.listen(0)
fill = [socket.create_connection(('127.0.0.1', $hung)) for _ in range(2)]
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
" &
collector=$!
sleep 0.5

ticks=$(getconf CLK_TCK)
run() {
    local name=$1 export=$2
    local d=$work/$name
    mkdir -p "$d"
    printf '[store]\nring = false\n%s\n' "$export" >"$d/mw.toml"
    RUST_LOG=info "$bin" run --config "$d/mw.toml" --listen "" --rules "$root/rules" --db "$d/s.db" \
        --replay "$trace" 2>"$d/log" &
    local pid=$!
    until grep -q 'replayed ' "$d/log" 2>/dev/null; do
        kill -0 $pid 2>/dev/null || { cat "$d/log" >&2; exit 1; }
        sleep 0.2
    done
    # utime + stime of the replaying thread (the main one) and of the process.
    local main all
    main=$(awk '{print $14 + $15}' "/proc/$pid/task/$pid/stat")
    all=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    kill -TERM $pid
    wait $pid || true
    local said
    said=$(grep -o 'export stopped:.*' "$d/log" | sed 's/export stopped: //' || true)
    awk -v n="$name" -v f="$frames" -v m="$main" -v a="$all" -v t="$ticks" -v s="${said:-(no export)}" 'BEGIN {
        printf "%-8s capture thread %6.2f CPU-s  %9.0f frames/CPU-s   process %6.2f CPU-s   %s\n",
            n, m / t, f / (m / t), a / t, s }'
}

echo "trace: $trace ($frames frames)"
run none ""
run jsonl "[export]
jsonl = \"$work/jsonl/events.jsonl\""
run stalled "[export]
jsonl = \"$work/stalled/events.jsonl\"
syslog = \"tcp://127.0.0.1:$port\"
syslog_backlog = 100"
run hung "[export]
jsonl = \"$work/hung/events.jsonl\"
syslog = \"tcp://127.0.0.1:$hung\"
syslog_backlog = 100"
run full "[export]
jsonl = \"$work/full/events.jsonl\"
syslog = \"tcp://127.0.0.1:$port\"
queue = 1
syslog_backlog = 1"

# CPU time is noisy here: the capture thread's instructions per frame (callgrind, threads
# apart; thread 1 is the replaying one) on the first 200,000 frames, with the export off, to a
# stalled collector, and with no room at all.
if command -v valgrind >/dev/null && [ -z "${SKIP_CALLGRIND:-}" ]; then
    small=$work/first-200k.pcap
    editcap -r "$trace" "$small" 1-200000 2>/dev/null
    sframes=$(capinfos -Mc "$small" | awk -F': *' '/Number of packets/ {print $2}')
    ir() {
        local name=$1 export=$2
        local d=$work/ir-$name
        mkdir -p "$d"
        printf '[store]\nring = false\n%s\n' "$export" >"$d/mw.toml"
        (cd "$d" && RUST_LOG=info valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$d/cg.out" \
            "$bin" run --config "$d/mw.toml" --listen "" --rules "$root/rules" --db "$d/s.db" --replay "$small" \
            2>"$d/log") &
        local vg=$!
        until grep -q 'replayed ' "$d/log" 2>/dev/null; do
            kill -0 $vg 2>/dev/null || { cat "$d/log" >&2; exit 1; }
            sleep 0.5
        done
        pkill -TERM -f "callgrind-out-file=$d/cg.out" || true
        wait $vg || true
        local main
        main=$(awk '/^(summary|totals):/ {print $2; exit}' "$d/cg.out-01")
        awk -v n="$name" -v i="$main" -v f="$sframes" 'BEGIN { printf "%-8s capture thread %8.0f instructions/frame\n", n, i / f }'
    }
    echo "instructions per frame of the capture thread ($sframes frames):"
    ir none ""
    ir stalled "[export]
jsonl = \"$work/ir-stalled/events.jsonl\"
syslog = \"tcp://127.0.0.1:$port\"
syslog_backlog = 100"
    ir full "[export]
jsonl = \"$work/ir-full/events.jsonl\"
syslog = \"tcp://127.0.0.1:$port\"
queue = 1
syslog_backlog = 1"
fi

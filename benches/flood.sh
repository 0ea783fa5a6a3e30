#!/usr/bin/env bash
# A flood of half-open requests against normal traffic: packets per CPU-second of
# `mirrorwatch analyze` (and tshark) on two captures with the same frames and connections — one
# where every connection leaves dissector state behind (HTTP headers that never end, POP3 logins
# without a verdict, MySQL replies that never complete), so the HTTP, login and database tables
# stay full and evict on every new connection, and one where the exchanges complete.
#
#   benches/flood.sh [CONNECTIONS]      (default 100000, 6 frames each)
#
# Prints packets, CPU seconds, packets per CPU-second and peak RSS for each file. An eviction
# that scans its table shows here as the flood running many times slower than normal traffic.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-100000}
out=$root/target/bench/flood
cd "$root"
cargo build --release --quiet --bin mirrorwatch --example flood
target/release/examples/flood "$out" "$n"
measure() { # tool file cmd...
    local tool=$1 file=$2; shift 2
    local t; t=$(mktemp)
    /usr/bin/time -f '%U %S %M' -o "$t" "$@" >/dev/null 2>&1
    read -r u s m < "$t"; rm -f "$t"
    local frames=$((n * 6))
    awk -v tool="$tool" -v f="$(basename "$file")" -v p="$frames" -v u="$u" -v s="$s" -v m="$m" \
        'BEGIN { c = u + s; if (c < 0.01) c = 0.01; printf "%-12s %-12s %9d packets %7.2f CPU-s %12.0f packets/CPU-s %7.1f MiB\n", tool, f, p, c, p / c, m / 1024 }'
}
for f in "$out/normal.pcap" "$out/flood.pcap"; do
    measure mirrorwatch "$f" target/release/mirrorwatch analyze "$f"
done
if command -v tshark >/dev/null; then
    for f in "$out/normal.pcap" "$out/flood.pcap"; do
        measure tshark "$f" tshark -n -r "$f" -q -z io,stat,0
    done
fi

#!/usr/bin/env bash
# Capture drops of the live daemon beside tcpdump: tcpreplay sends full-size frames at
# increasing rates onto a veth whose other end, in the box's namespace, is the capture port.
# At each rate the same frames go once to `mirrorwatch run` (pipeline, store, pcap ring, rules
# as shipped) and once to `tcpdump -w /dev/null`; each says how many it got and how many the
# kernel dropped. The highest rate with zero drops is the figure to quote.
#
#   benches/drops.sh [RATES]          (packets/s, default "5000 10000 20000 40000 80000 160000")
#
# Needs root, tcpreplay, tcpdump, mergecap (tshark's tools), iproute2. Only namespaces it
# creates carry traffic. The trace is the lab's lossy HTTP transfer (1,788 frames, most of
# them 1,514 bytes) repeated 60 times: 107,280 frames.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rates=${1:-"5000 10000 20000 40000 80000 160000"}
cd "$root"
cargo build --release --quiet --bin mirrorwatch
work=$(mktemp -d)
P=mwdrop$$
cleanup() {
    [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null || true
    ip netns del $P-box 2>/dev/null || true
    ip netns del $P-tx 2>/dev/null || true
    umount "$work/store" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

src=tests/data/lab/lab-http-bulk-loss2.pcap
copies=()
for i in $(seq 1 60); do copies+=("$src"); done
mergecap -a -F pcap -w "$work/trace.pcap" "${copies[@]}"
frames=$(($(tshark -r "$src" -T fields -e frame.number | wc -l) * 60))

ip netns add $P-box
ip netns add $P-tx
ip link add ${P}c type veth peer name ${P}t
ip link set ${P}c netns $P-box
ip link set ${P}t netns $P-tx
ip -n $P-box link set ${P}c up
ip -n $P-tx link set ${P}t up
ip netns exec $P-box target/release/mirrorwatch prepare-port --interface ${P}c >/dev/null

# Sends the trace at $1 packets/s; prints the rate tcpreplay reached.
send() {
    ip netns exec $P-tx tcpreplay -q -i ${P}t --pps="$1" "$work/trace.pcap" 2>&1 |
        sed -n 's/.*Rated: [0-9.]* Bps, [0-9.]* Mbps, \([0-9.]*\) pps.*/\1/p' | head -1
}

printf '%-12s %8s %9s %9s %9s %12s %s\n' tool rate/s sent got dropped "sent at/s" "pcap ring"
for rate in $rates; do
    # mirrorwatch: a fresh store each time; drops are what the daemon stored per minute.
    rm -rf "$work/store"; mkdir -p "$work/store"
    printf '[capture]\ninterface = "%s"\n[store]\ndir = "%s"\n' ${P}c "$work/store" > "$work/mw.toml"
    ip netns exec $P-box target/release/mirrorwatch run --config "$work/mw.toml" --rules rules --listen "" \
        2>"$work/mw.log" &
    daemon=$!
    until grep -q "capturing on" "$work/mw.log"; do sleep 0.1; done
    sleep 1
    actual=$(send "$rate")
    sleep 3
    kill -TERM $daemon; wait $daemon || true; daemon=
    read -r got dropped < <(sqlite3 -separator ' ' "$work/store/mirrorwatch.db" \
        "SELECT coalesce(sum(packets),0), coalesce(sum(drops),0) FROM traffic_minute")
    ring=$(sed -n 's/.*pcap ring: \([0-9]*\) frames kept, \([0-9]*\) left out.*/\1 kept, \2 left out/p' "$work/mw.log")
    printf '%-12s %8s %9s %9s %9s %12s %s\n' mirrorwatch "$rate" "$frames" "$got" "$dropped" "${actual:-?}" "$ring"

    # tcpdump on the same port, same frames.
    ip netns exec $P-box tcpdump -i ${P}c -s 1600 -w /dev/null 2>"$work/td.log" &
    td=$!
    until grep -q "listening on" "$work/td.log"; do sleep 0.1; done
    sleep 1
    actual=$(send "$rate")
    sleep 2
    kill -INT $td; wait $td || true
    got=$(sed -n 's/^\([0-9]*\) packets captured.*/\1/p' "$work/td.log")
    dropped=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$work/td.log")
    printf '%-12s %8s %9s %9s %9s %12s\n' tcpdump "$rate" "$frames" "$got" "$dropped" "${actual:-?}"
done

#!/usr/bin/env bash
# Throughput and memory of `mirrorwatch analyze` next to tshark, on the same trace, in one run.
#
#   benches/throughput.sh [TRACE]
#
# Without TRACE, builds target/bench/trace.pcap (≥ 2 M packets) from real traffic in network
# namespaces (tests/lab/netns.sh): nginx serving bulk downloads and many short HTTP requests,
# dnsmasq answering DNS queries, 1.5 % random loss on the router (nftables), captured
# headers-only (snaplen 96) with tcpdump on the router's client-side port. Needs root, nginx-light,
# dnsmasq-base, bind9-dnsutils (dig), curl, tcpdump, nftables, tshark, GNU time.
#
# Prints, for each tool: packets, CPU seconds (user+sys), packets per CPU-second, peak RSS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$here/..
trace=${1:-$root/target/bench/trace.pcap}
P=mwbench

make_trace() {
    . "$root/tests/lab/netns.sh"
    work=$(mktemp -d)
    trap 'lab_down $P; rm -rf "$work"' EXIT
    mkdir -p "$work/www" "$(dirname "$trace")"
    chmod 755 "$work" "$work/www"   # nginx workers run unprivileged
    head -c 200000000 /dev/zero > "$work/www/bulk.bin"
    echo ok > "$work/www/small.txt"
    cat > "$work/nginx.conf" <<NGINX
worker_processes 2; pid $work/nginx.pid; error_log $work/error.log; daemon off;
events { worker_connections 1024; }
http { access_log off; server { listen 80; listen [::]:80; root $work/www; keepalive_timeout 0; } }
NGINX
    lab_up $P
    lab_loss $P 1.5
    ip netns exec $P-srv nginx -c "$work/nginx.conf" &
    printf 'address=/intranet.branch.lan/10.77.2.20\naddress=/files.branch.lan/10.77.2.20\n' > "$work/dnsmasq.conf"
    ip netns exec $P-srv dnsmasq --no-daemon --conf-file="$work/dnsmasq.conf" --listen-address=10.77.2.20 \
        --bind-interfaces --no-resolv --no-hosts --pid-file="$work/dnsmasq.pid" &
    sleep 1
    ip netns exec $P-rtr tcpdump -q -s 96 -B 65536 -i $P-r0 -w "$work/trace.pcap" 2>/dev/null &
    local td=$!
    sleep 1
    ip netns exec $P-cli bash -c '
        for i in $(seq 1 14); do curl -s -m 300 -o /dev/null http://10.77.2.20/bulk.bin & done
        for i in $(seq 1 3000); do curl -s -m 5 -o /dev/null http://10.77.2.20/small.txt; done &
        for i in $(seq 1 3000); do dig +tries=1 +time=1 @10.77.2.20 intranet.branch.lan >/dev/null; done &
        wait'
    sleep 1
    kill "$td"; wait "$td" 2>/dev/null || true
    lab_down $P
    editcap -F pcap "$work/trace.pcap" "$trace"
}

if [ ! -f "$trace" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "building the trace needs root (network namespaces)" >&2; exit 1; }
    make_trace
fi
cargo build --release --locked --manifest-path "$root/Cargo.toml" >/dev/null
bin=$root/target/release/mirrorwatch
packets=$(capinfos -c -M "$trace" | awk '/Number of packets/ {print $4}')
echo "trace: $trace ($packets packets, $(du -h "$trace" | cut -f1))"

measure() { # label command...
    local label=$1; shift
    local out; out=$(mktemp)
    /usr/bin/time -f '%U %S %M' -o "$out" "$@" >/dev/null 2>&1 || true
    read -r user sys rss < "$out"
    rm -f "$out"
    LAST_CPU=$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')
    awk -v l="$label" -v p="$packets" -v u="$user" -v s="$sys" -v r="$rss" 'BEGIN {
        c = u + s; if (c <= 0) c = 0.001;
        printf "%-34s %10d packets %8.2f CPU-s %12.0f packets/CPU-s %8.1f MiB peak RSS\n", l, p, c, p / c, r / 1024 }'
}

db=$(mktemp -u --suffix=.db)
counters=$("$bin" rules check "$root/rules" | sed -n 's/.* \([0-9]*\) counters.*/\1/p')
measure "mirrorwatch analyze (no store)" "$bin" analyze "$trace"
cpu_plain=$LAST_CPU
measure "mirrorwatch analyze --db" "$bin" analyze "$trace" --db "$db"
rm -f "$db" "$db-wal" "$db-shm"
measure "mirrorwatch analyze --rules ($counters ctr)" "$bin" analyze "$trace" --rules "$root/rules"
cpu_rules=$LAST_CPU
measure "mirrorwatch analyze --rules --db" "$bin" analyze "$trace" --rules "$root/rules" --db "$db"
rm -f "$db" "$db-wal" "$db-shm"
measure "tshark io,stat retransmissions" tshark -n -r "$trace" -q -z 'io,stat,60,tcp.analysis.retransmission'
# tshark with ten io,stat filters, the closest thing to ten counters.
filters=(tcp.analysis.retransmission tcp.flags.reset==1 "tcp.flags.syn==1&&tcp.analysis.retransmission"
         tcp.analysis.zero_window "icmp.type==3||icmpv6.type==1" "dns.flags.rcode!=0" "http.response.code>=500"
         ip eth.dst==ff:ff:ff:ff:ff:ff tcp.analysis.lost_segment)
spec="io,stat,60"
for f in "${filters[@]}"; do spec="$spec,$f"; done
measure "tshark io,stat, 10 filters" tshark -n -r "$trace" -q -z "$spec"
awk -v a="$cpu_rules" -v b="$cpu_plain" -v p="$packets" -v n="$counters" 'BEGIN {
    printf "rules: %d counters cost %.0f ns per packet (CPU-s with rules minus without, per packet)\n", n, (a - b) * 1e9 / p }'

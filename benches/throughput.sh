#!/usr/bin/env bash
# Throughput and memory of `mirrorwatch analyze` next to tshark, on the same trace, in one run.
#
#   benches/throughput.sh [TRACE]
#
# Without TRACE, builds target/bench/full-2m.pcap (2,000,000 frames, captured with snaplen 1600:
# full frames, as the box sees them) from real traffic in network namespaces (tests/lab/netns.sh),
# with 1.5 % random loss on the router (nftables), captured with tcpdump on the router's
# client-side port:
#   - bulk: nginx serving 100 MB downloads over IPv4 and IPv6 (loss makes retransmissions);
#   - many short connections: curl fetching a small file (one connection each), over IPv4 and
#     IPv6, and connections to a closed port (refused by RST);
#   - DNS: dnsmasq answering names of the branch, NXDOMAIN for unknown ones, and queries to a
#     closed port (ICMP port unreachable);
#   - mail logins: dovecot POP3 and IMAP with PLAIN credentials.
# The headers-only trace of earlier versions (snaplen 96) is measured as a second line when
# target/bench/trace.pcap exists. Needs root, nginx-light, dnsmasq-base, dovecot-pop3d,
# dovecot-imapd, bind9-dnsutils (dig), curl, tcpdump, nftables, tshark, GNU time, valgrind,
# and a Rust toolchain (the naive floor program is built from benches/floor/).
#
# Prints, for each program: packets, CPU seconds (user+sys), packets per CPU-second, peak RSS,
# then instructions per packet (cachegrind on the first 200,000 frames) of the floor and of
# mirrorwatch, and the ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$here/..
trace=${1:-$root/target/bench/full-2m.pcap}
P=mwbench

make_trace() {
    . "$root/tests/lab/netns.sh"
    work=$(mktemp -d)
    trap 'lab_down $P; rm -rf "$work"' EXIT
    mkdir -p "$work/www" "$(dirname "$trace")"
    chmod 755 "$work" "$work/www"   # nginx workers run unprivileged
    head -c 100000000 /dev/urandom > "$work/www/bulk.bin"
    echo ok > "$work/www/small.txt"
    cat > "$work/nginx.conf" <<NGINX
worker_processes 2; pid $work/nginx.pid; error_log $work/error.log; daemon off;
events { worker_connections 4096; }
http { access_log off; server { listen 80; listen [::]:80; root $work/www; keepalive_timeout 0; } }
NGINX
    lab_dovecot "$work/dv" 'alice:{PLAIN}wonderland\n'
    lab_up $P
    lab_loss $P 1.5
    ip netns exec $P-srv nginx -c "$work/nginx.conf" &
    ip netns exec $P-srv dovecot -F -c "$work/dv/dovecot.conf" &
    printf 'address=/intranet.branch.lan/10.77.2.20\naddress=/files.branch.lan/10.77.2.20\nlocal=/branch.lan/\n' \
        > "$work/dnsmasq.conf"
    ip netns exec $P-srv dnsmasq --no-daemon --conf-file="$work/dnsmasq.conf" --listen-address=10.77.2.20 \
        --bind-interfaces --no-resolv --no-hosts --pid-file="$work/dnsmasq.pid" &
    for i in $(seq 1 4000); do printf 'url = "http://10.77.2.20/small.txt"\noutput = "/dev/null"\n'; done > "$work/small4.cfg"
    for i in $(seq 1 4000); do printf 'url = "http://[fd77:2::20]/small.txt"\noutput = "/dev/null"\n'; done > "$work/small6.cfg"
    for i in $(seq 1 500); do printf 'url = "http://10.77.2.20:81/"\noutput = "/dev/null"\n'; done > "$work/refused.cfg"
    for i in $(seq 1 500); do echo "intranet.branch.lan A"; echo "files.branch.lan AAAA"; echo "nas$i.branch.lan A"; done \
        > "$work/dns.batch"
    sleep 2
    ip netns exec $P-rtr tcpdump -q -s 1600 -B 65536 -c 2000000 -i $P-r0 -w "$work/full.pcap" 2>/dev/null &
    local td=$!
    sleep 1
    # Loops until tcpdump has its frames; each loop is a kind of traffic.
    # Loops until tcpdump has its frames; each loop is a kind of traffic. The bulk downloads are
    # rate-limited so that, as on a branch's uplink, most frames belong to short exchanges.
    ip netns exec $P-cli bash -c '
        td=$1 work=$2
        loop() { while kill -0 "$td" 2>/dev/null; do "$@" || true; done; }
        get() { curl -s -g --no-progress-meter -m 60 -o /dev/null "$@"; }
        for i in 1 2 3; do loop get --limit-rate 400K http://10.77.2.20/bulk.bin & done
        loop get --limit-rate 400K "http://[fd77:2::20]/bulk.bin" &
        for i in 1 2 3 4; do loop get -Z --parallel-max 8 -K "$work/small4.cfg" & done
        for i in 1 2; do loop get -Z --parallel-max 8 -K "$work/small6.cfg" & done
        loop get -Z --parallel-max 2 -K "$work/refused.cfg" &
        loop dig +tries=1 +time=1 @10.77.2.20 -f "$work/dns.batch" &
        loop dig +tries=1 +time=1 -p 5300 @10.77.2.20 intranet.branch.lan &
        loop sh -c "curl -s -m 5 -o /dev/null -u alice:wonderland pop3://10.77.2.20/;
                    curl -s -m 5 -o /dev/null -u alice:wonderland imap://10.77.2.20/" &
        while kill -0 "$td" 2>/dev/null; do sleep 0.5; done
        kill $(jobs -p) 2>/dev/null; wait' _ "$td" "$work" >/dev/null 2>&1 || true
    wait "$td" 2>/dev/null || true
    lab_down $P
    editcap -F pcap "$work/full.pcap" "$trace"
}

if [ ! -f "$trace" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "building the trace needs root (network namespaces)" >&2; exit 1; }
    make_trace
fi
# TRACE_ONLY=1: make the trace and stop (benches/cachegrind.sh and the store checks read it too).
[ -z "${TRACE_ONLY:-}" ] || exit 0
cargo build --release --locked --manifest-path "$root/Cargo.toml" --bin mirrorwatch --example floor >/dev/null
# MW_BIN: measure another build (an earlier commit's) against the same trace and floor.
bin=${MW_BIN:-$root/target/release/mirrorwatch}
floor=$root/target/release/examples/floor
packets=$(capinfos -c -M "$trace" | awk '/Number of packets/ {print $4}')
echo "trace: $trace ($packets packets, $(du -h "$trace" | cut -f1), $(capinfos -z -M "$trace" | awk -F: '/Average packet size/ {print $2}' | xargs))"

measure() { # label command...
    local label=$1; shift
    local out; out=$(mktemp)
    /usr/bin/time -f '%U %S %M' -o "$out" "$@" >/dev/null 2>&1 || true
    read -r user sys rss < "$out"
    rm -f "$out"
    LAST_CPU=$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')
    LAST_RSS=$rss
    awk -v l="$label" -v p="$packets" -v u="$user" -v s="$sys" -v r="$rss" -v f="${FLOOR_CPU:-0}" 'BEGIN {
        c = u + s; if (c <= 0) c = 0.001;
        ratio = (f > 0) ? sprintf("%5.2fx floor", f / c) : "";
        printf "%-40s %8.2f CPU-s %10.0f packets/CPU-s %7.1f MiB peak RSS  %s\n", l, c, p / c, r / 1024, ratio }'
}

db=$(mktemp -u --suffix=.db)
counters=$("$bin" rules check "$root/rules" | sed -n 's/.* \([0-9]*\) counters.*/\1/p')
FLOOR_CPU=""
measure "naive floor (libpcap+etherparse+HashMap)" "$floor" "$trace"
FLOOR_CPU=$LAST_CPU
measure "mirrorwatch analyze (no rules, no store)" "$bin" analyze "$trace" --json
measure "mirrorwatch analyze --rules ($counters ctr)" "$bin" analyze "$trace" --json --rules "$root/rules"
measure "mirrorwatch analyze --rules --db (full)" "$bin" analyze "$trace" --json --rules "$root/rules" --db "$db"
full_cpu=$LAST_CPU
echo "store: $(du -k "$db" | cut -f1) KiB for the trace (flows kept in full: $(sqlite3 "$db" 'SELECT count(*) FROM flows'), exchange rows: $(sqlite3 "$db" 'SELECT count(*) FROM exchange_minute' 2>/dev/null || echo none))"
rm -f "$db" "$db-wal" "$db-shm"
# tshark with the shipped rules' filters as io,stat columns (the closest thing to counters).
# io,stat splits its argument at commas: sets are spelt out as alternatives, and app_error
# (mirrorwatch's own field) is left out.
spec=$(python3 - "$root"/rules/*.toml <<'PY'
import re, sys, tomllib
fs = []
for path in sys.argv[1:]:
    for c in tomllib.load(open(path, "rb")).get("counter", []):
        f = c["filter"]
        if "app_error" in f:
            continue
        f = re.sub(r"([\w.]+) in \{([^}]*)\}",
                   lambda m: "(" + " || ".join(f"{m[1]} == {v.strip()}" for v in m[2].split(",")) + ")", f)
        fs.append(f)
print(",".join(["io,stat,60"] + fs))
PY
)
measure "tshark io,stat ($(($(tr -cd , <<< "$spec" | wc -c) - 2)) rule filters)" tshark -n -r "$trace" -q -z "$spec"
awk -v a="$LAST_CPU" -v b="$full_cpu" 'BEGIN { printf "full pipeline against tshark: %.0fx\n", a / b }'

# Instructions per packet on the first 200,000 frames (independent of the machine's load).
slice=$(mktemp --suffix=.pcap)
editcap -r "$trace" "$slice" 1-200000
ipp() { # command...
    local out; out=$(mktemp)
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" >/dev/null 2>"$out" || true
    sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$out" | tr -d , | awk '{ printf "%.0f", $1 / 200000 }'
    rm -f "$out"
}
f_ipp=$(ipp "$floor" "$slice")
m_ipp=$(ipp "$bin" analyze "$slice" --json --rules "$root/rules" --db "$db")
rm -f "$db" "$db-wal" "$db-shm" "$slice"
echo "instructions per packet (cachegrind, 200k frames): floor $f_ipp, mirrorwatch full pipeline $m_ipp ($(awk -v a="$f_ipp" -v b="$m_ipp" 'BEGIN { printf "%.2fx floor", a / b }'))"

# The same trace cut to its headers (snaplen 96, as earlier versions measured): what the payload
# costs.
old=$root/target/bench/full-2m-headers.pcap
[ -f "$old" ] || editcap -s 96 "$trace" "$old"
if [ "$trace" != "$old" ]; then
    packets=$(capinfos -c -M "$old" | awk '/Number of packets/ {print $4}')
    FLOOR_CPU=""
    measure "headers-only trace: naive floor" "$floor" "$old"
    FLOOR_CPU=$LAST_CPU
    measure "headers-only trace: full pipeline" "$bin" analyze "$old" --json --rules "$root/rules" --db "$db"
    rm -f "$db" "$db-wal" "$db-shm"
fi

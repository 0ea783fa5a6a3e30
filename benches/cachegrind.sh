#!/usr/bin/env bash
# Instructions per packet of `mirrorwatch analyze --rules rules` on a fixed slice of 200,000
# full-size frames, counted by valgrind's cachegrind (the count does not depend on the machine's
# load, so two builds compare on a noisy machine), and CPU time per packet (best of 3 runs).
#
#   benches/cachegrind.sh [BIN...]      (default: target/release/mirrorwatch, built first)
#
# Give several binaries (a build of an earlier commit beside this one) to compare them on the
# same slice in one run, e.g.
#   git worktree add /tmp/before <commit> && cargo build --release --manifest-path /tmp/before/Cargo.toml
#   benches/cachegrind.sh /tmp/before/target/release/mirrorwatch target/release/mirrorwatch
#
# The slice (target/bench/full-200k.pcap, made once and then reused, so every comparison reads
# the same frames): 169,941 frames of real traffic made in network namespaces
# (tests/lab/netns.sh) — nginx serving bulk downloads and many short HTTP requests, dnsmasq
# answering DNS, dovecot POP3/IMAP logins, 1.5 % loss on the router (nftables) — captured with
# snaplen 1600, followed by the corpus's bench-mixed-merged.pcap (30,059 frames of 31 public
# captures: SMB, TLS, Kerberos, mail logins, databases). Needs root, valgrind, nginx-light,
# dnsmasq-base, dovecot-pop3d, dovecot-imapd, bind9-dnsutils, curl, tcpdump, nftables, editcap
# and mergecap.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
slice=$root/target/bench/full-200k.pcap
corpus=${MIRRORWATCH_CORPUS:-$root/../shared/corpus}
P=mwcg

make_slice() {
    . "$root/tests/lab/netns.sh"
    work=$(mktemp -d)
    trap 'lab_down $P; rm -rf "$work"' EXIT
    mkdir -p "$work/www" "$(dirname "$slice")"
    chmod 755 "$work" "$work/www"
    head -c 100000000 /dev/urandom > "$work/www/bulk.bin"
    echo ok > "$work/www/small.txt"
    cat > "$work/nginx.conf" <<NGINX
worker_processes 2; pid $work/nginx.pid; error_log $work/error.log; daemon off;
events { worker_connections 1024; }
http { access_log off; server { listen 80; root $work/www; keepalive_timeout 0; } }
NGINX
    lab_dovecot "$work/dv" 'alice:{PLAIN}wonderland\n'
    lab_up $P
    lab_loss $P 1.5
    ip netns exec $P-srv nginx -c "$work/nginx.conf" &
    ip netns exec $P-srv dovecot -F -c "$work/dv/dovecot.conf" &
    printf 'address=/intranet.branch.lan/10.77.2.20\n' > "$work/dnsmasq.conf"
    ip netns exec $P-srv dnsmasq --no-daemon --conf-file="$work/dnsmasq.conf" --listen-address=10.77.2.20 \
        --bind-interfaces --no-resolv --no-hosts --pid-file="$work/dnsmasq.pid" &
    sleep 2
    ip netns exec $P-rtr tcpdump -q -s 1600 -B 65536 -c 169941 -i $P-r0 -w "$work/lab.pcap" 2>/dev/null &
    local td=$!
    sleep 1
    ip netns exec $P-cli bash -c '
        for i in 1 2 3; do curl -s -m 120 -o /dev/null http://10.77.2.20/bulk.bin & done
        for i in $(seq 1 1500); do curl -s -m 5 -o /dev/null http://10.77.2.20/small.txt; done &
        for i in $(seq 1 1500); do dig +tries=1 +time=1 @10.77.2.20 intranet.branch.lan >/dev/null; done &
        for i in $(seq 1 200); do curl -s -m 5 -o /dev/null -u alice:wonderland pop3://10.77.2.20/;
                                 curl -s -m 5 -o /dev/null -u alice:wonderland imap://10.77.2.20/; done &
        wait' || true
    wait "$td" 2>/dev/null || true
    lab_down $P
    mergecap -a -F pcap -w "$slice" "$work/lab.pcap" "$corpus/bench-mixed-merged.pcap"
}

if [ ! -f "$slice" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "making the slice needs root (network namespaces)" >&2; exit 1; }
    make_slice
fi
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
    cargo build --release --locked --quiet --bin mirrorwatch
    bins=("$root/target/release/mirrorwatch")
fi
packets=$(capinfos -c -M "$slice" | awk '/Number of packets/ {print $4}')
echo "slice: $slice ($packets packets, $(du -h "$slice" | cut -f1))"
for bin in "${bins[@]}"; do
    out=$(mktemp)
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
        "$bin" analyze "$slice" --rules "$root/rules" >/dev/null 2>"$out"
    ir=$(sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$out" | tr -d ,)
    best=""
    for _ in 1 2 3; do
        /usr/bin/time -f '%U %S' -o "$out" "$bin" analyze "$slice" --rules "$root/rules" >/dev/null 2>&1
        cpu=$(awk '{ print $1 + $2 }' "$out")
        best=$(awk -v a="$cpu" -v b="${best:-1e9}" 'BEGIN { print (a < b) ? a : b }')
    done
    rm -f "$out"
    awk -v b="$bin" -v ir="$ir" -v p="$packets" -v c="$best" 'BEGIN {
        printf "%s\n  %.0f instructions per packet (%d in all), %.0f ns CPU per packet (best of 3: %.2f s)\n",
            b, ir / p, ir, c * 1e9 / p, c }'
done

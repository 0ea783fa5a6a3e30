#!/usr/bin/env bash
# Boots the Raspberry Pi image under qemu-system-aarch64 -M virt (software emulation: no Pi
# board, the image's own kernel, initrd and root file system) and shows that the appliance comes
# up as on a Pi's first boot: the data partition grown, the password taken from the firmware
# partition (and the file gone), mirrorwatch READY (systemd reports a Type=notify service
# started only on READY=1), the dashboard answering through a forwarded port and accepting the
# password.
#
#   image/boot-qemu.sh [IMG] [PORT]     (~5 min; the console transcript goes to IMG.boot.log)
#
# Both network cards are qemu user-mode networks with restrict=on: nothing leaves the qemu
# process except the forwarded port on 127.0.0.1 (PORT, default 18080 -> the box's 8080).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(cd "$root" && cargo pkgid | sed 's/.*[#@]//')
img=$(realpath "${1:-$root/target/image/mirrorwatch-${version}-rpi-arm64.img}")
port=${2:-18080}
for c in qemu-system-aarch64 mcopy curl; do
    command -v "$c" >/dev/null || { echo "$0: $c missing (apt-get install qemu-system-arm mtools curl)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/mirrorwatch-qemu.XXXXXX)
qemu_pid=
cleanup() {
    [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
log=$img.boot.log

# A copy as a 4 GiB card: the first boot grows the data partition into the rest.
cp --sparse=always "$img" "$work/card.img"
truncate -s 4G "$work/card.img"
password="qemu boot $(date +%s)"
printf '%s\r\n' "$password" > "$work/mirrorwatch-password.txt"
mcopy -i "$work/card.img@@1M" "$work/mirrorwatch-password.txt" ::mirrorwatch-password.txt
echo "card: $(du -m --apparent-size "$work/card.img" | cut -f1) MiB, mirrorwatch-password.txt on the firmware partition"

start=$(date +%s)
qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -nographic -no-reboot \
    -kernel "${img%.img}.vmlinuz" -initrd "${img%.img}.initrd" \
    -append "root=LABEL=MWROOT ro net.ifnames=0 console=ttyAMA0 fsck.repair=yes systemd.status_unit_format=name" \
    -drive file="$work/card.img",format=raw,if=virtio \
    -netdev user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:"$port"-:8080 -device virtio-net-pci,netdev=mgmt \
    -netdev user,id=mirror,restrict=on -device virtio-net-pci,netdev=mirror \
    > "$log" 2>&1 < /dev/null &
qemu_pid=$!
echo "qemu $qemu_pid booting (console: $log)"

wait_for() {
    local what=$1 pattern=$2 limit=$3
    while ! grep -qaE -- "$pattern" "$log"; do
        if ! kill -0 "$qemu_pid" 2>/dev/null; then echo "qemu ended before: $what" >&2; tail -30 "$log" >&2; exit 1; fi
        if [ $(( $(date +%s) - start )) -gt "$limit" ]; then echo "no $what after $limit s" >&2; tail -30 "$log" >&2; exit 1; fi
        sleep 2
    done
    echo "$(( $(date +%s) - start )) s: $what: $(grep -aE -m1 -- "$pattern" "$log" | tr -d '\r' | sed 's/\x1b\[[0-9;]*m//g')"
}
wait_for "kernel" "Linux version" 120
wait_for "root read-only" "EXT4-fs \\(vda2\\): mounted filesystem" 600
wait_for "data partition grown" "mirrorwatch data partition .* -> " 900
wait_for "password from the firmware partition" "dashboard password set from" 900
wait_for "mirrorwatch READY" "Started.*mirrorwatch\.service" 900

# The dashboard through the forwarded port: the login page, then the password.
t=$(date +%s)
until code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port/login") && [ "$code" = 200 ]; do
    [ $(( $(date +%s) - t )) -lt 120 ] || { echo "dashboard: no answer ($code)" >&2; exit 1; }
    sleep 2
done
echo "$(( $(date +%s) - start )) s: GET /login -> 200"
jar=$work/cookies
curl -s -c "$jar" -o "$work/login.html" "http://127.0.0.1:$port/login"
csrf=$(grep -o 'name="csrf" value="[^"]*"' "$work/login.html" | head -1 | sed 's/.*value="//; s/"$//' || true)
code=$(curl -s -b "$jar" -c "$jar" -o /dev/null -w '%{http_code}' --data-urlencode "password=$password" \
    ${csrf:+--data-urlencode "csrf=$csrf"} "http://127.0.0.1:$port/login")
echo "POST /login with the password from the firmware partition -> $code"
[ "$code" = 303 ] || { echo "login refused" >&2; exit 1; }
code=$(curl -s -b "$jar" -o "$work/overview.html" -w '%{http_code}' "http://127.0.0.1:$port/")
echo "GET / (logged in) -> $code, $(grep -o '<title>[^<]*' "$work/overview.html" | sed 's/<title>//')"
[ "$code" = 200 ] || exit 1
grep -a "mirrorwatch data partition\|mirrorwatch: dashboard password\|mirrorwatch store:" "$log" | tr -d '\r' || true
echo "boot to a logged-in dashboard: $(( $(date +%s) - start )) s"

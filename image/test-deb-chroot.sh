#!/usr/bin/env bash
# The .deb's life in a clean Debian 12 (bookworm) chroot made by mmdebstrap: install, first use,
# upgrade (the admin's configuration and rule edits kept, the store migrated by the new daemon),
# remove, purge. Run as root, by hand (it downloads a minimal Debian, ~2 min); the transcript goes
# to standard output, and the script stops at the first check that fails.
#
#   image/test-deb-chroot.sh NEW.deb [OLD.deb]
#
# With OLD.deb (an earlier release) the upgrade goes from it to NEW.deb; without, NEW.deb is
# installed over itself (the upgrade path of the maintainer scripts, not of the schema).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
new=$(realpath "${1:?usage: $0 NEW.deb [OLD.deb]}")
old=${2:+$(realpath "$2")}
[ "$(id -u)" = 0 ] || { echo "$0: run as root (chroot)" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "$0: mmdebstrap missing (apt-get install mmdebstrap)" >&2; exit 1; }
work=$(mktemp -d /tmp/mirrorwatch-chroot.XXXXXX)
dir=$work/root
cleanup() {
    for m in proc dev/pts dev; do umount -l "$dir/$m" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
in_root() { chroot "$dir" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
check() {
    local what=$1; shift
    if "$@"; then echo "ok: $what"; else echo "FAILED: $what" >&2; exit 1; fi
}

step "Debian 12 chroot (mmdebstrap, variant apt, with systemd)"
mmdebstrap --quiet --variant=apt --include=systemd,systemd-sysv,ca-certificates,sqlite3 bookworm "$dir" \
    "deb http://deb.debian.org/debian bookworm main"
mount -t proc proc "$dir/proc"
mount --bind /dev "$dir/dev"
mount --bind /dev/pts "$dir/dev/pts"
mkdir -p "$dir/tmp/pkg" "$dir/tmp/data"
cp "$new" "$dir/tmp/pkg/new.deb"
[ -n "$old" ] && cp "$old" "$dir/tmp/pkg/old.deb"
cp "$root"/tests/data/lab/lab-kerberos-kdc.pcap "$root"/tests/data/lab/lab-mail-dovecot.pcap "$dir/tmp/data/"

in_root apt-get update -qq
first=new.deb
[ -n "$old" ] && first=old.deb
step "install $first (apt resolves libpcap0.8 and iproute2)"
in_root apt-get install -y -qq "/tmp/pkg/$first" 2>&1 | grep -v "^debconf: \|^(Reading\|^Selecting\|^Preparing\|^Unpacking" || true
in_root dpkg-query -W -f='${Package} ${Version} ${Status}\n' mirrorwatch
check "system user mirrorwatch" in_root getent passwd mirrorwatch
check "store directory 0750 mirrorwatch" test "$(in_root stat -c '%a %U' /var/lib/mirrorwatch)" = "750 mirrorwatch"
check "configuration directory 0750 root:mirrorwatch" test "$(in_root stat -c '%a %U:%G' /etc/mirrorwatch)" = "750 root:mirrorwatch"
check "rule directory the daemon's (rule editor)" test "$(in_root stat -c '%U' /etc/mirrorwatch/rules)" = "mirrorwatch"
check "unit enabled" test -L "$dir/etc/systemd/system/multi-user.target.wants/mirrorwatch.service"
check "shipped rules valid" in_root mirrorwatch rules check /etc/mirrorwatch/rules
in_root sh -c 'man -w mirrorwatch-run 2>/dev/null || ls /usr/share/man/man1/mirrorwatch-run.1.gz'
echo "conffiles:"; in_root dpkg-query -W -f='${Conffiles}\n' mirrorwatch | sed 's/ [0-9a-f]*$//'

step "first use: password, a store filled by the daemon as its user"
echo "correct horse battery" | in_root mirrorwatch passwd --password-stdin
in_root stat -c 'password hash: %a %U:%G' /etc/mirrorwatch/dashboard.passwd
in_root setpriv --reuid=mirrorwatch --regid=mirrorwatch --init-groups \
    mirrorwatch analyze --config /etc/mirrorwatch/mirrorwatch.toml --rules /etc/mirrorwatch/rules \
    --db /var/lib/mirrorwatch/mirrorwatch.db /tmp/data/lab-kerberos-kdc.pcap | head -4
schema_before=$(in_root sqlite3 /var/lib/mirrorwatch/mirrorwatch.db 'PRAGMA user_version')
frames_before=$(in_root sqlite3 /var/lib/mirrorwatch/mirrorwatch.db 'SELECT sum(packets) FROM traffic_minute')
echo "store: schema $schema_before, $frames_before frames"
echo "admin edits: [capture] interface = \"eth7\", rule volume.toml changed, a new rule file"
sed -i 's/^interface = "eth1"/interface = "eth7"/' "$dir/etc/mirrorwatch/mirrorwatch.toml"
printf '\n# site note: kept across upgrades\n' >> "$dir/etc/mirrorwatch/rules/volume.toml"
cp "$dir/etc/mirrorwatch/rules/dns.toml" "$dir/etc/mirrorwatch/rules/site.toml"
sed -i 's/^id = "\([^"]*\)"/id = "site-\1"/' "$dir/etc/mirrorwatch/rules/site.toml"
check "edited rules still valid" in_root mirrorwatch rules check /etc/mirrorwatch/rules

step "upgrade to new.deb (dpkg keeps edited conffiles: --force-confold, as unattended-upgrades does)"
in_root apt-get install -y -qq -o Dpkg::Options::=--force-confold /tmp/pkg/new.deb 2>&1 \
    | grep -v "^debconf: \|^(Reading\|^Preparing\|^Unpacking" || true
in_root dpkg-query -W -f='${Package} ${Version} ${Status}\n' mirrorwatch
check "configuration edit kept" grep -q '^interface = "eth7"' "$dir/etc/mirrorwatch/mirrorwatch.toml"
check "rule edit kept" grep -q "site note: kept across upgrades" "$dir/etc/mirrorwatch/rules/volume.toml"
check "added rule file kept" test -f "$dir/etc/mirrorwatch/rules/site.toml"
check "password kept" test -s "$dir/etc/mirrorwatch/dashboard.passwd"
check "password hash 0640 root:mirrorwatch" test "$(in_root stat -c '%a %U:%G' /etc/mirrorwatch/dashboard.passwd)" = "640 root:mirrorwatch"
check "the daemon's user can read the password hash" \
    in_root setpriv --reuid=mirrorwatch --regid=mirrorwatch --init-groups cat /etc/mirrorwatch/dashboard.passwd >/dev/null
echo "correct horse battery staple" | in_root mirrorwatch passwd --password-stdin
check "a new password is 0640 root:mirrorwatch too" test "$(in_root stat -c '%a %U:%G' /etc/mirrorwatch/dashboard.passwd)" = "640 root:mirrorwatch"
echo "the new daemon opens (and migrates) the old store, adding a second capture:"
in_root setpriv --reuid=mirrorwatch --regid=mirrorwatch --init-groups \
    mirrorwatch analyze --config /etc/mirrorwatch/mirrorwatch.toml --rules /etc/mirrorwatch/rules \
    --db /var/lib/mirrorwatch/mirrorwatch.db /tmp/data/lab-mail-dovecot.pcap | head -4
check "store still the daemon's" test "$(in_root stat -c '%U' /var/lib/mirrorwatch/mirrorwatch.db)" = "mirrorwatch"
schema_after=$(in_root sqlite3 /var/lib/mirrorwatch/mirrorwatch.db 'PRAGMA user_version')
frames_after=$(in_root sqlite3 /var/lib/mirrorwatch/mirrorwatch.db 'SELECT sum(packets) FROM traffic_minute')
echo "store: schema $schema_before -> $schema_after, $frames_before -> $frames_after frames"
check "old frames kept, new ones added" test "$frames_after" -gt "$frames_before"

step "remove (configuration and store stay)"
in_root apt-get remove -y -qq mirrorwatch 2>&1 | grep -v "^(Reading" || true
check "binary gone" test ! -e "$dir/usr/bin/mirrorwatch"
check "configuration kept on remove" test -f "$dir/etc/mirrorwatch/mirrorwatch.toml"
check "store kept on remove" test -f "$dir/var/lib/mirrorwatch/mirrorwatch.db"

step "purge"
in_root apt-get purge -y -qq mirrorwatch 2>&1 | grep -v "^(Reading" || true
check "no package left" sh -c "! chroot '$dir' dpkg-query -W mirrorwatch >/dev/null 2>&1 || chroot '$dir' dpkg-query -W -f='\${Status}' mirrorwatch | grep -q not-installed"
check "/etc/mirrorwatch gone" test ! -e "$dir/etc/mirrorwatch"
check "/var/lib/mirrorwatch gone" test ! -e "$dir/var/lib/mirrorwatch"
check "unit link gone" test ! -e "$dir/etc/systemd/system/multi-user.target.wants/mirrorwatch.service"
leftover=$(cd "$dir" && find usr etc var -name '*mirrorwatch*' ! -path 'var/lib/dpkg/*' ! -path 'var/cache/*' 2>/dev/null || true)
echo "left on the system: ${leftover:-nothing}"
echo
echo "chroot install / upgrade / remove / purge: all checks passed"

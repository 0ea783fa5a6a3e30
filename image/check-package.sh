#!/usr/bin/env bash
# What CI checks of the .deb without installing it: the files it holds (and nothing of the
# build machine), the control fields, a stripped binary of the package's architecture, the
# conffiles, the man pages, and the unit inside it as systemd reads it (`systemd-analyze verify`,
# with no warning) with an exposure of at most 1.5 (`systemd-analyze security --offline`).
#
#   image/check-package.sh DEB HOST_BIN
#
# HOST_BIN: a binary of this machine's architecture that `verify` finds at the unit's ExecStart
# (it checks that the command exists and is executable, not what it does).
set -euo pipefail
deb=$(realpath "${1:?usage: $0 DEB HOST_BIN}")
host=$(realpath "${2:?usage: $0 DEB HOST_BIN}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check-package: $*" >&2; exit 1; }

dpkg-deb -x "$deb" "$tmp/root"
dpkg-deb -e "$deb" "$tmp/control"
arch=$(dpkg-deb -f "$deb" Architecture)
echo "$(basename "$deb"): $(du -k "$deb" | cut -f1) KiB, installed $(dpkg-deb -f "$deb" Installed-Size) KiB"
echo "Depends: $(dpkg-deb -f "$deb" Depends)"

expected="./etc/mirrorwatch/mirrorwatch.toml
./etc/mirrorwatch/rules/README.md
./usr/bin/mirrorwatch
./usr/lib/systemd/system/mirrorwatch.service
./usr/lib/sysusers.d/mirrorwatch.conf
./usr/lib/tmpfiles.d/mirrorwatch.conf
./usr/share/doc/mirrorwatch/README.md
./usr/share/doc/mirrorwatch/copyright
./usr/share/doc/mirrorwatch/rules.md
./usr/share/man/man1/mirrorwatch.1.gz
./usr/share/man/man1/mirrorwatch-run.1.gz"
for f in $expected; do
    case $f in
        ./etc/mirrorwatch/rules/README.md) continue ;;  # the schema is documented in /usr/share/doc
    esac
    [ -e "$tmp/root/$f" ] || fail "$f missing"
done
root=$(cd "$(dirname "$0")/.." && pwd)
for r in "$root"/rules/*.toml; do
    [ -f "$tmp/root/etc/mirrorwatch/rules/$(basename "$r")" ] || fail "rule file $(basename "$r") missing"
done
# Nothing else: no build paths, no debug info (it goes to the -dbgsym package).
others=$(cd "$tmp/root" && find . -type f | sort | grep -v -x -F "$expected" \
    | grep -v '^\./etc/mirrorwatch/rules/[a-z0-9_-]*\.toml$' | grep -v '^\./usr/share/man/man1/mirrorwatch-[a-z-]*\.1\.gz$' || true)
[ -z "$others" ] || fail "unexpected files: $others"
! grep -rqa "$root" "$tmp/root" || fail "a path of the build machine is inside the package"

case $arch in
    amd64) machine="x86-64" ;;
    arm64) machine="ARM aarch64" ;;
    *) fail "architecture $arch" ;;
esac
desc=$(file -b "$tmp/root/usr/bin/mirrorwatch")
case $desc in *"$machine"*"stripped"*) ;; *) fail "binary: $desc" ;; esac
case $desc in *"not stripped"*) fail "binary not stripped: $desc" ;; esac
echo "binary: ${desc%%,*}, $(du -k "$tmp/root/usr/bin/mirrorwatch" | cut -f1) KiB, stripped"

# Every file under /etc is a conffile: an admin's edits survive upgrades.
conffiles=$(sort "$tmp/control/conffiles")
etc=$(cd "$tmp/root" && find etc -type f | sed 's|^|/|' | sort)
[ "$conffiles" = "$etc" ] || fail "conffiles differ from /etc: $(diff <(echo "$conffiles") <(echo "$etc") || true)"
echo "conffiles: $(echo "$conffiles" | wc -l) (configuration and rules)"
grep -q '#DEBHELPER#' "$tmp/control/postinst" && fail "postinst token not replaced"
grep -q 'deb-systemd-helper enable mirrorwatch.service' "$tmp/control/postinst" || fail "postinst does not enable the unit"
grep -q 'rm -rf /var/lib/mirrorwatch /etc/mirrorwatch' "$tmp/control/postrm" || fail "postrm does not purge"
zcat "$tmp/root/usr/share/man/man1/mirrorwatch-run.1.gz" > "$tmp/run.1"
grep -q -- 'replay' "$tmp/run.1" || fail "man page without the options"
echo "man pages: $(ls "$tmp/root/usr/share/man/man1" | tr '\n' ' ')"

# The unit as systemd reads it: with ExecStart pointing at a binary of this machine.
unit=$tmp/root/usr/lib/systemd/system/mirrorwatch.service
mkdir "$tmp/unit"
sed "s|/usr/bin/mirrorwatch|$host|g" "$unit" > "$tmp/unit/mirrorwatch.service"
out=$(systemd-analyze verify --man=no "$tmp/unit/mirrorwatch.service" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
echo "systemd-analyze verify: clean"
score=$(systemd-analyze security --offline=true "$unit" 2>&1 | grep 'Overall exposure level' || true)
echo "${score#→ }"
systemd-analyze security --offline=true --threshold=15 "$unit" >/dev/null 2>&1 \
    || fail "exposure above 1.5: $score"
echo "package checks: ok"

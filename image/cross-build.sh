#!/usr/bin/env bash
# The arm64 (Raspberry Pi 3/4, 64-bit) build of mirrorwatch, cross-compiled on an x86_64 Debian 12
# machine from Debian's packages only (rustup cannot add targets here): Debian's rustc/cargo 1.96
# (rustc-web, cargo-web) with the arm64 standard library (libstd-rust-web-dev:arm64), the aarch64
# cross gcc as linker and C compiler (the bundled SQLite is C), and libpcap's arm64 library
# through multiarch.
#
#   image/cross-build.sh [--install] [--check]
#
#   --install  installs those packages first (root; adds the arm64 architecture to dpkg)
#   --check    then runs the arm64 binary under qemu-aarch64-static on the lab captures and
#              compares `analyze --json --rules rules` with the x86_64 build's, file by file
#
# Output: target/aarch64-unknown-linux-gnu/release/mirrorwatch (not stripped: the package
# strips it and keeps the debug info apart).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
install=0 check=0
for a in "$@"; do
    case $a in
        --install) install=1 ;;
        --check) check=1 ;;
        *) echo "usage: $0 [--install] [--check]" >&2; exit 2 ;;
    esac
done
target=aarch64-unknown-linux-gnu
if [ "$install" = 1 ]; then
    dpkg --add-architecture arm64
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        rustc-web cargo-web "libstd-rust-web-dev:arm64" gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
        "libpcap-dev:arm64" qemu-user-static pkg-config >/dev/null
fi
for f in /usr/bin/rustc /usr/bin/cargo /usr/bin/aarch64-linux-gnu-gcc "/usr/lib/rustlib/$target" \
         /usr/lib/aarch64-linux-gnu/libpcap.so; do
    [ -e "$f" ] || { echo "$0: $f missing (run with --install)" >&2; exit 1; }
done
start=$(date +%s)
# Debian's toolchain, not rustup's (which has no arm64 standard library here); in a subshell, so
# the host build below stays rustup's.
(
    export RUSTC=/usr/bin/rustc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    export PKG_CONFIG_ALLOW_CROSS=1
    export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
    export LIBPCAP_LIBDIR=/usr/lib/aarch64-linux-gnu
    /usr/bin/cargo build --locked --release --target "$target" --bin mirrorwatch
)
bin=target/$target/release/mirrorwatch
echo "built $bin in $(( $(date +%s) - start )) s: $(file -b "$bin" | cut -d, -f1-2)"
[ "$check" = 1 ] || exit 0

# The same answers as the x86_64 build, on every lab capture, under qemu-user. HOST_BIN: the
# x86_64 binary to compare with (default: the release build, made here).
host=${HOST_BIN:-}
if [ -z "$host" ]; then
    cargo build --locked --release --quiet --bin mirrorwatch
    host=target/release/mirrorwatch
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0 diffs=0
for f in tests/data/lab/*.pcap tests/data/errors/*.pcap; do
    [ -e "$f" ] || continue
    "$host" analyze "$f" --json --rules rules > "$work/x86.json" 2>/dev/null
    qemu-aarch64-static -L /usr/aarch64-linux-gnu "$bin" analyze "$f" --json --rules rules > "$work/arm.json" 2>/dev/null
    if ! cmp -s "$work/x86.json" "$work/arm.json" || [ ! -s "$work/x86.json" ]; then
        echo "DIFFERENT: $f"; diffs=$((diffs + 1))
    fi
    n=$((n + 1))
done
# (The store is not compared here: under this qemu-user (7.2, Debian 12) creating a thread hangs —
# a two-line Rust program spawning one does — and the store has a writer thread. The image's
# boot under qemu-system runs the daemon with its store: image/boot-qemu.sh.)
echo "arm64 under qemu vs x86_64: $n captures, $diffs different"
[ "$diffs" = 0 ]

#!/usr/bin/env bash
# The mirrorwatch .deb, built by cargo-deb from the metadata in Cargo.toml.
#
#   image/package.sh [--arch amd64|arm64] [--no-build]
#
#   --arch arm64   package the cross-built binary (image/cross-build.sh makes it; run that first
#                  or leave out --no-build and this script runs it)
#   --no-build     package the binary already built
#
# Output: target/debian/mirrorwatch_<version>-1_<arch>.deb (binary stripped) and beside it
# mirrorwatch-dbgsym_<version>-1_<arch>.ddeb (its debug info, compressed). The man pages are written by the host's
# build (`mirrorwatch man`), whose clap definitions are the same source as the arm64 binary's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
arch=amd64 build=1
while [ $# -gt 0 ]; do
    case $1 in
        --arch) arch=${2:?}; shift ;;
        --no-build) build=0 ;;
        *) echo "usage: $0 [--arch amd64|arm64] [--no-build]" >&2; exit 2 ;;
    esac
    shift
done
command -v cargo-deb >/dev/null || { echo "$0: cargo-deb missing (cargo install cargo-deb --locked)" >&2; exit 1; }
if [ "$build" = 1 ]; then
    cargo build --locked --release --bin mirrorwatch
    [ "$arch" = arm64 ] && image/cross-build.sh
fi
# HOST_BIN: a host build to write the man pages with (default: the release build).
host=${HOST_BIN:-target/release/mirrorwatch}
[ -x "$host" ] || { echo "$0: $host missing" >&2; exit 1; }
rm -rf target/man
"$host" man target/man
case $arch in
    amd64) cargo deb --no-build --locked ;;
    arm64)
        # cargo-deb strips with the target's binutils.
        export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_STRIP=aarch64-linux-gnu-strip
        export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_OBJCOPY=aarch64-linux-gnu-objcopy
        cargo deb --no-build --locked --target aarch64-unknown-linux-gnu ;;
    *) echo "$0: --arch amd64 or arm64" >&2; exit 2 ;;
esac

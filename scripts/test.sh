#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/integration/differential tests, the arm64
# cross-build compared with this build under qemu-user, and the arm64 .deb's contents and unit.
# Tests that need root (live capture in network namespaces) or tshark skip with a message
# when those are missing; scripts/install-deps.sh installs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --lib --bins --tests 2>&1 | tee "$log"
# The arm64 build for the Pi, cross-compiled from Debian's packages, must give the same JSON as
# this build on every lab capture (under qemu-user).
HOST_BIN=target/debug/mirrorwatch image/cross-build.sh --install --check
# The .deb for the Pi from that build: its contents, the unit's `systemd-analyze verify` and
# exposure (the install/upgrade/purge in a chroot is image/test-deb-chroot.sh, by hand).
HOST_BIN=target/debug/mirrorwatch image/package.sh --arch arm64 --no-build
image/check-package.sh target/debian/mirrorwatch_"$(cargo pkgid | sed 's/.*[#@]//')"-1_arm64.deb target/debug/mirrorwatch
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"

#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/integration/differential tests.
# Tests that need root (live capture in network namespaces) or tshark skip with a message
# when those are missing; scripts/install-deps.sh installs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked

#!/usr/bin/env bash
# Compares every tcp.analysis flag mirrorwatch sets on a capture with tshark's, frame by frame.
#   scripts/compare-tcp-flags.sh TRACE
# Prints the per-flag counts and any differing (frame, flag) pair; exit 1 on a difference.
# Used on the benchmark trace (millions of frames), where the test suite's corpus check is too
# small to show rare cases.
set -euo pipefail
trace=$1
root=$(cd "$(dirname "$0")/.." && pwd)
flags="retransmission fast_retransmission spurious_retransmission duplicate_ack out_of_order lost_segment zero_window ack_lost_segment keep_alive window_update"
cargo build --release --locked --example flagdump --manifest-path "$root/Cargo.toml" >/dev/null 2>&1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pattern=" ($(echo $flags | tr ' ' '|'))$"
"$root/target/release/examples/flagdump" "$trace" | grep -E "$pattern" | sort > "$work/ours" || true
fields=()
for f in $flags; do fields+=(-e "tcp.analysis.$f"); done
tshark -n -r "$trace" -Y tcp.analysis.flags -T fields -E occurrence=f -e frame.number "${fields[@]}" 2>/dev/null |
    awk -F'\t' -v names="$flags" 'BEGIN { n = split(names, nm, " ") }
        { for (i = 2; i <= n + 1; i++) if ($i != "") print $1, nm[i - 1] }' | sort > "$work/tshark" || true
echo "flag occurrences: mirrorwatch $(wc -l < "$work/ours"), tshark $(wc -l < "$work/tshark")"
awk '{print $2}' "$work/tshark" | sort | uniq -c
if diff "$work/ours" "$work/tshark" > "$work/diff"; then
    echo "identical"
else
    echo "differences (< mirrorwatch only, > tshark only):"
    head -50 "$work/diff"
    exit 1
fi

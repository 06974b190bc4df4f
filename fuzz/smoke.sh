#!/usr/bin/env bash
# CI's smoke run: builds the fuzz targets (stable toolchain, no cargo-fuzz)
# and runs each one for a short fixed time from its seed corpus; fails on
# the first crash, hang or runaway memory. FUZZ_SECONDS changes the time.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-20}
bin=$(./build.sh)
./seed.sh
for target in sip_datagram sip_stream endpoint sdp rtp schedule feed resume_book; do
  echo "fuzz: $target for $seconds s" >&2
  # A scratch copy: the smoke run must not grow the committed-to-nothing
  # corpus dir of a developer's checkout with CI leftovers, nor depend on it.
  work=$(mktemp -d)
  cp corpus/"$target"/seed-* "$work"/
  mkdir -p artifacts/"$target"
  "$bin/$target" "$work" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix=artifacts/"$target"/ -print_final_stats=1 2>"$work.log" || {
    tail -60 "$work.log" >&2
    echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  }
  grep -E '^stat::(number_of_executed_units|peak_rss_mb|new_units_added)' "$work.log" \
    | sed "s/^/fuzz: $target /" >&2
  rm -rf "$work" "$work.log"
done
echo "fuzz: every target ran ${seconds} s without a crash" >&2

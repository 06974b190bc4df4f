#!/usr/bin/env bash
# Runs one fuzz target for longer: ./fuzz/run.sh <target> [libFuzzer flags]
# e.g. ./fuzz/run.sh endpoint -max_total_time=3600 -jobs=2
# The corpus grows in fuzz/corpus/<target>/, crashes land in
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh <target> [libFuzzer flags]}
shift
bin=$(./build.sh)
[ -d corpus/"$target" ] || ./seed.sh
mkdir -p artifacts/"$target"
exec "$bin/$target" corpus/"$target" -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix=artifacts/"$target"/ "$@"

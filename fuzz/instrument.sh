#!/usr/bin/env bash
# RUSTC_WORKSPACE_WRAPPER for build.sh: cargo runs it for the workspace's own
# crates only (the line and the fuzz crate), so they get libFuzzer's coverage
# instrumentation while every dependency is compiled as for `cargo test
# --release` and shared with it in target/. The flags are the ones `cargo
# fuzz build` passes, less the sanitizer (-Zsanitizer needs nightly; the
# line's code is safe Rust, so AddressSanitizer would find little).
set -euo pipefail
rustc=$1
shift
case " $* " in
  # Build scripts run at build time and do not link libFuzzer.
  *" --crate-name build_script_"*) exec "$rustc" "$@" ;;
esac
exec "$rustc" "$@" --cfg fuzzing -Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares \
  -Cdebug-assertions -Coverflow-checks

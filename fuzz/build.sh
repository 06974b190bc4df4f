#!/usr/bin/env bash
# Builds every fuzz target with libFuzzer's coverage instrumentation, on the
# stable toolchain and without cargo-fuzz: the flags below are the ones
# `cargo fuzz build` passes, less the sanitizer (-Zsanitizer needs nightly;
# the line's code is safe Rust, so AddressSanitizer would find little).
# Prints the directory holding the target binaries.
set -euo pipefail
cd "$(dirname "$0")"

host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cdebug-assertions -Coverflow-checks"
# --target keeps RUSTFLAGS off build scripts and proc macros, which must
# not be instrumented (they do not link libFuzzer).
cargo build --release --locked --target "$host" --bins >&2
echo "$PWD/target/$host/release"

#!/usr/bin/env bash
# Builds every fuzz target with libFuzzer's coverage instrumentation, on the
# stable toolchain and without cargo-fuzz: instrument.sh adds the flags to
# the workspace's own crates only, so the dependencies already built by
# `cargo test --release` are reused from target/.
# Prints the directory holding the target binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTC_WORKSPACE_WRAPPER="$PWD/fuzz/instrument.sh" \
  cargo build --release --locked -p dial-a-service-fuzz --bins >&2
echo "$PWD/target/release"

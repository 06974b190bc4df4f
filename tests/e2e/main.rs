//! The end-to-end tests against the real binary and real peers, as one test
//! binary: the shared harness (`tests/common`) and every file are compiled
//! and linked once instead of once per file, which was most of CI's build.
//! Run one file's tests with its module name, e.g.
//! `cargo test --release --test e2e source_e2e::`.
//!
//! The tests that load the machine on purpose (`soak`, `hostile_flood`)
//! and the container test (`docker`) stay binaries of their own, so they
//! never share the CPU with tests that time what a caller hears.

#[path = "../common/mod.rs"]
mod common;

mod admin_http;
mod bench_e2e;
mod call_e2e;
mod call_flow_e2e;
mod call_log;
mod cli_check;
mod hostile;
mod life_cycle;
mod loudness_e2e;
mod origin_http;
mod peer_baresip;
mod peer_kamailio;
mod peer_kamailio_harness;
mod peer_sipp;
mod scale_out;
mod self_test_e2e;
mod sip_edges;
mod source_e2e;
mod torture;

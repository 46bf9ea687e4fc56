#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, the unit tests, and the integration tests on real
# network namespaces (AF_XDP, tap, the real ovs-appctl). Run as root from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -q -- -D warnings
echo "== build (the integration tests run the xvsd binary)"
cargo build --workspace --bins -q
echo "== tests"
# Namespace tests run xvsd workers pinned to core 0; two at a time keeps a 2-core machine usable.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace -q -- --test-threads=2 2>&1 | tee "$log"
echo "== DPDK backend (--features dpdk; needs libdpdk-dev; EAL runs with --no-huge)"
cargo clippy -p xvs-dpdk -p xvsd -p xvs-integration --all-targets -q \
  --features xvs-dpdk/dpdk,xvsd/dpdk,xvs-integration/dpdk -- -D warnings
cargo build -p xvsd --features dpdk -q   # tests/dpdk_pipeline.rs runs this xvsd
cargo test -q -p xvs-dpdk -p xvsd --features xvs-dpdk/dpdk,xvsd/dpdk 2>&1 | tee -a "$log"
cargo test -q -p xvs-integration --features dpdk --test dpdk_pipeline 2>&1 | tee -a "$log"
# xvs-bench pipeline --quick: testpmd and this xvsd on net_pcap -> net_null (hugepages, restored).
cargo test -q -p xvs-bench --test pipeline_quick 2>&1 | tee -a "$log"
# One closing line for the whole workspace (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "total: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"

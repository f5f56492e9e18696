#!/usr/bin/env bash
# TSA throughput and latency beside the raw PKCS#11 ceiling, 5 s per point.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bins
exec cargo bench --locked -p signet-e2e --bench tsa -- "$@"

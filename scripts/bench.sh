#!/usr/bin/env bash
# TSA and signing API (single digests, batches) throughput and latency beside the raw PKCS#11
# ceiling, then OCSP responders (OpenSSL's, cfssl's, and signetd's once it has one) side by
# side; 5 s per point, `--quick` for 1 s.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bins
cargo bench --locked -p signet-e2e --bench tsa -- "$@"
cargo bench --locked -p signet-e2e --bench sign -- "$@"
cargo bench --locked -p signet-e2e --bench pdf -- "$@"
# Re-executes itself in a private network namespace (unshare --net): see tests/benches/ocsp.rs.
exec cargo bench --locked -p signet-e2e --bench ocsp -- "$@"

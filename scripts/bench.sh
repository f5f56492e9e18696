#!/usr/bin/env bash
# TSA and signing API (single digests, batches) throughput and latency beside the raw PKCS#11
# ceiling and a bare mTLS server (tests/src/bin/bare-server.rs, started by each benchmark:
# the HTTP/TLS work alone), with signetd's CPU per answer by thread; PDF signing; the
# 256-client soak (5 minutes; SIGNET_SOAK_SECONDS changes it); then OCSP responders
# (OpenSSL's, cfssl's and signetd's) side by side, and the cost of an OCSP answer with a
# nonce (RSA-2048 and P-256 signers) beside the bare plain-HTTP server. 5 s per point,
# `--quick` for 1 s per point and a 20 s soak. SIGNET_BIN_DIR=DIR measures another build's
# signetd and signetctl with the same benchmarks (before/after comparisons).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bins
cargo bench --locked -p signet-e2e --bench tsa -- "$@"
cargo bench --locked -p signet-e2e --bench sign -- "$@"
cargo bench --locked -p signet-e2e --bench pdf -- "$@"
cargo bench --locked -p signet-e2e --bench soak -- "$@"
cargo bench --locked -p signet-e2e --bench cluster -- "$@"
# Re-executes itself in a private network namespace (unshare --net): see tests/benches/ocsp.rs.
exec cargo bench --locked -p signet-e2e --bench ocsp -- "$@"

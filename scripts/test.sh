#!/usr/bin/env bash
# The README's second command: every check CI runs, on one shared release build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
step() { printf '\n== %s\n' "$*"; }

step "dependencies"
scripts/install-deps.sh

step "format"
cargo fmt --all --check

step "one ASN.1 stack"
if cargo tree --locked -d --edges normal | grep -E '^(der|x509-cert|cms|spki) v'; then
  echo "more than one version of an ASN.1 crate (see above)" >&2
  exit 1
fi

step "build"
# The binaries exactly as the quick start builds them, then the tests on top: one build.
cargo build --release --locked --bins
cargo build --release --locked --workspace --bins --tests --benches

step "clippy"
cargo clippy --release --locked --workspace --all-targets -- -D warnings

step "benchmark (short run: the figures, not a pass/fail)"
cargo bench --locked -p signet-e2e --bench tsa -- --quick
cargo bench --locked -p signet-e2e --bench sign -- --quick
cargo bench --locked -p signet-e2e --bench ocsp -- --quick
cargo bench --locked -p signet-e2e --bench pdf -- --quick

step "tests"
cargo test --release --locked --workspace

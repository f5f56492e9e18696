#!/usr/bin/env bash
# The README's second command: every check CI runs, on one shared release build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
step() { printf "\n== %s  (%ss in)\n" "$*" "$SECONDS"; }

step "dependencies"
scripts/install-deps.sh

step "format"
cargo fmt --all --check
cargo fmt --manifest-path fuzz/Cargo.toml --check

step "lock files"
# Both workspaces build with --locked; a stale lock file should fail here, not after the build.
cargo metadata --locked --format-version 1 >/dev/null
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null

step "crate policy (cargo-deny: one ASN.1 stack, one door each to cryptoki, tss-esapi, rusqlite, licenses)"
# A pinned cargo-deny of our own under .tools/, built once; the advisory database cannot be
# fetched here, so `advisories` is not checked. A debug build: under a minute where the
# release build takes nearly three, and it still checks this workspace in about 2 s.
DENY_VERSION=0.20.2
if [ "$(.tools/bin/cargo-deny --version 2>/dev/null)" != "cargo-deny $DENY_VERSION" ]; then
  cargo install --quiet --locked --debug --no-default-features --root .tools --version "$DENY_VERSION" cargo-deny
fi
.tools/bin/cargo-deny --log-level warn check bans licenses

step "layers (crates point down; no import cycle between a crate's modules)"
scripts/check-layers.sh
scripts/check-module-cycles.py

step "function length (none over 80 lines outside tests without a \`// Long:\` reason)"
scripts/check-fn-length.py

step "build"
# The binaries exactly as the quick start builds them, then the tests on top: one build.
cargo build --release --locked --bins
cargo build --release --locked --workspace --lib --bins --tests --benches

step "clippy"
cargo clippy --release --locked --workspace --all-targets -- -D warnings
# The fuzz crate is its own workspace; it shares target/ so it reuses the build above.
CARGO_TARGET_DIR=target cargo clippy --release --locked --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

step "benchmark (short run: the figures, not a pass/fail)"
# `--workspace` rather than `-p signet-e2e`: the units the build above made, so nothing is
# compiled again (with `-p`, each benchmark compiled signet-e2e again).
cargo bench --locked --workspace --bench tsa -- --quick
cargo bench --locked --workspace --bench sign -- --quick
cargo bench --locked --workspace --bench ocsp -- --quick
cargo bench --locked --workspace --bench pdf -- --quick
cargo bench --locked --workspace --bench cluster -- --quick
# The soak fails the run on any error other than a 429, or on memory that keeps growing.
step "soak (256 mTLS clients, 20 s; scripts/bench.sh runs it for 5 minutes)"
cargo bench --locked --workspace --bench soak -- --quick

step "tests"
cargo test --release --locked --workspace

step "the TSA, OCSP, signing and PAdES suites again, keys in tpm2-pkcs11 on swtpm"
# A second PKCS#11 implementation: nothing may depend on SoftHSM's ways (tests/src/token.rs).
# pdf_judges passes too but takes ~3 min more: run it by hand with the same switch.
SIGNET_TEST_TOKEN=tpm2 cargo test --release --locked -p signet-e2e \
  --test tsa --test tsa_bad_input --test ocsp --test sign_api --test pades --test tls --test keys \
  --test audit --test lifecycle --test client_identity --test hsm_fairness

step "the suites that touch the store again, on PostgreSQL (a real server each test binary starts)"
SIGNET_TEST_STORE=postgres cargo test --release --locked -p signet-e2e \
  --test ocsp --test revoke_crash --test crash_mixed --test ctl --test ctl_issue --test lifecycle

step "fuzz targets, replayed (seeds, regressions, mutations; scripts/fuzz.sh runs libFuzzer longer)"
SIGNET_FUZZ_REPLAY_SECONDS=5 CARGO_TARGET_DIR=target \
  cargo test --release --locked --manifest-path fuzz/Cargo.toml -- --test-threads 2 --nocapture

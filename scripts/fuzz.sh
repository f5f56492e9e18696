#!/usr/bin/env bash
# Runs every fuzz target under libFuzzer for SECONDS each (default 60), or only the targets
# named after it: `scripts/fuzz.sh 600 pdf_reader tsa_request`. Seeds come from fuzz/seed.sh;
# what libFuzzer finds new stays in fuzz/corpus/TARGET, crashes in fuzz/artifacts/TARGET.
# A crash input belongs in fuzz/regressions/TARGET/ once fixed: `cargo test` in fuzz/ (what
# CI runs, scripts/test.sh) replays those and the seeds with mutations, without libFuzzer.
#
# cargo-fuzz wants a nightly compiler for its sanitizer flags; RUSTC_BOOTSTRAP=1 lets the
# stable one take them. SIGNET_FUZZ_SANITIZER=address|none (default address). The first run
# builds every dependency instrumented (about ten minutes on two cores; `none` is quicker).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

fuzz/seed.sh fuzz/corpus
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  printf '\n== %s (%ss)\n' "$t" "$seconds"
  mkdir -p "fuzz/regressions/$t"
  (cd fuzz && cargo fuzz run --features libfuzzer -s "${SIGNET_FUZZ_SANITIZER:-address}" "$t" \
    "corpus/$t" "regressions/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10)
done

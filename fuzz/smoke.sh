#!/usr/bin/env bash
# Fuzz smoke: runs every cargo-fuzz target for FUZZ_SECONDS (default 60) from the committed
# seed corpus, requires zero crashes, and prints the executions per target.
#
#   fuzz/smoke.sh                      # all targets, 60 s each
#   FUZZ_SECONDS=10 fuzz/smoke.sh      # shorter
#   fuzz/smoke.sh recovery             # some targets
#
# Uses nightly when installed (no sanitizer unless FUZZ_SANITIZER is set), else stable with RUSTC_BOOTSTRAP=1 and no
# sanitizer (`-s none`). Installs cargo-fuzz if it is missing. New corpus entries go to a
# scratch copy, so the committed seeds stay as they are; a crash input is left under
# fuzz/artifacts/<target>/ (freeze it under fuzz/regressions/<target>/ with a named test in
# model/tests/fuzz_corpus_replay.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=(frame_decode frame_decode_structured recovery)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# The library has no `unsafe`, so the address sanitizer finds little and costs several times the
# executions; the smoke runs without it unless FUZZ_SANITIZER is set (e.g. FUZZ_SANITIZER=address).
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
  sanitizer=(-s "${FUZZ_SANITIZER:-none}")
  echo "toolchain: nightly, sanitizer ${FUZZ_SANITIZER:-none}"
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
  sanitizer=(-s none)
  echo "toolchain: stable with RUSTC_BOOTSTRAP=1, no sanitizer"
fi

"${fuzz[@]}" build "${sanitizer[@]}"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  cp fuzz/corpus/"$t"/* "$scratch/$t"/ 2>/dev/null || true
  log="$scratch/$t.log"
  echo
  echo "=== fuzz $t for ${seconds}s"
  start=$(date +%s)
  set +e
  "${fuzz[@]}" run "${sanitizer[@]}" "$t" "$scratch/$t" fuzz/corpus/"$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  elapsed=$(( $(date +%s) - start ))
  execs=$(grep -E '^stat::number_of_executed_units:' "$log" | tail -1 | awk '{print $2}')
  if [ -z "$execs" ]; then
    execs=$(grep -E '^Done [0-9]+ runs' "$log" | tail -1 | awk '{print $2}')
  fi
  execs="${execs:-unknown}"
  if [ "$rc" -ne 0 ]; then
    failed=1
    tail -n 60 "$log"
    summary+=("$t: FAILED (exit $rc) after ${elapsed}s, $execs executions")
  else
    tail -n 3 "$log"
    summary+=("$t: ok, $execs executions in ${elapsed}s")
  fi
done

echo
echo "=== fuzz smoke summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
  echo "fuzz smoke: crashes found"
  exit 1
fi
echo "fuzz smoke: ${#targets[@]} passed, 0 failed"

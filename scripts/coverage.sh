#!/usr/bin/env bash
# Line coverage of the codec, log/recovery and writer code by the whole test suite
# (issue 6, part 5).
#
# Needs llvm-profdata/llvm-cov of the LLVM version rustc uses (`rustc -vV`); rustup's
# llvm-tools cannot be downloaded here, so it uses Debian's `llvm-NN` (installed with apt-get
# when missing and running as root). Builds instrumented release tests in target/coverage
# (release: the crash enumerations would take too long unoptimised; counters are inserted
# before optimisation, so line counts stay exact per region), runs every test of the
# workspace (lib and integration tests; doctests and benches are not instrumented), merges
# the profiles and prints `llvm-cov report` for src/codec.rs, src/log/*.rs, src/writer/*.rs,
# then for all of src/. Extra arguments go to `cargo test` (e.g. `-p batpak`).
set -euo pipefail
cd "$(dirname "$0")/.."

ver=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=$(command -v "llvm-profdata-$ver" || true)
cov=$(command -v "llvm-cov-$ver" || true)
if [[ -z "$profdata" || -z "$cov" ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "installing llvm-$ver (rustc's LLVM) with apt-get" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "llvm-$ver" >/dev/null
        profdata=$(command -v "llvm-profdata-$ver" || true)
        cov=$(command -v "llvm-cov-$ver" || true)
    fi
fi
if [[ -z "$profdata" || -z "$cov" ]]; then
    echo "coverage: llvm-profdata-$ver / llvm-cov-$ver not found (rustc uses LLVM $ver)" >&2
    exit 2
fi

out=$PWD/target/coverage
rm -rf "$out/profraw"
mkdir -p "$out/profraw"
export RUSTFLAGS="-C instrument-coverage"
export CARGO_TARGET_DIR="$out/target"
export LLVM_PROFILE_FILE="$out/profraw/%p-%m.profraw"

# Default: every lib and integration test of the workspace. Arguments replace that selection
# (e.g. `scripts/coverage.sh -p batpak-model --test fuzz_corpus_replay`).
args=("$@")
if [[ ${#args[@]} == 0 ]]; then
    args=(--workspace --lib --tests)
fi
cargo test --release "${args[@]}" --no-fail-fast -- --test-threads 2

"$profdata" merge -sparse "$out"/profraw/*.profraw -o "$out/merged.profdata"

# llvm-cov takes the first binary as a positional argument, the others with -object.
objects=()
while IFS= read -r exe; do
    if [[ ${#objects[@]} == 0 ]]; then
        objects+=("$exe")
    else
        objects+=(-object "$exe")
    fi
done < <(cargo test --release "${args[@]}" --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')

echo "== codec, log/recovery, writer =="
"$cov" report "${objects[@]}" -instr-profile="$out/merged.profdata" \
    src/codec.rs src/log/ src/writer/
echo "== all of src/ =="
"$cov" report "${objects[@]}" -instr-profile="$out/merged.profdata" \
    --ignore-filename-regex='(/\.cargo/|/rustc/|/tests/|/model/|/macros/)' src/
echo "per line: $cov show <the same objects> -instr-profile=$out/merged.profdata src/log/recover.rs"

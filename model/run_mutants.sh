#!/usr/bin/env bash
# Runs every mutant witness (model/src/mutants.rs) under loom (preemption bound <= 2) and
# shuttle (PCT depth 3, <= 5,000 iterations). Fails if any seeded bug survives.
# Release builds in separate target dirs so the normal build is not invalidated.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "=== mutants under loom (bound <= 2)"
RUSTFLAGS="--cfg loom --cfg batpak_mutant" cargo test -p batpak-model --release --target-dir target/loom \
  --test mutants -- --nocapture
echo "=== mutants under shuttle (PCT depth 3, <= 5,000 iterations)"
RUSTFLAGS="--cfg shuttle --cfg batpak_mutant" cargo test -p batpak-model --release --target-dir target/shuttle \
  --test mutants -- --nocapture
echo "=== every mutant caught"

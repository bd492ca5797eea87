# batpak task runner. `just --list` shows the recipes.

import? 'spec/model-check.just'
import? 'fuzz/fuzz.just'
import? 'model/crash.just'
import? 'model/sim.just'
import? 'model/trace.just'
import? 'model/models.just'

# The README's test command.
test:
    cargo test --workspace

# Prove the loom and shuttle arms of the sync shim (and everything using it) compile and are
# lint-clean (clippy runs the compiler's checks too).
check-models-compile:
    RUSTFLAGS="--cfg loom" cargo clippy --workspace --lib --target-dir target/loom -- -D warnings
    RUSTFLAGS="--cfg shuttle" cargo clippy --workspace --lib --target-dir target/shuttle -- -D warnings

# Formatting and lints.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Model checks at CI size: the model arms compile; TLC on the spec, its mutants and the
# oracle/TLC agreement; crash states and I/O faults against the oracle (release); the
# multi-session simulator (2,000 seeds); trace conformance; loom + shuttle over the real
# store, and their mutants.
model-check: check-models-compile
    just model-check-spec
    just crash
    just simulate
    just model-check-traces
    just model-check-concurrency

# Nightly (hours): loom bound 4 + shuttle 1,000,000 iterations, crash-deep, 100,000 simulator
# seeds, the large TLC config.
model-check-deep:
    just model-check-concurrency-deep
    just crash-deep
    just simulate-deep
    just tlc-nightly

# Upstream batpak 0.7.0's own examples, unmodified, built and run against this crate; fails
# when one listed in tests/upstream/examples.expected regresses.
upstream-examples:
    scripts/upstream-compat.sh examples

# Upstream's integration test files, unmodified, against this crate; fails when one listed in
# tests/upstream/tests.expected regresses.
upstream-tests:
    scripts/upstream-compat.sh tests

# Benchmarks (numbers printed, never asserted).
bench:
    cargo bench --bench throughput

# Everything CI runs.
ci: lint test model-check

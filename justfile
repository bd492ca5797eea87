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

# The mutant build (`--cfg batpak_mutant`, see src/mutant.rs): every test again, the seeded-bug
# witnesses included (they exist only in this build). Its own target dir.
test-mutants:
    RUSTFLAGS="--cfg batpak_mutant" cargo test --workspace --target-dir target/mutant

# Lints of the mutant build (its witnesses are compiled only there).
lint-mutants:
    RUSTFLAGS="--cfg batpak_mutant" cargo clippy --workspace --all-targets --target-dir target/mutant -- -D warnings

# Prove the loom and shuttle arms of the sync shim (and everything using it) compile and are
# lint-clean (clippy runs the compiler's checks too). batpak-jetstream is left out: it uses
# no sync shim (its own runtime thread), and tokio under `--cfg loom` drops `tokio::net`.
check-models-compile:
    RUSTFLAGS="--cfg loom --cfg batpak_mutant" cargo clippy --workspace --exclude batpak-jetstream --lib --target-dir target/loom -- -D warnings
    RUSTFLAGS="--cfg shuttle --cfg batpak_mutant" cargo clippy --workspace --exclude batpak-jetstream --lib --target-dir target/shuttle -- -D warnings

# The API docs, warnings denied (broken or private links, unclosed tags, ...).
doc:
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace

# Formatting and lints.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    just lint-mutants

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

# How reopen, memory, cursor drain and queries grow with N events (benches/SCALE.md).
bench-scale n="1000000":
    cargo bench --bench scale -- {{n}}

# Side by side with upstream batpak 0.7.0 in one interleaved run (benches/peer/README.md); not in CI.
bench-peer:
    cd benches/peer && SUBJECTS="${SUBJECTS:-batpak ours}" ./run_all.sh

# The JetStream replication tests (batpak-jetstream): real nats-server processes on loopback,
# a single server and a three-node cluster; they skip, saying why, without nats-server.
jetstream-faults:
    cargo test -p batpak-jetstream -- --nocapture

# The same, each fault repeated more (40 SIGKILLs, 12 node kills, 5 cluster restarts).
jetstream-deep:
    BATPAK_JS_DEEP=1 cargo test -p batpak-jetstream -- --nocapture

# Replication throughput and end-to-end lag, single server and three-node cluster (printed).
bench-jetstream:
    cargo run --release -p batpak-jetstream --example replication_bench

# Everything CI runs.
ci: lint doc test test-mutants model-check

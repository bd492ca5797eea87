#!/usr/bin/env bash
# TLC on spec/Compaction.tla: the unmutated spec must pass Compaction_ci.cfg and every mutant
# must be refuted by the invariant its seeded bug breaks (prints the mutant table).
# Skips without java, like spec/check.sh.
# The runner is spec/tlc_check.sh.
set -uo pipefail
cd "$(dirname "$0")"
# shellcheck source=spec/tlc_check.sh
. ./tlc_check.sh

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
tlc_check Compaction 34 18 "$MUTANTS"

#!/usr/bin/env bash
# TLC on spec/Delivery.tla: the unmutated spec must pass Delivery_ci.cfg and every mutant
# must be refuted by the invariant its seeded bug breaks (prints the mutant table).
# Skips without java, like spec/check.sh.
# The runner is spec/tlc_check.sh.
set -uo pipefail
cd "$(dirname "$0")"
# shellcheck source=spec/tlc_check.sh
. ./tlc_check.sh

# mutant                      expected violation     (the implementation mutant it mirrors)
MUTANTS="
checkpoint_not_atomic         InvExactlyOnce         CheckpointNotAtomic
checkpoint_past_durable       InvCheckpointDurable   CheckpointAckBeforeDurable
resume_at_head                InvNoSkip              -
"
tlc_check Delivery 28 22 "$MUTANTS"

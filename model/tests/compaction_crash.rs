//! Crash states of compaction against its oracle (`batpak_model::compaction`): every workload
//! of up to 2 operations (3 and both durability modes with `BATPAK_CRASH_DEEP=1`) over the
//! canonical alphabet, compacted with a crash at every disk operation (power loss images and a
//! process crash); and the seeded bugs it is shown to catch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak_model::compaction::{enumerate, CompactionStats};
use batpak_model::crash_states::consumer_workloads;
use batpak_model::workload::{workloads, Mode};
use std::time::Instant;

fn max_len() -> usize {
    if std::env::var("BATPAK_CRASH_DEEP").is_ok() {
        3
    } else {
        2
    }
}

#[test]
fn compaction_crash_states() {
    // The workload's mode only changes what its process crash leaves in the page cache, which
    // recovery then makes durable; the deferred mode is enumerated in the deep run.
    let modes: &[Mode] = if std::env::var("BATPAK_CRASH_DEEP").is_ok() {
        &[Mode::DURABLE, Mode::DEFERRED]
    } else {
        &[Mode::DURABLE]
    };
    for &mode in modes {
        let start = Instant::now();
        let mut stats = CompactionStats::default();
        let mut list = workloads(max_len());
        list.extend(consumer_workloads());
        enumerate(mode, &list, &mut stats).unwrap_or_else(|v| panic!("{v}"));
        println!(
            "compaction crash states (deferred: {}): {stats:?} in {:.1} s",
            mode.deferred,
            start.elapsed().as_secs_f64()
        );
        assert!(stats.compacted > 10, "{stats:?}");
        assert!(stats.states > 1000, "{stats:?}");
        assert!(stats.recovery_states > 0, "{stats:?}");
    }
}

#[cfg(batpak_mutant)]
mod mutants {
    use super::*;
    use batpak_model::Mutant;

    fn caught(mutant: Mutant) -> String {
        let mode = Mode {
            deferred: false,
            mutant,
        };
        let mut stats = CompactionStats::default();
        let v = enumerate(mode, &workloads(2), &mut stats).expect_err("the seeded bug survives");
        assert_eq!(v.inv, "INV-COMPACTION", "{v}");
        v.to_string()
    }

    #[test]
    fn mutant_compaction_deletes_before_durable_is_caught() {
        println!("{}", caught(Mutant::CompactionDeletesBeforeDurable));
    }

    /// Recovery unlinks the superseded segments before it syncs the directory holding the
    /// compaction's rename (the order before a71efeb): a process crash after the rename, then
    /// a power loss during recovery that keeps the unlinks and loses the rename.
    #[test]
    fn mutant_recovery_unlinks_before_dir_sync_is_caught() {
        let v = caught(Mutant::RecoveryUnlinksBeforeDirSync);
        assert!(v.contains("power loss at op"), "{v}");
        println!("{v}");
    }

    #[test]
    fn mutant_compaction_splits_unit_is_caught() {
        println!("{}", caught(Mutant::CompactionSplitsUnit));
    }
}

//! The seeded bugs each scenario must catch (issue 5, item 4), and mutant names for schedule
//! files.

use crate::scenarios::{FenceEnd, Scenario};
use crate::Mutant;

/// Every run-time mutant the scenarios use, by name (`format!("{m:?}")`).
pub const MUTANTS: &[Mutant] = &[
    Mutant::None,
    Mutant::AckBeforeFsync,
    Mutant::VisibleBeforeCommit,
    Mutant::CancelAsCommit,
    Mutant::DropBlocks,
    Mutant::BatchPublishPerEvent,
    Mutant::BackpressureAfterSend,
    Mutant::LossyDisconnect,
    Mutant::CheckpointNotAtomic,
    Mutant::WaitPointExclusive,
    Mutant::FrontierReadBeforeIndex,
];

/// The mutant named `name` (its `Debug` form).
pub fn mutant_from_name(name: &str) -> Option<Mutant> {
    MUTANTS.iter().copied().find(|m| format!("{m:?}") == name)
}

/// One scenario/mutant pair that the models must show to fail. For (e) the crash point is
/// searched: `crash_points` lists the `k`s tried, in order.
#[derive(Debug, Clone)]
pub struct Witness {
    /// Issue item letter, for reports.
    pub item: char,
    /// The scenarios tried (the first one that fails counts).
    pub scenarios: Vec<Scenario>,
    /// The seeded bug.
    pub mutant: Mutant,
}

/// Which seeded bug each scenario is shown to catch.
///
/// (h) is not listed: under loom it runs without its fence, and there `BatchPublishPerEvent`
/// survives (bound 2): delivery reads only below the durable frontier, which moves once per
/// group after the whole batch is indexed. With the fence (std, shuttle) it is caught, since
/// a fence's events are durable before its commit publishes them one by one (shuttle PCT,
/// iteration 378). The index readers of (a) and (d) catch it under both tools.
///
/// `Mutant::FenceCommitAckBeforeDurable` is not listed for (e): in the default durable mode every
/// group is fsynced anyway, so that mutant changes nothing there (a std probe of 50 runs per
/// crash point never saw it); it needs deferred mode, which relies on timeouts the models do
/// not have.
pub fn witnesses() -> Vec<Witness> {
    let one = |item, s: Scenario, mutant| Witness {
        item,
        scenarios: vec![s],
        mutant,
    };
    let crash_points = || {
        (0..=crate::scenarios::CRASH_OPS_MAX)
            .map(Scenario::CrashMidFence)
            .collect::<Vec<_>>()
    };
    vec![
        one(
            'a',
            Scenario::FenceCommitVsReader,
            Mutant::VisibleBeforeCommit,
        ),
        one(
            'a',
            Scenario::FenceCommitVsReader,
            Mutant::BatchPublishPerEvent,
        ),
        one(
            'b',
            Scenario::FenceEndVsOutbox(FenceEnd::Drop),
            Mutant::CancelAsCommit,
        ),
        one(
            'b',
            Scenario::FenceEndVsOutbox(FenceEnd::Cancel),
            Mutant::CancelAsCommit,
        ),
        one('c', Scenario::FenceDropFullChannel, Mutant::DropBlocks),
        one('d', Scenario::BatchVsReader, Mutant::BatchPublishPerEvent),
        Witness {
            item: 'e',
            scenarios: crash_points(),
            mutant: Mutant::AckBeforeFsync,
        },
        one('f', Scenario::ShutdownWithTickets, Mutant::AckBeforeFsync),
        one(
            'g',
            Scenario::TwoProducersBackpressure,
            Mutant::BackpressureAfterSend,
        ),
        one('i', Scenario::LossyLagVsWriter, Mutant::LossyDisconnect),
        Witness {
            item: 'j',
            scenarios: (0..=crate::scenarios::CONSUMER_CRASH_OPS_MAX)
                .map(Scenario::ConsumerCommitVsCrash)
                .collect(),
            mutant: Mutant::CheckpointNotAtomic,
        },
        one('k', Scenario::WaitVsWriter, Mutant::WaitPointExclusive),
    ]
}

//! Recovery: from the files in the data directory to what the store knows, in one place.
//!
//! [`recover`] scans the log ([`crate::log::scan`], which judges damage and cuts a torn tail
//! as the [`CutPolicy`] says), replays every record through the writer's own unit bookkeeping
//! ([`WriterState::recover_record`]: recovery and the live writer cannot disagree about what is
//! visible), publishes what becomes visible through the writer's publish routine
//! ([`WriterState::publish_into`]), and returns one value: the writer's state, the index and
//! the report. A writable open cuts on disk and then starts the writer on the state; a
//! read-only open cuts in memory and only reads.

use crate::env::Disk;
use crate::error::StoreError;
use crate::index::{IdTableBuilder, Index, Slot};
use crate::log::{self, CutPolicy, RecoveryReport};
use crate::mutant::{Bugs, Mutant};
use crate::sync::{channel, thread};
use crate::writer::state::WriterState;
use std::path::Path;

/// What recovery rebuilt.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// The writer's state after the last record: sequences, entity chains, idempotency keys,
    /// the hybrid logical clock (no unit left open).
    pub state: WriterState,
    /// Every visible event.
    pub index: Index,
    /// What the scan found (segments, records, the torn tail and what was cut).
    pub report: RecoveryReport,
}

/// Recovers the log in `dir`. Errors: I/O (with the file and operation) and corruption (with
/// the file and offset), never a torn tail.
#[cfg(test)]
pub(crate) fn recover(
    disk: &dyn Disk,
    dir: &Path,
    cut: CutPolicy,
    bugs: Bugs,
) -> Result<Recovered, StoreError> {
    recover_with(disk, dir, cut, bugs, true)
}

/// [`recover`], taking saved hashes from a valid recovery checkpoint ([`crate::checkpoint`])
/// when `checkpoint` is set: a cache that changes no result, only how many hashes recovery
/// computes.
pub(crate) fn recover_with(
    disk: &dyn Disk,
    dir: &Path,
    cut: CutPolicy,
    bugs: Bugs,
    checkpoint: bool,
) -> Result<Recovered, StoreError> {
    let mut state = WriterState::new(bugs);
    let log_bytes = log::segment::log_bytes(disk, dir);
    // Saved hashes of a valid recovery checkpoint (a cache: see `crate::checkpoint`).
    let (mut index, mut saved, helper) = if checkpoint {
        index_beside_checkpoint(disk, dir, bugs, log_bytes)
    } else {
        (sized_index(log_bytes, None), None, None)
    };
    let mut ready: Vec<Slot> = Vec::new();
    // Without a checkpoint the scan computes the events' hashes ahead, on two threads over
    // large windows; with one, recovery takes the saved ones and computes the rest (the log
    // written after the checkpoint, and events it does not cover) as it replays.
    let digest: Option<log::scan::Digest> = match &saved {
        Some(_) => None,
        None => Some(crate::writer::state::chains::event_hash),
    };
    let mut visit =
        |r: &log::Record<'_>, pos: log::DiskPos, hash: Option<&[u8; 32]>| -> Result<(), String> {
            let cached = match (&mut saved, &r.body) {
                (Some(s), log::RecordBody::Event(e)) if hash.is_none() => s.lookup(r.seq, e, pos),
                _ => None,
            };
            state.recover_record(r, pos, hash.or(cached.as_ref()))?;
            if !state.units.ready.is_empty() {
                // Reuse one buffer: recovery publishes record by record.
                std::mem::swap(&mut state.units.ready, &mut ready);
                publish(&mut state, &mut index, &mut ready);
                if let Some(h) = &helper {
                    h.send_ids(&mut index, IDS_CHUNK);
                }
            }
            Ok(())
        };
    let report = log::scan::scan_seeded(disk, dir, cut, digest, &mut visit, bugs)?;
    if let Some(s) = &saved {
        tracing::info!(
            covered = s.covered(),
            used = s.hits,
            "recovery took saved hashes from the recovery checkpoint"
        );
    }
    let mut ready = state.finish_recovery();
    publish(&mut state, &mut index, &mut ready);
    if let Some(h) = helper {
        h.finish(&mut index, bugs);
    }
    index.shrink();
    Ok(Recovered {
        state,
        index,
        report,
    })
}

/// An index with room for what the log holds, so recovery sizes it once instead of growing it
/// step by step: room for a record per 80 bytes of log (the fewest an event frame takes; the
/// untouched tail is not resident) and an id table for [`id_room`].
fn sized_index(log_bytes: u64, events: Option<u64>) -> Index {
    let mut index = Index::new();
    index.reserve(
        usize::try_from(log_bytes / 80).unwrap_or(0),
        id_room(log_bytes, events),
    );
    index
}

/// Ids the id table takes room for: one per 200 bytes of log (a frame with a 100-byte payload
/// takes ~190), or with `events`, the number a recovery checkpoint covers, those and a sixteenth
/// more for the log written after it.
fn id_room(log_bytes: u64, events: Option<u64>) -> usize {
    let guess = log_bytes / 200;
    usize::try_from(events.map_or(guess, |n| n.max(guess) + n / 16)).unwrap_or(0)
}

/// Fewest events a checkpoint must name for recovery to start its [`IndexHelper`] (below it,
/// starting a thread costs more than it saves).
const INDEX_HELPER_MIN: u64 = 4096;

/// Ids the opening thread hands the [`IndexHelper`] at once.
const IDS_CHUNK: usize = 8192;

/// Recovery's helper thread for a checkpoint open of a large log (through `crate::sync`). First
/// it sizes the index and maps its records' memory (for the events the checkpoint's head names)
/// while the opening thread reads and checks the checkpoint, and hands the index over; then it
/// builds the id table ([`IdTableBuilder`]) from the ids the opening thread sends as it
/// replays. On a 1M-event open the page faults and the id table's random accesses were about
/// half of the opening thread's time; replay itself, and every check, stays on the opening
/// thread.
struct IndexHelper {
    ids: channel::Sender<Vec<u128>>,
    table: thread::JoinHandle<IdTableBuilder>,
}

impl IndexHelper {
    /// Sends the ids `index` published since the last send, once there are `at_least`.
    fn send_ids(&self, index: &mut Index, at_least: usize) {
        if let Some(ids) = index.take_deferred_ids(at_least) {
            // A helper that is gone leaves the table short: `install_ids` builds it here.
            let _ = self.ids.send(ids);
        }
    }

    /// Sends the last ids and installs the helper's table (or builds one here if it failed).
    fn finish(self, index: &mut Index, bugs: Bugs) {
        let lose = bugs.has(Mutant::RecoveryIndexLosesLastIds);
        if !lose {
            self.send_ids(index, 0);
        }
        drop(self.ids);
        index.install_ids(self.table.join().ok(), !lose);
    }
}

/// The sized index, the checkpoint's saved hashes, and (for a checkpoint of at least
/// [`INDEX_HELPER_MIN`] events) the [`IndexHelper`] that prepared the index and builds its id
/// table. The checkpoint's head is only a size hint, bounded by the fewest bytes an event frame
/// takes; the saved hashes are used only if [`crate::checkpoint::load`] accepts the whole file.
fn index_beside_checkpoint(
    disk: &dyn Disk,
    dir: &Path,
    bugs: Bugs,
    log_bytes: u64,
) -> (
    Index,
    Option<crate::checkpoint::Hashes>,
    Option<IndexHelper>,
) {
    let events = crate::checkpoint::entries_hint(disk, dir).map(|n| n.min(log_bytes / 80));
    let started = events.filter(|&n| n >= INDEX_HELPER_MIN).and_then(|n| {
        let (index_tx, index_rx) = channel::bounded::<Index>(1);
        let (ids, ids_rx) = channel::unbounded::<Vec<u128>>();
        let table = thread::Builder::new()
            .name("batpak-recovery-index".into())
            .spawn(move || {
                let mut index = Index::new();
                index.reserve(usize::try_from(log_bytes / 80).unwrap_or(0), 0);
                index.map_room(usize::try_from(n).unwrap_or(0));
                let _ = index_tx.send(index);
                let mut table = IdTableBuilder::with_room(id_room(log_bytes, Some(n)));
                while let Ok(chunk) = ids_rx.recv() {
                    table.extend(&chunk);
                }
                table
            })
            .ok()?;
        Some((index_rx, IndexHelper { ids, table }))
    });
    let saved = crate::checkpoint::load(disk, dir, bugs);
    match started.map(|(rx, h)| (rx.recv(), h)) {
        Some((Ok(mut index), helper)) => {
            index.defer_ids();
            (index, saved, Some(helper))
        }
        // No thread (resources), a failed one, or a small log: no helper.
        _ => (sized_index(log_bytes, events), saved, None),
    }
}

/// Publishes `ready` (emptied for reuse) and settles its idempotency keys.
fn publish(state: &mut WriterState, index: &mut Index, ready: &mut Vec<Slot>) {
    if state.bugs.has(Mutant::RecoveryRenumbers) {
        for (i, s) in ready.iter_mut().enumerate() {
            s.seq = (index.len() + i) as u64;
        }
    }
    state.publish_into(index, ready);
    state.settle_published(ready);
    ready.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::sim::SimDisk;
    use crate::env::Disk;
    use crate::region::Region;
    use crate::store::{Store, StoreConfig};
    use crate::sync::StdArc;
    use std::path::PathBuf;

    const DIR: &str = "/r";

    /// A store of `n` events in segments of at most `segment_max` bytes on `disk`.
    fn store_with(disk: &SimDisk, n: u32, segment_max: u64) {
        let cfg = StoreConfig::new(DIR)
            .with_lifecycle_events(false)
            .with_disk(StdArc::new(disk.clone()))
            .with_segment_max_bytes(segment_max);
        let store = Store::open(cfg).unwrap();
        let coord = crate::coordinate::Coordinate::new("acct:1", "s").unwrap();
        for i in 0..n {
            store
                .append(&coord, crate::event::EventKind::custom(1, 1), &i)
                .unwrap();
        }
        store.close().unwrap();
    }

    fn segments(disk: &SimDisk) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = disk
            .files()
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v
    }

    fn files(disk: &SimDisk) -> Vec<(PathBuf, Vec<u8>)> {
        segments(disk)
            .into_iter()
            .map(|p| {
                let bytes = disk.read_file(&p).unwrap();
                (p, bytes)
            })
            .collect()
    }

    fn visible(r: &Recovered) -> Vec<u128> {
        r.index
            .query(&Region::all())
            .iter()
            .map(|e| e.event_id)
            .collect()
    }

    /// Tears the last segment's last frame and appends an empty next segment file (an
    /// interrupted roll): a torn tail with a record-less segment after it.
    fn tear(disk: &SimDisk) -> PathBuf {
        let segs = segments(disk);
        let last = segs.last().unwrap().clone();
        let mut bytes = disk.read_file(&last).unwrap();
        bytes.truncate(bytes.len() - 3);
        disk.write_file_durably(&last, &bytes).unwrap();
        let next_id = segs.len() as u64;
        let next = PathBuf::from(DIR).join(format!("{next_id:020}.seg"));
        disk.write_file_durably(&next, &[0u8; 10]).unwrap();
        last
    }

    #[test]
    fn in_memory_recovery_of_a_torn_tail_changes_no_file_and_sees_what_a_cut_on_disk_keeps() {
        let disk = SimDisk::new();
        store_with(&disk, 20, 512);
        let last = tear(&disk);
        let before = files(&disk);
        let read_only =
            recover(&disk, Path::new(DIR), CutPolicy::InMemory, Bugs::default()).unwrap();
        assert_eq!(files(&disk), before, "the in-memory cut touches no file");
        let torn = read_only.report.torn_tail.clone().unwrap();
        assert_eq!(torn.file, last);
        assert!(read_only.report.removed_segments.is_empty());
        assert_eq!(visible(&read_only).len(), 19);
        // Again: the same answer (nothing was cut, nothing changes).
        let again = recover(&disk, Path::new(DIR), CutPolicy::InMemory, Bugs::default()).unwrap();
        assert_eq!(again.report, read_only.report);
        assert_eq!(visible(&again), visible(&read_only));
        // A writable recovery cuts the same tail on disk and keeps the same events.
        let cut = recover(&disk, Path::new(DIR), CutPolicy::OnDisk, Bugs::default()).unwrap();
        assert_eq!(visible(&cut), visible(&read_only));
        assert_eq!(cut.report.torn_tail, read_only.report.torn_tail);
        assert_eq!(cut.report.removed_segments.len(), 1);
        assert_eq!(cut.report.next_seq, read_only.report.next_seq);
        assert_eq!(cut.state.next_seq, read_only.state.next_seq);
        assert_eq!(disk.read_file(&last).unwrap().len() as u64, torn.offset);
    }

    #[test]
    fn in_memory_recovery_still_fails_closed_on_corruption() {
        let disk = SimDisk::new();
        store_with(&disk, 20, 1 << 20);
        let seg = segments(&disk)[0].clone();
        let mut bytes = disk.read_file(&seg).unwrap();
        // A flipped byte in the first frame's body, valid records after it.
        bytes[crate::log::SEGMENT_HEADER_BYTES + 20] ^= 0xFF;
        disk.write_file_durably(&seg, &bytes).unwrap();
        let before = files(&disk);
        let err = recover(&disk, Path::new(DIR), CutPolicy::InMemory, Bugs::default()).unwrap_err();
        assert!(
            matches!(&err, StoreError::CorruptSegment { detail, .. }
                if detail.offset() == Some(crate::log::SEGMENT_HEADER_BYTES as u64)
                    && detail.contains("follows")),
            "{err}"
        );
        assert_eq!(files(&disk), before);
    }

    #[test]
    fn hashes_computed_ahead_on_two_threads_are_the_writers_hashes() {
        // Enough events that read windows hand digests to the helper thread, in several
        // entities (so chains interleave) and a few segments.
        let disk = SimDisk::new();
        let cfg = StoreConfig::new(DIR)
            .with_lifecycle_events(false)
            .with_disk(StdArc::new(disk.clone()))
            .with_segment_max_bytes(400 << 10);
        let store = Store::open(cfg).unwrap();
        let coords: Vec<_> = (0..7)
            .map(|i| crate::coordinate::Coordinate::new(format!("acct:{i}"), "s").unwrap())
            .collect();
        for i in 0..6000u32 {
            let c = &coords[(i as usize * 5) % coords.len()];
            store
                .append(c, crate::event::EventKind::custom(1, 1), &vec![i; 8])
                .unwrap();
        }
        let written: Vec<_> = store
            .query(&Region::all())
            .into_iter()
            .map(|e| (e.event_id, e.hash_chain))
            .collect();
        store.close().unwrap();
        assert!(segments(&disk).len() >= 2);
        let r = recover(&disk, Path::new(DIR), CutPolicy::InMemory, Bugs::default()).unwrap();
        let recovered: Vec<_> = r
            .index
            .query(&Region::all())
            .into_iter()
            .map(|e| (e.event_id, e.hash_chain))
            .collect();
        assert_eq!(recovered.len(), 6000);
        assert_eq!(recovered, written);
    }

    /// A checkpoint open of `disk` (whose helper builds the id table), with the seeded bug
    /// `bugs`, finds every event by id as a full scan does; else the INV-DURABLE violation
    /// (an event the open made visible that `get` does not return).
    fn helper_index_is_the_full_scans(disk: &SimDisk, bugs: Bugs) -> Result<(), String> {
        let open = |checkpoint, bugs| {
            recover_with(disk, Path::new(DIR), CutPolicy::InMemory, bugs, checkpoint).unwrap()
        };
        let (with, full) = (open(true, bugs), open(false, Bugs::default()));
        let all = full.index.query(&Region::all());
        assert_eq!(all.len(), 5000);
        assert_eq!(with.index.query(&Region::all()), all);
        assert!(!with.index.contains(0));
        assert_eq!(with.report, full.report);
        match all
            .iter()
            .find(|e| with.index.get(e.event_id).as_ref() != Some(*e))
        {
            None => Ok(()),
            Some(e) => Err(format!(
                "INV-DURABLE: event {:032x} (sequence {}) is visible to a query but not to get",
                e.event_id, e.global_sequence
            )),
        }
    }

    #[test]
    fn a_checkpoint_open_whose_helper_builds_the_id_table_finds_every_event_as_a_full_scan() {
        let disk = SimDisk::new();
        store_with(&disk, 5000, 256 << 10);
        let hint = crate::checkpoint::entries_hint(&disk, Path::new(DIR));
        assert!(hint >= Some(INDEX_HELPER_MIN), "{hint:?}");
        assert_eq!(
            helper_index_is_the_full_scans(&disk, Bugs::default()),
            Ok(())
        );
        #[cfg(batpak_mutant)]
        {
            let caught = helper_index_is_the_full_scans(
                &disk,
                Bugs::seed(Mutant::RecoveryIndexLosesLastIds),
            );
            assert!(
                caught.as_ref().is_err_and(|e| e.starts_with("INV-DURABLE")),
                "seeded bug RecoveryIndexLosesLastIds not caught as INV-DURABLE: {caught:?}"
            );
        }
    }

    #[test]
    fn recovery_of_an_empty_directory_is_an_empty_store() {
        let disk = SimDisk::new();
        disk.create_dir_all(Path::new(DIR)).unwrap();
        for cut in [CutPolicy::InMemory, CutPolicy::OnDisk] {
            let r = recover(&disk, Path::new(DIR), cut, Bugs::default()).unwrap();
            assert_eq!(r.report, RecoveryReport::default());
            assert!(r.index.is_empty());
            assert_eq!(r.state.next_seq, 0);
        }
    }
}

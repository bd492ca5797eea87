//! Projections in the simulator (INV-PROJECTION): every session's store folds the workload's
//! entities with in-memory snapshots on (one kept after every fold that read a new event, so
//! almost every fold resumes from one) and a [`NativeCache`] on a disk of its own
//! ([`CACHE_DIR`] on the simulator's cache disk, which shares the store's fate: a process crash
//! keeps its page cache, a power loss keeps an image of it). After every recovery and after
//! every client operation that moved the visible or durable frontier the simulator projects
//! and compares with a plain fold, written here without the store ([`Digest::fold`]), of the
//! visible stream:
//! - after a recovery, of the oracle's `Recover` (the visible sequences the spec gives the
//!   crash image; the simulator has already held the store's visible set to them) with the
//!   payloads of the written log ([`WrittenLog`], read from the disk by the independent
//!   reader);
//! - during a session, of the store's visible set (which the live checks hold to what the
//!   client was told) with the written log's payloads.
//!
//! What is projected: `project` of each workload entity, `project_at` at the middle of each
//! entity's visible stream (time travel never serves a snapshot past its bound), and
//! `project_region` over the workload scope (a region read model, global order). The state
//! ([`Digest`]) is order-sensitive and covers each event's id, entity clock and payload bytes
//! (the raw MessagePack lane: big appends carry raw bytes), so a skipped, repeated, reordered,
//! stale or foreign event changes it.
//!
//! The cache half: every row on the cache disk names an event of the written log (the
//! record at its watermark is an event with the row's last event id) that is on the platter,
//! so no crash can take back what a row covers ([`check_cache_rows`]).
//!
//! A fold that fails is a violation unless a fault is planned in the session (a read the
//! fault hit); those are counted in [`ProjectionStats::errors`]. The folds read the log, so
//! they wait while a fault planned at a fixed disk operation has yet to fire (see
//! `Sim::index_fault_pending`): the fault still hits the operation it was planned for.

use crate::check::{violation, Check};
use crate::conformance::WrittenLog;
use crate::record::{LogEvent, LogRecord};
use crate::workload::{ENTITIES, KIND, SCOPE};
use batpak::__testing::env::SimDisk;
use batpak::coordinate::Region;
use batpak::event::{EventKind, EventSourced, ProjectionEvent, RawMsgpackInput};
use batpak::store::{Freshness, NativeCache, SnapshotPolicy, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// The projection cache's directory on the cache disk.
pub const CACHE_DIR: &str = "/cache";

/// The in-memory snapshot policy of the simulated stores: a snapshot after every fold that
/// read at least one event past the last one.
pub const SNAPSHOTS: SnapshotPolicy = SnapshotPolicy {
    every_n_events: 1,
    max_entries: 64,
};

/// The projection every check folds: how many events, the last entity clock, and an
/// order-sensitive hash of every event's id, clock and payload bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Events folded.
    pub events: u64,
    /// The last one's entity clock.
    pub last_clock: u32,
    /// The hash of everything folded, in order.
    pub hash: u64,
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Digest {
    /// Folds one event.
    pub fn step(&mut self, event_id: u128, clock: u32, payload: &[u8]) {
        let mut h = self.hash.wrapping_add(0x9E37_79B9_7F4A_7C15);
        for w in [
            event_id as u64,
            (event_id >> 64) as u64,
            u64::from(clock),
            payload.len() as u64,
        ] {
            h = mix(h ^ w);
        }
        for chunk in payload.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            h = mix(h ^ u64::from_le_bytes(b));
        }
        self.hash = h;
        self.events += 1;
        self.last_clock = clock;
    }

    /// The plain fold: `None` for no event, as `project` answers.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a LogEvent>) -> Option<Digest> {
        let mut state: Option<Digest> = None;
        for e in events {
            state
                .get_or_insert_with(Digest::default)
                .step(e.event_id, e.clock, &e.payload);
        }
        state
    }
}

impl EventSourced for Digest {
    type Input = RawMsgpackInput;

    fn from_events(events: &[ProjectionEvent<Self>]) -> Option<Self> {
        let mut state: Option<Digest> = None;
        for e in events {
            state.get_or_insert_with(Digest::default).apply_event(e);
        }
        state
    }

    fn apply_event(&mut self, event: &ProjectionEvent<Self>) {
        self.step(
            event.header.event_id,
            event.header.position.clock,
            &event.payload,
        );
    }

    fn relevant_event_kinds() -> &'static [EventKind] {
        &[KIND]
    }

    fn supports_incremental_apply() -> bool {
        true
    }
}

/// What the projection checks exercised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectionStats {
    /// Folds compared with the plain fold (`project`, `project_at`, `project_region`).
    pub folds: u64,
    /// Of them right after a recovery.
    pub after_recovery: u64,
    /// Folds of a non-empty stream.
    pub non_empty: u64,
    /// Cache rows checked against the written log and the platter.
    pub cache_rows: u64,
    /// Folds not compared: they failed in a session with a planned fault, or a visible event
    /// of theirs is gone from the written log (a failed fsync dropped its pages).
    pub errors: u64,
}

impl ProjectionStats {
    /// Adds `o` to `self`.
    pub fn add(&mut self, o: &ProjectionStats) {
        self.folds += o.folds;
        self.after_recovery += o.after_recovery;
        self.non_empty += o.non_empty;
        self.cache_rows += o.cache_rows;
        self.errors += o.errors;
    }
}

/// Opens the projection cache of a session's store on `cache_disk`.
///
/// # Panics
/// If the cache directory cannot be created (the cache disk has no faults).
pub fn open_cache(cache_disk: &SimDisk) -> NativeCache {
    NativeCache::open_with_disk(CACHE_DIR, Arc::new(cache_disk.clone()))
        .unwrap_or_else(|e| panic!("projection cache on the cache disk: {e}"))
}

/// A visible event as the store or the oracle lists it (its record may be missing from the
/// written log: a failed fsync that dropped its pages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visible {
    /// Global sequence.
    pub seq: u64,
    /// Entity.
    pub entity: String,
    /// Scope.
    pub scope: String,
    /// Kind.
    pub kind: u16,
}

impl Visible {
    /// The store's view of a visible event.
    pub fn of_entry(e: &batpak::store::IndexEntry) -> Visible {
        Visible {
            seq: e.global_sequence,
            entity: e.coord.entity().to_owned(),
            scope: e.coord.scope().to_owned(),
            kind: e.kind.as_raw(),
        }
    }

    /// The oracle's: the written log's event at `seq` (`None` if it is none).
    pub fn of_log(log: &[LogRecord], seq: u64) -> Option<Visible> {
        let r = log
            .get(usize::try_from(seq).ok()?)
            .filter(|r| r.seq == seq)?;
        let e = r.event()?;
        Some(Visible {
            seq,
            entity: e.entity.clone(),
            scope: e.scope.clone(),
            kind: e.kind,
        })
    }
}

fn compare(
    what: &str,
    got: Result<Option<Digest>, StoreError>,
    want: Option<Option<Digest>>,
    faults: bool,
    stats: &mut ProjectionStats,
) -> Check {
    let Some(want) = want else {
        // An event of this stream is unreadable (its pages dropped): not comparable.
        stats.errors += 1;
        return Ok(());
    };
    match got {
        Ok(got) if got == want => {
            stats.folds += 1;
            stats.non_empty += u64::from(want.is_some());
            Ok(())
        }
        Ok(got) => Err(violation(
            "INV-PROJECTION",
            format!("{what} is {got:?}, the plain fold of the visible stream is {want:?}"),
        )),
        Err(_) if faults => {
            stats.errors += 1;
            Ok(())
        }
        Err(e) => Err(violation(
            "INV-PROJECTION",
            format!("{what} failed without any fault: {e}"),
        )),
    }
}

/// The plain fold of `stream`'s events read from `log` (`None`: one of them is not in the
/// written log).
fn fold_stream(log: &[LogRecord], stream: &[&Visible]) -> Option<Option<Digest>> {
    let mut events = Vec::with_capacity(stream.len());
    for v in stream {
        let r = log
            .get(usize::try_from(v.seq).ok()?)
            .filter(|r| r.seq == v.seq)?;
        events.push(r.event()?);
    }
    Some(Digest::fold(events))
}

/// Projects every workload entity (`project`, `project_at` at the middle of its stream) and
/// the workload scope (`project_region`) and compares each with the plain fold of the
/// `visible` events (their records read from `log`, indexed by sequence). `faults`: a fault
/// is planned in the session, so a fold may fail, and a failed fsync may have dropped the
/// pages of a visible event (its stream is then not compared).
pub fn check_folds(
    store: &Store,
    log: &[LogRecord],
    mut visible: Vec<Visible>,
    faults: bool,
    stats: &mut ProjectionStats,
) -> Check {
    visible.sort_by_key(|v| v.seq);
    if !faults {
        if let Some(v) = visible.iter().find(|v| fold_stream(log, &[v]).is_none()) {
            return Err(violation(
                "INV-PROJECTION",
                format!("visible sequence {} is no event of the written log", v.seq),
            ));
        }
    }
    let kind = KIND.as_raw();
    let fresh = Freshness::Consistent;
    for entity in ENTITIES {
        let stream: Vec<&Visible> = visible
            .iter()
            .filter(|v| v.entity == entity && v.kind == kind)
            .collect();
        compare(
            &format!("project::<Digest>({entity:?})"),
            store.project::<Digest>(entity, &fresh),
            fold_stream(log, &stream),
            faults,
            stats,
        )?;
        if let Some(mid) = stream.get(stream.len() / 2).map(|v| v.seq) {
            let prefix: Vec<&Visible> = stream
                .iter()
                .copied()
                .take_while(|v| v.seq <= mid)
                .collect();
            compare(
                &format!("project_at::<Digest>({entity:?}, {mid})"),
                store.project_at::<Digest>(entity, mid),
                fold_stream(log, &prefix),
                faults,
                stats,
            )?;
        }
    }
    let region: Vec<&Visible> = visible
        .iter()
        .filter(|v| v.scope == SCOPE && v.kind == kind)
        .collect();
    compare(
        &format!("project_region::<Digest>(scope {SCOPE:?})"),
        store.project_region::<Digest>(&Region::scope(SCOPE), &fresh),
        fold_stream(log, &region),
        faults,
        stats,
    )
}

/// A cache row as [`NativeCache`] writes it (`spec/FORMAT.md`-style reading of
/// `src/store/projection/cache.rs`: magic, watermark, time, value length, blake3 of the
/// value, the value = folded count, last event id, state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheRow {
    /// The last folded event's sequence.
    pub watermark: u64,
    /// How many events the row folded.
    pub folded: u64,
    /// The last folded event's id.
    pub last_event_id: u128,
}

/// Reads a row file; `None` for a damaged or torn one (the store ignores those).
pub fn parse_row(bytes: &[u8]) -> Option<CacheRow> {
    const HEADER: usize = 8 + 8 + 8 + 8 + 32;
    if bytes.get(..8)? != b"BPKPROJ1" {
        return None;
    }
    let le = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    let watermark = le(8)?;
    let vlen = usize::try_from(le(24)?).ok()?;
    if bytes.len() != HEADER.checked_add(vlen)? {
        return None;
    }
    let value = bytes.get(HEADER..)?;
    let folded = u64::from_le_bytes(value.get(..8)?.try_into().ok()?);
    let last_event_id = u128::from_le_bytes(value.get(8..24)?.try_into().ok()?);
    Some(CacheRow {
        watermark,
        folded,
        last_event_id,
    })
}

/// Every intact row on the cache disk, with its file name.
pub fn cache_rows(cache_disk: &SimDisk) -> Vec<(String, CacheRow)> {
    let dir = Path::new(CACHE_DIR);
    cache_disk
        .files()
        .into_iter()
        .filter(|p| p.parent() == Some(dir) && p.extension().is_none())
        .filter_map(|p| {
            let row = parse_row(&cache_disk.read_file(&p)?)?;
            Some((p.file_name()?.to_string_lossy().into_owned(), row))
        })
        .collect()
}

/// The cache half of INV-PROJECTION at a quiet point: every row covers events that no crash
/// can take back. Its last event is the written log's record at its watermark, and that
/// record is on the platter (`platter`: the written log's records durable now, as a prefix).
/// `platter` is only asked for when a row lies at or past `known_durable` (records known to
/// be on the platter already); returns the platter's length if it was asked for.
pub fn check_cache_rows(
    cache_disk: &SimDisk,
    written: &WrittenLog,
    known_durable: u64,
    platter: impl FnOnce() -> u64,
    stats: &mut ProjectionStats,
) -> Result<Option<u64>, crate::check::Violation> {
    let rows = cache_rows(cache_disk);
    let mut on_platter = None;
    let mut platter = Some(platter);
    for (file, row) in rows {
        stats.cache_rows += 1;
        let record = usize::try_from(row.watermark)
            .ok()
            .and_then(|i| written.records.get(i));
        let names = record.is_some_and(|r| {
            r.seq == row.watermark && r.event().is_some_and(|e| e.event_id == row.last_event_id)
        });
        if !names {
            return Err(violation(
                "INV-PROJECTION",
                format!(
                    "cache row {file} covers {} events up to seq {} (event {:x}), which the \
                     written log does not hold there",
                    row.folded, row.watermark, row.last_event_id
                ),
            ));
        }
        if row.watermark >= known_durable {
            let p = match on_platter {
                Some(p) => p,
                None => {
                    let p = platter.take().map_or(0, |f| f());
                    on_platter = Some(p);
                    p
                }
            };
            if row.watermark >= p {
                return Err(violation(
                    "INV-PROJECTION",
                    format!(
                        "cache row {file} covers {} events up to seq {}, only {p} records are \
                         on the platter: a power loss now takes back events the row has folded",
                        row.folded, row.watermark
                    ),
                ));
            }
        }
    }
    Ok(on_platter)
}

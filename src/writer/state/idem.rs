//! Idempotency (INV-IDEMPOTENT): what the writer remembers of every keyed append, and which
//! events are written but not yet visible (valid causes for later writes).

use super::super::AppendItem;
use crate::append::AppendReceipt;
use crate::codec::Unit;
use crate::coordinate::Coordinate;
use crate::error::StoreError;
use crate::event::EventKind;
use crate::index::{IdMap, Index, Slot};

/// What the writer remembers of an idempotent append.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdemInfo {
    pub receipt: AppendReceipt,
    pub coord: u32,
    pub kind: EventKind,
    /// Where the event sat in its atomic batch (`None` for a single append), so that a batch
    /// retry can be told from a partial or reordered one.
    pub batch: Option<BatchSlot>,
}

/// An event's place in its atomic batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSlot {
    /// The batch id (the sequence of its first event).
    pub id: u64,
    /// The event's 0-based position in the batch.
    pub index: u32,
    /// How many events the batch has.
    pub len: u32,
}

/// An identical retry of an earlier batch: its receipts. `in_open_fence`: the original is
/// still pending under the open fence, so the retry shares its fate.
#[derive(Debug)]
pub(crate) struct BatchRetry {
    pub receipts: Vec<AppendReceipt>,
    pub in_open_fence: bool,
}

/// The first item of a batch whose key is known: (item index, key, what the key wrote).
type Known = (usize, u128, IdemInfo);

/// A batch item's error: (item index, error).
type ItemError = (usize, StoreError);

/// What tells a key's event still exists: the index the writer decides under (a compaction
/// may have removed it), and the seeded bug.
pub(crate) type Live<'a> = (&'a Index, crate::mutant::Bugs);

/// Idempotency keys and pending event ids.
#[derive(Debug, Default)]
pub(crate) struct Idempotency {
    /// Idempotency keys of visible events.
    idem: IdMap<u128, IdemInfo>,
    /// Idempotency keys written but not yet published, with the unit holding them.
    pending: IdMap<u128, (IdemInfo, Unit)>,
    /// Ids written but not yet published or cancelled (valid causes for later writes).
    pending_ids: IdMap<u128, ()>,
    /// Recovery only: batch id -> idempotency keys of its events, whose batch length is known
    /// only at the batch's commit record.
    batch_keys: IdMap<u64, Vec<u128>>,
}

/// The error of a key reused for another event.
fn conflict(key: u128, info: &IdemInfo, detail: String) -> StoreError {
    StoreError::IdempotencyConflict {
        key,
        original_event_id: info.receipt.event_id,
        detail,
    }
}

impl Idempotency {
    /// What the writer knows of an idempotency key: the original event, and its unit while it
    /// is still pending (`None` once visible). A visible key whose event `index` no longer
    /// holds (a compaction removed it, and the writer has not yet been told:
    /// [`Idempotency::forget_removed`]) is unknown, as after a reopen: the writer decides under
    /// the index's read lock and the compaction swaps under its write lock, so a retry is
    /// decided wholly before the swap (the original receipt) or wholly after it (written
    /// anew), never answered with an event that is already gone.
    pub fn known_key(
        &self,
        key: u128,
        index: &Index,
        bugs: crate::mutant::Bugs,
    ) -> Option<(IdemInfo, Option<Unit>)> {
        if let Some(info) = self.idem.get(&key) {
            if index.contains(info.receipt.event_id)
                || bugs.has(crate::mutant::Mutant::CompactionKeepsKeys)
            {
                return Some((*info, None));
            }
            // Removed: a retry written anew since (still pending) is what the key names now.
        }
        self.pending.get(&key).map(|(i, u)| (*i, Some(*u)))
    }

    /// A compaction removed the events `removed` (ids): their keys are forgotten, so a retry
    /// appends anew, as after a reopen (recovery never sees the removed events). A removed
    /// event is always visible before (compaction drops visible events and units that can
    /// never become visible), so no pending key or id is one of them; they are cleared too
    /// all the same. Returns how many keys were forgotten.
    pub fn forget_removed(&mut self, removed: &[u128]) -> usize {
        if removed.is_empty() {
            return 0;
        }
        let ids: IdMap<u128, ()> = removed.iter().map(|id| (*id, ())).collect();
        let before = self.idem.len() + self.pending.len();
        self.idem
            .retain(|_, info| !ids.contains_key(&info.receipt.event_id));
        self.pending
            .retain(|_, (info, _)| !ids.contains_key(&info.receipt.event_id));
        for id in removed {
            self.pending_ids.remove(id);
        }
        before - (self.idem.len() + self.pending.len())
    }

    /// Whether `id` names an event written but not yet published.
    pub fn is_pending(&self, id: u128) -> bool {
        self.pending_ids.contains_key(&id)
    }

    /// A written event: a cause from now on, and its key (if any) answers retries.
    pub fn written(&mut self, event_id: u128, key: Option<(u128, IdemInfo)>, unit: Unit) {
        if let Some((key, info)) = key {
            self.pending.insert(key, (info, unit));
        }
        self.pending_ids.insert(event_id, ());
    }

    /// A single append's key: `Some(receipt)` if the key already wrote this very event, with
    /// the open fence it is still pending in (the retry shares its fate); a conflict if it
    /// wrote another one.
    pub fn hit(
        &self,
        key: u128,
        item: &AppendItem,
        content_hash: &[u8; 32],
        coords: &[Coordinate],
        open_fence: Option<u64>,
        live: Live<'_>,
    ) -> Result<Option<(AppendReceipt, Option<u64>)>, StoreError> {
        let Some((info, unit)) = self.known_key(key, live.0, live.1) else {
            return Ok(None);
        };
        let diffs = retry_differs(&info, item, content_hash, coords);
        if !diffs.is_empty() {
            return Err(conflict(
                key,
                &info,
                format!("the retry differs in {}", diffs.join(", ")),
            ));
        }
        let pending_fence = unit
            .and_then(Unit::fence)
            .filter(|f| open_fence == Some(*f));
        Ok(Some((info.receipt, pending_fence)))
    }

    /// A batch's idempotency keys. `Ok(None)`: no key is known, write the batch.
    /// `Ok(Some(..))`: the batch repeats an earlier batch exactly (every item keyed, the same
    /// keys in the same order, the same entity, scope, kind and payload each, nothing more or
    /// less): its receipts, nothing written. Anything in between (a known key next to a new or
    /// missing one, another order, a part of the batch, keys of single appends or of several
    /// batches, a changed item) is refused as `(item index, IdempotencyConflict)` saying what
    /// differs; so is a key used twice within the batch. A batch is written whole or not at
    /// all, so it is never retried item by item.
    pub fn batch_retry(
        &self,
        items: &[AppendItem],
        coords: &[Coordinate],
        open_fence: Option<u64>,
        live: Live<'_>,
    ) -> Result<Option<BatchRetry>, ItemError> {
        let Some(known) = self.first_known_key(items, live)? else {
            return Ok(None);
        };
        let retry = Retry {
            idem: self,
            coords,
            known,
            live,
        };
        let mut batch_id = None;
        let mut receipts = Vec::with_capacity(items.len());
        let mut in_open_fence = false;
        for (i, item) in items.iter().enumerate() {
            let (receipt, unit) = retry.item(i, item, &mut batch_id)?;
            if let (Some(u), Some(open)) = (unit, open_fence) {
                in_open_fence |= u.fence() == Some(open);
            }
            receipts.push(receipt);
        }
        retry.whole(items.len())?;
        Ok(Some(BatchRetry {
            receipts,
            in_open_fence,
        }))
    }

    /// The first item whose key is known: (item index, key, what the key wrote). A key used
    /// twice within the batch is refused.
    fn first_known_key(
        &self,
        items: &[AppendItem],
        live: Live<'_>,
    ) -> Result<Option<Known>, ItemError> {
        let mut first_use: IdMap<u128, usize> = IdMap::default();
        let mut known = None;
        for (i, item) in items.iter().enumerate() {
            let Some(key) = item.options.idempotency_key else {
                continue;
            };
            if let Some(&j) = first_use.get(&key) {
                return Err((
                    i,
                    StoreError::Configuration(format!(
                        "idempotency key {key:032x} is used twice in one batch (items {j} and {i}); each event needs its own key"
                    )),
                ));
            }
            first_use.insert(key, i);
            if known.is_none() {
                known = self
                    .known_key(key, live.0, live.1)
                    .map(|(info, _)| (i, key, info));
            }
        }
        Ok(known)
    }

    /// Records the published slots' idempotency keys as settled.
    pub fn settle_published(&mut self, published: &[Slot]) {
        if self.pending.is_empty() && self.pending_ids.is_empty() {
            return;
        }
        for s in published {
            self.pending_ids.remove(&s.event_id);
        }
        if !self.pending.is_empty() {
            let published_ids: IdMap<u128, ()> =
                published.iter().map(|s| (s.event_id, ())).collect();
            let keys: Vec<u128> = self
                .pending
                .iter()
                .filter(|(_, (info, _))| published_ids.contains_key(&info.receipt.event_id))
                .map(|(k, _)| *k)
                .collect();
            for k in keys {
                if let Some((info, _)) = self.pending.remove(&k) {
                    self.idem.insert(k, info);
                }
            }
        }
    }

    /// Forgets the keys and ids of events that will never become visible (a cancelled fence).
    pub fn forget(&mut self, dropped: &[Slot]) {
        for s in dropped {
            self.pending_ids.remove(&s.event_id);
        }
        if !self.pending.is_empty() {
            let ids: IdMap<u128, ()> = dropped.iter().map(|s| (s.event_id, ())).collect();
            self.pending
                .retain(|_, (info, _)| !ids.contains_key(&info.receipt.event_id));
        }
    }

    /// Recovery: a recovered keyed event at `seq`; in a batch, its length is filled in at the
    /// batch's commit record ([`Idempotency::recovered_batch_commit`]).
    pub fn recovered_key(&mut self, key: u128, seq: u64, mut info: IdemInfo, unit: Unit) {
        info.batch = unit.batch().and_then(|b| {
            let index = u32::try_from(seq.checked_sub(b)?).ok()?;
            self.batch_keys.entry(b).or_default().push(key);
            Some(BatchSlot {
                id: b,
                index,
                len: 0,
            })
        });
        self.pending.insert(key, (info, unit));
    }

    /// Recovery: the batch's commit record gives its keys the batch length.
    pub fn recovered_batch_commit(&mut self, batch: u64, count: u32) {
        for key in self.batch_keys.remove(&batch).unwrap_or_default() {
            if let Some((info, _)) = self.pending.get_mut(&key) {
                if let Some(slot) = info.batch.as_mut() {
                    slot.len = count;
                }
            }
        }
    }

    /// Ends recovery: keys of hidden units never answer a retry.
    pub fn finish_recovery(&mut self) {
        self.batch_keys.clear();
        self.pending.clear();
        self.pending_ids.clear();
    }
}

/// What a retry changes of the original event: entity, scope, kind, payload.
fn retry_differs(
    info: &IdemInfo,
    item: &AppendItem,
    content_hash: &[u8; 32],
    coords: &[Coordinate],
) -> Vec<&'static str> {
    let coord = coords.get(info.coord as usize);
    let mut diffs = Vec::new();
    if coord.map(|c| c.entity()) != Some(item.coord.entity()) {
        diffs.push("entity");
    }
    if coord.map(|c| c.scope()) != Some(item.coord.scope()) {
        diffs.push("scope");
    }
    if info.kind != item.kind {
        diffs.push("kind");
    }
    if &info.receipt.content_hash != content_hash {
        diffs.push("payload");
    }
    diffs
}

/// Checks a batch retry item by item against the first known key's batch.
struct Retry<'a> {
    idem: &'a Idempotency,
    coords: &'a [Coordinate],
    /// The first item with a known key: (item index, key, what it wrote).
    known: Known,
    live: Live<'a>,
}

impl Retry<'_> {
    /// Item `i` must repeat item `i` of the same earlier batch: its receipt and pending unit.
    fn item(
        &self,
        i: usize,
        item: &AppendItem,
        batch_id: &mut Option<u64>,
    ) -> Result<(AppendReceipt, Option<Unit>), ItemError> {
        let Some(key) = item.options.idempotency_key else {
            return Err((i, self.mixed(i, "has no idempotency key")));
        };
        let Some((info, unit)) = self.idem.known_key(key, self.live.0, self.live.1) else {
            return Err((i, self.mixed(i, &format!("has a new key {key:032x}"))));
        };
        let refuse = |detail: String| (i, conflict(key, &info, detail));
        let Some(slot) = info.batch else {
            return Err(refuse(format!("item {i}'s key was used by a single append, not a batch: a batch retry must repeat one earlier batch")));
        };
        match *batch_id {
            None => *batch_id = Some(slot.id),
            Some(b) if b != slot.id => return Err(refuse(format!("item {i}'s key belongs to the batch at sequence {}, item 0's to the batch at sequence {b}: a batch retry must repeat one earlier batch", slot.id))),
            Some(_) => {}
        }
        if slot.index as usize != i {
            return Err(refuse(format!("the key was item {} of the original batch and is item {i} here: a retry must keep the original order", slot.index)));
        }
        let diffs = retry_differs(&info, item, &item.content_hash, self.coords);
        if !diffs.is_empty() {
            return Err(refuse(format!(
                "item {i} differs from the original in {}",
                diffs.join(", ")
            )));
        }
        Ok((info.receipt, unit))
    }

    /// A known key next to an unkeyed or new one.
    fn mixed(&self, i: usize, what: &str) -> StoreError {
        let (j, key, info) = self.known;
        conflict(
            key,
            &info,
            format!(
                "item {i} {what}, while item {j}'s key was already used: a retried batch must repeat the original batch exactly, every item keyed (a batch is written whole or not at all, never item by item)"
            ),
        )
    }

    /// The retry must be as long as the original batch.
    fn whole(&self, len: usize) -> Result<(), ItemError> {
        let (_, key, info) = self.known;
        let original_len = info.batch.map_or(0, |s| s.len) as usize;
        if original_len == len {
            return Ok(());
        }
        Err((
            0,
            conflict(
                key,
                &info,
                format!(
                    "the original batch had {original_len} items and this retry has {len}: a retry must repeat the whole batch"
                ),
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::append::DiskPos;
    use crate::mutant::Bugs;

    fn info(event_id: u128) -> IdemInfo {
        IdemInfo {
            receipt: AppendReceipt {
                event_id,
                sequence: 0,
                disk_pos: DiskPos {
                    segment_id: 0,
                    offset: 0,
                    length: 0,
                },
                content_hash: [0; 32],
                clock: 0,
                durable: true,
                key_id: [0; 32],
                signature: None,
            },
            coord: 0,
            kind: EventKind::custom(1, 1),
            batch: None,
        }
    }

    /// A key whose event a compaction removed is unknown before the writer is told, and a
    /// retry written anew since (still pending, the stale entry not yet replaced) is what the
    /// key names: a second retry in the same group answers it instead of writing again.
    #[test]
    fn a_removed_key_falls_through_to_the_retry_written_anew() {
        let (key, gone, anew) = (7u128, 1u128, 2u128);
        let mut idem = Idempotency::default();
        idem.idem.insert(key, info(gone));
        let index = Index::new();
        let live = |i: &Idempotency| i.known_key(key, &index, Bugs::default());
        assert!(
            live(&idem).is_none(),
            "INV-IDEMPOTENT: a removed event answers no retry"
        );
        idem.written(anew, Some((key, info(anew))), Unit::None);
        let (found, unit) = live(&idem).expect("the retry written anew");
        assert_eq!(found.receipt.event_id, anew);
        assert_eq!(unit, Some(Unit::None));
        // The writer is told: the stale entry goes, the new one stays.
        assert_eq!(idem.forget_removed(&[gone]), 1);
        assert_eq!(
            live(&idem).map(|(i, _)| i.receipt.event_id),
            Some(anew),
            "INV-IDEMPOTENT: the retry written anew keeps its key"
        );
        assert_eq!(idem.forget_removed(&[]), 0);
    }
}

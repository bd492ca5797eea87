//! Reads, written once for every kind of store (`impl<S> Store<S>`): queries of the index and
//! events read back from their frames through the log's catalog.

use super::{Store, StoreError};
use crate::codec::Unit;
use crate::event::{Event, EventHeader, EventKind, EventPayload, EventPosition, StoredEvent};
use crate::index::IndexEntry;
use crate::mutant::Mutant;
use crate::region::Region;
use serde::de::DeserializeOwned;

impl<S> Store<S> {
    /// The entity's visible events, oldest first.
    pub fn stream(&self, entity: &str) -> Vec<IndexEntry> {
        self.shared.index.read().stream(entity)
    }

    /// The scope's visible events.
    pub fn by_scope(&self, scope: &str) -> Vec<IndexEntry> {
        self.shared.index.read().by_scope(scope)
    }

    /// Visible events of one kind.
    pub fn by_fact(&self, kind: EventKind) -> Vec<IndexEntry> {
        self.shared.index.read().by_fact(kind)
    }

    /// Visible events of kind `T::KIND`.
    pub fn by_fact_typed<T: EventPayload>(&self) -> Vec<IndexEntry> {
        self.by_fact(T::KIND)
    }

    /// Visible events selected by `region`.
    pub fn query(&self, region: &Region) -> Vec<IndexEntry> {
        self.shared.index.read().query(region)
    }

    /// The event `event_id` and then its entity's earlier visible events, newest first, along
    /// the chain: at most `limit` events, read from disk as JSON (upstream's shape; empty if
    /// the event is not visible). A read that fails (an I/O error) ends the walk there, with a
    /// `tracing` warning: the result is always a prefix of the chain. The index entries
    /// alone, without the event itself and without disk reads: [`Store::walk_ancestor_entries`].
    pub fn walk_ancestors(
        &self,
        event_id: u128,
        limit: usize,
    ) -> Vec<StoredEvent<serde_json::Value>> {
        if limit == 0 || self.entry(event_id).is_none() {
            return Vec::new();
        }
        let earlier = self.walk_ancestor_entries(event_id, limit - 1);
        let ids = std::iter::once(event_id).chain(earlier.iter().map(|e| e.event_id));
        let mut out = Vec::with_capacity(earlier.len() + 1);
        for id in ids {
            match self.get(id) {
                Ok(e) => out.push(e),
                Err(error) => {
                    tracing::warn!(event_id = %format_args!("{id:032x}"), %error, "ancestor walk stopped at an unreadable event");
                    break;
                }
            }
        }
        out
    }

    /// The entity's earlier visible events before `event_id` (itself excluded), newest first,
    /// along the chain, at most `limit`: index entries, no disk read.
    pub fn walk_ancestor_entries(&self, event_id: u128, limit: usize) -> Vec<IndexEntry> {
        self.shared.index.read().walk_ancestors(event_id, limit)
    }

    /// Causes of `event_id`, nearest first, following causation links (at most `limit`).
    /// Stops at a root, at a cause outside the store (an external root) or at `limit`.
    pub fn causes(&self, event_id: u128, limit: usize) -> Vec<IndexEntry> {
        self.shared.index.read().causes(event_id, limit)
    }

    /// Visible events naming `event_id` as their cause.
    pub fn effects(&self, event_id: u128) -> Vec<IndexEntry> {
        self.shared.index.read().effects(event_id)
    }

    /// Visible events of a correlation (conversation), in order.
    pub fn correlated(&self, correlation_id: u128) -> Vec<IndexEntry> {
        self.shared.index.read().correlated(correlation_id)
    }

    /// The index entry of a visible event.
    pub fn entry(&self, event_id: u128) -> Option<IndexEntry> {
        self.shared.index.read().get(event_id)
    }

    /// Reads a visible event's raw MessagePack payload from disk (CRC verified).
    pub fn get_raw(&self, event_id: u128) -> Result<StoredEvent<Vec<u8>>, StoreError> {
        let entry = self.entry(event_id).ok_or(StoreError::NotFound(event_id))?;
        self.raw_event(&entry)
    }

    /// [`Store::get_raw`] with the atomic batch the event was written in (one read):
    /// `Some(batch)` for an event of an atomic batch (`append_batch`, an outbox flush, a
    /// batch under a fence), `None` for an event written alone (plain or fenced). A batch is
    /// named by the global sequence of its first event; its events sit at consecutive global
    /// sequences from there and became visible together. What a replicator needs to keep a
    /// batch atomic on the other side (`batpak-jetstream` sends it with each event).
    pub fn get_raw_with_batch(
        &self,
        event_id: u128,
    ) -> Result<(StoredEvent<Vec<u8>>, Option<u64>), StoreError> {
        let entry = self.entry(event_id).ok_or(StoreError::NotFound(event_id))?;
        self.raw_event_with_unit(&entry)
            .map(|(event, unit)| (event, unit.batch()))
    }

    /// The event of an index entry the caller holds (a cursor's), with its raw payload.
    ///
    /// No lock is held while the frame is read. A compaction that swaps segments between
    /// taking `entry` and reading its file moves the event (its old file is renamed over or
    /// removed), so that read can fail; then the event's position is looked up again and,
    /// when it moved, read again with the index's read lock held, which keeps the next swap
    /// out until the read is done. A read that fails where the event still is is a genuine
    /// error (I/O, damage: INV-CORRUPTION-FAILS-CLOSED) and is returned as it is; an event a
    /// compaction removed meanwhile is `NotFound`.
    pub(crate) fn raw_event(&self, entry: &IndexEntry) -> Result<StoredEvent<Vec<u8>>, StoreError> {
        self.raw_event_with_unit(entry).map(|(event, _)| event)
    }

    /// [`Store::raw_event`] and the unit the event was written in.
    fn raw_event_with_unit(
        &self,
        entry: &IndexEntry,
    ) -> Result<(StoredEvent<Vec<u8>>, Unit), StoreError> {
        if self.cfg.bugs.has(Mutant::CompactionReadRace) {
            // The seeded bug widens the window between taking the entry and reading it, so a
            // swap lands inside it in every run (the witness does not hang on scheduling luck).
            crate::sync::thread::sleep(std::time::Duration::from_millis(2));
        }
        match self.raw_event_at(entry) {
            Ok(e) => Ok(e),
            Err(first) if self.cfg.bugs.has(Mutant::CompactionReadRace) => Err(first),
            Err(first) => {
                let index = self.shared.index.read();
                match index.get(entry.event_id) {
                    None => {
                        tracing::debug!(event_id = %format_args!("{:032x}", entry.event_id), error = %first, "read raced a compaction that removed the event");
                        Err(StoreError::NotFound(entry.event_id))
                    }
                    Some(now) if now.disk_pos != entry.disk_pos => {
                        tracing::debug!(event_id = %format_args!("{:032x}", entry.event_id), error = %first, "read raced a compaction that moved the event; reading it again");
                        // Held until the read is done: no swap can move it again meanwhile.
                        let again = self.raw_event_at(&now);
                        drop(index);
                        again
                    }
                    Some(_) => Err(first),
                }
            }
        }
    }

    /// [`Store::raw_event`]'s single read at `entry`'s position.
    fn raw_event_at(&self, entry: &IndexEntry) -> Result<(StoredEvent<Vec<u8>>, Unit), StoreError> {
        let event_id = entry.event_id;
        let frame = self.catalog.read_event(entry.disk_pos, event_id)?;
        let event = StoredEvent {
            coordinate: entry.coord.clone(),
            event: Event {
                header: EventHeader {
                    event_id,
                    correlation_id: entry.correlation_id,
                    causation_id: entry.causation_id,
                    timestamp_us: frame.timestamp_us,
                    position: EventPosition {
                        wall_ms: entry.wall_ms,
                        clock: entry.clock,
                    },
                    payload_size: frame.payload.len() as u32,
                    event_kind: entry.kind,
                    flags: frame.flags,
                    content_hash: *blake3::hash(&frame.payload).as_bytes(),
                },
                payload: frame.payload,
                hash_chain: Some(entry.hash_chain),
            },
        };
        Ok((event, frame.unit))
    }

    /// Reads a visible event with its payload as JSON. MessagePack can hold what JSON
    /// cannot: a binary string reads as an array of byte numbers, a number or boolean map key
    /// as its JSON text (`get_typed` decodes such payloads exactly).
    pub fn get(&self, event_id: u128) -> Result<StoredEvent<serde_json::Value>, StoreError> {
        let raw = self.get_raw(event_id)?;
        let payload =
            crate::sourcing::msgpack_json::to_json(&raw.event.payload).map_err(StoreError::ser)?;
        Ok(StoredEvent {
            coordinate: raw.coordinate,
            event: Event {
                header: raw.event.header,
                payload,
                hash_chain: raw.event.hash_chain,
            },
        })
    }

    /// Reads a visible event with its payload decoded as `T` (its kind must be `T::KIND`).
    pub fn get_typed<T: EventPayload>(&self, event_id: u128) -> Result<StoredEvent<T>, StoreError> {
        self.register_kind::<T>()?;
        let e = self.get_as::<T>(event_id)?;
        if e.event.header.event_kind != T::KIND {
            return Err(StoreError::ser(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "event {event_id:032x} has kind {} but {} has kind {}",
                    e.event.header.event_kind,
                    std::any::type_name::<T>(),
                    T::KIND
                ),
            )));
        }
        Ok(e)
    }

    fn get_as<T: DeserializeOwned>(&self, event_id: u128) -> Result<StoredEvent<T>, StoreError> {
        let raw = self.get_raw(event_id)?;
        let payload: T = rmp_serde::from_slice(&raw.event.payload).map_err(StoreError::ser)?;
        Ok(StoredEvent {
            coordinate: raw.coordinate,
            event: Event {
                header: raw.event.header,
                payload,
                hash_chain: raw.event.hash_chain,
            },
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.cfg.dir
    }

    pub(crate) fn register_kind<T: EventPayload>(&self) -> Result<(), StoreError> {
        let name = std::any::type_name::<T>();
        let mut kinds = self.kinds.lock();
        match kinds.get(&T::KIND) {
            Some(first) if *first != name => Err(StoreError::DuplicateEventKind {
                kind: T::KIND,
                first,
                second: name,
            }),
            Some(_) => Ok(()),
            None => {
                kinds.insert(T::KIND, name);
                Ok(())
            }
        }
    }

    /// Registers a payload type up front, so a second type claiming the same kind is refused
    /// right away with `DuplicateEventKind` (typed appends and reads register implicitly).
    pub fn register_payload<T: EventPayload>(&self) -> Result<(), StoreError> {
        self.register_kind::<T>()
    }
}

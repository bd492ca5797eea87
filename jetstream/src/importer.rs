//! The importer: JetStream → store (a read replica).

use crate::reader::ReplicatedMessage;
use crate::runtime::{connect, Link};
use crate::verbatim::Value;
use crate::ReplicationError;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::Message;
use batpak::env::{IdSource, RandomIds};
use batpak::prelude::*;
use futures_util::StreamExt;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How an [`Importer`] reads the stream.
#[derive(Debug, Clone)]
pub struct ImporterConfig {
    servers: Vec<String>,
    stream: String,
    durable: String,
    batch: usize,
    ack_timeout: Duration,
}

impl ImporterConfig {
    /// Imports stream `stream` through the durable JetStream consumer `batpak-import`, 256
    /// messages per step.
    pub fn new(
        servers: impl IntoIterator<Item = impl Into<String>>,
        stream: impl Into<String>,
    ) -> Self {
        Self {
            servers: servers.into_iter().map(Into::into).collect(),
            stream: stream.into(),
            durable: "batpak-import".into(),
            batch: 256,
            ack_timeout: Duration::from_secs(5),
        }
    }
    /// The durable consumer's name (one per replica).
    pub fn with_durable(mut self, name: impl Into<String>) -> Self {
        self.durable = name.into();
        self
    }
    /// Messages per step (at least 1).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }
    /// How long a JetStream request is awaited.
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }
}

/// What one [`Importer::step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportStep {
    /// Events appended to the replica.
    pub imported: u64,
    /// Messages whose event the replica already had (a redelivery, a replay): acked only.
    pub skipped: u64,
    /// Messages of a reserved kind (system, effects), which the public API cannot append:
    /// acked and counted, not imported.
    pub reserved: u64,
    /// Messages of an atomic batch whose last message has not been fetched yet: held (not
    /// applied, not acked) until it comes, then the batch is applied as one.
    pub held: u64,
    /// The last stream sequence acked.
    pub last_stream_sequence: Option<u64>,
}

/// Hands the writer the source's event id for each imported event: the replica keeps the
/// source's ids (so causation links and lookups by id carry over). Anything else written to
/// the replica takes a fresh random id (and the importer reports `IdMismatch`).
#[derive(Debug, Default)]
struct MirrorIds {
    next: Mutex<VecDeque<u128>>,
    fallback: RandomIds,
}

impl MirrorIds {
    fn push(&self, id: u128) {
        if let Ok(mut q) = self.next.lock() {
            q.push_back(id);
        }
    }
    fn clear(&self) {
        if let Ok(mut q) = self.next.lock() {
            q.clear();
        }
    }
}

impl IdSource for MirrorIds {
    fn next_id(&self, now_us: i64) -> u128 {
        let queued = self.next.lock().ok().and_then(|mut q| q.pop_front());
        queued.unwrap_or_else(|| self.fallback.next_id(now_us))
    }
}

/// A seeded bug of the importer (mutant build only, `--cfg batpak_mutant`): the import
/// tests are shown to catch it.
#[cfg(batpak_mutant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImporterMutant {
    /// No seeded bug.
    #[default]
    None,
    /// Batch membership is ignored: a batch's events are applied one by one as their
    /// messages come (the old importer), so an import interrupted between two messages of a
    /// batch leaves part of it visible in the replica.
    EventByEvent,
    /// The durable consumer is taken as it is on open, not remade at its ack floor: what an
    /// earlier importer was delivered and did not ack (part of a batch it held) comes again
    /// only after the ack wait, behind newer messages, so the rest of that batch is applied
    /// without its start.
    NoRewindToAckFloor,
}

/// One unit to apply: a message written alone, or a whole batch.
type Unit = Vec<(Message, ReplicatedMessage)>;

/// What the writer was handed in a step, to await.
enum Pending {
    One(u128, AppendTicket),
    Batch(Vec<u128>, BatchAppendTicket),
}

/// Imports a replicated JetStream stream into a store: each event under its source event id
/// (and with it as idempotency key), its payload byte for byte, a source batch as one atomic
/// batch, and a message acked only once its event is durable, so a redelivered or replayed
/// message is skipped and an interrupted import resumes where the durable consumer stands.
pub struct Importer {
    store: Store<Open>,
    ids: Arc<MirrorIds>,
    cfg: ImporterConfig,
    link: Link,
    consumer: Option<PullConsumer>,
    /// The messages of a batch whose last message has not come yet (fetched, not acked).
    held: Unit,
    /// The last stream sequence taken in from the current consumer: a redelivery at or below
    /// it (a held message whose ack wait ran out) is already here.
    seen: Option<u64>,
    /// The ack floor of a consumer this importer deleted to remake it, until it is made.
    floor: Option<u64>,
    #[cfg(batpak_mutant)]
    mutant: ImporterMutant,
}

impl std::fmt::Debug for Importer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("cfg", &self.cfg)
            .field("held", &self.held.len())
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl Importer {
    /// Opens the replica store (`store` with the importer's id source: nothing else should
    /// write to a replica) and connects.
    pub fn open(store: StoreConfig, cfg: ImporterConfig) -> Result<Self, ReplicationError> {
        let ids = Arc::new(MirrorIds::default());
        let store = Store::open(store.with_id_source(ids.clone()))?;
        let link = connect(&cfg.servers, "batpak-importer", cfg.ack_timeout)?;
        Ok(Self {
            store,
            ids,
            cfg,
            link,
            consumer: None,
            held: Vec::new(),
            seen: None,
            floor: None,
            #[cfg(batpak_mutant)]
            mutant: ImporterMutant::None,
        })
    }

    /// Seeds a bug (mutant build only).
    #[cfg(batpak_mutant)]
    pub fn with_mutant(mut self, mutant: ImporterMutant) -> Self {
        self.mutant = mutant;
        self
    }

    fn bug_event_by_event(&self) -> bool {
        #[cfg(batpak_mutant)]
        {
            self.mutant == ImporterMutant::EventByEvent
        }
        #[cfg(not(batpak_mutant))]
        {
            false
        }
    }

    fn bug_no_rewind(&self) -> bool {
        #[cfg(batpak_mutant)]
        {
            self.mutant == ImporterMutant::NoRewindToAckFloor
        }
        #[cfg(not(batpak_mutant))]
        {
            false
        }
    }

    /// The replica, for reads.
    pub fn store(&self) -> &Store<Open> {
        &self.store
    }

    /// Closes the connection and hands the replica back (a batch held for its last message
    /// is dropped unapplied; its messages are not acked, so they come again).
    pub fn into_store(self) -> Store<Open> {
        self.store
    }

    /// The durable consumer, (re)made at its ack floor: whatever an earlier importer (or this
    /// one, before an error) was delivered and did not ack (a batch it held, a step it did
    /// not finish) is delivered again first and in stream order, not after the ack wait
    /// behind newer messages (which would break a batch apart).
    fn consumer(&mut self) -> Result<PullConsumer, ReplicationError> {
        if let Some(c) = &self.consumer {
            return Ok(c.clone());
        }
        self.held.clear();
        self.seen = None;
        let js = self.link.js.clone();
        let (stream, durable) = (self.cfg.stream.clone(), self.cfg.durable.clone());
        let rewind = !self.bug_no_rewind();
        let floor = &mut self.floor;
        let c = self.link.rt.block_on(async move {
            let s = js
                .get_stream(&stream)
                .await
                .map_err(|e| ReplicationError::nats("get the stream", e))?;
            let info = match rewind {
                true => s.consumer_info(&durable).await,
                false => Err(ConsumerInfoErrorKind::NotFound.into()),
            };
            match info {
                Ok(info) if info.delivered.stream_sequence > info.ack_floor.stream_sequence => {
                    let f = info.ack_floor.stream_sequence;
                    tracing::info!(%durable, floor = f, delivered = info.delivered.stream_sequence, "importer: messages delivered but not acked; remaking the consumer at its ack floor");
                    // Remembered until the new consumer is made (a failure in between must
                    // not make it start over from the stream's first message).
                    *floor = Some(f);
                    s.delete_consumer(&durable)
                        .await
                        .map_err(|e| ReplicationError::nats("reset the import consumer", e))?;
                }
                Ok(_) => *floor = None,
                Err(e) if matches!(e.kind(), ConsumerInfoErrorKind::NotFound) => {}
                Err(e) => return Err(ReplicationError::nats("import consumer info", e)),
            }
            let deliver_policy = match *floor {
                Some(f) if f > 0 => DeliverPolicy::ByStartSequence {
                    start_sequence: f + 1,
                },
                _ => DeliverPolicy::All,
            };
            s.get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    deliver_policy,
                    ack_policy: AckPolicy::All,
                    ack_wait: Duration::from_secs(30),
                    // No cap on messages delivered and not acked: a held batch (up to the
                    // store's batch limit, 10,000 events by default) must be fetched whole
                    // before any of it is acked; JetStream's default cap of 1,000 would
                    // stop delivering inside a larger batch.
                    max_ack_pending: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ReplicationError::nats("get or create the import consumer", e))
        })?;
        self.floor = None;
        self.consumer = Some(c.clone());
        Ok(c)
    }

    /// Forgets the consumer and what it held: the next step remakes it at its ack floor.
    fn reset(&mut self) {
        self.consumer = None;
        self.held.clear();
        self.seen = None;
        self.ids.clear();
    }

    /// One step: fetch up to a batch of messages (waiting up to `wait`), append the events the
    /// replica lacks (each batch as one atomic batch, once its last message is here), wait
    /// until they are durable, then ack up to the last message applied.
    pub fn step(&mut self, wait: Duration) -> Result<ImportStep, ReplicationError> {
        let r = self.step_inner(wait);
        if r.is_err() {
            self.reset();
        }
        r
    }

    fn step_inner(&mut self, wait: Duration) -> Result<ImportStep, ReplicationError> {
        let consumer = self.consumer()?;
        let batch = self.cfg.batch;
        let msgs = self.link.rt.block_on(async move {
            let mut msgs = consumer
                .fetch()
                .max_messages(batch)
                .expires(wait.max(Duration::from_millis(10)))
                .messages()
                .await
                .map_err(|e| ReplicationError::nats("fetch", e))?;
            let mut out = Vec::new();
            while let Some(m) = msgs.next().await {
                out.push(m.map_err(|e| ReplicationError::nats("fetch", e))?);
            }
            Ok::<_, ReplicationError>(out)
        })?;
        // Group the messages into units: one message, or a whole batch (its messages are
        // consecutive; the last carries `Batpak-Batch-End`).
        let mut units: Vec<Unit> = Vec::new();
        for m in msgs {
            let seq = m
                .info()
                .map_err(|e| ReplicationError::nats("message info", e))?
                .stream_sequence;
            if self.seen.is_some_and(|s| seq <= s) {
                continue; // a redelivery of a message held here
            }
            self.seen = Some(seq);
            let ev =
                ReplicatedMessage::parse(seq, m.subject.as_str(), m.headers.as_ref(), &m.payload)?;
            let batch = if self.bug_event_by_event() {
                None
            } else {
                ev.batch
            };
            let open = self.held.first().and_then(|(_, h)| h.batch);
            if let (Some(open), true) = (open, batch != open) {
                return Err(ReplicationError::Malformed {
                    stream_sequence: seq,
                    detail: format!(
                        "batch {open} has no last message ({} came before this one, which is not in it)",
                        self.held.len()
                    ),
                });
            }
            match batch {
                None => units.push(vec![(m, ev)]),
                Some(_) => {
                    let end = ev.batch_end;
                    self.held.push((m, ev));
                    if end {
                        units.push(std::mem::take(&mut self.held));
                    }
                }
            }
        }
        let mut step = ImportStep {
            held: self.held.len() as u64,
            ..ImportStep::default()
        };
        let mut pending = Vec::new();
        let mut in_step = HashSet::new();
        let mut failed = None;
        for unit in &units {
            match self.submit_unit(unit, &mut in_step, &mut step) {
                Ok(Some(p)) => pending.push(p),
                Ok(None) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        // Every ticket handed out is awaited, even after a failure: the writer takes the
        // queued ids in order, and the queue may be cleared (on the error) only once no
        // submitted event still waits for its id.
        for p in pending {
            let outcome = match p {
                Pending::One(id, t) => t.wait().map(|r| (vec![id], vec![r.event_id])),
                Pending::Batch(ids, t) => t
                    .wait()
                    .map(|rs| (ids, rs.iter().map(|r| r.event_id).collect::<Vec<_>>())),
            };
            match outcome {
                Ok((expected, got)) => {
                    if let Some((e, g)) = expected.iter().zip(&got).find(|(e, g)| e != g) {
                        failed.get_or_insert(ReplicationError::IdMismatch {
                            expected: *e,
                            got: *g,
                        });
                    }
                    step.imported += expected.len() as u64;
                }
                Err(e) => {
                    failed.get_or_insert(e.into());
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        // The consumer acks cumulatively: acking the last message of the last unit applied
        // acks the step (a held batch's messages stay un-acked); the flush hands the ack to
        // the server before the step answers (a lost ack only means a redelivery, which the
        // replica skips).
        let last = units
            .last()
            .and_then(|u| u.last())
            .map(|(m, ev)| (m.clone(), ev.stream_sequence));
        if let Some((m, seq)) = last {
            let client = self.link.js.client();
            self.link.rt.block_on(async move {
                m.ack()
                    .await
                    .map_err(|e| ReplicationError::nats("ack", e))?;
                client
                    .flush()
                    .await
                    .map_err(|e| ReplicationError::nats("flush the ack", e))
            })?;
            step.last_stream_sequence = Some(seq);
        }
        tracing::debug!(stream = %self.cfg.stream, imported = step.imported, skipped = step.skipped, held = step.held, "importer step acked");
        Ok(step)
    }

    /// Hands the writer one unit's events that the replica lacks: a message written alone
    /// as one append, a batch as one atomic batch append.
    fn submit_unit(
        &self,
        unit: &[(Message, ReplicatedMessage)],
        in_step: &mut HashSet<u128>,
        step: &mut ImportStep,
    ) -> Result<Option<Pending>, ReplicationError> {
        let is_batch =
            !self.bug_event_by_event() && unit.first().is_some_and(|(_, ev)| ev.batch.is_some());
        let mut todo = Vec::with_capacity(unit.len());
        let mut ids: Vec<u128> = Vec::with_capacity(unit.len());
        for (_, ev) in unit {
            if in_step.contains(&ev.event_id) || self.store.entry(ev.event_id).is_some() {
                step.skipped += 1;
                continue;
            }
            if ev.kind.is_reserved() {
                step.reserved += 1;
                continue;
            }
            let payload = Value::parse(&ev.payload).map_err(|e| ReplicationError::Malformed {
                stream_sequence: ev.stream_sequence,
                detail: format!("payload: {e}"),
            })?;
            let mut options = AppendOptions::new()
                .with_idempotency(ev.event_id)
                .with_flags(ev.flags);
            if ev.correlation_id != ev.event_id {
                options = options.with_correlation(ev.correlation_id);
            }
            let mut causation = CausationRef::None;
            if let Some(c) = ev.causation_id {
                if let Some(i) = ids.iter().position(|&id| id == c) {
                    // An earlier event of the same batch.
                    causation = CausationRef::PriorItem(i);
                } else if in_step.contains(&c) || self.store.entry(c).is_some() {
                    options = options.with_causation(c);
                }
                // Otherwise the cause is outside the replicated region: not in the replica.
            }
            ids.push(ev.event_id);
            todo.push((ev, payload, options, causation));
        }
        if todo.is_empty() {
            return Ok(None);
        }
        for &id in &ids {
            self.ids.push(id);
            in_step.insert(id);
        }
        let submitted = if is_batch {
            let mut items = Vec::with_capacity(todo.len());
            for (ev, payload, options, causation) in todo {
                items.push(BatchAppendItem::new(
                    ev.coordinate.clone(),
                    ev.kind,
                    &payload,
                    options,
                    causation,
                )?);
            }
            self.store
                .submit_batch(items)
                .map(|t| Pending::Batch(ids, t))
        } else {
            // A message written alone: one append, as the source wrote it.
            let mut one = todo.into_iter();
            match (one.next(), ids.first()) {
                (Some((ev, payload, options, _)), Some(&id)) => self
                    .store
                    .submit_with_options(&ev.coordinate, ev.kind, &payload, options)
                    .map(|t| Pending::One(id, t)),
                _ => return Ok(None),
            }
        };
        Ok(Some(submitted?))
    }

    /// Steps until the durable consumer has nothing pending, retrying transient errors;
    /// `Timeout` after `timeout` (also while a batch waits for its last message).
    pub fn catch_up(&mut self, timeout: Duration) -> Result<ImportStep, ReplicationError> {
        let deadline = Instant::now() + timeout;
        let mut totals = ImportStep::default();
        let mut backoff = Duration::from_millis(10);
        loop {
            if Instant::now() >= deadline {
                return Err(ReplicationError::Timeout {
                    what: "importer catch-up",
                    after: timeout,
                });
            }
            let got = self.step(Duration::from_millis(200)).and_then(|s| {
                let fetched = s.imported + s.skipped + s.reserved;
                let done = fetched == 0 && s.held == 0 && self.pending()? == 0;
                Ok((s, done))
            });
            match got {
                Ok((s, done)) => {
                    totals.imported += s.imported;
                    totals.skipped += s.skipped;
                    totals.reserved += s.reserved;
                    totals.held = s.held;
                    if s.last_stream_sequence.is_some() {
                        totals.last_stream_sequence = s.last_stream_sequence;
                    }
                    if done {
                        return Ok(totals);
                    }
                    backoff = Duration::from_millis(10);
                }
                Err(e) if e.is_transient() => {
                    tracing::debug!(error = %e, "importer catch-up: retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Messages the durable consumer has not delivered yet, plus delivered ones not acked.
    fn pending(&mut self) -> Result<u64, ReplicationError> {
        let mut consumer = self.consumer()?;
        self.link.rt.block_on(async move {
            let info = consumer
                .info()
                .await
                .map_err(|e| ReplicationError::nats("consumer info", e))?;
            Ok(info.num_pending + info.num_ack_pending as u64)
        })
    }
}

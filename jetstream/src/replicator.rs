//! The replicator: store → JetStream.

use crate::runtime::{connect, Link};
use crate::wire;
use crate::ReplicationError;
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use batpak::prelude::*;
use batpak::store::{CheckpointId, Consumer};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Maps an event's coordinate to its subject.
pub type SubjectFn = Arc<dyn Fn(&Coordinate) -> String + Send + Sync>;

/// A delivered event, its payload as stored, and the atomic batch it was written in.
type Read = (IndexEntry, StoredEvent<Vec<u8>>, Option<u64>);

/// A seeded bug of the replicator (mutant build only, `--cfg batpak_mutant`): the fault
/// tests are shown to catch it.
#[cfg(batpak_mutant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplicatorMutant {
    /// No seeded bug.
    #[default]
    None,
    /// The checkpoint is committed when a batch is polled, before JetStream acknowledged its
    /// publishes, and a restart resumes from the checkpoint even where the stream is behind
    /// it: a crash or a failed publish loses the batch (breaks exactly-once: losses).
    CommitBeforeAck,
}

/// How a [`Replicator`] connects, names and publishes.
#[derive(Clone)]
pub struct ReplicatorConfig {
    pub(crate) servers: Vec<String>,
    pub(crate) stream: String,
    pub(crate) prefix: String,
    pub(crate) region: Region,
    pub(crate) checkpoint: CheckpointId,
    pub(crate) replicas: usize,
    pub(crate) batch: usize,
    pub(crate) ack_timeout: Duration,
    pub(crate) subject: Option<SubjectFn>,
    #[cfg(batpak_mutant)]
    pub(crate) mutant: ReplicatorMutant,
}

impl std::fmt::Debug for ReplicatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatorConfig")
            .field("servers", &self.servers)
            .field("stream", &self.stream)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("checkpoint", &self.checkpoint)
            .field("replicas", &self.replicas)
            .field("batch", &self.batch)
            .field("ack_timeout", &self.ack_timeout)
            .finish_non_exhaustive()
    }
}

impl ReplicatorConfig {
    /// Replicates every event of the store (`Region::all()`) to stream `stream`, subjects
    /// `<prefix>.<scope>.<entity>`, through the durable consumer `jetstream-<stream>`; one
    /// stream replica, batches of 512, acknowledgements awaited 5 s.
    pub fn new(
        servers: impl IntoIterator<Item = impl Into<String>>,
        stream: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        let stream = stream.into();
        Self {
            servers: servers.into_iter().map(Into::into).collect(),
            checkpoint: CheckpointId::new(format!("jetstream-{stream}")),
            stream,
            prefix: prefix.into(),
            region: Region::all(),
            replicas: 1,
            batch: 512,
            ack_timeout: Duration::from_secs(5),
            subject: None,
            #[cfg(batpak_mutant)]
            mutant: ReplicatorMutant::None,
        }
    }
    /// Replicates only `region`.
    pub fn with_region(mut self, region: Region) -> Self {
        self.region = region;
        self
    }
    /// The durable consumer's checkpoint id.
    pub fn with_checkpoint(mut self, id: CheckpointId) -> Self {
        self.checkpoint = id;
        self
    }
    /// The stream's replica count when the replicator creates it (3 on a three-node cluster).
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.max(1);
        self
    }
    /// Events published per step (at least 1); a step whose last event belongs to an atomic
    /// batch also takes the rest of that batch.
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }
    /// How long a publish acknowledgement or a JetStream request is awaited.
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }
    /// Another subject mapping; every subject must fall under `<prefix>.>`, the stream's
    /// subjects.
    pub fn with_subject(mut self, subject: SubjectFn) -> Self {
        self.subject = Some(subject);
        self
    }
    /// Seeds a bug (mutant build only).
    #[cfg(batpak_mutant)]
    pub fn with_mutant(mut self, mutant: ReplicatorMutant) -> Self {
        self.mutant = mutant;
        self
    }

    fn subject_of(&self, coord: &Coordinate) -> String {
        match &self.subject {
            Some(f) => f(coord),
            None => wire::default_subject(&self.prefix, coord),
        }
    }

    fn bug_commit_before_ack(&self) -> bool {
        #[cfg(batpak_mutant)]
        {
            self.mutant == ReplicatorMutant::CommitBeforeAck
        }
        #[cfg(not(batpak_mutant))]
        {
            false
        }
    }
}

/// What one [`Replicator::step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    /// Events JetStream acknowledged as new.
    pub published: u64,
    /// Events JetStream acknowledged as duplicates (already in the stream).
    pub duplicates: u64,
    /// The last global sequence acknowledged and checkpointed in this step.
    pub last_sequence: Option<u64>,
}

/// Follows a region of a store and publishes every committed event to JetStream, exactly once
/// and in order (see the crate docs and `jetstream/DESIGN.md`).
pub struct Replicator<'s> {
    store: &'s Store<Open>,
    consumer: Consumer<'s>,
    cfg: ReplicatorConfig,
    link: Link,
    /// The stream's last sequence as this replicator knows it; `None`: unknown, reconcile.
    stream_last: Option<u64>,
    /// Events the consumer delivered past the end of the step's last batch (looking for
    /// that end), read already: the first of the next step. Dropped when the consumer seeks.
    carry: Vec<Read>,
}

impl std::fmt::Debug for Replicator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("cfg", &self.cfg)
            .field("stream_last", &self.stream_last)
            .field("committed", &self.consumer.committed())
            .finish_non_exhaustive()
    }
}

impl<'s> Replicator<'s> {
    /// Opens the durable consumer and connects. The stream is created (subjects
    /// `<prefix>.>`) if missing, and the position reconciled with it, on the first step:
    /// a NATS outage does not stop `start`.
    pub fn start(store: &'s Store<Open>, cfg: ReplicatorConfig) -> Result<Self, ReplicationError> {
        if cfg.stream.is_empty() || cfg.prefix.is_empty() {
            return Err(ReplicationError::Config(
                "stream name and subject prefix must not be empty".into(),
            ));
        }
        let consumer = store.consumer(&cfg.checkpoint, &cfg.region)?;
        let link = connect(&cfg.servers, "batpak-replicator", cfg.ack_timeout)?;
        tracing::info!(stream = %cfg.stream, committed = ?consumer.committed(), "replicator started");
        Ok(Self {
            store,
            consumer,
            cfg,
            link,
            stream_last: None,
            carry: Vec::new(),
        })
    }

    /// The checkpoint: the last global sequence known to be in the stream.
    pub fn committed(&self) -> Option<u64> {
        self.consumer.committed()
    }

    /// Events of the region after the checkpoint.
    pub fn lag(&self) -> u64 {
        self.consumer.lag()
    }

    /// Creates the stream if missing and reads its tail: the replicator resumes after the
    /// last event the stream holds, or after its checkpoint if the stream holds none.
    fn reconcile(&mut self) -> Result<(), ReplicationError> {
        let js = self.link.js.clone();
        let cfg = jetstream::stream::Config {
            name: self.cfg.stream.clone(),
            subjects: vec![format!("{}.>", self.cfg.prefix)],
            num_replicas: self.cfg.replicas,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        let (last, tail) = self.link.rt.block_on(async move {
            let stream = js
                .get_or_create_stream(cfg)
                .await
                .map_err(|e| ReplicationError::nats("get or create the stream", e))?;
            let info = stream
                .get_info()
                .await
                .map_err(|e| ReplicationError::nats("stream info", e))?;
            let last = info.state.last_sequence;
            if info.state.messages == 0 {
                return Ok::<_, ReplicationError>((last, None));
            }
            let msg = stream
                .get_raw_message(last)
                .await
                .map_err(|e| ReplicationError::nats("read the stream's last message", e))?;
            let seq = msg
                .headers
                .get(wire::SEQUENCE)
                .and_then(|v| v.as_str().parse::<u64>().ok())
                .ok_or_else(|| ReplicationError::Malformed {
                    stream_sequence: last,
                    detail: format!("no {} header", wire::SEQUENCE),
                })?;
            Ok((last, Some(seq)))
        })?;
        let committed = self.consumer.committed();
        let resume = if self.cfg.bug_commit_before_ack() {
            committed.max(tail)
        } else {
            // The stream is the truth: the checkpoint only trails it (it moves after acks).
            tail.or(committed)
        };
        if tail > committed {
            tracing::info!(stream = %self.cfg.stream, ?tail, ?committed, "replicator: the stream is ahead of the checkpoint (acknowledged, not yet checkpointed); resuming after the stream's tail");
        }
        self.consumer.seek(resume);
        self.carry.clear();
        if let Some(t) = resume {
            if Some(t) > committed {
                self.consumer.commit_at(t)?;
            }
        }
        self.stream_last = Some(last);
        tracing::debug!(stream = %self.cfg.stream, last, ?resume, "replicator reconciled with the stream");
        Ok(())
    }

    /// One step: reconcile if needed, take up to a batch of committed events (waiting up to
    /// `wait` for the first), publish them in order, await every acknowledgement, then
    /// commit the checkpoint. On a NATS error nothing is checkpointed and the next step
    /// reconciles with the stream first.
    pub fn step(&mut self, wait: Duration) -> Result<Step, ReplicationError> {
        if self.stream_last.is_none() {
            self.reconcile()?;
        }
        let Some(stream_last) = self.stream_last else {
            return Ok(Step::default());
        };
        let events = match self.take_events(wait) {
            Ok(v) => v,
            Err(e) => {
                // The consumer moved past what it delivered: look at the stream again (and
                // seek) before the next step, or those events would be skipped.
                self.stream_last = None;
                return Err(e);
            }
        };
        let Some(last) = events.last().map(|(e, _, _)| e.global_sequence) else {
            return Ok(Step::default());
        };
        if self.cfg.bug_commit_before_ack() {
            self.consumer.commit()?;
        }
        // A batch's last message is the one whose successor is not in the same batch
        // (`take_events` ends the step with a whole batch).
        let ends: Vec<bool> = (0..events.len())
            .map(|i| events.get(i + 1).and_then(|(_, _, nb)| *nb) != events[i].2)
            .collect();
        let mut msgs = Vec::with_capacity(events.len());
        for (i, ((e, raw, batch), end)) in events.into_iter().zip(ends).enumerate() {
            let mut m = PublishMessage::build()
                .message_id(wire::format_id(e.event_id))
                .expected_last_sequence(stream_last + i as u64)
                .header(wire::SEQUENCE, e.global_sequence.to_string().as_str())
                .header(wire::KIND, e.kind.as_raw().to_string().as_str())
                .header(
                    wire::CORRELATION,
                    wire::format_id(e.correlation_id).as_str(),
                )
                .header(wire::ENTITY, wire::escape(e.coord.entity()).as_str())
                .header(wire::SCOPE, wire::escape(e.coord.scope()).as_str())
                .header(wire::CLOCK, e.clock.to_string().as_str())
                .header(wire::WALL_MS, e.wall_ms.to_string().as_str())
                .header("Content-Type", "application/msgpack");
            if let Some(c) = e.causation_id {
                m = m.header(wire::CAUSATION, wire::format_id(c).as_str());
            }
            let flags = raw.event.header.flags;
            if flags != 0 {
                m = m.header(wire::FLAGS, flags.to_string().as_str());
            }
            if let Some(b) = batch {
                m = m.header(wire::BATCH, b.to_string().as_str());
                if end {
                    m = m.header(wire::BATCH_END, "1");
                }
            }
            msgs.push((
                self.cfg.subject_of(&e.coord),
                m.payload(Bytes::from(raw.event.payload)),
            ));
        }
        let js = self.link.js.clone();
        let outcome = self.link.rt.block_on(async move {
            let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(msgs.len());
            for (subject, m) in msgs {
                acks.push(
                    js.send_publish(subject, m)
                        .await
                        .map_err(|e| ReplicationError::nats("publish", e))?,
                );
            }
            let (mut published, mut duplicates, mut stream_seq) = (0u64, 0u64, 0u64);
            for ack in acks {
                let a = ack
                    .await
                    .map_err(|e| ReplicationError::nats("publish acknowledgement", e))?;
                if a.duplicate {
                    duplicates += 1;
                } else {
                    published += 1;
                }
                stream_seq = a.sequence;
            }
            Ok::<_, ReplicationError>((published, duplicates, stream_seq))
        });
        let (published, duplicates, stream_seq) = match outcome {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(stream = %self.cfg.stream, error = %e, "replicator: publish failed; reconciling with the stream before the next step");
                self.stream_last = None;
                return Err(e);
            }
        };
        if duplicates > 0 {
            // Only a stale view of the stream explains a duplicate: look again.
            self.stream_last = None;
        } else {
            self.stream_last = Some(stream_seq);
        }
        self.consumer.commit_at(last)?;
        tracing::debug!(stream = %self.cfg.stream, published, duplicates, last, "replicator step checkpointed");
        Ok(Step {
            published,
            duplicates,
            last_sequence: Some(last),
        })
    }

    /// The step's events (up to a batch, waiting up to `wait` for the first), each with its
    /// payload and the atomic batch it was written in, ending with a whole batch: where the
    /// last event belongs to a batch, the consumer is asked for more (a batch's worth at a
    /// time, without waiting) until an event outside that batch comes (it and those after
    /// it are kept for the next step) or none does. A batch becomes visible whole and the
    /// consumer delivers every unit below its frontier whole, so "none came" means the batch
    /// ended. Its last event is then marked (`Batpak-Batch-End`), which is what lets an
    /// importer apply the batch atomically.
    fn take_events(&mut self, wait: Duration) -> Result<Vec<Read>, ReplicationError> {
        let mut events = std::mem::take(&mut self.carry);
        let wait = if events.is_empty() {
            wait
        } else {
            Duration::ZERO
        };
        let room = self.cfg.batch.saturating_sub(events.len());
        if room > 0 {
            let polled = self.consumer.poll(room, wait);
            self.read_into(polled, &mut events)?;
        }
        while let Some(b) = events.last().and_then(|(_, _, b)| *b) {
            let more = self.consumer.poll(self.cfg.batch, Duration::ZERO);
            if more.is_empty() {
                break;
            }
            let mut read = Vec::with_capacity(more.len());
            self.read_into(more, &mut read)?;
            match read.iter().position(|(_, _, nb)| *nb != Some(b)) {
                Some(end) => {
                    self.carry = read.split_off(end);
                    events.append(&mut read);
                    break;
                }
                None => events.append(&mut read),
            }
        }
        Ok(events)
    }

    /// Reads each entry's payload and batch.
    fn read_into(
        &self,
        entries: Vec<IndexEntry>,
        out: &mut Vec<Read>,
    ) -> Result<(), ReplicationError> {
        for e in entries {
            let (raw, batch) = self.store.get_raw_with_batch(e.event_id)?;
            out.push((e, raw, batch));
        }
        Ok(())
    }

    /// Steps until `stop` is set, retrying transient errors (with a back-off up to 1 s);
    /// answers the totals, or the first error that is not transient.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<Step, ReplicationError> {
        let mut totals = Step::default();
        let mut backoff = Duration::from_millis(10);
        while !stop.load(Ordering::SeqCst) {
            match self.step(Duration::from_millis(50)) {
                Ok(s) => {
                    add(&mut totals, s);
                    backoff = Duration::from_millis(10);
                }
                Err(e) if e.is_transient() => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(totals)
    }

    /// Steps until every committed event of the region is checkpointed (lag 0), retrying
    /// transient errors; `Timeout` if that takes longer than `timeout`.
    pub fn catch_up(&mut self, timeout: Duration) -> Result<Step, ReplicationError> {
        let deadline = Instant::now() + timeout;
        let mut totals = Step::default();
        let mut backoff = Duration::from_millis(10);
        loop {
            if self.stream_last.is_some() && self.consumer.lag() == 0 {
                return Ok(totals);
            }
            if Instant::now() >= deadline {
                return Err(ReplicationError::Timeout {
                    what: "replicator catch-up",
                    after: timeout,
                });
            }
            match self.step(Duration::from_millis(10)) {
                Ok(s) => {
                    add(&mut totals, s);
                    backoff = Duration::from_millis(10);
                }
                Err(e) if e.is_transient() => {
                    tracing::debug!(error = %e, "replicator catch-up: retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn add(totals: &mut Step, s: Step) {
    totals.published += s.published;
    totals.duplicates += s.duplicates;
    if s.last_sequence.is_some() {
        totals.last_sequence = s.last_sequence;
    }
}

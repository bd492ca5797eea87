//! The importer: JetStream → store (a read replica).

use crate::reader::ReplicatedMessage;
use crate::runtime::{connect, Link};
use crate::ReplicationError;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
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

/// Imports a replicated JetStream stream into a store: each event under its source event id
/// (and with it as idempotency key), a message acked only once its event is durable, so a
/// redelivered or replayed message is skipped and an interrupted import resumes where the
/// durable consumer stands.
pub struct Importer {
    store: Store<Open>,
    ids: Arc<MirrorIds>,
    cfg: ImporterConfig,
    link: Link,
    consumer: Option<PullConsumer>,
}

impl std::fmt::Debug for Importer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("cfg", &self.cfg)
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
        })
    }

    /// The replica, for reads.
    pub fn store(&self) -> &Store<Open> {
        &self.store
    }

    /// Closes the connection and hands the replica back.
    pub fn into_store(self) -> Store<Open> {
        self.store
    }

    fn consumer(&mut self) -> Result<PullConsumer, ReplicationError> {
        if let Some(c) = &self.consumer {
            return Ok(c.clone());
        }
        let js = self.link.js.clone();
        let (stream, durable) = (self.cfg.stream.clone(), self.cfg.durable.clone());
        let c = self.link.rt.block_on(async move {
            let s = js
                .get_stream(&stream)
                .await
                .map_err(|e| ReplicationError::nats("get the stream", e))?;
            s.get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::All,
                    ack_wait: Duration::from_secs(30),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ReplicationError::nats("get or create the import consumer", e))
        })?;
        self.consumer = Some(c.clone());
        Ok(c)
    }

    /// One step: fetch up to a batch of messages (waiting up to `wait`), append the events the
    /// replica lacks, wait until they are durable, then ack every message.
    pub fn step(&mut self, wait: Duration) -> Result<ImportStep, ReplicationError> {
        let consumer = self.consumer()?;
        let batch = self.cfg.batch;
        let fetched = self.link.rt.block_on(async move {
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
        });
        let msgs = match fetched {
            Ok(m) => m,
            Err(e) => {
                self.consumer = None;
                return Err(e);
            }
        };
        let mut step = ImportStep::default();
        let mut pending = Vec::new();
        let mut in_step = HashSet::new();
        for m in &msgs {
            let seq = m
                .info()
                .map_err(|e| ReplicationError::nats("message info", e))?
                .stream_sequence;
            let ev =
                ReplicatedMessage::parse(seq, m.subject.as_str(), m.headers.as_ref(), &m.payload)?;
            step.last_stream_sequence = Some(seq);
            if in_step.contains(&ev.event_id) || self.store.entry(ev.event_id).is_some() {
                step.skipped += 1;
                continue;
            }
            if ev.kind.is_reserved() {
                step.reserved += 1;
                continue;
            }
            let payload: serde_json::Value =
                rmp_serde::from_slice(&ev.payload).map_err(|e| ReplicationError::Malformed {
                    stream_sequence: seq,
                    detail: format!("payload: {e}"),
                })?;
            let mut options = AppendOptions::new().with_idempotency(ev.event_id);
            if ev.correlation_id != ev.event_id {
                options = options.with_correlation(ev.correlation_id);
            }
            if let Some(c) = ev.causation_id {
                // A cause outside the replicated region is not in the replica.
                if in_step.contains(&c) || self.store.entry(c).is_some() {
                    options = options.with_causation(c);
                }
            }
            self.ids.push(ev.event_id);
            match self
                .store
                .submit_with_options(&ev.coordinate, ev.kind, &payload, options)
            {
                Ok(t) => pending.push((ev.event_id, t)),
                Err(e) => {
                    self.ids.clear();
                    return Err(e.into());
                }
            }
            in_step.insert(ev.event_id);
        }
        for (id, ticket) in pending {
            let receipt = match ticket.wait() {
                Ok(r) => r,
                Err(e) => {
                    self.ids.clear();
                    return Err(e.into());
                }
            };
            if receipt.event_id != id {
                self.ids.clear();
                return Err(ReplicationError::IdMismatch {
                    expected: id,
                    got: receipt.event_id,
                });
            }
            step.imported += 1;
        }
        // The consumer acks cumulatively: acking the last message acks the step; the flush
        // hands the ack to the server before the step answers (a lost ack only means a
        // redelivery, which the replica skips).
        let client = self.link.js.client();
        let acked = self.link.rt.block_on(async move {
            if let Some(m) = msgs.last() {
                m.ack()
                    .await
                    .map_err(|e| ReplicationError::nats("ack", e))?;
                client
                    .flush()
                    .await
                    .map_err(|e| ReplicationError::nats("flush the ack", e))?;
            }
            Ok::<_, ReplicationError>(())
        });
        if let Err(e) = acked {
            self.consumer = None;
            return Err(e);
        }
        tracing::debug!(stream = %self.cfg.stream, imported = step.imported, skipped = step.skipped, "importer step acked");
        Ok(step)
    }

    /// Steps until the durable consumer has nothing pending, retrying transient errors;
    /// `Timeout` after `timeout`.
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
                let done = fetched == 0 && self.pending()? == 0;
                Ok((s, done))
            });
            match got {
                Ok((s, done)) => {
                    totals.imported += s.imported;
                    totals.skipped += s.skipped;
                    totals.reserved += s.reserved;
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

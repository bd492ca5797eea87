//! `cursor_worker`: a thread that drains a region through a cursor (or, with a checkpoint id,
//! a durable consumer) and hands each batch to a handler.

use super::consumer::CheckpointId;
use super::cursor::CursorGapConfig;
use crate::error::StoreError;
use crate::index::IndexEntry;
use crate::mutant::Mutant;
use crate::region::Region;
use crate::store::{Open, Store};
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::channel::{bounded, Sender};
use crate::sync::{Arc, StdArc};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

/// How often a worker whose handler panicked is started again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    /// One restart.
    #[default]
    Once,
    /// At most `max_restarts` restarts within any `within_ms` milliseconds.
    Bounded {
        /// Restarts allowed in the window.
        max_restarts: u32,
        /// The window, in milliseconds.
        within_ms: u64,
    },
}

/// Proof handed to a checkpointed worker's handler: the batch is delivered at least once
/// (it comes again if the handler does not finish before a crash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtLeastOnce(CheckpointId);

impl AtLeastOnce {
    pub(crate) fn new(id: CheckpointId) -> Self {
        Self(id)
    }

    /// The checkpoint the worker commits to.
    pub fn checkpoint_id(&self) -> &CheckpointId {
        &self.0
    }
}

/// What the handler wants after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorWorkerAction {
    /// Commit the batch and go on.
    Continue,
    /// Commit the batch and stop.
    Stop,
    /// Do not commit the batch (it is delivered again next time) and stop.
    StopWithRollback,
}

/// A cursor worker's configuration. `Default` is upstream's.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CursorWorkerConfig {
    /// Most events per batch.
    pub batch_size: usize,
    /// The longest the worker sleeps waiting for an event (it wakes at once on a publish: this
    /// bounds how late it notices `stop`, not how late it sees events).
    pub idle_sleep: Duration,
    /// Restarts after a handler panic.
    pub restart: RestartPolicy,
    /// With an id, the worker is a durable consumer: it resumes after its checkpoint and
    /// commits after each batch the handler accepted.
    pub checkpoint_id: Option<CheckpointId>,
    /// Gap observation on the worker's cursor (off by default): each batch's
    /// [`GapObservation`](super::GapObservation)s are logged (`tracing`, debug level).
    pub gap_observation: CursorGapConfig,
}

impl Default for CursorWorkerConfig {
    fn default() -> Self {
        Self {
            batch_size: 64,
            idle_sleep: Duration::from_millis(10),
            restart: RestartPolicy::Once,
            checkpoint_id: None,
            gap_observation: CursorGapConfig::default(),
        }
    }
}

/// The running worker. Dropping it stops and joins the thread, so the store handle it holds
/// is released when the drop returns.
#[derive(Debug)]
pub struct CursorWorkerHandle {
    stop: Arc<AtomicBool>,
    thread: Option<crate::sync::thread::JoinHandle<Result<(), StoreError>>>,
}

impl CursorWorkerHandle {
    /// Asks the worker to stop after its current batch.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Waits for the worker to end: `Ok` after a stop, the error that ended it otherwise
    /// (`ConsumerPanicked` once the restart budget is spent).
    pub fn join(mut self) -> Result<(), StoreError> {
        self.join_inner()
    }

    /// [`CursorWorkerHandle::stop`], then [`CursorWorkerHandle::join`].
    pub fn stop_and_join(self) -> Result<(), StoreError> {
        self.stop();
        self.join()
    }

    fn join_inner(&mut self) -> Result<(), StoreError> {
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(StoreError::ConsumerPanicked {
                    detail: "the worker thread panicked outside its handler".into(),
                })
            }),
            None => Ok(()),
        }
    }
}

impl Drop for CursorWorkerHandle {
    fn drop(&mut self) {
        self.stop();
        let _ = self.join_inner();
    }
}

/// Whether `policy` allows one more restart now, given the earlier ones; records it if so.
pub(crate) fn restart_allowed(policy: &RestartPolicy, restarts: &mut Vec<Instant>) -> bool {
    let now = Instant::now();
    let allowed = match *policy {
        RestartPolicy::Once => restarts.is_empty(),
        RestartPolicy::Bounded {
            max_restarts,
            within_ms,
        } => {
            let window = Duration::from_millis(within_ms);
            restarts.retain(|t| now.duration_since(*t) < window);
            restarts.len() < max_restarts as usize
        }
    };
    if allowed {
        restarts.push(now);
    }
    allowed
}

/// One run of the worker until it stops, fails or its handler panics (`Err(None)`).
///
/// `finished` is the last sequence of the last batch the handler finished, kept across runs:
/// without a checkpoint, a run restarted after a panic resumes after it (the panicking batch
/// comes again, the finished ones do not). With a checkpoint the consumer resumes after its
/// last commit, which is the same place.
fn run<F>(
    store: &Store<Open>,
    region: &Region,
    cfg: &CursorWorkerConfig,
    stop: &AtomicBool,
    handler: &mut F,
    finished: &mut Option<u64>,
    ready: &mut Option<Sender<()>>,
) -> Result<(), Option<StoreError>>
where
    F: FnMut(&[IndexEntry], &Store<Open>, Option<&AtLeastOnce>) -> CursorWorkerAction,
{
    let batch = cfg.batch_size.max(1);
    if store.cfg.bugs.has(Mutant::WorkerRegistersLate) {
        crate::sync::thread::sleep(Duration::from_millis(200));
    }
    let mut consumer = match &cfg.checkpoint_id {
        Some(id) => Some(store.consumer(id, region).map_err(Some)?),
        None => None,
    };
    // Registered (or no consumer to register): `cursor_worker` may return now.
    if let Some(tx) = ready.take() {
        let _ = tx.send(());
    }
    let witness = cfg.checkpoint_id.clone().map(AtLeastOnce);
    let mut cursor = store.cursor_guaranteed(region);
    if finished.is_some() {
        cursor.seek(*finished);
    }
    cursor.set_gap_config(cfg.gap_observation);
    if let Some(c) = consumer.as_mut() {
        c.cursor_mut().set_gap_config(cfg.gap_observation);
    }
    while !stop.load(Ordering::SeqCst) {
        let events = match consumer.as_mut() {
            Some(c) => c.poll(batch, cfg.idle_sleep),
            None => cursor.poll_wait(batch, cfg.idle_sleep),
        };
        let gaps = match consumer.as_mut() {
            Some(c) => c.cursor_mut().take_gaps(),
            None => cursor.take_gaps(),
        };
        for g in gaps {
            tracing::debug!(
                expected = g.expected_sequence,
                delivered = g.delivered_sequence,
                holes = ?g.cancelled_ranges,
                "cursor worker: sequences no visible event holds"
            );
        }
        if events.is_empty() {
            if store.shared.is_stopped() {
                return Ok(());
            }
            continue;
        }
        let action = std::panic::catch_unwind(AssertUnwindSafe(|| {
            handler(&events, store, witness.as_ref())
        }))
        .map_err(|_| None)?;
        *finished = events.last().map(|e| e.global_sequence);
        if action == CursorWorkerAction::StopWithRollback {
            return Ok(());
        }
        if let Some(c) = consumer.as_mut() {
            c.commit().map_err(Some)?;
        }
        if action == CursorWorkerAction::Stop {
            return Ok(());
        }
    }
    Ok(())
}

impl Store<Open> {
    /// Runs `handler` on a thread over `region`'s events in order, in batches. Without a
    /// checkpoint id it starts at the beginning of the log; with one it is a durable consumer
    /// (resumes after its checkpoint, commits each accepted batch). A panicking handler is
    /// restarted as `config.restart` allows, after the last batch it finished (the batch it
    /// panicked on comes again; with a checkpoint that is the last commit); once the budget
    /// is spent the worker ends and `join()` reports `ConsumerPanicked`.
    ///
    /// With a checkpoint id this returns once the worker's consumer is registered: right
    /// after it `consumer(id)` is `ConsumerBusy`, and the worker delivers
    /// every event appended afterwards. A consumer the store refuses (`ConsumerBusy`,
    /// a region that does not match its checkpoint) ends the worker; `join()` reports it.
    pub fn cursor_worker<F>(
        self: &StdArc<Self>,
        region: &Region,
        config: CursorWorkerConfig,
        mut handler: F,
    ) -> Result<CursorWorkerHandle, StoreError>
    where
        F: FnMut(&[IndexEntry], &Store<Open>, Option<&AtLeastOnce>) -> CursorWorkerAction
            + Send
            + 'static,
    {
        if let Some(id) = &config.checkpoint_id {
            id.check()?;
        }
        let store = StdArc::clone(self);
        let region = region.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_thread = Arc::clone(&stop);
        // The worker registers its consumer on its thread; spawning waits for that, so a
        // `consumer(id)` or append right after this returns sees it registered.
        let (ready_tx, ready_rx) = bounded::<()>(1);
        let mut ready = Some(ready_tx);
        let thread = crate::sync::thread::Builder::new()
            .name("batpak-cursor-worker".into())
            .spawn(move || {
                let mut restarts: Vec<Instant> = Vec::new();
                let mut finished = None;
                loop {
                    match run(
                        &store,
                        &region,
                        &config,
                        &stop_thread,
                        &mut handler,
                        &mut finished,
                        &mut ready,
                    ) {
                        Ok(()) => return Ok(()),
                        Err(Some(e)) => return Err(e),
                        Err(None) => {
                            if !restart_allowed(&config.restart, &mut restarts) {
                                tracing::error!("cursor worker: restart budget exhausted");
                                return Err(StoreError::ConsumerPanicked {
                                    detail: "the handler panicked and the restart budget is spent"
                                        .into(),
                                });
                            }
                            tracing::warn!(
                                resume_after = ?finished,
                                "cursor worker: handler panicked, restarting after the last finished batch"
                            );
                        }
                    }
                }
            })
            .map_err(StoreError::Io)?;
        if !self.cfg.bugs.has(Mutant::WorkerRegistersLate) {
            // `Err`: the thread ended before registering (the consumer was refused, e.g.
            // `ConsumerBusy`); `join()` reports why.
            let _ = ready_rx.recv();
        }
        Ok(CursorWorkerHandle {
            stop,
            thread: Some(thread),
        })
    }
}

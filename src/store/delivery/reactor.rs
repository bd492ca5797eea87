//! Reactors: a thread that follows a region, decodes each matching event straight from its
//! MessagePack payload, hands it to a handler that stages reactions in a [`ReactionBatch`],
//! and writes them.
//!
//! Two ways to run, both writing each reaction exactly once:
//!
//! - With [`ReactorConfig::checkpoint_id`] the reactor is a durable consumer: each source
//!   event's reactions and the checkpoint just after it are one atomic unit
//!   ([`Consumer::commit_with`](super::Consumer::commit_with)), so after any crash the
//!   reactions exist if and only if the checkpoint moved past their source
//!   (INV-EXACTLY-ONCE). A resumed reactor starts after the checkpoint.
//! - Without one the reactor starts at the beginning of the log each time it is spawned, and
//!   every reaction gets a deterministic idempotency key (a hash of the reactor's identity,
//!   the source event's id and the reaction's index) unless the handler set its own, so a
//!   replay gets the original receipts back from the writer instead of writing again.
//!
//! A handler that returns `Err` or a payload that does not decode stops the reactor with
//! that error (nothing of the failing event is written); a handler panic restarts it from
//! the last written event as [`ReactorConfig::restart_policy`] allows.

use super::consumer::{CheckpointId, Consumer};
use super::worker::{restart_allowed, AtLeastOnce, RestartPolicy};
use crate::append::CausationRef;
use crate::coordinate::Coordinate;
use crate::error::StoreError;
use crate::event::{Event, EventKind, EventPayload, StoredEvent};
use crate::index::IndexEntry;
use crate::mutant::Mutant;
use crate::region::Region;
use crate::sourcing::{DecodeSource, DecodeTyped, ProjectionInput, TypedDecodeError};
use crate::store::{BatchAppendItem, Open, Store};
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::channel::{bounded, Sender};
use crate::sync::{Arc, StdArc};
use crate::writer::AppendOptions;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

/// Reactions a handler stages for one source event. The reactor writes them after the
/// handler returned `Ok` (as one atomic batch, with the checkpoint when there is one); a
/// handler that returns `Err` writes nothing.
///
/// A reaction without its own causation or correlation is caused by the source event and
/// joins its correlation.
#[derive(Debug, Default)]
pub struct ReactionBatch {
    items: Vec<BatchAppendItem>,
}

impl ReactionBatch {
    /// An empty batch (the reactor hands one to the handler).
    pub(crate) fn new() -> Self {
        Self { items: Vec::new() }
    }

    /// Stages a reaction of kind `T::KIND` at `coord`.
    ///
    /// # Errors
    /// `Serialization` when the payload does not encode.
    pub fn push_typed<T: EventPayload>(
        &mut self,
        coord: Coordinate,
        payload: &T,
        causation: CausationRef,
    ) -> Result<(), StoreError> {
        self.push_typed_with_options(coord, payload, AppendOptions::default(), causation)
    }

    /// [`ReactionBatch::push_typed`] with options (CAS, an own idempotency key, ids, flags).
    ///
    /// # Errors
    /// `Serialization` when the payload does not encode.
    pub fn push_typed_with_options<T: EventPayload>(
        &mut self,
        coord: Coordinate,
        payload: &T,
        options: AppendOptions,
        causation: CausationRef,
    ) -> Result<(), StoreError> {
        self.items
            .push(BatchAppendItem::typed(coord, payload, options, causation)?);
        Ok(())
    }

    /// How many reactions are staged.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The staged items, each caused by `source` unless it says otherwise, and keyed by
    /// `key(i)` when a key source is given and the item has no key of its own.
    fn finish(self, source: &IndexEntry, key: Option<&[u8; 32]>) -> Vec<BatchAppendItem> {
        let mut items = self.items;
        for (i, it) in items.iter_mut().enumerate() {
            let o = &mut it.item.options;
            if o.causation_id.is_none() && matches!(it.item.causation_ref, CausationRef::None) {
                o.causation_id = Some(source.event_id);
            }
            if o.correlation_id.is_none() {
                o.correlation_id = Some(source.correlation_id);
            }
            if let (Some(reactor), None) = (key, o.idempotency_key) {
                o.idempotency_key = Some(reaction_key(reactor, source.event_id, i));
            }
        }
        items
    }
}

/// The idempotency key of reaction `index` to `source` by reactor `reactor`.
fn reaction_key(reactor: &[u8; 32], source: u128, index: usize) -> u128 {
    let mut h = blake3::Hasher::new();
    h.update(b"batpak.reaction.v1");
    h.update(reactor);
    h.update(&source.to_le_bytes());
    h.update(&(index as u64).to_le_bytes());
    let b = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&b.as_bytes()[..16]);
    u128::from_le_bytes(k)
}

/// A reactor of one payload type (`Store::react_loop_typed`).
pub trait TypedReactive<T: EventPayload>: Send + 'static {
    /// The handler's error; it stops the reactor ([`ReactorError::User`]).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Reacts to one event of kind `T::KIND` by staging reactions in `out`. `witness` is
    /// `Some` when the reactor commits to a checkpoint.
    ///
    /// # Errors
    /// Any: the reactor stops, and nothing staged for this event is written.
    fn react(
        &mut self,
        event: &StoredEvent<T>,
        out: &mut ReactionBatch,
        witness: Option<&AtLeastOnce>,
    ) -> Result<(), Self::Error>;
}

/// Why [`MultiReactive::dispatch`] failed.
#[derive(Debug)]
pub enum MultiDispatchError<E: std::error::Error + Send + Sync + 'static> {
    /// A handler returned an error.
    User(E),
    /// An event of a handled kind did not decode.
    Decode(TypedDecodeError),
}

impl<E: std::error::Error + Send + Sync + 'static> std::fmt::Display for MultiDispatchError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(e) => write!(f, "multi-reactor user error: {e}"),
            Self::Decode(e) => write!(f, "multi-reactor decode failure: {e}"),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> std::error::Error for MultiDispatchError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::User(e) => Some(e),
            Self::Decode(e) => Some(e),
        }
    }
}

/// A reactor of several payload types (`Store::react_loop_multi`), usually from
/// `#[derive(MultiEventReactor)]`. `I` is the lane a hand-written
/// [`dispatch`](Self::dispatch) reads payloads in.
pub trait MultiReactive<I: ProjectionInput>: Send + 'static {
    /// The handlers' error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The kinds this reactor handles; other events are skipped without a call. Empty: every
    /// kind.
    fn relevant_event_kinds() -> &'static [EventKind];

    /// Hands an event to the handler of its kind (`Ok` for a kind without one).
    ///
    /// # Errors
    /// [`MultiDispatchError::User`] from a handler, [`MultiDispatchError::Decode`] when the
    /// payload of a handled kind does not decode.
    fn dispatch(
        &mut self,
        event: &StoredEvent<I::Payload>,
        out: &mut ReactionBatch,
        witness: Option<&AtLeastOnce>,
    ) -> Result<(), MultiDispatchError<Self::Error>>;

    /// [`dispatch`](Self::dispatch) from the stored MessagePack payload. The derive decodes
    /// straight from it into each handler's type; this default goes through the lane.
    ///
    /// # Errors
    /// As [`dispatch`](Self::dispatch).
    #[doc(hidden)]
    fn dispatch_msgpack(
        &mut self,
        event: &StoredEvent<Vec<u8>>,
        out: &mut ReactionBatch,
        witness: Option<&AtLeastOnce>,
    ) -> Result<(), MultiDispatchError<Self::Error>> {
        let kind = event.event.header.event_kind;
        let payload = I::from_msgpack(&event.event.payload)
            .map_err(|source| MultiDispatchError::Decode(decode_failure(kind, source)))?;
        let lane = StoredEvent {
            coordinate: event.coordinate.clone(),
            event: Event {
                header: event.event.header.clone(),
                payload,
                hash_chain: event.event.hash_chain,
            },
        };
        self.dispatch(&lane, out, witness)
    }
}

fn decode_failure(kind: EventKind, source: DecodeSource) -> TypedDecodeError {
    TypedDecodeError::DecodeFailure { kind, source }
}

/// `event` with its payload decoded as `T` (used by the derive).
///
/// # Errors
/// [`TypedDecodeError`] when the event is of another kind or does not decode.
#[doc(hidden)]
pub fn typed_view<T: EventPayload, P>(
    event: &StoredEvent<P>,
) -> Result<StoredEvent<T>, TypedDecodeError>
where
    Event<P>: DecodeTyped,
{
    let payload = event.event.decode_typed::<T>()?;
    Ok(StoredEvent {
        coordinate: event.coordinate.clone(),
        event: Event {
            header: event.event.header.clone(),
            payload,
            hash_chain: event.event.hash_chain,
        },
    })
}

/// A reactor's configuration. `Default` is upstream's.
#[derive(Clone, Debug)]
pub struct ReactorConfig {
    /// Most events read per poll.
    pub batch_size: usize,
    /// The longest the reactor sleeps waiting for an event (it wakes at once on a publish:
    /// this bounds how late it notices a stop).
    pub idle_sleep: Duration,
    /// Restarts after a handler panic (an `Err` from the handler stops it for good).
    pub restart_policy: RestartPolicy,
    /// With an id, the reactor is a durable consumer committing each source event's
    /// reactions together with its checkpoint; without, it replays from the start when
    /// spawned and relies on deterministic idempotency keys.
    pub checkpoint_id: Option<CheckpointId>,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        Self {
            batch_size: 64,
            idle_sleep: Duration::from_millis(10),
            restart_policy: RestartPolicy::Once,
            checkpoint_id: None,
        }
    }
}

/// Why a reactor ended.
#[derive(Debug)]
pub enum ReactorError<E: std::error::Error + Send + Sync + 'static> {
    /// The handler returned an error.
    User(E),
    /// The store refused a read or a write (or closed under a checkpointed reactor).
    Store(StoreError),
    /// An event of a handled kind did not decode.
    Decode(TypedDecodeError),
    /// The handler panicked more often than the restart policy allows.
    RestartBudgetExhausted,
}

impl<E: std::error::Error + Send + Sync + 'static> std::fmt::Display for ReactorError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(e) => write!(f, "reactor handler failed: {e}"),
            Self::Store(e) => write!(f, "reactor store error: {e}"),
            Self::Decode(e) => write!(f, "reactor could not decode an event: {e}"),
            Self::RestartBudgetExhausted => {
                write!(
                    f,
                    "reactor handler panicked and the restart budget is spent"
                )
            }
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> std::error::Error for ReactorError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::User(e) => Some(e),
            Self::Store(e) => Some(e),
            Self::Decode(e) => Some(e),
            Self::RestartBudgetExhausted => None,
        }
    }
}

/// A running reactor. Dropping it stops and joins the thread.
#[derive(Debug)]
pub struct TypedReactorHandle<E: std::error::Error + Send + Sync + 'static> {
    stop: Arc<AtomicBool>,
    thread: Option<crate::sync::thread::JoinHandle<Result<(), ReactorError<E>>>>,
}

impl<E: std::error::Error + Send + Sync + 'static> TypedReactorHandle<E> {
    /// Asks the reactor to stop after the events it is handling.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Waits for the reactor to end (does not stop it): `Ok` after a stop or once the store
    /// closed, the error that ended it otherwise.
    ///
    /// # Errors
    /// The [`ReactorError`] that ended the reactor.
    pub fn join(mut self) -> Result<(), ReactorError<E>> {
        self.join_inner()
    }

    /// [`stop`](Self::stop), then [`join`](Self::join).
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn stop_and_join(self) -> Result<(), ReactorError<E>> {
        self.stop();
        self.join()
    }

    fn join_inner(&mut self) -> Result<(), ReactorError<E>> {
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(ReactorError::Store(StoreError::ConsumerPanicked {
                    detail: "the reactor thread panicked outside its handler".into(),
                }))
            }),
            None => Ok(()),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> Drop for TypedReactorHandle<E> {
    fn drop(&mut self) {
        self.stop();
        let _ = self.join_inner();
    }
}

/// What the runner needs of a reactor: which kinds it wants and how to hand it an event.
trait Dispatch: Send + 'static {
    type Error: std::error::Error + Send + Sync + 'static;
    fn wants(&self, kind: EventKind) -> bool;
    fn handle(
        &mut self,
        event: &StoredEvent<Vec<u8>>,
        out: &mut ReactionBatch,
        witness: Option<&AtLeastOnce>,
    ) -> Result<(), ReactorError<Self::Error>>;
}

struct Typed<T, R>(R, PhantomData<fn() -> T>);

impl<T: EventPayload + 'static, R: TypedReactive<T>> Dispatch for Typed<T, R> {
    type Error = R::Error;
    fn wants(&self, kind: EventKind) -> bool {
        kind == T::KIND
    }
    fn handle(
        &mut self,
        event: &StoredEvent<Vec<u8>>,
        out: &mut ReactionBatch,
        witness: Option<&AtLeastOnce>,
    ) -> Result<(), ReactorError<R::Error>> {
        let typed = typed_view::<T, Vec<u8>>(event).map_err(ReactorError::Decode)?;
        self.0
            .react(&typed, out, witness)
            .map_err(ReactorError::User)
    }
}

struct Multi<I, R>(R, PhantomData<fn() -> I>);

impl<I: ProjectionInput, R: MultiReactive<I>> Dispatch for Multi<I, R> {
    type Error = R::Error;
    fn wants(&self, kind: EventKind) -> bool {
        let kinds = R::relevant_event_kinds();
        kinds.is_empty() || kinds.contains(&kind)
    }
    fn handle(
        &mut self,
        event: &StoredEvent<Vec<u8>>,
        out: &mut ReactionBatch,
        witness: Option<&AtLeastOnce>,
    ) -> Result<(), ReactorError<R::Error>> {
        self.0
            .dispatch_msgpack(event, out, witness)
            .map_err(|e| match e {
                MultiDispatchError::User(e) => ReactorError::User(e),
                MultiDispatchError::Decode(e) => ReactorError::Decode(e),
            })
    }
}

/// Upstream's plain [`Reactive`](crate::sourcing::Reactive) reactor: every kind, payloads
/// decoded from MessagePack as `P`, reactions staged as untyped items.
struct Plain<P, R>(R, PhantomData<fn() -> P>);

impl<P, R> Dispatch for Plain<P, R>
where
    P: serde::Serialize + serde::de::DeserializeOwned + 'static,
    R: crate::sourcing::Reactive<P> + Send + 'static,
{
    type Error = std::convert::Infallible;
    fn wants(&self, _kind: EventKind) -> bool {
        true
    }
    fn handle(
        &mut self,
        event: &StoredEvent<Vec<u8>>,
        out: &mut ReactionBatch,
        _witness: Option<&AtLeastOnce>,
    ) -> Result<(), ReactorError<Self::Error>> {
        let kind = event.event.header.event_kind;
        let payload: P = rmp_serde::from_slice(&event.event.payload)
            .map_err(|e| ReactorError::Decode(decode_failure(kind, DecodeSource::Msgpack(e))))?;
        let view = Event {
            header: event.event.header.clone(),
            payload,
            hash_chain: event.event.hash_chain,
        };
        for (coord, kind, payload) in self.0.react(&view) {
            out.items.push(
                BatchAppendItem::new(
                    coord,
                    kind,
                    &payload,
                    AppendOptions::default(),
                    CausationRef::None,
                )
                .map_err(ReactorError::Store)?,
            );
        }
        Ok(())
    }
}

/// How one run of the reactor ended: stopped / store closed, failed, or the handler
/// panicked (restart from the last written event).
enum RunEnd<E: std::error::Error + Send + Sync + 'static> {
    Done,
    Failed(ReactorError<E>),
    Panicked,
}

/// Where the reactor reads from and how it writes.
enum Source<'a> {
    /// A durable consumer: reactions go with the checkpoint.
    Checkpointed(Consumer<'a>),
    /// A plain cursor: reactions carry keys derived from this reactor identity.
    Keyed(super::Cursor, [u8; 32]),
}

/// Most reactions written as one unit with a checkpoint before the reactor flushes what it
/// gathered so far (keeps each unit well under the writer's batch limits).
const UNIT_REACTIONS: usize = 256;

struct Runner<'s, D> {
    store: &'s Store<Open>,
    region: Region,
    cfg: ReactorConfig,
    stop: Arc<AtomicBool>,
    dispatch: D,
    /// The reactor identity without a checkpoint.
    identity: [u8; 32],
    /// Without a checkpoint: the last source event whose reactions are written, so a
    /// restart after a panic resumes after it.
    written: Option<u64>,
    /// Told once the first run holds its consumer (or failed to get it), so that when
    /// `react_loop_*` returns a checkpointed reactor already holds the applied frontier back.
    ready: Option<Sender<()>>,
}

impl<D: Dispatch> Runner<'_, D> {
    fn run(&mut self) -> RunEnd<D::Error> {
        let mut source = match &self.cfg.checkpoint_id {
            Some(id) => match self.store.consumer(id, &self.region) {
                Ok(c) => Source::Checkpointed(c),
                Err(e) => {
                    self.ready.take();
                    return RunEnd::Failed(ReactorError::Store(e));
                }
            },
            None => {
                let mut c = self.store.cursor_guaranteed(&self.region);
                c.seek(self.written);
                Source::Keyed(c, self.identity)
            }
        };
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(());
        }
        let witness = self.cfg.checkpoint_id.clone().map(AtLeastOnce::new);
        let max = self.cfg.batch_size.max(1);
        while !self.stop.load(Ordering::SeqCst) {
            let events = match &mut source {
                Source::Checkpointed(c) => c.poll(max, self.cfg.idle_sleep),
                Source::Keyed(c, _) => c.poll_wait(max, self.cfg.idle_sleep),
            };
            if events.is_empty() {
                if self.store.shared.is_stopped() {
                    return RunEnd::Done;
                }
                continue;
            }
            if let Err(end) = self.handle_batch(&mut source, &events, witness.as_ref()) {
                return end;
            }
        }
        RunEnd::Done
    }

    fn handle_batch(
        &mut self,
        source: &mut Source<'_>,
        events: &[IndexEntry],
        witness: Option<&AtLeastOnce>,
    ) -> Result<(), RunEnd<D::Error>> {
        // Checkpointed: reactions gathered over several source events, written with the
        // checkpoint after the last of them.
        let mut pending: Vec<BatchAppendItem> = Vec::new();
        let mut through: Option<u64> = None;
        for entry in events {
            let items = if self.dispatch.wants(entry.kind) {
                let raw = self
                    .store
                    .raw_event(entry)
                    .map_err(|e| RunEnd::Failed(ReactorError::Store(e)))?;
                let mut out = ReactionBatch::new();
                let handled = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    self.dispatch.handle(&raw, &mut out, witness)
                }));
                match handled {
                    Err(_) => {
                        // Flush what earlier events of this poll produced, so the restart
                        // resumes after them.
                        self.flush(source, &mut pending, through)
                            .map_err(|e| RunEnd::Failed(ReactorError::Store(e)))?;
                        return Err(RunEnd::Panicked);
                    }
                    Ok(Err(e)) => {
                        self.flush(source, &mut pending, through)
                            .map_err(|e| RunEnd::Failed(ReactorError::Store(e)))?;
                        return Err(RunEnd::Failed(e));
                    }
                    Ok(Ok(())) => {}
                }
                match source {
                    Source::Keyed(_, id)
                        if !self.store.cfg.bugs.has(Mutant::ReactionKeysOmitted) =>
                    {
                        out.finish(entry, Some(&*id))
                    }
                    _ => out.finish(entry, None),
                }
            } else {
                Vec::new()
            };
            match source {
                Source::Checkpointed(_) => {
                    if !pending.is_empty() && pending.len() + items.len() > UNIT_REACTIONS {
                        self.flush(source, &mut pending, through)
                            .map_err(|e| RunEnd::Failed(ReactorError::Store(e)))?;
                    }
                    pending.extend(items);
                    through = Some(entry.global_sequence);
                }
                Source::Keyed(..) => {
                    // One atomic batch per source event, the same on every replay, so the
                    // writer recognises a replay as a retry and answers the originals.
                    if !items.is_empty() {
                        self.store
                            .append_batch(items)
                            .map_err(|e| RunEnd::Failed(ReactorError::Store(e)))?;
                    }
                    self.written = Some(entry.global_sequence);
                }
            }
        }
        self.flush(source, &mut pending, through)
            .map_err(|e| RunEnd::Failed(ReactorError::Store(e)))
    }

    /// Checkpointed: writes `pending` with the checkpoint at `through`.
    fn flush(
        &mut self,
        source: &mut Source<'_>,
        pending: &mut Vec<BatchAppendItem>,
        through: Option<u64>,
    ) -> Result<(), StoreError> {
        match (source, through) {
            (Source::Checkpointed(c), Some(seq)) if c.committed() != Some(seq) => {
                c.commit_with_through(seq, std::mem::take(pending))?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The identity a reactor without a checkpoint derives its keys from: its type, its payload
/// types and its region, so two different reactors over one log never share keys while the
/// same reactor in the next run of the program does.
fn identity<R>(region: &Region) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"batpak.reactor.identity.v1");
    h.update(std::any::type_name::<R>().as_bytes());
    h.update(&[0]);
    h.update(format!("{region:?}").as_bytes());
    *h.finalize().as_bytes()
}

fn spawn<D: Dispatch>(
    store: &StdArc<Store<Open>>,
    region: &Region,
    config: ReactorConfig,
    dispatch: D,
    identity: [u8; 32],
) -> Result<TypedReactorHandle<D::Error>, StoreError> {
    if let Some(id) = &config.checkpoint_id {
        id.check()?;
    }
    let store = StdArc::clone(store);
    let region = region.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_thread = Arc::clone(&stop);
    let (ready, started) = bounded(1);
    let thread = crate::sync::thread::Builder::new()
        .name("batpak-reactor".into())
        .spawn(move || {
            let mut runner = Runner {
                store: &store,
                region,
                cfg: config,
                stop: stop_thread,
                dispatch,
                identity,
                written: None,
                ready: Some(ready),
            };
            let mut restarts: Vec<Instant> = Vec::new();
            loop {
                match runner.run() {
                    RunEnd::Done => return Ok(()),
                    RunEnd::Failed(e) => {
                        tracing::error!(error = %e, "reactor stopped");
                        return Err(e);
                    }
                    RunEnd::Panicked => {
                        if !restart_allowed(&runner.cfg.restart_policy, &mut restarts) {
                            tracing::error!("reactor: restart budget exhausted");
                            return Err(ReactorError::RestartBudgetExhausted);
                        }
                        tracing::warn!("reactor: handler panicked, restarting");
                    }
                }
            }
        })
        .map_err(StoreError::Io)?;
    // Answered, or disconnected if the thread ended first: either way it has started.
    let _ = started.recv();
    Ok(TypedReactorHandle {
        stop,
        thread: Some(thread),
    })
}

impl Store<Open> {
    /// Runs `reactor` on a thread over `region`'s events of kind `T::KIND`, each decoded
    /// straight from its MessagePack payload; other kinds are skipped. See the module docs
    /// for how reactions are written exactly once, with or without a checkpoint.
    ///
    /// # Errors
    /// `InvalidCheckpointId` for a bad checkpoint id; `Io` when the thread does not start.
    /// What ends the reactor later comes from [`TypedReactorHandle::join`].
    pub fn react_loop_typed<T, R>(
        self: &StdArc<Self>,
        region: &Region,
        config: ReactorConfig,
        reactor: R,
    ) -> Result<TypedReactorHandle<R::Error>, StoreError>
    where
        T: EventPayload + 'static,
        R: TypedReactive<T>,
    {
        self.register_kind::<T>()?;
        let id = identity::<(T, R)>(region);
        spawn(self, region, config, Typed(reactor, PhantomData), id)
    }

    /// Runs a multi-kind reactor (usually `#[derive(MultiEventReactor)]` with
    /// `input = JsonValueInput`) over `region`; events of kinds it does not handle are
    /// skipped. The derive decodes each handled event straight from MessagePack into its
    /// handler's type. Otherwise as [`Store::react_loop_typed`].
    ///
    /// # Errors
    /// As [`Store::react_loop_typed`].
    pub fn react_loop_multi<R>(
        self: &StdArc<Self>,
        region: &Region,
        config: ReactorConfig,
        reactor: R,
    ) -> Result<TypedReactorHandle<R::Error>, StoreError>
    where
        R: MultiReactive<crate::sourcing::JsonValueInput>,
    {
        let id = identity::<R>(region);
        spawn(self, region, config, Multi(reactor, PhantomData), id)
    }

    /// Runs upstream's plain [`Reactive`](crate::sourcing::Reactive) reactor on a thread over
    /// every event of `region`, each payload decoded from MessagePack as `P` (upstream's
    /// `react_loop` takes `Reactive<serde_json::Value>`, which this covers). Each reaction is
    /// caused by its source event and joins its correlation; with [`ReactorConfig::default`]
    /// (no checkpoint) each gets a deterministic idempotency key, so reactions are written
    /// exactly once even when the reactor replays after a restart.
    ///
    /// Upstream returns the standard library's bare thread join handle (`JoinHandle<()>`);
    /// here the handle stops the thread when dropped, and [`TypedReactorHandle::join`]
    /// reports why it ended (a payload that does not decode as `P` is `ReactorError::Decode`).
    ///
    /// The store is shared with the reactor's thread: `react_loop` takes it behind an `Arc`,
    /// which `.into()` makes from an open store.
    ///
    /// ```no_run
    /// use batpak::event::Reactive;
    /// use batpak::prelude::*;
    ///
    /// struct Audit;
    /// impl Reactive<serde_json::Value> for Audit {
    ///     fn react(&self, e: &Event<serde_json::Value>) -> Vec<(Coordinate, EventKind, serde_json::Value)> {
    ///         let audit = Coordinate::new("audit", "shop").unwrap();
    ///         vec![(audit, EventKind::custom(0xA, 2), serde_json::json!({ "saw": e.event_id().to_string() }))]
    ///     }
    /// }
    ///
    /// # fn main() -> Result<(), StoreError> {
    /// let store = Store::open(StoreConfig::new("./data"))?.into();
    /// let handle = Store::react_loop(&store, &Region::entity("order"), Audit)?;
    /// // ... appends to "order" get an "audit" event each, exactly once ...
    /// handle.stop_and_join().expect("the reactor ran to its stop");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Store::react_loop_typed`].
    pub fn react_loop<P, R>(
        self: &StdArc<Self>,
        region: &Region,
        reactor: R,
    ) -> Result<TypedReactorHandle<std::convert::Infallible>, StoreError>
    where
        P: serde::Serialize + serde::de::DeserializeOwned + 'static,
        R: crate::sourcing::Reactive<P> + Send + 'static,
    {
        let id = identity::<R>(region);
        spawn(
            self,
            region,
            ReactorConfig::default(),
            Plain(reactor, PhantomData),
            id,
        )
    }

    /// [`Store::react_loop_multi`] for a reactor on the raw lane (`input = RawMsgpackInput`).
    ///
    /// # Errors
    /// As [`Store::react_loop_typed`].
    pub fn react_loop_multi_raw<R>(
        self: &StdArc<Self>,
        region: &Region,
        config: ReactorConfig,
        reactor: R,
    ) -> Result<TypedReactorHandle<R::Error>, StoreError>
    where
        R: MultiReactive<crate::sourcing::RawMsgpackInput>,
    {
        let id = identity::<R>(region);
        spawn(self, region, config, Multi(reactor, PhantomData), id)
    }
}

//! The one workload runner of the model crate: the operations a sequential client performs on
//! the real [`Store`] (on a [`SimDisk`], with a deterministic clock, ids and salts), what it
//! was told ([`Acks`]), and the checks it makes on the live store after every operation.
//! The crash-state enumeration, the simulator and the recovery fuzz harness all drive the
//! store through [`Runner`].
//!
//! Determinism: every call waits for its answer. Commands whose answers come later (a fenced
//! submit, a dropped fence's cancel) are followed by [`barrier`], a command the writer refuses
//! without writing anything: the writer handles commands in order, so once it is answered the
//! earlier one has been handled too. The sequence of disk operations then depends on the
//! operations alone.

use crate::check::{live_check, violation, visible, Check, Violation};
use crate::consumers::{self, ConsumerGhost};
use arbitrary::Arbitrary;
use batpak::__testing::codec::{self, FRAME_BYTES_MAX_DEFAULT};
use batpak::__testing::env::{CounterIds, Entropy, ManualClock, SeededEntropy, SimDisk};
use batpak::__testing::log::segment::decode_header;
use batpak::coordinate::Coordinate;
use batpak::event::EventKind;
use batpak::store::{
    AppendOptions, AppendTicket, BatchAppendItem, BatchAppendTicket, CausationRef, CheckpointId,
    Consumer, HlcPoint, Store, StoreConfig, StoreError, VisibilityFence,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The seeded bugs of the store (only [`Mutant::None`] outside the mutant build).
/// [`seed_bug`] is the one place a runner configures one.
pub use crate::Mutant;

/// The data directory on every simulated disk.
pub const DIR: &str = "/db";
/// The clock's reading when session 0 opens (microseconds).
pub const T0: i64 = 1_700_000_000_000_000;
/// The kind of every workload event.
pub const KIND: EventKind = EventKind::custom(1, 1);
/// The scope of every workload event.
pub const SCOPE: &str = "s";
/// The entities workload operations choose from (`entity % 3`).
pub const ENTITIES: [&str; 3] = ["a", "b", "c"];
/// Payload padding of the two appends of [`Op::Roll`] (two of them overflow a 512-byte
/// segment).
const ROLL_PAD: usize = 300;

/// The coordinate of `entity` in the workload scope.
pub fn coord(entity: &str) -> Coordinate {
    Coordinate::new(entity, SCOPE).unwrap_or_else(|e| panic!("workload coordinate: {e}"))
}

fn entity(i: u8) -> &'static str {
    ENTITIES[usize::from(i) % ENTITIES.len()]
}

/// How the store under test is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Deferred durability (`sync_every_n_events(1000)`, flush interval of an hour).
    pub deferred: bool,
    /// Seeded bug.
    pub mutant: Mutant,
}

impl Mode {
    /// Durable appends, no seeded bug.
    pub const DURABLE: Mode = Mode {
        deferred: false,
        mutant: Mutant::None,
    };
    /// Deferred durability, no seeded bug.
    pub const DEFERRED: Mode = Mode {
        deferred: true,
        mutant: Mutant::None,
    };
}

/// Configures the seeded bug `mutant` (the store's hidden switch; see [`crate::seed`]).
pub fn seed_bug(cfg: StoreConfig, mutant: Mutant) -> StoreConfig {
    crate::seed(cfg, mutant)
}

/// A deterministic configuration; `session` separates the id/clock spaces of reopens: every
/// reopen finds the clock 1,000 s further back (INV-HLC-MONOTONE across restarts), segments
/// are 512 bytes.
pub fn config(disk: &SimDisk, mode: Mode, session: u64) -> StoreConfig {
    let session_i = i64::try_from(session).unwrap_or(i64::MAX / 2_000_000_000);
    let mut c = StoreConfig::new(DIR)
        .with_lifecycle_events(false)
        .with_disk(Arc::new(disk.clone()))
        .with_clock_source(Arc::new(ManualClock::new(T0 - session_i * 1_000_000_000)))
        .with_id_source(Arc::new(CounterIds::new(1 + session * 1_000_000)))
        .with_entropy_source(Arc::new(SeededEntropy::new(session)))
        .with_segment_max_bytes(512);
    c = seed_bug(c, mode.mutant);
    if mode.deferred {
        c = c
            .with_sync_every_n_events(1000)
            .with_flush_interval(Duration::from_secs(3600));
    }
    c
}

/// Salts as splitmix64 of a counter, so the salt of the next segment is known before the
/// store draws it (a payload can carry a frame forged for the segment it lands in).
#[derive(Debug, Default)]
pub struct HarnessSalts {
    drawn: AtomicU64,
}

impl HarnessSalts {
    /// Salts from the `start`-th on (sessions use disjoint ranges).
    pub fn starting_at(start: u64) -> Self {
        HarnessSalts {
            drawn: AtomicU64::new(start),
        }
    }

    /// The `i`-th salt.
    pub fn salt(i: u64) -> u32 {
        let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as u32
    }

    /// The salt the next segment will get.
    pub fn peek(&self) -> u32 {
        Self::salt(self.drawn.load(Ordering::SeqCst))
    }
}

impl Entropy for HarnessSalts {
    fn next_u32(&self) -> u32 {
        Self::salt(self.drawn.fetch_add(1, Ordering::SeqCst))
    }
}

/// One operation of a workload.
///
/// Its `Arbitrary` decoding (the fuzz harness's input) is written by hand so the consumer
/// operations could join without changing what any committed fuzz input means: see
/// [`Op::ARB_OLD_VARIANTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `append` on entity `entity % 3`, payload `{"n": .., "pad": "x" * pad}`.
    Append {
        /// Entity selector.
        entity: u8,
        /// Payload padding.
        pad: u8,
    },
    /// `append` of a 200 + 2 * `size` byte payload (raw bytes) that embeds frames: valid
    /// frames sealed with the salt of the segment the event lands in (and of the one after, in
    /// case the append rolls), and a frame of the old unsalted format, each carrying a sequence
    /// recovery would accept. A crash that tears this append must still be a torn tail
    /// (recovery never looks inside a torn frame).
    BigAppend {
        /// Entity selector.
        entity: u8,
        /// Size selector.
        size: u8,
    },
    /// `append_batch` of `1 + n % 3` events on consecutive entities from `entity`.
    Batch {
        /// Item count selector.
        n: u8,
        /// First entity.
        entity: u8,
    },
    /// The unfenced outbox: stage `1 + n % 3` events, `flush()`.
    Outbox {
        /// Item count selector.
        n: u8,
        /// First entity.
        entity: u8,
    },
    /// `sync()`.
    Sync,
    /// `wait_for_durable(frontier().written)`.
    WaitDurable,
    /// Two appends of 300-byte payloads on entity `a` (a segment roll at 512-byte segments).
    Roll,
    /// `begin_visibility_fence` (skipped while one is open).
    FenceBegin,
    /// `fence.submit` (skipped without an open fence); the ticket resolves at commit or cancel.
    FencedAppend {
        /// Entity selector.
        entity: u8,
    },
    /// `fence.submit_batch` of `1 + n % 3` events.
    FencedBatch {
        /// Item count selector.
        n: u8,
        /// First entity.
        entity: u8,
    },
    /// The fenced outbox: stage `1 + n % 3` events and `flush()` (answers when durable, still
    /// hidden until the fence commits).
    FencedOutbox {
        /// Item count selector.
        n: u8,
        /// First entity.
        entity: u8,
    },
    /// `fence.commit()`.
    FenceCommit,
    /// `fence.cancel()`.
    FenceCancel,
    /// Drop the fence (drop-cancel).
    FenceDrop,
    /// Consumer `c % 2` ([`crate::consumers::IDS`]; opened at its first use in a session)
    /// polls up to `1 + max % 4` events without waiting.
    ConsumerPoll {
        /// Consumer selector.
        c: u8,
        /// Batch size selector.
        max: u8,
    },
    /// Consumer `c % 2` commits what it was handed: `c0` with `commit_with` (one output per
    /// source handed out since its last commit), `c1` with `commit()`.
    ConsumerCommit {
        /// Consumer selector.
        c: u8,
    },
    /// Consumer `c % 2` is dropped and opened again: it resumes after its committed
    /// checkpoint (what it was handed since is handed out again).
    ConsumerResume {
        /// Consumer selector.
        c: u8,
    },
}

impl<'a> Arbitrary<'a> for Op {
    /// The decoding `#[derive(Arbitrary)]` gave the first [`Op::ARB_OLD_VARIANTS`] variants
    /// (a `u32` `v`, variant `(v * 14) >> 32`, then its fields), except that the top quarter
    /// of each variant's range of `v` now decodes a consumer operation (variant `i`'s quarter:
    /// consumer operation `i % 3`, then its fields). Encoders (`just fuzz-seeds`) write the
    /// smallest `v` of a variant's range, so every committed input decodes as before; the
    /// consumer operations are written as the largest `v` of the range of variant 0, 1 or 2.
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let v = u64::from(u32::arbitrary(u)?);
        let n = u64::from(Op::ARB_OLD_VARIANTS);
        let i = (v * n) >> 32;
        let lo = (i << 32).div_ceil(n);
        let hi = ((i + 1) << 32).div_ceil(n);
        let width = hi - lo;
        if v - lo >= width - width / 4 {
            return Ok(match i % 3 {
                0 => Op::ConsumerPoll {
                    c: u8::arbitrary(u)?,
                    max: u8::arbitrary(u)?,
                },
                1 => Op::ConsumerCommit {
                    c: u8::arbitrary(u)?,
                },
                _ => Op::ConsumerResume {
                    c: u8::arbitrary(u)?,
                },
            });
        }
        Ok(match i {
            0 => Op::Append {
                entity: u8::arbitrary(u)?,
                pad: u8::arbitrary(u)?,
            },
            1 => Op::BigAppend {
                entity: u8::arbitrary(u)?,
                size: u8::arbitrary(u)?,
            },
            2 => Op::Batch {
                n: u8::arbitrary(u)?,
                entity: u8::arbitrary(u)?,
            },
            3 => Op::Outbox {
                n: u8::arbitrary(u)?,
                entity: u8::arbitrary(u)?,
            },
            4 => Op::Sync,
            5 => Op::WaitDurable,
            6 => Op::Roll,
            7 => Op::FenceBegin,
            8 => Op::FencedAppend {
                entity: u8::arbitrary(u)?,
            },
            9 => Op::FencedBatch {
                n: u8::arbitrary(u)?,
                entity: u8::arbitrary(u)?,
            },
            10 => Op::FencedOutbox {
                n: u8::arbitrary(u)?,
                entity: u8::arbitrary(u)?,
            },
            11 => Op::FenceCommit,
            12 => Op::FenceCancel,
            _ => Op::FenceDrop,
        })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (4, Some(6))
    }
}

impl Op {
    /// How many variants the derived `Arbitrary` decoding had (`Append` to `FenceDrop`, in
    /// declaration order); the hand-written one keeps their meaning (see the impl).
    pub const ARB_OLD_VARIANTS: u32 = 14;

    /// An append on entity `a`.
    pub const APPEND_A: Op = Op::Append { entity: 0, pad: 0 };
    /// An append on entity `b`.
    pub const APPEND_B: Op = Op::Append { entity: 1, pad: 0 };
    /// A batch of two (entities `a`, `b`).
    pub const BATCH: Op = Op::Batch { n: 1, entity: 0 };
    /// A fenced append on entity `a`.
    pub const FENCED_APPEND: Op = Op::FencedAppend { entity: 0 };
    /// A fenced batch of two.
    pub const FENCED_BATCH: Op = Op::FencedBatch { n: 1, entity: 0 };
    /// A fenced outbox flush of two.
    pub const FENCED_OUTBOX: Op = Op::FencedOutbox { n: 1, entity: 0 };

    /// Whether the operation needs an open fence (the generators keep fence operations in a
    /// valid order).
    pub fn needs_open_fence(self) -> bool {
        matches!(
            self,
            Op::FencedAppend { .. }
                | Op::FencedBatch { .. }
                | Op::FencedOutbox { .. }
                | Op::FenceCommit
                | Op::FenceCancel
                | Op::FenceDrop
        )
    }

    /// Whether the operation ends the open fence.
    pub fn ends_fence(self) -> bool {
        matches!(self, Op::FenceCommit | Op::FenceCancel | Op::FenceDrop)
    }
}

/// The canonical alphabet of the exhaustive workloads.
pub const CANONICAL_OPS: [Op; 9] = [
    Op::APPEND_A,
    Op::APPEND_B,
    Op::BATCH,
    Op::Sync,
    Op::Roll,
    Op::FenceBegin,
    Op::FENCED_APPEND,
    Op::FenceCommit,
    Op::FenceCancel,
];

/// The alphabet of the random crash-state workloads: the canonical one plus fenced batches
/// and the fenced outbox flush.
pub const RANDOM_OPS: [Op; 11] = [
    Op::APPEND_A,
    Op::APPEND_B,
    Op::BATCH,
    Op::Sync,
    Op::Roll,
    Op::FenceBegin,
    Op::FENCED_APPEND,
    Op::FenceCommit,
    Op::FenceCancel,
    Op::FENCED_BATCH,
    Op::FENCED_OUTBOX,
];

/// splitmix64: the deterministic random stream of the generators and the simulator.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent`%.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// `count` pseudo-random workloads of `min_len..=max_len` operations over [`RANDOM_OPS`]
/// (splitmix64 from `seed`, so the list is the same on every run). Fence operations come in a
/// valid order.
pub fn random_workloads(count: usize, min_len: usize, max_len: usize, seed: u64) -> Vec<Vec<Op>> {
    let mut rng = SplitMix(seed);
    let span = (max_len - min_len + 1) as u64;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let len = min_len + rng.below(span) as usize;
        let mut w = Vec::with_capacity(len);
        let mut open = false;
        while w.len() < len {
            let op = RANDOM_OPS[rng.below(RANDOM_OPS.len() as u64) as usize];
            let valid = match op {
                Op::FenceBegin => !open,
                o if o.needs_open_fence() => open,
                _ => true,
            };
            if !valid {
                continue;
            }
            open = match op {
                Op::FenceBegin => true,
                o if o.ends_fence() => false,
                _ => open,
            };
            w.push(op);
        }
        out.push(w);
    }
    out
}

/// Every workload of 1..=`max_len` operations over [`CANONICAL_OPS`] whose fence operations
/// come in a valid order (plain writes while a fence is open are kept: the store must refuse
/// them).
pub fn workloads(max_len: usize) -> Vec<Vec<Op>> {
    let mut out = Vec::new();
    let mut layer: Vec<(Vec<Op>, bool)> = vec![(Vec::new(), false)];
    for _ in 0..max_len {
        let mut next = Vec::new();
        for (w, open) in &layer {
            for op in CANONICAL_OPS {
                let valid = match op {
                    Op::FenceBegin => !open,
                    o if o.needs_open_fence() => *open,
                    _ => true,
                };
                if !valid {
                    continue;
                }
                let mut w2 = w.clone();
                w2.push(op);
                let open2 = match op {
                    Op::FenceBegin => true,
                    o if o.ends_fence() => false,
                    _ => *open,
                };
                out.push(w2.clone());
                next.push((w2, open2));
            }
        }
        layer = next;
    }
    out
}

/// An event answered `Ok`.
#[derive(Debug, Clone)]
pub struct AckedEvent {
    /// Event id.
    pub id: u128,
    /// Global sequence.
    pub seq: u64,
    /// Entity.
    pub entity: String,
    /// The JSON payload (`None`: raw bytes, compared with the written record).
    pub payload: Option<Value>,
    /// The receipt said durable.
    pub durable: bool,
}

/// A record the store promised is durable: it must be in every surviving prefix.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The invariant the promise belongs to.
    pub inv: &'static str,
    /// The record's sequence (every record up to it is durable).
    pub seq: u64,
    /// What promised it.
    pub what: String,
}

/// What became of a fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Still open.
    Open,
    /// `commit()` returned `Ok`.
    Committed,
    /// Cancelled, dropped, or its commit failed definitely.
    Cancelled,
    /// The commit's outcome is unknown (indeterminate error).
    Unknown,
}

/// What the workload's caller saw.
#[derive(Debug, Clone, Default)]
pub struct Acks {
    /// Events answered `Ok`.
    pub events: Vec<AckedEvent>,
    /// Durability promises.
    pub claims: Vec<Claim>,
    /// Sequence of each fenced event written -> fence token.
    pub fenced: BTreeMap<u64, u64>,
    /// Each fence's fate.
    pub fences: BTreeMap<u64, Fate>,
    /// Errors answered, as text (op, error, definite).
    pub errors: Vec<String>,
    /// Definite errors answered.
    pub definite_errors: usize,
    /// Indeterminate errors answered.
    pub indefinite_errors: usize,
    /// Events of fenced outbox flushes answered `Ok` (durable, hidden): acknowledged as
    /// visible only once their fence commits.
    pub staged: Vec<(u64, AckedEvent)>,
    /// `Ok` answers to writes, syncs and waits (a latched store gives none).
    pub oks: usize,
    /// The durable consumers' ghosts ([`crate::consumers`]).
    pub consumers: [ConsumerGhost; 2],
}

impl Acks {
    /// Records answered as durable: one past the highest promised sequence.
    pub fn durable_len(&self) -> u64 {
        self.claims.iter().map(|c| c.seq + 1).max().unwrap_or(0)
    }

    fn claim(&mut self, inv: &'static str, seq: u64, what: impl Into<String>) {
        self.claims.push(Claim {
            inv,
            seq,
            what: what.into(),
        });
    }
}

/// A payload serialised as one MessagePack byte string: its bytes land in the frame as they
/// are.
struct RawBytes(Vec<u8>);

impl serde::Serialize for RawBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

/// Frames a payload can carry: `FenceBegin { fence: seq }` at sequence `seq`, sealed with
/// each of `salts`, then the same record in the old unsalted format (length, CRC32 of length
/// and body, body), back to back.
pub fn embeddable_frames(seq: u64, salts: &[u32]) -> Vec<u8> {
    let record = batpak::__testing::log::Record {
        seq,
        body: batpak::__testing::log::RecordBody::FenceBegin { fence: seq },
    };
    let mut out = Vec::new();
    for &salt in salts {
        let _ = codec::encode_into(&record, FRAME_BYTES_MAX_DEFAULT, salt, &mut out);
    }
    if let Ok(f) = codec::encode(&record, FRAME_BYTES_MAX_DEFAULT, 0) {
        let body = f.get(codec::FRAME_HEADER_BYTES..).unwrap_or(&[]);
        let len = (body.len() as u32).to_le_bytes();
        let mut h = crc32fast::Hasher::new();
        h.update(&len);
        h.update(body);
        out.extend_from_slice(&len);
        out.extend_from_slice(&h.finalize().to_le_bytes());
        out.extend_from_slice(body);
    }
    out
}

/// [`Op::BigAppend`]'s payload: `200 + 2 * size` bytes of `size`, with [`embeddable_frames`]
/// (for the active segment's salt and the next one's) near the start and near the end, so a
/// write torn anywhere keeps some of them.
fn big_payload(size: u8, next_seq: u64, salts: &[u32]) -> Vec<u8> {
    let n = 200 + 2 * usize::from(size);
    let mut p = vec![size; n];
    let frames = embeddable_frames(next_seq + u64::from(size % 3), salts);
    for at in [usize::from(size % 16), n.saturating_sub(frames.len() + 1)] {
        if let Some(dst) = p.get_mut(at..at + frames.len()) {
            dst.copy_from_slice(&frames);
        }
    }
    p
}

/// The salt in the header of the last segment file of the store's directory.
fn active_salt(disk: &SimDisk) -> Option<u32> {
    let last = disk
        .files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max()?;
    decode_header(&disk.read_file(&last)?).ok().map(|h| h.salt)
}

/// Lets [`Op::BigAppend`] seal frames for the segment its event lands in.
#[derive(Debug, Clone)]
pub struct SaltView {
    /// The store's disk (read for the active segment's salt).
    pub disk: SimDisk,
    /// The store's salts (peeked for the next segment's).
    pub salts: Arc<HarnessSalts>,
}

/// A command the writer refuses without writing (an append naming a cause that does not
/// exist, or any unfenced append while a fence is open, or anything once latched): once it
/// is answered, every command sent before it has been handled.
pub fn barrier(store: &Store) {
    let _ = store.append_reaction(&coord(ENTITIES[0]), KIND, &(), 0, u128::MAX);
}

/// A sequential client of one store: runs operations, records what it is told in
/// [`Runner::acks`] and checks the live store after each one.
pub struct Runner<'s> {
    store: &'s Store,
    /// What the client was told (may carry earlier sessions' answers).
    pub acks: Acks,
    fence: Option<VisibilityFence<'s>>,
    pending: Vec<(AppendTicket, String, Value)>,
    /// Fenced batch tickets (resolve at commit or cancel) with their events' entity/payload.
    pending_batches: Vec<(BatchAppendTicket, Vec<(String, Value)>)>,
    n: u64,
    faults: bool,
    salts: Option<SaltView>,
    /// The consumers opened in this session, and the sources each was handed since its
    /// last commit; `None` once a commit's outcome is unknown (the consumer is not used again
    /// in this session: a retry could react twice).
    consumers: [Option<(Consumer<'s>, Vec<u64>)>; 2],
    consumers_poisoned: [bool; 2],
}

impl<'s> Runner<'s> {
    /// A client of `store` that continues `acks`. `faults`: errors are expected (a fault is
    /// scheduled); without faults every error other than `VisibilityFenceActive` is a
    /// violation.
    pub fn new(store: &'s Store, acks: Acks, faults: bool) -> Self {
        Runner {
            store,
            acks,
            fence: None,
            pending: Vec::new(),
            pending_batches: Vec::new(),
            n: 0,
            faults,
            salts: None,
            consumers: [None, None],
            consumers_poisoned: [false; 2],
        }
    }

    /// Payload counters start at `n` (distinct payloads across sessions).
    pub fn counting_from(mut self, n: u64) -> Self {
        self.n = n;
        self
    }

    /// Lets big appends embed frames sealed for the segment they land in.
    pub fn with_salts(mut self, salts: SaltView) -> Self {
        self.salts = Some(salts);
        self
    }

    /// The payload counter.
    pub fn counter(&self) -> u64 {
        self.n
    }

    /// Whether a fence is open.
    pub fn fence_open(&self) -> bool {
        self.fence.is_some()
    }

    /// Runs `op`, then records `frontier().durable` as a promise and checks the live store.
    pub fn run(&mut self, op: Op) -> Check {
        self.step(op)?;
        let d = self.store.frontier().durable;
        if d > 0 && d > self.acks.durable_len() {
            self.acks.claim("INV-DURABLE", d - 1, "frontier().durable");
        }
        live_check(self.store, &self.acks)
    }

    /// Forgets the open fence without letting its drop cancel it (the process is about to
    /// die: nothing more is written), and returns what the client was told.
    pub fn abandon(mut self) -> Acks {
        std::mem::forget(self.fence.take());
        self.acks
    }

    fn payload(&mut self, pad: usize) -> Value {
        self.n += 1;
        json!({"n": self.n, "pad": "x".repeat(pad)})
    }

    fn written(&self) -> u64 {
        self.store.frontier().written
    }

    fn ack_event(
        &mut self,
        r: &batpak::store::AppendReceipt,
        entity: &str,
        payload: Option<Value>,
    ) {
        self.acks.events.push(AckedEvent {
            id: r.event_id,
            seq: r.sequence,
            entity: entity.to_owned(),
            payload,
            durable: r.durable,
        });
    }

    /// Records an error; a definite one must have written nothing.
    fn error(&mut self, op: Op, e: &StoreError, written_before: u64, vis_before: usize) -> Check {
        let definite = e.is_definite();
        self.acks
            .errors
            .push(format!("{op:?}: {e} (definite: {definite})"));
        if definite {
            self.acks.definite_errors += 1;
            let w = self.written();
            if w != written_before || visible(self.store).len() != vis_before {
                return Err(violation(
                    "INV-DEFINITE-ERRORS",
                    format!(
                        "{op:?} failed definitely ({e}) but the log moved {written_before} -> {w}"
                    ),
                ));
            }
        } else {
            self.acks.indefinite_errors += 1;
            if !matches!(
                e,
                StoreError::OutcomeUnknown { .. }
                    | StoreError::WriterCrashed
                    | StoreError::BatchFailed { .. }
            ) {
                return Err(violation(
                    "INV-DEFINITE-ERRORS",
                    format!("indeterminate error of an unexpected variant: {e:?}"),
                ));
            }
        }
        if !self.faults && !matches!(e, StoreError::VisibilityFenceActive) {
            return Err(violation(
                "INV-DEFINITE-ERRORS",
                format!("{op:?} failed without any fault: {e:?}"),
            ));
        }
        Ok(())
    }

    fn before(&self) -> (u64, usize) {
        (self.written(), visible(self.store).len())
    }

    fn append(&mut self, op: Op, entity: &str, pad: usize) -> Check {
        let payload = self.payload(pad);
        let (w, v) = self.before();
        match self.store.append(&coord(entity), KIND, &payload) {
            Ok(r) => {
                self.acks.oks += 1;
                self.ack_event(&r, entity, Some(payload));
                if r.durable {
                    self.acks.claim(
                        "INV-DURABLE",
                        r.sequence,
                        format!("{op:?} event {:x}", r.event_id),
                    );
                }
                Ok(())
            }
            Err(e) => self.error(op, &e, w, v),
        }
    }

    fn big_append(&mut self, op: Op, entity: &str, size: u8) -> Check {
        let salts: Vec<u32> = match &self.salts {
            Some(s) => active_salt(&s.disk)
                .into_iter()
                .chain([s.salts.peek()])
                .collect(),
            None => Vec::new(),
        };
        let payload = RawBytes(big_payload(size, self.written(), &salts));
        let (w, v) = self.before();
        match self.store.append(&coord(entity), KIND, &payload) {
            Ok(r) => {
                self.acks.oks += 1;
                self.ack_event(&r, entity, None);
                if r.durable {
                    self.acks.claim(
                        "INV-DURABLE",
                        r.sequence,
                        format!("{op:?} event {:x}", r.event_id),
                    );
                }
                Ok(())
            }
            Err(e) => self.error(op, &e, w, v),
        }
    }

    /// `1 + n % 3` items on consecutive entities from `first`.
    fn items(&mut self, n: u8, first: u8) -> (Vec<BatchAppendItem>, Vec<(String, Value)>) {
        let mut items = Vec::new();
        let mut events = Vec::new();
        for i in 0..1 + n % 3 {
            let e = entity(first.wrapping_add(i));
            let p = self.payload(0);
            items.push(
                BatchAppendItem::new(
                    coord(e),
                    KIND,
                    &p,
                    AppendOptions::default(),
                    CausationRef::None,
                )
                .unwrap_or_else(|err| panic!("workload batch item: {err}")),
            );
            events.push((e.to_owned(), p));
        }
        (items, events)
    }

    /// Acknowledges the receipts of a batch (or outbox flush) of `events`.
    fn ack_batch(
        &mut self,
        op: Op,
        rs: &[batpak::store::AppendReceipt],
        events: Vec<(String, Value)>,
    ) -> Check {
        if rs.len() != events.len() {
            return Err(violation(
                "INV-BATCH-ATOMIC",
                format!("{op:?} of {} answered {} receipts", events.len(), rs.len()),
            ));
        }
        self.acks.oks += 1;
        for (r, (entity, payload)) in rs.iter().zip(events) {
            self.ack_event(r, &entity, Some(payload));
        }
        if rs.iter().all(|r| r.durable) {
            let last = rs.last().map_or(0, |r| r.sequence);
            self.acks
                .claim("INV-DURABLE", last + 1, format!("{op:?} commit record"));
        }
        Ok(())
    }

    fn batch(&mut self, op: Op, n: u8, first: u8) -> Check {
        let (items, events) = self.items(n, first);
        let (w, v) = self.before();
        match self.store.append_batch(items) {
            Ok(rs) => self.ack_batch(op, &rs, events),
            Err(e) => self.error(op, &e, w, v),
        }
    }

    fn outbox(&mut self, op: Op, n: u8, first: u8) -> Check {
        let (items, events) = self.items(n, first);
        let (w, v) = self.before();
        let mut ob = self.store.outbox();
        for item in items {
            ob.push_item(item);
        }
        let r = ob.flush();
        drop(ob);
        match r {
            Ok(rs) => self.ack_batch(op, &rs, events),
            Err(e) => self.error(op, &e, w, v),
        }
    }

    /// After a command whose answer comes later: waits until the writer has handled it.
    fn settle(&self) {
        barrier(self.store);
    }

    /// `fence.submit_batch`: the ticket itself resolves at commit or cancel.
    fn fenced_batch(&mut self, op: Op, n: u8, first: u8) -> Check {
        if self.fence.is_none() {
            return Ok(());
        }
        let (items, events) = self.items(n, first);
        let (w, v) = self.before();
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        let token = fence.token();
        match fence.submit_batch(items) {
            Ok(t) => {
                self.settle();
                match t.try_check() {
                    None => {
                        for i in 0..events.len() as u64 {
                            self.acks.fenced.insert(w + i, token);
                        }
                        self.pending_batches.push((t, events));
                        Ok(())
                    }
                    Some(Ok(r)) => Err(violation(
                        "INV-FENCE-HIDDEN",
                        format!("fenced batch ticket resolved before commit: {r:?}"),
                    )),
                    Some(Err(e)) => self.error(op, &e, w, v),
                }
            }
            Err(e) => self.error(op, &e, w, v),
        }
    }

    fn fenced_append(&mut self, op: Op, entity_no: u8) -> Check {
        if self.fence.is_none() {
            return Ok(());
        }
        let e = entity(entity_no);
        let payload = self.payload(0);
        let (w, v) = self.before();
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        let token = fence.token();
        match fence.submit(&coord(e), KIND, &payload) {
            Ok(t) => {
                self.settle();
                match t.try_check() {
                    None => {
                        self.acks.fenced.insert(w, token);
                        self.pending.push((t, e.to_owned(), payload));
                        Ok(())
                    }
                    Some(Ok(r)) => Err(violation(
                        "INV-FENCE-HIDDEN",
                        format!("fenced ticket resolved before commit: {r:?}"),
                    )),
                    Some(Err(err)) => self.error(op, &err, w, v),
                }
            }
            Err(err) => self.error(op, &err, w, v),
        }
    }

    /// The fenced outbox: stage and flush; the flush answers once the batch is durably
    /// written, hidden until the fence commits.
    fn fenced_outbox(&mut self, op: Op, n: u8, first: u8) -> Check {
        if self.fence.is_none() {
            return Ok(());
        }
        let (items, events) = self.items(n, first);
        let (w, v) = self.before();
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        let token = fence.token();
        let mut ob = fence.outbox();
        for item in items {
            ob.push_item(item);
        }
        let r = ob.flush();
        drop(ob);
        match r {
            Ok(rs) => {
                if rs.len() != events.len() {
                    return Err(violation(
                        "INV-BATCH-ATOMIC",
                        format!(
                            "fenced outbox flush of {} answered {} receipts",
                            events.len(),
                            rs.len()
                        ),
                    ));
                }
                self.acks.oks += 1;
                for (r, (entity, payload)) in rs.iter().zip(events) {
                    self.acks.fenced.insert(r.sequence, token);
                    self.acks.staged.push((
                        token,
                        AckedEvent {
                            id: r.event_id,
                            seq: r.sequence,
                            entity,
                            payload: Some(payload),
                            durable: r.durable,
                        },
                    ));
                }
                if rs.iter().all(|r| r.durable) {
                    let last = rs.last().map_or(0, |r| r.sequence);
                    self.acks.claim(
                        "INV-DURABLE",
                        last + 1,
                        format!("fenced outbox batch commit record (fence {token})"),
                    );
                }
                Ok(())
            }
            Err(e) => self.error(op, &e, w, v),
        }
    }

    fn sync(&mut self, op: Op) -> Check {
        let (w, v) = self.before();
        match self.store.sync() {
            Ok(()) => {
                self.acks.oks += 1;
                if w > 0 {
                    self.acks.claim("INV-DURABLE", w - 1, "sync() returned Ok");
                }
                Ok(())
            }
            Err(e) => self.error(op, &e, w, v),
        }
    }

    fn wait_durable(&mut self, op: Op) -> Check {
        let (w, v) = self.before();
        // The point is the last written event (sequence w - 1); nothing written, nothing to wait for.
        let got = match w.checked_sub(1) {
            None => Ok(()),
            Some(last) => self.store.wait_for_durable(
                HlcPoint {
                    wall_ms: 0,
                    global_sequence: last,
                },
                Duration::from_secs(30),
            ),
        };
        match got {
            Ok(()) => {
                // An answer for what was already promised durable promises nothing new.
                if w > self.acks.durable_len() {
                    self.acks.oks += 1;
                }
                if w > 0 {
                    self.acks
                        .claim("INV-DURABLE", w - 1, "wait_for_durable returned Ok");
                }
                Ok(())
            }
            Err(e @ StoreError::WaitTimeout { .. }) => Err(violation(
                "INV-DURABLE",
                format!(
                    "wait_for_durable(sequence {}) timed out: {e}",
                    w.saturating_sub(1)
                ),
            )),
            Err(e) => self.error(op, &e, w, v),
        }
    }

    fn fence_begin(&mut self, op: Op) -> Check {
        if self.fence.is_some() {
            return Ok(());
        }
        let (w, v) = self.before();
        match self.store.begin_visibility_fence() {
            Ok(f) => {
                self.acks.oks += 1;
                self.acks.fences.insert(f.token(), Fate::Open);
                self.fence = Some(f);
                Ok(())
            }
            Err(e) => self.error(op, &e, w, v),
        }
    }

    /// Commits, cancels or drops the open fence, then collects its tickets.
    fn fence_end(&mut self, op: Op) -> Check {
        let Some(fence) = self.fence.take() else {
            return Ok(());
        };
        let token = fence.token();
        let (w, v) = self.before();
        let (fate, r) = match op {
            Op::FenceCommit => {
                let r = fence.commit();
                let fate = match &r {
                    Ok(()) => Fate::Committed,
                    Err(e) if e.is_definite() => Fate::Cancelled,
                    Err(_) => Fate::Unknown,
                };
                (fate, r)
            }
            Op::FenceCancel => (Fate::Cancelled, fence.cancel()),
            _ => {
                drop(fence);
                self.settle();
                (Fate::Cancelled, Ok(()))
            }
        };
        self.acks.fences.insert(token, fate);
        if op == Op::FenceCommit && r.is_ok() {
            self.acks.oks += 1;
            let seq = self.written().saturating_sub(1);
            self.acks
                .claim("INV-FENCE-CRASH", seq, format!("commit of fence {token}"));
        }
        if let Err(e) = &r {
            self.error(op, e, w, v)?;
        }
        for (t, entity, payload) in std::mem::take(&mut self.pending) {
            match t.wait() {
                Ok(rc) => {
                    if fate != Fate::Committed {
                        return Err(violation(
                            "INV-NO-RESURRECT",
                            format!("fenced ticket answered Ok though the fence ended {fate:?}"),
                        ));
                    }
                    self.ack_event(&rc, &entity, Some(payload));
                }
                Err(e) => {
                    if fate == Fate::Committed {
                        return Err(violation(
                            "INV-FENCE-HIDDEN",
                            format!("fence committed but its ticket failed: {e}"),
                        ));
                    }
                    self.acks.errors.push(format!("fenced ticket: {e}"));
                }
            }
        }
        for (t, events) in std::mem::take(&mut self.pending_batches) {
            match t.wait() {
                Ok(rs) => {
                    if fate != Fate::Committed {
                        return Err(violation(
                            "INV-NO-RESURRECT",
                            format!(
                                "fenced batch ticket answered Ok though the fence ended {fate:?}"
                            ),
                        ));
                    }
                    for (rc, (entity, payload)) in rs.iter().zip(events) {
                        self.ack_event(rc, &entity, Some(payload));
                    }
                }
                Err(e) => {
                    if fate == Fate::Committed {
                        return Err(violation(
                            "INV-FENCE-HIDDEN",
                            format!("fence committed but its batch ticket failed: {e}"),
                        ));
                    }
                    self.acks.errors.push(format!("fenced batch ticket: {e}"));
                }
            }
        }
        // Fenced outbox batches: acknowledged as visible once the fence committed.
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.acks.staged)
            .into_iter()
            .partition(|(f, _)| *f == token);
        self.acks.staged = rest;
        if fate == Fate::Committed {
            self.acks.events.extend(mine.into_iter().map(|(_, a)| a));
        }
        Ok(())
    }

    /// Runs one operation (no live check: see [`Runner::run`]).
    pub fn step(&mut self, op: Op) -> Check {
        match op {
            Op::Append { entity: e, pad } => self.append(op, entity(e), usize::from(pad)),
            Op::BigAppend { entity: e, size } => self.big_append(op, entity(e), size),
            Op::Batch { n, entity } => self.batch(op, n, entity),
            Op::Outbox { n, entity } => self.outbox(op, n, entity),
            Op::Sync => self.sync(op),
            Op::WaitDurable => self.wait_durable(op),
            Op::Roll => {
                self.append(op, ENTITIES[0], ROLL_PAD)?;
                self.append(op, ENTITIES[0], ROLL_PAD)
            }
            Op::FenceBegin => self.fence_begin(op),
            Op::FencedAppend { entity } => self.fenced_append(op, entity),
            Op::FencedBatch { n, entity } => self.fenced_batch(op, n, entity),
            Op::FencedOutbox { n, entity } => self.fenced_outbox(op, n, entity),
            Op::FenceCommit | Op::FenceCancel | Op::FenceDrop => self.fence_end(op),
            Op::ConsumerPoll { c, max } => self.consumer_poll(op, usize::from(c % 2), max),
            Op::ConsumerCommit { c } => self.consumer_commit(op, usize::from(c % 2)),
            Op::ConsumerResume { c } => {
                let i = usize::from(c % 2);
                self.consumers[i] = None;
                self.consumer(op, i).map(|_| ())
            }
        }
    }

    /// Consumer `i`, opened if it is not open in this session (`None`: not usable).
    fn consumer(&mut self, op: Op, i: usize) -> Result<Option<usize>, Violation> {
        if self.consumers_poisoned[i] {
            return Ok(None);
        }
        if self.consumers[i].is_none() {
            let id = CheckpointId::new(consumers::IDS[i]);
            match self.store.consumer(&id, &consumers::region()) {
                Ok(c) => {
                    let ghost = &self.acks.consumers[i];
                    if ghost.committed.is_some_and(|g| g != c.committed()) {
                        return Err(violation(
                            "INV-CHECKPOINT-DURABLE",
                            format!(
                                "consumer {} resumes after {:?}, its checkpoint is after {:?}",
                                consumers::IDS[i],
                                c.committed(),
                                ghost.committed
                            ),
                        ));
                    }
                    self.consumers[i] = Some((c, Vec::new()));
                }
                Err(e) => {
                    let (w, v) = self.before();
                    self.consumers_poisoned[i] = true;
                    self.error(op, &e, w, v)?;
                    return Ok(None);
                }
            }
        }
        Ok(Some(i))
    }

    fn consumer_poll(&mut self, op: Op, i: usize, max: u8) -> Check {
        if self.consumer(op, i)?.is_none() {
            return Ok(());
        }
        let max = 1 + usize::from(max % 4);
        let Some((c, since)) = self.consumers[i].as_mut() else {
            return Ok(());
        };
        let prev = c.position();
        let got = c.poll(max, Duration::ZERO);
        since.extend(got.iter().map(|e| e.global_sequence));
        consumers::check_poll(self.store, &mut self.acks.consumers[i], i, prev, &got, max)
    }

    fn consumer_commit(&mut self, op: Op, i: usize) -> Check {
        if self.consumer(op, i)?.is_none() {
            return Ok(());
        }
        let (w, v) = self.before();
        let Some((c, since)) = self.consumers[i].as_mut() else {
            return Ok(());
        };
        let position = c.position();
        let before = c.committed();
        let r = if i == 0 {
            let outputs = since
                .iter()
                .map(|&s| {
                    BatchAppendItem::new(
                        consumers::output_coord(s),
                        consumers::OUT_KIND,
                        &json!({ "src": s }),
                        AppendOptions::default(),
                        CausationRef::None,
                    )
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| violation("INV-EXACTLY-ONCE", format!("output item: {e}")))?;
            c.commit_with(outputs).map(|_| ())
        } else {
            c.commit()
        };
        match r {
            Ok(()) => {
                since.clear();
                let wrote = i == 0 || position != before;
                if wrote {
                    self.acks.oks += 1;
                    let g = &mut self.acks.consumers[i];
                    g.committed = Some(position);
                    g.maybe.clear();
                    g.commits += 1;
                    let written = self.written();
                    // A checkpoint acknowledged while the store itself does not count it
                    // durable breaks the checkpoint's own promise; one the store counts
                    // durable but the platter lacks is the store's durability gone wrong.
                    let inv = if self.store.frontier().durable >= written {
                        "INV-DURABLE"
                    } else {
                        "INV-CHECKPOINT-DURABLE"
                    };
                    if written > 0 {
                        self.acks.claim(
                            inv,
                            written - 1,
                            format!("checkpoint of {} after {position:?}", consumers::IDS[i]),
                        );
                    }
                }
                if i == 0 {
                    consumers::check_outputs(self.store, &self.acks.consumers[0], position)?;
                }
                Ok(())
            }
            Err(e) => {
                if !e.is_definite() {
                    self.acks.consumers[i].maybe.push(position);
                    self.consumers_poisoned[i] = true;
                    self.consumers[i] = None;
                }
                self.error(op, &e, w, v)
            }
        }
    }
}

/// Runs `ops` on a fresh store over `disk`; after every operation checks the live store and
/// calls `at_point`. Returns the acknowledgements (also when the store could not be opened
/// because of an injected fault: then nothing was acknowledged).
pub fn run_workload(
    disk: &SimDisk,
    mode: Mode,
    ops: &[Op],
    faults: bool,
    at_point: &mut dyn FnMut(&Acks) -> Check,
) -> Result<Acks, Violation> {
    let store = match Store::open(config(disk, mode, 0)) {
        Ok(s) => s,
        Err(e) if faults => {
            let mut acks = Acks::default();
            acks.errors.push(format!("open: {e}"));
            return Ok(acks);
        }
        Err(e) => {
            return Err(violation(
                "INV-PREFIX",
                format!("open of a fresh disk: {e}"),
            ))
        }
    };
    let mut runner = Runner::new(&store, Acks::default(), faults);
    for &op in ops {
        runner.run(op)?;
        at_point(&runner.acks)?;
    }
    // Stop the writer before the fence handle goes (the fence's drop-cancel is not part of the
    // workload: it would write after the images were taken).
    let acks = runner.abandon();
    drop(store);
    Ok(acks)
}

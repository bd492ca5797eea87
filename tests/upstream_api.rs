//! Upstream batpak 0.7.0's core (Tier 1) signatures, pinned at compile time.
//!
//! Each test calls the API the way a program written against upstream does: the argument
//! types, return types and prelude names are upstream's. If one of these stops compiling,
//! an upstream program stops compiling too. Where this crate deliberately behaves
//! differently (DIFFERENCES.md), the test checks our behaviour and names the row.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use serde::{Deserialize, Serialize};
use std::error::Error;

type TestResult = Result<(), Box<dyn Error>>;

fn open(dir: &tempfile::TempDir) -> Result<Store, StoreError> {
    Store::open(StoreConfig::new(dir.path()))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, EventPayload)]
#[batpak(category = 4, type_id = 7)]
struct Deposit {
    account: String,
    cents: u64,
}

#[test]
fn config_builders_take_upstreams_argument_types() -> TestResult {
    let dir = tempfile::tempdir()?;
    // Typed variables (not literals), so the parameter types themselves are pinned.
    let every: u32 = 25;
    let single_max: u32 = 1 << 20;
    let batch_size: u32 = 64;
    let batch_bytes: u32 = 1 << 20;
    let group: u32 = 8;
    let segment: u64 = 1 << 22;
    let capacity: usize = 128;
    let config = StoreConfig::new(dir.path())
        .with_sync_every_n_events(every)
        .with_sync_mode(SyncMode::SyncData)
        .with_single_append_max_bytes(single_max)
        .with_batch_max_size(batch_size)
        .with_batch_max_bytes(batch_bytes)
        .with_group_commit_max_batch(group)
        .with_segment_max_bytes(segment)
        .with_writer_channel_capacity(capacity)
        .with_clock(None);
    let store = Store::open(config)?;
    store.close()?;
    Ok(())
}

#[test]
fn append_then_get_reads_header_coordinate_and_sequence() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        StoreConfig::new(dir.path())
            .with_sync_every_n_events(25)
            .with_sync_mode(SyncMode::SyncData),
    )?;
    // `CoordinateError` converts into `Box<dyn Error>` with `?`, as in upstream programs.
    let coord = Coordinate::new("player:alice", "room:dungeon")?;
    let kind = EventKind::custom(0xF, 1);
    let receipt = store.append(&coord, kind, &serde_json::json!({"x": 10, "y": 20}))?;
    let fetched: StoredEvent<serde_json::Value> = store.get(receipt.event_id)?;
    let id: u128 = fetched.event.header.event_id;
    let sequence: u64 = receipt.sequence;
    assert_eq!(id, receipt.event_id);
    // The open's SYSTEM_OPEN_COMPLETED lifecycle event took sequence 0, as upstream's does.
    assert_eq!(sequence, 1);
    assert_eq!(fetched.coordinate.scope(), "room:dungeon");
    assert_eq!(fetched.event.payload["y"], 20);
    store.close()?;
    Ok(())
}

#[test]
fn outbox_stage_takes_an_owned_or_borrowed_coordinate_and_chains() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    let kind = EventKind::custom(0xF, 3);
    let coord = Coordinate::new("player:outbox", "room:batch")?;
    let mut outbox = store.outbox();
    // Upstream: `stage(Coordinate, ..) -> Result<&mut Self, _>`.
    outbox.stage(
        Coordinate::new("player:outbox", "room:batch")?,
        kind,
        &serde_json::json!({"n": 1}),
    )?;
    // A reference still works, and the returned `&mut Outbox` chains.
    outbox
        .stage(&coord, kind, &serde_json::json!({"n": 2}))?
        .stage_with_options(
            coord.clone(),
            kind,
            &serde_json::json!({"n": 3}),
            AppendOptions::default(),
        )?
        .stage_with_causation(
            coord.clone(),
            kind,
            &serde_json::json!({"n": 4}),
            CausationRef::PriorItem(0),
        )?
        .stage_with_options_and_causation(
            coord.clone(),
            kind,
            &serde_json::json!({"n": 5}),
            AppendOptions::default(),
            CausationRef::PriorItem(1),
        )?;
    let deposit = Deposit {
        account: "a".into(),
        cents: 5,
    };
    outbox
        .stage_typed(coord.clone(), &deposit)?
        .stage_typed_with_options(coord.clone(), &deposit, AppendOptions::default())?
        .stage_typed_with_causation(coord.clone(), &deposit, CausationRef::PriorItem(0))?
        .stage_typed_with_options_and_causation(
            coord.clone(),
            &deposit,
            AppendOptions::default(),
            CausationRef::None,
        )?;
    let item = BatchAppendItem::typed(
        coord.clone(),
        &deposit,
        AppendOptions::default(),
        CausationRef::None,
    )?;
    let len_after_push = outbox.push_item(item).len();
    assert_eq!(len_after_push, 10);
    assert!(!outbox.is_empty());
    let receipts: Vec<AppendReceipt> = outbox.flush()?;
    assert_eq!(receipts.len(), 10);
    assert!(outbox.is_empty());
    assert_eq!(store.stream("player:outbox").len(), 10);
    let caused = store.get(receipts[3].event_id)?;
    assert_eq!(caused.event.header.causation_id, Some(receipts[0].event_id));
    store.close()?;
    Ok(())
}

#[test]
fn submit_tickets_wait_and_try_check_return_option_of_result() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    let coord = Coordinate::new("player:submit", "room:pipeline")?;
    let kind = EventKind::custom(0xF, 2);
    let first = store.submit(&coord, kind, &serde_json::json!({"n": 1}))?;
    let second = store.submit(&coord, kind, &serde_json::json!({"n": 2}))?;
    let receipts = [first.wait()?, second.wait()?];
    assert!(receipts[0].sequence < receipts[1].sequence);

    // Upstream: `try_check(&self) -> Option<Result<AppendReceipt, StoreError>>`.
    let ticket = store.submit(&coord, kind, &serde_json::json!({"n": 3}))?;
    let mut answer: Option<Result<AppendReceipt, StoreError>> = None;
    for _ in 0..10_000 {
        answer = ticket.try_check();
        if answer.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let receipt = answer.expect("the writer answers within 10 s")?;
    assert_eq!(store.get(receipt.event_id)?.event.payload["n"], 3);

    let batch = store.submit_batch(vec![BatchAppendItem::new(
        coord.clone(),
        kind,
        &serde_json::json!({"n": 4}),
        AppendOptions::default(),
        CausationRef::None,
    )?])?;
    let batch_answer: Option<Result<Vec<AppendReceipt>, StoreError>> = batch.try_check();
    let receipts = match batch_answer {
        Some(r) => r?,
        None => batch.wait()?,
    };
    assert_eq!(receipts.len(), 1);
    store.close()?;
    Ok(())
}

/// DIFFERENCES.md row 16: `receiver()` hands out the writer's reply channel with upstream's
/// type. An answer received from it is gone from the ticket (`try_check` then finds the
/// channel empty, then closed: `WriterCrashed`, as upstream's); one `try_check` took is kept by the ticket.
#[test]
fn ticket_receivers_are_upstreams_flume_reply_channels() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    let coord = Coordinate::new("player:receiver", "room:raw")?;
    let kind = EventKind::custom(0xF, 5);
    let limit = std::time::Duration::from_secs(30);

    let ticket = store.submit(&coord, kind, &serde_json::json!({"n": 1}))?;
    let rx: &flume::Receiver<Result<AppendReceipt, StoreError>> = ticket.receiver();
    let receipt = rx.recv_timeout(limit)??;
    assert_eq!(store.get(receipt.event_id)?.event.payload["n"], 1);
    // The writer drops its end right after answering: `None` until then, `WriterCrashed` after.
    assert!(
        matches!(
            ticket.try_check(),
            None | Some(Err(StoreError::WriterCrashed))
        ),
        "the answer was taken from the channel"
    );

    let batch = store.submit_batch(vec![BatchAppendItem::new(
        coord.clone(),
        kind,
        &serde_json::json!({"n": 2}),
        AppendOptions::default(),
        CausationRef::None,
    )?])?;
    let brx: &flume::Receiver<Result<Vec<AppendReceipt>, StoreError>> = batch.receiver();
    assert_eq!(brx.recv_timeout(limit)??.len(), 1);

    // An answer `try_check` took stays with the ticket and is no longer in the channel.
    let kept = store.submit(&coord, kind, &serde_json::json!({"n": 3}))?;
    let mut first = None;
    for _ in 0..30_000 {
        first = kept.try_check();
        if first.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let first = first.expect("the writer answers")?;
    assert!(kept.receiver().try_recv().is_err());
    assert_eq!(kept.wait()?.event_id, first.event_id);
    store.close()?;
    Ok(())
}

/// DIFFERENCES.md rows 14 and 16: the raw channel of a fenced ticket has no fence-pending
/// answer (it stays empty until the fence ends) and carries upstream's cancellation answer.
#[test]
fn a_fenced_tickets_receiver_answers_at_cancel_not_before() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    let coord = Coordinate::new("player:receiver", "room:fenced")?;
    let kind = EventKind::custom(0xF, 6);
    let fence = store.begin_visibility_fence()?;
    let ticket = fence.submit(&coord, kind, &serde_json::json!({"n": 1}))?;
    store.sync()?;
    assert!(matches!(
        ticket.receiver().try_recv(),
        Err(flume::TryRecvError::Empty)
    ));
    fence.cancel()?;
    let answer = ticket
        .receiver()
        .recv_timeout(std::time::Duration::from_secs(30))?;
    assert!(
        matches!(answer, Err(StoreError::VisibilityFenceCancelled)),
        "{answer:?}"
    );
    assert_eq!(store.by_fact(kind).len(), 0);
    store.close()?;
    Ok(())
}

/// DIFFERENCES.md row 14: a fenced ticket resolves at `commit()` here (upstream: once the
/// event is durable, before commit), so upstream's `visibility_fence` example, which waits
/// on the ticket before committing, blocks with this crate. Everything else it does is the
/// same: the event is hidden until commit, then visible.
#[test]
fn fenced_ticket_resolves_at_commit_and_event_is_hidden_until_then() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    let coord = Coordinate::new("player:fence", "room:hidden")?;
    let kind = EventKind::custom(0xF, 4);
    let fence: VisibilityFence<'_> = store.begin_visibility_fence()?;
    let ticket: AppendTicket = fence.submit(&coord, kind, &serde_json::json!({"hidden": true}))?;
    store.sync()?;
    assert!(ticket.try_check().is_none(), "unresolved until commit");
    assert_eq!(store.by_fact(kind).len(), 0);
    fence.commit()?;
    let receipt = ticket.wait()?;
    assert_eq!(store.by_fact(kind).len(), 1);
    assert_eq!(store.get(receipt.event_id)?.event.payload["hidden"], true);
    store.close()?;
    Ok(())
}

struct AmountLimit(u64);

impl Gate<Deposit> for AmountLimit {
    fn name(&self) -> &'static str {
        "amount_limit"
    }

    fn evaluate(&self, ctx: &Deposit) -> Result<(), Denial> {
        if ctx.cents > self.0 {
            Err(
                Denial::new(self.name(), format!("{} is over the limit", ctx.cents))
                    .with_code("AMOUNT_EXCEEDED")
                    .with_context("limit", format!("{}", self.0)),
            )
        } else {
            Ok(())
        }
    }

    fn description(&self) -> &'static str {
        "caps one deposit"
    }
}

struct Closed;

impl Gate<Deposit> for Closed {
    fn name(&self) -> &'static str {
        "closed"
    }

    fn evaluate(&self, _ctx: &Deposit) -> Result<(), Denial> {
        Err(Denial::new(self.name(), "closed").with_code("CLOSED"))
    }
}

#[test]
fn pipeline_commit_closure_can_end_in_from_append_receipt_by_value() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    let mut gates: GateSet<Deposit> = GateSet::new();
    gates.push(AmountLimit(100));
    let pipeline = Pipeline::new(gates);
    let coord = Coordinate::new("account:a", "bank:deposits")?;
    let deposit = Deposit {
        account: "a".into(),
        cents: 40,
    };
    let receipt = pipeline.evaluate(&deposit, Proposal::new(deposit.clone()))?;
    assert_eq!(receipt.gates_passed(), &["amount_limit"]);
    let mut seen = None;
    // Upstream: `from_append_receipt(AppendReceipt) -> Result<CommitMetadata, StoreError>`,
    // the closure's tail expression.
    let result: Result<_, StoreError> = pipeline.commit(receipt, |payload| {
        let r = store.append_typed(&coord, payload)?;
        seen = Some(r);
        CommitMetadata::from_append_receipt(r)
    });
    let committed = result?;
    let appended = seen.expect("the closure ran");
    assert_eq!(committed.event_id(), appended.event_id);
    assert_eq!(committed.sequence(), appended.sequence);
    // Beyond upstream 0.7.0 (which stores zeros here): the receipt's real content hash.
    assert_eq!(committed.hash(), &appended.content_hash);
    let (payload, metadata): (Deposit, CommitMetadata) = committed.into_parts();
    assert_eq!(payload, deposit);
    assert_eq!(metadata.event_id(), appended.event_id);
    metadata.validate()?;

    // By reference works too, and `new` has upstream's fallible signature.
    let by_ref = CommitMetadata::from_append_receipt(appended)?;
    assert_eq!(by_ref, metadata);
    let built = CommitMetadata::new(appended.event_id, appended.sequence, appended.content_hash)?;
    assert_eq!(built, metadata);

    let entries: Vec<IndexEntry> = store.query(&Region::scope("bank:deposits"));
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].coord.to_string(), "account:a@bank:deposits");
    store.close()?;
    Ok(())
}

#[test]
fn denials_expose_gate_code_message_and_context_and_evaluate_all_collects_them() {
    let mut gates: GateSet<Deposit> = GateSet::new();
    gates.push(Closed);
    gates.push(AmountLimit(10));
    let big = Deposit {
        account: "a".into(),
        cents: 500,
    };
    let pipeline = Pipeline::new(gates);
    let denial = match pipeline.evaluate(&big, Proposal::new(big.clone())) {
        Ok(_) => panic!("the closed gate denies"),
        Err(d) => d,
    };
    assert_eq!(denial.gate, "closed");
    assert_eq!(denial.code, "CLOSED");
    assert_eq!(denial.message, "closed");

    let mut all: GateSet<Deposit> = GateSet::new();
    all.push(Closed);
    all.push(AmountLimit(10));
    let denials: Vec<Denial> = all.evaluate_all(&big);
    assert_eq!(denials.len(), 2);
    assert_eq!(denials[1].code, "AMOUNT_EXCEEDED");
    let context: Vec<(String, String)> = denials[1]
        .context
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(context, vec![("limit".to_string(), "10".to_string())]);
}

/// A payload MessagePack stores as one byte string of `n` bytes.
struct Blob(usize);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&vec![0xA5; self.0])
    }
}

/// Configurations upstream accepts open here too, with upstream's meaning: the 16 MiB default
/// payload limit, payload limits up to 64 MiB (the frame limit follows the payload limit),
/// `group_commit_max_batch(0)` (drain what is queued), segments above 4 GiB, `fd_budget`.
#[test]
fn upstreams_valid_configurations_open_and_work() -> TestResult {
    let dir = tempfile::tempdir()?;
    let coord = Coordinate::new("cfg:1", "limits")?;
    let kind = EventKind::custom(0xF, 9);
    {
        // Default: a 2 MiB payload is fine (upstream's default limit is 16 MiB)...
        let store = open(&dir)?;
        let r = store.append(&coord, kind, &Blob(2 << 20))?;
        assert_eq!(
            store.get_raw(r.event_id)?.event.payload.len(),
            (2 << 20) + 5
        );
        // ...and one above 16 MiB is too large, as upstream.
        assert!(matches!(
            store.append(&coord, kind, &Blob(16 << 20)),
            Err(StoreError::TooLarge {
                what: "payload",
                ..
            })
        ));
        store.close()?;
    }
    // The limit counts the encoded payload (5 bytes of MessagePack header here).
    for (limit, blob) in [(16u32 << 20, (16 << 20) - 5), (64 << 20, 17 << 20)] {
        let store = Store::open(StoreConfig::new(dir.path()).with_single_append_max_bytes(limit))?;
        store.append(&coord, kind, &Blob(blob))?;
        store.close()?;
    }
    assert!(matches!(
        Store::open(StoreConfig::new(dir.path()).with_single_append_max_bytes((64 << 20) + 1)),
        Err(StoreError::Configuration(_))
    ));
    {
        let store = Store::open(
            StoreConfig::new(dir.path())
                .with_group_commit_max_batch(0)
                .with_segment_max_bytes(8 << 30)
                .with_fd_budget(64),
        )?;
        let tickets: Vec<AppendTicket> = (0..200u32)
            .map(|i| store.submit(&coord, kind, &i))
            .collect::<Result<_, _>>()?;
        for t in tickets {
            t.wait()?;
        }
        store.close()?;
    }
    let store = open(&dir)?;
    assert_eq!(store.stream("cfg:1").len(), 1 + 2 + 200);
    Ok(())
}

#[test]
fn system_and_effect_kinds_have_upstreams_values_and_stay_reserved() {
    let expected: [(EventKind, u16); 20] = [
        (EventKind::DATA, 0x1000),
        (EventKind::SYSTEM_INIT, 0x0001),
        (EventKind::SYSTEM_SHUTDOWN, 0x0002),
        (EventKind::SYSTEM_HEARTBEAT, 0x0003),
        (EventKind::SYSTEM_CONFIG_CHANGE, 0x0004),
        (EventKind::SYSTEM_CHECKPOINT, 0x0005),
        (EventKind::SYSTEM_BATCH_BEGIN, 0x0006),
        (EventKind::SYSTEM_BATCH_COMMIT, 0x0007),
        (EventKind::SYSTEM_OPEN_COMPLETED, 0x0008),
        (EventKind::SYSTEM_CLOSE_COMPLETED, 0x0009),
        (EventKind::SYSTEM_DENIAL, 0x000F),
        (EventKind::EFFECT_ERROR, 0xD001),
        (EventKind::EFFECT_RETRY, 0xD002),
        (EventKind::EFFECT_ACK, 0xD004),
        (EventKind::EFFECT_BACKPRESSURE, 0xD005),
        (EventKind::EFFECT_CANCEL, 0xD006),
        (EventKind::EFFECT_CONFLICT, 0xD007),
        (EventKind::TOMBSTONE, 0x0FFE),
        (EventKind::custom(0xF, 1), 0xF001),
        (EventKind::from_raw(0x0008), 0x0008),
    ];
    for (k, raw) in expected {
        assert_eq!(k.as_raw(), raw, "{k:?}");
    }
    assert!(EventKind::SYSTEM_DENIAL.is_system() && !EventKind::SYSTEM_DENIAL.is_effect());
    assert!(EventKind::EFFECT_ACK.is_effect() && EventKind::EFFECT_ACK.is_reserved());
    assert!(!EventKind::DATA.is_reserved());
    // Callers cannot write the store's own kinds; DATA is an ordinary user kind.
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).unwrap();
    let c = Coordinate::new("k", "s").unwrap();
    for k in [
        EventKind::SYSTEM_OPEN_COMPLETED,
        EventKind::SYSTEM_CLOSE_COMPLETED,
        EventKind::TOMBSTONE,
        EventKind::EFFECT_ERROR,
    ] {
        assert!(matches!(
            store.append(&c, k, &1u8),
            Err(StoreError::Configuration(_))
        ));
    }
    store.append(&c, EventKind::DATA, &1u8).unwrap();
    assert_eq!(store.stream("k").len(), 1);
    store.close().unwrap();
}

#[test]
fn event_helper_methods_read_and_map_like_upstreams() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    let c = Coordinate::new("acct:h", "bank")?;
    let dep = Deposit {
        account: "h".into(),
        cents: 5,
    };
    let r1 = store.append_typed(&c, &dep)?;
    let r2 = store.append_typed(&c, &dep)?;
    let e1 = store.get(r1.event_id)?.event;
    let e2 = store.get_typed::<Deposit>(r2.event_id)?.event;
    assert_eq!(e1.event_id(), r1.event_id);
    assert_eq!(e1.event_kind(), <Deposit as EventPayload>::KIND);
    assert_eq!(e1.position().clock, 1);
    assert_eq!(e2.position().clock, 2);
    assert!(e1.is_genesis(), "first of its chain");
    assert!(!e2.is_genesis());
    let header = e2.header.clone();
    let cents = e2.clone().map_payload(|d| d.cents);
    assert_eq!(cents.payload, 5);
    assert_eq!(cents.header, header);
    assert_eq!(cents.hash_chain, e2.hash_chain);
    let bare = Event::new(header.clone(), ());
    assert!(bare.hash_chain.is_none() && bare.is_genesis());
    let chain = e2
        .hash_chain
        .ok_or("stored events carry their chain link")?;
    let linked = Event::new(header, ()).with_hash_chain(chain);
    assert_eq!(linked.hash_chain, Some(chain));
    store.close()?;
    Ok(())
}

#[test]
fn stats_global_sequence_and_diagnostics_report_the_writers_position() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    let before = store.stats().global_sequence;
    let c = Coordinate::new("acct:d", "bank")?;
    let r = store.append(&c, EventKind::DATA, &1u8)?;
    let stats = store.stats();
    assert_eq!(stats.global_sequence, before + 1);
    assert_eq!(stats.global_sequence, r.sequence + 1);
    let d = store.diagnostics();
    assert_eq!(d.global_sequence, stats.global_sequence);
    assert_eq!(d.visible_sequence, store.frontier().visible);
    assert_eq!(d.event_count, stats.event_count);
    assert_eq!(d.data_dir, dir.path());
    assert_eq!(d.recovery, *store.recovery_report());
    assert!(d.segment_max_bytes > 0 && d.fd_budget > 0);
    store.close()?;
    Ok(())
}

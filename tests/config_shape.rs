//! `StoreConfig` in upstream's shape: public fields (`data_dir`, `segment_max_bytes`,
//! `sync: SyncConfig { .. }`, `writer`, `batch`, ...) written as a struct literal with
//! `..StoreConfig::new("")`, next to the builder methods. A literal gets exactly the checks a
//! builder gets (at `open`, naming the field), keeps this crate's own settings, and every field
//! that has an effect here has it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::env::ManualClock;
use batpak::prelude::*;
use batpak::store::{BatchConfig, SigningKey, SyncConfig, WriterConfig};
use std::path::Path;
use std::sync::Arc;

fn literal(dir: &Path) -> StoreConfig {
    StoreConfig {
        data_dir: dir.to_path_buf(),
        segment_max_bytes: 4096,
        sync: SyncConfig {
            every_n_events: 1,
            ..SyncConfig::default()
        },
        ..StoreConfig::new("")
    }
}

fn coord() -> Coordinate {
    Coordinate::new("cfg:1", "shape").unwrap()
}

#[test]
fn a_literal_with_an_invalid_value_is_refused_at_open_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("never-created");
    let base = || literal(&dir);
    let cases: Vec<(StoreConfig, &str)> = vec![
        (
            StoreConfig {
                data_dir: "".into(),
                ..base()
            },
            "data_dir",
        ),
        (
            StoreConfig {
                sync: SyncConfig {
                    every_n_events: 0,
                    ..SyncConfig::default()
                },
                ..base()
            },
            "sync.every_n_events",
        ),
        (
            StoreConfig {
                writer: WriterConfig {
                    channel_capacity: 0,
                    ..WriterConfig::default()
                },
                ..base()
            },
            "writer.channel_capacity",
        ),
        (
            StoreConfig {
                writer: WriterConfig {
                    pressure_retry_threshold_pct: 0,
                    ..WriterConfig::default()
                },
                ..base()
            },
            "writer.pressure_retry_threshold_pct",
        ),
        (
            StoreConfig {
                writer: WriterConfig {
                    pressure_retry_threshold_pct: 101,
                    ..WriterConfig::default()
                },
                ..base()
            },
            "writer.pressure_retry_threshold_pct",
        ),
        (
            StoreConfig {
                batch: BatchConfig {
                    max_size: 0,
                    ..BatchConfig::default()
                },
                ..base()
            },
            "batch.max_size",
        ),
        (
            StoreConfig {
                single_append_max_bytes: 0,
                ..base()
            },
            "single_append_max_bytes",
        ),
        (
            StoreConfig {
                single_append_max_bytes: (64 << 20) + 1,
                ..base()
            },
            "single_append_max_bytes",
        ),
        (
            StoreConfig {
                fd_budget: 0,
                ..base()
            },
            "fd_budget",
        ),
        (
            StoreConfig {
                broadcast_capacity: 0,
                ..base()
            },
            "broadcast_capacity",
        ),
        (
            StoreConfig {
                segment_max_bytes: 16,
                ..base()
            },
            "segment_max_bytes",
        ),
        // This crate's own settings, reached through the builder, inside a literal.
        (
            StoreConfig {
                data_dir: dir.clone(),
                ..StoreConfig::new("").with_flush_interval(std::time::Duration::ZERO)
            },
            "flush_interval",
        ),
        (
            StoreConfig {
                data_dir: dir.clone(),
                ..StoreConfig::new("").with_frame_max_bytes(16)
            },
            "frame_max_bytes",
        ),
    ];
    for (cfg, field) in cases {
        let shown = format!("{cfg:?}");
        match Store::open(cfg.clone()) {
            Err(StoreError::Configuration(msg)) => {
                assert!(msg.contains(field), "{field}: message {msg:?} for {shown}")
            }
            Err(e) => panic!("{field}: wrong error {e:?}"),
            Ok(_) => panic!("{field}: opened {shown}"),
        }
        // The read-only open checks the same.
        assert!(matches!(
            Store::open_read_only(cfg),
            Err(StoreError::Configuration(_))
        ));
    }
    assert!(!dir.exists(), "a refused configuration touched the disk");
}

#[test]
fn builders_and_literals_make_the_same_configuration() {
    let dir = Path::new("/tmp/x");
    let built = StoreConfig::new(dir)
        .with_segment_max_bytes(4096)
        .with_sync_every_n_events(7)
        .with_sync_mode(SyncMode::SyncAll)
        .with_writer_channel_capacity(17)
        .with_writer_pressure_retry_threshold_pct(61)
        .with_writer_stack_size(Some(1 << 20))
        .with_restart_policy(RestartPolicy::Bounded {
            max_restarts: 2,
            within_ms: 3000,
        })
        .with_shutdown_drain_limit(29)
        .with_batch_max_size(333)
        .with_batch_max_bytes(44_444)
        .with_group_commit_max_batch(5)
        .with_fd_budget(3)
        .with_broadcast_capacity(9)
        .with_single_append_max_bytes(1 << 20)
        .with_enable_checkpoint(false)
        .with_event_payload_validation(EventPayloadValidation::FailFast);
    let lit = StoreConfig {
        data_dir: dir.to_path_buf(),
        segment_max_bytes: 4096,
        fd_budget: 3,
        broadcast_capacity: 9,
        single_append_max_bytes: 1 << 20,
        batch: BatchConfig {
            max_size: 333,
            max_bytes: 44_444,
            group_commit_max_batch: 5,
        },
        writer: WriterConfig {
            channel_capacity: 17,
            pressure_retry_threshold_pct: 61,
            stack_size: Some(1 << 20),
            restart_policy: RestartPolicy::Bounded {
                max_restarts: 2,
                within_ms: 3000,
            },
            shutdown_drain_limit: 29,
        },
        sync: SyncConfig {
            mode: SyncMode::SyncAll,
            every_n_events: 7,
        },
        index: IndexConfig {
            enable_checkpoint: false,
            ..IndexConfig::default()
        },
        event_payload_validation: EventPayloadValidation::FailFast,
        ..StoreConfig::new("")
    };
    assert_eq!(format!("{built:?}"), format!("{lit:?}"));
    assert_eq!(built.batch, lit.batch);
    assert_eq!(built.writer, lit.writer);
    assert_eq!(built.sync, lit.sync);
}

#[test]
fn a_literal_keeps_this_crates_settings_from_its_base() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(5_000_000_000));
    let cfg = StoreConfig {
        data_dir: tmp.path().to_path_buf(),
        segment_max_bytes: 4096,
        ..StoreConfig::new("")
            .with_lifecycle_events(false)
            .with_clock_source(clock)
    };
    let store = Store::open(cfg).unwrap();
    let r = store
        .append(&coord(), EventKind::custom(0xF, 1), &1u8)
        .unwrap();
    // No lifecycle event took sequence 0, and the manual clock stamped the event.
    assert_eq!(r.sequence, 0);
    let ev = store.get(r.event_id).unwrap();
    assert_eq!(ev.event.header.timestamp_us, 5_000_000_000);
    store.close().unwrap();
}

#[test]
fn the_clock_field_is_the_stores_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        data_dir: tmp.path().to_path_buf(),
        clock: Some(Arc::new(|| 7_000_000_000)),
        ..StoreConfig::new("").with_lifecycle_events(false)
    };
    let store = Store::open(cfg).unwrap();
    let r = store
        .append(&coord(), EventKind::custom(0xF, 1), &1u8)
        .unwrap();
    assert_eq!(
        store.get(r.event_id).unwrap().event.header.timestamp_us,
        7_000_000_000
    );
    store.close().unwrap();
}

#[test]
fn writer_fields_take_effect_pressure_percentage_and_stack_size() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        data_dir: tmp.path().to_path_buf(),
        writer: WriterConfig {
            channel_capacity: 10,
            pressure_retry_threshold_pct: 50,
            // Below the floor: raised to WRITER_STACK_MIN_BYTES, and the writer works.
            stack_size: Some(1),
            ..WriterConfig::default()
        },
        ..StoreConfig::new("")
    };
    let store = Store::open(cfg).unwrap();
    let p = store.writer_pressure();
    assert_eq!((p.capacity, p.threshold), (10, 5));
    for i in 0..100u32 {
        store
            .append(&coord(), EventKind::custom(0xF, 1), &vec![i; 64])
            .unwrap();
    }
    store.close().unwrap();
    // The exact threshold wins over the percentage; rounding is up, and never below 1.
    let pressure = |cfg: StoreConfig| {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig {
            data_dir: tmp.path().to_path_buf(),
            ..cfg
        })
        .unwrap();
        let t = store.writer_pressure().threshold;
        store.close().unwrap();
        t
    };
    let base = StoreConfig::new("").with_writer_channel_capacity(10);
    assert_eq!(pressure(base.clone().with_writer_pressure_threshold(3)), 3);
    assert_eq!(
        pressure(base.clone().with_writer_pressure_retry_threshold_pct(1)),
        1
    );
    assert_eq!(
        pressure(base.clone().with_writer_pressure_retry_threshold_pct(99)),
        10
    );
}

#[test]
fn sync_every_n_events_above_one_is_deferred_durability() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        data_dir: tmp.path().to_path_buf(),
        sync: SyncConfig {
            every_n_events: 1000,
            ..SyncConfig::default()
        },
        ..StoreConfig::new("").with_lifecycle_events(false)
    };
    let store = Store::open(cfg).unwrap();
    let r = store
        .append(&coord(), EventKind::custom(0xF, 1), &1u8)
        .unwrap();
    assert!(!r.durable, "acknowledged before the deferred sync");
    assert_eq!(store.diagnostics().sync_every_n_events, 1000);
    store.close().unwrap();
}

#[test]
fn signing_keys_rotate_the_last_signs_every_one_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (
        SigningKey::from_bytes([1; 32]),
        SigningKey::from_bytes([2; 32]),
    );
    let open = |keys: Vec<SigningKey>| {
        Store::open(StoreConfig {
            data_dir: tmp.path().to_path_buf(),
            signing_keys: keys,
            ..StoreConfig::new("").with_lifecycle_events(false)
        })
        .unwrap()
    };
    let store = open(vec![a.clone()]);
    let old = store
        .append(&coord(), EventKind::custom(0xF, 1), &1u8)
        .unwrap();
    assert_eq!(old.key_id, a.key_id());
    store.close().unwrap();

    let store = open(vec![a.clone(), b.clone()]);
    let new = store
        .append(&coord(), EventKind::custom(0xF, 1), &2u8)
        .unwrap();
    assert_eq!(new.key_id, b.key_id(), "the last key signs");
    assert!(store.verify_append_receipt(&new));
    assert!(
        store.verify_append_receipt(&old),
        "an earlier key still verifies"
    );
    store.close().unwrap();

    // The builder appends to the same list.
    let store = Store::open(
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_signing_key(b),
    )
    .unwrap();
    assert!(store.verify_append_receipt(&new));
    assert!(
        !store.verify_append_receipt(&old),
        "a removed key no longer verifies"
    );
    store.close().unwrap();
}

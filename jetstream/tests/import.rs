//! `Importer`: a replicated stream imported into another store, a read replica, against a
//! real `nats-server` (loopback): the replica holds the source's committed events under the
//! same ids, in order, with their coordinates, kinds, correlations, causations and payloads;
//! an interrupted import resumes; a replay of the whole stream imports nothing twice.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/nats.rs"]
mod nats;
#[path = "support/work.rs"]
mod work;

use batpak::prelude::*;
use batpak_jetstream::{Importer, ImporterConfig, Replicator, ReplicatorConfig};
use std::time::Duration;
use work::{write_round, PREFIX, STREAM};

fn same_events(source: &Store<Open>, replica: &Store<Open>) -> usize {
    // System events (the store's own open/close records) are the replica's own: the public
    // API appends no reserved kind, so the importer counts and skips them.
    let user = |s: &Store<Open>| {
        let mut v = s.query(&Region::all());
        v.retain(|e| !e.kind.is_reserved());
        v
    };
    let (mut a, mut b) = (user(source), user(replica));
    a.sort_by_key(|e| e.global_sequence);
    b.sort_by_key(|e| e.global_sequence);
    assert_eq!(a.len(), b.len(), "event counts differ");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.event_id, y.event_id);
        assert_eq!(x.coord, y.coord);
        assert_eq!(x.kind, y.kind);
        assert_eq!(x.correlation_id, y.correlation_id);
        assert_eq!(x.causation_id, y.causation_id);
        // Entity clocks are the replica's own: the source's count cancelled writes too.
        assert_eq!(
            source.get(x.event_id).unwrap().event.payload,
            replica.get(y.event_id).unwrap().event.payload
        );
    }
    a.len()
}

#[test]
fn an_imported_stream_is_a_faithful_replica_and_a_replay_imports_nothing_twice() {
    let Some(bin) = nats::require_nats("import") else {
        return;
    };
    let nats = nats::Nats::single(&bin);
    let urls = nats.urls();
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = Store::open(StoreConfig::new(src_dir.path())).unwrap();
    for n in 0..30 {
        write_round(&source, n);
    }
    let mut rep =
        Replicator::start(&source, ReplicatorConfig::new(urls.clone(), STREAM, PREFIX)).unwrap();
    rep.catch_up(Duration::from_secs(60)).unwrap();
    drop(rep);

    // Interrupted: two steps of 7, then the importer goes away.
    let cfg = ImporterConfig::new(urls.clone(), STREAM).with_batch(7);
    let mut imp = Importer::open(StoreConfig::new(dst_dir.path()), cfg.clone()).unwrap();
    let (mut first, mut first_reserved, mut held) = (0, 0, 0);
    for _ in 0..2 {
        let s = imp.step(Duration::from_secs(2)).unwrap();
        first += s.imported;
        first_reserved += s.reserved;
        held = s.held;
    }
    // A batch whose last message is not fetched yet is held, not applied: it comes again
    // to the next importer (its messages are not acked).
    assert_eq!(first + first_reserved + held, 14);
    imp.into_store().close().unwrap();

    // Resumed where the durable consumer stands: the rest, nothing twice.
    let mut imp = Importer::open(StoreConfig::new(dst_dir.path()), cfg.clone()).unwrap();
    let rest = imp.catch_up(Duration::from_secs(60)).unwrap();
    assert_eq!(rest.skipped, 0, "{rest:?}");
    let n = same_events(&source, imp.store());
    assert_eq!(first + rest.imported, n as u64);

    // The whole stream again through a second durable consumer: every message is one the
    // replica has (its message id), so nothing is appended.
    imp.into_store().close().unwrap();
    let replay = cfg.with_durable("replay");
    let mut imp = Importer::open(StoreConfig::new(dst_dir.path()), replay).unwrap();
    let again = imp.catch_up(Duration::from_secs(60)).unwrap();
    assert_eq!(
        (again.imported, again.skipped + again.reserved),
        (0, n as u64 + first_reserved + rest.reserved),
        "{again:?}"
    );
    assert_eq!(same_events(&source, imp.store()), n);

    // More events later: replicated and imported incrementally.
    for n in 30..33 {
        write_round(&source, n);
    }
    let mut rep =
        Replicator::start(&source, ReplicatorConfig::new(urls.clone(), STREAM, PREFIX)).unwrap();
    rep.catch_up(Duration::from_secs(60)).unwrap();
    let more = imp.catch_up(Duration::from_secs(60)).unwrap();
    assert_eq!(more.imported, 21);
    let total = same_events(&source, imp.store());
    println!(
        "import: {total} events replicated and imported, {} skipped on replay",
        again.skipped
    );
}

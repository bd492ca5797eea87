//! Replicates a batpak store's committed log into NATS JetStream, exactly once, and imports a
//! JetStream stream back into a store (a read replica on another machine).
//!
//! - [`Replicator`] follows one region of a store through a durable consumer (the store's
//!   checkpoints) and publishes every committed event to a JetStream subject,
//!   `<prefix>.<scope>.<entity>` by default ([`ReplicatorConfig::with_subject`] changes it),
//!   with the event id as `Nats-Msg-Id` and the sequence, kind, correlation, causation,
//!   flags and batch membership as headers ([`wire`] lists them). Each publish is
//!   conditional on the stream's last sequence (`Nats-Expected-Last-Sequence`), the
//!   replicator resumes from the stream's own tail, and it commits its checkpoint only after JetStream acknowledged: the stream is
//!   always a gap-free, duplicate-free prefix of the region's committed events, in order.
//! - [`Importer`] reads such a stream with a durable JetStream consumer and appends each event
//!   to a store under the same event id (and with the event id as idempotency key), its
//!   payload byte for byte, and each source batch (marked by the replicator) as one atomic
//!   batch, acking a message only once its event is durable: idempotent on the message id,
//!   resumable, never half a batch in the replica.
//! - [`read_replicated`] reads a whole stream back (inspection, tests, benchmarks).
//!
//! The core crate stays synchronous and free of networking: this crate runs the official
//! `async-nats` client on a private tokio runtime (one worker thread) and offers a blocking
//! API. `jetstream/DESIGN.md` gives the design: what is replicated, ordering, the
//! exactly-once argument and what happens on failover.
//!
//! ```no_run
//! use batpak::prelude::*;
//! use batpak_jetstream::{Replicator, ReplicatorConfig};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::open(StoreConfig::new("./orders-store"))?;
//! let cfg = ReplicatorConfig::new(["nats://127.0.0.1:4222"], "ORDERS", "orders");
//! let mut replicator = Replicator::start(&store, cfg)?;
//! store.append(&Coordinate::new("order-1", "shop")?, EventKind::custom(0x1, 1), &"placed")?;
//! let totals = replicator.catch_up(Duration::from_secs(30))?;
//! println!("published {} events", totals.published);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod error;
mod importer;
mod reader;
mod replicator;
mod runtime;
mod verbatim;
pub mod wire;

pub use error::ReplicationError;
pub use importer::{ImportStep, Importer, ImporterConfig};
pub use reader::{read_replicated, ReplicatedMessage};
pub use replicator::{Replicator, ReplicatorConfig, Step, SubjectFn};

#[cfg(batpak_mutant)]
pub use importer::ImporterMutant;
#[cfg(batpak_mutant)]
pub use replicator::ReplicatorMutant;

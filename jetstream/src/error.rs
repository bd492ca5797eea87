//! The crate's error.

use batpak::prelude::StoreError;
use std::fmt;
use std::time::Duration;

/// What went wrong while replicating or importing.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReplicationError {
    /// The store refused or failed (not transient).
    Store(StoreError),
    /// NATS or JetStream failed: a connection, a publish, an acknowledgement, a request.
    /// Transient: the next step reconciles with the stream and carries on.
    Nats {
        /// What was being done.
        what: &'static str,
        /// The client's or the server's word.
        detail: String,
    },
    /// A message of the stream is not one this crate wrote (a missing or malformed header).
    Malformed {
        /// The stream sequence of the message.
        stream_sequence: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// The replica store gave an imported event another id than the source's: something
    /// else writes to the replica.
    IdMismatch {
        /// The source event id.
        expected: u128,
        /// The id the replica gave it.
        got: u128,
    },
    /// A bounded loop ran out of time.
    Timeout {
        /// What did not finish.
        what: &'static str,
        /// After how long.
        after: Duration,
    },
    /// The private runtime could not be started.
    Runtime(std::io::Error),
    /// The configuration is unusable.
    Config(String),
}

impl ReplicationError {
    /// Whether retrying can help (NATS unavailable, an acknowledgement lost, a time-out):
    /// the `run`/`catch_up` loops retry these and stop on the others.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Nats { .. } | Self::Timeout { .. })
    }

    pub(crate) fn nats(what: &'static str, e: impl fmt::Display) -> Self {
        Self::Nats {
            what,
            detail: e.to_string(),
        }
    }
}

impl fmt::Display for ReplicationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => write!(f, "store: {e}"),
            Self::Nats { what, detail } => write!(f, "NATS, {what}: {detail}"),
            Self::Malformed {
                stream_sequence,
                detail,
            } => write!(
                f,
                "stream message {stream_sequence} is not a batpak event: {detail}"
            ),
            Self::IdMismatch { expected, got } => write!(
                f,
                "the replica store gave event {expected:032x} the id {got:032x}: another writer uses the replica"
            ),
            Self::Timeout { what, after } => write!(f, "{what}: not done after {after:?}"),
            Self::Runtime(e) => write!(f, "the private tokio runtime did not start: {e}"),
            Self::Config(e) => write!(f, "configuration: {e}"),
        }
    }
}

impl std::error::Error for ReplicationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Store(e) => Some(e),
            Self::Runtime(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for ReplicationError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

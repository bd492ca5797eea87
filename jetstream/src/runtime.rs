//! The private runtime: one tokio worker thread that drives the NATS connection, entered with
//! `block_on` from the caller's thread (the synchronous API).

use crate::ReplicationError;
use async_nats::jetstream;
use async_nats::ServerAddr;
use std::time::Duration;

/// A runtime and a JetStream context on it.
pub(crate) struct Link {
    pub rt: tokio::runtime::Runtime,
    pub js: jetstream::Context,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

/// Starts the runtime and connects to `servers` (the client reconnects by itself, forever,
/// to any of them or to the cluster members it learns of).
pub(crate) fn connect(
    servers: &[String],
    name: &str,
    ack_timeout: Duration,
) -> Result<Link, ReplicationError> {
    if servers.is_empty() {
        return Err(ReplicationError::Config("no NATS server given".into()));
    }
    let addrs = servers
        .iter()
        .map(|s| {
            s.parse::<ServerAddr>()
                .map_err(|e| ReplicationError::Config(format!("NATS server {s:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("batpak-jetstream")
        .enable_all()
        .build()
        .map_err(ReplicationError::Runtime)?;
    let client = rt.block_on(async {
        async_nats::ConnectOptions::new()
            .name(name)
            .retry_on_initial_connect()
            .connection_timeout(ack_timeout)
            .connect(addrs)
            .await
            .map_err(|e| ReplicationError::nats("connect", e))
    })?;
    // The context spawns its acknowledgement task: it must be built inside the runtime.
    let _inside = rt.enter();
    let js = jetstream::ContextBuilder::new()
        .timeout(ack_timeout)
        .ack_timeout(ack_timeout)
        .build(client);
    drop(_inside);
    Ok(Link { rt, js })
}

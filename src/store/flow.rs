//! `flow` telemetry: each public store call that upstream names ends with one `tracing` debug
//! event on the caller's thread, with upstream's field `flow` (`"append"`,
//! `"append_with_options"`, `"append_reaction"`, `"project"`, `"sync"`, `"snapshot"`,
//! `"compact"`, `"close"`) and the outcome, so a subscriber can follow a call from the API to
//! the writer's own events.

use crate::error::StoreError;

/// Reports `result` of the call `flow` and passes it through.
pub(crate) fn done<T>(flow: &'static str, result: Result<T, StoreError>) -> Result<T, StoreError> {
    match &result {
        Ok(_) => tracing::debug!(flow, "store call completed"),
        Err(e) => tracing::debug!(flow, error = %e, "store call failed"),
    }
    result
}

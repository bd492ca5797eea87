//! [`ProjectionWatcher`]: a projection re-folded whenever its entity changes, built on the
//! gap-free subscription ([`Store::subscribe_from`]), so it never misses a change and never
//! reports the store closed while the store lives (upstream's D1).

use super::Freshness;
use crate::region::Region;
use crate::sourcing::EventSourced;
use crate::store::delivery::Subscription;
use crate::store::{Open, Store, StoreError};
use crate::sync::atomic::Ordering;
use crate::sync::StdArc as Arc;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;

/// Why [`ProjectionWatcher::recv`] stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum WatcherError {
    /// The store closed: no further change can come.
    StoreClosed,
    /// Re-projecting failed (a payload that does not decode, an I/O error); the watcher
    /// stays usable.
    Store(StoreError),
}

impl std::fmt::Display for WatcherError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::StoreClosed => write!(f, "projection watcher stopped: the store closed"),
            Self::Store(e) => write!(f, "projection watcher failed: {e}"),
        }
    }
}

impl std::error::Error for WatcherError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::StoreClosed => None,
            Self::Store(e) => Some(e),
        }
    }
}

impl From<StoreError> for WatcherError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// A projection of one entity that [`recv`](Self::recv) returns again each time the entity
/// changes ([`Store::watch_projection`]).
pub struct ProjectionWatcher<T> {
    sub: Subscription,
    store: Arc<Store<Open>>,
    entity: String,
    freshness: Freshness,
    last_generation: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ProjectionWatcher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionWatcher")
            .field("entity", &self.entity)
            .field("last_generation", &self.last_generation)
            .finish()
    }
}

impl<T> ProjectionWatcher<T>
where
    T: EventSourced + Serialize + DeserializeOwned + 'static,
{
    /// Waits until the entity's generation passes the last one returned (or the one at
    /// creation), then returns the new generation and the state folded at it.
    ///
    /// # Errors
    /// [`WatcherError::StoreClosed`] once the store is closed; [`WatcherError::Store`] when
    /// the fold fails (the watcher stays usable).
    pub fn recv(&mut self) -> Result<(u64, Option<T>), WatcherError> {
        loop {
            // Check first: a change that landed before the subscription started is seen
            // here, later ones wake the subscription below.
            if let Some((generation, state)) = self.store.project_if_changed::<T>(
                &self.entity,
                self.last_generation,
                &self.freshness,
            )? {
                if generation > self.last_generation {
                    self.last_generation = generation;
                    return Ok((generation, state));
                }
            }
            if self.sub.recv().is_none() {
                return Err(WatcherError::StoreClosed);
            }
        }
    }

    /// The generation of the last state returned (at creation: the entity's generation
    /// then).
    pub fn last_generation(&self) -> u64 {
        self.last_generation
    }
}

impl Store<Open> {
    /// Watches `entity`'s projection `T`: each [`ProjectionWatcher::recv`] returns the state
    /// after the next change. Upstream's signature; built on [`Store::subscribe_from`], so
    /// a slow watcher is never disconnected.
    pub fn watch_projection<T>(
        self: &Arc<Self>,
        entity: &str,
        freshness: Freshness,
    ) -> ProjectionWatcher<T>
    where
        T: EventSourced + Serialize + DeserializeOwned + Send + 'static,
    {
        let last_generation = self.entity_generation(entity).unwrap_or(0);
        let visible = self.shared.frontier.visible.load(Ordering::SeqCst);
        let sub = self.subscribe_from(&Region::entity(entity), visible.checked_sub(1));
        ProjectionWatcher {
            sub,
            store: Arc::clone(self),
            entity: entity.to_string(),
            freshness,
            last_generation,
            _t: PhantomData,
        }
    }
}

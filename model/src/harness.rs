//! What every scenario shares: the deterministic store configuration, helpers to read what
//! is visible, and a clock that can hold the writer still.

use crate::Mutant;
use batpak::__testing::env::{Clock, CounterIds, ManualClock, SimDisk};
use batpak::__testing::sync::{Arc, Condvar, Mutex, StdArc};
use batpak::coordinate::{Coordinate, Region};
use batpak::event::EventKind;
use batpak::store::{Store, StoreConfig};

/// The data directory on the simulated disk.
pub const DIR: &str = "/db";
/// The one scope every scenario writes to.
pub const SCOPE: &str = "m";
/// The one event kind every scenario writes.
pub const KIND: EventKind = EventKind::custom(0xF, 1);
/// Start of the manual clock (µs).
pub const CLOCK_START_US: i64 = 1_700_000_000_000_000;

/// A coordinate in [`SCOPE`].
pub fn coord(entity: &str) -> Coordinate {
    Coordinate::new(entity, SCOPE).expect("model coordinates are valid")
}

/// The deterministic configuration: `disk`, a [`ManualClock`], [`CounterIds`], the default
/// durable mode, no recovery checkpoint, and `mutant` (`Mutant::None` for the real store).
pub fn config(disk: &SimDisk, mutant: Mutant) -> StoreConfig {
    config_with_clock(disk, mutant, StdArc::new(ManualClock::new(CLOCK_START_US)))
}

/// [`config`] with another clock (e.g. a [`StallClock`]).
pub fn config_with_clock(disk: &SimDisk, mutant: Mutant, clock: StdArc<dyn Clock>) -> StoreConfig {
    let cfg = StoreConfig::new(DIR)
        .with_lifecycle_events(false)
        // The loom/shuttle/stress scenarios count their I/O operations as crash points; the
        // recovery checkpoint a close saves (src/checkpoint.rs) is covered by its own crash
        // images, the simulator and the crash-state enumeration, so it stays out of these.
        .with_enable_checkpoint(false)
        .with_disk(StdArc::new(disk.clone()))
        .with_clock_source(clock)
        .with_id_source(StdArc::new(CounterIds::new(1)));
    crate::seed(cfg, mutant)
}

/// Opens the store or panics with the error.
pub fn open(cfg: StoreConfig) -> Store {
    match Store::open(cfg) {
        Ok(s) => s,
        Err(e) => panic!("Store::open failed: {e}"),
    }
}

/// Entities of every visible event, in publish order (one `query`, one read lock).
pub fn visible_entities(store: &Store) -> Vec<String> {
    store
        .query(&Region::all())
        .into_iter()
        .map(|e| e.coord.entity().to_owned())
        .collect()
}

/// How many visible events belong to `entity`.
pub fn count(entities: &[String], entity: &str) -> usize {
    entities.iter().filter(|e| e.as_str() == entity).count()
}

/// Closes the last handle of a shared store (panics if another handle is still alive).
pub fn close_shared(store: Arc<Store>) {
    match Arc::try_unwrap(store) {
        Ok(store) => {
            if let Err(e) = store.close() {
                panic!("close failed: {e}");
            }
        }
        Err(_) => panic!("a store handle is still alive at close"),
    }
}

#[derive(Debug, Default)]
struct StallState {
    now_us: i64,
    armed: bool,
    in_clock: bool,
}

/// A manual clock that can hold the writer still: once [`StallClock::arm`]ed, the next reading
/// (the writer reads the clock for every event it writes) blocks until
/// [`StallClock::release`]. [`StallClock::wait_until_stalled`] waits for the writer to be
/// held. Built from `batpak::__testing::sync`, so the models see every wait.
#[derive(Debug)]
pub struct StallClock {
    state: Mutex<StallState>,
    changed: Condvar,
}

impl StallClock {
    /// A clock at [`CLOCK_START_US`], not armed.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(StallState {
                now_us: CLOCK_START_US,
                ..StallState::default()
            }),
            changed: Condvar::new(),
        }
    }

    /// The next reading blocks until [`StallClock::release`].
    pub fn arm(&self) {
        self.state.lock().armed = true;
    }

    /// Blocks until a reader is held by the armed clock.
    pub fn wait_until_stalled(&self) {
        let mut st = self.state.lock();
        while !st.in_clock {
            st = self.changed.wait(st);
        }
    }

    /// Lets the held reader (and every later one) go.
    pub fn release(&self) {
        let mut st = self.state.lock();
        st.armed = false;
        self.changed.notify_all();
    }
}

impl Default for StallClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for StallClock {
    fn now_us(&self) -> i64 {
        let mut st = self.state.lock();
        if st.armed {
            st.in_clock = true;
            self.changed.notify_all();
            while st.armed {
                st = self.changed.wait(st);
            }
        }
        st.now_us += 1;
        st.now_us
    }
}

//! The concurrency shim: the only door through which the crate reaches threads, locks,
//! atomics and channels.
//!
//! Three arms, chosen at compile time, all exporting the same names and signatures:
//!
//! | arm | selected by | primitives | channel |
//! | --- | --- | --- | --- |
//! | production | default | `std::sync`, `std::thread` | `flume`, wrapped |
//! | loom | `--cfg loom` | `loom 0.7` | [`mc_channel`] (shim Mutex + Condvar) |
//! | shuttle | `--cfg shuttle` | `shuttle 0.8` | [`mc_channel`] (shim Mutex + Condvar) |
//!
//! Setting both model cfgs is a compile error. In production every item is a plain re-export or
//! an `#[inline]` wrapper whose only work is discarding lock poisoning, so the shim costs
//! nothing. No other file of the crate may name the underlying crates; `tests/no_sync_leaks.rs`
//! enforces that, and [`UNDER_MODEL`] lets other code branch on the arm without a `cfg`.
//!
//! Poisoning: a lock whose holder panicked is recovered (the guard is returned anyway), never
//! turned into a panic. The store's invariants are re-checked by its own assertions, and a
//! panicking thread already reports itself through its `JoinHandle`.
//!
//! Time under the models: neither loom nor shuttle models time. Their `wait_timeout` never times
//! out (it waits like `wait`), `thread::sleep` is a yield, and so
//! [`channel::Receiver::recv_timeout`] waits like `recv` there (the checker reports a deadlock
//! if nothing ever arrives). Model tests must therefore not rely on a timeout firing.

#[cfg(all(loom, shuttle))]
compile_error!("batpak: `--cfg loom` and `--cfg shuttle` are mutually exclusive; set at most one");

mod channel_error;
#[cfg(not(any(loom, shuttle)))]
mod flume_channel;
mod lock;
#[doc(hidden)]
pub mod mc_channel;
#[cfg(all(test, any(loom, shuttle)))]
mod model_tests;

pub use lock::{Condvar, Mutex, RwLock};

/// The arm's backend crate, named once so the rest of the shim is arm-agnostic.
#[cfg(not(any(loom, shuttle)))]
use std as backend;

#[cfg(loom)]
use loom as backend;

// `not(loom)`: with both cfgs set, only the `compile_error!` above fires.
#[cfg(all(shuttle, not(loom)))]
use shuttle as backend;

/// Keeps the items it wraps in production builds only (not under `--cfg loom`/`shuttle`), so
/// code outside the shim never names the model cfgs: for upstream's raw `flume` accessors.
macro_rules! production_only {
    ($($item:item)*) => {
        $(
            #[cfg(not(any(loom, shuttle)))]
            $item
        )*
    };
}
pub(crate) use production_only;

/// `true` when compiled under a model checker (`--cfg loom` or `--cfg shuttle`).
///
/// Lets other modules shrink workloads or skip wall-clock behaviour without naming a `cfg`.
pub const UNDER_MODEL: bool = cfg!(any(loom, shuttle));

/// Shared ownership that the model checkers track (loom's `Arc` under loom; shuttle uses
/// `std::sync::Arc` itself). Use it for state that is shared *and mutated* across threads.
pub use backend::sync::Arc;

/// Always `std::sync::Arc`, in every arm. For immutable handles the models need not track,
/// notably trait objects such as `StdArc<dyn Disk>` (loom's `Arc` cannot unsize-coerce).
pub use std::sync::Arc as StdArc;

/// A zero-sized marker field that makes the type holding it `!Send` while keeping it `Sync`
/// (the auto traits of std's `MutexGuard`): a value that must stay on the thread that created
/// it but may be shared by reference, such as an open visibility fence.
pub type NotSend = std::marker::PhantomData<std::sync::MutexGuard<'static, ()>>;

/// Guard returned by [`Mutex::lock`]; the arm's own guard type, derefs to `T`.
pub use backend::sync::MutexGuard;

/// Guard returned by [`RwLock::read`]; the arm's own guard type, derefs to `T`.
pub use backend::sync::RwLockReadGuard;

/// Guard returned by [`RwLock::write`]; the arm's own guard type, derefs mutably to `T`.
pub use backend::sync::RwLockWriteGuard;

/// Atomic integers and booleans of the current arm, plus [`atomic::Ordering`].
pub mod atomic {
    pub use super::backend::sync::atomic::{
        AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering,
    };
}

/// Process-wide flags outside any model: always `std`'s, also under loom and shuttle, because
/// a `static` outlives every model run. Only for what no store state depends on (a warning
/// logged once per process).
pub mod process {
    pub use std::sync::atomic::{AtomicBool, Ordering};
}

/// Threads of the current arm: `spawn`, a named [`thread::Builder`], [`thread::JoinHandle`],
/// `yield_now` and `sleep`.
///
/// `Builder::spawn` returns `std::io::Result<JoinHandle<T>>` and `JoinHandle::join` returns
/// `std::thread::Result<T>` in every arm. Under loom and shuttle, `sleep` does not sleep: it
/// yields to the scheduler (time is not modelled).
pub mod thread {
    pub use super::backend::thread::{current, spawn, yield_now, Builder, JoinHandle, ThreadId};

    #[cfg(not(any(loom, shuttle)))]
    pub use std::thread::sleep;

    #[cfg(all(shuttle, not(loom)))]
    pub use shuttle::thread::sleep;

    /// Loom does not model time: sleeping is a yield to its scheduler.
    #[cfg(loom)]
    #[inline]
    pub fn sleep(_dur: std::time::Duration) {
        loom::thread::yield_now();
    }
}

/// Body of a spin-wait loop: a CPU hint in production, a scheduler yield under the models (a
/// model checker only makes progress when the spinning thread lets another one run).
#[inline]
pub fn spin_loop() {
    #[cfg(not(any(loom, shuttle)))]
    std::hint::spin_loop();
    #[cfg(any(loom, shuttle))]
    thread::yield_now();
}

/// Multi-producer, multi-consumer FIFO channels with the same API in every arm.
///
/// * [`channel::bounded`]`(cap)` holds at most `cap` queued messages; **`bounded(0)` is treated
///   as `bounded(1)` in every arm** (no rendezvous channels), so behaviour never depends on the
///   arm. [`channel::unbounded`] never blocks a sender.
/// * [`channel::reply`]`(filler)` is a `bounded(1)` answer channel whose queue storage the
///   production arm allocates on the calling thread (see its docs); the models ignore `filler`.
/// * When every `Receiver` is gone, sends fail with `Disconnected`, handing the value back.
/// * When every `Sender` is gone, receivers first drain what is queued, then get
///   `Disconnected`.
///
/// Production wraps `flume` (its errors are mapped to the shim's own types); the model arms use
/// [`mc_channel`], built from the shim's [`Mutex`] and [`Condvar`].
pub mod channel {
    #[cfg(not(any(loom, shuttle)))]
    pub use super::flume_channel::{bounded, reply, unbounded, Receiver, Sender};

    #[cfg(any(loom, shuttle))]
    pub use super::mc_channel::{bounded, reply, unbounded, Receiver, Sender};

    pub use super::channel_error::{
        RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError,
    };

    /// The `flume` receiver the production [`Receiver`] wraps (see `Receiver::as_flume`): the
    /// type of upstream's raw `AppendTicket::receiver()` accessor. Production builds only.
    #[cfg(not(any(loom, shuttle)))]
    pub type FlumeReceiver<T> = flume::Receiver<T>;
}

/// Per-thread state: the mutant build's codec seed (`seed_thread` of the seeded bugs). Plain std
/// thread-locals under every backend: set and read on one thread, never shared.
#[cfg(batpak_mutant)]
pub(crate) mod per_thread {
    pub(crate) use std::cell::Cell;
    pub(crate) use std::thread_local;
}

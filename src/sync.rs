//! TEMPORARY std-only shim (being replaced by the three-arm shim).
#![allow(missing_docs)]
pub use std::sync::Arc;
pub use std::sync::Arc as StdArc;
pub mod atomic {
    pub use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
}
pub struct Mutex<T>(std::sync::Mutex<T>);
pub type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;
impl<T> Mutex<T> {
    pub fn new(v: T) -> Self { Self(std::sync::Mutex::new(v)) }
    pub fn lock(&self) -> MutexGuard<'_, T> { self.0.lock().unwrap_or_else(|e| e.into_inner()) }
}
impl<T: std::fmt::Debug> std::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { self.0.fmt(f) }
}
pub mod thread { pub use std::thread::{spawn, Builder, JoinHandle, yield_now}; }
pub mod channel { pub use flume::{bounded, unbounded, Sender, Receiver, TrySendError, TryRecvError, RecvTimeoutError}; }

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
    pub fn new(v: T) -> Self {
        Self(std::sync::Mutex::new(v))
    }
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
impl<T: std::fmt::Debug> std::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
pub mod thread {
    pub use std::thread::{spawn, yield_now, Builder, JoinHandle};
}
pub mod channel {
    pub use flume::{
        bounded, unbounded, Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError,
    };
}
pub struct RwLock<T>(std::sync::RwLock<T>);
impl<T> RwLock<T> {
    pub fn new(v: T) -> Self {
        Self(std::sync::RwLock::new(v))
    }
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, T> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, T> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
    pub fn try_write(&self) -> Option<std::sync::RwLockWriteGuard<'_, T>> {
        self.0.try_write().ok()
    }
}
impl<T: std::fmt::Debug> std::fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
#[derive(Debug, Default)]
pub struct Condvar(std::sync::Condvar);
impl Condvar {
    pub fn new() -> Self {
        Self(std::sync::Condvar::new())
    }
    pub fn notify_all(&self) {
        self.0.notify_all()
    }
}
pub fn spin_loop() {
    std::hint::spin_loop()
}

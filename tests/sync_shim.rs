//! The shim's locks, condvar, atomics and threads in the production arm: infallible locking
//! (poison recovered), try_lock, RwLock, Condvar timeouts, named threads.

use std::time::Duration;

use batpak::__testing::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use batpak::__testing::sync::{thread, Arc, Condvar, Mutex, RwLock, StdArc, UNDER_MODEL};

#[test]
fn production_arm_is_not_under_a_model() {
    const { assert!(!UNDER_MODEL) };
}

#[test]
#[allow(clippy::panic)] // The point of the test: a lock holder that panics.
fn mutex_lock_recovers_from_poison() {
    let m = Arc::new(Mutex::new(1u32));
    let m2 = Arc::clone(&m);
    let joined = thread::spawn(move || {
        let mut g = m2.lock();
        *g = 2;
        panic!("poison the lock while holding it");
    })
    .join();
    assert!(joined.is_err(), "the holder thread must have panicked");
    assert_eq!(*m.lock(), 2, "lock() returns the guard despite poison");
    assert_eq!(m.try_lock().map(|g| *g), Some(2));
    let m = Arc::try_unwrap(m).ok();
    assert_eq!(m.map(Mutex::into_inner), Some(2));
}

#[test]
fn mutex_try_lock_is_none_while_held() {
    let mut m = Mutex::new(vec![1u8]);
    {
        let _held = m.lock();
        assert!(m.try_lock().is_none());
    }
    assert!(m.try_lock().is_some());
    m.get_mut().push(2);
    assert_eq!(format!("{m:?}"), "Mutex { data: [1, 2], .. }");
}

#[test]
fn rwlock_allows_many_readers_and_one_writer() {
    let l = RwLock::new(5i64);
    {
        let a = l.read();
        let b = l.read();
        assert_eq!(*a + *b, 10);
    }
    *l.write() += 1;
    assert_eq!(*l.read(), 6);
    assert_eq!(l.into_inner(), 6);
}

#[test]
fn condvar_wait_timeout_reports_timeout_and_wakes_on_notify() {
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let (lock, cv) = &*pair;
    let (guard, timed_out) = cv.wait_timeout(lock.lock(), Duration::from_millis(20));
    assert!(timed_out);
    assert!(!*guard);
    drop(guard);

    let pair2 = Arc::clone(&pair);
    let notifier = thread::Builder::new()
        .name("notifier".to_owned())
        .spawn(move || {
            let (lock, cv) = &*pair2;
            *lock.lock() = true;
            cv.notify_all();
        });
    let mut ready = lock.lock();
    while !*ready {
        ready = cv.wait(ready);
    }
    drop(ready);
    assert!(notifier.is_ok_and(|h| h.join().is_ok()));
}

#[test]
fn atomics_threads_and_std_arc_are_usable_through_the_shim() {
    let counter = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let c = Arc::clone(&counter);
            thread::spawn(move || {
                for _ in 0..1_000 {
                    c.fetch_add(1, Ordering::Relaxed);
                    batpak::__testing::sync::spin_loop();
                }
                thread::yield_now();
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().is_ok());
    }
    assert_eq!(counter.load(Ordering::SeqCst), 4_000);
    assert!(!AtomicBool::new(false).load(Ordering::SeqCst));
    assert_eq!(AtomicI64::new(-3).fetch_sub(1, Ordering::SeqCst), -3);
    assert_eq!(AtomicUsize::new(7).swap(8, Ordering::SeqCst), 7);
    let handle: StdArc<dyn Fn() -> u8 + Send + Sync> = StdArc::new(|| 42);
    assert_eq!(handle(), 42);
}

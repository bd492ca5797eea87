//! Smoke tests of the shim under the model checkers: the mc channel's send / recv and both
//! disconnect directions, explored by loom (exhaustively, bounded) or shuttle (randomly).

use super::channel::{self, RecvError, SendError, TryRecvError, TrySendError};
use super::thread;

/// One producer sends two messages through a capacity-1 channel (so it must block once) and
/// hangs up; the consumer receives both in order, then sees the disconnect.
fn send_recv_then_sender_disconnect() {
    let (tx, rx) = channel::bounded::<u32>(1);
    let producer = thread::spawn(move || {
        assert_eq!(tx.send(1), Ok(()));
        assert_eq!(tx.send(2), Ok(()));
    });
    assert_eq!(rx.recv(), Ok(1));
    assert_eq!(rx.recv(), Ok(2));
    assert_eq!(rx.recv(), Err(RecvError));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert!(producer.join().is_ok());
}

/// A sender blocked on a full channel is woken by the receiver hanging up and gets its value
/// back.
fn blocked_sender_sees_receiver_disconnect() {
    let (tx, rx) = channel::bounded::<u32>(1);
    assert_eq!(tx.try_send(7), Ok(()));
    assert_eq!(tx.try_send(8), Err(TrySendError::Full(8)));
    let consumer = thread::spawn(move || drop(rx));
    // Either the receiver is already gone, or this blocks until its drop wakes us.
    assert_eq!(tx.send(9), Err(SendError(9)));
    assert!(tx.is_disconnected());
    assert!(consumer.join().is_ok());
}

/// Two producers race into a capacity-1 channel, so one of them must block and be woken by a
/// pop; a lost wake-up shows up as a deadlock reported by the checker.
fn two_producers_one_slot_lose_nothing() {
    let (tx, rx) = channel::bounded::<u32>(1);
    let tx2 = tx.clone();
    let a = thread::spawn(move || assert_eq!(tx.send(1), Ok(())));
    let b = thread::spawn(move || assert_eq!(tx2.send(2), Ok(())));
    let first = rx.recv();
    let second = rx.recv();
    assert!(matches!((first, second), (Ok(1), Ok(2)) | (Ok(2), Ok(1))));
    assert!(a.join().is_ok());
    assert!(b.join().is_ok());
    assert_eq!(rx.recv(), Err(RecvError));
}

#[cfg(loom)]
mod loom_model {
    #[test]
    fn sync_mc_channel_send_recv_then_sender_disconnect() {
        loom::model(super::send_recv_then_sender_disconnect);
    }

    #[test]
    fn sync_mc_channel_blocked_sender_sees_receiver_disconnect() {
        loom::model(super::blocked_sender_sees_receiver_disconnect);
    }

    #[test]
    fn sync_mc_channel_two_producers_one_slot_lose_nothing() {
        loom::model(super::two_producers_one_slot_lose_nothing);
    }
}

#[cfg(shuttle)]
mod shuttle_model {
    const ITERATIONS: usize = 2_000;

    #[test]
    fn sync_mc_channel_send_recv_then_sender_disconnect() {
        shuttle::check_random(super::send_recv_then_sender_disconnect, ITERATIONS);
        shuttle::check_pct(super::send_recv_then_sender_disconnect, ITERATIONS, 3);
    }

    #[test]
    fn sync_mc_channel_blocked_sender_sees_receiver_disconnect() {
        shuttle::check_random(super::blocked_sender_sees_receiver_disconnect, ITERATIONS);
        shuttle::check_pct(
            super::blocked_sender_sees_receiver_disconnect,
            ITERATIONS,
            3,
        );
    }

    #[test]
    fn sync_mc_channel_two_producers_one_slot_lose_nothing() {
        shuttle::check_random(super::two_producers_one_slot_lose_nothing, ITERATIONS);
        shuttle::check_pct(super::two_producers_one_slot_lose_nothing, ITERATIONS, 3);
    }
}

//! One behavioural suite, run against both channels of the shim: the production
//! `sync::channel` (flume-backed) and `sync::mc_channel` (the Mutex + Condvar channel that the
//! loom and shuttle arms use), so the models check the same semantics production has.

macro_rules! channel_parity_suite {
    ($suite:ident, $chan:ident) => {
        mod $suite {
            use std::time::{Duration, Instant};

            use batpak::__testing::sync::thread;
            use batpak::__testing::sync::$chan as chan;
            use chan::{
                RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError,
            };

            #[test]
            fn messages_arrive_in_fifo_order() {
                let (tx, rx) = chan::unbounded::<u32>();
                for i in 0..100 {
                    assert_eq!(tx.send(i), Ok(()));
                }
                for i in 0..100 {
                    assert_eq!(rx.recv(), Ok(i));
                }
                assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
            }

            #[test]
            fn bounded_try_send_when_full_returns_the_value() {
                let (tx, rx) = chan::bounded::<String>(2);
                assert_eq!(tx.capacity(), Some(2));
                assert_eq!(tx.try_send("a".to_owned()), Ok(()));
                assert_eq!(tx.try_send("b".to_owned()), Ok(()));
                let full = tx.try_send("c".to_owned());
                assert!(matches!(&full, Err(TrySendError::Full(v)) if v == "c"), "{full:?}");
                assert_eq!(rx.recv().as_deref(), Ok("a"));
                assert_eq!(tx.try_send("c".to_owned()), Ok(()));
                assert_eq!(rx.recv().as_deref(), Ok("b"));
                assert_eq!(rx.recv().as_deref(), Ok("c"));
            }

            #[test]
            fn bounded_zero_is_treated_as_capacity_one() {
                let (tx, rx) = chan::bounded::<u8>(0);
                assert_eq!(tx.capacity(), Some(1));
                assert_eq!(tx.try_send(1), Ok(()));
                assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
                assert_eq!(rx.try_recv(), Ok(1));
            }

            #[test]
            fn a_reply_channel_starts_empty_and_holds_one_answer() {
                let (tx, rx) = chan::reply::<u32>(99);
                assert_eq!(tx.capacity(), Some(1));
                assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "the filler is not an answer");
                assert_eq!(tx.try_send(1), Ok(()));
                assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
                assert_eq!(rx.recv(), Ok(1));
                drop(tx);
                assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
            }

            #[test]
            fn unbounded_has_no_capacity() {
                let (tx, _rx) = chan::unbounded::<u8>();
                assert_eq!(tx.capacity(), None);
                for i in 0..=255 {
                    assert_eq!(tx.try_send(i), Ok(()));
                }
                assert_eq!(tx.len(), 256);
            }

            #[test]
            fn try_send_after_receiver_drops_is_disconnected_with_the_value() {
                let (tx, rx) = chan::bounded::<u32>(4);
                assert!(!tx.is_disconnected());
                drop(rx);
                assert!(tx.is_disconnected());
                assert_eq!(tx.try_send(5), Err(TrySendError::Disconnected(5)));
                assert_eq!(tx.send(6), Err(SendError(6)));
            }

            #[test]
            fn receiver_drains_queue_then_sees_disconnect_after_all_senders_drop() {
                let (tx, rx) = chan::bounded::<u32>(8);
                let tx2 = tx.clone();
                assert_eq!(tx.send(1), Ok(()));
                assert_eq!(tx2.send(2), Ok(()));
                drop(tx);
                drop(tx2);
                assert_eq!(rx.recv(), Ok(1));
                assert_eq!(rx.try_recv(), Ok(2));
                assert_eq!(rx.recv(), Err(RecvError));
                assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
                assert_eq!(
                    rx.recv_timeout(Duration::from_millis(10)),
                    Err(RecvTimeoutError::Disconnected)
                );
            }

            #[test]
            fn a_sender_clone_keeps_the_channel_alive() {
                let (tx, rx) = chan::unbounded::<u32>();
                let tx2 = tx.clone();
                drop(tx);
                assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
                assert_eq!(tx2.send(3), Ok(()));
                assert_eq!(rx.recv(), Ok(3));
                drop(tx2);
                assert_eq!(rx.recv(), Err(RecvError));
            }

            #[test]
            fn a_receiver_clone_keeps_the_channel_alive() {
                let (tx, rx) = chan::unbounded::<u32>();
                let rx2 = rx.clone();
                drop(rx);
                assert!(!tx.is_disconnected());
                assert_eq!(tx.send(4), Ok(()));
                assert_eq!(rx2.recv(), Ok(4));
                drop(rx2);
                assert_eq!(tx.send(5), Err(SendError(5)));
            }

            #[test]
            fn recv_timeout_times_out_then_receives() {
                let (tx, rx) = chan::bounded::<u32>(1);
                let start = Instant::now();
                assert_eq!(
                    rx.recv_timeout(Duration::from_millis(30)),
                    Err(RecvTimeoutError::Timeout)
                );
                assert!(start.elapsed() >= Duration::from_millis(30));
                let producer = thread::spawn(move || {
                    thread::sleep(Duration::from_millis(20));
                    tx.send(9)
                });
                assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(9));
                assert_eq!(producer.join().ok(), Some(Ok(())));
            }

            #[test]
            fn blocking_send_unblocks_when_a_slot_frees() {
                let (tx, rx) = chan::bounded::<u32>(1);
                assert_eq!(tx.send(1), Ok(()));
                // Blocks until the consumer takes 1.
                let producer = thread::spawn(move || tx.send(2));
                thread::sleep(Duration::from_millis(30));
                assert_eq!(rx.len(), 1, "the blocked send must not have queued yet");
                assert_eq!(rx.recv(), Ok(1));
                assert_eq!(producer.join().ok(), Some(Ok(())));
                assert_eq!(rx.recv(), Ok(2));
            }

            #[test]
            fn blocked_send_fails_when_the_receiver_drops() {
                let (tx, rx) = chan::bounded::<u32>(1);
                assert_eq!(tx.send(1), Ok(()));
                let producer = thread::spawn(move || tx.send(2));
                thread::sleep(Duration::from_millis(30));
                drop(rx);
                assert_eq!(producer.join().ok(), Some(Err(SendError(2))));
            }

            #[test]
            fn blocked_recv_fails_when_the_last_sender_drops() {
                let (tx, rx) = chan::bounded::<u32>(1);
                let consumer = thread::spawn(move || rx.recv());
                thread::sleep(Duration::from_millis(30));
                drop(tx);
                assert_eq!(consumer.join().ok(), Some(Err(RecvError)));
            }

            #[test]
            fn many_producers_one_consumer_loses_nothing() {
                const PRODUCERS: u64 = 4;
                const PER_PRODUCER: u64 = 10_000;
                let (tx, rx) = chan::bounded::<(u64, u64)>(16);
                let producers: Vec<_> = (0..PRODUCERS)
                    .map(|p| {
                        let tx = tx.clone();
                        thread::Builder::new()
                            .name(format!("producer-{p}"))
                            .spawn(move || {
                                for i in 0..PER_PRODUCER {
                                    if tx.send((p, i)).is_err() {
                                        return false;
                                    }
                                }
                                true
                            })
                    })
                    .collect();
                drop(tx);
                let mut next = vec![0u64; PRODUCERS as usize];
                let mut total = 0u64;
                while let Ok((p, i)) = rx.recv() {
                    // Per-producer FIFO: each producer's messages arrive in its send order.
                    assert_eq!(next[p as usize], i, "producer {p} out of order");
                    next[p as usize] += 1;
                    total += 1;
                }
                assert_eq!(total, PRODUCERS * PER_PRODUCER);
                for handle in producers {
                    let ok = handle.ok().and_then(|h| h.join().ok());
                    assert_eq!(ok, Some(true));
                }
            }

            #[test]
            fn many_producers_many_consumers_deliver_each_message_once() {
                let (tx, rx) = chan::bounded::<u64>(4);
                let consumers: Vec<_> = (0..3)
                    .map(|_| {
                        let rx = rx.clone();
                        thread::spawn(move || {
                            let mut sum = 0u64;
                            let mut count = 0u64;
                            while let Ok(v) = rx.recv() {
                                sum += v;
                                count += 1;
                            }
                            (sum, count)
                        })
                    })
                    .collect();
                drop(rx);
                let producers: Vec<_> = (0..3u64)
                    .map(|p| {
                        let tx = tx.clone();
                        thread::spawn(move || {
                            for i in 0..2_000u64 {
                                assert_eq!(tx.send(p * 2_000 + i), Ok(()));
                            }
                        })
                    })
                    .collect();
                drop(tx);
                for p in producers {
                    assert!(p.join().is_ok());
                }
                let (mut sum, mut count) = (0u64, 0u64);
                for c in consumers {
                    let (s, n) = c.join().unwrap_or((0, 0));
                    sum += s;
                    count += n;
                }
                assert_eq!(count, 6_000);
                assert_eq!(sum, (0..6_000u64).sum::<u64>());
            }

            #[test]
            fn len_and_is_empty_track_the_queue() {
                let (tx, rx) = chan::bounded::<u32>(3);
                assert!(rx.is_empty());
                assert_eq!(rx.len(), 0);
                assert_eq!(tx.send(1), Ok(()));
                assert_eq!(tx.send(2), Ok(()));
                assert!(!rx.is_empty());
                assert_eq!(rx.len(), 2);
                assert_eq!(tx.len(), 2);
                assert_eq!(rx.recv(), Ok(1));
                assert_eq!(rx.len(), 1);
                assert_eq!(rx.recv(), Ok(2));
                assert!(rx.is_empty());
                assert!(!rx.is_disconnected());
                drop(tx);
                assert!(rx.is_disconnected());
            }

            #[test]
            fn errors_display_and_are_std_errors() {
                fn as_error<E: std::error::Error>(e: E) -> String {
                    e.to_string()
                }
                assert!(!as_error(SendError(1)).is_empty());
                assert!(!as_error(TrySendError::Full(1)).is_empty());
                assert!(!as_error(TrySendError::Disconnected(1)).is_empty());
                assert!(!as_error(RecvError).is_empty());
                assert!(!as_error(TryRecvError::Empty).is_empty());
                assert!(!as_error(RecvTimeoutError::Timeout).is_empty());
                assert_eq!(TrySendError::Full(7).into_inner(), 7);
                assert_eq!(format!("{:?}", SendError(vec![1u8])), "SendError(..)");
            }
        }
    };
}

channel_parity_suite!(flume_channel, channel);
channel_parity_suite!(mutex_condvar_channel, mc_channel);

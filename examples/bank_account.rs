//! A bank account as an aggregate: commands decided against the folded state
//! (`Store::execute`, with a compare-and-swap on the account's entity clock, so two tellers
//! can never both spend the same money), an in-memory snapshot policy, a projection cache on
//! disk that survives a reopen, and time travel (`project_at`).
//!
//! Run with `cargo run --example bank_account`.

use batpak::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x4, type_id = 1)]
struct Deposited {
    cents: u64,
}

#[derive(Debug, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x4, type_id = 2)]
struct Withdrawn {
    cents: u64,
}

/// The account's state: a plain fold of its events. The derive routes each event to its
/// handler; a payload that does not decode makes `project` fail with `ProjectionDecode`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, EventSourced)]
#[batpak(input = RawMsgpackInput, cache_version = 1)]
#[batpak(event = Deposited, handler = on_deposited)]
#[batpak(event = Withdrawn, handler = on_withdrawn)]
struct Account {
    balance_cents: u64,
    transactions: u32,
}

impl Account {
    fn on_deposited(&mut self, e: &Deposited) {
        self.balance_cents += e.cents;
        self.transactions += 1;
    }
    fn on_withdrawn(&mut self, e: &Withdrawn) {
        self.balance_cents -= e.cents;
        self.transactions += 1;
    }
}

#[derive(Debug, Clone)]
enum Command {
    Deposit { account: String, cents: u64 },
    Withdraw { account: String, cents: u64 },
}

#[derive(Debug)]
enum Refused {
    ZeroAmount,
    InsufficientFunds {
        balance_cents: u64,
        asked: u64,
    },
    /// The account name is not a valid entity, or the event did not encode.
    Invalid(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ZeroAmount => write!(f, "amount must be positive"),
            Self::InsufficientFunds {
                balance_cents,
                asked,
            } => write!(f, "insufficient funds: {balance_cents} < {asked}"),
            Self::Invalid(why) => write!(f, "invalid command: {why}"),
        }
    }
}

/// One event for `account`.
fn event<T: EventPayload>(account: &str, payload: &T) -> Result<BatchAppendItem, Refused> {
    let invalid = |e: StoreError| Refused::Invalid(e.to_string());
    let coord = Coordinate::new(account, "bank").map_err(|e| invalid(e.into()))?;
    BatchAppendItem::typed(coord, payload, AppendOptions::default(), CausationRef::None)
        .map_err(invalid)
}

impl Aggregate for Account {
    type Command = Command;
    type Error = Refused;

    fn handle(state: Option<&Self>, command: &Command) -> Result<Vec<BatchAppendItem>, Refused> {
        let balance_cents = state.map_or(0, |s| s.balance_cents);
        match command {
            Command::Deposit { cents: 0, .. } | Command::Withdraw { cents: 0, .. } => {
                Err(Refused::ZeroAmount)
            }
            Command::Deposit { account, cents } => {
                Ok(vec![event(account, &Deposited { cents: *cents })?])
            }
            Command::Withdraw { cents, .. } if *cents > balance_cents => {
                Err(Refused::InsufficientFunds {
                    balance_cents,
                    asked: *cents,
                })
            }
            Command::Withdraw { account, cents } => {
                Ok(vec![event(account, &Withdrawn { cents: *cents })?])
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let config = || {
        StoreConfig::new(dir.path().join("store")).with_projection_snapshots(SnapshotPolicy {
            every_n_events: 100,
            max_entries: 1_000,
        })
    };
    let cache = dir.path().join("projection-cache");
    let store = Arc::new(Store::open_with_native_cache(config(), &cache)?);
    let acct = "account:alice".to_string();

    store.execute::<Account>(
        &acct,
        Command::Deposit {
            account: acct.clone(),
            cents: 10_000,
        },
    )?;
    let after_first_deposit = store.stream(&acct)[0].global_sequence;

    // Four tellers withdraw 30 cents each, 100 times, at once. Every withdrawal is decided on
    // the state it was folded from; a teller whose fold went stale retries.
    let tellers: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            let acct = acct.clone();
            std::thread::spawn(move || {
                let mut done = 0u32;
                for _ in 0..100 {
                    let cmd = Command::Withdraw {
                        account: acct.clone(),
                        cents: 30,
                    };
                    match store.execute::<Account>(&acct, cmd) {
                        Ok(_) => done += 1,
                        Err(ExecuteError::Rejected(_)) => break,
                        Err(ExecuteError::Conflict { .. }) => continue,
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Ok(done)
            })
        })
        .collect();
    let mut withdrawals = 0u32;
    for t in tellers {
        withdrawals += t.join().map_err(|_| "teller panicked")??;
    }
    let now = store
        .project::<Account>(&acct, &Freshness::Consistent)?
        .ok_or("no account")?;
    println!(
        "{withdrawals} withdrawals of 30 cents went through; balance {} cents after {} transactions",
        now.balance_cents, now.transactions
    );
    assert_eq!(
        now.balance_cents,
        10_000 - 30 * u64::from(withdrawals),
        "no lost update"
    );

    // A command the state refuses appends nothing.
    let refused = store.execute::<Account>(
        &acct,
        Command::Withdraw {
            account: acct.clone(),
            cents: 1_000_000,
        },
    );
    if let Err(ExecuteError::Rejected(why)) = refused {
        println!("refused: {why}");
    }

    // Time travel: the account as it was right after the first deposit.
    let then = store
        .project_at::<Account>(&acct, after_first_deposit)?
        .ok_or("no account then")?;
    println!(
        "as of sequence {after_first_deposit}: balance {} cents, {} transaction(s)",
        then.balance_cents, then.transactions
    );

    // Reopen with the same cache: the fold resumes from the row written at the durable
    // frontier (checked against the log first), and still equals the full fold.
    let store = Arc::try_unwrap(store).map_err(|_| "store still shared")?;
    store.close()?;
    let store = Store::open_with_native_cache(config(), &cache)?;
    let reopened = store
        .project::<Account>(&acct, &Freshness::Consistent)?
        .ok_or("no account after reopen")?;
    println!(
        "after reopen: balance {} cents ({} cache row(s) on disk)",
        reopened.balance_cents,
        std::fs::read_dir(&cache)?.count()
    );
    assert_eq!(reopened.balance_cents, now.balance_cents);
    store.close()?;
    Ok(())
}

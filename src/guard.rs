//! Policy gates: pure predicates that permit or deny a proposal before it is written.
//!
//! A [`Gate`] looks at a caller-defined context and answers `Ok(())` or a [`Denial`]. A
//! [`GateSet`] runs its gates in the order they were pushed and, when all of them permit,
//! hands out a [`Receipt`]: the only proof that a payload passed the gates. Gates do no I/O
//! and hold no store; persisting a denial is the store's job (`Store::append_denial`), fed by
//! the [`DecisionTrace`] that [`GateSet::evaluate_traced`] returns.
//!
//! A gate that panics is contained: it becomes a [`Denial`] with code
//! [`Denial::CODE_GATE_PANICKED`] and the evaluation goes on as if it had denied. The process
//! panic hook still runs (so the default hook prints the panic message to stderr).
//!
//! ```
//! use batpak::prelude::*;
//!
//! struct Limit;
//! impl Gate<u64> for Limit {
//!     fn name(&self) -> &'static str { "limit" }
//!     fn evaluate(&self, amount: &u64) -> Result<(), Denial> {
//!         if *amount <= 100 {
//!             Ok(())
//!         } else {
//!             Err(Denial::new("limit", "amount above 100").with_code("over_limit"))
//!         }
//!     }
//! }
//!
//! let mut gates = GateSet::new();
//! gates.push(Limit);
//! let receipt = gates.evaluate(&42, Proposal::new("pay 42")).map_err(|d| d.to_string())?;
//! assert_eq!(receipt.gates_passed(), &["limit"]);
//! let denial = gates.evaluate(&500, Proposal::new("pay 500")).err();
//! assert_eq!(denial.map(|d| d.code), Some("over_limit".to_string()));
//! # Ok::<(), String>(())
//! ```

use crate::event::{EventKind, EventPayload};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A predicate over a caller-defined context `Ctx`: permits (`Ok(())`) or denies.
///
/// Gates are pure: no I/O, no mutation of the store. A gate that panics is turned into a
/// [`Denial`] with code [`Denial::CODE_GATE_PANICKED`] by the [`GateSet`] running it.
pub trait Gate<Ctx>: Send + Sync {
    /// A stable, human-readable name; recorded in receipts, traces and denials.
    fn name(&self) -> &'static str;

    /// Evaluates the context.
    ///
    /// # Errors
    /// Returns a [`Denial`] when the gate rejects the proposal.
    fn evaluate(&self, ctx: &Ctx) -> Result<(), Denial>;

    /// What the gate checks, for documentation and diagnostics. Empty by default.
    fn description(&self) -> &'static str {
        ""
    }
}

/// Why a gate rejected a proposal.
///
/// `gate` is an owned `String` (upstream uses `&'static str`) so that a denial can be
/// deserialized back from a stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// Name of the gate that denied.
    pub gate: String,
    /// Machine-readable code; empty unless set with [`Denial::with_code`].
    pub code: String,
    /// Human-readable reason.
    pub message: String,
    /// Extra key/value details, ordered by key.
    pub context: BTreeMap<String, String>,
}

impl Denial {
    /// The code of a denial produced by a gate that panicked.
    pub const CODE_GATE_PANICKED: &'static str = "gate_panicked";

    /// A denial by `gate` with a human-readable `message`, no code and no context.
    pub fn new(gate: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            gate: gate.into(),
            code: String::new(),
            message: message.into(),
            context: BTreeMap::new(),
        }
    }

    /// Sets the machine-readable code.
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = code.into();
        self
    }

    /// Adds (or replaces) one context entry.
    #[must_use]
    pub fn with_context(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.context.insert(key.into(), value.into());
        self
    }

    /// The denial standing for a gate that panicked, carrying the panic text when it has one.
    fn from_panic(gate: &'static str, panic: &(dyn Any + Send)) -> Self {
        let text = if let Some(s) = panic.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = panic.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_string()
        };
        Denial::new(gate, format!("gate `{gate}` panicked: {text}"))
            .with_code(Self::CODE_GATE_PANICKED)
    }
}

impl fmt::Display for Denial {
    /// `[gate] message`, as upstream (the code and context are fields, and in `Debug`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.gate, self.message)
    }
}

impl std::error::Error for Denial {}

/// A payload offered for gate evaluation. Holding one proves nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal<T> {
    payload: T,
}

impl<T> Proposal<T> {
    /// Wraps a payload.
    pub fn new(payload: T) -> Self {
        Self { payload }
    }

    /// The wrapped payload.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// Unwraps the payload.
    pub fn into_payload(self) -> T {
        self.payload
    }

    /// Transforms the payload, keeping it a proposal.
    pub fn map<U, F: FnOnce(T) -> U>(self, f: F) -> Proposal<U> {
        Proposal::new(f(self.payload))
    }
}

/// Proof that a payload passed every gate of a [`GateSet`].
///
/// Only [`GateSet::evaluate`] (and [`GateSet::evaluate_traced`], or a `Pipeline`
/// calling them) makes one: the fields are private, there is no public constructor, and it is
/// neither `Clone` nor `Deserialize`, so one evaluation yields exactly one receipt, consumed
/// by `Pipeline::commit` or [`Receipt::into_parts`].
///
/// A receipt cannot be written as a struct literal:
/// ```compile_fail
/// use batpak::prelude::*;
/// let forged = Receipt { payload: 1u32, gates_passed: Vec::new() };
/// ```
/// nor built through a constructor:
/// ```compile_fail
/// use batpak::prelude::*;
/// let forged: Receipt<u32> = Receipt::new(1u32, Vec::new());
/// ```
/// nor cloned:
/// ```compile_fail
/// use batpak::prelude::*;
/// fn needs_clone<T: Clone>() {}
/// needs_clone::<Receipt<u32>>();
/// ```
#[derive(Debug)]
pub struct Receipt<T> {
    payload: T,
    gates_passed: Vec<&'static str>,
}

impl<T> Receipt<T> {
    /// Module-private: the seal. Only the gate set below calls it.
    fn new(payload: T, gates_passed: Vec<&'static str>) -> Self {
        Self {
            payload,
            gates_passed,
        }
    }

    /// The payload that passed.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// The names of the gates that permitted it, in evaluation order.
    pub fn gates_passed(&self) -> &[&'static str] {
        &self.gates_passed
    }

    /// Consumes the receipt: the payload and the names of the gates that passed it.
    pub fn into_parts(self) -> (T, Vec<&'static str>) {
        (self.payload, self.gates_passed)
    }
}

/// What happened at one gate during a traced evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GateOutcome {
    /// The gate ran and permitted.
    Permitted,
    /// The gate ran and denied (a panic counts as a denial with code `gate_panicked`).
    Denied {
        /// The denial's code.
        code: String,
        /// The denial's message.
        message: String,
    },
    /// The gate did not run because an earlier gate denied.
    Skipped,
}

/// One gate's entry in a [`DecisionTrace`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateDecision {
    /// The gate's [`Gate::name`].
    pub gate: String,
    /// What it decided.
    pub outcome: GateOutcome,
}

/// Every gate of a set, in order, with what it decided; persistable with the denial.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionTrace {
    /// One entry per gate of the set, in evaluation order.
    pub entries: Vec<GateDecision>,
}

impl DecisionTrace {
    /// Whether no gate denied.
    pub fn is_permitted(&self) -> bool {
        !self
            .entries
            .iter()
            .any(|e| matches!(e.outcome, GateOutcome::Denied { .. }))
    }

    /// The entry of the gate that denied, if any.
    pub fn denied_by(&self) -> Option<&GateDecision> {
        self.entries
            .iter()
            .find(|e| matches!(e.outcome, GateOutcome::Denied { .. }))
    }
}

/// An ordered set of gates, evaluated in push order.
pub struct GateSet<Ctx> {
    gates: Vec<Box<dyn Gate<Ctx>>>,
}

impl<Ctx> GateSet<Ctx> {
    /// An empty set (which permits everything).
    pub fn new() -> Self {
        Self { gates: Vec::new() }
    }

    /// Appends a gate; it runs after the gates already in the set.
    pub fn push(&mut self, gate: impl Gate<Ctx> + 'static) {
        self.gates.push(Box::new(gate));
    }

    /// Appends an already boxed gate.
    pub fn push_boxed(&mut self, gate: Box<dyn Gate<Ctx>>) {
        self.gates.push(gate);
    }

    /// Number of gates.
    pub fn len(&self) -> usize {
        self.gates.len()
    }

    /// Whether the set has no gates.
    pub fn is_empty(&self) -> bool {
        self.gates.is_empty()
    }

    /// The gates' names, in evaluation order.
    pub fn names(&self) -> Vec<&'static str> {
        self.gates.iter().map(|g| g.name()).collect()
    }

    /// Runs the gates in order, stopping at the first denial (fail-fast).
    ///
    /// # Errors
    /// The first [`Denial`], including one standing for a gate that panicked.
    pub fn evaluate<T>(&self, ctx: &Ctx, proposal: Proposal<T>) -> Result<Receipt<T>, Denial> {
        let passed = self.run_fail_fast(ctx, None)?;
        Ok(Receipt::new(proposal.into_payload(), passed))
    }

    /// Like [`GateSet::evaluate`], and also returns a [`DecisionTrace`] with one entry per
    /// gate: `Permitted` up to the denying gate, `Denied` for it, `Skipped` after it.
    pub fn evaluate_traced<T>(
        &self,
        ctx: &Ctx,
        proposal: Proposal<T>,
    ) -> (Result<Receipt<T>, Denial>, DecisionTrace) {
        let mut trace = DecisionTrace {
            entries: Vec::with_capacity(self.gates.len()),
        };
        let result = self
            .run_fail_fast(ctx, Some(&mut trace))
            .map(|passed| Receipt::new(proposal.into_payload(), passed));
        debug_assert_eq!(
            trace.entries.len(),
            self.gates.len(),
            "one trace entry per gate"
        );
        (result, trace)
    }

    /// The trace a fail-fast evaluation that `failing` ended would have recorded: `Permitted`
    /// for the gates before the first one named `failing.gate`, `Denied` for it, `Skipped`
    /// after it. `None` if no gate of the set has that name.
    pub fn trace_denial(&self, failing: &Denial) -> Option<DecisionTrace> {
        let at = self.gates.iter().position(|g| g.name() == failing.gate)?;
        let entries = self
            .gates
            .iter()
            .enumerate()
            .map(|(i, g)| GateDecision {
                gate: g.name().to_string(),
                outcome: match i.cmp(&at) {
                    std::cmp::Ordering::Less => GateOutcome::Permitted,
                    std::cmp::Ordering::Equal => GateOutcome::Denied {
                        code: failing.code.clone(),
                        message: failing.message.clone(),
                    },
                    std::cmp::Ordering::Greater => GateOutcome::Skipped,
                },
            })
            .collect();
        Some(DecisionTrace { entries })
    }

    /// Runs every gate (no fail-fast) and returns all denials, in gate order.
    pub fn evaluate_all(&self, ctx: &Ctx) -> Vec<Denial> {
        self.gates
            .iter()
            .filter_map(|gate| run_contained(gate.as_ref(), ctx).err())
            .collect()
    }

    /// The fail-fast loop shared by `evaluate` and `evaluate_traced`; returns the names of
    /// the gates that passed.
    fn run_fail_fast(
        &self,
        ctx: &Ctx,
        mut trace: Option<&mut DecisionTrace>,
    ) -> Result<Vec<&'static str>, Denial> {
        let mut passed = Vec::with_capacity(self.gates.len());
        let mut denial: Option<Denial> = None;
        for gate in &self.gates {
            let outcome = if denial.is_some() {
                GateOutcome::Skipped
            } else {
                match run_contained(gate.as_ref(), ctx) {
                    Ok(()) => {
                        passed.push(gate.name());
                        GateOutcome::Permitted
                    }
                    Err(d) => {
                        let outcome = GateOutcome::Denied {
                            code: d.code.clone(),
                            message: d.message.clone(),
                        };
                        denial = Some(d);
                        outcome
                    }
                }
            };
            match trace.as_deref_mut() {
                Some(t) => t.entries.push(GateDecision {
                    gate: gate.name().to_string(),
                    outcome,
                }),
                // Without a trace there is nothing to record for the skipped gates.
                None if denial.is_some() => break,
                None => {}
            }
        }
        match denial {
            Some(d) => Err(d),
            None => Ok(passed),
        }
    }
}

/// Runs one gate, turning a panic into a `gate_panicked` denial.
fn run_contained<Ctx>(gate: &dyn Gate<Ctx>, ctx: &Ctx) -> Result<(), Denial> {
    match catch_unwind(AssertUnwindSafe(|| gate.evaluate(ctx))) {
        Ok(result) => result,
        Err(panic) => Err(Denial::from_panic(gate.name(), panic.as_ref())),
    }
}

impl<Ctx> Default for GateSet<Ctx> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Ctx> fmt::Debug for GateSet<Ctx> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateSet")
            .field("gates", &self.names())
            .finish()
    }
}

/// The payload of a denial the store records (`Store::append_denial`,
/// `Store::append_denial_record`): kind [`EventKind::SYSTEM_DENIAL`], on the denied entity's
/// chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenialRecord {
    /// The denial.
    pub denial: Denial,
    /// Which gates permitted, denied or were skipped.
    pub trace: DecisionTrace,
    /// The kind the denied write proposed (recorded by `Store::append_denial`).
    #[serde(default)]
    pub proposed_kind: Option<EventKind>,
    /// blake3 of the denied write's payload, if the caller had it.
    #[serde(default)]
    pub proposed_content_hash: Option<[u8; 32]>,
    /// The pipeline that evaluated the gates, if the caller named one.
    #[serde(default)]
    pub pipeline_id: Option<String>,
}

impl EventPayload for DenialRecord {
    const KIND: EventKind = EventKind::SYSTEM_DENIAL;
}

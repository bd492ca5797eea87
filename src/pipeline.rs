//! The gate pipeline: propose, evaluate, then commit through the caller's own write.
//!
//! [`Pipeline`] owns a [`GateSet`] and two stages. [`Pipeline::evaluate`] turns a
//! [`Proposal`] into a [`Receipt`] (or a [`Denial`]); [`Pipeline::commit`] consumes the receipt
//! and calls the caller's closure, which does the actual write (usually a store append) and
//! reports what it wrote as [`CommitMetadata`]. The pipeline never touches storage itself.
//!
//! [`Pipeline::bypass`] (upstream's associated function) skips the gates for a stated
//! [`BypassReason`] and returns a [`BypassReceipt`] carrying a [`BypassAudit`] (reason,
//! justification, approver); [`Pipeline::skip_gates`] does the same on a pipeline and also
//! records which of its gates were skipped. [`Pipeline::commit_bypass`] carries the audit
//! through to the [`Committed`] record.
//!
//! ```
//! use batpak::prelude::*;
//!
//! struct NonEmpty;
//! impl Gate<String> for NonEmpty {
//!     fn name(&self) -> &'static str { "non_empty" }
//!     fn evaluate(&self, s: &String) -> Result<(), Denial> {
//!         if s.is_empty() { Err(Denial::new("non_empty", "empty")) } else { Ok(()) }
//!     }
//! }
//!
//! let mut gates = GateSet::new();
//! gates.push(NonEmpty);
//! let pipeline = Pipeline::new(gates);
//! let ctx = "order:1".to_string();
//! let receipt = pipeline.evaluate(&ctx, Proposal::new(42u32))?;
//! let committed = pipeline.commit(receipt, |payload: &u32| {
//!     // A real program appends `payload` to the store here.
//!     CommitMetadata::new(7, u64::from(*payload), [0; 32])
//! })?;
//! assert_eq!(committed.sequence(), 42);
//! assert_eq!(committed.gates_passed(), &["non_empty"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::append::AppendReceipt;
use crate::error::StoreError;
pub use crate::guard::Proposal;
use crate::guard::{DecisionTrace, Denial, GateSet, Receipt};
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;

/// What the caller's commit closure wrote: the store's id, sequence and content hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CommitMetadata {
    event_id: u128,
    sequence: u64,
    content_hash: [u8; 32],
}

impl CommitMetadata {
    /// The metadata of a store append: its id, global sequence and content hash. Takes the
    /// receipt by value (as upstream) or by reference.
    ///
    /// # Errors
    /// None in this crate (there is no genesis marker to contradict); the `Result` is
    /// upstream's signature, so `CommitMetadata::from_append_receipt(r)` can be a commit
    /// closure's tail expression.
    pub fn from_append_receipt(receipt: impl Borrow<AppendReceipt>) -> Result<Self, StoreError> {
        let receipt = receipt.borrow();
        Self::new(receipt.event_id, receipt.sequence, receipt.content_hash)
    }

    /// Metadata of a written event.
    ///
    /// # Errors
    /// None in this crate: upstream returns `Result<Self, StoreError>` because it also models
    /// a "genesis" marker that some combinations contradict; this crate has none, so every
    /// value is valid. The signature is upstream's.
    pub const fn new(
        event_id: u128,
        sequence: u64,
        content_hash: [u8; 32],
    ) -> Result<Self, StoreError> {
        Ok(Self {
            event_id,
            sequence,
            content_hash,
        })
    }

    /// Checks that the metadata describes a legal commit (upstream's check). Every value
    /// this crate can build is legal, so this returns `Ok`.
    ///
    /// # Errors
    /// None in this crate.
    pub const fn validate(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The written event's id.
    pub const fn event_id(&self) -> u128 {
        self.event_id
    }

    /// The written event's global sequence.
    pub const fn sequence(&self) -> u64 {
        self.sequence
    }

    /// blake3 of the written payload bytes.
    pub const fn content_hash(&self) -> [u8; 32] {
        self.content_hash
    }

    /// Same as [`CommitMetadata::content_hash`] (upstream's name).
    pub const fn hash(&self) -> [u8; 32] {
        self.content_hash
    }
}

/// A payload the commit closure wrote, with what it reported and how it got there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed<T> {
    payload: T,
    metadata: CommitMetadata,
    gates_passed: Vec<&'static str>,
    bypass_audit: Option<BypassAudit>,
}

impl<T> Committed<T> {
    /// The committed payload.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// What the commit closure reported.
    pub fn metadata(&self) -> &CommitMetadata {
        &self.metadata
    }

    /// The gates that permitted the payload (empty for a bypass).
    pub fn gates_passed(&self) -> &[&'static str] {
        &self.gates_passed
    }

    /// The written event's id.
    pub fn event_id(&self) -> u128 {
        self.metadata.event_id
    }

    /// The written event's global sequence.
    pub fn sequence(&self) -> u64 {
        self.metadata.sequence
    }

    /// blake3 of the written payload bytes.
    pub fn hash(&self) -> &[u8; 32] {
        &self.metadata.content_hash
    }

    /// The audit record when the payload bypassed the gates; `None` after evaluation.
    pub fn bypass_audit(&self) -> Option<&BypassAudit> {
        self.bypass_audit.as_ref()
    }

    /// Unwraps the payload.
    pub fn into_payload(self) -> T {
        self.payload
    }

    /// The payload and the metadata (upstream's pair; read
    /// [`Committed::bypass_audit`] first if you need the audit record).
    pub fn into_parts(self) -> (T, CommitMetadata) {
        (self.payload, self.metadata)
    }
}

/// A named, justified reason to skip the gates. Implement it on a unit struct and pass a
/// `&'static` reference, so every bypass in a program is a visible constant.
pub trait BypassReason: Send + Sync {
    /// Short, stable name of the reason (recorded as [`BypassAudit::reason`]).
    fn name(&self) -> &'static str;

    /// Why skipping the gates is acceptable.
    fn justification(&self) -> &'static str;

    /// Who approved this class of bypass; `None` (the default) if nobody is named.
    fn approved_by(&self) -> Option<&'static str> {
        None
    }
}

/// The audit record of a bypass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BypassAudit {
    /// [`BypassReason::name`].
    pub reason: String,
    /// [`BypassReason::justification`].
    pub justification: String,
    /// [`BypassReason::approved_by`], or the approver set with
    /// [`BypassReceipt::with_approved_by`].
    pub approved_by: Option<String>,
    /// The names of the pipeline's gates that did not run, in order, when the bypass was made
    /// on a pipeline ([`Pipeline::skip_gates`]); `None` when it was made without one
    /// ([`Pipeline::bypass`], upstream's associated function), which cannot know the gates.
    pub gates_skipped: Option<Vec<String>>,
}

/// A payload that skipped the gates, with its audit record. Made only by
/// [`Pipeline::bypass`] and [`Pipeline::skip_gates`]; not `Clone`.
#[derive(Debug)]
pub struct BypassReceipt<T> {
    payload: T,
    reason: &'static str,
    justification: &'static str,
    approved_by: Option<String>,
    gates_skipped: Option<Vec<&'static str>>,
}

impl<T> BypassReceipt<T> {
    /// The payload.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// The bypass reason's name.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The bypass reason's justification.
    pub fn justification(&self) -> &'static str {
        self.justification
    }

    /// Who approved the bypass, if anyone is named.
    pub fn approved_by(&self) -> Option<&str> {
        self.approved_by.as_deref()
    }

    /// The gates that did not run, in order, when the bypass was made on a pipeline
    /// ([`Pipeline::skip_gates`]); `None` for [`Pipeline::bypass`], made without one.
    pub fn gates_skipped(&self) -> Option<&[&'static str]> {
        self.gates_skipped.as_deref()
    }

    /// Names (or renames) the approver.
    #[must_use]
    pub fn with_approved_by(mut self, approver: impl Into<String>) -> Self {
        self.approved_by = Some(approver.into());
        self
    }

    /// The audit record.
    pub fn audit(&self) -> BypassAudit {
        BypassAudit {
            reason: self.reason.to_string(),
            justification: self.justification.to_string(),
            approved_by: self.approved_by.clone(),
            gates_skipped: self
                .gates_skipped
                .as_ref()
                .map(|gates| gates.iter().map(|g| g.to_string()).collect()),
        }
    }

    /// Unwraps the payload, dropping the audit record.
    pub fn into_payload(self) -> T {
        self.payload
    }

    /// The payload and the audit record.
    pub fn into_parts(self) -> (T, BypassAudit) {
        let audit = self.audit();
        (self.payload, audit)
    }
}

/// Gates, then the caller's commit.
pub struct Pipeline<Ctx> {
    gates: GateSet<Ctx>,
}

impl<Ctx> Pipeline<Ctx> {
    /// A pipeline over `gates`.
    pub fn new(gates: GateSet<Ctx>) -> Self {
        Self { gates }
    }

    /// The pipeline's gates.
    pub fn gates(&self) -> &GateSet<Ctx> {
        &self.gates
    }

    /// Runs the gates fail-fast ([`GateSet::evaluate`]).
    ///
    /// # Errors
    /// The first [`Denial`].
    pub fn evaluate<T>(&self, ctx: &Ctx, proposal: Proposal<T>) -> Result<Receipt<T>, Denial> {
        self.gates.evaluate(ctx, proposal)
    }

    /// Runs the gates fail-fast and returns the trace too ([`GateSet::evaluate_traced`]).
    pub fn evaluate_traced<T>(
        &self,
        ctx: &Ctx,
        proposal: Proposal<T>,
    ) -> (Result<Receipt<T>, Denial>, DecisionTrace) {
        self.gates.evaluate_traced(ctx, proposal)
    }

    /// Consumes a receipt and persists its payload through `write`, which returns what it
    /// wrote. The pipeline does no I/O itself.
    ///
    /// # Errors
    /// Whatever `write` returns; the receipt is consumed either way.
    pub fn commit<T, E>(
        &self,
        receipt: Receipt<T>,
        write: impl FnOnce(&T) -> Result<CommitMetadata, E>,
    ) -> Result<Committed<T>, E> {
        let (payload, gates_passed) = receipt.into_parts();
        let metadata = write(&payload)?;
        Ok(Committed {
            payload,
            metadata,
            gates_passed,
            bypass_audit: None,
        })
    }

    /// Skips the gates for `reason` without a pipeline at hand (upstream's associated
    /// function: `Pipeline::<Ctx>::bypass(proposal, &REASON)`). The audit names the reason,
    /// justification and approver; it cannot name the gates (`gates_skipped` is `None`): use
    /// [`Pipeline::skip_gates`] on the pipeline whose gates are skipped to record them.
    ///
    /// ```
    /// use batpak::prelude::*;
    ///
    /// struct Migration;
    /// impl BypassReason for Migration {
    ///     fn name(&self) -> &'static str { "migration" }
    ///     fn justification(&self) -> &'static str { "legacy import" }
    /// }
    /// static REASON: Migration = Migration;
    ///
    /// let bypass = Pipeline::<()>::bypass(Proposal::new(5u64), &REASON);
    /// assert_eq!(bypass.gates_skipped(), None);
    /// let committed = Pipeline::<()>::commit_bypass(bypass, |p: &u64| {
    ///     CommitMetadata::new(1, *p, [0; 32])
    /// })?;
    /// assert_eq!(committed.bypass_audit().map(|a| a.reason.as_str()), Some("migration"));
    /// # Ok::<(), StoreError>(())
    /// ```
    pub fn bypass<T>(proposal: Proposal<T>, reason: &'static dyn BypassReason) -> BypassReceipt<T> {
        BypassReceipt {
            payload: proposal.into_payload(),
            reason: reason.name(),
            justification: reason.justification(),
            approved_by: reason.approved_by().map(str::to_string),
            gates_skipped: None,
        }
    }

    /// Skips every gate of this pipeline for `reason`, recording which gates were skipped
    /// (in order) on the receipt and its audit ([`Pipeline::bypass`] without the gate list).
    pub fn skip_gates<T>(
        &self,
        proposal: Proposal<T>,
        reason: &'static dyn BypassReason,
    ) -> BypassReceipt<T> {
        BypassReceipt {
            gates_skipped: Some(self.gates.names()),
            ..Self::bypass(proposal, reason)
        }
    }

    /// Persists a bypassed payload through `write`, keeping the audit record on the result
    /// (upstream's associated function: `Pipeline::<Ctx>::commit_bypass(receipt, write)`).
    ///
    /// # Errors
    /// Whatever `write` returns.
    pub fn commit_bypass<T, E>(
        receipt: BypassReceipt<T>,
        write: impl FnOnce(&T) -> Result<CommitMetadata, E>,
    ) -> Result<Committed<T>, E> {
        let (payload, audit) = receipt.into_parts();
        let metadata = write(&payload)?;
        Ok(Committed {
            payload,
            metadata,
            gates_passed: Vec::new(),
            bypass_audit: Some(audit),
        })
    }
}

impl<Ctx> fmt::Debug for Pipeline<Ctx> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("gates", &self.gates)
            .finish()
    }
}

/// Upstream's module path for the bypass types (`batpak::pipeline::bypass::BypassReason`).
pub mod bypass {
    pub use super::{BypassAudit, BypassReason, BypassReceipt};
}

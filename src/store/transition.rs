//! Recording typestate transitions (`crate::typestate`): each legal transition is one append
//! of its payload, compare-and-swap on the entity clock when the transition says which clock
//! it leaves.

use super::{Open, Store};
use crate::append::{AppendOptions, AppendReceipt};
use crate::coordinate::Coordinate;
use crate::error::StoreError;
use crate::event::EventPayload;
use crate::typestate::{StateMarker, Transition};

impl Store<Open> {
    /// Records `transition`: appends its payload at `coord` under `P::KIND`, as one event.
    /// With [`Transition::with_cas`] the append succeeds only if the entity's clock is still
    /// the one given (else `StoreError::SequenceMismatch`, nothing written), so two callers
    /// that both saw state `From` cannot both move on from it.
    ///
    /// # Errors
    /// As `append_typed_with_options`.
    pub fn apply_transition<From: StateMarker, To: StateMarker, P: EventPayload>(
        &self,
        coord: &Coordinate,
        transition: Transition<From, To, P>,
    ) -> Result<AppendReceipt, StoreError> {
        self.apply_transition_with_options(coord, transition, AppendOptions::new())
    }

    /// [`apply_transition`](Self::apply_transition) with options (idempotency, correlation,
    /// causation, flags). A CAS clock set on the transition takes precedence over `options`'.
    ///
    /// # Errors
    /// As `append_typed_with_options`.
    pub fn apply_transition_with_options<From: StateMarker, To: StateMarker, P: EventPayload>(
        &self,
        coord: &Coordinate,
        transition: Transition<From, To, P>,
        options: AppendOptions,
    ) -> Result<AppendReceipt, StoreError> {
        let options = match transition.expected_clock() {
            Some(clock) => options.with_cas(clock),
            None => options,
        };
        self.append_typed_with_options(coord, &transition.into_payload(), options)
    }
}

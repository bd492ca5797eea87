//! Typestate transitions: a state machine whose illegal transitions do not compile, and whose
//! legal ones are each one event.
//!
//! [`define_state_machine!`](crate::define_state_machine) declares a sealed trait and one
//! zero-sized type per state; [`define_typestate!`](crate::define_typestate) declares a wrapper
//! `Name<S>` whose state is part of its type. Legal transitions are methods written on the
//! states they leave (`impl Door<Open> { fn close(self) -> (Door<Closed>, Transition<..>) }`),
//! so calling one from another state is a compile error, and each returns a [`Transition`]
//! carrying the event payload that records it. `Store::apply_transition` appends that payload
//! under its kind; with [`Transition::with_cas`] the append is compare-and-swap on the entity's
//! clock, so a transition decided on a stale view of the entity is refused
//! (`StoreError::SequenceMismatch`) instead of being recorded after someone else's.
//!
//! ```
//! use batpak::prelude::*;
//! use batpak::typestate::Transition;
//!
//! batpak::define_state_machine!(light_seal, LightState { On, Off });
//! batpak::define_typestate!(Light<S: LightState> { room: String });
//!
//! #[derive(serde::Serialize, serde::Deserialize, EventPayload)]
//! #[batpak(category = 2, type_id = 0x10)]
//! struct SwitchedOff { room: String }
//!
//! impl Light<On> {
//!     fn switch_off(self) -> (Light<Off>, Transition<On, Off, SwitchedOff>) {
//!         let (room,) = self.into_data();
//!         (Light::new(room.clone()), Transition::from_payload(SwitchedOff { room }))
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(StoreConfig::new(dir.path()))?;
//! let coord = Coordinate::new("light:hall", "house")?;
//! let (light, t) = Light::<On>::new("hall".into()).switch_off();
//! let receipt = store.apply_transition(&coord, t.with_cas(0))?;
//! assert_eq!(store.entry(receipt.event_id).map(|e| e.kind), Some(SwitchedOff::KIND));
//! assert_eq!(light.room(), "hall");
//! # store.close()?; Ok(()) }
//! ```
//!
//! An illegal transition does not compile: `Light<Off>` has no `switch_off`.
//!
//! ```compile_fail
//! use batpak::prelude::*;
//! use batpak::typestate::Transition;
//!
//! batpak::define_state_machine!(light_seal, LightState { On, Off });
//! batpak::define_typestate!(Light<S: LightState> { room: String });
//!
//! #[derive(serde::Serialize, serde::Deserialize, EventPayload)]
//! #[batpak(category = 2, type_id = 0x10)]
//! struct SwitchedOff { room: String }
//!
//! impl Light<On> {
//!     fn switch_off(self) -> (Light<Off>, Transition<On, Off, SwitchedOff>) {
//!         let (room,) = self.into_data();
//!         (Light::new(room.clone()), Transition::from_payload(SwitchedOff { room }))
//!     }
//! }
//!
//! let off = Light::<Off>::new("hall".into());
//! let _ = off.switch_off();
//! ```
//!
//! Nor can a transition claim endpoints it was not declared with, or use a type that is not a
//! declared state:
//!
//! ```compile_fail
//! use batpak::prelude::*;
//! use batpak::typestate::Transition;
//! #[derive(serde::Serialize, serde::Deserialize, EventPayload)]
//! #[batpak(category = 2, type_id = 0x11)]
//! struct Nothing;
//! struct NotAState;
//! let _ = Transition::<NotAState, NotAState, Nothing>::from_payload(Nothing);
//! ```

use crate::event::{EventKind, EventPayload};
use std::marker::PhantomData;

/// Seals [`StateMarker`]: only types declared by `define_state_machine!` are states. Not
/// public API (the macro's output names it).
#[doc(hidden)]
pub mod sealed {
    /// The seal.
    pub trait Sealed {}
}

/// A state of a machine declared with [`define_state_machine!`](crate::define_state_machine).
pub trait StateMarker: sealed::Sealed {}

/// A legal move from state `From` to state `To`, recorded as the event payload `P`.
///
/// Build it with [`Transition::from_payload`] inside the method that performs the move, and
/// persist it with `Store::apply_transition`.
#[must_use = "a transition is recorded only when passed to Store::apply_transition"]
pub struct Transition<From: StateMarker, To: StateMarker, P: EventPayload> {
    payload: P,
    expected_clock: Option<u32>,
    _states: PhantomData<(From, To)>,
}

impl<From: StateMarker, To: StateMarker, P: EventPayload> Transition<From, To, P> {
    /// The transition recorded by `payload` (stored under `P::KIND`).
    pub fn from_payload(payload: P) -> Self {
        Self {
            payload,
            expected_clock: None,
            _states: PhantomData,
        }
    }

    /// Records the transition only if the entity's clock (its number of events) is still
    /// `clock`, the clock of the state this transition leaves (0 for an entity with no events;
    /// a receipt's `clock` after it). Otherwise `apply_transition` fails with
    /// `StoreError::SequenceMismatch` and writes nothing.
    pub fn with_cas(mut self, clock: u32) -> Self {
        self.expected_clock = Some(clock);
        self
    }

    /// The clock set by [`with_cas`](Self::with_cas).
    pub fn expected_clock(&self) -> Option<u32> {
        self.expected_clock
    }

    /// The kind the transition is stored under.
    pub fn kind(&self) -> EventKind {
        P::KIND
    }

    /// The payload.
    pub fn payload(&self) -> &P {
        &self.payload
    }

    /// The payload, consuming the transition.
    pub fn into_payload(self) -> P {
        self.payload
    }
}

impl<From: StateMarker, To: StateMarker, P: EventPayload + std::fmt::Debug> std::fmt::Debug
    for Transition<From, To, P>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transition")
            .field("from", &std::any::type_name::<From>())
            .field("to", &std::any::type_name::<To>())
            .field("kind", &P::KIND)
            .field("expected_clock", &self.expected_clock)
            .field("payload", &self.payload)
            .finish()
    }
}

/// Declares a state machine's states: a sealed trait `$trait` (no type outside the list can
/// implement it) and one zero-sized `pub struct` per state, each a
/// [`StateMarker`](crate::typestate::StateMarker). `$seal` names the private module holding the
/// seal.
///
/// ```
/// batpak::define_state_machine!(door_seal, DoorState { Open, Closed, Locked });
/// fn name<S: DoorState>(_: S) -> &'static str { std::any::type_name::<S>() }
/// assert!(name(Locked).ends_with("Locked"));
/// ```
#[macro_export]
macro_rules! define_state_machine {
    ($seal:ident, $trait:ident { $($state:ident),+ $(,)? }) => {
        mod $seal {
            pub trait Sealed {}
        }

        /// The states of this machine (sealed: only the declared states implement it).
        pub trait $trait: $seal::Sealed + $crate::typestate::StateMarker {}

        $(
            /// A state (zero-sized).
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
            pub struct $state;

            impl $seal::Sealed for $state {}
            impl $crate::typestate::sealed::Sealed for $state {}
            impl $crate::typestate::StateMarker for $state {}
            impl $trait for $state {}
        )+
    };
}

/// Declares a typestate wrapper `$name<S: $bound>` holding the listed fields and the state as
/// a type parameter (`PhantomData<S>`, no runtime cost). It gets `new(fields..)`, one getter
/// per field, `data()` (a tuple of references) and `into_data()` (the fields as a tuple), so a
/// transition method can move the data into the next state's wrapper.
///
/// ```
/// batpak::define_state_machine!(job_seal, JobState { Queued, Running });
/// batpak::define_typestate!(Job<S: JobState> { id: u64, owner: String });
/// let job = Job::<Queued>::new(7, "ada".into());
/// assert_eq!((*job.id(), job.owner().as_str()), (7, "ada"));
/// let (id, owner) = job.into_data();
/// let running = Job::<Running>::new(id, owner);
/// assert_eq!(running.data(), (&7, &"ada".to_string()));
/// ```
#[macro_export]
macro_rules! define_typestate {
    ($name:ident<$param:ident: $bound:ident> { $($field:ident: $ty:ty),* $(,)? }) => {
        /// A value whose state is part of its type.
        pub struct $name<$param: $bound> {
            $( $field: $ty, )*
            _state: ::core::marker::PhantomData<$param>,
        }

        #[allow(dead_code)]
        impl<$param: $bound> $name<$param> {
            /// A value in state `S`.
            #[allow(clippy::new_without_default)]
            pub fn new($($field: $ty),*) -> Self {
                Self { $($field,)* _state: ::core::marker::PhantomData }
            }

            $(
                /// The field.
                pub fn $field(&self) -> &$ty {
                    &self.$field
                }
            )*

            /// References to the fields, in declaration order.
            pub fn data(&self) -> ($(&$ty,)*) {
                ($(&self.$field,)*)
            }

            /// The fields, in declaration order, leaving the state behind.
            pub fn into_data(self) -> ($($ty,)*) {
                ($(self.$field,)*)
            }
        }
    };
}

/// Upstream's module path for the transition types
/// (`batpak::typestate::transition::{StateMarker, Transition}`, `transition::sealed::Sealed`).
pub mod transition {
    pub use super::sealed;
    pub use super::{StateMarker, Transition};
}

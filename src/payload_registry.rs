//! The binary-wide registry of payload kinds: every `#[derive(EventPayload)]` submits its
//! type's [`EventKind`] at link time (through the `inventory` crate), so two types that claim
//! one kind are found at startup, even when they live in different crates that never see each
//! other. Without it the clash shows up only at run time, and only in a process that happens to
//! touch both types (`StoreError::DuplicateEventKind`); after a restart that touches only one,
//! it is not found at all and the other type's events decode as the wrong type.
//!
//! Hand-written `impl EventPayload` blocks are not registered (there is no link-time hook in a
//! plain impl); `Store::register_payload` checks those
//! per store.

use crate::event_types::EventKind;
use crate::sync::process::{AtomicBool, Ordering};
use std::collections::BTreeMap;
use std::fmt;

/// One derived payload type, as the derive submits it. Not public API (the derive's output
/// names it through `batpak::__private`).
#[doc(hidden)]
#[derive(Debug)]
pub struct EventPayloadRegistration {
    /// The kind the type claims, raw.
    pub kind: EventKind,
    /// `module_path!()` where the type is declared (its first segment is the crate).
    pub module_path: &'static str,
    /// The type's name.
    pub type_name: &'static str,
    /// The declaring crate's version (`CARGO_PKG_VERSION`), when built by cargo: two versions
    /// of one crate linked together claim their kinds twice.
    pub crate_version: Option<&'static str>,
}

inventory::collect!(EventPayloadRegistration);

impl EventPayloadRegistration {
    /// `module::path::Type (crate vX.Y.Z)`.
    fn describe(&self) -> &'static str {
        // Leaked once per colliding registration: a registry error is rare and the set of
        // registrations is fixed at link time, so this stays bounded.
        let text = match self.crate_version {
            Some(v) => format!(
                "{}::{} ({} v{v})",
                self.module_path,
                self.type_name,
                self.crate_name()
            ),
            None => format!("{}::{}", self.module_path, self.type_name),
        };
        Box::leak(text.into_boxed_str())
    }

    fn crate_name(&self) -> &'static str {
        self.module_path
            .split("::")
            .next()
            .unwrap_or(self.module_path)
    }
}

/// How `Store::open` treats two linked payload types that claim one [`EventKind`]
/// (`StoreConfig::with_event_payload_validation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EventPayloadValidation {
    /// Log one `tracing` warning per process naming the clash, and open anyway (the default).
    #[default]
    Warn,
    /// Refuse to open: `StoreError::EventPayloadRegistry`.
    FailFast,
    /// Do not look.
    Silent,
}

/// Two linked payload types claiming one kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPayloadKindCollision {
    /// The kind's category (high 4 bits).
    pub category: u8,
    /// The kind's type id (low 12 bits).
    pub type_id: u16,
    /// The first type: `crate::module::Type (crate vX.Y.Z)`.
    pub first_type_name: &'static str,
    /// The other type, in the same form.
    pub second_type_name: &'static str,
}

impl EventPayloadKindCollision {
    /// The contested kind.
    pub fn kind(&self) -> EventKind {
        EventKind::from_raw(((self.category as u16) << 12) | self.type_id)
    }
}

impl fmt::Display for EventPayloadKindCollision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kind {} (category=0x{:X} type_id=0x{:03X}) is claimed by both `{}` and `{}`",
            self.kind(),
            self.category,
            self.type_id,
            self.first_type_name,
            self.second_type_name
        )
    }
}

/// The payload registry holds at least one kind claimed by two types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPayloadRegistryError {
    collisions: Vec<EventPayloadKindCollision>,
}

impl EventPayloadRegistryError {
    /// An error listing `collisions` (tools that find clashes themselves, and tests).
    pub fn new(collisions: Vec<EventPayloadKindCollision>) -> Self {
        Self { collisions }
    }

    /// Every clash, ordered by kind; a kind claimed by `n` types gives `n - 1` entries, each
    /// pairing the first claimant with another.
    pub fn collisions(&self) -> &[EventPayloadKindCollision] {
        &self.collisions
    }
}

impl fmt::Display for EventPayloadRegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} duplicate kind assignment(s) among the EventPayload types linked into this binary",
            self.collisions.len()
        )?;
        for c in &self.collisions {
            write!(f, "; {c}")?;
        }
        write!(
            f,
            "; give each type its own #[batpak(category = .., type_id = ..)]"
        )
    }
}

impl std::error::Error for EventPayloadRegistryError {}

/// Looks for two `#[derive(EventPayload)]` types, anywhere in the binary, that claim the same
/// [`EventKind`]. Call it once at startup, after every payload crate is linked; `Store::open`
/// also does (see [`EventPayloadValidation`]).
///
/// ```
/// use batpak::prelude::*;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// validate_event_payload_registry()?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`EventPayloadRegistryError`] naming, for each contested kind, both types with their module
/// paths, crates and crate versions.
pub fn validate_event_payload_registry() -> Result<(), EventPayloadRegistryError> {
    scan(inventory::iter::<EventPayloadRegistration>.into_iter())
}

/// Scans again and resets the once-per-process warning, so the next `Store::open` under
/// [`EventPayloadValidation::Warn`] logs again (for tests and tooling; the registry itself is
/// fixed at link time).
///
/// # Errors
/// As [`validate_event_payload_registry`].
pub fn revalidate_event_payload_registry() -> Result<(), EventPayloadRegistryError> {
    let result = validate_event_payload_registry();
    WARNED.store(false, Ordering::SeqCst);
    result
}

static WARNED: AtomicBool = AtomicBool::new(false);

/// The check `Store::open` runs. The scan is a sort of the linked registrations (a few
/// hundred at most), cheap next to recovery, so it runs at every open instead of being cached.
pub(crate) fn check_at_open(mode: EventPayloadValidation) -> Result<(), EventPayloadRegistryError> {
    if mode == EventPayloadValidation::Silent {
        return Ok(());
    }
    match (mode, validate_event_payload_registry()) {
        (_, Ok(())) => Ok(()),
        (EventPayloadValidation::FailFast, Err(e)) => {
            tracing::error!(error = %e, "payload registry: refusing to open");
            Err(e)
        }
        (_, Err(e)) => {
            if !WARNED.swap(true, Ordering::SeqCst) {
                tracing::warn!(
                    error = %e,
                    "payload registry: duplicate kinds linked; opening anyway (EventPayloadValidation::FailFast refuses)"
                );
            }
            Ok(())
        }
    }
}

fn scan<'a>(
    regs: impl Iterator<Item = &'a EventPayloadRegistration>,
) -> Result<(), EventPayloadRegistryError> {
    let mut by_kind: BTreeMap<u16, Vec<&EventPayloadRegistration>> = BTreeMap::new();
    for r in regs {
        by_kind.entry(r.kind.as_raw()).or_default().push(r);
    }
    let mut collisions = Vec::new();
    for (raw, mut claimants) in by_kind {
        if claimants.len() < 2 {
            continue;
        }
        // Link order is not stable across builds; order the names so the report is.
        claimants.sort_by_key(|r| (r.module_path, r.type_name, r.crate_version));
        let first = claimants[0].describe();
        let kind = EventKind::from_raw(raw);
        for other in &claimants[1..] {
            collisions.push(EventPayloadKindCollision {
                category: kind.category(),
                type_id: kind.type_id(),
                first_type_name: first,
                second_type_name: other.describe(),
            });
        }
    }
    if collisions.is_empty() {
        Ok(())
    } else {
        Err(EventPayloadRegistryError { collisions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(
        raw: u16,
        module_path: &'static str,
        type_name: &'static str,
    ) -> EventPayloadRegistration {
        EventPayloadRegistration {
            kind: EventKind::from_raw(raw),
            module_path,
            type_name,
            crate_version: Some("1.2.3"),
        }
    }

    #[test]
    fn distinct_kinds_pass() {
        let regs = [reg(0x1001, "a", "A"), reg(0x1002, "b", "B")];
        assert_eq!(scan(regs.iter()), Ok(()));
    }

    #[test]
    fn a_shared_kind_names_both_types_and_crates() {
        let regs = [
            reg(0xF120, "billing::events", "Paid"),
            reg(0x1001, "a", "A"),
            reg(0xF120, "shipping::model", "Shipped"),
        ];
        let err = scan(regs.iter()).unwrap_err();
        assert_eq!(err.collisions().len(), 1);
        let c = &err.collisions()[0];
        assert_eq!((c.category, c.type_id), (0xF, 0x120));
        assert_eq!(c.kind(), EventKind::from_raw(0xF120));
        assert_eq!(c.first_type_name, "billing::events::Paid (billing v1.2.3)");
        assert_eq!(
            c.second_type_name,
            "shipping::model::Shipped (shipping v1.2.3)"
        );
        let text = err.to_string();
        assert!(text.contains("billing::events::Paid"), "{text}");
        assert!(text.contains("shipping::model::Shipped"), "{text}");
    }

    #[test]
    fn three_claimants_give_two_collisions() {
        let regs = [
            reg(0x2002, "c", "C"),
            reg(0x2002, "a", "A"),
            reg(0x2002, "b", "B"),
        ];
        let err = scan(regs.iter()).unwrap_err();
        let pairs: Vec<_> = err
            .collisions()
            .iter()
            .map(|c| (c.first_type_name, c.second_type_name))
            .collect();
        assert_eq!(pairs.len(), 2);
        assert!(pairs[0].0.starts_with("a::A"));
        assert!(pairs[0].1.starts_with("b::B"));
        assert!(pairs[1].1.starts_with("c::C"));
    }
}

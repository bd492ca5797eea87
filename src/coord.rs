//! Coordinates: where an event is appended (an entity within a scope), and upstream's
//! `DagPosition`. Public through the `coordinate` facade, which adds the region types under
//! upstream's paths; this module sits below `event` and `region`, which import it (and names
//! neither, nor the facade: see tests/layers.rs).
use crate::sync::StdArc;
pub use position::DagPosition;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Maximum length in bytes of an entity or a scope.
pub const COORDINATE_PART_MAX_BYTES: usize = 1024;

/// Where an event is appended: an entity (whose events form one chain) within a scope.
///
/// Cloning is cheap: both parts live in one shared immutable string (one reference-count
/// increment, no allocation), so every query result can carry its coordinate. Equality,
/// order and hashing are those of the pair (entity, scope).
#[derive(Clone)]
pub struct Coordinate {
    // `StdArc` (std's `Arc` through the sync shim): the parts are an immutable value, shared
    // for speed, never a synchronisation point, so they stay outside the concurrency models.
    // `joined` is the entity followed by the scope; the entity is its first `split` bytes.
    joined: StdArc<str>,
    split: usize,
}

impl PartialEq for Coordinate {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for Coordinate {}

impl PartialOrd for Coordinate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Coordinate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parts().cmp(&other.parts())
    }
}

impl std::hash::Hash for Coordinate {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}

/// Upstream's name for [`COORDINATE_PART_MAX_BYTES`].
pub const MAX_COORDINATE_COMPONENT_LEN: usize = COORDINATE_PART_MAX_BYTES;

/// Why a [`Coordinate`] was refused (upstream's variants). The checks run on the entity, then
/// the scope; the first failure is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoordinateError {
    /// The entity is empty.
    EmptyEntity,
    /// The scope is empty.
    EmptyScope,
    /// The entity is longer than [`COORDINATE_PART_MAX_BYTES`].
    EntityTooLong {
        /// Its length in bytes.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The scope is longer than [`COORDINATE_PART_MAX_BYTES`].
    ScopeTooLong {
        /// Its length in bytes.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The entity or scope contains a NUL byte.
    NulByte,
    /// The entity or scope contains an ASCII control character other than NUL (`0x01`-`0x1F`,
    /// `0x7F`).
    ControlChar,
    /// The entity or scope contains `/` or `..` (they must be usable in paths and keys).
    PathTraversal,
}

impl fmt::Display for CoordinateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyEntity => write!(f, "coordinate entity is empty"),
            Self::EmptyScope => write!(f, "coordinate scope is empty"),
            Self::EntityTooLong { len, max } => write!(
                f,
                "coordinate entity is {len} bytes, more than the maximum {max}"
            ),
            Self::ScopeTooLong { len, max } => write!(
                f,
                "coordinate scope is {len} bytes, more than the maximum {max}"
            ),
            Self::NulByte => write!(f, "coordinate entity or scope contains a NUL byte"),
            Self::ControlChar => write!(
                f,
                "coordinate entity or scope contains an ASCII control character"
            ),
            Self::PathTraversal => {
                write!(f, "coordinate entity or scope contains '/' or '..'")
            }
        }
    }
}

impl std::error::Error for CoordinateError {}

/// Checks one part: `empty` and `too_long` are the part's own errors.
fn validate(
    s: &str,
    empty: CoordinateError,
    too_long: fn(usize) -> CoordinateError,
) -> Result<(), CoordinateError> {
    if s.is_empty() {
        return Err(empty);
    }
    if s.len() > COORDINATE_PART_MAX_BYTES {
        return Err(too_long(s.len()));
    }
    for c in s.chars() {
        match c {
            '\0' => return Err(CoordinateError::NulByte),
            '/' => return Err(CoordinateError::PathTraversal),
            c if c.is_ascii_control() => return Err(CoordinateError::ControlChar),
            _ => {}
        }
    }
    if s.contains("..") {
        return Err(CoordinateError::PathTraversal);
    }
    Ok(())
}

fn validate_parts(entity: &str, scope: &str) -> Result<(), CoordinateError> {
    validate(entity, CoordinateError::EmptyEntity, |len| {
        CoordinateError::EntityTooLong {
            len,
            max: COORDINATE_PART_MAX_BYTES,
        }
    })?;
    validate(scope, CoordinateError::EmptyScope, |len| {
        CoordinateError::ScopeTooLong {
            len,
            max: COORDINATE_PART_MAX_BYTES,
        }
    })
}

impl Coordinate {
    /// Builds a coordinate, validating both parts: not empty, at most 1024 bytes, no NUL,
    /// no ASCII control character, no `/`, no `..`.
    pub fn new(entity: impl AsRef<str>, scope: impl AsRef<str>) -> Result<Self, CoordinateError> {
        let (entity, scope) = (entity.as_ref(), scope.as_ref());
        validate_parts(entity, scope)?;
        Ok(Self {
            joined: StdArc::from([entity, scope].concat()),
            split: entity.len(),
        })
    }

    /// Checks the coordinate again with [`Coordinate::new`]'s rules (always `Ok` for a value
    /// of this type: every way to make one, deserialization included, goes through them).
    pub fn validate(&self) -> Result<(), CoordinateError> {
        validate_parts(self.entity(), self.scope())
    }

    /// The entity.
    pub fn entity(&self) -> &str {
        self.joined.get(..self.split).unwrap_or_default()
    }

    /// The scope.
    pub fn scope(&self) -> &str {
        self.joined.get(self.split..).unwrap_or_default()
    }

    fn parts(&self) -> (&str, &str) {
        (self.entity(), self.scope())
    }
}

impl fmt::Display for Coordinate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.entity(), self.scope())
    }
}

impl fmt::Debug for Coordinate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Coordinate({self})")
    }
}

/// Written by hand (not derived) to keep the encoding independent of the parts' storage:
/// a struct `Coordinate` of the two strings, `entity` then `scope`, exactly what the derive
/// over `Box<str>` parts wrote before (the on-disk format and JSON are unchanged).
impl Serialize for Coordinate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Coordinate", 2)?;
        st.serialize_field("entity", self.entity())?;
        st.serialize_field("scope", self.scope())?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for Coordinate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            entity: String,
            scope: String,
        }
        let raw = Raw::deserialize(d)?;
        Coordinate::new(raw.entity, raw.scope).map_err(serde::de::Error::custom)
    }
}

/// Upstream's DAG position value (upstream's path: `coordinate::position::DagPosition`).
pub mod position {
    use serde::{Deserialize, Serialize};
    use std::cmp::Ordering;
    use std::fmt;

    /// A point in upstream's event DAG: a depth and a lane (a branch), the sequence within
    /// them, and a hybrid-clock stamp (`wall_ms`, `counter`). Positions compare only within
    /// one depth and lane.
    ///
    /// This crate's events form one chain per entity and carry `EventPosition` (`wall_ms`
    /// and the entity clock); the
    /// value type is offered for code that builds or compares upstream positions, and
    /// `DagPosition::from(event_position)` gives the event's place as depth 0, lane 0,
    /// sequence = its entity clock.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub struct DagPosition {
        wall_ms: u64,
        counter: u16,
        depth: u32,
        lane: u32,
        sequence: u32,
    }

    impl DagPosition {
        /// `sequence` at `depth` / `lane`, without a clock stamp.
        pub const fn new(depth: u32, lane: u32, sequence: u32) -> Self {
            Self::with_hlc(0, 0, depth, lane, sequence)
        }

        /// Every field given.
        pub const fn with_hlc(
            wall_ms: u64,
            counter: u16,
            depth: u32,
            lane: u32,
            sequence: u32,
        ) -> Self {
            Self {
                wall_ms,
                counter,
                depth,
                lane,
                sequence,
            }
        }

        /// Depth 0, lane 0, sequence 0, no stamp.
        pub const fn root() -> Self {
            Self::new(0, 0, 0)
        }

        /// `sequence` on the root lane.
        pub const fn child(sequence: u32) -> Self {
            Self::new(0, 0, sequence)
        }

        /// `sequence` on the root lane, stamped `wall_ms` / `counter`.
        pub const fn child_at(sequence: u32, wall_ms: u64, counter: u16) -> Self {
            Self::with_hlc(wall_ms, counter, 0, 0, sequence)
        }

        /// The first position of lane `new_lane` one level below `parent_depth` (saturating).
        pub const fn fork(parent_depth: u32, new_lane: u32) -> Self {
            Self::new(parent_depth.saturating_add(1), new_lane, 0)
        }

        /// Milliseconds of the stamp.
        pub const fn wall_ms(&self) -> u64 {
            self.wall_ms
        }

        /// Tie-break counter of the stamp.
        pub const fn counter(&self) -> u16 {
            self.counter
        }

        /// Depth in the DAG.
        pub const fn depth(&self) -> u32 {
            self.depth
        }

        /// Lane (branch).
        pub const fn lane(&self) -> u32 {
            self.lane
        }

        /// Sequence within the depth and lane.
        pub const fn sequence(&self) -> u32 {
            self.sequence
        }

        /// Whether this is the root position (the stamp aside).
        pub const fn is_root(&self) -> bool {
            self.depth == 0 && self.lane == 0 && self.sequence == 0
        }

        /// Whether this position comes strictly before `other` on the same depth and lane.
        pub const fn is_ancestor_of(&self, other: &DagPosition) -> bool {
            self.depth == other.depth && self.lane == other.lane && self.sequence < other.sequence
        }
    }

    impl PartialOrd for DagPosition {
        /// By sequence within one depth and lane (upstream's order): `None` across depths or
        /// lanes, and `None` for one sequence with two different stamps (they are not the
        /// same position, and neither comes first).
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            if (self.depth, self.lane) != (other.depth, other.lane) {
                return None;
            }
            match self.sequence.cmp(&other.sequence) {
                Ordering::Equal => (self.wall_ms == other.wall_ms && self.counter == other.counter)
                    .then_some(Ordering::Equal),
                order => Some(order),
            }
        }
    }

    impl fmt::Display for DagPosition {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "{}:{}:{}@{}.{}",
                self.depth, self.lane, self.sequence, self.wall_ms, self.counter
            )
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn ancestry_and_order_hold_within_a_lane_only() {
            let (a, b) = (DagPosition::child_at(5, 1000, 0), DagPosition::child(10));
            assert!(a.is_ancestor_of(&b) && !b.is_ancestor_of(&a) && !a.is_ancestor_of(&a));
            assert!(a < b);
            let forked = DagPosition::fork(2, 9);
            assert_eq!(
                (forked.depth(), forked.lane(), forked.sequence()),
                (3, 9, 0)
            );
            assert!(!a.is_ancestor_of(&forked));
            assert_eq!(a.partial_cmp(&forked), None);
            assert!(DagPosition::root().is_root() && !a.is_root());
            assert_eq!(DagPosition::fork(u32::MAX, 1).depth(), u32::MAX);
            let p = DagPosition::with_hlc(7, 2, 1, 3, 4);
            assert_eq!(p.to_string(), "1:3:4@7.2");
            let bytes = rmp_serde::to_vec_named(&p).unwrap();
            assert_eq!(rmp_serde::from_slice::<DagPosition>(&bytes).unwrap(), p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_coordinates_are_refused() {
        use CoordinateError as E;
        let refused = |entity: &str, scope: &str| Coordinate::new(entity, scope).err();
        assert!(matches!(refused("", "s"), Some(E::EmptyEntity)));
        assert!(matches!(refused("e", ""), Some(E::EmptyScope)));
        assert!(matches!(refused("a/b", "s"), Some(E::PathTraversal)));
        assert!(matches!(refused("a..b", "s"), Some(E::PathTraversal)));
        assert!(matches!(refused("a\0", "s"), Some(E::NulByte)));
        assert!(matches!(refused("a\n", "s"), Some(E::ControlChar)));
        let long = "x".repeat(1025);
        assert!(matches!(
            refused(&long, "s"),
            Some(E::EntityTooLong {
                len: 1025,
                max: 1024
            })
        ));
        assert!(Coordinate::new("x".repeat(1024), "s").is_ok());
    }

    #[test]
    fn deserializing_revalidates() {
        let bad = r#"{"entity":"a/b","scope":"s"}"#;
        assert!(serde_json::from_str::<Coordinate>(bad).is_err());
        let good = r#"{"entity":"a","scope":"s"}"#;
        let c: Coordinate = serde_json::from_str(good).unwrap();
        assert_eq!(c.to_string(), "a@s");
    }

    /// The hand-written `Serialize` writes what the derive over plain string parts wrote:
    /// the same JSON and the same named and compact MessagePack bytes.
    #[test]
    fn encoding_matches_a_plain_struct_of_two_strings() {
        #[derive(Serialize)]
        #[serde(rename = "Coordinate")]
        struct Plain<'a> {
            entity: &'a str,
            scope: &'a str,
        }
        let c = Coordinate::new("order-7", "shop").unwrap();
        let plain = Plain {
            entity: "order-7",
            scope: "shop",
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"entity":"order-7","scope":"shop"}"#
        );
        assert_eq!(
            rmp_serde::to_vec_named(&c).unwrap(),
            rmp_serde::to_vec_named(&plain).unwrap()
        );
        assert_eq!(
            rmp_serde::to_vec(&c).unwrap(),
            rmp_serde::to_vec(&plain).unwrap()
        );
        let back: Coordinate =
            rmp_serde::from_slice(&rmp_serde::to_vec_named(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        // A clone shares the parts instead of copying them.
        let d = c.clone();
        assert!(std::ptr::eq(c.entity(), d.entity()) && std::ptr::eq(c.scope(), d.scope()));
        // Equality and order are the pair's, not the joined string's.
        let (ab_c, a_bc) = (
            Coordinate::new("ab", "c").unwrap(),
            Coordinate::new("a", "bc").unwrap(),
        );
        assert_ne!(ab_c, a_bc);
        assert!(a_bc < ab_c);
        assert_eq!((ab_c.entity(), ab_c.scope()), ("ab", "c"));
    }
}

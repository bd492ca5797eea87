//! Coordinates: where an event is appended (an entity within a scope).
//!
//! [`Region`] and [`KindFilter`] (what a query selects) live in [`crate::region`]; they are
//! re-exported here because upstream's path is `batpak::coordinate::Region`.

pub use crate::region::{KindFilter, Region};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Maximum length in bytes of an entity or a scope.
pub const COORDINATE_PART_MAX_BYTES: usize = 1024;

/// Where an event is appended: an entity (whose events form one chain) within a scope.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Coordinate {
    entity: Box<str>,
    scope: Box<str>,
}

/// Why a [`Coordinate`] was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinateError {
    /// The entity or scope is empty.
    Empty {
        /// "entity" or "scope".
        part: &'static str,
    },
    /// The part is longer than [`COORDINATE_PART_MAX_BYTES`].
    TooLong {
        /// "entity" or "scope".
        part: &'static str,
        /// Its length.
        len: usize,
    },
    /// The part contains a forbidden character or sequence.
    Forbidden {
        /// "entity" or "scope".
        part: &'static str,
        /// What was found.
        what: &'static str,
        /// Byte offset where it was found.
        offset: usize,
    },
}

impl fmt::Display for CoordinateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty { part } => write!(f, "coordinate {part} is empty"),
            Self::TooLong { part, len } => write!(
                f,
                "coordinate {part} is {len} bytes, more than the maximum {COORDINATE_PART_MAX_BYTES}"
            ),
            Self::Forbidden { part, what, offset } => {
                write!(f, "coordinate {part} contains {what} at byte {offset}")
            }
        }
    }
}

impl std::error::Error for CoordinateError {}

fn validate(part: &'static str, s: &str) -> Result<(), CoordinateError> {
    if s.is_empty() {
        return Err(CoordinateError::Empty { part });
    }
    if s.len() > COORDINATE_PART_MAX_BYTES {
        return Err(CoordinateError::TooLong { part, len: s.len() });
    }
    for (offset, c) in s.char_indices() {
        let what = match c {
            '\0' => "a NUL byte",
            '/' => "'/'",
            c if c.is_ascii_control() => "an ASCII control character",
            _ => continue,
        };
        return Err(CoordinateError::Forbidden { part, what, offset });
    }
    if let Some(offset) = s.find("..") {
        return Err(CoordinateError::Forbidden {
            part,
            what: "'..'",
            offset,
        });
    }
    Ok(())
}

impl Coordinate {
    /// Builds a coordinate, validating both parts: not empty, at most 1024 bytes, no NUL,
    /// no ASCII control character, no `/`, no `..`.
    pub fn new(entity: impl AsRef<str>, scope: impl AsRef<str>) -> Result<Self, CoordinateError> {
        let (entity, scope) = (entity.as_ref(), scope.as_ref());
        validate("entity", entity)?;
        validate("scope", scope)?;
        Ok(Self {
            entity: entity.into(),
            scope: scope.into(),
        })
    }

    /// The entity.
    pub fn entity(&self) -> &str {
        &self.entity
    }

    /// The scope.
    pub fn scope(&self) -> &str {
        &self.scope
    }
}

impl fmt::Display for Coordinate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.entity, self.scope)
    }
}

impl fmt::Debug for Coordinate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Coordinate({self})")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_coordinates_are_refused() {
        assert!(matches!(
            Coordinate::new("", "s"),
            Err(CoordinateError::Empty { part: "entity" })
        ));
        assert!(matches!(
            Coordinate::new("e", ""),
            Err(CoordinateError::Empty { part: "scope" })
        ));
        assert!(matches!(
            Coordinate::new("a/b", "s"),
            Err(CoordinateError::Forbidden { .. })
        ));
        assert!(matches!(
            Coordinate::new("a..b", "s"),
            Err(CoordinateError::Forbidden { .. })
        ));
        assert!(matches!(
            Coordinate::new("a\0", "s"),
            Err(CoordinateError::Forbidden { .. })
        ));
        assert!(matches!(
            Coordinate::new("a\n", "s"),
            Err(CoordinateError::Forbidden { .. })
        ));
        let long = "x".repeat(1025);
        assert!(matches!(
            Coordinate::new(&long, "s"),
            Err(CoordinateError::TooLong { .. })
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
}

//! Regions: what a query selects (an entity namespace, a scope, kinds, an entity clock range).

use crate::coord::Coordinate;
use crate::event_types::EventKind;

/// Which kinds a region selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KindFilter {
    /// Exactly this kind.
    Exact(EventKind),
    /// Every kind of this category.
    Category(u8),
    /// Any kind.
    #[default]
    Any,
}

impl KindFilter {
    /// Whether `kind` passes the filter.
    pub fn matches(&self, kind: EventKind) -> bool {
        match self {
            KindFilter::Exact(k) => *k == kind,
            KindFilter::Category(c) => kind.category() == *c,
            KindFilter::Any => true,
        }
    }
}

/// A selection of events for `Store::query`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Region {
    /// Entity namespace prefix: matches the entity itself or `prefix:`-children.
    pub entity_prefix: Option<String>,
    /// Exact scope.
    pub scope: Option<String>,
    /// Kind filter.
    pub fact: KindFilter,
    /// Inclusive per-entity clock range.
    pub clock_range: Option<(u32, u32)>,
}

impl Region {
    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Events of entities equal to `prefix` or in its namespace (`prefix:` followed by more).
    pub fn entity(prefix: impl AsRef<str>) -> Self {
        Self {
            entity_prefix: Some(prefix.as_ref().to_owned()),
            ..Self::default()
        }
    }

    /// Events in scope `s`.
    pub fn scope(s: impl AsRef<str>) -> Self {
        Self {
            scope: Some(s.as_ref().to_owned()),
            ..Self::default()
        }
    }

    /// Restricts to scope `s`.
    pub fn with_scope(mut self, s: impl AsRef<str>) -> Self {
        self.scope = Some(s.as_ref().to_owned());
        self
    }

    /// Restricts to kinds passing `filter`.
    pub fn with_fact(mut self, filter: KindFilter) -> Self {
        self.fact = filter;
        self
    }

    /// Restricts to one kind category.
    pub fn with_fact_category(mut self, category: u8) -> Self {
        self.fact = KindFilter::Category(category);
        self
    }

    /// Restricts to per-entity clocks in `lo..=hi`.
    pub fn with_clock_range(mut self, range: (u32, u32)) -> Self {
        self.clock_range = Some(range);
        self
    }

    /// The entity prefix, if the region has one (upstream's accessor for the field).
    pub fn entity_prefix(&self) -> Option<&str> {
        self.entity_prefix.as_deref()
    }

    /// The scope, if the region has one.
    pub fn scope_value(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The kind filter, unless it is [`KindFilter::Any`].
    pub fn fact(&self) -> Option<&KindFilter> {
        match self.fact {
            KindFilter::Any => None,
            _ => Some(&self.fact),
        }
    }

    /// The inclusive per-entity clock range, if the region has one.
    pub fn clock_range(&self) -> Option<(u32, u32)> {
        self.clock_range
    }

    /// Whether an event of `kind` at `entity` / `scope` is selected, leaving the clock range
    /// aside (what a subscriber sees of a notification).
    pub fn matches_event(&self, entity: &str, scope: &str, kind: EventKind) -> bool {
        self.matches_entity(entity)
            && self.scope.as_deref().is_none_or(|s| s == scope)
            && self.fact.matches(kind)
    }

    /// Whether an entity name is selected by the entity prefix.
    pub fn matches_entity(&self, entity: &str) -> bool {
        match &self.entity_prefix {
            None => true,
            Some(p) => {
                entity == p
                    || (entity.len() > p.len()
                        && entity.starts_with(p.as_str())
                        && entity.as_bytes().get(p.len()) == Some(&b':'))
            }
        }
    }

    /// Whether an event at `coord` of `kind` with entity clock `clock` is selected.
    pub fn matches(&self, coord: &Coordinate, kind: EventKind, clock: u32) -> bool {
        self.matches_entity(coord.entity())
            && self.scope.as_deref().is_none_or(|s| s == coord.scope())
            && self.fact.matches(kind)
            && self
                .clock_range
                .is_none_or(|(lo, hi)| lo <= clock && clock <= hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_report_what_the_builders_set() {
        // `&&str` (what iterating a slice of names gives) is accepted as upstream accepts it.
        let r = ["order"].iter().map(Region::entity).next().unwrap();
        let r = r.with_scope(String::from("shop"));
        assert_eq!(r.entity_prefix(), Some("order"));
        assert_eq!(r.scope_value(), Some("shop"));
        assert_eq!(r.fact(), None);
        assert_eq!(r.clock_range(), None);
        let k = EventKind::custom(2, 1);
        let r = r.with_fact(KindFilter::Exact(k)).with_clock_range((1, 2));
        assert_eq!(r.fact(), Some(&KindFilter::Exact(k)));
        assert_eq!(r.clock_range(), Some((1, 2)));
        assert!(r.matches_event("order:1", "shop", k));
        assert!(!r.matches_event("order:1", "shop", EventKind::custom(2, 2)));
        assert!(!r.matches_event("order:1", "shops", k));
        assert!(!r.matches_event("orders", "shop", k));
    }

    #[test]
    fn entity_prefix_is_a_namespace_match() {
        let r = Region::entity("order");
        assert!(r.matches_entity("order"));
        assert!(r.matches_entity("order:1"));
        assert!(!r.matches_entity("orders"));
        assert!(!r.matches_entity("ord"));
    }
}

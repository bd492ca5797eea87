//! `flow` telemetry: every public store call upstream names ends with a `tracing` debug event
//! on the caller's thread carrying upstream's `flow` field (what upstream's
//! `observability_flows` test file looks for), once per call, under the call's own name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use batpak::store::{CompactionConfig, Freshness};
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event as TraceEvent, Metadata, Subscriber};

/// Records the `flow` field (and whether an `error` field came with it) of every event.
#[derive(Clone, Default)]
struct Flows(Arc<Mutex<Vec<(String, bool)>>>);

#[derive(Default)]
struct FlowVisitor {
    flow: Option<String>,
    error: bool,
}

impl Visit for FlowVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "flow" {
            self.flow = Some(value.to_string());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "flow" => self.flow = Some(format!("{value:?}").trim_matches('"').to_string()),
            "error" => self.error = true,
            _ => {}
        }
    }
}

impl Subscriber for Flows {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &TraceEvent<'_>) {
        let mut v = FlowVisitor::default();
        event.record(&mut v);
        if let Some(flow) = v.flow {
            self.0.lock().unwrap().push((flow, v.error));
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Count(u64);

impl EventSourced for Count {
    type Input = JsonValueInput;
    fn apply_event(&mut self, _: &Event<serde_json::Value>) {
        self.0 += 1;
    }
    fn from_events(events: &[Event<serde_json::Value>]) -> Option<Self> {
        let mut s = Self::default();
        events.iter().for_each(|e| s.apply_event(e));
        (!events.is_empty()).then_some(s)
    }
    fn relevant_event_kinds() -> &'static [EventKind] {
        static KINDS: [EventKind; 1] = [EventKind::custom(0xF, 1)];
        &KINDS
    }
}

#[test]
fn each_named_call_reports_its_flow_once_on_the_callers_thread() {
    let flows = Flows::default();
    let seen = Arc::clone(&flows.0);
    tracing::subscriber::with_default(flows, || {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path()).with_lifecycle_events(false)).unwrap();
        let coord = Coordinate::new("flow:1", "scope").unwrap();
        let kind = EventKind::custom(0xF, 1);
        let r = store.append(&coord, kind, &1u8).unwrap();
        store
            .append_with_options(&coord, kind, &2u8, AppendOptions::new())
            .unwrap();
        store
            .append_reaction(&coord, kind, &3u8, r.event_id, r.event_id)
            .unwrap();
        let state: Option<Count> = store.project("flow:1", &Freshness::Consistent).unwrap();
        assert_eq!(state.map(|c| c.0), Some(3));
        store.sync().unwrap();
        let snap = tempfile::tempdir().unwrap();
        store.snapshot(&snap.path().join("copy")).unwrap();
        store.compact(&CompactionConfig::default()).unwrap();
        // A failing call reports its flow with the error.
        let wrong =
            store.append_with_options(&coord, kind, &4u8, AppendOptions::new().with_cas(99));
        assert!(wrong.is_err());
        store.close().unwrap();
    });
    let seen = seen.lock().unwrap().clone();
    let want: Vec<(String, bool)> = [
        ("append", false),
        ("append_with_options", false),
        ("append_reaction", false),
        ("project", false),
        ("sync", false),
        ("snapshot", false),
        ("compact", false),
        ("append_with_options", true),
        ("close", false),
    ]
    .iter()
    .map(|(f, e)| (f.to_string(), *e))
    .collect();
    assert_eq!(seen, want);
}

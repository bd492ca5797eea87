//! The Rust trace event names and the TLA+ action names are the same set (no TLC needed):
//! `batpak::__testing::trace::ACTIONS` equals the actions of `spec/Store.tla`'s `Next`, and the names
//! the code emits (the action argument of every `tla_trace!`, `tla_trace_defer!` and
//! `trace_action!` in `src/`, plus the harness's `ProcessCrash` and `PowerLoss`) are exactly
//! those actions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::__testing::trace::{is_action, ACTIONS};
use batpak_model::trace_check::spec_actions;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The first string literal after each `name!(` in code (comments skipped).
fn emitted(text: &str, macros: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for m in macros {
        let pat = format!("{m}!(");
        for (at, _) in code.match_indices(&pat) {
            let rest = &code[at + pat.len()..];
            let open = rest.find('"').unwrap();
            let close = rest[open + 1..].find('"').unwrap();
            out.insert(rest[open + 1..open + 1 + close].to_owned());
        }
    }
    out
}

#[test]
fn rust_event_names_equal_tla_action_names() {
    let spec = std::fs::read_to_string(root().join("spec/Store.tla")).unwrap();
    let tla = spec_actions(&spec);
    assert_eq!(tla.len(), 25, "{tla:?}");
    let declared: BTreeSet<String> = ACTIONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        declared, tla,
        "batpak::__testing::trace::ACTIONS vs spec/Store.tla Next"
    );

    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut names = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        names.extend(emitted(
            &text,
            &["tla_trace", "tla_trace_defer", "trace_action"],
        ));
    }
    // The crash is the harness's doing, not the store's: the harness names its kind.
    let harness = std::fs::read_to_string(root().join("model/tests/trace_conformance.rs")).unwrap();
    assert!(harness.contains("TraceEvent::new(kind"));
    for kind in ["ProcessCrash", "PowerLoss"] {
        assert!(harness.contains(&format!("Some(\"{kind}\")")), "{kind}");
        names.insert(kind.into());
    }
    assert_eq!(
        names, tla,
        "names emitted by src/ (+ the harness's crashes) vs spec/Store.tla Next"
    );
    assert!(ACTIONS.iter().all(|a| is_action(a)) && !is_action("Appendx") && !is_action(""));
}

/// The invariants the trace module evaluates are the spec's state invariants, all of them,
/// and the module's `Holds`/`InvNames` name each.
#[test]
fn trace_checking_evaluates_every_state_invariant() {
    use batpak_model::oracle::invariants::STATE_INVARIANTS;
    use batpak_model::trace_check::{module_text, TRACE_INVARIANTS};
    let oracle: BTreeSet<&str> = STATE_INVARIANTS.iter().map(|(n, _)| *n).collect();
    let traced: BTreeSet<&str> = TRACE_INVARIANTS.iter().copied().collect();
    assert_eq!(oracle, traced);
    let module = module_text("T", &[]);
    let spec = std::fs::read_to_string(root().join("spec/Store.tla")).unwrap();
    for n in TRACE_INVARIANTS {
        assert!(module.contains(&format!("n = \"{n}\" -> {n}")), "{n}");
        assert!(module.contains(&format!("\"{n}\"")), "{n}");
        assert!(
            spec.contains(&format!("\n{n} ==")),
            "{n} is not defined in Store.tla"
        );
    }
}

//! The crate's layering is enforced, not hoped for. Every module of `src/` sits in one layer
//! (`LAYERS`, lowest first) and may import from the crate only what its entry in `ALLOWED`
//! lists: a module of a lower layer, an earlier module of its own layer, or one named item
//! (`env::Clock`). Paths are read from the code (`use crate::...`, `crate::...` in
//! expressions and types, `super::...` resolved to the module it names); comments, literals
//! and `#[cfg(test)]` items are ignored, test-only files too. A failure names the module, the
//! file and line, and the forbidden import.
//!
//! The order (see ARCHITECTURE.md): sync and the seeded bugs -> env -> vocabulary
//! (coordinate, event, region, append, error) -> gates (guard, pipeline: vocabulary only) ->
//! codec -> log -> index -> checkpoint -> writer -> recovery -> store -> prelude. The allow-list itself is
//! checked to follow that order, so it cannot describe a cycle; the import graph found in the
//! code is checked for cycles as well, with the paths that comments name (`crate::x::...` in a
//! code span, a doc link's text or its target: module A's docs naming B while B imports A is
//! a cycle all the same).
//! There a path through a facade counts as a path to the leaf module that defines the item
//! (`event::EventKind` is `event_types::EventKind`: `event` re-exports `event_types`), and the
//! facade's re-exports count as its edges.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/rust_source.rs"]
mod rust_source;

use rust_source::{code_only, tokens, Tok};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first, each with its modules (a module may import earlier modules of
/// its own layer when `ALLOWED` says so).
const LAYERS: &[(&str, &[&str])] = &[
    (
        "base: the concurrency shim, the seeded bugs",
        &["sync", "mutant"],
    ),
    (
        "environment: disk, clock, ids, entropy; the trace sink; typed ids",
        &["env", "trace", "id"],
    ),
    ("vocabulary", VOCABULARY),
    ("gates (vocabulary only)", &["guard", "pipeline"]),
    ("codec", &["codec"]),
    ("log", &["log"]),
    ("index", &["index"]),
    ("checkpoint", &["checkpoint"]),
    ("writer", &["writer"]),
    ("recovery", &["recovery"]),
    ("store", &["store"]),
    ("facade", &["prelude"]),
];

/// The vocabulary layer's modules, in order.
const VOCABULARY: &[&str] = &[
    "coord",
    "event_types",
    "payload_registry",
    "sourcing",
    "event",
    "region",
    "coordinate",
    "append",
    "signing",
    "error",
    "typestate",
    "outcome",
];

/// What each module may import from the crate (outside its own top-level module). A key with
/// `::` is a sub-module whose rule replaces its parent's (the longest key wins); an entry with
/// `::` allows that item (and what is below it) only.
fn allowed() -> BTreeMap<&'static str, Vec<&'static str>> {
    let with_vocab = |extra: &[&'static str]| -> Vec<&'static str> {
        extra.iter().chain(VOCABULARY).copied().collect()
    };
    let upper_vocab = |extra: &[&'static str]| -> Vec<&'static str> {
        let base = [
            "coordinate",
            "event",
            "payload_registry",
            "region",
            "append",
        ];
        base.iter().chain(extra).copied().collect()
    };
    // `extra` and every vocabulary module before `module` (in VOCABULARY's order).
    let vocab_before = |module: &str, extra: &[&'static str]| -> Vec<&'static str> {
        let before = VOCABULARY.iter().take_while(|v| **v != module);
        extra.iter().chain(before).copied().collect()
    };
    BTreeMap::from([
        ("sync", vec![]),
        ("mutant", vec!["sync"]),
        ("env", vec!["sync"]),
        ("trace", vec!["sync"]),
        // Typed ids draw fresh UUIDv7s from the environment's id source and clock.
        (
            "id",
            vec![
                "env::Clock",
                "env::IdSource",
                "env::RandomIds",
                "env::SystemClock",
            ],
        ),
        // `coord` and `event_types` hold what `coordinate` and `event` publish: those two are
        // facades that also re-export higher modules under upstream's paths
        // (`batpak::coordinate::Region`, `batpak::event::EventSourced`), so the modules below
        // a facade import the leaf. `coord` also takes the sync shim's `StdArc` alone: a
        // coordinate's parts are shared immutable strings (cheap clones for query results),
        // and std's `Arc` is allowed only through the shim (tests/no_sync_leaks.rs).
        ("coord", vec!["sync::StdArc"]),
        ("event_types", vec!["coord", "id"]),
        // A warning logged once per process needs one flag outside any model.
        (
            "payload_registry",
            vec!["sync::process", "coord", "event_types"],
        ),
        // The event-sourcing vocabulary: projections, replay lanes, the typed decode seam.
        ("sourcing", vocab_before("sourcing", &[])),
        ("event", vocab_before("event", &[])),
        ("region", vocab_before("region", &[])),
        ("coordinate", vocab_before("coordinate", &[])),
        ("append", vocab_before("append", &["id"])),
        // The vocabulary's upper modules build on the public facades and on what is
        // before them.
        ("signing", upper_vocab(&[])),
        ("error", upper_vocab(&["sourcing", "signing"])),
        ("typestate", upper_vocab(&["signing", "error"])),
        // Upstream's algebraic result type: a pure value type that needs nothing of the crate.
        ("outcome", vec![]),
        ("guard", VOCABULARY.to_vec()),
        ("pipeline", with_vocab(&["guard"])),
        ("codec", with_vocab(&["mutant"])),
        (
            "log",
            with_vocab(&["sync", "mutant", "env", "trace", "codec"]),
        ),
        ("index", with_vocab(&["sync", "mutant", "codec"])),
        // The recovery checkpoint: reads the index, writes and validates a file through `Disk`.
        (
            "checkpoint",
            with_vocab(&["mutant", "env", "codec", "log", "index"]),
        ),
        (
            "writer",
            with_vocab(&[
                "sync",
                "mutant",
                "env",
                "trace",
                "codec",
                "log",
                "index",
                "checkpoint",
            ]),
        ),
        // The writer's decision step does no I/O and takes no lock: time and ids come from
        // the injected sources only.
        (
            "writer::state",
            with_vocab(&["mutant", "codec", "index", "env::Clock", "env::IdSource"]),
        ),
        (
            "recovery",
            with_vocab(&[
                "sync",
                "mutant",
                "env",
                "trace",
                "codec",
                "log",
                "index",
                "checkpoint",
                "writer",
            ]),
        ),
        (
            "store",
            with_vocab(&[
                "sync", "mutant", "env", "trace", "guard", "pipeline", "codec", "log", "index",
                "writer", "recovery",
            ]),
        ),
        (
            "prelude",
            with_vocab(&["env", "guard", "pipeline", "index", "store"]),
        ),
    ])
}

/// Imports against the order that are allowed as re-exports (`pub use`) only: (module,
/// target, why).
const REEXPORTS: &[(&str, &str, &str)] = &[];

/// Items the crate root re-exports, with the module that defines them (`crate::EventPayload`
/// is `event`'s trait and its derive).
const ROOT_ITEMS: &[(&str, &str)] = &[("EventPayload", "event"), ("EventSourced", "sourcing")];

/// One path into the crate found in a module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    /// The importing module's path (`["writer", "state", "steps"]`).
    module: Vec<String>,
    /// The imported path, from the crate root (`["env", "Clock"]`).
    path: Vec<String>,
    /// Where: file and line.
    file: String,
    line: usize,
    /// Part of a `pub use` (a re-export).
    reexport: bool,
}

// ------------------------------------------------------------------------------ scanning

/// The module path of a source file under `src/`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// Index just past the item starting at `i` (up to `;` or its closing brace at depth 0).
fn skip_item(toks: &[(Tok, usize)], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < toks.len() {
        match toks[i].0 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            Tok::Punct(';') if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Index just past an attribute `#[...]` starting at `i`.
fn skip_attr(toks: &[(Tok, usize)], i: usize) -> usize {
    let mut depth = 0usize;
    let mut j = i + 1;
    while j < toks.len() {
        match toks[j].0 {
            Tok::Punct('[') => depth += 1,
            Tok::Punct(']') => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    j
}

fn ident(toks: &[(Tok, usize)], i: usize) -> Option<&str> {
    match toks.get(i) {
        Some((Tok::Ident(w), _)) => Some(w),
        _ => None,
    }
}

fn punct(toks: &[(Tok, usize)], i: usize, c: char) -> bool {
    matches!(toks.get(i), Some((Tok::Punct(p), _)) if *p == c)
}

fn is_cfg_test(toks: &[(Tok, usize)], i: usize) -> bool {
    punct(toks, i, '#')
        && punct(toks, i + 1, '[')
        && ident(toks, i + 2) == Some("cfg")
        && punct(toks, i + 3, '(')
        && ident(toks, i + 4) == Some("test")
        && punct(toks, i + 5, ')')
}

/// Reads a path (or a `use` tree) starting at `i` below `prefix`; returns the paths with their
/// lines and the index after it.
fn read_tree(
    toks: &[(Tok, usize)],
    mut i: usize,
    prefix: Vec<String>,
) -> (Vec<(Vec<String>, usize)>, usize) {
    let mut segs = prefix;
    let mut line = toks.get(i).map_or(0, |t| t.1);
    let mut out = Vec::new();
    loop {
        match toks.get(i) {
            Some((Tok::Ident(w), l)) => {
                line = *l;
                if w != "self" || segs.is_empty() {
                    segs.push(w.clone());
                }
                i += 1;
                if matches!(toks.get(i), Some((Tok::PathSep, _))) {
                    i += 1;
                    continue;
                }
                out.push((segs, line));
                return (out, i);
            }
            Some((Tok::Punct('{'), _)) => {
                i += 1;
                while i < toks.len() && !punct(toks, i, '}') {
                    let (mut inner, next) = read_tree(toks, i, segs.clone());
                    out.append(&mut inner);
                    i = next;
                    if ident(toks, i) == Some("as") {
                        i += 2;
                    }
                    if punct(toks, i, ',') {
                        i += 1;
                    } else if !punct(toks, i, '}') {
                        i += 1; // not a use tree after all: move on
                    }
                }
                return (out, i + 1);
            }
            _ => {
                out.push((segs, line));
                return (out, i);
            }
        }
    }
}

/// Resolves a path written in `module` to a path from the crate root (`None`: not a crate
/// path, e.g. `std::...` or a local name).
fn resolve(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let (head, rest) = path.split_first()?;
    match head.as_str() {
        "crate" => Some(rest.to_vec()),
        "self" => Some(module.iter().chain(rest).cloned().collect()),
        "super" => {
            // `super` in `foo.rs` or `foo/mod.rs` is the parent of module `foo`.
            let mut base = module.to_vec();
            base.pop()?;
            let mut rest = rest;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
            Some(base.into_iter().chain(rest.iter().cloned()).collect())
        }
        _ => None,
    }
}

/// The crate paths in one file's text, and the test-only child modules it declares
/// (`#[cfg(test)] mod name;`).
fn scan(module: &[String], file: &str, text: &str) -> (Vec<Import>, Vec<Vec<String>>) {
    let toks = tokens(&code_only(text));
    let mut imports = Vec::new();
    let mut test_mods = Vec::new();
    let mut reexport_until = 0usize;
    // Inline modules (`mod atomic { ... }`) open below `module`: (name, brace depth inside).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        if punct(&toks, i, '{') {
            depth += 1;
            if ident(&toks, i.wrapping_sub(2)) == Some("mod") {
                if let Some(name) = ident(&toks, i - 1) {
                    inline.push((name.to_owned(), depth));
                }
            }
        } else if punct(&toks, i, '}') {
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
            depth = depth.saturating_sub(1);
        }
        let here: Vec<String> = module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(n, _)| n.clone()))
            .collect();
        if is_cfg_test(&toks, i) {
            let mut j = skip_attr(&toks, i);
            while punct(&toks, j, '#') {
                j = skip_attr(&toks, j);
            }
            while matches!(ident(&toks, j), Some("pub")) || punct(&toks, j, '(') {
                j = if punct(&toks, j, '(') { j + 3 } else { j + 1 };
            }
            if ident(&toks, j) == Some("mod") && punct(&toks, j + 2, ';') {
                if let Some(name) = ident(&toks, j + 1) {
                    test_mods.push(here.iter().cloned().chain([name.to_owned()]).collect());
                }
            }
            i = skip_item(&toks, j);
            continue;
        }
        if ident(&toks, i) == Some("use") && i > 0 {
            let public = ident(&toks, i - 1) == Some("pub")
                || (punct(&toks, i - 1, ')') && i >= 4 && ident(&toks, i - 4) == Some("pub"));
            if public {
                reexport_until = skip_item(&toks, i);
            }
        }
        let starts_path = matches!(ident(&toks, i), Some("crate" | "super" | "self"))
            && matches!(toks.get(i + 1), Some((Tok::PathSep, _)))
            && !matches!(toks.get(i.wrapping_sub(1)), Some((Tok::PathSep, _)));
        if !starts_path {
            i += 1;
            continue;
        }
        let (paths, next) = read_tree(&toks, i, Vec::new());
        for (path, line) in paths {
            if let Some(mut path) = resolve(&here, &path) {
                if let Some(first) = path.first_mut() {
                    if let Some((_, home)) = ROOT_ITEMS.iter().find(|(n, _)| *first == *n) {
                        *first = (*home).to_owned();
                    }
                }
                imports.push(Import {
                    module: module.to_vec(),
                    path,
                    file: file.to_owned(),
                    line,
                    reexport: i < reexport_until,
                });
            }
        }
        i = next.max(i + 1);
    }
    (imports, test_mods)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every crate path in `src/` outside test-only code.
fn crate_imports() -> Vec<Import> {
    scan_src().0
}

/// The crate paths of `src/` outside test-only code; the crate paths its comments name; the
/// items each top-level module file defines.
fn scan_src() -> (Vec<Import>, Vec<Import>, Defs) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut all = Vec::new();
    let mut docs = Vec::new();
    let mut defs = Defs::new();
    let mut test_mods = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let module = module_path(rel);
        let text = std::fs::read_to_string(f).unwrap();
        let shown = f.strip_prefix(root).unwrap().display().to_string();
        let (imports, mut tests) = scan(&module, &shown, &text);
        all.extend(imports);
        docs.extend(doc_refs(&module, &shown, &text));
        if let [top] = module.as_slice() {
            defs.insert(top.clone(), definitions(&text));
        }
        test_mods.append(&mut tests);
    }
    all.retain(|imp| !test_mods.iter().any(|t| imp.module.starts_with(t)));
    docs.retain(|imp| !test_mods.iter().any(|t| imp.module.starts_with(t)));
    assert!(
        all.len() > 100,
        "found only {} crate paths in src/",
        all.len()
    );
    (all, docs, defs)
}

/// The crate paths that comments name in one file's text: `crate::x::...` in a code span of a
/// `//`, `///` or `//!` line (so in a doc link's text, `` [`crate::x::Y`] ``), not part of a
/// longer path like `batpak::crate`, and a link's target in parentheses
/// (`` [`Y`](crate::x::Y) ``): a low module that wants to point its reader at the high-level
/// API built on it names that API in plain text, without a link.
fn doc_refs(module: &[String], file: &str, text: &str) -> Vec<Import> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if !line.trim_start().starts_with("//") {
            continue;
        }
        let mut from = 0;
        while let Some(k) = line[from..].find("crate::") {
            let at = from + k;
            from = at + "crate::".len();
            let before = line[..at].chars().next_back();
            let in_code_span = line[..at].matches('`').count() % 2 == 1;
            let link_target = line[..at].ends_with("](");
            if !(in_code_span || link_target)
                || before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            {
                continue;
            }
            let path: Vec<String> = line[from..]
                .split("::")
                .scan(true, |going, raw| {
                    // A segment ends the path where its text stops being a plain name.
                    let seg: String = raw
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    let go = *going && !seg.is_empty();
                    *going = go && seg.len() == raw.len();
                    go.then_some(seg)
                })
                .collect();
            if let Some(mut path) = (!path.is_empty()).then_some(path) {
                if let Some((_, home)) = ROOT_ITEMS.iter().find(|(n, _)| path[0] == *n) {
                    path[0] = (*home).to_owned();
                }
                out.push(Import {
                    module: module.to_vec(),
                    path,
                    file: file.to_owned(),
                    line: n + 1,
                    reexport: false,
                });
            }
        }
    }
    out
}

/// The items each top-level module file defines (`pub struct Name`, `pub(crate) fn name`, ...).
type Defs = BTreeMap<String, BTreeSet<String>>;

/// The names of the items one file's code defines with a visibility.
fn definitions(text: &str) -> BTreeSet<String> {
    const KINDS: &[&str] = &[
        "struct", "enum", "trait", "fn", "const", "static", "type", "mod", "union",
    ];
    let toks = tokens(&code_only(text));
    let mut out = BTreeSet::new();
    for i in 0..toks.len() {
        if ident(&toks, i) != Some("pub") {
            continue;
        }
        let mut j = i + 1;
        if punct(&toks, j, '(') {
            while j < toks.len() && !punct(&toks, j, ')') {
                j += 1;
            }
            j += 1;
        }
        if ident(&toks, j).is_some_and(|k| KINDS.contains(&k)) {
            if let Some(name) = ident(&toks, j + 1) {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

// ------------------------------------------------------------------------------ checking

/// The layer index and the position inside it of a top-level module.
fn rank(layers: &[(&str, &[&str])], module: &str) -> Option<(usize, usize)> {
    layers
        .iter()
        .enumerate()
        .find_map(|(l, (_, mods))| mods.iter().position(|m| *m == module).map(|p| (l, p)))
}

/// The allow-list follows the layer order: every allowed import goes to a lower layer or an
/// earlier module of the same layer (so the allowed graph has no cycle); every module has a
/// layer and a rule.
fn check_rules(layers: &[(&str, &[&str])], allowed: &BTreeMap<&str, Vec<&str>>) -> Vec<String> {
    let mut errors = Vec::new();
    for (_, mods) in layers {
        for m in *mods {
            if !allowed.contains_key(m) {
                errors.push(format!("module `{m}` has a layer but no rule in ALLOWED"));
            }
        }
    }
    for (key, targets) in allowed {
        let top = key.split("::").next().unwrap_or(key);
        let Some(from) = rank(layers, top) else {
            errors.push(format!("rule for `{key}`: module `{top}` is in no layer"));
            continue;
        };
        for t in targets {
            let ttop = t.split("::").next().unwrap_or(t);
            match rank(layers, ttop) {
                None => errors.push(format!("rule for `{key}`: `{t}` is in no layer")),
                Some(to) if to >= from => errors.push(format!(
                    "rule for `{key}` allows `{t}`, which is not below it in the layer order \
                     (`{top}` in layer \"{}\", `{ttop}` in layer \"{}\"): that would allow a cycle",
                    layers[from.0].0, layers[to.0].0
                )),
                Some(_) => {}
            }
        }
    }
    errors
}

/// The rule for `module` (the longest matching key).
fn rule_for<'a>(
    allowed: &'a BTreeMap<&str, Vec<&'a str>>,
    module: &[String],
) -> Option<(String, &'a Vec<&'a str>)> {
    (1..=module.len()).rev().find_map(|n| {
        let key = module[..n].join("::");
        allowed.get(key.as_str()).map(|r| (key, r))
    })
}

/// Every import that its module's rule does not allow, as a message naming the module, the
/// file and line, and the import.
fn check_imports(
    imports: &[Import],
    allowed: &BTreeMap<&str, Vec<&str>>,
    reexports: &[(&str, &str, &str)],
) -> Vec<String> {
    let mut errors = BTreeSet::new();
    for imp in imports {
        let (Some(top), Some(target)) = (imp.module.first(), imp.path.first()) else {
            continue; // the crate root (lib.rs) may name everything
        };
        if top == target {
            continue;
        }
        let name = imp.module.join("::");
        let shown = format!("crate::{}", imp.path.join("::"));
        let Some((key, rule)) = rule_for(allowed, &imp.module) else {
            errors.insert(format!(
                "module `{name}` ({}:{}) has no layer: add `{top}` to LAYERS and ALLOWED in \
                 tests/layers.rs (it imports `{shown}`)",
                imp.file, imp.line
            ));
            continue;
        };
        let ok = rule.iter().any(|a| {
            let a: Vec<&str> = a.split("::").collect();
            imp.path.len() >= a.len() && imp.path.iter().zip(&a).all(|(p, q)| p == q)
        });
        let reexport_ok = imp.reexport && reexports.iter().any(|(m, t, _)| m == top && t == target);
        if !ok && !reexport_ok {
            errors.insert(format!(
                "module `{name}` ({}:{}) imports `{shown}`, which its layer rule `{key}` does \
                 not allow (allowed: {})",
                imp.file,
                imp.line,
                if rule.is_empty() {
                    "nothing from the crate".to_owned()
                } else {
                    rule.join(", ")
                }
            ));
        }
    }
    errors.into_iter().collect()
}

/// `imports` with every path through a facade rewritten to the module that defines its item:
/// a path `m::Item::...` where `m` does not define `Item` but re-exports it (`pub use
/// crate::leaf::Item`, or `pub use crate::leaf::*` with `leaf` defining `Item`) becomes
/// `leaf::Item::...` (followed through a chain of facades). The re-exports themselves stay.
fn through_facades(imports: &[Import], defs: &Defs) -> Vec<Import> {
    let reexports: Vec<&Import> = imports
        .iter()
        .filter(|i| i.reexport && i.module.len() == 1)
        .collect();
    let step = |path: &[String]| -> Option<Vec<String>> {
        let [m, item, rest @ ..] = path else {
            return None;
        };
        if defs.get(m).is_some_and(|d| d.contains(item)) {
            return None;
        }
        let from_m = || reexports.iter().filter(|r| r.module[0] == *m);
        let named = from_m().find(|r| r.path.len() > 1 && r.path.last() == Some(item));
        let leaf = named.map(|r| r.path.clone()).or_else(|| {
            from_m()
                .find(|r| {
                    r.path.len() == 1 && defs.get(&r.path[0]).is_some_and(|d| d.contains(item))
                })
                .map(|r| vec![r.path[0].clone(), item.clone()])
        })?;
        Some(leaf.into_iter().chain(rest.iter().cloned()).collect())
    };
    imports
        .iter()
        .map(|imp| {
            let mut imp = imp.clone();
            for _ in 0..8 {
                match step(&imp.path) {
                    Some(p) if p != imp.path => imp.path = p,
                    _ => break,
                }
            }
            imp
        })
        .collect()
}

/// A cycle among top-level modules in the imports. Re-exports count: a `pub use` of a higher
/// module's item is an edge like any import (a module that re-exports upstream's paths is a
/// facade above what it re-exports, with its content in a lower leaf module).
fn find_cycle(imports: &[Import]) -> Option<Vec<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for imp in imports {
        let (Some(a), Some(b)) = (imp.module.first(), imp.path.first()) else {
            continue;
        };
        if a != b {
            graph.entry(a.clone()).or_default().insert(b.clone());
        }
    }
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let from = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut cycle = stack[from..].to_vec();
                cycle.push(n.to_owned());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    graph
        .keys()
        .find_map(|n| visit(n, &graph, &mut state, &mut Vec::new()))
}

// ------------------------------------------------------------------------------ tests

#[test]
fn the_allow_list_follows_the_layer_order() {
    let errors = check_rules(LAYERS, &allowed());
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn every_module_imports_only_what_its_layer_allows() {
    let imports = crate_imports();
    // The scan sees the writer's decision step (its sub-rule is exercised).
    assert!(
        imports.iter().any(|i| i
            .module
            .starts_with(&["writer".to_owned(), "state".to_owned()])
            && i.path.join("::") == "env::Clock"),
        "the scan no longer sees writer::state importing env::Clock"
    );
    let errors = check_imports(&imports, &allowed(), REEXPORTS);
    assert!(
        errors.is_empty(),
        "layer violations (the order is in tests/layers.rs and ARCHITECTURE.md):\n{}",
        errors.join("\n")
    );
}

#[test]
fn no_modules_depend_on_each_other_in_a_cycle_in_code_or_docs() {
    let (imports, docs, defs) = scan_src();
    // The scan sees comments' paths and the facades' content.
    assert!(
        docs.iter()
            .any(|d| d.module.first().is_some_and(|m| m == "log") && d.path[0] == "codec"),
        "the scan no longer sees log's docs naming `crate::codec`"
    );
    assert!(
        defs["event"].contains("sourcing") && defs["event_types"].contains("EventPayload"),
        "the scan no longer sees what event and event_types define"
    );
    let all: Vec<Import> = imports.into_iter().chain(docs).collect();
    let read = through_facades(&all, &defs);
    if let Some(cycle) = find_cycle(&read) {
        let at: Vec<String> = cycle
            .windows(2)
            .filter_map(|w| {
                read.iter()
                    .find(|i| i.module.first() == Some(&w[0]) && i.path.first() == Some(&w[1]))
                    .map(|i| format!("{} -> {} at {}:{}", w[0], w[1], i.file, i.line))
            })
            .collect();
        panic!(
            "the modules depend on each other in a cycle (code, or paths named in comments): \
             {}\n{}",
            cycle.join(" -> "),
            at.join("\n")
        );
    }
}

#[test]
fn every_top_level_module_has_a_layer() {
    let tops: BTreeSet<String> = crate_imports()
        .into_iter()
        .filter_map(|i| i.module.first().cloned())
        .collect();
    let missing: Vec<&String> = tops.iter().filter(|t| rank(LAYERS, t).is_none()).collect();
    assert!(
        missing.is_empty(),
        "modules without a layer (add them to LAYERS and ALLOWED): {missing:?}"
    );
}

// The checker itself, on made-up modules: it must be able to fail.

fn imp(module: &str, path: &str, reexport: bool) -> Import {
    Import {
        module: module.split("::").map(str::to_owned).collect(),
        path: path.split("::").map(str::to_owned).collect(),
        file: format!("src/{}.rs", module.replace("::", "/")),
        line: 7,
        reexport,
    }
}

#[test]
fn the_checker_names_the_module_and_the_forbidden_import() {
    let allowed = BTreeMap::from([
        ("vocab", vec![]),
        ("log", vec!["vocab"]),
        ("writer", vec!["vocab", "log"]),
        ("writer::state", vec!["vocab", "env::Clock"]),
    ]);
    let imports = vec![
        imp("log::scan", "vocab::Coordinate", false),
        imp("log::scan", "writer::WriterState", false),
        imp("writer::state::steps", "env::Clock", false),
        imp("writer::state::steps", "env::Disk", false),
        imp("writer::thread", "log::scan", false),
        imp("vocab", "log::Record", true),
        imp("store", "log::Record", false),
    ];
    let errors = check_imports(&imports, &allowed, &[("vocab", "log", "old path")]);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors.iter().any(|e| e.starts_with(
            "module `log::scan` (src/log/scan.rs:7) imports `crate::writer::WriterState`"
        )),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("`writer::state::steps`")
            && e.contains("`crate::env::Disk`")
            && e.contains("rule `writer::state`")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("module `store`") && e.contains("has no layer")),
        "{errors:#?}"
    );
    // A re-export is allowed only as a `pub use`.
    let errors = check_imports(
        &[imp("vocab", "log::Record", false)],
        &allowed,
        &[("vocab", "log", "old path")],
    );
    assert_eq!(errors.len(), 1, "{errors:#?}");
}

#[test]
fn the_checker_finds_a_cycle_in_the_imports_and_in_the_rules() {
    let imports = vec![
        imp("codec", "vocab::Event", false),
        imp("log", "codec::Frame", false),
        imp("index", "log::Record", false),
        imp("log::scan", "index::Slot", false),
    ];
    let cycle = find_cycle(&imports).expect("the cycle log -> index -> log is missed");
    assert_eq!(cycle.first(), cycle.last());
    assert!(cycle.contains(&"log".to_owned()) && cycle.contains(&"index".to_owned()));
    assert_eq!(find_cycle(&imports[..3]), None);
    // A re-export (`pub use`) closes a cycle as surely as an import: `coordinate` re-exporting
    // `region` while `region` imports `coordinate` is one.
    let cycle = find_cycle(&[
        imp("coordinate", "region::Region", true),
        imp("region", "coordinate::Coordinate", false),
    ])
    .expect("a cycle through a re-export is missed");
    assert_eq!(cycle.len(), 3, "{cycle:?}");
    assert!(find_cycle(&[
        imp("coordinate", "region::Region", true),
        imp("region", "coord::Coordinate", false),
    ])
    .is_none());

    // An allow-list that lets a lower layer import a higher one (a cycle in the making).
    let layers: &[(&str, &[&str])] = &[("a", &["codec"]), ("b", &["log"]), ("c", &["index"])];
    let rules = BTreeMap::from([
        ("codec", vec![]),
        ("log", vec!["codec", "index"]),
        ("index", vec!["log"]),
    ]);
    let errors = check_rules(layers, &rules);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("rule for `log` allows `index`"),
        "{errors:#?}"
    );
    let missing = BTreeMap::from([("codec", vec![]), ("log", vec!["codec"])]);
    assert!(check_rules(layers, &missing)
        .iter()
        .any(|e| e.contains("module `index` has a layer but no rule")));
}

#[test]
fn the_scanner_reads_use_trees_super_paths_and_skips_tests_and_comments() {
    let text = "//! uses crate::store::Store in a comment\n\
        use crate::{codec::{self, Record}, env::Clock as C};\n\
        use super::super::frames::Frames;\n\
        pub use crate::region::Region;\n\
        fn f() -> crate::log::DiskPos { let s = \"crate::store\"; g() }\n\
        #[cfg(test)]\nmod tests { use crate::store::Store; }\n\
        #[cfg(test)]\nmod more;\n\
        pub mod atomic { pub use super::super::backend::AtomicU64; }\n";
    let module: Vec<String> = ["writer", "state", "steps"].map(str::to_owned).to_vec();
    let (imports, tests) = scan(&module, "x.rs", text);
    let paths: Vec<(String, usize, bool)> = imports
        .iter()
        .map(|i| (i.path.join("::"), i.line, i.reexport))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("codec".to_owned(), 2, false),
            ("codec::Record".to_owned(), 2, false),
            ("env::Clock".to_owned(), 2, false),
            ("writer::frames::Frames".to_owned(), 3, false),
            ("region::Region".to_owned(), 4, true),
            ("log::DiskPos".to_owned(), 5, false),
            ("writer::state::backend::AtomicU64".to_owned(), 10, true),
        ]
    );
    assert_eq!(
        tests,
        vec![["writer", "state", "steps", "more"]
            .map(str::to_owned)
            .to_vec()]
    );
}

#[test]
fn the_cycle_check_sees_doc_paths_and_reads_facades_as_their_leaves() {
    // A doc link closes a cycle: `append`'s docs name `error`, which imports `append`.
    let text = "/// Times out as [`crate::error::StoreError::WaitTimeout`].\n\
        /// Upstream's path `batpak::crate::x` is no crate path; `super::y` neither.\n\
        /// A link's target: [`Store`](crate::store::Store), crate::store::Store in prose.\n\
        pub struct Gate;\n";
    let docs = doc_refs(&["append".to_owned()], "src/append.rs", text);
    let paths: Vec<(String, usize)> = docs.iter().map(|d| (d.path.join("::"), d.line)).collect();
    assert_eq!(
        paths,
        vec![
            ("error::StoreError::WaitTimeout".to_owned(), 1),
            ("store::Store".to_owned(), 3)
        ]
    );
    let mut graph = docs.clone();
    graph.push(imp("error", "append::AppendReceipt", false));
    let cycle = find_cycle(&graph).expect("the cycle append -> error -> append is missed");
    assert_eq!(cycle.len(), 3, "{cycle:?}");

    // A leaf importing an item through its facade is an edge to the leaf that defines it...
    let defs = Defs::from([
        (
            "event".to_owned(),
            BTreeSet::from(["EventPayload".to_owned()]),
        ),
        (
            "event_types".to_owned(),
            BTreeSet::from(["EventKind".to_owned()]),
        ),
        (
            "sourcing".to_owned(),
            BTreeSet::from(["Reactive".to_owned()]),
        ),
    ]);
    let facade = [
        imp("event", "event_types", true), // `pub use crate::event_types::*;`
        imp("event", "sourcing::Reactive", true),
    ];
    let via = |path: &str| -> Vec<Import> {
        facade
            .iter()
            .cloned()
            .chain([imp("sourcing", path, false)])
            .collect()
    };
    let kind = via("event::EventKind");
    assert!(
        find_cycle(&kind).is_some(),
        "read literally, the facade closes a cycle"
    );
    let read = through_facades(&kind, &defs);
    assert_eq!(read[2].path.join("::"), "event_types::EventKind");
    assert_eq!(find_cycle(&read), None);
    // ... and through a named re-export to the module that re-exports it, chained.
    let named = through_facades(&via("event::Reactive::react"), &defs);
    assert_eq!(named[2].path.join("::"), "sourcing::Reactive::react");
    // An item the facade defines itself stays the facade's: that cycle is real.
    let own = through_facades(&via("event::EventPayload"), &defs);
    let cycle = find_cycle(&own).expect("sourcing -> event -> sourcing is missed");
    assert!(cycle.contains(&"event".to_owned()), "{cycle:?}");
    assert_eq!(
        definitions("pub struct A; pub(crate) fn b() {} struct C; pub use x::D; pub mod e {}"),
        BTreeSet::from(["A".to_owned(), "b".to_owned(), "e".to_owned()])
    );
}

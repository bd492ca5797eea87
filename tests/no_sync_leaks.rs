//! The concurrency facade is enforced, not hoped for: outside `src/sync.rs` and `src/sync/`,
//! no source file may name `std::sync`, `std::thread`, `flume`, `loom` or `shuttle` in code
//! (comments and string literals are ignored; `cfg(loom)` is code and is forbidden - use
//! `sync::UNDER_MODEL`). `core::sync` and `alloc::sync` are forbidden too: they are the same
//! atomics and `Arc` by another name, invisible to the model checkers.

#[path = "support/rust_source.rs"]
mod rust_source;

use rust_source::{code_only, tokens, Tok};
use std::path::{Path, PathBuf};

/// Crate names that may only appear inside the shim, as whole identifiers.
const FORBIDDEN_CRATES: &[&str] = &["flume", "loom", "shuttle"];
/// Roots whose `sync` / `thread` children are forbidden outside the shim.
const FORBIDDEN_ROOTS: &[&str] = &["std", "core", "alloc"];
const FORBIDDEN_CHILDREN: &[&str] = &["sync", "thread"];

fn word(tok: &Tok) -> &str {
    match tok {
        Tok::Ident(w) => w,
        _ => "",
    }
}

fn is_ident(tok: Option<&(Tok, usize)>, names: &[&str]) -> bool {
    matches!(tok, Some((Tok::Ident(w), _)) if names.contains(&w.as_str()))
}

/// Lines (1-based) with a forbidden name, and what was found there.
fn find_leaks(src: &str) -> Vec<(usize, String)> {
    let toks = tokens(&code_only(src));
    let mut leaks = Vec::new();
    for (k, (tok, line)) in toks.iter().enumerate() {
        if let Tok::Ident(word) = tok {
            if FORBIDDEN_CRATES.contains(&word.as_str()) {
                leaks.push((*line, word.clone()));
            }
        }
        if !is_ident(Some(&toks[k]), FORBIDDEN_ROOTS)
            || toks.get(k + 1).map(|t| &t.0) != Some(&Tok::PathSep)
        {
            continue;
        }
        let root = match tok {
            Tok::Ident(w) => w.as_str(),
            _ => continue,
        };
        if is_ident(toks.get(k + 2), FORBIDDEN_CHILDREN) {
            leaks.push((*line, format!("{root}::{}", word(&toks[k + 2].0))));
        } else if toks.get(k + 2).map(|t| &t.0) == Some(&Tok::Punct('{')) {
            // `use std::{io, sync::Arc}`: a forbidden child at the start of a group item.
            let mut depth = 0usize;
            for j in k + 2..toks.len() {
                match &toks[j].0 {
                    Tok::Punct('{') => depth += 1,
                    Tok::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                let starts_item = matches!(toks[j].0, Tok::Punct('{') | Tok::Punct(','));
                if depth == 1 && starts_item && is_ident(toks.get(j + 1), FORBIDDEN_CHILDREN) {
                    leaks.push((
                        toks[j + 1].1,
                        format!("{root}::{{{}}}", word(&toks[j + 1].0)),
                    ));
                }
            }
        }
    }
    leaks
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

#[test]
fn no_file_outside_the_shim_names_concurrency_crates() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let shim_file = src.join("sync.rs");
    let shim_dir = src.join("sync");
    let mut files = Vec::new();
    assert!(
        rust_files(&src, &mut files).is_ok(),
        "cannot walk {}",
        src.display()
    );
    files.retain(|f| *f != shim_file && !f.starts_with(&shim_dir));
    assert!(
        !files.is_empty(),
        "found no source files under {}",
        src.display()
    );
    let mut report = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (line, what) in find_leaks(&text) {
            let rel = file
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap_or(file);
            report.push(format!("{}:{line}: names `{what}`", rel.display()));
        }
    }
    assert!(
        report.is_empty(),
        "concurrency must go through crate::sync (see src/sync.rs); leaks:\n{}",
        report.join("\n")
    );
}

#[test]
fn detector_flags_a_std_sync_import() {
    assert_eq!(find_leaks("use std::sync::Mutex;").len(), 1);
    assert_eq!(
        find_leaks("fn f() {}\nlet t = std::thread::spawn(f);")[0].0,
        2
    );
    assert_eq!(find_leaks("use core::sync::atomic::AtomicU64;").len(), 1);
    assert_eq!(find_leaks("use ::std :: sync::Arc;").len(), 1);
}

#[test]
fn detector_flags_grouped_std_imports() {
    let leaks = find_leaks("use std::{\n    io,\n    sync::{Arc, Mutex},\n    fmt,\n};");
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    assert_eq!(leaks[0].0, 3);
    assert_eq!(
        find_leaks("use std::{collections::HashMap, thread};").len(),
        1
    );
    // `fmt::sync` is a child of `fmt`, not of `std`: not a std::sync path.
    assert!(find_leaks("use std::{fmt::{self, sync}};").is_empty());
}

#[test]
fn detector_flags_model_cfgs_and_crates() {
    assert_eq!(find_leaks("#[cfg(loom)]\nfn f() {}").len(), 1);
    assert_eq!(find_leaks("#[cfg(not(shuttle))] fn f() {}").len(), 1);
    assert_eq!(find_leaks("let (tx, rx) = flume::bounded(1);").len(), 1);
}

#[test]
fn detector_ignores_comments_strings_and_longer_words() {
    assert!(find_leaks("// loom is great").is_empty());
    assert!(find_leaks("/// Uses std::sync::Mutex internally.\nfn f() {}").is_empty());
    assert!(find_leaks("//! shuttle and flume\n/* std::thread /* nested loom */ */").is_empty());
    assert!(find_leaks("let s = \"std::sync and loom\";").is_empty());
    assert!(find_leaks("let s = r#\"flume \" loom\"#; let c = '\"';").is_empty());
    assert!(find_leaks("let blooming = 1; let shuttles = 2; let my_std = 3;").is_empty());
    assert!(find_leaks("use crate::sync::thread; fn f<'a>(x: &'a u8) {}").is_empty());
    assert!(find_leaks("let url = \"http://x\"; let y = 1;").is_empty());
    // Code after a string that contains `//` is still checked.
    assert_eq!(find_leaks("let u = \"a//b\"; use std::thread;").len(), 1);
}

//! The concurrency facade is enforced, not hoped for: outside `src/sync.rs` and `src/sync/`,
//! no source file may name `std::sync`, `std::thread`, `flume`, `loom` or `shuttle` in code
//! (comments and string literals are ignored; `cfg(loom)` is code and is forbidden - use
//! `sync::UNDER_MODEL`). `core::sync` and `alloc::sync` are forbidden too: they are the same
//! atomics and `Arc` by another name, invisible to the model checkers.

use std::path::{Path, PathBuf};

/// Crate names that may only appear inside the shim, as whole identifiers.
const FORBIDDEN_CRATES: &[&str] = &["flume", "loom", "shuttle"];
/// Roots whose `sync` / `thread` children are forbidden outside the shim.
const FORBIDDEN_ROOTS: &[&str] = &["std", "core", "alloc"];
const FORBIDDEN_CHILDREN: &[&str] = &["sync", "thread"];

/// Replaces comments and the contents of string / char literals with spaces, keeping newlines,
/// so that line numbers survive and only code remains.
fn code_only(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0usize;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_is_ident(&chars, i)
        {
            // Raw string r"..." / r#"..."#: find the matching quote + hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c); // e.g. `r#ident`
                i += 1;
                continue;
            }
            let closing: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let rest: String = chars[j + 1..].iter().collect();
            let body_len = rest
                .find(&closing)
                .map_or(rest.len(), |k| k + closing.len());
            let end = j + 1 + rest[..body_len].chars().count();
            for &ch in &chars[i..end.min(chars.len())] {
                out.push(blank(ch));
            }
            i = end;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                let skip = if chars[i] == '\\' { 2 } else { 1 };
                for &ch in chars.iter().skip(i).take(skip) {
                    out.push(blank(ch));
                }
                i += skip;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A char literal ('x' or '\n' / '\u{..}'); otherwise `'` starts a lifetime.
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                let skip = if chars[i] == '\\' { 2 } else { 1 };
                out.extend(std::iter::repeat_n(' ', skip));
                i += skip;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

/// Tokens of code-only text, each with its 1-based line.
fn tokens(code: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            // `r#loom` lexes as `r`, `#`, `loom`: still caught.
            out.push((Tok::Ident(chars[start..i].iter().collect()), line));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push((Tok::PathSep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    out
}

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

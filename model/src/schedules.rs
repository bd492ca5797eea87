//! Saved shuttle schedules: `model/schedules/<scenario>.<Mutant>.txt`.

use crate::mutants::mutant_from_name;
use crate::scenarios::Scenario;
use crate::Mutant;
use std::path::{Path, PathBuf};

/// One saved schedule and what it is for.
#[derive(Debug, Clone)]
pub struct SavedSchedule {
    /// The file.
    pub path: PathBuf,
    /// The scenario it drives.
    pub scenario: Scenario,
    /// The mutant it exposes (`Mutant::None`: a real-store failure, fixed since).
    pub mutant: Mutant,
}

/// The directory holding saved schedules.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schedules")
}

/// The file name for `scenario` and `mutant`.
pub fn file_name(scenario: Scenario, mutant: Mutant) -> String {
    format!("{}.{mutant:?}.txt", scenario.name())
}

/// Every saved schedule, sorted by file name. Panics on a file whose name does not parse, so
/// a stray file cannot be silently skipped.
pub fn saved() -> Vec<SavedSchedule> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir()) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".txt") else {
            continue;
        };
        let parsed = stem
            .rsplit_once('.')
            .and_then(|(s, m)| Some((Scenario::from_name(s)?, mutant_from_name(m)?)));
        match parsed {
            Some((scenario, mutant)) => out.push(SavedSchedule {
                path,
                scenario,
                mutant,
            }),
            None => panic!("{}: not <scenario>.<Mutant>.txt", path.display()),
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

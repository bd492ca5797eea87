//! Opening a directory for the tool: read-only, with errors that say what to check.

use batpak::prelude::*;
use std::path::Path;

/// Opens `dir` read-only; a wrong path, a store a writer holds and I/O failures become one
/// readable line.
pub fn open(dir: &Path) -> Result<Store<ReadOnly>, String> {
    open_with(dir, StoreConfig::new(dir))
}

/// [`open`] with a full scan: every event's chain hash computed from its bytes, none taken
/// from the store's recovery checkpoint (what `verify` checks).
pub fn open_full_scan(dir: &Path) -> Result<Store<ReadOnly>, String> {
    open_with(dir, StoreConfig::new(dir).with_enable_checkpoint(false))
}

fn open_with(dir: &Path, config: StoreConfig) -> Result<Store<ReadOnly>, String> {
    if !dir.exists() {
        return Err(format!("{}: no such directory", dir.display()));
    }
    if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    Store::<ReadOnly>::open_read_only(config).map_err(|e| match e {
        StoreError::StoreLocked { .. } => format!(
            "{}: a writer has the store open; close it or take a snapshot first",
            dir.display()
        ),
        other => format!("{}: {other}", dir.display()),
    })
}

/// The segment file that holds `pos`, as the log names it (`spec/FORMAT.md`).
pub fn segment_file(dir: &Path, segment_id: u64) -> std::path::PathBuf {
    dir.join(format!("{segment_id:020}.seg"))
}

/// An id as 32 hex digits.
pub fn hex(id: u128) -> String {
    format!("{id:032x}")
}

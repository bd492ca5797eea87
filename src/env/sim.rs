//! [`SimDisk`]: a deterministic in-memory [`Disk`] that models the kernel as well as the
//! platter: what is durable, what sits in the page cache, and what a process crash, a power
//! loss, a failed fsync, a full disk or a short write leave behind.
//!
//! # State
//! Files are inodes (identified by a number) holding their *durable* bytes (the platter), the
//! *page cache* (what reads see) and the list of operations (writes, truncations) since their
//! last successful `sync_data`/`sync_all`. Directories map names to inodes; each keeps its
//! *durable* entries and the entry operations (create, remove, rename) since its last
//! [`Disk::sync_dir`]. Handles refer to the inode, so a rename or a remove does not break an
//! open handle. Directories themselves are created durably by [`Disk::create_dir_all`] and are
//! never removed.
//!
//! # Processes, process crashes and power losses
//! A disk outlives the processes that use it. Every handle (the [`SimDisk`] value itself, its
//! clones, and the files and locks opened through them) belongs to the process that was alive
//! when it was made. [`SimDisk::process_crash`] kills that process (SIGKILL, OOM kill, panic):
//! its locks are released and every later operation through its handles fails, but the page
//! cache survives - the next process (the returned handle) reads bytes that were written and
//! never fsynced, and they are still *not durable*: a later [`SimDisk::power_loss`] may lose
//! them. A power loss keeps the durable bytes plus, per file, any prefix of the unsynced
//! operations with the first lost write possibly torn or replaced by garbage (and with
//! [`CrashOptions::subsets`], any subset), and per directory any subset of the entry
//! operations since its last [`Disk::sync_dir`], each kept or lost on its own (unsynced
//! directory operations are not ordered: a later unlink may survive an earlier rename that
//! does not); what survives is then on the platter. Both compose over any number of sessions
//! on one disk.
//!
//! # Operations and faults
//! Every call that touches the state (`create_dir_all`, `list`, `create_new`, `open`, `remove`,
//! `rename`, `sync_dir`, `lock`, `exists`, and on handles `len`, `read_at`, `append`,
//! `truncate`, `sync_data`, `sync_all`) takes the next 0-based operation index, whether it then
//! succeeds or not; [`SimDisk::op_names`] tells which call took which index. A [`Fault`]
//! scheduled with [`SimDisk::fail_with`] (or [`SimDisk::fail_at`], or by name with
//! [`SimDisk::fail_next`]) makes that operation fail:
//! - with `simulated I/O fault at op N: <op> <path>` (kind `Other`, EIO) or `simulated disk
//!   full at op N: <op> <path>` (kind `StorageFull`, ENOSPC); the raw OS error is the error's
//!   source;
//! - a failing append writes nothing, or, with [`Fault::short_write`], a prefix of its bytes;
//! - a [`FaultKind::Transient`] failure of `sync_data`/`sync_all` behaves like Linux: the
//!   unsynced pages it covered are marked clean without reaching the platter, either kept in
//!   the page cache (reads still see them; [`FailedSync::KeepPages`], ext4's behaviour) or
//!   dropped (reads see what the platter has, zeros past it; [`FailedSync::DropPages`]). A
//!   later successful sync does not persist them; a power loss loses them. (A failed
//!   `sync_dir` changes nothing.)
//! - a [`FaultKind::Persistent`] fault also fails every later operation: the disk is dead (a
//!   power cut, nothing changes any more until [`SimDisk::power_loss`] or
//!   [`SimDisk::clear_faults`]), and [`SimDisk::crash_images`] shows what may survive;
//! - a [`FaultKind::ProcessCrash`] fault kills the process at that operation (see above).
//!
//! # Crash images
//! [`SimDisk::crash_images`] enumerates every state a crash may leave; see its docs.
//!
//! The state sits behind one `crate::sync` mutex held only for the duration of a call, and no
//! threads are spawned, so the disk can be used inside loom/shuttle models.

mod crash;
#[cfg(test)]
mod tests;

pub use crash::{CrashImage, CrashOptions};

use super::{Disk, DiskFile, DiskLock};
use crate::sync::{Arc, Mutex, StdArc};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, ErrorKind};
use std::ops::DerefMut;
use std::path::{Component, Path, PathBuf};

/// Name of the lock file [`Disk::lock`] creates inside the locked directory.
const LOCK_FILE_NAME: &str = super::fs::LOCK_FILE_NAME;

/// Inode number of a simulated file.
type FileId = u64;

/// How an injected fault behaves after the failing operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Only the chosen operation fails; later operations work.
    Transient,
    /// The chosen operation and every later one fail: the disk is dead (a power cut), nothing
    /// changes any more until [`SimDisk::power_loss`] or [`SimDisk::clear_faults`].
    Persistent,
    /// The process dies at the chosen operation: it fails, and so does every later operation
    /// through a handle of that process; the page cache survives for the next process
    /// ([`SimDisk::process_crash`] hands out its handle).
    ProcessCrash,
}

/// The error a fault reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultError {
    /// EIO (`ErrorKind::Other`).
    Io,
    /// ENOSPC (`ErrorKind::StorageFull`).
    NoSpace,
}

/// What a failed (transient) `sync_data`/`sync_all` does to the unsynced pages it covered;
/// either way they are marked clean and never reach the platter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedSync {
    /// They stay in the page cache: reads still see them (ext4).
    KeepPages,
    /// They are dropped: reads see the platter's bytes (zeros past its end).
    DropPages,
}

/// An injected fault (see the docs of `SimDisk`'s module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// What happens after the failing operation.
    pub kind: FaultKind,
    /// The error reported.
    pub error: FaultError,
    /// A failing append writes this many of its bytes first (at most all but one).
    pub short_write: Option<usize>,
    /// What a failing transient sync does to the pages it covered.
    pub failed_sync: FailedSync,
}

impl Fault {
    /// An EIO fault of `kind`; a failing append writes nothing, a failing sync keeps its pages.
    pub const fn new(kind: FaultKind) -> Self {
        Fault {
            kind,
            error: FaultError::Io,
            short_write: None,
            failed_sync: FailedSync::KeepPages,
        }
    }

    /// Reports ENOSPC (disk full) instead of EIO.
    pub const fn no_space(mut self) -> Self {
        self.error = FaultError::NoSpace;
        self
    }

    /// A failing append writes its first `bytes` bytes (at most all but one) before failing.
    pub const fn short_write(mut self, bytes: usize) -> Self {
        self.short_write = Some(bytes);
        self
    }

    /// A failing sync drops the pages it covered instead of keeping them cached.
    pub const fn drop_pages(mut self) -> Self {
        self.failed_sync = FailedSync::DropPages;
        self
    }
}

impl From<FaultKind> for Fault {
    fn from(kind: FaultKind) -> Self {
        Fault::new(kind)
    }
}

/// The error of an injected fault: the message names the operation; the source is the raw OS
/// error (EIO or ENOSPC).
#[derive(Debug)]
struct SimFault {
    message: String,
    os: io::Error,
}

impl fmt::Display for SimFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SimFault {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.os)
    }
}

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

fn fault_error(error: FaultError, index: u64, op: &str, path: &Path) -> io::Error {
    let (kind, errno, what) = match error {
        FaultError::Io => (ErrorKind::Other, EIO, "I/O fault"),
        FaultError::NoSpace => (ErrorKind::StorageFull, ENOSPC, "disk full"),
    };
    io::Error::new(
        kind,
        SimFault {
            message: format!("simulated {what} at op {index}: {op} {}", path.display()),
            os: io::Error::from_raw_os_error(errno),
        },
    )
}

/// An unsynced operation on a file's data.
#[derive(Debug, Clone)]
enum FileOp {
    /// `bytes` written at `offset` (an append: the file's length when it was issued);
    /// `op_index` is the disk operation that did it.
    Write {
        offset: usize,
        bytes: StdArc<[u8]>,
        op_index: u64,
    },
    /// The file cut (or zero-extended) to `len` bytes.
    Truncate { len: usize },
}

impl FileOp {
    /// Applies the operation to `content` (a gap before a write reads as zeros).
    fn apply(&self, content: &mut Vec<u8>) {
        match self {
            FileOp::Write { offset, bytes, .. } => {
                if content.len() == *offset {
                    content.extend_from_slice(bytes);
                    return;
                }
                let end = offset.saturating_add(bytes.len());
                if content.len() < end {
                    content.resize(end, 0);
                }
                if let Some(dst) = content.get_mut(*offset..end) {
                    dst.copy_from_slice(bytes);
                }
            }
            FileOp::Truncate { len } => content.resize(*len, 0),
        }
    }
}

/// A simulated inode.
#[derive(Debug, Clone)]
struct FileNode {
    /// What survives any crash (the platter).
    durable: StdArc<Vec<u8>>,
    /// The page cache as of the last sync when it holds bytes the platter does not (a failed
    /// sync marked them clean); `None`: the same as `durable`.
    clean: Option<StdArc<Vec<u8>>>,
    /// What reads see: the page cache (`clean`, or `durable`, with every `pending` op applied).
    current: StdArc<Vec<u8>>,
    /// Operations since the last data sync, oldest first.
    pending: Vec<FileOp>,
    /// Open handles of the live process; an inode no directory refers to is freed when this
    /// drops to 0.
    handles: usize,
}

impl FileNode {
    fn empty() -> Self {
        Self::durable(StdArc::new(Vec::new()))
    }

    /// A node whose content is all durable (`durable` and `current` share the bytes until the
    /// first write).
    fn durable(bytes: StdArc<Vec<u8>>) -> Self {
        FileNode {
            durable: StdArc::clone(&bytes),
            clean: None,
            current: bytes,
            pending: Vec::new(),
            handles: 0,
        }
    }

    /// The page cache as of the last sync.
    fn base(&self) -> &StdArc<Vec<u8>> {
        self.clean.as_ref().unwrap_or(&self.durable)
    }

    /// `clean` after the page cache changed: kept only while it differs from the platter.
    fn settle_clean(&mut self) {
        self.clean = if self.current.as_ref() == self.durable.as_ref() {
            None
        } else {
            Some(StdArc::clone(&self.current))
        };
    }

    /// Makes every pending operation durable (a successful sync).
    fn sync(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let only_writes = self
            .pending
            .iter()
            .all(|op| matches!(op, FileOp::Write { .. }));
        match StdArc::get_mut(&mut self.durable) {
            // The usual case costs the written bytes, not the file size.
            Some(durable) if only_writes => {
                for op in &self.pending {
                    op.apply(durable);
                }
            }
            _ => {
                let mut durable = self.durable.as_ref().clone();
                for op in &self.pending {
                    op.apply(&mut durable);
                }
                self.durable = StdArc::new(durable);
            }
        }
        self.pending.clear();
        if self.clean.is_some() {
            self.settle_clean();
        }
    }

    /// A failed sync: the pending operations' pages are marked clean without reaching the
    /// platter, kept in the page cache or dropped from it.
    fn fail_sync(&mut self, how: FailedSync) {
        if self.pending.is_empty() {
            return;
        }
        if how == FailedSync::DropPages {
            let mut cache = self.base().as_ref().clone();
            cache.resize(self.current.len(), 0);
            self.current = StdArc::new(cache);
        }
        self.pending.clear();
        self.settle_clean();
    }

    /// Rebuilds `current` from the page cache base and the pending operations.
    fn replay(&mut self) {
        let mut current = self.base().as_ref().clone();
        for op in &self.pending {
            op.apply(&mut current);
        }
        self.current = StdArc::new(current);
    }
}

/// An unsynced operation on a directory's entries.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DirOp {
    /// `name` now refers to `id` (a creation, or the target side of a cross-directory rename).
    Create { name: String, id: FileId },
    /// `name` (referring to `id`) was removed (or moved away to another directory).
    Remove { name: String, id: FileId },
    /// `from` was renamed to `to` inside this directory, replacing `to`.
    Rename {
        from: String,
        to: String,
        id: FileId,
    },
}

impl DirOp {
    /// Replays the operation on `entries`.
    fn apply(&self, entries: &mut BTreeMap<String, FileId>) {
        match self {
            DirOp::Create { name, id } => {
                entries.insert(name.clone(), *id);
            }
            DirOp::Remove { name, id } => {
                if entries.get(name) == Some(id) {
                    entries.remove(name);
                }
            }
            DirOp::Rename { from, to, id } => {
                if entries.get(from) == Some(id) {
                    entries.remove(from);
                }
                entries.insert(to.clone(), *id);
            }
        }
    }

    fn id(&self) -> FileId {
        match self {
            DirOp::Create { id, .. } | DirOp::Remove { id, .. } | DirOp::Rename { id, .. } => *id,
        }
    }
}

/// A simulated directory.
#[derive(Debug, Clone, Default)]
struct DirNode {
    /// Entries that survive any crash (as of the last `sync_dir`).
    durable: BTreeMap<String, FileId>,
    /// Entries as seen now.
    current: BTreeMap<String, FileId>,
    /// Entry operations since the last `sync_dir`, oldest first.
    pending: Vec<DirOp>,
}

/// Everything a [`SimDisk`] knows.
#[derive(Debug)]
struct State {
    dirs: BTreeMap<PathBuf, DirNode>,
    files: BTreeMap<FileId, FileNode>,
    next_id: FileId,
    op_count: u64,
    /// The operation name of every index taken so far.
    op_names: Vec<&'static str>,
    faults: BTreeMap<u64, Fault>,
    /// Faults for the next operation of a given name, in the order they were scheduled.
    next_faults: Vec<(String, Fault)>,
    dead: bool,
    sync_ops: Vec<u64>,
    /// The successful syncs that made something durable.
    persisting_syncs: Vec<u64>,
    /// Locked directories, with the process holding each lock.
    locks: BTreeMap<PathBuf, u64>,
    /// Directories with shared holders, and how many (all of the live process).
    shared_locks: BTreeMap<PathBuf, usize>,
    /// The live process; handles of earlier ones fail.
    process: u64,
}

/// How [`State::begin`] went.
enum Begun {
    /// Go on; the operation's index.
    Go(u64),
    /// The operation fails with this error; `Some` if an injected fault made it fail (its
    /// effect, if any, is the caller's to apply).
    Fail(io::Error, Option<Fault>),
}

impl State {
    /// An empty disk: only the roots `""` (relative paths) and `/` exist.
    fn new() -> Self {
        let mut dirs = BTreeMap::new();
        dirs.insert(PathBuf::new(), DirNode::default());
        dirs.insert(PathBuf::from("/"), DirNode::default());
        State {
            dirs,
            files: BTreeMap::new(),
            next_id: 1,
            op_count: 0,
            op_names: Vec::new(),
            faults: BTreeMap::new(),
            next_faults: Vec::new(),
            dead: false,
            sync_ops: Vec::new(),
            persisting_syncs: Vec::new(),
            locks: BTreeMap::new(),
            shared_locks: BTreeMap::new(),
            process: 0,
        }
    }

    /// Takes the next operation index for `process`; says whether it fails (a fault is
    /// scheduled there, the disk is dead, or the process is gone).
    fn begin_op(&mut self, op: &'static str, path: &Path, process: u64) -> Begun {
        let index = self.op_count;
        self.op_count = self.op_count.saturating_add(1);
        self.op_names.push(op);
        if process != self.process {
            return Begun::Fail(
                io::Error::other(format!(
                    "simulated process crash: op {index} ({op} {}) comes from a process that is gone",
                    path.display()
                )),
                None,
            );
        }
        if self.dead {
            return Begun::Fail(fault_error(FaultError::Io, index, op, path), None);
        }
        let scheduled = self.faults.get(&index).copied().or_else(|| {
            let at = self.next_faults.iter().position(|(name, _)| name == op)?;
            Some(self.next_faults.remove(at).1)
        });
        let Some(fault) = scheduled else {
            return Begun::Go(index);
        };
        match fault.kind {
            FaultKind::Transient => {}
            FaultKind::Persistent => self.dead = true,
            FaultKind::ProcessCrash => self.kill_process(),
        }
        Begun::Fail(fault_error(fault.error, index, op, path), Some(fault))
    }

    /// [`State::begin_op`] for operations on which a fault has no effect.
    fn begin(&mut self, op: &'static str, path: &Path, process: u64) -> io::Result<u64> {
        match self.begin_op(op, path, process) {
            Begun::Go(index) => Ok(index),
            Begun::Fail(e, _) => Err(e),
        }
    }

    /// The live process dies: its locks are released, its handles stop counting (and stop
    /// working), the page cache stays.
    fn kill_process(&mut self) {
        self.process = self.process.saturating_add(1);
        self.locks.clear();
        self.shared_locks.clear();
        for f in self.files.values_mut() {
            f.handles = 0;
        }
        self.collect_garbage();
    }

    /// Records a successful sync; `persisted`: it made something durable.
    fn synced(&mut self, index: u64, persisted: bool) {
        self.sync_ops.push(index);
        if persisted {
            self.persisting_syncs.push(index);
        }
    }

    fn dir_mut(&mut self, op: &str, dir: &Path) -> io::Result<&mut DirNode> {
        self.dirs
            .get_mut(dir)
            .ok_or_else(|| not_found(op, dir, "no such directory"))
    }

    /// The inode `path` names now.
    fn lookup(&self, op: &str, path: &Path) -> io::Result<FileId> {
        let (dir, name) = split(op, path)?;
        self.dirs
            .get(&dir)
            .and_then(|d| d.current.get(&name))
            .copied()
            .ok_or_else(|| not_found(op, path, "no such file"))
    }

    fn file_mut(&mut self, op: &str, path: &Path, id: FileId) -> io::Result<&mut FileNode> {
        self.files
            .get_mut(&id)
            .ok_or_else(|| not_found(op, path, "inode vanished"))
    }

    /// Frees inodes that no directory refers to (durably, now or in a pending operation) and
    /// that have no open handle: no crash image can contain them any more.
    fn collect_garbage(&mut self) {
        let referenced: BTreeSet<FileId> = self
            .dirs
            .values()
            .flat_map(|d| {
                let entries = d.durable.values().chain(d.current.values()).copied();
                entries.chain(d.pending.iter().map(DirOp::id))
            })
            .collect();
        self.files
            .retain(|id, f| f.handles > 0 || referenced.contains(id));
    }

    /// A new handle on inode `id` for the live process.
    fn handle(
        &mut self,
        state: &Arc<Mutex<State>>,
        id: FileId,
        path: &Path,
        writable: bool,
    ) -> Box<dyn DiskFile> {
        if let Some(f) = self.files.get_mut(&id) {
            f.handles = f.handles.saturating_add(1);
        }
        Box::new(SimFile {
            state: Arc::clone(state),
            id,
            path: path.to_path_buf(),
            writable,
            process: self.process,
        })
    }

    /// Creates `dir` and its ancestors (durably) if missing.
    fn make_dirs(&mut self, dir: &Path) -> io::Result<()> {
        let ancestors: Vec<PathBuf> = dir.ancestors().map(Path::to_path_buf).collect();
        for anc in ancestors.iter().rev() {
            if self.dirs.contains_key(anc) {
                continue;
            }
            if let (Some(parent), Some(name)) = (anc.parent(), anc.file_name()) {
                let taken = self
                    .dirs
                    .get(parent)
                    .is_some_and(|d| d.current.contains_key(name.to_string_lossy().as_ref()));
                if taken {
                    return Err(io::Error::new(
                        ErrorKind::AlreadyExists,
                        format!("create_dir_all {}: a file has that name", anc.display()),
                    ));
                }
            }
            self.dirs.insert(anc.clone(), DirNode::default());
        }
        Ok(())
    }
}

fn not_found(op: &str, path: &Path, what: &str) -> io::Error {
    io::Error::new(
        ErrorKind::NotFound,
        format!("{op} {}: {what}", path.display()),
    )
}

/// Drops `.` components so `a/./b` and `a/b` name the same thing.
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// Splits a file path into its (normalized) directory and its name.
fn split(op: &str, path: &Path) -> io::Result<(PathBuf, String)> {
    let path = normalize(path);
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => Ok((dir.to_path_buf(), name.to_string_lossy().into_owned())),
        _ => Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("{op} {}: not a file path", path.display()),
        )),
    }
}

/// A deterministic in-memory disk with crash images and fault injection.
///
/// Clones share the same state (they are the same disk) and belong to the same process. See
/// the docs of its module for the model, and [`SimDisk::crash_images`] for what a crash may
/// leave.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
    /// The process this handle belongs to.
    process: u64,
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock_state();
        f.debug_struct("SimDisk")
            .field("files", &st.files.len())
            .field("op_count", &st.op_count)
            .field("dead", &st.dead)
            .field("process", &self.process)
            .finish()
    }
}

impl Default for SimDisk {
    fn default() -> Self {
        Self::new()
    }
}

impl SimDisk {
    /// An empty disk whose only directories are the roots (`/` and the relative root).
    pub fn new() -> Self {
        Self::from_state(State::new())
    }

    fn from_state(state: State) -> Self {
        let process = state.process;
        SimDisk {
            state: Arc::new(Mutex::new(state)),
            process,
        }
    }

    fn lock_state(&self) -> impl DerefMut<Target = State> + '_ {
        self.state.lock()
    }

    /// A handle on this disk for the live process.
    fn live_handle(&self, st: &State) -> SimDisk {
        SimDisk {
            state: Arc::clone(&self.state),
            process: st.process,
        }
    }

    /// Makes the operation with 0-based index `op_index` fail (see [`FaultKind`]).
    pub fn fail_at(&self, op_index: u64, kind: FaultKind) {
        self.fail_with(op_index, Fault::new(kind));
    }

    /// Makes the operation with 0-based index `op_index` fail as `fault` says.
    pub fn fail_with(&self, op_index: u64, fault: Fault) {
        self.lock_state().faults.insert(op_index, fault);
    }

    /// Makes the next operation named `op` (`"append"`, `"sync_data"`, ... as in
    /// [`SimDisk::op_names`]) fail as `fault` says. Several such faults for one name apply to
    /// successive operations of that name, in the order they were scheduled.
    pub fn fail_next(&self, op: &str, fault: impl Into<Fault>) {
        self.lock_state()
            .next_faults
            .push((op.to_owned(), fault.into()));
    }

    /// Removes every scheduled fault and revives a disk killed by a persistent fault.
    pub fn clear_faults(&self) {
        let mut st = self.lock_state();
        st.faults.clear();
        st.next_faults.clear();
        st.dead = false;
    }

    /// The process using the disk dies (SIGKILL, OOM kill, panic): its directory locks are
    /// released and every later operation through its handles (this one, its clones, and the
    /// files and locks opened through them) fails. The page cache survives: the returned
    /// handle, the next process's, reads every byte written so far, synced or not, and the
    /// unsynced ones stay unsynced (a later [`SimDisk::power_loss`] may still lose them).
    /// Scheduled faults stay scheduled; a dead disk stays dead.
    pub fn process_crash(&self) -> SimDisk {
        let mut st = self.lock_state();
        st.kill_process();
        self.live_handle(&st)
    }

    /// The power is lost: the disk keeps what the crash model lets a power loss keep (the
    /// image `chooser` picks, as in [`SimDisk::crash_with`]), and what it keeps is durable. The
    /// process dies as in [`SimDisk::process_crash`]; the returned handle is the next
    /// process's. A disk killed by a persistent fault works again; faults scheduled at later
    /// operation indices stay scheduled.
    pub fn power_loss(&self, chooser: &mut dyn FnMut(usize) -> usize) -> SimDisk {
        self.power_loss_with_options(&CrashOptions::default(), chooser)
    }

    /// [`SimDisk::power_loss`] with explicit [`CrashOptions`].
    pub fn power_loss_with_options(
        &self,
        opts: &CrashOptions,
        chooser: &mut dyn FnMut(usize) -> usize,
    ) -> SimDisk {
        let image = self.crash_with_options(opts, chooser);
        let after = image.state(true);
        let mut st = self.lock_state();
        st.dirs = after.dirs;
        st.files = after.files;
        st.dead = false;
        st.kill_process();
        self.live_handle(&st)
    }

    /// How many operations have been issued so far (the index the next one will get).
    pub fn op_count(&self) -> u64 {
        self.lock_state().op_count
    }

    /// The name of the operation at every index issued so far (`"append"`, `"sync_data"`,
    /// `"sync_dir"`, ...), failed ones included.
    pub fn op_names(&self) -> Vec<&'static str> {
        self.lock_state().op_names.clone()
    }

    /// Number of successful `sync_data`, `sync_all` and `sync_dir` calls (persistence points).
    pub fn sync_count(&self) -> u64 {
        self.lock_state().sync_ops.len() as u64
    }

    /// Operation indices of the successful syncs, in order. Failing operation `i + 1` with
    /// [`FaultKind::Persistent`] freezes the disk right after the sync at index `i`.
    pub fn sync_op_indices(&self) -> Vec<u64> {
        self.lock_state().sync_ops.clone()
    }

    /// Operation indices of the successful syncs that made something durable (the others
    /// found nothing pending: freezing the disk just before or after them changes nothing).
    pub fn persisting_sync_indices(&self) -> Vec<u64> {
        self.lock_state().persisting_syncs.clone()
    }

    /// Current content of the file at `path` (what reads see), if it exists.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock_state();
        let id = st.lookup("read_file", path).ok()?;
        st.files.get(&id).map(|f| f.current.as_ref().clone())
    }

    /// Durable content of the file at `path` through its durable directory entry, if there is
    /// one: the file as it is in the crash image where every pending operation is lost.
    pub fn durable_file(&self, path: &Path) -> Option<Vec<u8>> {
        let (dir, name) = split("durable_file", path).ok()?;
        let st = self.lock_state();
        let id = st.dirs.get(&dir)?.durable.get(&name)?;
        st.files.get(id).map(|f| f.durable.as_ref().clone())
    }

    /// Whether nothing is pending: every file's and directory's state is durable, so every
    /// crash image is this state (pages a failed sync left cached but unwritten count as not
    /// durable).
    pub fn is_all_durable(&self) -> bool {
        let st = self.lock_state();
        st.dirs.values().all(|d| d.pending.is_empty())
            && st
                .files
                .values()
                .all(|f| f.pending.is_empty() && f.clean.is_none())
    }

    /// Number of directory entry operations (creations, removals, renames) not yet made
    /// durable by a [`Disk::sync_dir`], over every directory.
    pub fn pending_dir_ops(&self) -> usize {
        self.lock_state()
            .dirs
            .values()
            .map(|d| d.pending.len())
            .sum()
    }

    /// Makes `path` a durable file holding exactly `bytes` (creating its directories), to build
    /// fixtures. An existing file keeps its inode (open handles see the new bytes) and loses its
    /// pending data operations. Not an operation: no index, no fault.
    pub fn write_file_durably(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let (dir, name) = split("write_file_durably", path)?;
        let mut st = self.lock_state();
        st.make_dirs(&dir)?;
        if st.dirs.contains_key(&normalize(path)) {
            return Err(io::Error::new(
                ErrorKind::AlreadyExists,
                format!("write_file_durably {}: is a directory", path.display()),
            ));
        }
        let existing = st
            .dirs
            .get(&dir)
            .and_then(|d| d.current.get(&name))
            .copied();
        let id = match existing {
            Some(id) => id,
            None => {
                let id = st.next_id;
                st.next_id = st.next_id.saturating_add(1);
                id
            }
        };
        let mut file = FileNode::durable(StdArc::new(bytes.to_vec()));
        file.handles = st.files.get(&id).map_or(0, |f| f.handles);
        st.files.insert(id, file);
        let node = st.dir_mut("write_file_durably", &dir)?;
        node.pending.retain(|op| op.id() != id);
        node.current.insert(name.clone(), id);
        node.durable.insert(name, id);
        Ok(())
    }

    /// Overwrites the byte at `offset` of the file at `path`, durably (the durable content
    /// changes, and so does the page cache; the pending operations are replayed over it).
    /// Not an operation: no index, no fault.
    pub fn corrupt(&self, path: &Path, offset: u64, byte: u8) -> io::Result<()> {
        let mut st = self.lock_state();
        let id = st.lookup("corrupt", path)?;
        let file = st.file_mut("corrupt", path, id)?;
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        let slot = StdArc::make_mut(&mut file.durable)
            .get_mut(at)
            .ok_or_else(|| {
                io::Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "corrupt {}: offset {offset} past durable end",
                        path.display()
                    ),
                )
            })?;
        *slot = byte;
        if let Some(slot) = file
            .clean
            .as_mut()
            .and_then(|c| StdArc::make_mut(c).get_mut(at))
        {
            *slot = byte;
        }
        file.replay();
        Ok(())
    }

    /// Paths of every file that exists now, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        let st = self.lock_state();
        let mut out: Vec<PathBuf> = st
            .dirs
            .iter()
            .flat_map(|(dir, node)| node.current.keys().map(move |name| dir.join(name)))
            .collect();
        out.sort();
        out
    }
}

impl Disk for SimDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock_state();
        st.begin("create_dir_all", dir, self.process)?;
        st.make_dirs(&normalize(dir))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut st = self.lock_state();
        st.begin("list", dir, self.process)?;
        let node = st.dir_mut("list", &normalize(dir))?;
        Ok(node.current.keys().cloned().collect())
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let mut st = self.lock_state();
        st.begin("create_new", path, self.process)?;
        let (dir, name) = split("create_new", path)?;
        let id = st.next_id;
        let is_dir = st.dirs.contains_key(&normalize(path));
        let node = st.dir_mut("create_new", &dir)?;
        if is_dir || node.current.contains_key(&name) {
            return Err(io::Error::new(
                ErrorKind::AlreadyExists,
                format!("create_new {}: already exists", path.display()),
            ));
        }
        node.current.insert(name.clone(), id);
        node.pending.push(DirOp::Create { name, id });
        st.next_id = st.next_id.saturating_add(1);
        st.files.insert(id, FileNode::empty());
        Ok(st.handle(&self.state, id, path, true))
    }

    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn DiskFile>> {
        let mut st = self.lock_state();
        st.begin("open", path, self.process)?;
        let id = st.lookup("open", path)?;
        Ok(st.handle(&self.state, id, path, writable))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock_state();
        st.begin("remove", path, self.process)?;
        let id = st.lookup("remove", path)?;
        let (dir, name) = split("remove", path)?;
        let node = st.dir_mut("remove", &dir)?;
        node.current.remove(&name);
        node.pending.push(DirOp::Remove { name, id });
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock_state();
        st.begin("rename", from, self.process)?;
        let id = st.lookup("rename", from)?;
        let (from_dir, from_name) = split("rename", from)?;
        let (to_dir, to_name) = split("rename", to)?;
        if st.dirs.contains_key(&normalize(to)) {
            return Err(io::Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "rename {} -> {}: target is a directory",
                    from.display(),
                    to.display()
                ),
            ));
        }
        st.dir_mut("rename", &to_dir)?;
        if from_dir == to_dir {
            if from_name == to_name {
                return Ok(());
            }
            let node = st.dir_mut("rename", &from_dir)?;
            node.current.remove(&from_name);
            node.current.insert(to_name.clone(), id);
            node.pending.push(DirOp::Rename {
                from: from_name,
                to: to_name,
                id,
            });
        } else {
            // Two directories, two independent entry operations (each needs its sync_dir).
            let src = st.dir_mut("rename", &from_dir)?;
            src.current.remove(&from_name);
            src.pending.push(DirOp::Remove {
                name: from_name,
                id,
            });
            let dst = st.dir_mut("rename", &to_dir)?;
            dst.current.insert(to_name.clone(), id);
            dst.pending.push(DirOp::Create { name: to_name, id });
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock_state();
        let index = st.begin("sync_dir", dir, self.process)?;
        let node = st.dir_mut("sync_dir", &normalize(dir))?;
        let persisted = !node.pending.is_empty();
        node.durable = node.current.clone();
        node.pending.clear();
        st.synced(index, persisted);
        st.collect_garbage();
        Ok(())
    }

    fn lock(&self, dir: &Path) -> io::Result<Box<dyn DiskLock>> {
        let dir = normalize(dir);
        let mut st = self.lock_state();
        st.begin("lock", &dir, self.process)?;
        let id = st.next_id;
        let node = st.dir_mut("lock", &dir)?;
        let created = !node.current.contains_key(LOCK_FILE_NAME);
        if created {
            // Created durably, like FsDisk does (it syncs the directory after creating it).
            node.current.insert(LOCK_FILE_NAME.to_owned(), id);
            node.durable.insert(LOCK_FILE_NAME.to_owned(), id);
        }
        if created {
            st.next_id = st.next_id.saturating_add(1);
            st.files.insert(id, FileNode::empty());
        }
        if st.locks.contains_key(&dir) || st.shared_locks.contains_key(&dir) {
            return Err(io::Error::new(
                ErrorKind::WouldBlock,
                format!(
                    "lock {}: held by another holder",
                    dir.join(LOCK_FILE_NAME).display()
                ),
            ));
        }
        st.locks.insert(dir.clone(), self.process);
        Ok(Box::new(SimLock {
            state: Arc::clone(&self.state),
            dir,
            process: self.process,
            shared: false,
        }))
    }

    fn lock_shared(&self, dir: &Path) -> io::Result<Box<dyn DiskLock>> {
        let dir = normalize(dir);
        let mut st = self.lock_state();
        st.begin("lock_shared", &dir, self.process)?;
        let lock_file = dir.join(LOCK_FILE_NAME);
        st.lookup("lock_shared", &lock_file)?;
        if st.locks.contains_key(&dir) {
            return Err(io::Error::new(
                ErrorKind::WouldBlock,
                format!("lock_shared {}: held by a writer", lock_file.display()),
            ));
        }
        *st.shared_locks.entry(dir.clone()).or_insert(0) += 1;
        Ok(Box::new(SimLock {
            state: Arc::clone(&self.state),
            dir,
            process: self.process,
            shared: true,
        }))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let mut st = self.lock_state();
        st.begin("exists", path, self.process)?;
        Ok(st.dirs.contains_key(&normalize(path)) || st.lookup("exists", path).is_ok())
    }
}

/// A handle on a simulated inode.
struct SimFile {
    state: Arc<Mutex<State>>,
    id: FileId,
    path: PathBuf,
    writable: bool,
    /// The process that opened it.
    process: u64,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("writable", &self.writable)
            .finish()
    }
}

impl SimFile {
    fn check_writable(&self, op: &str) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(
                ErrorKind::PermissionDenied,
                format!("{op} {}: file not opened for writing", self.path.display()),
            ))
        }
    }

    fn sync(&mut self, op: &'static str) -> io::Result<()> {
        let mut st = self.state.lock();
        match st.begin_op(op, &self.path, self.process) {
            Begun::Go(index) => {
                let file = st.file_mut(op, &self.path, self.id)?;
                let persisted = !file.pending.is_empty();
                file.sync();
                st.synced(index, persisted);
                Ok(())
            }
            Begun::Fail(e, fault) => {
                if let Some(Fault {
                    kind: FaultKind::Transient,
                    failed_sync,
                    ..
                }) = fault
                {
                    if let Ok(file) = st.file_mut(op, &self.path, self.id) {
                        file.fail_sync(failed_sync);
                    }
                }
                Err(e)
            }
        }
    }
}

impl DiskFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        let mut st = self.state.lock();
        st.begin("len", &self.path, self.process)?;
        Ok(st.file_mut("len", &self.path, self.id)?.current.len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut st = self.state.lock();
        st.begin("read_at", &self.path, self.process)?;
        let file = st.file_mut("read_at", &self.path, self.id)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let src = file.current.get(start..).unwrap_or(&[]);
        let n = src.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut st = self.state.lock();
        let (op_index, fail) = match st.begin_op("append", &self.path, self.process) {
            Begun::Go(index) => (index, None),
            Begun::Fail(e, Some(fault)) => (st.op_count.saturating_sub(1), Some((e, fault))),
            Begun::Fail(e, None) => return Err(e),
        };
        self.check_writable("append")?;
        // A failing append writes nothing, or the prefix a short write asks for.
        let written = match &fail {
            None => data.len(),
            Some((_, fault)) => fault
                .short_write
                .map_or(0, |n| n.min(data.len().saturating_sub(1))),
        };
        if let Some(bytes) = data.get(..written).filter(|b| !b.is_empty()) {
            let file = st.file_mut("append", &self.path, self.id)?;
            let offset = file.current.len();
            StdArc::make_mut(&mut file.current).extend_from_slice(bytes);
            file.pending.push(FileOp::Write {
                offset,
                bytes: StdArc::from(bytes),
                op_index,
            });
        }
        match fail {
            Some((e, _)) => Err(e),
            None => Ok(()),
        }
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut st = self.state.lock();
        st.begin("truncate", &self.path, self.process)?;
        self.check_writable("truncate")?;
        let len = usize::try_from(len).map_err(|_| {
            io::Error::new(
                ErrorKind::InvalidInput,
                format!("truncate {}: length {len} too large", self.path.display()),
            )
        })?;
        let file = st.file_mut("truncate", &self.path, self.id)?;
        if file.current.len() == len {
            return Ok(());
        }
        StdArc::make_mut(&mut file.current).resize(len, 0);
        file.pending.push(FileOp::Truncate { len });
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.sync("sync_data")
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync("sync_all")
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        if st.process != self.process {
            // A dead process's handles stopped counting when it died.
            return;
        }
        let last = match st.files.get_mut(&self.id) {
            Some(f) => {
                f.handles = f.handles.saturating_sub(1);
                f.handles == 0
            }
            None => false,
        };
        if last {
            st.collect_garbage();
        }
    }
}

/// A held simulated directory lock; dropping it releases the directory.
struct SimLock {
    state: Arc<Mutex<State>>,
    dir: PathBuf,
    /// The process holding it.
    process: u64,
    /// A shared (read-only) holder rather than the exclusive one.
    shared: bool,
}

impl fmt::Debug for SimLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLock").field("dir", &self.dir).finish()
    }
}

impl DiskLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        if st.process != self.process {
            // Released when its process died.
            return;
        }
        if self.shared {
            if let Some(n) = st.shared_locks.get_mut(&self.dir) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    st.shared_locks.remove(&self.dir);
                }
            }
        } else if st.locks.get(&self.dir) == Some(&self.process) {
            st.locks.remove(&self.dir);
        }
    }
}

//! [`SimDisk`]: a deterministic in-memory [`Disk`] that remembers what is durable and what is
//! not, injects I/O faults at a chosen operation, and enumerates crash images.
//!
//! # State
//! Files are inodes (identified by a number) holding their *durable* bytes and the list of
//! operations (appends, truncations) since their last `sync_data`/`sync_all`. Directories map
//! names to inodes; each keeps its *durable* entries and the entry operations (create, remove,
//! rename) since its last [`Disk::sync_dir`]. Handles refer to the inode, so a rename or a
//! remove does not break an open handle. Directories themselves are created durably by
//! [`Disk::create_dir_all`] and are never removed.
//!
//! # Operations and faults
//! Every call that touches the state (`create_dir_all`, `list`, `create_new`, `open`, `remove`,
//! `rename`, `sync_dir`, `lock`, `exists`, and on handles `len`, `read_at`, `append`,
//! `truncate`, `sync_data`, `sync_all`) takes the next 0-based operation index, whether it then
//! succeeds or not. [`SimDisk::fail_at`] makes the operation with a given index fail with
//! "simulated I/O fault at op N: <op> <path>" (kind `Other`) and no effect at all (a failed
//! append writes nothing); a [`FaultKind::Persistent`] fault also fails every later operation
//! (a power cut: nothing changes any more, and [`SimDisk::crash_images`] shows what may survive).
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

/// How an injected fault behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Only the chosen operation fails (and has no effect); later operations work.
    Transient,
    /// The chosen operation and every later one fail: the disk is dead (a power cut), nothing
    /// changes any more until [`SimDisk::clear_faults`].
    Persistent,
}

/// An unsynced operation on a file's data.
#[derive(Debug, Clone)]
enum FileOp {
    /// `bytes` appended at the end; `op_index` is the disk operation that did it.
    Append { bytes: StdArc<[u8]>, op_index: u64 },
    /// The file cut (or zero-extended) to `len` bytes.
    Truncate { len: usize },
}

impl FileOp {
    /// Applies the operation to `content`.
    fn apply(&self, content: &mut Vec<u8>) {
        match self {
            FileOp::Append { bytes, .. } => content.extend_from_slice(bytes),
            FileOp::Truncate { len } => content.resize(*len, 0),
        }
    }
}

/// A simulated inode.
#[derive(Debug, Clone)]
struct FileNode {
    /// What survives any crash.
    durable: StdArc<Vec<u8>>,
    /// What reads see: `durable` with every `pending` op applied.
    current: StdArc<Vec<u8>>,
    /// Operations since the last data sync, oldest first.
    pending: Vec<FileOp>,
    /// Open handles; an inode no directory refers to is freed when this drops to 0.
    handles: usize,
}

impl FileNode {
    fn empty() -> Self {
        let bytes = StdArc::new(Vec::new());
        FileNode {
            durable: StdArc::clone(&bytes),
            current: bytes,
            pending: Vec::new(),
            handles: 0,
        }
    }

    /// A node whose content is all durable (`durable` and `current` share the bytes until the
    /// first write).
    fn durable(bytes: StdArc<Vec<u8>>) -> Self {
        FileNode {
            durable: StdArc::clone(&bytes),
            current: bytes,
            pending: Vec::new(),
            handles: 0,
        }
    }

    /// Makes every pending operation durable.
    fn sync(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let only_appends = self
            .pending
            .iter()
            .all(|op| matches!(op, FileOp::Append { .. }));
        match StdArc::get_mut(&mut self.durable) {
            // The usual case costs the appended bytes, not the file size.
            Some(durable) if only_appends => {
                for op in &self.pending {
                    op.apply(durable);
                }
            }
            _ => self.durable = StdArc::new(self.current.as_ref().clone()),
        }
        self.pending.clear();
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
    faults: BTreeMap<u64, FaultKind>,
    dead: bool,
    sync_ops: Vec<u64>,
    locks: BTreeSet<PathBuf>,
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
            faults: BTreeMap::new(),
            dead: false,
            sync_ops: Vec::new(),
            locks: BTreeSet::new(),
        }
    }

    /// Takes the next operation index; fails if a fault is scheduled there or the disk is dead.
    fn begin(&mut self, op: &str, path: &Path) -> io::Result<u64> {
        let index = self.op_count;
        self.op_count = self.op_count.saturating_add(1);
        let fail = match self.faults.get(&index) {
            _ if self.dead => true,
            Some(FaultKind::Persistent) => {
                self.dead = true;
                true
            }
            Some(FaultKind::Transient) => true,
            None => false,
        };
        if fail {
            return Err(io::Error::other(format!(
                "simulated I/O fault at op {index}: {op} {}",
                path.display()
            )));
        }
        Ok(index)
    }

    fn synced(&mut self, index: u64) {
        self.sync_ops.push(index);
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

    /// A new handle on inode `id`.
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
/// Clones share the same state (they are the same disk). See the [module docs](self) for the
/// model, and [`SimDisk::crash_images`] for what a crash may leave.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock_state();
        f.debug_struct("SimDisk")
            .field("files", &st.files.len())
            .field("op_count", &st.op_count)
            .field("dead", &st.dead)
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
        SimDisk {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock_state(&self) -> impl DerefMut<Target = State> + '_ {
        self.state.lock()
    }

    /// Makes the operation with 0-based index `op_index` fail (see [`FaultKind`]).
    pub fn fail_at(&self, op_index: u64, kind: FaultKind) {
        self.lock_state().faults.insert(op_index, kind);
    }

    /// Removes every scheduled fault and revives a disk killed by a persistent fault.
    pub fn clear_faults(&self) {
        let mut st = self.lock_state();
        st.faults.clear();
        st.dead = false;
    }

    /// How many operations have been issued so far (the index the next one will get).
    pub fn op_count(&self) -> u64 {
        self.lock_state().op_count
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
    /// changes; the current content is the durable one with the pending operations replayed).
    /// Not an operation: no index, no fault.
    pub fn corrupt(&self, path: &Path, offset: u64, byte: u8) -> io::Result<()> {
        let mut st = self.lock_state();
        let id = st.lookup("corrupt", path)?;
        let file = st.file_mut("corrupt", path, id)?;
        let slot = usize::try_from(offset)
            .ok()
            .and_then(|at| StdArc::make_mut(&mut file.durable).get_mut(at))
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
        let mut current = file.durable.as_ref().clone();
        for op in &file.pending {
            op.apply(&mut current);
        }
        file.current = StdArc::new(current);
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
        st.begin("create_dir_all", dir)?;
        st.make_dirs(&normalize(dir))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut st = self.lock_state();
        st.begin("list", dir)?;
        let node = st.dir_mut("list", &normalize(dir))?;
        Ok(node.current.keys().cloned().collect())
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let mut st = self.lock_state();
        st.begin("create_new", path)?;
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
        st.begin("open", path)?;
        let id = st.lookup("open", path)?;
        Ok(st.handle(&self.state, id, path, writable))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock_state();
        st.begin("remove", path)?;
        let id = st.lookup("remove", path)?;
        let (dir, name) = split("remove", path)?;
        let node = st.dir_mut("remove", &dir)?;
        node.current.remove(&name);
        node.pending.push(DirOp::Remove { name, id });
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock_state();
        st.begin("rename", from)?;
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
        let index = st.begin("sync_dir", dir)?;
        let node = st.dir_mut("sync_dir", &normalize(dir))?;
        node.durable = node.current.clone();
        node.pending.clear();
        st.synced(index);
        st.collect_garbage();
        Ok(())
    }

    fn lock(&self, dir: &Path) -> io::Result<Box<dyn DiskLock>> {
        let dir = normalize(dir);
        let mut st = self.lock_state();
        st.begin("lock", &dir)?;
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
        if !st.locks.insert(dir.clone()) {
            return Err(io::Error::new(
                ErrorKind::WouldBlock,
                format!(
                    "lock {}: held by another holder",
                    dir.join(LOCK_FILE_NAME).display()
                ),
            ));
        }
        Ok(Box::new(SimLock {
            state: Arc::clone(&self.state),
            dir,
        }))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let mut st = self.lock_state();
        st.begin("exists", path)?;
        Ok(st.dirs.contains_key(&normalize(path)) || st.lookup("exists", path).is_ok())
    }
}

/// A handle on a simulated inode.
struct SimFile {
    state: Arc<Mutex<State>>,
    id: FileId,
    path: PathBuf,
    writable: bool,
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

    fn sync(&mut self, op: &str) -> io::Result<()> {
        let mut st = self.state.lock();
        let index = st.begin(op, &self.path)?;
        st.file_mut(op, &self.path, self.id)?.sync();
        st.synced(index);
        Ok(())
    }
}

impl DiskFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        let mut st = self.state.lock();
        st.begin("len", &self.path)?;
        Ok(st.file_mut("len", &self.path, self.id)?.current.len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut st = self.state.lock();
        st.begin("read_at", &self.path)?;
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
        let op_index = st.begin("append", &self.path)?;
        self.check_writable("append")?;
        if data.is_empty() {
            return Ok(());
        }
        let file = st.file_mut("append", &self.path, self.id)?;
        StdArc::make_mut(&mut file.current).extend_from_slice(data);
        file.pending.push(FileOp::Append {
            bytes: StdArc::from(data),
            op_index,
        });
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut st = self.state.lock();
        st.begin("truncate", &self.path)?;
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
}

impl fmt::Debug for SimLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLock").field("dir", &self.dir).finish()
    }
}

impl DiskLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.state.lock().locks.remove(&self.dir);
    }
}

//! Crash images of a [`SimDisk`]: every state the crash model lets a crash leave behind.

use super::{DirNode, DirOp, FileId, FileNode, FileOp, SimDisk, State};
use crate::sync::StdArc;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

/// Directories with at most this many pending entry operations get every subset of them
/// enumerated (2^8 = 256 images per directory at most); beyond it every prefix and every
/// "all but one" (one operation lost, every other kept).
const DIR_SUBSET_OPS_MAX: usize = 8;

/// Largest number of pending entry operations of one directory a crash keeps or loses each
/// on its own (a bit mask); beyond it (never seen in practice) only prefixes.
const DIR_MASK_OPS_MAX: usize = 64;

/// What [`SimDisk::crash_images`] enumerates beyond the default (prefixes of file data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashOptions {
    /// Also every subset of a file's unsynced appends (a dropped append before a kept one
    /// leaves a hole of zero bytes). This models file systems that reorder data writeback
    /// (e.g. ext4 `data=writeback`, or delayed allocation across pages). Applies only to files
    /// whose pending operations are all appends and number at most `max_subset_ops`.
    pub subsets: bool,
    /// Largest number of unsynced appends for which subsets are enumerated (2^n images).
    pub max_subset_ops: usize,
}

impl Default for CrashOptions {
    fn default() -> Self {
        CrashOptions {
            subsets: false,
            max_subset_ops: 8,
        }
    }
}

/// What survives of one file's unsynced operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileChoice {
    /// The first `k` pending operations, intact.
    Keep(usize),
    /// The first `keep` operations, then the first `cut` bytes of the next one (an append).
    Torn { keep: usize, cut: usize },
    /// The first `keep` operations, then garbage of the next append's length.
    Garbage { keep: usize },
    /// The appends whose bit is set (bit i = pending append i), each at its own offset.
    Subset(u64),
}

/// What survives of one directory's unsynced entry operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirChoice {
    /// The operations whose bit is set (bit i = pending operation i), each kept or lost on
    /// its own: unsynced directory operations are not ordered (ext4 without a directory
    /// fsync keeps a later unlink and loses an earlier rename as readily as the reverse).
    Mask(u64),
    /// The first k operations (directories with more than 64 pending operations).
    Prefix(usize),
}

/// One directory as the crash sees it.
#[derive(Debug)]
struct DirUnit {
    path: PathBuf,
    durable: BTreeMap<String, FileId>,
    pending: Vec<DirOp>,
}

impl DirUnit {
    /// Number of images enumerated for this directory.
    fn choice_count(&self) -> usize {
        let m = self.pending.len();
        if m <= DIR_SUBSET_OPS_MAX {
            1usize << m
        } else if m <= DIR_MASK_OPS_MAX {
            // Every prefix, then every "all but one".
            m.saturating_mul(2).saturating_add(1)
        } else {
            m.saturating_add(1)
        }
    }

    /// The outcome of enumeration index `index` (in `0..choice_count()`).
    fn enumerated(&self, index: usize) -> DirChoice {
        let m = self.pending.len();
        let all = if m >= 64 { u64::MAX } else { (1u64 << m) - 1 };
        if m <= DIR_SUBSET_OPS_MAX {
            DirChoice::Mask(index as u64)
        } else if m <= DIR_MASK_OPS_MAX {
            if index <= m {
                DirChoice::Mask(if index >= 64 {
                    u64::MAX
                } else {
                    (1u64 << index) - 1
                })
            } else {
                DirChoice::Mask(all & !(1u64 << ((index - m - 1) % 64)))
            }
        } else {
            DirChoice::Prefix(index)
        }
    }

    /// A seeded outcome: with at most 8 pending operations one `chooser(2^m)` call picks the
    /// subset (the same index as [`SimDisk::crash_images`]' order); with up to 64, one
    /// `chooser(2)` call per operation keeps (1) or loses (0) it; beyond, `chooser(m + 1)`
    /// picks a prefix. Nothing pending: no call.
    fn choose(&self, chooser: &mut dyn FnMut(usize) -> usize) -> DirChoice {
        let m = self.pending.len();
        if m == 0 {
            DirChoice::Mask(0)
        } else if m <= DIR_SUBSET_OPS_MAX {
            let n = 1usize << m;
            DirChoice::Mask((chooser(n) % n) as u64)
        } else if m <= DIR_MASK_OPS_MAX {
            let mut mask = 0u64;
            for i in 0..m {
                if chooser(2) % 2 == 1 {
                    mask |= 1u64 << i;
                }
            }
            DirChoice::Mask(mask)
        } else {
            DirChoice::Prefix(chooser(m + 1) % (m + 1))
        }
    }

    /// Whether pending operation `i` survives under `choice`.
    fn keeps(&self, choice: DirChoice, i: usize) -> bool {
        match choice {
            DirChoice::Mask(mask) => i < 64 && (mask >> i) & 1 == 1,
            DirChoice::Prefix(k) => i < k,
        }
    }

    fn entries(&self, choice: DirChoice) -> BTreeMap<String, FileId> {
        let mut entries = self.durable.clone();
        for (i, op) in self.pending.iter().enumerate() {
            if self.keeps(choice, i) {
                op.apply(&mut entries);
            }
        }
        entries
    }

    fn describe(&self, choice: DirChoice) -> String {
        let (mut kept, mut lost) = (Vec::new(), Vec::new());
        for (i, op) in self.pending.iter().enumerate() {
            let text = match op {
                DirOp::Create { name, .. } => format!("create {name}"),
                DirOp::Remove { name, .. } => format!("remove {name}"),
                DirOp::Rename { from, to, .. } => format!("rename {from}->{to}"),
            };
            if self.keeps(choice, i) {
                kept.push(text);
            } else {
                lost.push(text);
            }
        }
        format!(
            "dir {}: kept [{}] lost [{}]",
            self.path.display(),
            kept.join(", "),
            lost.join(", ")
        )
    }
}

/// One file (inode) as the crash sees it.
#[derive(Debug)]
struct FileUnit {
    id: FileId,
    name: PathBuf,
    durable: StdArc<Vec<u8>>,
    /// The page cache's clean bytes the platter lacks (see `FileNode::clean`).
    clean: Option<StdArc<Vec<u8>>>,
    /// The page cache now.
    current: StdArc<Vec<u8>>,
    pending: Vec<FileOp>,
    choices: Vec<FileChoice>,
}

/// Torn-write cut points for an append of `len` bytes: 1, len/2, len-1 (each in 1..len).
pub(super) fn torn_cuts(len: usize) -> Vec<usize> {
    let mut cuts = vec![1, len / 2, len.saturating_sub(1)];
    cuts.retain(|&c| c > 0 && c < len);
    cuts.dedup();
    cuts
}

/// Every choice the crash model allows for a file with these pending operations.
fn file_choices(pending: &[FileOp], opts: &CrashOptions) -> Vec<FileChoice> {
    let mut out = Vec::new();
    for k in 0..=pending.len() {
        out.push(FileChoice::Keep(k));
        if let Some(FileOp::Write { bytes, .. }) = pending.get(k) {
            for cut in torn_cuts(bytes.len()) {
                out.push(FileChoice::Torn { keep: k, cut });
            }
            out.push(FileChoice::Garbage { keep: k });
        }
    }
    let n = pending.len();
    let only_writes = pending.iter().all(|op| matches!(op, FileOp::Write { .. }));
    if opts.subsets && only_writes && n <= opts.max_subset_ops && n < 64 {
        // Prefix masks (2^k - 1) are already there as Keep(k).
        out.extend(
            (0..(1u64 << n))
                .filter(|mask| mask & (mask + 1) != 0)
                .map(FileChoice::Subset),
        );
    }
    out
}

/// Deterministic garbage standing in for `real` (splitmix64 seeded by inode and op index);
/// never equal to `real`, so the image differs from the intact one.
fn garbage(id: FileId, op_index: u64, real: &[u8]) -> Vec<u8> {
    let mut seed = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ op_index.rotate_left(32);
    let mut out = Vec::with_capacity(real.len().saturating_add(8));
    while out.len() < real.len() {
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(real.len());
    if out == real {
        if let Some(first) = out.first_mut() {
            *first ^= 0xFF;
        }
    }
    out
}

impl FileUnit {
    /// The pending operations that survive under `choice`, in order (a torn or garbage write
    /// becomes a write of the surviving bytes at the same offset).
    fn surviving(&self, choice: FileChoice) -> Vec<FileOp> {
        let prefix = |k: usize| self.pending.iter().take(k).cloned();
        let altered =
            |keep: usize, bytes: &dyn Fn(&[u8], u64) -> Vec<u8>| match self.pending.get(keep) {
                Some(FileOp::Write {
                    offset,
                    bytes: real,
                    op_index,
                }) => Some(FileOp::Write {
                    offset: *offset,
                    bytes: StdArc::from(bytes(real, *op_index)),
                    op_index: *op_index,
                }),
                _ => None,
            };
        match choice {
            FileChoice::Keep(k) => prefix(k).collect(),
            FileChoice::Torn { keep, cut } => prefix(keep)
                .chain(altered(keep, &|real, _| {
                    real.get(..cut).unwrap_or(&[]).to_vec()
                }))
                .collect(),
            FileChoice::Garbage { keep } => prefix(keep)
                .chain(altered(keep, &|real, op_index| {
                    garbage(self.id, op_index, real)
                }))
                .collect(),
            FileChoice::Subset(mask) => self
                .pending
                .iter()
                .enumerate()
                .filter(|(i, _)| (mask >> i) & 1 == 1)
                .map(|(_, op)| op.clone())
                .collect(),
        }
    }

    /// What a power loss leaves on the platter under `choice`: the durable bytes with the
    /// surviving operations applied (a gap before a surviving write reads as zeros).
    fn content(&self, choice: FileChoice) -> StdArc<Vec<u8>> {
        let ops = self.surviving(choice);
        if ops.is_empty() {
            return StdArc::clone(&self.durable);
        }
        let mut content = self.durable.as_ref().clone();
        for op in &ops {
            op.apply(&mut content);
        }
        StdArc::new(content)
    }

    /// The file as the next process finds it under `choice`. `exact`: the image keeps every
    /// pending operation of every file and directory, so it is exactly what a process crash
    /// leaves now (page cache included: pages a failed sync left cached but unwritten still
    /// read back). Otherwise it is what a power loss leaves (the page cache is gone), except
    /// that what survived is still treated as unsynced, so a later power loss may lose it
    /// again: a state at least as hard for recovery as either.
    fn node(&self, choice: FileChoice, exact: bool) -> FileNode {
        if exact {
            return FileNode {
                durable: StdArc::clone(&self.durable),
                clean: self.clean.clone(),
                current: StdArc::clone(&self.current),
                pending: self.pending.clone(),
                handles: 0,
            };
        }
        let pending = self.surviving(choice);
        let mut node = FileNode::durable(StdArc::clone(&self.durable));
        if !pending.is_empty() {
            let mut current = self.durable.as_ref().clone();
            for op in &pending {
                op.apply(&mut current);
            }
            node.current = StdArc::new(current);
            node.pending = pending;
        }
        node
    }

    fn describe(&self, choice: FileChoice) -> String {
        let n = self.pending.len();
        let what = match choice {
            FileChoice::Keep(k) => format!("kept {k} of {n} ops"),
            FileChoice::Torn { keep, cut } => {
                let len = match self.pending.get(keep) {
                    Some(FileOp::Write { bytes, .. }) => bytes.len(),
                    _ => 0,
                };
                format!("kept {keep} of {n} ops + torn next append ({cut} of {len} bytes)")
            }
            FileChoice::Garbage { keep } => {
                format!("kept {keep} of {n} ops + garbage in place of the next append")
            }
            FileChoice::Subset(mask) => {
                let kept: Vec<String> = (0..n)
                    .filter(|i| (mask >> i) & 1 == 1)
                    .map(|i| i.to_string())
                    .collect();
                format!("kept appends [{}] of {n} (holes zeroed)", kept.join(","))
            }
        };
        format!("file {} (#{}): {what}", self.name.display(), self.id)
    }
}

/// The part of a disk's state a crash looks at, shared by every image of one enumeration.
#[derive(Debug)]
struct Snapshot {
    dirs: Vec<DirUnit>,
    files: Vec<FileUnit>,
    next_id: FileId,
}

impl Snapshot {
    fn take(st: &State, opts: &CrashOptions) -> Snapshot {
        let mut names: BTreeMap<FileId, PathBuf> = BTreeMap::new();
        let mut referenced: BTreeSet<FileId> = BTreeSet::new();
        for (path, dir) in &st.dirs {
            let entries = dir.current.iter().chain(dir.durable.iter());
            for (name, id) in entries {
                names.entry(*id).or_insert_with(|| path.join(name));
            }
            referenced.extend(dir.durable.values().copied());
            referenced.extend(dir.pending.iter().map(DirOp::id));
        }
        let dirs = st
            .dirs
            .iter()
            .map(|(path, dir)| DirUnit {
                path: path.clone(),
                durable: dir.durable.clone(),
                pending: dir.pending.clone(),
            })
            .collect();
        let files = st
            .files
            .iter()
            .filter(|(id, _)| referenced.contains(id))
            .map(|(id, file)| FileUnit {
                id: *id,
                name: names.get(id).cloned().unwrap_or_default(),
                durable: StdArc::clone(&file.durable),
                clean: file.clean.clone(),
                current: StdArc::clone(&file.current),
                pending: file.pending.clone(),
                choices: file_choices(&file.pending, opts),
            })
            .collect();
        Snapshot {
            dirs,
            files,
            next_id: st.next_id,
        }
    }

    /// Number of choices per unit: directories first, then files.
    fn counts(&self) -> Vec<usize> {
        let dirs = self.dirs.iter().map(DirUnit::choice_count);
        dirs.chain(self.files.iter().map(|f| f.choices.len()))
            .collect()
    }
}

/// One state a crash may leave. Cheap to hold: images of one enumeration share the snapshot,
/// and a disk is only built by [`CrashImage::disk`] or [`CrashImage::power_loss_disk`].
#[derive(Clone)]
pub struct CrashImage {
    snapshot: StdArc<Snapshot>,
    /// One outcome per directory (same order as `Snapshot::dirs`).
    dirs: Box<[DirChoice]>,
    /// One choice per file: an index into its `FileUnit::choices`.
    files: Box<[usize]>,
}

impl CrashImage {
    fn dir_choices(&self) -> impl Iterator<Item = (&DirUnit, DirChoice)> {
        self.snapshot.dirs.iter().zip(self.dirs.iter().copied())
    }

    fn file_choices(&self) -> impl Iterator<Item = (&FileUnit, FileChoice)> {
        self.snapshot
            .files
            .iter()
            .zip(self.files.iter().copied())
            .map(|(f, c)| (f, f.choices.get(c).copied().unwrap_or(FileChoice::Keep(0))))
    }

    /// The image at mixed-radix enumeration index `choice` (directories, then files).
    fn enumerated(snapshot: &StdArc<Snapshot>, choice: &[usize]) -> CrashImage {
        let n = snapshot.dirs.len();
        CrashImage {
            snapshot: StdArc::clone(snapshot),
            dirs: snapshot
                .dirs
                .iter()
                .zip(choice)
                .map(|(d, &c)| d.enumerated(c))
                .collect(),
            files: choice.get(n..).unwrap_or(&[]).into(),
        }
    }

    /// A fresh disk holding this image as the next process finds it: the surviving bytes and
    /// entries that were not durable are *still not durable* (they sit in the page cache; a
    /// later power loss on the returned disk may lose them again), as after a process crash.
    /// The image that keeps every pending operation of every file and directory is exactly
    /// what a process crash leaves now (pages a failed sync left cached but unwritten
    /// included); every other image is what a power loss leaves, with what survived still
    /// unsynced. No faults, no locks, operation count 0; independent of the original disk.
    pub fn disk(&self) -> SimDisk {
        SimDisk::from_state(self.state(false))
    }

    /// A fresh disk holding this image as a power loss leaves it: everything that survived is
    /// on the platter (durable), nothing is pending. No faults, no locks, operation count 0.
    pub fn power_loss_disk(&self) -> SimDisk {
        SimDisk::from_state(self.state(true))
    }

    /// The image's state; `durable`: as a power loss leaves it, else as the next process
    /// finds it (see [`CrashImage::disk`]).
    pub(super) fn state(&self, durable: bool) -> State {
        let exact = !durable && self.keeps_everything();
        let mut st = State::new();
        for (unit, choice) in self.dir_choices() {
            let node = if durable {
                let entries = unit.entries(choice);
                DirNode {
                    durable: entries.clone(),
                    current: entries,
                    pending: Vec::new(),
                }
            } else {
                let pending: Vec<DirOp> = unit
                    .pending
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| unit.keeps(choice, *i))
                    .map(|(_, op)| op.clone())
                    .collect();
                let mut current = unit.durable.clone();
                for op in &pending {
                    op.apply(&mut current);
                }
                DirNode {
                    durable: unit.durable.clone(),
                    current,
                    pending,
                }
            };
            st.dirs.insert(unit.path.clone(), node);
        }
        let live: BTreeSet<FileId> = st
            .dirs
            .values()
            .flat_map(|d| {
                let entries = d.durable.values().chain(d.current.values()).copied();
                entries.chain(d.pending.iter().map(DirOp::id))
            })
            .collect();
        for (unit, choice) in self.file_choices() {
            if live.contains(&unit.id) {
                let node = if durable {
                    FileNode::durable(unit.content(choice))
                } else {
                    unit.node(choice, exact)
                };
                st.files.insert(unit.id, node);
            }
        }
        st.next_id = self.snapshot.next_id;
        st
    }

    /// Whether this image keeps every pending operation of every file and directory.
    fn keeps_everything(&self) -> bool {
        self.dir_choices()
            .all(|(d, c)| (0..d.pending.len()).all(|i| d.keeps(c, i)))
            && self
                .file_choices()
                .all(|(f, c)| c == FileChoice::Keep(f.pending.len()))
    }

    /// A short account of what this image kept and lost (for failure messages).
    pub fn describe(&self) -> String {
        let dirs = self
            .dir_choices()
            .filter(|(d, _)| !d.pending.is_empty())
            .map(|(d, c)| d.describe(c));
        let files = self
            .file_choices()
            .filter(|(f, _)| !f.pending.is_empty())
            .map(|(f, c)| f.describe(c));
        let parts: Vec<String> = dirs.chain(files).collect();
        if parts.is_empty() {
            "nothing pending (the durable state)".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

impl fmt::Debug for CrashImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CrashImage({})", self.describe())
    }
}

/// Advances `choice` to the next combination (mixed radix); false after the last one.
fn advance(choice: &mut [usize], counts: &[usize]) -> bool {
    for (c, n) in choice.iter_mut().zip(counts) {
        *c = c.saturating_add(1);
        if *c < *n {
            return true;
        }
        *c = 0;
    }
    false
}

impl SimDisk {
    fn snapshot(&self, opts: &CrashOptions) -> StdArc<Snapshot> {
        let st = self.lock_state();
        StdArc::new(Snapshot::take(&st, opts))
    }

    /// Every image a crash may leave now, per the crash model:
    ///
    /// - Per file, with n operations (appends, truncations) since its last data sync: the
    ///   first k intact for every k in 0..=n; when operation k+1 (the first lost) is an append
    ///   of L bytes, also that append torn after 1, L/2 and L-1 bytes (deduplicated, strictly
    ///   inside 0..L) and that append replaced by L deterministic garbage bytes. Truncations are
    ///   atomic. With [`CrashOptions::subsets`], also every subset of the appends.
    /// - Per directory, the entry operations (create, remove, rename) since its last `sync_dir`
    ///   are each kept or lost on their own: unsynced directory operations are not ordered
    ///   (ext4 without a directory fsync may keep a later unlink and lose an earlier rename).
    ///   Enumerated: every subset if there are at most 8; otherwise every prefix and every
    ///   "all but one" (2m + 1 images for m operations; every prefix only beyond 64). A
    ///   seeded crash ([`SimDisk::crash_with`], [`SimDisk::power_loss`]) draws any subset of
    ///   up to 64. A lost creation drops
    ///   the file and its data; a lost removal brings the file back with its durable data; a
    ///   lost rename leaves the old name; a kept rename whose creation was lost still shows the
    ///   file under the new name. A cross-directory rename is a removal in one directory and a
    ///   creation in the other, each kept or lost on its own.
    /// - Synced bytes and synced entries are in every image.
    ///
    /// The list is the product of those choices (files with nothing pending contribute 1), in
    /// a fixed order; it may contain equal images (e.g. a creation then removal of one file).
    pub fn crash_images(&self, opts: &CrashOptions) -> Vec<CrashImage> {
        let snapshot = self.snapshot(opts);
        let counts = snapshot.counts();
        let total = counts.iter().fold(1usize, |a, &n| a.saturating_mul(n));
        let mut out = Vec::with_capacity(total.min(1 << 16));
        let mut choice = vec![0usize; counts.len()];
        loop {
            out.push(CrashImage::enumerated(&snapshot, &choice));
            if !advance(&mut choice, &counts) {
                return out;
            }
        }
    }

    /// `self.crash_images(opts).len()`, without building the images.
    pub fn crash_image_count(&self, opts: &CrashOptions) -> usize {
        let snapshot = self.snapshot(opts);
        let counts = snapshot.counts();
        counts.iter().fold(1usize, |a, &n| a.saturating_mul(n))
    }

    /// One crash image (default options) picked by `chooser`: for every directory and file
    /// with more than one possible outcome, in the order of [`SimDisk::crash_images`],
    /// `chooser(n)` picks one of the n outcomes (taken modulo n), except that a directory with
    /// 9 to 64 pending entry operations asks `chooser(2)` once per operation (1 keeps it, 0
    /// loses it), so any subset of them can survive. Always choosing 0 gives the durable
    /// state, always choosing n - 1 the state that keeps everything; for directories with at
    /// most 8 pending operations and for files the choice index order matches
    /// `crash_images`' mixed-radix order.
    pub fn crash_with(&self, chooser: &mut dyn FnMut(usize) -> usize) -> CrashImage {
        self.crash_with_options(&CrashOptions::default(), chooser)
    }

    /// [`SimDisk::crash_with`] with explicit [`CrashOptions`].
    pub fn crash_with_options(
        &self,
        opts: &CrashOptions,
        chooser: &mut dyn FnMut(usize) -> usize,
    ) -> CrashImage {
        let snapshot = self.snapshot(opts);
        let dirs = snapshot.dirs.iter().map(|d| d.choose(chooser)).collect();
        let files = snapshot
            .files
            .iter()
            .map(|f| {
                let n = f.choices.len();
                if n > 1 {
                    chooser(n) % n
                } else {
                    0
                }
            })
            .collect();
        CrashImage {
            snapshot,
            dirs,
            files,
        }
    }
}

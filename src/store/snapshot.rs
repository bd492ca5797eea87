//! Online snapshots: [`Store::snapshot`] copies the log as it stands at the durable frontier
//! while writers keep going.
//!
//! Why a copy of the log is a point-in-time snapshot: the log is append-only and every record
//! below the durable frontier `D` is complete and synced before `D` is published, so the
//! bytes of records `0..D` never change again. The copy takes every segment that holds a
//! record below `D`: a segment the next segment's header says ends below `D` is sealed and
//! taken whole (a hard link where the disk allows), the one holding `D` is walked frame by
//! frame and cut at the first record at or above `D` (or at a write in progress). Units that
//! straddle `D` (a fence still open, a batch half written) are decided by their records when
//! the snapshot is opened, exactly as after a crash: hidden. Consumer checkpoints live in the
//! log, so they come along.

use super::{CorruptionDetail, Store, StoreError};
use crate::codec;
use crate::env::{Disk, DiskFile};
use crate::log::segment::{decode_header, parse_segment_file_name, segment_file_name};
use crate::log::SEGMENT_HEADER_BYTES;
use crate::mutant::Mutant;
use std::io::ErrorKind;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

/// Copy buffer size.
const CHUNK_BYTES: usize = 1 << 20;

/// How one segment goes into the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    /// Sealed below the frontier: the whole file, linked if possible.
    Whole,
    /// The first `len` bytes (the segment that holds the frontier, or the last one taken).
    Prefix { len: u64 },
}

/// What a snapshot wrote.
#[derive(Debug, Default)]
struct Copied {
    linked: usize,
    copied_bytes: u64,
}

impl<S> Store<S> {
    /// Writes a point-in-time copy of the store to `dest`, online: appends, fences and
    /// readers keep going while it runs. The copy holds every record below the durable
    /// frontier at the start of the call (`frontier().durable`) and nothing above it, so
    /// opened (read-only or writable) it is the store at that single frontier: a fence still
    /// open, or committed only later, stays hidden in it; consumer checkpoints (log records)
    /// are included (INV-SNAPSHOT).
    ///
    /// With deferred durability (`with_sync_every_n_events(n > 1)`) the durable frontier can
    /// lag what was acknowledged: call `sync()` first to include everything acknowledged so
    /// far.
    ///
    /// `dest` must not exist or be an empty directory (a missing one is created with its
    /// parents). When `snapshot` returns `Ok`, every file, `dest` itself and the entry of a
    /// directory it created are synced: the snapshot survives a power loss. Sealed segments
    /// are hard links where the disk allows (they never change again; compaction replaces
    /// files instead of rewriting them), the rest are copies; the last segment is always a
    /// copy, so a store opened on the snapshot never appends to a file it shares.
    ///
    /// Errors: `Configuration` if `dest` is the store's own directory or not empty; `IoAt`
    /// naming the file and operation. After an error `dest` may hold part of a copy.
    ///
    /// ```
    /// use batpak::prelude::*;
    /// use batpak::store::ReadOnly;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(StoreConfig::new(dir.path().join("live")))?;
    /// let coord = Coordinate::new("order:1", "shop")?;
    /// store.append(&coord, EventKind::custom(1, 1), &"placed")?;
    /// store.snapshot(&dir.path().join("backup"))?;
    /// store.append(&coord, EventKind::custom(1, 1), &"paid")?;
    ///
    /// let backup = Store::<ReadOnly>::open_read_only(StoreConfig::new(dir.path().join("backup")))?;
    /// assert_eq!(backup.stream("order:1").len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn snapshot(&self, dest: &Path) -> Result<(), StoreError> {
        super::flow::done("snapshot", self.snapshot_to(dest))
    }

    /// [`Store::snapshot`] without its `flow` event.
    fn snapshot_to(&self, dest: &Path) -> Result<(), StoreError> {
        let _ops = self.ops.lock();
        let disk = &*self.cfg.disk;
        let frontier = self.frontier().durable;
        let span = tracing::info_span!("snapshot", dest = %dest.display(), frontier);
        let _span = span.entered();
        prepare_dest(disk, &self.cfg.dir, dest)?;
        let plan = if self.cfg.bugs.has(Mutant::SnapshotPastFrontier) {
            plan(disk, &self.cfg.dir, u64::MAX)?
        } else {
            plan(disk, &self.cfg.dir, frontier)?
        };
        let mut copied = Copied::default();
        let last = plan.len().saturating_sub(1);
        for (i, &(id, take)) in plan.iter().enumerate() {
            let name = segment_file_name(id);
            let (from, to) = (self.cfg.dir.join(&name), dest.join(&name));
            let link = take == Take::Whole && i != last;
            if link && disk.hard_link(&from, &to).is_ok() {
                copied.linked += 1;
                continue;
            }
            let len = match take {
                Take::Whole => file_len(disk, &from)?,
                Take::Prefix { len } => len,
            };
            copy_prefix(disk, &from, &to, len, self.cfg.bugs)?;
            copied.copied_bytes += len;
        }
        // An empty lock file, as in every store directory: a read-only open of the snapshot
        // then takes its shared lock, and a snapshot of an empty store is still a store.
        let lock = dest.join(crate::env::LOCK_FILE_NAME);
        let mut f = disk
            .create_new(&lock)
            .map_err(io_at(&lock, "snapshot: create lock file"))?;
        if !self.cfg.bugs.has(Mutant::SnapshotSkipsSync) {
            f.sync_all()
                .map_err(io_at(&lock, "snapshot: sync lock file"))?;
        }
        drop(f);
        if !self.cfg.bugs.has(Mutant::SnapshotSkipsSync) {
            disk.sync_dir(dest)
                .map_err(io_at(dest, "snapshot: sync directory"))?;
        }
        tracing::info!(
            segments = plan.len(),
            linked = copied.linked,
            copied_bytes = copied.copied_bytes,
            "snapshot written"
        );
        Ok(())
    }
}

fn io_at<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::IoAt {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// `dest` exists and is empty afterwards (created durably if it was missing), and is not the
/// store's own directory.
fn prepare_dest(disk: &dyn Disk, dir: &Path, dest: &Path) -> Result<(), StoreError> {
    // Lexical only (all file access goes through the Disk): another path to the same
    // directory is refused below anyway, as not empty.
    let lexical = |p: &Path| p.components().collect::<std::path::PathBuf>();
    if lexical(dir) == lexical(dest) {
        return Err(StoreError::Configuration(format!(
            "snapshot destination {} is the store's own directory",
            dest.display()
        )));
    }
    disk.create_dir_all(dest)
        .map_err(io_at(dest, "snapshot: create destination"))?;
    let names = disk
        .list(dest)
        .map_err(io_at(dest, "snapshot: list destination"))?;
    if let Some(first) = names.first() {
        return Err(StoreError::Configuration(format!(
            "snapshot destination {} is not empty (it holds {first})",
            dest.display()
        )));
    }
    Ok(())
}

/// The segments (in order) that hold a record below `frontier`, and how much of each to take.
fn plan(disk: &dyn Disk, dir: &Path, frontier: u64) -> Result<Vec<(u64, Take)>, StoreError> {
    if frontier == 0 {
        return Ok(Vec::new());
    }
    let names = disk.list(dir).map_err(io_at(dir, "snapshot: list"))?;
    let mut ids: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    ids.sort_unstable();
    // First sequences, as far as headers are complete (a segment being created may not have
    // its header yet: it holds no record below the frontier).
    let mut firsts = Vec::with_capacity(ids.len());
    for &id in &ids {
        match first_seq(disk, &dir.join(segment_file_name(id)))? {
            Some(first) if first < frontier => firsts.push((id, first)),
            _ => break,
        }
    }
    let mut out = Vec::with_capacity(firsts.len());
    for (i, &(id, _)) in firsts.iter().enumerate() {
        let sealed = ids
            .get(i + 1)
            .and_then(|next| first_seq(disk, &dir.join(segment_file_name(*next))).ok())
            .flatten()
            .is_some_and(|next_first| next_first <= frontier);
        if sealed || frontier == u64::MAX {
            out.push((id, Take::Whole));
        } else {
            let path = dir.join(segment_file_name(id));
            let len = prefix_below(disk, &path, frontier)?;
            out.push((id, Take::Prefix { len }));
            break;
        }
    }
    Ok(out)
}

/// The first sequence a segment's header names, or `None` if the header is not (yet) whole.
fn first_seq(disk: &dyn Disk, path: &Path) -> Result<Option<u64>, StoreError> {
    let file = disk
        .open(path, false)
        .map_err(io_at(path, "snapshot: open"))?;
    let mut head = [0u8; SEGMENT_HEADER_BYTES];
    let got = file
        .read_at(0, &mut head)
        .map_err(io_at(path, "snapshot: read header"))?;
    if got < SEGMENT_HEADER_BYTES {
        return Ok(None);
    }
    Ok(decode_header(&head).ok().map(|h| h.first_seq))
}

fn file_len(disk: &dyn Disk, path: &Path) -> Result<u64, StoreError> {
    disk.open(path, false)
        .and_then(|f| f.len())
        .map_err(io_at(path, "snapshot: length"))
}

/// The length of the prefix of segment `path` that holds exactly its records below
/// `frontier`. Every such record is complete on disk (it was synced before the frontier moved
/// past it), so the walk must reach `frontier - 1`; a frame it cannot read before that is
/// damage, reported with its offset.
fn prefix_below(disk: &dyn Disk, path: &Path, frontier: u64) -> Result<u64, StoreError> {
    let file = disk
        .open(path, false)
        .map_err(io_at(path, "snapshot: open"))?;
    let mut head = [0u8; SEGMENT_HEADER_BYTES];
    let got = file
        .read_at(0, &mut head)
        .map_err(io_at(path, "snapshot: read header"))?;
    let header =
        decode_header(head.get(..got).unwrap_or(&[])).map_err(|e| StoreError::CorruptSegment {
            segment_id: 0,
            detail: CorruptionDetail::at(path, 0, format!("snapshot: segment header: {e}")),
        })?;
    let mut offset = SEGMENT_HEADER_BYTES as u64;
    let mut next = header.first_seq;
    let mut buf = vec![0u8; codec::FRAME_HEADER_BYTES];
    while next < frontier {
        let corrupt = |detail: String| StoreError::CorruptSegment {
            segment_id: header.segment_id,
            detail: CorruptionDetail::at(
                path,
                offset,
                format!("snapshot: record {next} below the durable frontier {frontier}: {detail}"),
            ),
        };
        buf.resize(codec::FRAME_HEADER_BYTES, 0);
        read_full(&*file, path, offset, &mut buf)?;
        let body = codec::peek_len(&buf, header.frame_max, header.salt)
            .map_err(|e| corrupt(e.to_string()))?;
        buf.resize(codec::FRAME_HEADER_BYTES + body as usize, 0);
        read_full(&*file, path, offset, &mut buf)?;
        let (record, total) = codec::decode(&buf, header.frame_max, header.salt)
            .map_err(|e| corrupt(e.to_string()))?;
        if record.seq != next {
            return Err(corrupt(format!("found sequence {}", record.seq)));
        }
        next = record.body.next_seq(record.seq);
        offset += total as u64;
    }
    Ok(offset)
}

/// Reads exactly `buf.len()` bytes at `offset` (a short read is damage the caller names).
fn read_full(
    file: &dyn DiskFile,
    path: &Path,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), StoreError> {
    let mut done = 0;
    while done < buf.len() {
        let n = file
            .read_at(offset + done as u64, &mut buf[done..])
            .map_err(io_at(path, "snapshot: read"))?;
        if n == 0 {
            return Err(StoreError::IoAt {
                path: path.to_path_buf(),
                op: "snapshot: read",
                source: std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("a record below the durable frontier ends past {}", offset),
                ),
            });
        }
        done += n;
    }
    Ok(())
}

/// Copies the first `len` bytes of `from` into the new file `to` and syncs it.
fn copy_prefix(
    disk: &dyn Disk,
    from: &Path,
    to: &Path,
    len: u64,
    bugs: crate::mutant::Bugs,
) -> Result<(), StoreError> {
    let src = disk
        .open(from, false)
        .map_err(io_at(from, "snapshot: open"))?;
    let mut dst = disk
        .create_new(to)
        .map_err(io_at(to, "snapshot: create copy"))?;
    let mut buf = vec![0u8; CHUNK_BYTES.min(usize::try_from(len).unwrap_or(CHUNK_BYTES))];
    let mut at = 0u64;
    while at < len {
        let want = usize::try_from(len - at)
            .unwrap_or(CHUNK_BYTES)
            .min(buf.len());
        let chunk = &mut buf[..want];
        read_full(&*src, from, at, chunk)?;
        dst.append(chunk)
            .map_err(io_at(to, "snapshot: write copy"))?;
        at += want as u64;
    }
    if !bugs.has(Mutant::SnapshotSkipsSync) {
        dst.sync_all().map_err(io_at(to, "snapshot: sync copy"))?;
    }
    Ok(())
}

/// The paths a snapshot of `dir` would take, for tests of the plan.
#[cfg(test)]
fn planned(disk: &dyn Disk, dir: &Path, frontier: u64) -> Vec<(PathBuf, Option<u64>)> {
    plan(disk, dir, frontier)
        .unwrap_or_default()
        .into_iter()
        .map(|(id, t)| {
            let len = match t {
                Take::Whole => None,
                Take::Prefix { len } => Some(len),
            };
            (dir.join(segment_file_name(id)), len)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinate::Coordinate;
    use crate::env::sim::SimDisk;
    use crate::event::EventKind;
    use crate::store::{Store, StoreConfig};
    use crate::sync::StdArc;

    #[test]
    fn the_plan_takes_sealed_segments_whole_and_cuts_the_one_holding_the_frontier() {
        let disk = SimDisk::new();
        let cfg = StoreConfig::new("/p")
            .with_disk(StdArc::new(disk.clone()))
            .with_segment_max_bytes(400);
        let store = Store::open(cfg).unwrap();
        let coord = Coordinate::new("a", "s").unwrap();
        for i in 0..20u32 {
            store.append(&coord, EventKind::custom(1, 1), &i).unwrap();
        }
        let segs = disk
            .files()
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .count();
        assert!(segs > 3);
        let all = planned(&disk, Path::new("/p"), 20);
        assert_eq!(all.len(), segs);
        assert!(all[..segs - 1].iter().all(|(_, l)| l.is_none()));
        assert!(all[segs - 1].1.is_some());
        assert!(planned(&disk, Path::new("/p"), 0).is_empty());
        // A frontier inside the log: the segment holding record 9 is cut right after it.
        let part = planned(&disk, Path::new("/p"), 10);
        let (path, len) = part.last().unwrap().clone();
        let len = len.unwrap();
        let entry = store.query(&crate::region::Region::all())[9].disk_pos;
        assert_eq!(
            path,
            Path::new("/p").join(segment_file_name(entry.segment_id))
        );
        assert_eq!(len, entry.offset + u64::from(entry.length));
    }
}

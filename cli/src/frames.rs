//! A frame-level walk of every segment that goes on after damage, so `verify` can name every
//! damaged place in a store recovery refuses (recovery stops at the first corruption). It
//! reads the files directly with the log's own header and frame decoders (reached through
//! `batpak::__testing`: the format is not public API) and never writes.

use batpak::__testing::codec;
use batpak::__testing::log::segment::{decode_header, parse_segment_file_name};
use batpak::__testing::log::SEGMENT_HEADER_BYTES;
use std::path::{Path, PathBuf};

/// A damaged place: file, offset, what is wrong.
pub struct Damage {
    pub file: PathBuf,
    pub offset: u64,
    pub what: String,
}

/// Walks every segment in `dir` in order: headers, frames (length check, CRC, body) and the
/// sequence of the records across the log. After damage it searches forward for the next
/// frame that checks out and goes on from there.
pub fn walk(dir: &Path) -> Result<Vec<Damage>, String> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_segment_file_name(&e.file_name().to_string_lossy()))
        .collect();
    ids.sort_unstable();
    let mut out = Vec::new();
    let mut expected: Option<u64> = Some(0);
    for id in ids {
        let file = dir.join(format!("{id:020}.seg"));
        let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut damage = |offset: u64, what: String| {
            out.push(Damage {
                file: file.clone(),
                offset,
                what,
            })
        };
        let head = bytes
            .get(..SEGMENT_HEADER_BYTES.min(bytes.len()))
            .unwrap_or(&[]);
        let header = match decode_header(head) {
            Ok(h) => h,
            Err(e) => {
                damage(0, format!("segment header: {e}"));
                expected = None;
                continue;
            }
        };
        if header.segment_id != id {
            damage(0, format!("header names segment {}", header.segment_id));
        }
        if let Some(want) = expected {
            if header.first_seq != want {
                damage(
                    0,
                    format!(
                        "segment starts at sequence {}, the log before it ends at {want}",
                        header.first_seq
                    ),
                );
            }
        }
        expected = Some(header.first_seq);
        let mut off = SEGMENT_HEADER_BYTES;
        while off < bytes.len() {
            match codec::decode(&bytes[off..], header.frame_max, header.salt) {
                Ok((record, total)) => {
                    if let Some(want) = expected {
                        if record.seq != want {
                            damage(
                                off as u64,
                                format!("record has sequence {}, expected {want}", record.seq),
                            );
                        }
                    }
                    expected = Some(record.body.next_seq(record.seq));
                    off += total;
                }
                Err(e) => {
                    let next = (off + 1..bytes.len()).find(|&at| {
                        codec::decode(&bytes[at..], header.frame_max, header.salt).is_ok()
                    });
                    let end = next.unwrap_or(bytes.len());
                    damage(off as u64, format!("{} damaged bytes ({e})", end - off));
                    expected = None;
                    off = end;
                }
            }
        }
    }
    Ok(out)
}

/// The sequence ranges compaction removed (`Dropped` records with a non-empty range), in log
/// order: (first removed, first after). Reads frames as far as they check out.
pub fn dropped(dir: &Path) -> Result<Vec<(u64, u64)>, String> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_segment_file_name(&e.file_name().to_string_lossy()))
        .collect();
    ids.sort_unstable();
    let mut out = Vec::new();
    for id in ids {
        let file = dir.join(format!("{id:020}.seg"));
        let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let head = bytes
            .get(..SEGMENT_HEADER_BYTES.min(bytes.len()))
            .unwrap_or(&[]);
        let Ok(header) = decode_header(head) else {
            continue;
        };
        let mut off = SEGMENT_HEADER_BYTES;
        while let Ok((record, total)) = codec::decode(
            &bytes[off.min(bytes.len())..],
            header.frame_max,
            header.salt,
        ) {
            if let codec::RecordBody::Dropped { to } = record.body {
                if to > record.seq {
                    out.push((record.seq, to));
                }
            }
            off += total;
        }
    }
    // Superseded leftovers of an interrupted compaction (recovery ignores them) may repeat a
    // range: keep each once.
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

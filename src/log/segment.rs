//! Segment files: names (`NNNNNNNNNNNNNNNNNNNN.seg`, the id in 20 decimal digits) and the
//! 40-byte header (with the segment's salt and frame limit) in front of the frames. The
//! writer's handle on the active segment is [`super::active`].

use crate::codec::{FRAME_BODY_MIN_BYTES, FRAME_BYTES_LIMIT};
use crate::env::Disk;

/// Segment header size in bytes.
pub const SEGMENT_HEADER_BYTES: usize = 40;
/// Segment magic.
pub const SEGMENT_MAGIC: [u8; 8] = *b"BATPAKSG";
/// On-disk format version.
pub const FORMAT_VERSION: u32 = 2;

const _: () = assert!(SEGMENT_HEADER_BYTES == 8 + 4 + 8 + 8 + 4 + 4 + 4);

/// Header size of format version 1 (recognised only to refuse it by name).
const V1_HEADER_BYTES: usize = 32;

pub use crate::append::DiskPos;

/// The file name of segment `id`.
pub fn segment_file_name(id: u64) -> String {
    format!("{id:020}.seg")
}

/// The segment id of a file name, if it names a segment.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Bytes in the log's segments, so recovery can size the index once instead of growing it
/// step by step (an event frame takes at least ~80 bytes; ~200 with a 100-byte payload).
pub(crate) fn log_bytes(disk: &dyn Disk, dir: &std::path::Path) -> u64 {
    let Ok(names) = disk.list(dir) else {
        return 0;
    };
    names
        .iter()
        .filter(|n| parse_segment_file_name(n).is_some())
        .filter_map(|n| disk.open(&dir.join(n), false).ok())
        .filter_map(|f| f.len().ok())
        .sum()
}

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment id (equals the number in the file name).
    pub segment_id: u64,
    /// Sequence of the first record this segment holds (or will hold).
    pub first_seq: u64,
    /// Random salt of every frame check in this segment.
    pub salt: u32,
    /// Largest frame body in this segment: the writer's frame limit when it created the
    /// segment. Recovery and reads use it, whatever the opener's own limit.
    pub frame_max: u32,
}

/// Why bytes are not a usable segment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Short or failing its CRC: a torn or damaged header (recovery judges it as damage).
    Damaged(String),
    /// An intact header this build must not read or repair: another format version, not a
    /// batpak segment, or limits no writer produces. Never cut, never removed.
    Foreign(String),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Damaged(m) | Self::Foreign(m) => f.write_str(m),
        }
    }
}

/// Encodes a segment header: magic, version, id, first sequence, salt, frame limit, CRC of
/// the 36 bytes before.
pub fn encode_header(h: SegmentHeader) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut out = [0u8; SEGMENT_HEADER_BYTES];
    out[0..8].copy_from_slice(&SEGMENT_MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..20].copy_from_slice(&h.segment_id.to_le_bytes());
    out[20..28].copy_from_slice(&h.first_seq.to_le_bytes());
    out[28..32].copy_from_slice(&h.salt.to_le_bytes());
    out[32..36].copy_from_slice(&h.frame_max.to_le_bytes());
    let crc = crc32fast::hash(&out[0..36]);
    out[36..40].copy_from_slice(&crc.to_le_bytes());
    out
}

fn le4(s: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = s.get(..4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn le8(s: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = s.get(..8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// Decodes a segment header, saying what is wrong if it is not one. An intact header of
/// format version 1 (no salt, no frame limit) is [`HeaderError::Foreign`]: this build does not
/// read version-1 segments (spec/FORMAT.md).
pub fn decode_header(b: &[u8]) -> Result<SegmentHeader, HeaderError> {
    if let Some(v1) = b.get(..V1_HEADER_BYTES) {
        if v1[0..8] == SEGMENT_MAGIC
            && le4(&v1[8..12]) == 1
            && crc32fast::hash(&v1[0..28]) == le4(&v1[28..32])
        {
            return Err(HeaderError::Foreign(
                "segment of format version 1, which this build does not read (it reads and writes version 2, see spec/FORMAT.md)".into(),
            ));
        }
    }
    let Some(w) = b.get(..SEGMENT_HEADER_BYTES) else {
        return Err(HeaderError::Damaged(format!(
            "header has {} of {SEGMENT_HEADER_BYTES} bytes",
            b.len()
        )));
    };
    if crc32fast::hash(&w[0..36]) != le4(&w[36..40]) {
        return Err(HeaderError::Damaged("header CRC mismatch".into()));
    }
    if w[0..8] != SEGMENT_MAGIC {
        return Err(HeaderError::Foreign(
            "not a batpak segment (bad magic under a valid header CRC)".into(),
        ));
    }
    let version = le4(&w[8..12]);
    if version != FORMAT_VERSION {
        return Err(HeaderError::Foreign(format!(
            "segment of format version {version}, which this build does not read (it reads version {FORMAT_VERSION})"
        )));
    }
    let frame_max = le4(&w[32..36]);
    if frame_max > FRAME_BYTES_LIMIT || (frame_max as usize) < FRAME_BODY_MIN_BYTES {
        return Err(HeaderError::Foreign(format!(
            "segment frame limit {frame_max} outside {FRAME_BODY_MIN_BYTES}..={FRAME_BYTES_LIMIT}"
        )));
    }
    Ok(SegmentHeader {
        segment_id: le8(&w[12..20]),
        first_seq: le8(&w[20..28]),
        salt: le4(&w[28..32]),
        frame_max,
    })
}

/// Whether syncs use `fdatasync` or `fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// `fsync`: data and metadata.
    SyncAll,
    /// `fdatasync`: data (and the metadata needed to read it back).
    #[default]
    SyncData,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_damage_is_named() {
        let h = SegmentHeader {
            segment_id: 7,
            first_seq: 99,
            salt: 0xDEAD_BEEF,
            frame_max: 1 << 20,
        };
        let b = encode_header(h);
        assert_eq!(decode_header(&b), Ok(h));
        let mut bad = b;
        bad[0] ^= 1;
        assert_eq!(
            decode_header(&bad),
            Err(HeaderError::Damaged("header CRC mismatch".to_string()))
        );
        assert!(matches!(
            decode_header(&b[..10]),
            Err(HeaderError::Damaged(_))
        ));
    }

    #[test]
    fn intact_headers_of_other_versions_or_limits_are_foreign_never_damage() {
        // A version-1 header: magic, version 1, id, first sequence, CRC of the 28 bytes.
        let mut v1 = [0u8; 32];
        v1[0..8].copy_from_slice(&SEGMENT_MAGIC);
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        v1[12..20].copy_from_slice(&3u64.to_le_bytes());
        let crc = crc32fast::hash(&v1[0..28]);
        v1[28..32].copy_from_slice(&crc.to_le_bytes());
        let mut file = v1.to_vec();
        file.extend_from_slice(&[0xAB; 64]); // its frames
        assert!(matches!(
            decode_header(&file),
            Err(HeaderError::Foreign(m)) if m.contains("version 1")
        ));
        let reseal = |mut b: [u8; SEGMENT_HEADER_BYTES]| {
            let crc = crc32fast::hash(&b[0..36]);
            b[36..40].copy_from_slice(&crc.to_le_bytes());
            b
        };
        let good = encode_header(SegmentHeader {
            segment_id: 1,
            first_seq: 0,
            salt: 1,
            frame_max: 4096,
        });
        let mut v3 = good;
        v3[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(
            decode_header(&reseal(v3)),
            Err(HeaderError::Foreign(_))
        ));
        let mut magic = good;
        magic[0] = b'X';
        assert!(matches!(
            decode_header(&reseal(magic)),
            Err(HeaderError::Foreign(_))
        ));
        let mut huge = good;
        huge[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_header(&reseal(huge)),
            Err(HeaderError::Foreign(_))
        ));
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_file_name("LOCK"), None);
        assert_eq!(parse_segment_file_name("42.seg"), None);
    }
}

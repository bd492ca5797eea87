//! What a scan of the log reports: what it found and kept ([`RecoveryReport`], [`TornTail`])
//! or why it refused the log ([`RecoveryError`]).

use super::segment::parse_segment_file_name;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A torn tail: damage after which nothing valid follows. Recovery cuts it off on disk, or
/// (the in-memory cut policy) leaves the file alone and stops reading there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file that held the damage.
    pub file: PathBuf,
    /// Where the damage started (after a cut on disk, the file now ends here).
    pub offset: u64,
    /// How many bytes were cut from that file (or, cut in memory, are ignored).
    pub cut_bytes: u64,
    /// What the damage was.
    pub reason: String,
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files scanned.
    pub segments: usize,
    /// Valid records handed to the visitor.
    pub records: u64,
    /// The sequence the next record must take.
    pub next_seq: u64,
    /// The last segment (id, length in bytes) to continue writing in, if any remains.
    pub active: Option<(u64, u64)>,
    /// The torn tail that was cut, if any.
    pub torn_tail: Option<TornTail>,
    /// Segment files removed because they held no record after a torn tail (none when the tail
    /// is cut in memory: they are ignored instead).
    pub removed_segments: Vec<PathBuf>,
}

/// Why recovery failed.
#[derive(Debug)]
pub enum RecoveryError {
    /// An I/O operation failed.
    Io {
        /// File or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// Damage that is not a torn tail (INV-CORRUPTION-FAILS-CLOSED).
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, op, source } => {
                write!(
                    f,
                    "I/O error during recovery: {op} {}: {source}",
                    path.display()
                )
            }
            Self::Corruption {
                file,
                offset,
                detail,
            } => write!(
                f,
                "corruption in {} at offset {offset}: {detail}",
                file.display()
            ),
        }
    }
}

impl std::error::Error for RecoveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Corruption { .. } => None,
        }
    }
}

impl From<RecoveryError> for crate::error::StoreError {
    /// An I/O error keeps its path and operation; corruption names its segment (parsed from
    /// the file name, `u64::MAX` for a file that is not a segment).
    fn from(e: RecoveryError) -> Self {
        match e {
            RecoveryError::Io { path, op, source } => Self::IoAt { path, op, source },
            RecoveryError::Corruption {
                file,
                offset,
                detail,
            } => {
                let segment_id = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(parse_segment_file_name)
                    .unwrap_or(u64::MAX);
                Self::CorruptSegment {
                    segment_id,
                    detail: crate::error::CorruptionDetail::at(file, offset, detail),
                }
            }
        }
    }
}

/// `map_err` for an I/O step of the scan: the file and the operation.
pub(crate) fn io_err<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(io::Error) -> RecoveryError + 'a {
    move |source| RecoveryError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_errors_name_the_file_the_offset_and_the_operation() {
        let c = RecoveryError::Corruption {
            file: PathBuf::from("/db/00000000000000000000.seg"),
            offset: 77,
            detail: "frame CRC mismatch".into(),
        };
        assert_eq!(
            c.to_string(),
            "corruption in /db/00000000000000000000.seg at offset 77: frame CRC mismatch"
        );
        assert!(std::error::Error::source(&c).is_none());
        let io = RecoveryError::Io {
            path: PathBuf::from("/db"),
            op: "list",
            source: io::Error::other("boom"),
        };
        assert_eq!(io.to_string(), "I/O error during recovery: list /db: boom");
        assert!(std::error::Error::source(&io).is_some());
    }
}

//! A rule file's last good copy. It is parsed again only when an edit of the file is refused or
//! `explain` asks, and otherwise only compared with what is on disk. So it is kept
//! LZ4-compressed, with the SHA-256 of its bytes for the comparisons: a blocklist of 100,000
//! rules is 5.5 MB of text, which every reload used to hold beside the rules it parsed.

use crate::policy::sources::{LoadError, LoadErrorKind};
use aws_lc_rs::digest::{digest, SHA256};
use std::sync::Arc;

/// The bytes of a file as last parsed without error. Clones share the compressed bytes.
#[derive(Clone)]
pub(super) struct GoodCopy {
    compressed: Arc<[u8]>,
    len: u64,
    sha256: [u8; 32],
}

/// The SHA-256 of `bytes`.
fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

impl GoodCopy {
    /// `bytes` as the new good copy; when they are `previous`'s, its compressed bytes are
    /// shared instead of compressed again (an unchanged file read by a reload another source
    /// caused).
    pub(super) fn new(bytes: &[u8], previous: Option<&GoodCopy>) -> GoodCopy {
        let sha256 = sha256(bytes);
        let len = bytes.len() as u64;
        if let Some(previous) = previous.filter(|p| p.len == len && p.sha256 == sha256) {
            return previous.clone();
        }
        GoodCopy {
            compressed: lz4_flex::compress_prepend_size(bytes).into(),
            len,
            sha256,
        }
    }

    /// The length of the bytes, uncompressed.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// The copy is exactly `bytes`.
    pub(super) fn is(&self, bytes: &[u8]) -> bool {
        self.len == bytes.len() as u64 && self.sha256 == sha256(bytes)
    }

    /// The copy is exactly `other`.
    pub(super) fn same_as(&self, other: &GoodCopy) -> bool {
        self.len == other.len && self.sha256 == other.sha256
    }

    /// The bytes again, for `file` (its label in errors). They were compressed in this
    /// process, so an error means memory was corrupted; the caller fails the whole reload,
    /// which leaves the rules in force as they are.
    pub(super) fn bytes(&self, file: &str) -> Result<Vec<u8>, LoadError> {
        let bytes = lz4_flex::decompress_size_prepended(&self.compressed)
            .ok()
            .filter(|b| self.is(b));
        bytes.ok_or_else(|| {
            let error = std::io::Error::other(
                "the last good copy kept in memory does not decompress to the bytes it was made of",
            );
            LoadError::new(file, (0, LoadErrorKind::Read(Arc::new(error))))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rules: usize) -> Vec<u8> {
        let mut text = String::from("#domain,#severity\n");
        for i in 0..rules {
            text.push_str(&format!("spam{i}.example,suspend\n"));
        }
        text.into_bytes()
    }

    #[test]
    fn gives_back_the_bytes_it_was_made_of_in_a_fraction_of_their_memory() {
        let bytes = list(10_000);
        let copy = GoodCopy::new(&bytes, None);
        assert_eq!(copy.bytes("list.csv").unwrap(), bytes);
        assert_eq!(copy.len(), bytes.len() as u64);
        assert!(
            copy.compressed.len() < bytes.len() / 2,
            "{}",
            copy.compressed.len()
        );
        let empty = GoodCopy::new(b"", None);
        assert_eq!(empty.bytes("empty.csv").unwrap(), b"");
    }

    #[test]
    fn tells_one_changed_byte_apart() {
        let bytes = list(100);
        let copy = GoodCopy::new(&bytes, None);
        assert!(copy.is(&bytes));
        let mut edited = bytes.clone();
        edited[40] ^= 1;
        assert!(!copy.is(&edited));
        assert!(!copy.is(&bytes[..bytes.len() - 1]));
        assert!(!copy.same_as(&GoodCopy::new(&edited, None)));
        assert!(copy.same_as(&GoodCopy::new(&bytes, None)));
    }

    #[test]
    fn the_same_bytes_again_share_the_previous_copy() {
        let bytes = list(100);
        let first = GoodCopy::new(&bytes, None);
        let again = GoodCopy::new(&bytes, Some(&first));
        assert!(Arc::ptr_eq(&first.compressed, &again.compressed));
        let mut edited = bytes.clone();
        edited.push(b'\n');
        let changed = GoodCopy::new(&edited, Some(&first));
        assert!(!Arc::ptr_eq(&first.compressed, &changed.compressed));
        assert_eq!(changed.bytes("list.csv").unwrap(), edited);
    }

    #[test]
    fn a_corrupted_copy_is_an_error_never_other_rules() {
        let bytes = list(100);
        let mut copy = GoodCopy::new(&bytes, None);
        let mut compressed = copy.compressed.to_vec();
        let last = compressed.len() - 1;
        compressed[last] ^= 0xff;
        copy.compressed = compressed.into();
        let error = copy.bytes("list.csv").unwrap_err();
        assert_eq!(error.file, "list.csv");
        assert!(matches!(error.kind, LoadErrorKind::Read(_)));
        copy.compressed = Arc::from(&b"\x05\0\0\0"[..]);
        assert!(copy.bytes("list.csv").is_err());
    }
}

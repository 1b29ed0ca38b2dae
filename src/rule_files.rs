//! Reading rule files from disk: the I/O half of a local rule source. `policy::sources`
//! parses what this reads, so `policy` itself never touches the filesystem.

use crate::policy::sources::{LoadError, LoadErrorKind, MAX_FILE_BYTES};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Reads one rule file whole, refusing one over `MAX_FILE_BYTES`. Apart from parsing so a
/// reload can keep a file's last good bytes and parse them again later. The file's label in
/// errors is `path` as given.
pub fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    let label = path.display().to_string();
    let fail = |kind| LoadError::new(&label, (0, kind));
    let read = |e| fail(LoadErrorKind::Read(Arc::new(e)));
    let file = std::fs::File::open(path).map_err(read)?;
    let len = file.metadata().map_err(read)?.len();
    if len > MAX_FILE_BYTES {
        return Err(fail(LoadErrorKind::TooLarge));
    }
    // Sized from the start: grown by doubling, reading a 5.5 MB file reallocated its buffer
    // up to 8 MB, each step copying from the old buffer to the new while both were held.
    // The size check above can race with a writer; the `take` bound cannot.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(LoadErrorKind::TooLarge));
    }
    Ok(bytes)
}

/// Reads and parses one block-rule (or TOML) file, labelled by `path` as given.
#[cfg(test)]
pub(crate) fn parse_file(
    path: &Path,
    format: crate::policy::sources::BlocklistFormat,
) -> Result<crate::policy::sources::ParsedSource, LoadError> {
    parse_file_as(path, format, crate::policy::sources::SourceKind::Block)
}

/// Reads and parses one rule file whose CSV or plain entries are of `kind`.
#[cfg(test)]
pub(crate) fn parse_file_as(
    path: &Path,
    format: crate::policy::sources::BlocklistFormat,
    kind: crate::policy::sources::SourceKind,
) -> Result<crate::policy::sources::ParsedSource, LoadError> {
    let bytes = read(path)?;
    let label = Arc::from(path.display().to_string());
    crate::policy::sources::parse_bytes_as(&bytes, label, format, kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::sources::BlocklistFormat;

    #[test]
    fn oversized_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("huge.txt");
        let file = std::fs::File::create(&path).expect("create");
        // Sparse: costs no disk, but its length is over the limit.
        file.set_len(MAX_FILE_BYTES + 1).expect("set_len");
        let e = parse_file(&path, BlocklistFormat::Auto).expect_err("too large");
        assert!(matches!(e.kind, LoadErrorKind::TooLarge));
    }
}

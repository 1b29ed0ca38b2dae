//! The on-disk last good copy of each remote source, so a restart while a list host (or
//! Mastodon) is down keeps its rules in force.
//!
//! One file per source under `<state.dir>/subscriptions/`, named by a hash of the source's
//! label (its URL). The file is one line of JSON metadata (label, validators, fetch time, body
//! length and SHA-256), a newline, then the body exactly as fetched. It is written to a
//! temporary file, synced and renamed over the old one, so a crash leaves either the old copy
//! or the new one. A file whose metadata, length or digest does not check out is corrupt: the
//! caller logs it and ignores it.

use aws_lc_rs::digest::{digest, SHA256};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Room for the metadata line on top of a source's `max_bytes`.
const MAX_META_BYTES: u64 = 64 * 1024;

/// A source's last good copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedCopy {
    pub body: Vec<u8>,
    /// Validators sent back as `If-None-Match` / `If-Modified-Since`.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Unix seconds of the fetch that produced it.
    pub fetched_at: u64,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    label: String,
    etag: Option<String>,
    last_modified: Option<String>,
    fetched_at: u64,
    len: u64,
    sha256: String,
}

/// Why a cached copy could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The file or directory could not be read, created or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a copy this code wrote for this source (truncated, edited, or a
    /// different source's).
    #[error("{path}: corrupt cache file ({problem})")]
    Corrupt {
        path: PathBuf,
        problem: &'static str,
    },
}

/// The cache directory for remote sources.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// `state_dir` is `state.dir`; nothing is created until the first write.
    pub fn new(state_dir: &Path) -> Cache {
        Cache {
            dir: state_dir.join("subscriptions"),
        }
    }

    /// The file holding `label`'s copy.
    pub fn path_of(&self, label: &str) -> PathBuf {
        let hash = digest(&SHA256, label.as_bytes());
        let name: String = hash.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.dir.join(format!("{name}.cache"))
    }

    /// Reads `label`'s copy (blocking). `Ok(None)` when there is none yet.
    pub fn read(&self, label: &str, max_bytes: u64) -> Result<Option<CachedCopy>, CacheError> {
        let path = self.path_of(label);
        let io = |source| CacheError::Io {
            path: path.clone(),
            source,
        };
        let corrupt = |problem| CacheError::Corrupt {
            path: path.clone(),
            problem,
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let limit = max_bytes.saturating_add(MAX_META_BYTES);
        let mut bytes = Vec::new();
        file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() as u64 > limit {
            return Err(corrupt("larger than the source's max_bytes"));
        }
        let newline = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| corrupt("no metadata line"))?;
        let meta: Meta = serde_json::from_slice(&bytes[..newline])
            .map_err(|_| corrupt("unreadable metadata"))?;
        if meta.label != label {
            return Err(corrupt("written for another source"));
        }
        let body = bytes.split_off(newline + 1);
        if body.len() as u64 != meta.len {
            return Err(corrupt("body length does not match"));
        }
        if hex(digest(&SHA256, &body).as_ref()) != meta.sha256 {
            return Err(corrupt("body digest does not match"));
        }
        Ok(Some(CachedCopy {
            body,
            etag: meta.etag,
            last_modified: meta.last_modified,
            fetched_at: meta.fetched_at,
        }))
    }

    /// Replaces `label`'s copy atomically (blocking): temp file, fsync, rename, directory fsync.
    pub fn write(&self, label: &str, copy: &CachedCopy) -> Result<(), CacheError> {
        let path = self.path_of(label);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let meta = Meta {
            label: label.to_string(),
            etag: copy.etag.clone(),
            last_modified: copy.last_modified.clone(),
            fetched_at: copy.fetched_at,
            len: copy.body.len() as u64,
            sha256: hex(digest(&SHA256, &copy.body).as_ref()),
        };
        // Metadata is plain strings and numbers: serialising cannot fail.
        let line = serde_json::to_vec(&meta).unwrap_or_default();
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&line)?;
            file.write_all(b"\n")?;
            file.write_all(&copy.body)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&path)(e));
        }
        // Makes the rename itself durable; not all platforms can open a directory.
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(body: &[u8]) -> CachedCopy {
        CachedCopy {
            body: body.to_vec(),
            etag: Some("\"v1\"".into()),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
            fetched_at: 1_700_000_000,
        }
    }

    #[test]
    fn round_trip_and_replace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Cache::new(dir.path());
        let label = "https://lists.example/blocks.csv";
        assert_eq!(cache.read(label, 1024).expect("none"), None);
        cache.write(label, &copy(b"a.example\n")).expect("write");
        assert_eq!(
            cache.read(label, 1024).expect("read"),
            Some(copy(b"a.example\n"))
        );
        // A body may hold newlines and any bytes; a rewrite replaces it whole.
        cache
            .write(label, &copy(b"b.example\n\xff\n"))
            .expect("write");
        assert_eq!(
            cache.read(label, 1024).expect("read").expect("some").body,
            b"b.example\n\xff\n"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("subscriptions"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp files left: {leftovers:?}");
    }

    #[test]
    fn corrupt_files_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Cache::new(dir.path());
        let label = "https://lists.example/blocks.csv";
        cache
            .write(label, &copy(b"a.example\nb.example\n"))
            .expect("write");
        let path = cache.path_of(label);
        let good = std::fs::read(&path).expect("read");

        let corrupt = |bytes: &[u8]| {
            std::fs::write(&path, bytes).expect("write");
            match cache.read(label, 1024) {
                Err(CacheError::Corrupt { problem, .. }) => problem,
                other => panic!("expected corrupt, got {other:?}"),
            }
        };
        assert_eq!(
            corrupt(&good[..good.len() - 3]),
            "body length does not match"
        );
        let mut flipped = good.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        assert_eq!(corrupt(&flipped), "body digest does not match");
        assert_eq!(corrupt(b"not json\nbody"), "unreadable metadata");
        assert_eq!(corrupt(b"no newline at all"), "no metadata line");
        // A copy larger than the source now allows (its max_bytes was lowered).
        cache
            .write(label, &copy(&vec![b'a'; 2 * MAX_META_BYTES as usize]))
            .expect("write");
        assert!(matches!(
            cache.read(label, 1),
            Err(CacheError::Corrupt {
                problem: "larger than the source's max_bytes",
                ..
            })
        ));
    }

    #[test]
    fn a_copy_is_read_only_for_its_own_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Cache::new(dir.path());
        cache
            .write("https://a.example/l", &copy(b"x\n"))
            .expect("write");
        // Simulate a hash collision: another label's file at this label's path.
        std::fs::rename(
            cache.path_of("https://a.example/l"),
            cache.path_of("https://b.example/l"),
        )
        .expect("rename");
        assert!(matches!(
            cache.read("https://b.example/l", 1024),
            Err(CacheError::Corrupt {
                problem: "written for another source",
                ..
            })
        ));
    }
}

//! The push's state file, `mastodon-push.json` in `state.dir`: the Mastodon instance it is
//! for, and per domain the id of the block inboxguard created there. Those ids are the only
//! blocks the push ever updates or deletes, so the file is written after every write to
//! Mastodon (temporary file, fsync, rename) and never guessed: a file that does not parse, or
//! names another instance, stops the push until an operator looks.
//!
//! `mastodon-push.lock` beside it is held (an advisory `flock`) for a whole cycle, so the
//! running proxy and `inboxguard push` never write at once and lose each other's ids.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "mastodon-push.json";
const LOCK_NAME: &str = "mastodon-push.lock";
const VERSION: u32 = 1;

/// What the file holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    pub version: u32,
    /// Mastodon's base URL as configured (`[mastodon] url`).
    pub url: String,
    /// By domain, the block inboxguard created.
    pub blocks: BTreeMap<String, Managed>,
}

/// A block inboxguard created, as last written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Managed {
    /// Mastodon's id (a string in its API).
    pub id: String,
    pub severity: String,
    pub reject_media: bool,
    pub reject_reports: bool,
    /// The inboxguard source of the rule.
    pub source: String,
    /// Unix seconds of the last write.
    pub at: u64,
}

/// Why the state file cannot be used; the push does nothing until it can.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a push state file ({problem}); move it away to start over (blocks it recorded are then left alone)")]
    Corrupt { path: PathBuf, problem: String },
    #[error("{path} records blocks on {recorded}, but [mastodon] url is {configured}; move it away to push to the new instance")]
    OtherInstance {
        path: PathBuf,
        recorded: String,
        configured: String,
    },
    #[error("{path}: another inboxguard is pushing to Mastodon now")]
    Busy { path: PathBuf },
}

impl StateError {
    pub fn reason(&self) -> &'static str {
        match self {
            StateError::Busy { .. } => "busy",
            _ => "state",
        }
    }
}

/// The file for one configured instance.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    lock: PathBuf,
    url: String,
}

impl StateFile {
    pub fn new(state_dir: &Path, url: &str) -> StateFile {
        StateFile {
            path: state_dir.join(FILE_NAME),
            lock: state_dir.join(LOCK_NAME),
            url: url.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
        let path = path.to_path_buf();
        move |source| StateError::Io { path, source }
    }

    /// Takes the cycle lock without waiting; it is released when the file is dropped.
    pub fn lock(&self) -> Result<File, StateError> {
        if let Some(dir) = self.lock.parent() {
            std::fs::create_dir_all(dir).map_err(self.io(dir))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(self.io(&self.lock))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(StateError::Busy {
                path: self.lock.clone(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(self.io(&self.lock)(e)),
        }
    }

    /// The recorded blocks; none yet when there is no file.
    pub fn read(&self) -> Result<State, StateError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    version: VERSION,
                    url: self.url.clone(),
                    blocks: BTreeMap::new(),
                })
            }
            Err(e) => return Err(self.io(&self.path)(e)),
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            problem: e.to_string(),
        })?;
        if state.version != VERSION {
            return Err(StateError::Corrupt {
                path: self.path.clone(),
                problem: format!(
                    "version {} (this inboxguard writes {VERSION})",
                    state.version
                ),
            });
        }
        if state.url != self.url {
            return Err(StateError::OtherInstance {
                path: self.path.clone(),
                recorded: state.url,
                configured: self.url.clone(),
            });
        }
        Ok(state)
    }

    /// Replaces the file (blocking; a few hundred bytes a block, written once per write to
    /// Mastodon, which itself costs a round trip).
    pub fn write(&self, state: &State) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            problem: e.to_string(),
        })?;
        crate::state_dirs::write_atomic(&self.path, &bytes).map_err(self.io(&self.path))
    }
}

//! Reading `explain`'s argument: a domain, an actor URI or handle, or an activity file.

use crate::activity::{Facts as ActivityFacts, FactsError};
use crate::policy::host;
use std::io::Read;
use std::path::Path;

/// Larger activity files are refused: the proxy itself refuses bodies far smaller.
pub const MAX_ACTIVITY_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What `explain` was asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A bare domain, normalised.
    Domain(String),
    /// An actor URI (`https://…`, `acct:user@host`, `@user@host`) and its normalised host.
    Actor { uri: String, host: String },
    /// An activity read from a file.
    Activity { path: String, facts: ActivityFacts },
}

/// Why the argument could not be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The argument names an existing path that could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The activity file is over `MAX_ACTIVITY_FILE_BYTES`.
    #[error("{path}: file is larger than {MAX_ACTIVITY_FILE_BYTES} bytes")]
    TooLarge { path: String },
    /// The activity file is not a JSON object.
    #[error("{path}: {source}")]
    Json { path: String, source: FactsError },
    /// The activity has no `actor`, or its host is not valid.
    #[error("{path}: the activity names no actor with a valid host")]
    NoActor { path: String },
    /// Neither an existing file, nor an actor URI with a valid host, nor a valid domain.
    #[error("{text:?} is not a domain, an actor URI or an activity file")]
    Unrecognised { text: String },
}

impl Subject {
    /// The hosts whose rule tables `report` prints: the domain, the actor's host, and for an
    /// activity the object author's host.
    pub fn hosts(&self) -> Vec<String> {
        match self {
            Subject::Domain(domain) => vec![domain.clone()],
            Subject::Actor { host, .. } => vec![host.clone()],
            Subject::Activity { facts, .. } => [
                facts.actor.as_deref(),
                facts
                    .object
                    .as_ref()
                    .and_then(|o| o.attributed_to.as_deref()),
            ]
            .into_iter()
            .flatten()
            .filter_map(host::of_uri)
            .collect(),
        }
    }
}

impl Subject {
    /// An existing path is an activity file; anything with `://` or `@` is an actor URI;
    /// anything else must be a domain.
    pub fn parse(arg: &str) -> Result<Subject, ExplainError> {
        let path = Path::new(arg);
        if is_activity_file(arg) {
            let label = path.display().to_string();
            let bytes = read_activity_file(arg)?;
            return Subject::activity(label, &bytes);
        }
        let unrecognised = || ExplainError::Unrecognised {
            text: arg.to_string(),
        };
        if arg.contains("://") || arg.contains('@') {
            let host = host::of_uri(arg).ok_or_else(unrecognised)?;
            return Ok(Subject::Actor {
                uri: arg.trim().to_string(),
                host,
            });
        }
        host::normalize(arg)
            .map(Subject::Domain)
            .ok_or_else(unrecognised)
    }
}

impl Subject {
    /// The activity `bytes` (read from `label`), for the explain that asks the running proxy.
    pub fn activity(label: String, bytes: &[u8]) -> Result<Subject, ExplainError> {
        let facts =
            ActivityFacts::parse_with_content(bytes).map_err(|source| ExplainError::Json {
                path: label.clone(),
                source,
            })?;
        if facts.actor.as_deref().and_then(host::of_uri).is_none() {
            return Err(ExplainError::NoActor { path: label });
        }
        Ok(Subject::Activity { path: label, facts })
    }
}

/// Whether `Subject::parse` reads `arg` as an activity file.
pub fn is_activity_file(arg: &str) -> bool {
    Path::new(arg).is_file() || names_a_file(arg)
}

/// The activity file `arg`, bounded by `MAX_ACTIVITY_FILE_BYTES`.
pub fn read_activity_file(arg: &str) -> Result<Vec<u8>, ExplainError> {
    let path = Path::new(arg);
    let label = path.display().to_string();
    read_bounded(path).map_err(|e| match e {
        Bounded::Io(source) => ExplainError::Read {
            path: label.clone(),
            source,
        },
        Bounded::TooLarge => ExplainError::TooLarge { path: label },
    })
}

/// A `.json` name or a relative or absolute path (a `/` but no scheme) is meant as an activity
/// file even when it does not exist: reading it gives the real error instead of explaining
/// `missing.json` as a domain.
fn names_a_file(arg: &str) -> bool {
    let arg = arg.trim();
    arg.to_ascii_lowercase().ends_with(".json") || (arg.contains('/') && !arg.contains("://"))
}

enum Bounded {
    Io(std::io::Error),
    TooLarge,
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, Bounded> {
    let file = std::fs::File::open(path).map_err(Bounded::Io)?;
    let mut bytes = Vec::new();
    file.take(MAX_ACTIVITY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(Bounded::Io)?;
    if bytes.len() as u64 > MAX_ACTIVITY_FILE_BYTES {
        return Err(Bounded::TooLarge);
    }
    Ok(bytes)
}

//! The rule-change log: one JSON line per reload that put rules in force, appended to
//! `rule-changes.jsonl` in `[state] dir` and rotated to `rule-changes.jsonl.1` by size.
//! A line holds the time, what triggered the reload (`file watch`, `SIGHUP`, `admin`,
//! `subscription`, `escalation`, `lift`), the source that asked (for a memory source), the
//! generation, and per changed source the domains added, removed and changed per severity
//! (counts), and any file refused (its last good copy stayed in force). Each write into
//! Mastodon's domain blocks (`push`) is a line too, with trigger `push`.
//!
//! Written by the reload itself (it is the reload's [`ReloadObserver`]) and by the push; a
//! lock keeps their lines whole and the rotation single. A write that fails is logged and the
//! reload goes on: the log is a record, not a precondition.

use crate::config::StateConfig;
use crate::policy::{Changes, RuleKind};
use crate::rules::{ReloadObserver, Reloaded, Trigger};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// The file name in `[state] dir`.
pub const FILE_NAME: &str = "rule-changes.jsonl";

/// One line of the log, as written and as `GET /admin/rule-changes` answers it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RuleChange {
    pub time: String,
    pub unix: u64,
    pub trigger: String,
    /// The memory source that asked for the reload; `None` for a reload of the files.
    pub source: Option<String>,
    pub generation: u64,
    /// Per source that changed.
    pub changes: BTreeMap<String, SourceChanges>,
    /// The domains behind `changes`, by name (at most 100 a reload).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<NamedChange>,
    /// `file:line: error` of each file refused (its last good copy stayed in force).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
}

/// One domain rule added, removed or changed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NamedChange {
    pub source: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    pub severity: String,
    pub domain: String,
}

/// Domains (and actors, for `actor_suspend`) added, removed and changed, per severity; a
/// severity with no change is left out.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceChanges {
    pub added: BTreeMap<String, usize>,
    pub removed: BTreeMap<String, usize>,
    pub changed: BTreeMap<String, usize>,
}

impl From<&Changes> for SourceChanges {
    fn from(c: &Changes) -> SourceChanges {
        let mut out = SourceChanges::default();
        for kind in RuleKind::ALL {
            for (map, n) in [
                (&mut out.added, c.added(kind)),
                (&mut out.removed, c.removed(kind)),
                (&mut out.changed, c.changed(kind)),
            ] {
                if n > 0 {
                    map.insert(kind.as_str().to_string(), n);
                }
            }
        }
        out
    }
}

/// The log's file and its size bound.
pub struct ChangeLog {
    dir: PathBuf,
    max_bytes: u64,
    /// Held for one append (rotation included); a std mutex, taken on blocking threads only.
    writing: std::sync::Mutex<()>,
}

impl ChangeLog {
    pub fn new(config: &StateConfig) -> ChangeLog {
        ChangeLog {
            dir: config.dir.clone(),
            max_bytes: config.rule_changes_max_bytes,
            writing: std::sync::Mutex::new(()),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    fn rotated(&self) -> PathBuf {
        self.dir.join(format!("{FILE_NAME}.1"))
    }

    /// Appends `change` as one line, first rotating the file if it is past the bound.
    pub fn append(&self, change: &RuleChange) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(change).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let _writing = self
            .writing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path();
        if std::fs::metadata(&path).is_ok_and(|m| m.len() + line.len() as u64 > self.max_bytes) {
            std::fs::rename(&path, self.rotated())?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        // One write of the whole line: a reader never sees half of it.
        file.write_all(&line)
    }

    /// The lines at or after `since` (Unix seconds), newest first, at most `limit`. Lines
    /// that do not parse (a torn write, a hand edit) are skipped.
    pub fn since(&self, since: u64, limit: usize) -> std::io::Result<Vec<RuleChange>> {
        let mut out = Vec::new();
        for path in [self.rotated(), self.path()] {
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for line in std::io::BufReader::new(file).lines() {
                if let Ok(change) = serde_json::from_str::<RuleChange>(&line?) {
                    if change.unix >= since {
                        out.push(change);
                    }
                }
            }
        }
        out.reverse();
        out.truncate(limit);
        Ok(out)
    }
}

impl ReloadObserver for ChangeLog {
    fn reloaded(&self, reload: &Reloaded<'_>) {
        let unix = crate::clock::unix_now();
        let (trigger, source) = describe(reload.trigger);
        let change = RuleChange {
            time: crate::clock::rfc3339(unix),
            unix,
            trigger: trigger.to_string(),
            source: source.map(str::to_string),
            generation: reload.generation,
            changes: reload
                .changes
                .iter()
                .map(|(source, c)| (source.to_string(), SourceChanges::from(c)))
                .collect(),
            domains: reload
                .domains
                .iter()
                .map(|d| NamedChange {
                    source: d.source.to_string(),
                    change: d.change.to_string(),
                    severity: d.kind.as_str().to_string(),
                    domain: d.domain.to_string(),
                })
                .collect(),
            refused: reload.refused.iter().map(|e| e.to_string()).collect(),
        };
        if let Err(e) = self.append(&change) {
            tracing::warn!(path = %self.path().display(), error = %e, "cannot write the rule-change log");
        }
    }
}

/// The trigger's word, and the memory source behind it. The escalated friendly federators'
/// source is `escalation` when set and `lift` when removed or lifted from; every other memory source is a
/// subscription (remote lists, the Mastodon pull).
fn describe(trigger: Trigger<'_>) -> (&'static str, Option<&str>) {
    let escalation = crate::federators::SOURCE_LABEL;
    match trigger {
        Trigger::FileWatch => ("file watch", None),
        Trigger::Sighup => ("SIGHUP", None),
        Trigger::Admin => ("admin", None),
        Trigger::SetMemory(label) if label == escalation => ("escalation", Some(label)),
        Trigger::RemoveMemory(label) if label == escalation => ("lift", Some(label)),
        Trigger::Lift(label) => ("lift", Some(label)),
        Trigger::SetMemory(label) | Trigger::RemoveMemory(label) => ("subscription", Some(label)),
        Trigger::Accept(label) => ("accept", Some(label)),
    }
}

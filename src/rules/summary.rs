//! `SourceSummary`: per source, the rules it has in force and why the rest are not, as
//! `check`, the admin reload answer and the logs report it; and `ReloadError`, the sources a
//! reload refused.

use super::guard;
use crate::policy::sources::LoadError;
use crate::policy::{Changes, RuleKind};
use std::fmt;

/// Per-source counts for `check`, the admin reload answer and logs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceSummary {
    /// The source path as configured; also the `source` metric label.
    pub source: String,
    /// Domain rules from this source in force, by severity. A domain listed in several sources
    /// counts only for the source whose rule won (the harshest, of the highest priority).
    pub suspend: usize,
    pub silence: usize,
    pub noop: usize,
    /// Allowed domains, exceptions and actor rules of this source in force (a domain or actor
    /// listed twice counts for the first source listing it).
    pub allow: usize,
    pub exclude: usize,
    pub actor_suspend: usize,
    /// Entries of this source not in force because another source lists the domain harsher
    /// or with a higher priority (or, for allow, exception and actor entries, first).
    pub overridden: usize,
    /// Block rules of this source with no effect because an exception names their domain.
    pub excluded: usize,
    /// Block rules of this (subscribed) source held back by `subscription_threshold`.
    pub below_threshold: usize,
    /// Entries containing `*` (obfuscated or wildcard) without a digest, which were skipped.
    pub obfuscated: usize,
    /// The source's `dry_run`: its rules are reported, not enforced.
    pub dry_run: bool,
    /// The source is an exception list (`exclude`).
    pub exception_list: bool,
    /// A remote subscription (subject to `subscription_threshold`).
    pub subscribed: bool,
    /// A local file whose current contents were refused by this reload: its last good copy
    /// is what is in force.
    pub stale: bool,
    /// What this source's reload changed in the rules in force (`Rules::reload` and the admin
    /// reload answer; empty for a first load, `check` and `explain`).
    pub changes: Changes,
}

impl SourceSummary {
    pub fn count(&self, kind: impl Into<RuleKind>) -> usize {
        match kind.into() {
            RuleKind::Suspend => self.suspend,
            RuleKind::Silence => self.silence,
            RuleKind::Noop => self.noop,
            RuleKind::Allow => self.allow,
            RuleKind::Exclude => self.exclude,
            RuleKind::ActorSuspend => self.actor_suspend,
        }
    }

    pub(super) fn count_mut(&mut self, kind: RuleKind) -> &mut usize {
        match kind {
            RuleKind::Suspend => &mut self.suspend,
            RuleKind::Silence => &mut self.silence,
            RuleKind::Noop => &mut self.noop,
            RuleKind::Allow => &mut self.allow,
            RuleKind::Exclude => &mut self.exclude,
            RuleKind::ActorSuspend => &mut self.actor_suspend,
        }
    }
}

/// `suspend=1 silence=0 noop=0 allow=2 exclude=0 actor_suspend=1`, then the notable extras
/// (`overridden=`, `excluded=`, `below_threshold=`, `obfuscated=`) when not 0, and the
/// source's flags. What `check` and the admin reload print per source.
impl fmt::Display for SourceSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.source)?;
        for kind in RuleKind::ALL {
            write!(f, " {kind}={}", self.count(kind))?;
        }
        for (name, n) in [
            ("overridden", self.overridden),
            ("excluded", self.excluded),
            ("below_threshold", self.below_threshold),
            ("obfuscated", self.obfuscated),
        ] {
            if n > 0 {
                write!(f, " {name}={n}")?;
            }
        }
        for (name, on) in [
            ("dry run", self.dry_run),
            ("exception list", self.exception_list),
            ("subscribed", self.subscribed),
            ("refused: last good copy in force", self.stale),
        ] {
            if on {
                write!(f, " ({name})")?;
            }
        }
        Ok(())
    }
}

impl ReloadError {
    /// Whether the shrink guard held back `label`'s new version.
    pub fn refused_shrink(&self, label: &str) -> bool {
        self.refused
            .iter()
            .any(|e| e.file == label && guard::is_refusal(e))
    }
}

/// A reload that did not put every file's current contents in force. `Display`: each refused
/// file's `file:line: error`, separated by `; `.
#[derive(Debug)]
pub struct ReloadError {
    /// Why each file was refused, in source order (read or parse errors, or a conflict between
    /// files such as two `[friendly_federators]` tables).
    pub refused: Vec<LoadError>,
    /// What is in force after the reload, per source, when the other sources' changes were
    /// applied beside the refused files' last good copies; `None` when nothing was applied and
    /// the previous snapshot stays whole.
    pub applied: Option<Vec<SourceSummary>>,
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.refused.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ReloadError {}

//! Moderation policy: an immutable snapshot of domain rules, and the pure decision function.
//!
//! OWNER: policy helper. Keep this public surface; add to it as needed.

pub mod host;

use std::sync::Arc;

/// Mastodon's domain-block severities, ordered from mildest to harshest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Noop,
    Silence,
    Suspend,
}

/// One domain rule and where it came from.
#[derive(Debug, Clone)]
pub struct DomainRule {
    pub domain: String,
    pub severity: Severity,
    pub reject_media: bool,
    pub reject_reports: bool,
    pub public_comment: Option<String>,
    /// File the rule came from, and its 1-based line.
    pub source: Arc<str>,
    pub line: usize,
}

/// The rule set in force. Built off the hot path, swapped in whole.
#[derive(Debug, Default)]
pub struct Snapshot {}

impl Snapshot {
    /// The most specific rule covering `host` (already normalised): every parent suffix is a
    /// candidate and the longest listed domain wins, as Mastodon's `DomainBlock.rule_for`.
    pub fn rule_for(&self, _host: &str) -> Option<&DomainRule> {
        todo!()
    }
    /// Total rules.
    pub fn len(&self) -> usize {
        0
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

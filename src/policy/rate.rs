//! Per-domain fair-share overrides from a TOML rules file (`[[rate_limits]]`): a relay or a
//! large server may send more than the default share. Matched by suffix like domain rules,
//! the longest listed domain winning; the pipeline turns the numbers into a bucket's shape.

use super::host;
use std::collections::HashMap;
use std::sync::Arc;

/// One `[[rate_limits]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateOverride {
    /// Normalised domain; it and its subdomains get this share.
    pub domain: String,
    pub per_second: u32,
    pub burst: u32,
    pub comment: Option<String>,
    pub source: Arc<str>,
    pub line: usize,
}

/// The overrides in force, by domain; the first given for a domain is kept.
#[derive(Debug, Default)]
pub struct RateOverrides {
    by_domain: HashMap<String, RateOverride>,
}

impl RateOverrides {
    pub fn insert_first(&mut self, rule: RateOverride) {
        self.by_domain.entry(rule.domain.clone()).or_insert(rule);
    }

    /// The override for `sender_host`: its own, else its nearest listed parent's.
    pub fn find(&self, sender_host: &str) -> Option<&RateOverride> {
        if self.by_domain.is_empty() {
            return None;
        }
        host::suffixes(sender_host).find_map(|suffix| self.by_domain.get(suffix))
    }

    pub fn len(&self) -> usize {
        self.by_domain.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &RateOverride> {
        self.by_domain.values()
    }
}

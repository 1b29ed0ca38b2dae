//! The lookup tables inside a snapshot: values found by their normalised domain without a
//! second copy of it, and a tier of domain rules by name and by digest.

use super::host;
use super::vocab::{DomainDigest, DomainEntry, DomainRule};
use hashbrown::HashTable;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

/// Something found by its normalised domain.
pub(crate) trait Named {
    fn name(&self) -> &str;
}

impl Named for DomainRule {
    fn name(&self) -> &str {
        &self.domain
    }
}

impl Named for DomainEntry {
    fn name(&self) -> &str {
        &self.domain
    }
}

/// Values by normalised domain, with the label counts in use.
///
/// The values live in one vector in the order first given, and a table of their positions
/// finds them by name, so no domain is stored twice. A table of the values themselves
/// (a rule is 64 bytes) was allocated whole at its final size and resident within its first
/// few thousand inserts, since values land at random slots, while the parsed rules that fill
/// it were still held: during a reload, two copies of every rule beside the snapshot in force.
/// The vector fills in order as the parsed rules' own vector empties (see `merge`), and the
/// table holds 8 bytes a slot.
#[derive(Debug)]
pub(super) struct NameSet<T> {
    values: Vec<T>,
    /// Positions in `values`, by the hash of the value's name.
    positions: HashTable<usize>,
    hasher: RandomState,
    /// Bit `n - 1` is set when some domain has `n` labels (bit 63: 64 or more). A suffix
    /// whose label count no domain has cannot match, so `exact` does not hash it:
    /// `a.b.c.d.e.f.bad.example` costs one lookup per label count in use, not nine.
    label_counts: u64,
}

impl<T> Default for NameSet<T> {
    fn default() -> Self {
        NameSet {
            values: Vec::new(),
            positions: HashTable::new(),
            hasher: RandomState::new(),
            label_counts: 0,
        }
    }
}

impl<T: Named> NameSet<T> {
    /// Room for `additional` more values without growing (see `Sizes`).
    pub(super) fn reserve(&mut self, additional: usize) {
        self.values.reserve_exact(additional);
        let (values, hasher) = (&self.values, &self.hasher);
        self.positions
            .reserve(additional, |&i| hasher.hash_one(values[i].name()));
    }

    fn position(&self, name: &str) -> Option<usize> {
        let values = &self.values;
        let hash = self.hasher.hash_one(name);
        let found = self.positions.find(hash, |&i| values[i].name() == name);
        found.copied()
    }

    /// Puts `value` in, replacing one of the same name.
    pub(super) fn replace(&mut self, value: T) {
        self.label_counts |= label_bit(label_count(value.name()));
        if let Some(i) = self.position(value.name()) {
            self.values[i] = value;
            return;
        }
        let hash = self.hasher.hash_one(value.name());
        let i = self.values.len();
        self.values.push(value);
        let (values, hasher) = (&self.values, &self.hasher);
        self.positions
            .insert_unique(hash, i, |&j| hasher.hash_one(values[j].name()));
    }

    /// Puts `value` in unless one of the same name is there (the first one listed stays).
    pub(super) fn insert_first(&mut self, value: T) {
        if self.position(value.name()).is_none() {
            self.replace(value);
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&T> {
        self.position(name).map(|i| &self.values[i])
    }

    /// The value for exactly `candidate`, which has `labels` labels.
    pub(super) fn exact(&self, candidate: &str, labels: usize) -> Option<&T> {
        if self.label_counts & label_bit(labels) == 0 {
            return None;
        }
        self.get(candidate)
    }

    /// The value on the longest suffix of `host` (already normalised); IP literals only
    /// exactly.
    pub(super) fn longest_suffix(&self, host: &str) -> Option<&T> {
        if self.values.is_empty() {
            return None;
        }
        host::suffixes_with_labels(host)
            .find_map(|(candidate, labels)| self.exact(candidate, labels))
    }

    pub(super) fn len(&self) -> usize {
        self.values.len()
    }

    /// In the order first given.
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.values.iter()
    }
}

/// One tier of rules (enforcing, or dry run): by name, and by digest for obfuscated entries.
#[derive(Debug, Default)]
pub(super) struct Tier {
    pub(super) by_name: NameSet<DomainRule>,
    pub(super) by_digest: HashMap<DomainDigest, DomainRule>,
}

/// The `label_counts` bit for a domain of `labels` labels.
fn label_bit(labels: usize) -> u64 {
    1 << (labels.clamp(1, 64) - 1)
}

pub(super) fn label_count(domain: &str) -> usize {
    domain.bytes().filter(|&b| b == b'.').count() + 1
}

impl Tier {
    /// Room for `named` more rules by name and `digests` more by digest.
    pub(super) fn reserve(&mut self, named: usize, digests: usize) {
        self.by_name.reserve(named);
        self.by_digest.reserve(digests);
    }

    /// Harsher wins; on a tie, the first one given.
    pub(super) fn insert(&mut self, rule: DomainRule) {
        match rule.digest.as_deref() {
            Some(&digest) => match self.by_digest.get_mut(&digest) {
                Some(existing) if !rule.is_harsher_than(existing) => {}
                Some(existing) => *existing = rule,
                None => {
                    self.by_digest.insert(digest, rule);
                }
            },
            None => match self.by_name.get(&rule.domain) {
                Some(existing) if !rule.is_harsher_than(existing) => {}
                // Harsher than the rule listed so far, or the first one: in force.
                _ => self.by_name.replace(rule),
            },
        }
    }

    pub(super) fn len(&self) -> usize {
        self.by_name.len() + self.by_digest.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &DomainRule> {
        self.by_name.iter().chain(self.by_digest.values())
    }

    pub(super) fn get(&self, domain: &str) -> Option<&DomainRule> {
        self.by_name.get(domain)
    }

    /// The rules listed for exactly `candidate` (of `labels` labels): by name, then by digest
    /// (when `digest` is given, which the caller does only when this snapshot has digest rules).
    pub(super) fn exact<'s>(
        &'s self,
        candidate: &str,
        labels: usize,
        digest: Option<&DomainDigest>,
    ) -> impl Iterator<Item = &'s DomainRule> {
        self.by_name
            .exact(candidate, labels)
            .into_iter()
            .chain(digest.and_then(|d| self.by_digest.get(d)))
    }
}

/// The harsher of two rules; on a tie, `a`.
pub(super) fn harsher<'r>(a: Option<&'r DomainRule>, b: &'r DomainRule) -> &'r DomainRule {
    match a {
        Some(a) if !b.is_harsher_than(a) => a,
        _ => b,
    }
}

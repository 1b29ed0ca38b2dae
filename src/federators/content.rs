//! Content-rule evidence: per content rule and sending domain, how many activities matched,
//! when first and last, the newest activity ids, and per-day counts for the rule's escalation
//! window. Lives in the friendly-federator store, so it is saved with the evidence file on the
//! same tick and loaded at startup. Bounded: past `MAX_PAIRS` (rule, domain) pairs, the pair
//! with the fewest matches makes room, so a wave from thousands of one-post servers cannot
//! grow it without limit.

use super::days::{bump_day, in_window};
use crate::clock::{rfc3339, truncate};
use crate::config::MAX_WINDOW_DAYS;
use crate::policy::host;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// (rule, sending domain) pairs kept at most.
pub const MAX_PAIRS: usize = 10_000;
/// Newest activity ids kept per pair.
pub const MAX_SAMPLES: usize = 5;
/// A sample id longer than this is cut (on a character boundary).
const MAX_SAMPLE_BYTES: usize = 512;

/// What is known of one (rule, domain) pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Pair {
    pub(super) matches: u64,
    pub(super) dry_run: u64,
    pub(super) first_seen: u64,
    pub(super) last_seen: u64,
    pub(super) samples: VecDeque<String>,
    /// `(UTC day number, matches)`, oldest first, for the rule's escalation window.
    pub(super) days: Vec<(u64, u64)>,
}

/// One pair in the evidence file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PairRecord {
    rule: String,
    domain: String,
    matches: u64,
    #[serde(default)]
    dry_run: u64,
    first_seen: u64,
    last_seen: u64,
    #[serde(default)]
    samples: Vec<String>,
    #[serde(default)]
    days: Vec<(u64, u64)>,
}

/// The pairs, keyed by (rule, domain).
#[derive(Debug, Default)]
pub(super) struct ContentStore {
    pub(super) pairs: HashMap<(String, String), Pair>,
}

/// One match of a content rule, as the request path hands it in.
#[derive(Debug, Clone, Copy)]
pub struct ContentMatch<'a> {
    pub rule: &'a str,
    /// The signer's (keyId) host.
    pub domain: &'a str,
    pub dry_run: bool,
    pub id: Option<&'a str>,
    /// Days of per-day counts to keep: the rule's escalation window, else 1.
    pub window_days: u32,
}

/// `GET /admin/content-rules`, and the `content_rules` of the report: per rule, its sending
/// domains, most matches first.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ContentReport {
    pub rules: Vec<RuleReport>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RuleReport {
    pub rule: String,
    pub matches: u64,
    pub domains: Vec<ContentDomainReport>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ContentDomainReport {
    pub domain: String,
    pub matches: u64,
    /// Of those, matched by the rule in dry run (forwarded).
    pub dry_run: u64,
    /// Matches within the rule's escalation window (since a lift, if one came later); absent
    /// when the rule does not escalate or is not loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_window: Option<u64>,
    pub first_seen: String,
    pub last_seen: String,
    pub samples: Vec<String>,
}

impl ContentStore {
    /// Counts one match at `now`.
    pub(super) fn record(&mut self, m: &ContentMatch<'_>, now: u64) {
        let key = (m.rule.to_string(), m.domain.to_string());
        if !self.pairs.contains_key(&key) && self.pairs.len() >= MAX_PAIRS {
            // The pair with the fewest matches (the oldest among equals) makes room. A linear
            // scan, only when a new pair arrives at a full store.
            if let Some(smallest) = self
                .pairs
                .iter()
                .min_by_key(|(_, p)| (p.matches, p.last_seen))
                .map(|(k, _)| k.clone())
            {
                self.pairs.remove(&smallest);
            }
        }
        let pair = self.pairs.entry(key).or_insert_with(|| Pair {
            first_seen: now,
            ..Pair::default()
        });
        pair.matches = pair.matches.saturating_add(1);
        pair.dry_run = pair.dry_run.saturating_add(u64::from(m.dry_run));
        pair.first_seen = pair.first_seen.min(now);
        pair.last_seen = pair.last_seen.max(now);
        if let Some(id) = m.id {
            if pair.samples.len() >= MAX_SAMPLES {
                pair.samples.pop_front();
            }
            pair.samples
                .push_back(truncate(id, MAX_SAMPLE_BYTES).to_string());
        }
        bump_day(
            &mut pair.days,
            now / super::SECS_PER_DAY,
            m.window_days.clamp(1, MAX_WINDOW_DAYS),
        );
    }

    /// Forgets the per-day counts of every pair of `domain`: after a lift, only matches
    /// counted from then on can escalate it again.
    pub(super) fn forget_days(&mut self, domain: &str) {
        for ((_, d), pair) in &mut self.pairs {
            if d == domain {
                pair.days.clear();
            }
        }
    }

    pub(super) fn to_records(&self) -> Vec<PairRecord> {
        let mut out: Vec<PairRecord> = self
            .pairs
            .iter()
            .map(|((rule, domain), p)| PairRecord {
                rule: rule.clone(),
                domain: domain.clone(),
                matches: p.matches,
                dry_run: p.dry_run,
                first_seen: p.first_seen,
                last_seen: p.last_seen,
                samples: p.samples.iter().cloned().collect(),
                days: p.days.clone(),
            })
            .collect();
        out.sort_by(|a, b| (&a.rule, &a.domain).cmp(&(&b.rule, &b.domain)));
        out
    }

    /// The store from the file's records, cut to the bounds; a record whose domain is not a
    /// normalised host or whose rule name is empty (a hand-edited file) is skipped.
    pub(super) fn from_records(mut records: Vec<PairRecord>) -> ContentStore {
        records.retain(|r| {
            !r.rule.is_empty()
                && r.rule.len() <= 64
                && host::normalize(&r.domain).as_deref() == Some(&*r.domain)
        });
        if records.len() > MAX_PAIRS {
            records.sort_by_key(|r| std::cmp::Reverse(r.matches));
            records.truncate(MAX_PAIRS);
        }
        let pairs = records
            .into_iter()
            .map(|r| {
                let mut days = r.days;
                days.sort_unstable();
                days.dedup_by_key(|d| d.0);
                let newest = days.last().map_or(0, |d| d.0);
                days.retain(|d| d.0 + u64::from(MAX_WINDOW_DAYS) > newest);
                let skip = r.samples.len().saturating_sub(MAX_SAMPLES);
                let pair = Pair {
                    matches: r.matches,
                    dry_run: r.dry_run.min(r.matches),
                    first_seen: r.first_seen,
                    last_seen: r.last_seen.max(r.first_seen),
                    samples: r
                        .samples
                        .iter()
                        .skip(skip)
                        .map(|s| truncate(s, MAX_SAMPLE_BYTES).to_string())
                        .collect(),
                    days,
                };
                ((r.rule, r.domain), pair)
            })
            .collect();
        ContentStore { pairs }
    }

    /// Every rule with matches, most first, and its domains, most first; `top` domains each.
    /// `window`: a rule's escalation window in days, when it escalates.
    pub(super) fn report(
        &self,
        top: usize,
        now: u64,
        window: &dyn Fn(&str) -> Option<u32>,
    ) -> Vec<RuleReport> {
        let mut by_rule: HashMap<&str, Vec<(&str, &Pair)>> = HashMap::new();
        for ((rule, domain), pair) in &self.pairs {
            by_rule.entry(rule).or_default().push((domain, pair));
        }
        let mut rules: Vec<RuleReport> = by_rule
            .into_iter()
            .map(|(rule, mut domains)| {
                domains.sort_by(|a, b| b.1.matches.cmp(&a.1.matches).then(a.0.cmp(b.0)));
                let days = window(rule);
                RuleReport {
                    rule: rule.to_string(),
                    matches: domains.iter().map(|(_, p)| p.matches).sum(),
                    domains: domains
                        .into_iter()
                        .take(top)
                        .map(|(domain, p)| ContentDomainReport {
                            domain: domain.to_string(),
                            matches: p.matches,
                            dry_run: p.dry_run,
                            in_window: days.map(|d| in_window(&p.days, now, d)),
                            first_seen: rfc3339(p.first_seen),
                            last_seen: rfc3339(p.last_seen),
                            samples: p.samples.iter().cloned().collect(),
                        })
                        .collect(),
                }
            })
            .collect();
        rules.sort_by(|a, b| b.matches.cmp(&a.matches).then(a.rule.cmp(&b.rule)));
        rules
    }
}

//! Which servers a wave comes from: per content rule and sending domain, how many
//! activities matched, when first and last, and the newest activity ids. Bounded: past
//! `MAX_PAIRS` (rule, domain) pairs, the pair with the fewest matches makes room, so a wave
//! from thousands of one-post servers cannot grow it without limit.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// (rule, sending domain) pairs kept at most.
pub const MAX_PAIRS: usize = 10_000;
/// Newest activity ids kept per pair.
pub const MAX_SAMPLES: usize = 5;
/// A sample id longer than this is cut (on a character boundary).
const MAX_SAMPLE_BYTES: usize = 512;

#[derive(Debug, Clone, Default, Serialize)]
struct Pair {
    matches: u64,
    dry_run: u64,
    first_seen: u64,
    last_seen: u64,
    samples: VecDeque<String>,
}

/// The evidence, shared by every request.
#[derive(Debug, Default)]
pub struct ContentEvidence {
    pairs: Mutex<HashMap<(String, String), Pair>>,
}

/// `GET /admin/content-rules`: per rule, its sending domains, most matches first.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ContentReport {
    pub rules: Vec<RuleReport>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RuleReport {
    pub rule: String,
    pub matches: u64,
    pub domains: Vec<DomainReport>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct DomainReport {
    pub domain: String,
    pub matches: u64,
    /// Of those, matched by the rule in dry run (forwarded).
    pub dry_run: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub samples: Vec<String>,
}

impl ContentEvidence {
    /// One match of `rule` on an activity from `domain` (the signer's host) at `now`.
    pub fn record(&self, rule: &str, domain: &str, dry_run: bool, id: Option<&str>, now: u64) {
        let Ok(mut pairs) = self.pairs.lock() else {
            return;
        };
        let key = (rule.to_string(), domain.to_string());
        if !pairs.contains_key(&key) && pairs.len() >= MAX_PAIRS {
            // The pair with the fewest matches (the oldest among equals) makes room.
            if let Some(smallest) = pairs
                .iter()
                .min_by_key(|(_, p)| (p.matches, p.last_seen))
                .map(|(k, _)| k.clone())
            {
                pairs.remove(&smallest);
            }
        }
        let pair = pairs.entry(key).or_insert_with(|| Pair {
            first_seen: now,
            ..Pair::default()
        });
        pair.matches += 1;
        pair.dry_run += u64::from(dry_run);
        pair.last_seen = now;
        if let Some(id) = id {
            if pair.samples.len() == MAX_SAMPLES {
                pair.samples.pop_front();
            }
            pair.samples
                .push_back(crate::clock::truncate(id, MAX_SAMPLE_BYTES).to_string());
        }
    }

    /// Every rule with matches, most first, and its domains, most first; `top` domains each.
    pub fn report(&self, top: usize) -> ContentReport {
        let Ok(pairs) = self.pairs.lock() else {
            return ContentReport { rules: Vec::new() };
        };
        let mut by_rule: HashMap<&str, Vec<(&str, &Pair)>> = HashMap::new();
        for ((rule, domain), pair) in pairs.iter() {
            by_rule.entry(rule).or_default().push((domain, pair));
        }
        let mut rules: Vec<RuleReport> = by_rule
            .into_iter()
            .map(|(rule, mut domains)| {
                domains.sort_by(|a, b| b.1.matches.cmp(&a.1.matches).then(a.0.cmp(b.0)));
                RuleReport {
                    rule: rule.to_string(),
                    matches: domains.iter().map(|(_, p)| p.matches).sum(),
                    domains: domains
                        .into_iter()
                        .take(top)
                        .map(|(domain, p)| DomainReport {
                            domain: domain.to_string(),
                            matches: p.matches,
                            dry_run: p.dry_run,
                            first_seen: crate::clock::rfc3339(p.first_seen),
                            last_seen: crate::clock::rfc3339(p.last_seen),
                            samples: p.samples.iter().cloned().collect(),
                        })
                        .collect(),
                }
            })
            .collect();
        rules.sort_by(|a, b| b.matches.cmp(&a.matches).then(a.rule.cmp(&b.rule)));
        ContentReport { rules }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_rule_and_domain_newest_samples_and_a_bound() {
        let e = ContentEvidence::default();
        for n in 0..7 {
            let id = format!("https://a.example/{n}");
            e.record("wave", "a.example", false, Some(&id), 100 + n);
        }
        e.record("wave", "b.example", true, None, 200);
        e.record("other", "a.example", false, Some(&"x".repeat(600)), 300);
        let r = e.report(10);
        assert_eq!(r.rules[0].rule, "wave");
        assert_eq!(r.rules[0].matches, 8);
        let a = &r.rules[0].domains[0];
        assert_eq!(
            (a.domain.as_str(), a.matches, a.dry_run),
            ("a.example", 7, 0)
        );
        assert_eq!(a.samples.len(), MAX_SAMPLES);
        assert_eq!(a.samples[0], "https://a.example/2");
        assert_eq!(a.first_seen, "1970-01-01T00:01:40Z");
        assert_eq!(r.rules[0].domains[1].dry_run, 1);
        assert_eq!(r.rules[1].domains[0].samples[0].len(), MAX_SAMPLE_BYTES);

        let e = ContentEvidence::default();
        e.record("r", "big.example", false, None, 1);
        e.record("r", "big.example", false, None, 2);
        for n in 0..MAX_PAIRS {
            e.record("r", &format!("d{n}.example"), false, None, 3);
        }
        let r = e.report(usize::MAX);
        assert_eq!(r.rules[0].domains.len(), MAX_PAIRS);
        assert_eq!(
            r.rules[0].domains[0].domain, "big.example",
            "the largest stays"
        );
    }
}

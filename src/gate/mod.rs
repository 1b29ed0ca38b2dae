//! What a verified activity must be, beyond the moderators' rules, to be worth Mastodon's
//! work: a type Mastodon acts on (`vocabulary`), and not a copy of one already delivered
//! (`dedupe`). Both answer 202 without forwarding: the sender has nothing to retry.

pub mod dedupe;
pub mod vocabulary;

use crate::activity::Facts;
use crate::metrics::Metrics;
use dedupe::Dedupe;
use prometheus::{IntCounterVec, Opts};
use serde::Deserialize;
use vocabulary::Vocabulary;

/// The gate as the request path uses it, built once at startup.
pub struct Gate {
    vocabulary: Vocabulary,
    dedupe: Option<Dedupe>,
    window: std::time::Duration,
    /// `inboxguard_content_rule_matches_total{rule, action}`: the rule names come from the
    /// operator's files, at most `policy::content::MAX_CONTENT_RULES` of them.
    pub content_rule_matches: IntCounterVec,
    /// When each actor was first seen, for `actor_first_seen_under`: kept only while a rule
    /// asks, in a bounded cache of 8-byte hashes. An actor the cache let go counts as new
    /// again when it returns.
    first_seen: moka::sync::Cache<u64, i64>,
    hasher: std::collections::hash_map::RandomState,
}

impl Gate {
    pub fn new(config: &ActivitiesConfig, metrics: &Metrics) -> Result<Gate, prometheus::Error> {
        let window = crate::config::parse_duration(&config.dedupe_window).unwrap_or_default();
        let content_rule_matches = IntCounterVec::new(
            Opts::new(
                "inboxguard_content_rule_matches_total",
                "Verified activities a content rule matched, by rule name and action (dry-run matches too)",
            ),
            &["rule", "action"],
        )?;
        metrics.register(Box::new(content_rule_matches.clone()))?;
        Ok(Gate {
            vocabulary: Vocabulary::new(config),
            dedupe: Dedupe::new(window, config.dedupe_capacity),
            window,
            content_rule_matches,
            first_seen: moka::sync::Cache::new(config.first_seen_capacity),
            hasher: std::collections::hash_map::RandomState::new(),
        })
    }

    /// Whether Mastodon acts on this activity's type.
    pub fn handles(&self, facts: &Facts) -> bool {
        self.vocabulary.handles(facts)
    }

    /// The dedupe key of a verified activity signed by `signer_host`, and whether it was
    /// delivered already. `None` when dedupe is off or the id does not count.
    pub fn duplicate(&self, facts: &Facts, signer_host: &str) -> Option<(u64, bool)> {
        let dedupe = self.dedupe.as_ref()?;
        let key = dedupe.key(facts.id.as_deref(), signer_host)?;
        Some((key, dedupe.seen(key)))
    }

    /// When `actor` was first seen, recording `now` if this is the first time.
    pub fn first_seen(&self, actor: &str, now: i64) -> i64 {
        use std::hash::BuildHasher;
        self.first_seen
            .get_with(self.hasher.hash_one(actor), || now)
    }

    /// How long a delivered id counts as a duplicate (zero: dedupe is off).
    pub fn window(&self) -> std::time::Duration {
        self.window
    }

    /// Mastodon took the activity with this key.
    pub fn delivered(&self, key: u64) {
        if let Some(d) = &self.dedupe {
            d.delivered(key);
        }
    }
}

/// `[activities]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitiesConfig {
    /// Activity types forwarded; any other is answered 202 and dropped (`unhandled_type`).
    /// Mastodon's list (`app/lib/activitypub/activity.rb`); an empty list turns the gate off.
    #[serde(default = "vocabulary::default_types")]
    pub forward_types: Vec<String>,
    /// Object types a `Create` may carry (Mastodon's `create.rb`); empty: any.
    #[serde(default = "vocabulary::default_object_types")]
    pub forward_object_types: Vec<String>,
    /// A verified activity whose `id` was delivered (Mastodon answered 2xx) this recently is
    /// answered 202 and not forwarded again (`duplicate`). `"0s"` turns it off.
    #[serde(default = "dedupe::default_window")]
    pub dedupe_window: String,
    /// Activity ids remembered at most (8-byte hashes in a bounded cache).
    #[serde(default = "dedupe::default_capacity")]
    pub dedupe_capacity: u64,
    /// Actors whose first sighting is kept at most, while a content rule uses
    /// `actor_first_seen_under`.
    #[serde(default = "default_first_seen_capacity")]
    pub first_seen_capacity: u64,
}

fn default_first_seen_capacity() -> u64 {
    200_000
}

impl Default for ActivitiesConfig {
    fn default() -> Self {
        ActivitiesConfig {
            forward_types: vocabulary::default_types(),
            forward_object_types: vocabulary::default_object_types(),
            dedupe_window: dedupe::default_window(),
            dedupe_capacity: dedupe::default_capacity(),
            first_seen_capacity: default_first_seen_capacity(),
        }
    }
}

impl ActivitiesConfig {
    pub fn validate(&self) -> Result<(), String> {
        if crate::config::parse_duration(&self.dedupe_window).is_none() {
            return Err(format!(
                "activities.dedupe_window: {:?} is not a duration like \"1h\" or \"30m\"",
                self.dedupe_window
            ));
        }
        if self.dedupe_capacity == 0 {
            return Err("activities.dedupe_capacity: must be greater than 0".into());
        }
        if self.first_seen_capacity == 0 {
            // Nothing remembered would make every actor new to `actor_first_seen_under`.
            return Err("activities.first_seen_capacity: must be greater than 0".into());
        }
        Ok(())
    }
}

//! `[cluster]`: the Redis replicas share state through.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host:port/db`; may be the Redis Mastodon uses.
    pub redis_url: String,
    /// Every key inboxguard writes starts with this, so it can share a Redis with Mastodon.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// Deadline of one shared-state operation; past it the replica's own state answers.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Which state is shared.
    #[serde(default = "default_true")]
    pub share_rate_limits: bool,
    #[serde(default = "default_true")]
    pub share_dedupe: bool,
    #[serde(default = "default_true")]
    pub share_keys: bool,
    /// Friendly-federator and content-rule evidence, escalations and lifts.
    #[serde(default = "default_true")]
    pub share_evidence: bool,
}

fn default_prefix() -> String {
    "inboxguard:".into()
}
fn default_timeout_ms() -> u64 {
    50
}
fn default_true() -> bool {
    true
}

impl ClusterConfig {
    /// Checks the URL's shape and the numbers; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        redis::Client::open(self.redis_url.as_str())
            .map_err(|e| format!("cluster.redis_url: {e}"))?;
        if self.timeout_ms == 0 || self.timeout_ms > 5_000 {
            return Err("cluster.timeout_ms: between 1 and 5000".into());
        }
        if self.key_prefix.is_empty() {
            return Err(
                "cluster.key_prefix: must not be empty (keys would mix with Mastodon's)".into(),
            );
        }
        Ok(())
    }
}

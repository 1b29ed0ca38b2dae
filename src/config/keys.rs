//! `[signatures]` and `[key_fetch]`: how signatures are checked and their keys fetched.

use super::{positive, Invalid};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureConfig {
    /// Mastodon: `CLOCK_SKEW_MARGIN` = 1 h.
    #[serde(default = "default_clock_skew_secs")]
    pub clock_skew_secs: u64,
    /// Mastodon: `EXPIRATION_WINDOW_LIMIT` = 12 h.
    #[serde(default = "default_max_age_secs")]
    pub max_age_secs: u64,
    /// Verify RFC 9421 `alg="rsa-pss-sha512"` signatures. Off by default because Mastodon
    /// verifies RSA keys as rsa-v1_5-sha256 only and refuses them; on for an upstream that
    /// accepts RSA-PSS.
    #[serde(default)]
    pub allow_rsa_pss: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFetchConfig {
    /// Whole fetch (connect, TLS, response, body) per attempt.
    #[serde(default = "default_key_fetch_timeout_secs")]
    pub timeout_secs: u64,
    #[serde(default = "default_cache_ttl_secs")]
    pub cache_ttl_secs: u64,
    #[serde(default = "default_cache_capacity")]
    pub cache_capacity: u64,
    /// How long a failed lookup (404, 410, network error, bad document) is remembered, so a
    /// sender retrying with a dead key costs one fetch per this period.
    #[serde(default = "default_negative_ttl_secs")]
    pub negative_ttl_secs: u64,
    /// Actor documents larger than this are refused (Mastodon uses 1 MiB for fetched JSON).
    #[serde(default = "default_key_fetch_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Fetch keys over plain http. Only for tests and the demo.
    #[serde(default)]
    pub allow_http: bool,
    /// Fetch keys from loopback/private/link-local addresses. Only for tests and the demo.
    #[serde(default)]
    pub allow_private_addresses: bool,
    /// Optional signed fetch for remotes in authorized-fetch mode (both or neither).
    pub key_id: Option<String>,
    pub private_key_file: Option<PathBuf>,
    /// Host -> address overrides, like curl's --resolve.
    #[serde(default)]
    pub resolve: BTreeMap<String, SocketAddr>,
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
    /// Key fetches in progress at once, all hosts together; more wait (within the timeout).
    #[serde(default = "default_max_concurrent_fetches")]
    pub max_concurrent_fetches: usize,
    /// Key fetches in progress at once for one host; more are refused at once (503).
    #[serde(default = "default_max_concurrent_fetches_per_host")]
    pub max_concurrent_fetches_per_host: usize,
    /// Consecutive transient failures (timeout, connect, DNS, 5xx) that open a host's circuit.
    #[serde(default = "default_circuit_breaker_failures")]
    pub circuit_breaker_failures: u32,
    /// How long an open circuit refuses fetches before letting one probe through.
    #[serde(default = "default_circuit_breaker_open_secs")]
    pub circuit_breaker_open_secs: u64,
}

impl Default for SignatureConfig {
    fn default() -> Self {
        Self {
            clock_skew_secs: default_clock_skew_secs(),
            max_age_secs: default_max_age_secs(),
            allow_rsa_pss: false,
        }
    }
}

impl Default for KeyFetchConfig {
    fn default() -> Self {
        Self {
            timeout_secs: default_key_fetch_timeout_secs(),
            cache_ttl_secs: default_cache_ttl_secs(),
            cache_capacity: default_cache_capacity(),
            negative_ttl_secs: default_negative_ttl_secs(),
            max_body_bytes: default_key_fetch_max_body_bytes(),
            allow_http: false,
            allow_private_addresses: false,
            key_id: None,
            private_key_file: None,
            resolve: BTreeMap::new(),
            user_agent: default_user_agent(),
            max_concurrent_fetches: default_max_concurrent_fetches(),
            max_concurrent_fetches_per_host: default_max_concurrent_fetches_per_host(),
            circuit_breaker_failures: default_circuit_breaker_failures(),
            circuit_breaker_open_secs: default_circuit_breaker_open_secs(),
        }
    }
}

impl SignatureConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        positive("signatures.max_age_secs", self.max_age_secs)
    }
}

impl KeyFetchConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        positive("key_fetch.timeout_secs", self.timeout_secs)?;
        positive("key_fetch.cache_ttl_secs", self.cache_ttl_secs)?;
        positive("key_fetch.negative_ttl_secs", self.negative_ttl_secs)?;
        positive("key_fetch.max_body_bytes", self.max_body_bytes)?;
        positive(
            "key_fetch.max_concurrent_fetches",
            self.max_concurrent_fetches as u64,
        )?;
        positive(
            "key_fetch.max_concurrent_fetches_per_host",
            self.max_concurrent_fetches_per_host as u64,
        )?;
        positive(
            "key_fetch.circuit_breaker_failures",
            u64::from(self.circuit_breaker_failures),
        )?;
        positive(
            "key_fetch.circuit_breaker_open_secs",
            self.circuit_breaker_open_secs,
        )?;
        if self.key_id.is_some() != self.private_key_file.is_some() {
            return Err((
                "key_fetch.key_id",
                "key_id and private_key_file go together".into(),
            ));
        }
        Ok(())
    }
}

fn default_clock_skew_secs() -> u64 {
    3600
}
fn default_max_age_secs() -> u64 {
    43200
}
fn default_key_fetch_timeout_secs() -> u64 {
    10
}
fn default_cache_ttl_secs() -> u64 {
    86400
}
fn default_cache_capacity() -> u64 {
    100_000
}
fn default_negative_ttl_secs() -> u64 {
    300
}
fn default_key_fetch_max_body_bytes() -> u64 {
    1024 * 1024
}
fn default_user_agent() -> String {
    concat!("inboxguard/", env!("CARGO_PKG_VERSION")).to_string()
}
fn default_max_concurrent_fetches() -> usize {
    64
}
fn default_max_concurrent_fetches_per_host() -> usize {
    4
}
fn default_circuit_breaker_failures() -> u32 {
    5
}
fn default_circuit_breaker_open_secs() -> u64 {
    30
}

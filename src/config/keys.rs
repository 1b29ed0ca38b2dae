//! `[signatures]` and `[key_fetch]`: how signatures are checked and their keys fetched.

use super::{all_positive, positive, together, Invalid};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Every key is optional: a missing one takes its value from `Default`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignatureConfig {
    /// Mastodon: `CLOCK_SKEW_MARGIN` = 1 h.
    pub clock_skew_secs: u64,
    /// Mastodon: `EXPIRATION_WINDOW_LIMIT` = 12 h.
    pub max_age_secs: u64,
    /// Verify RFC 9421 `alg="rsa-pss-sha512"` signatures. Off by default because Mastodon
    /// verifies RSA keys as rsa-v1_5-sha256 only and refuses them; on for an upstream that
    /// accepts RSA-PSS.
    pub allow_rsa_pss: bool,
}

/// Every key is optional: a missing one takes its value from `Default`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyFetchConfig {
    /// Whole fetch (connect, TLS, response, body) per attempt.
    pub timeout_secs: u64,
    pub cache_ttl_secs: u64,
    pub cache_capacity: u64,
    /// How many of the cached keys are also kept parsed, ready to verify: the ones used most
    /// recently. The cache keeps every key as DER (~270 bytes for RSA-2048); a parsed key is
    /// ~1.5 KB, and a key outside this set is parsed again when used (~6 µs for RSA-2048).
    pub parsed_cache_capacity: u64,
    /// How long a failed lookup (404, 410, network error, bad document) is remembered, so a
    /// sender retrying with a dead key costs one fetch per this period.
    pub negative_ttl_secs: u64,
    /// Actor documents larger than this are refused (Mastodon uses 1 MiB for fetched JSON).
    pub max_body_bytes: u64,
    /// Fetch keys over plain http. Only for tests and the demo.
    pub allow_http: bool,
    /// Fetch keys from loopback/private/link-local addresses. Only for tests and the demo.
    pub allow_private_addresses: bool,
    /// Optional signed fetch for remotes in authorized-fetch mode (both or neither).
    pub key_id: Option<String>,
    pub private_key_file: Option<PathBuf>,
    /// Host -> address overrides, like curl's --resolve.
    pub resolve: BTreeMap<String, SocketAddr>,
    pub user_agent: String,
    /// Key fetches in progress at once, all hosts together; more wait (within the timeout).
    pub max_concurrent_fetches: usize,
    /// Key fetches in progress at once for one host; more are refused at once (503).
    pub max_concurrent_fetches_per_host: usize,
    /// Consecutive transient failures (timeout, connect, DNS, 5xx) that open a host's circuit.
    pub circuit_breaker_failures: u32,
    /// How long an open circuit refuses fetches before letting one probe through.
    pub circuit_breaker_open_secs: u64,
}

impl Default for SignatureConfig {
    fn default() -> Self {
        Self {
            clock_skew_secs: 3600,
            max_age_secs: 43200,
            allow_rsa_pss: false,
        }
    }
}

impl Default for KeyFetchConfig {
    fn default() -> Self {
        Self {
            timeout_secs: 10,
            cache_ttl_secs: 86400,
            cache_capacity: 100_000,
            parsed_cache_capacity: 1024,
            negative_ttl_secs: 300,
            max_body_bytes: 1024 * 1024,
            allow_http: false,
            allow_private_addresses: false,
            key_id: None,
            private_key_file: None,
            resolve: BTreeMap::new(),
            user_agent: concat!("inboxguard/", env!("CARGO_PKG_VERSION")).to_string(),
            max_concurrent_fetches: 64,
            max_concurrent_fetches_per_host: 4,
            circuit_breaker_failures: 5,
            circuit_breaker_open_secs: 30,
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
        all_positive(&[
            ("key_fetch.timeout_secs", self.timeout_secs),
            ("key_fetch.cache_ttl_secs", self.cache_ttl_secs),
            ("key_fetch.negative_ttl_secs", self.negative_ttl_secs),
            (
                "key_fetch.parsed_cache_capacity",
                self.parsed_cache_capacity,
            ),
            ("key_fetch.max_body_bytes", self.max_body_bytes),
            (
                "key_fetch.max_concurrent_fetches",
                self.max_concurrent_fetches as u64,
            ),
            (
                "key_fetch.max_concurrent_fetches_per_host",
                self.max_concurrent_fetches_per_host as u64,
            ),
            (
                "key_fetch.circuit_breaker_failures",
                u64::from(self.circuit_breaker_failures),
            ),
            (
                "key_fetch.circuit_breaker_open_secs",
                self.circuit_breaker_open_secs,
            ),
        ])?;
        if self.parsed_cache_capacity > self.cache_capacity {
            return Err((
                "key_fetch.parsed_cache_capacity",
                format!(
                    "{} is more than key_fetch.cache_capacity ({}): only cached keys are kept parsed",
                    self.parsed_cache_capacity, self.cache_capacity
                ),
            ));
        }
        together(
            "key_fetch.key_id",
            "private_key_file",
            self.key_id.is_some(),
            self.private_key_file.is_some(),
        )
    }
}

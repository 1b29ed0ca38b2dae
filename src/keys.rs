//! Public key cache and hardened key fetcher.
//!
//! OWNER: keys helper. Keep this public surface; add to it as needed.

use crate::config::KeyFetchConfig;
use crate::metrics::Metrics;
use crate::signature::PublicKey;
use std::sync::Arc;

/// A key as published by its owner.
#[derive(Debug)]
pub struct KeyRecord {
    pub key: PublicKey,
    /// The actor that owns the key (`publicKey.owner`, equal to the actor document's `id`).
    pub owner: String,
}

/// Why no key could be had. `Display` is the precise message for the client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    /// The key server answered 404.
    #[error("Unable to fetch key JSON at {0}: not found")]
    NotFound(String),
}

impl KeyError {
    /// Whether the owner is gone (404/410): the self-Delete shortcut applies.
    pub fn is_gone(&self) -> bool {
        todo!()
    }
    /// Whether the failure is transient (network, timeout, 5xx): the sender should retry (503).
    pub fn is_transient(&self) -> bool {
        todo!()
    }
    /// A fixed word for metric labels.
    pub fn reason(&self) -> &'static str {
        todo!()
    }
}

/// Where a key came from, for the caller's refetch-on-failure decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Fetched,
}

pub struct KeyStore {}

impl KeyStore {
    pub fn new(_cfg: &KeyFetchConfig, _metrics: Arc<Metrics>) -> Result<KeyStore, String> {
        todo!()
    }

    /// The key for `key_id`, from the cache or fetched (concurrent misses share one fetch).
    pub async fn get(&self, _key_id: &str) -> Result<(Arc<KeyRecord>, Source), KeyError> {
        todo!()
    }

    /// Drops the cached entry and fetches again (key rotation). Concurrent refreshes of the
    /// same keyId share one fetch.
    pub async fn refresh(&self, _key_id: &str) -> Result<Arc<KeyRecord>, KeyError> {
        todo!()
    }
}

//! Remote public keys: the coalescing cache with a negative cache, and the hardened fetcher
//! behind it.
//!
//! * `cache`: [`KeyStore`], one moka cache keyed by keyId holding successes and failures
//!   (each with its own TTL); concurrent misses share one fetch.
//! * `fetch`: the HTTP side, over `crate::net` (one connection per GET, checked scheme and
//!   addresses): one redirect, timeout over the whole lookup, content-type allowlist, body
//!   cap, optional signed GET on behalf of the instance actor.
//! * `document`: what a fetched document must say for its key to be trusted (no I/O).
//! * `parsed`: the verifying (parsed) forms of the keys used most recently, a bounded set
//!   beside the cache, which keeps every key compact.

mod bulkhead;
mod cache;
mod document;
mod fetch;
mod parsed;
#[cfg(test)]
mod test_server;

pub use crate::policy::content::ActorFacts;
pub use cache::KeyStore;

use crate::signature::CompactKey;

/// A key as published by its owner, as the cache keeps it. [`KeyStore::verifying_key`] gives
/// its parsed form.
#[derive(Debug)]
pub struct KeyRecord {
    pub key: CompactKey,
    /// Unique to this record (a refetch makes a new one): names its parsed form.
    serial: u64,
    /// The actor that owns the key (`publicKey.owner`, equal to the actor document's `id`).
    pub owner: String,
    /// What content rules read of the owner's actor document.
    pub actor: ActorFacts,
}

/// Where a key came from, for the caller's refetch-on-failure decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Found in the cache; it may be stale (the owner may have rotated it).
    Cache,
    /// Fetched for this call (or by a concurrent call this one waited for).
    Fetched,
}

/// Why no key could be had. `Display` is the precise message for the client; strings that
/// came from the remote document are clipped so a hostile server cannot make us echo
/// megabytes.
///
/// Cloned out of the cache for every caller that hits a negative entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The keyId is not an absolute http(s) URL with a host. `acct:` keyIds (which would need
    /// WebFinger) land here too.
    #[error("Unable to fetch key JSON at {key_id}: the keyId is not an http(s) URL")]
    InvalidKeyId { key_id: String },
    /// A plain-http URL (the keyId, a redirect target or the key's owner) while
    /// `allow_http` is off.
    #[error("Unable to fetch key JSON at {key_id}: refusing plain http for {url}")]
    InsecureScheme { key_id: String, url: String },
    /// The host has no address we may connect to: every address is loopback, private,
    /// link-local, ... (see `net::address`) and `allow_private_addresses` is off.
    #[error("Unable to fetch key JSON at {key_id}: {host} has no public address")]
    ForbiddenAddress { key_id: String, host: String },
    /// Name resolution failed or returned no address.
    #[error("Unable to fetch key JSON at {key_id}: cannot resolve {host}")]
    Dns { key_id: String, host: String },
    /// No TCP connection could be made to any address of the host.
    #[error("Unable to fetch key JSON at {key_id}: cannot connect to {host}")]
    Connect { key_id: String, host: String },
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol error).
    #[error("Unable to fetch key JSON at {key_id}: TLS handshake with {host} failed")]
    Tls { key_id: String, host: String },
    /// The whole lookup (every connect, handshake, head and body) took longer than
    /// `key_fetch.timeout_secs`.
    #[error("Unable to fetch key JSON at {key_id}: no complete answer within {secs} s")]
    Timeout { key_id: String, secs: u64 },
    /// The connection broke mid-exchange or the server did not speak HTTP/1.1.
    #[error("Unable to fetch key JSON at {key_id}: the HTTP exchange with {host} failed")]
    Protocol { key_id: String, host: String },
    /// The key server answered 404.
    #[error("Unable to fetch key JSON at {key_id}: {url} answered 404 Not Found")]
    NotFound { key_id: String, url: String },
    /// The key server answered 410: the actor or key was deleted.
    #[error("Unable to fetch key JSON at {key_id}: {url} answered 410 Gone")]
    Gone { key_id: String, url: String },
    /// Any other non-2xx answer that is not a redirect.
    #[error("Unable to fetch key JSON at {key_id}: {url} answered {status}")]
    HttpStatus {
        key_id: String,
        url: String,
        status: u16,
    },
    /// A redirect without a `Location` that resolves to a URL.
    #[error("Unable to fetch key JSON at {key_id}: {url} redirected without a valid Location")]
    BadRedirect { key_id: String, url: String },
    /// A redirect answered the one redirect we follow.
    #[error("Unable to fetch key JSON at {key_id}: more than one redirect")]
    TooManyRedirects { key_id: String },
    /// The answer is not ActivityPub JSON (`application/activity+json`,
    /// `application/ld+json` or `application/json`).
    #[error("Unable to fetch key JSON at {key_id}: content type {content_type:?} is not ActivityPub JSON")]
    BadContentType {
        key_id: String,
        content_type: String,
    },
    /// The body is larger than `key_fetch.max_body_bytes`.
    #[error("Unable to fetch key JSON at {key_id}: document larger than {limit} bytes")]
    TooLarge { key_id: String, limit: u64 },
    /// The body is not JSON.
    #[error("Unable to fetch key JSON at {key_id}: the document is not valid JSON")]
    InvalidJson { key_id: String },
    /// JSON, but neither an actor with `publicKey` nor a key object, or a required field is
    /// missing or has the wrong type.
    #[error("Unable to fetch key JSON at {key_id}: {problem}")]
    InvalidDocument {
        key_id: String,
        problem: &'static str,
    },
    /// The document's key `id` is not the keyId (the fragment included).
    #[error("Unable to fetch key JSON at {key_id}: the document describes key {found:?}")]
    IdMismatch { key_id: String, found: String },
    /// The key's `owner` is not the actor whose document lists it: an actor document whose
    /// key names another owner, or an owner document that does not list the key.
    #[error("publicKey owner {owner:?} does not correspond to key {key_id}")]
    OwnerMismatch { key_id: String, owner: String },
    /// The actor owning the key is not on the keyId's host: a server may only vouch for
    /// keys of its own actors.
    #[error("Unable to fetch key JSON at {key_id}: owner {owner:?} is on another host")]
    HostMismatch { key_id: String, owner: String },
    /// `publicKeyPem` is not a key we can verify with.
    #[error("Unable to parse the public key at {key_id}: {reason}")]
    UnsupportedKey { key_id: String, reason: String },
    /// Shed by our own bulkhead: too many fetches from this host at once, or no global fetch
    /// slot freed up within the fetch timeout. Nothing went on the network.
    #[error("Fetching the key {key_id} was skipped: too many key fetches in progress for {host}")]
    Overloaded { key_id: String, host: String },
    /// Shed by the host's circuit breaker after repeated transient failures.
    #[error(
        "Fetching the key {key_id} was skipped because of recent connection failures to {host}"
    )]
    CircuitOpen { key_id: String, host: String },
}

impl KeyError {
    /// Whether the key server said the key or its owner is gone (404/410): the
    /// self-Delete shortcut applies.
    pub fn is_gone(&self) -> bool {
        matches!(self, KeyError::NotFound { .. } | KeyError::Gone { .. })
    }

    /// Whether the failure is transient (resolution, connection, timeout, broken exchange,
    /// 5xx, 429): the sender should retry later, so `reject` answers 503.
    pub fn is_transient(&self) -> bool {
        match self {
            KeyError::Dns { .. }
            | KeyError::Connect { .. }
            | KeyError::Timeout { .. }
            | KeyError::Protocol { .. }
            | KeyError::Overloaded { .. }
            | KeyError::CircuitOpen { .. } => true,
            KeyError::HttpStatus { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// Whether the proxy itself declined to fetch (bulkhead or circuit breaker): such an
    /// outcome says nothing about the remote and is remembered only briefly.
    pub fn is_shed(&self) -> bool {
        matches!(
            self,
            KeyError::Overloaded { .. } | KeyError::CircuitOpen { .. }
        )
    }

    /// A fixed word for the `result` label of `inboxguard_key_fetches_total`.
    pub fn reason(&self) -> &'static str {
        let word = self.request_reason();
        word.strip_prefix("key_").unwrap_or(word)
    }

    /// The `reason` label of `inboxguard_requests_total` for a request that failed on its key:
    /// `key_` + [`KeyError::reason`], so `key_timeout` never reads like a body timeout. One
    /// table for both metrics, here, because the key cache (below `reject`) labels fetches.
    pub fn request_reason(&self) -> &'static str {
        match self {
            KeyError::InvalidKeyId { .. } => "key_invalid_key_id",
            KeyError::InsecureScheme { .. } => "key_insecure_scheme",
            KeyError::ForbiddenAddress { .. } => "key_forbidden_address",
            KeyError::Dns { .. } => "key_dns",
            KeyError::Connect { .. } => "key_connect",
            KeyError::Tls { .. } => "key_tls",
            KeyError::Timeout { .. } => "key_timeout",
            KeyError::Protocol { .. } => "key_protocol",
            KeyError::NotFound { .. } => "key_not_found",
            KeyError::Gone { .. } => "key_gone",
            KeyError::HttpStatus { .. } => "key_http_status",
            KeyError::BadRedirect { .. } => "key_bad_redirect",
            KeyError::TooManyRedirects { .. } => "key_too_many_redirects",
            KeyError::BadContentType { .. } => "key_bad_content_type",
            KeyError::TooLarge { .. } => "key_too_large",
            KeyError::InvalidJson { .. } => "key_invalid_json",
            KeyError::InvalidDocument { .. } => "key_invalid_document",
            KeyError::IdMismatch { .. } => "key_id_mismatch",
            KeyError::OwnerMismatch { .. } => "key_owner_mismatch",
            KeyError::HostMismatch { .. } => "key_host_mismatch",
            KeyError::UnsupportedKey { .. } => "key_unsupported_key",
            KeyError::Overloaded { .. } => "key_overloaded",
            KeyError::CircuitOpen { .. } => "key_circuit_open",
        }
    }
}

/// Longest remote-supplied string we put into an error message.
const MAX_ECHO_CHARS: usize = 200;

/// `s`, cut to [`MAX_ECHO_CHARS`] characters (with a marker when cut).
fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_of_errors() {
        let k = || "https://remote.test/users/a#main-key".to_string();
        let url = || "https://remote.test/users/a".to_string();
        let gone = KeyError::Gone {
            key_id: k(),
            url: url(),
        };
        assert!(gone.is_gone() && !gone.is_transient());
        let not_found = KeyError::NotFound {
            key_id: k(),
            url: url(),
        };
        assert!(not_found.is_gone());
        for status in [500, 502, 503, 429] {
            let e = KeyError::HttpStatus {
                key_id: k(),
                url: url(),
                status,
            };
            assert!(e.is_transient(), "{status}");
            assert!(!e.is_gone());
        }
        for status in [400, 401, 403] {
            let e = KeyError::HttpStatus {
                key_id: k(),
                url: url(),
                status,
            };
            assert!(!e.is_transient(), "{status}");
        }
        assert!(KeyError::Timeout {
            key_id: k(),
            secs: 1
        }
        .is_transient());
        assert!(KeyError::Dns {
            key_id: k(),
            host: "remote.test".into()
        }
        .is_transient());
        assert!(!KeyError::Tls {
            key_id: k(),
            host: "remote.test".into()
        }
        .is_transient());
        assert!(!KeyError::IdMismatch {
            key_id: k(),
            found: "x".into()
        }
        .is_transient());
        assert_eq!(not_found.reason(), "not_found");
        assert_eq!(
            not_found.to_string(),
            "Unable to fetch key JSON at https://remote.test/users/a#main-key: \
             https://remote.test/users/a answered 404 Not Found"
        );
    }

    #[test]
    fn clip_cuts_long_remote_strings_on_char_boundaries() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(500);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), MAX_ECHO_CHARS + 1);
        assert!(clipped.ends_with('…'));
    }
}

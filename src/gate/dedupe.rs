//! Duplicate suppression: a verified activity whose `id` Mastodon already accepted (2xx)
//! within the window is answered 202 and not forwarded again. Delete storms deliver the same
//! few ids hundreds of times a minute; each copy would cost a Sidekiq job.
//!
//! Only ids on the signer's own host count, so a relay or anyone else cannot suppress another
//! server's activity by sending its id first; and an id is remembered only once Mastodon took
//! it, so a copy whose first delivery failed is forwarded. The cache holds 8-byte keyed
//! hashes (SipHash with a per-process random key: collisions cannot be aimed at) in a bounded
//! moka cache with the window as time-to-live.

use moka::sync::Cache;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

pub(super) fn default_window() -> String {
    "1h".into()
}
pub(super) fn default_capacity() -> u64 {
    100_000
}

pub struct Dedupe {
    seen: Cache<u64, ()>,
    hasher: RandomState,
}

impl Dedupe {
    /// `None` for a zero window (off).
    pub fn new(window: Duration, capacity: u64) -> Option<Dedupe> {
        if window.is_zero() {
            return None;
        }
        Some(Dedupe {
            seen: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(window)
                .build(),
            hasher: RandomState::new(),
        })
    }

    /// The key for activity `id` signed by `signer_host`, when the id may count: it is on
    /// the signer's host.
    pub fn key(&self, id: Option<&str>, signer_host: &str) -> Option<u64> {
        let id = id?;
        let host = crate::policy::host::of_uri_borrowed(id)?;
        (host == signer_host).then(|| self.hasher.hash_one(id))
    }

    pub fn seen(&self, key: u64) -> bool {
        self.seen.contains_key(&key)
    }

    /// Mastodon took the activity: later copies within the window are duplicates.
    pub fn delivered(&self, key: u64) {
        self.seen.insert(key, ());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_on_the_signers_host_count_and_only_once_delivered() {
        let d = Dedupe::new(Duration::from_secs(60), 100).expect("on");
        let id = Some("https://a.example/activities/1");
        assert_eq!(d.key(id, "relay.example"), None);
        let k = d.key(id, "a.example").expect("own id");
        assert!(!d.seen(k));
        d.delivered(k);
        assert!(d.seen(k));
        assert_ne!(
            d.key(Some("https://a.example/activities/2"), "a.example"),
            Some(k)
        );
        assert!(Dedupe::new(Duration::ZERO, 100).is_none());
    }
}

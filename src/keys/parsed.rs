//! The parsed keys of the hot senders: a small, bounded set of verifying keys beside the big
//! key cache, which keeps every key compact.
//!
//! A parsed RSA-2048 key costs ~1.5 KB (aws-lc's RSA struct with its Montgomery context)
//! against ~270 bytes of DER; 10,000 cached keys parsed were ~15 MB. Deliveries come mostly
//! from a few busy instances, so only the keys verified most recently stay parsed, and a key
//! outside that set is parsed again from its DER (~6 µs for RSA-2048) when it is next used.
//!
//! Eviction is CLOCK (second chance), an approximation of least-recently-used that needs no
//! reordering on a hit: a hit takes the lock, finds the slot, marks it used and clones one
//! `Arc`, and allocates nothing. Entries are keyed by the record's serial number, never
//! reused, so a refreshed (rotated) key can never be answered with the parsed form of the one
//! it replaced; the old entry just ages out.

use crate::signature::PublicKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// At most `capacity` parsed keys, shared by every request (`KeyStore` owns it).
pub(crate) struct ParsedKeys {
    inner: Mutex<Clock>,
}

struct Clock {
    /// Record serial -> index into `slots`.
    index: HashMap<u64, usize>,
    /// Grows to `capacity`, then each new key replaces the slot the hand stops at.
    slots: Vec<Slot>,
    /// The next slot to consider for eviction.
    hand: usize,
    capacity: usize,
}

struct Slot {
    serial: u64,
    key: Arc<PublicKey>,
    /// Used since the hand last passed: spared once.
    used: bool,
}

impl ParsedKeys {
    /// `capacity` is at least 1 (`key_fetch.parsed_cache_capacity`, checked by the config).
    pub(crate) fn new(capacity: usize) -> ParsedKeys {
        let capacity = capacity.max(1);
        ParsedKeys {
            inner: Mutex::new(Clock {
                index: HashMap::with_capacity(capacity),
                slots: Vec::with_capacity(capacity),
                hand: 0,
                capacity,
            }),
        }
    }

    /// The parsed key of record `serial`, if it is in the set.
    pub(crate) fn get(&self, serial: u64) -> Option<Arc<PublicKey>> {
        let mut clock = self.lock();
        let &i = clock.index.get(&serial)?;
        let slot = clock.slots.get_mut(i)?;
        slot.used = true;
        Some(slot.key.clone())
    }

    /// Adds record `serial`'s parsed key, evicting the first slot the hand finds unused.
    pub(crate) fn insert(&self, serial: u64, key: Arc<PublicKey>) {
        let evicted = self.lock().insert(serial, key);
        // Freed after the lock is released: a parsed key's free is not the others' wait.
        drop(evicted);
    }

    /// How many parsed keys the set holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().slots.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clock> {
        // Nothing in a slot is left half-updated by a panic: at worst a key is parsed again.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock {
    fn insert(&mut self, serial: u64, key: Arc<PublicKey>) -> Option<Slot> {
        let fresh = Slot {
            serial,
            key,
            used: false,
        };
        // Two requests that missed the same key both parse it; the second copy replaces the
        // first.
        if let Some(&i) = self.index.get(&serial) {
            return self
                .slots
                .get_mut(i)
                .map(|slot| std::mem::replace(slot, fresh));
        }
        if self.slots.len() < self.capacity {
            self.index.insert(serial, self.slots.len());
            self.slots.push(fresh);
            return None;
        }
        // Every slot is cleared at most once per sweep, so this ends within two rounds.
        while let Some(slot) = self.slots.get_mut(self.hand).filter(|s| s.used) {
            slot.used = false;
            self.hand = (self.hand + 1) % self.slots.len();
        }
        let i = self.hand;
        self.hand = (self.hand + 1) % self.slots.len();
        let old = std::mem::replace(self.slots.get_mut(i)?, fresh);
        self.index.remove(&old.serial);
        self.index.insert(serial, i);
        Some(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::SigningKey;

    fn key() -> Arc<PublicKey> {
        let signing = SigningKey::generate_ed25519().expect("key");
        let pem = signing.public_key_pem().expect("pem");
        Arc::new(PublicKey::from_pem(&pem).expect("parse"))
    }

    #[test]
    fn holds_at_most_its_capacity() {
        let parsed = ParsedKeys::new(3);
        for serial in 0..10 {
            parsed.insert(serial, key());
            assert!(parsed.len() <= 3);
        }
        assert_eq!(parsed.len(), 3);
        // The three most recent are the ones kept when nothing was used in between.
        let kept: Vec<u64> = (0..10).filter(|&s| parsed.get(s).is_some()).collect();
        assert_eq!(kept, vec![7, 8, 9]);
    }

    #[test]
    fn a_used_key_outlives_unused_ones() {
        let parsed = ParsedKeys::new(3);
        let hot = key();
        parsed.insert(1, hot.clone());
        parsed.insert(2, key());
        parsed.insert(3, key());
        for serial in 4..20 {
            let found = parsed.get(1).expect("the hot key stays");
            assert!(Arc::ptr_eq(&found, &hot));
            parsed.insert(serial, key());
        }
        assert!(parsed.get(2).is_none() && parsed.get(3).is_none());
    }

    #[test]
    fn the_same_serial_twice_keeps_one_slot() {
        let parsed = ParsedKeys::new(2);
        let (first, second) = (key(), key());
        parsed.insert(5, first);
        parsed.insert(5, second.clone());
        assert_eq!(parsed.len(), 1);
        assert!(Arc::ptr_eq(&parsed.get(5).expect("kept"), &second));
    }
}

//! The decision ring: the last N inbox decisions, oldest dropped first, and the per-minute
//! counts by decision over the last hour that the console's chart draws.

use super::ledger::{decision_index, DECISIONS};
use super::window::Window;
use crate::reject::Decision;
use serde::Serialize;
use std::collections::VecDeque;
use std::net::IpAddr;

/// One inbox decision. No body, no signature; the client's address only when
/// `[admin] journal_client_ip` is on.
#[derive(Debug, Clone)]
pub struct Entry {
    pub unix_ms: u64,
    pub key_host: Option<Box<str>>,
    pub actor: Option<Box<str>>,
    pub activity_type: Option<Box<str>>,
    pub activity_id: Option<Box<str>>,
    pub decision: Decision,
    pub reason: &'static str,
    /// `source:line` of the rule that decided, when one did.
    pub rule: Option<Box<str>>,
    pub status: u16,
    pub client_ip: Option<IpAddr>,
}

/// An [`Entry`] as `GET /admin/decisions` shows it.
#[derive(Debug, Serialize)]
pub struct EntryView<'a> {
    pub time: String,
    pub unix_ms: u64,
    pub key_host: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub activity_type: Option<&'a str>,
    pub activity_id: Option<&'a str>,
    pub decision: &'static str,
    pub reason: &'static str,
    pub rule: Option<&'a str>,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<IpAddr>,
}

impl Entry {
    pub fn view(&self) -> EntryView<'_> {
        EntryView {
            time: crate::clock::rfc3339(self.unix_ms / 1000),
            unix_ms: self.unix_ms,
            key_host: self.key_host.as_deref(),
            actor: self.actor.as_deref(),
            activity_type: self.activity_type.as_deref(),
            activity_id: self.activity_id.as_deref(),
            decision: self.decision.as_str(),
            reason: self.reason,
            rule: self.rule.as_deref(),
            status: self.status,
            client_ip: self.client_ip,
        }
    }

    /// Whether this decision was about `domain`: the key's host or the actor's host is it
    /// or one of its subdomains.
    fn about(&self, domain: &str) -> bool {
        let under = |host: &str| {
            host == domain
                || host
                    .strip_suffix(domain)
                    .is_some_and(|rest| rest.ends_with('.'))
        };
        self.key_host.as_deref().is_some_and(under)
            || self
                .actor
                .as_deref()
                .and_then(crate::policy::host::of_uri_borrowed)
                .is_some_and(|h| under(&h))
    }
}

/// What `GET /admin/decisions` asks for; every given field must match.
#[derive(Debug, Default, Clone)]
pub struct Query {
    /// The key's or the actor's host is this domain or under it.
    pub domain: Option<String>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub decision: Option<String>,
    pub limit: usize,
}

impl Query {
    fn matches(&self, e: &Entry) -> bool {
        self.domain.as_deref().is_none_or(|d| e.about(d))
            && self
                .actor
                .as_deref()
                .is_none_or(|a| e.actor.as_deref() == Some(a))
            && self.reason.as_deref().is_none_or(|r| e.reason == r)
            && self
                .decision
                .as_deref()
                .is_none_or(|d| e.decision.as_str() == d)
    }
}

/// Minutes in the chart's hour.
pub const MINUTES: usize = 60;

pub(super) struct Ring {
    entries: VecDeque<Entry>,
    capacity: usize,
    per_minute: [Window<MINUTES>; 4],
}

impl Ring {
    pub(super) fn new(capacity: usize) -> Ring {
        Ring {
            // Grows as decisions arrive: an idle proxy does not hold the whole ring.
            entries: VecDeque::new(),
            capacity,
            per_minute: Default::default(),
        }
    }

    pub(super) fn push(&mut self, entry: Entry) {
        self.per_minute[decision_index(entry.decision)].add(entry.unix_ms / 60_000);
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        let len = self.entries.len();
        if len == self.entries.capacity() {
            // Doubling, but never past `capacity`: grown to a power of two, 10,000 entries
            // took 16,384 slots, and a full ring cycles through every one (0.8 MB unused).
            let room = self.capacity.saturating_sub(len).max(1);
            self.entries.reserve_exact(len.max(16).min(room));
        }
        self.entries.push_back(entry);
    }

    /// Newest first.
    pub(super) fn find(&self, q: &Query) -> Vec<Entry> {
        self.entries
            .iter()
            .rev()
            .filter(|e| q.matches(e))
            .take(q.limit)
            .cloned()
            .collect()
    }

    /// Per decision, the count in each of the last [`MINUTES`] minutes up to `now_minute`,
    /// oldest first.
    pub(super) fn per_minute(&self, now_minute: u64) -> Vec<(Decision, [u32; MINUTES])> {
        DECISIONS
            .iter()
            .map(|&d| (d, self.per_minute[decision_index(d)].series(now_minute)))
            .collect()
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_ring_holds_no_slots_past_its_capacity() {
        let entry = |i: u64| Entry {
            unix_ms: i,
            key_host: Some("a.example".into()),
            actor: None,
            activity_type: None,
            activity_id: None,
            decision: Decision::Forwarded,
            reason: "forwarded",
            rule: None,
            status: 202,
            client_ip: None,
        };
        for capacity in [1, 3, 16, 17, 10_000] {
            let mut ring = Ring::new(capacity);
            for i in 0..3 * capacity as u64 + 5 {
                ring.push(entry(i));
            }
            assert_eq!(ring.entries.len(), capacity);
            assert!(
                ring.entries.capacity() < capacity + 16,
                "{capacity}: {}",
                ring.entries.capacity()
            );
            let newest = ring.entries.back().map(|e| e.unix_ms);
            assert_eq!(newest, Some(3 * capacity as u64 + 4));
        }
    }
}

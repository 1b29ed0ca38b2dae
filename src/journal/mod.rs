//! What happened to each inbox request, kept in memory for moderators: the decision ring
//! (the last N decisions) and the per-domain ledger (counts by decision and reason over the
//! last hour and day). The pipeline's finish phase feeds both through [`Journal::record`],
//! once per inbox request; the admin API and the console read them.
//!
//! | file     | owns |
//! |----------|------|
//! | `window` | a fixed array of counts per time slot |
//! | `ledger` | the per-domain ledger: bounded, sharded, the quietest evicted first |
//! | `ring`   | the decision ring and the per-minute counts by decision for the chart |
//! | `changes`| the rule-change log: a JSON line per reload in `[state] dir`, rotated by size |
//!
//! Each replica keeps its own journal: with several replicas behind one edge, each shows what
//! it decided, and a restart starts the ring and ledger empty. The rule-change log is a file,
//! so it survives restarts; each replica writes its own in its own state directory.
//!
//! Memory is bounded by `[admin] journal_decisions` and `journal_domains`. On the hot path a
//! request costs a few small allocations made before any lock is taken, one ledger shard lock
//! and the ring's lock, each held for a hash lookup and a few writes.

mod changes;
mod ledger;
mod ring;
mod window;

pub use changes::{ChangeLog, NamedChange, RuleChange, SourceChanges, FILE_NAME};
pub use ledger::{Counts, DomainDetail, DomainRow, ReasonRow, Sort, IDS_PER_REASON};
pub use ring::{Entry, EntryView, Query, MINUTES};

use crate::config::AdminConfig;
use crate::reject::Decision;
use http::StatusCode;
use ledger::Ledger;
use ring::Ring;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// What the finish phase knows about one inbox request.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub key_host: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub activity_type: Option<&'a str>,
    pub activity_id: Option<&'a str>,
    /// `source:line` of the deciding rule.
    pub rule: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
    pub decision: Decision,
    pub reason: &'static str,
    pub status: StatusCode,
}

/// The decision ring and the per-domain ledger. Shared by `Arc` in `App`.
pub struct Journal {
    ledger: Ledger,
    /// A std mutex: held for a push or a copy of matching entries, never across an await.
    ring: Mutex<Ring>,
    client_ip: bool,
}

impl Journal {
    pub fn new(config: &AdminConfig) -> Journal {
        Journal {
            ledger: Ledger::new(config.journal_domains),
            ring: Mutex::new(Ring::new(config.journal_decisions)),
            client_ip: config.journal_client_ip,
        }
    }

    /// Records one inbox request. The ledger counts it under the key's host, or the actor's
    /// host for a request refused before its signature named one; a request with neither
    /// (a malformed one) is only in the ring.
    pub fn record(&self, seen: Seen<'_>) {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let boxed = |s: Option<&str>| s.map(Box::<str>::from);
        let domain = match seen.key_host {
            Some(h) => Some(std::borrow::Cow::Borrowed(h)),
            None => seen
                .actor
                .and_then(crate::policy::host::of_uri_borrowed)
                .filter(|h| !h.is_empty()),
        };
        if let Some(domain) = &domain {
            self.ledger.record(
                domain.as_ref(),
                unix_ms / 1000,
                seen.decision,
                seen.reason,
                boxed(seen.activity_id),
            );
        }
        let entry = Entry {
            unix_ms,
            key_host: boxed(seen.key_host),
            actor: boxed(seen.actor),
            activity_type: boxed(seen.activity_type),
            activity_id: boxed(seen.activity_id),
            decision: seen.decision,
            reason: seen.reason,
            rule: boxed(seen.rule),
            status: seen.status.as_u16(),
            client_ip: seen.client_ip.filter(|_| self.client_ip),
        };
        self.ring().push(entry);
    }

    /// Up to `limit` domains, ordered by `sort`; `search` keeps those whose name contains it.
    pub fn domains(&self, sort: Sort, limit: usize, search: Option<&str>) -> Vec<DomainRow> {
        let mut rows = self.ledger.rows(crate::clock::unix_now());
        if let Some(search) = search.map(str::to_ascii_lowercase) {
            rows.retain(|r| r.domain.contains(&search));
        }
        match sort {
            Sort::Domain => rows.sort_by(|a, b| a.domain.cmp(&b.domain)),
            Sort::LastSeen => rows.sort_by(|a, b| {
                b.last_seen
                    .cmp(&a.last_seen)
                    .then_with(|| a.domain.cmp(&b.domain))
            }),
            by => rows.sort_by(|a, b| {
                b.day
                    .by(by)
                    .cmp(&a.day.by(by))
                    .then_with(|| b.day.total().cmp(&a.day.total()))
                    .then_with(|| a.domain.cmp(&b.domain))
            }),
        }
        rows.truncate(limit);
        rows
    }

    /// The ledger's entry for `domain`, if it has one.
    pub fn domain(&self, domain: &str) -> Option<DomainDetail> {
        self.ledger.detail(domain, crate::clock::unix_now())
    }

    /// The newest decisions matching `query`, newest first.
    pub fn decisions(&self, query: &Query) -> Vec<Entry> {
        self.ring().find(query)
    }

    /// Per decision, the count in each of the last [`MINUTES`] minutes, oldest first.
    pub fn per_minute(&self) -> Vec<(Decision, [u32; MINUTES])> {
        self.ring().per_minute(crate::clock::unix_now() / 60)
    }

    /// Per decision and reason, the counts over the last hour and day, summed over the
    /// domains in the ledger (a request that named no domain is left out), highest day first.
    pub fn reasons(&self) -> Vec<(Decision, &'static str, u64, u64)> {
        self.ledger.reasons(crate::clock::unix_now())
    }

    /// Domains in the ledger and decisions in the ring.
    pub fn sizes(&self) -> (usize, usize) {
        (self.ledger.len(), self.ring().len())
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;

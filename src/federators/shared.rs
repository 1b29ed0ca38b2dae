//! Evidence and escalations shared by replicas through the cluster's Redis (`[cluster]`):
//! each replica counts locally (nothing on the request path waits on Redis) and, on every
//! escalation tick before it evaluates, sends the per-day counts it added, its escalations
//! and its lifts, and takes back everyone's: the summed day counts replace its own, other
//! replicas' escalations and lifts apply here. Every replica then escalates the same domain
//! at the same threshold, and a restart of all replicas finds the evidence and escalations in
//! Redis. While Redis does not answer, the counts wait for the next tick and each replica
//! escalates on its own evidence.

use super::content::{Pair, MAX_PAIRS};
use super::evidence::{DomainEvidence, Escalated, Lifted, Store};
use super::{unix_now, Federators};
use crate::cluster::{Cluster, EvidencePull, EvidencePush};
use crate::config::MAX_WINDOW_DAYS;
use std::collections::HashMap;
use std::sync::Arc;

/// Keys counted between two exchanges at most: while Redis is away they wait, bounded; past
/// it new keys count locally only.
const MAX_PENDING_KEYS: usize = 100_000;

impl Store {
    /// Counts one activity under `key` for the next exchange (only while shared).
    pub(super) fn pending(&mut self, key: impl FnOnce() -> String, day: u64) {
        if let Some(pending) = &mut self.pending {
            let key = key();
            if pending.len() >= MAX_PENDING_KEYS && !pending.contains_key(&key) {
                return;
            }
            let n = pending.entry(key).or_default().entry(day).or_default();
            *n = n.saturating_add(1);
        }
    }
}

impl Federators {
    /// Shares evidence and escalations through `cluster` from now on.
    pub fn share(&mut self, cluster: Arc<Cluster>) {
        self.lock().pending = Some(HashMap::new());
        self.cluster = Some(cluster);
    }

    /// One exchange with the other replicas (see the module's header). Call before the
    /// tick's evaluation.
    pub(super) async fn exchange(&self) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let now = unix_now();
        let (push, lifts) = {
            let mut store = self.lock();
            let lifts = std::mem::take(&mut store.pending_lifts);
            let push = EvidencePush {
                counts: store
                    .pending
                    .as_mut()
                    .map(std::mem::take)
                    .unwrap_or_default(),
                escalated: store
                    .escalated
                    .iter()
                    .filter_map(|(d, e)| Some((d.clone(), serde_json::to_string(e).ok()?)))
                    .collect(),
                lifted: lifts
                    .iter()
                    .filter_map(|(d, l)| Some((d.clone(), serde_json::to_string(l).ok()?)))
                    .collect(),
                max_keys: self.config.max_tracked_domains + MAX_PAIRS,
                now,
            };
            (push, lifts)
        };
        let pulled = cluster.exchange_evidence(&push).await;
        let mut store = self.lock();
        match pulled {
            Some(pull) => merge(&mut store, pull, self.config.max_tracked_domains, now),
            None => {
                // Kept for the next tick: nothing counted is lost while Redis is away.
                if let Some(pending) = &mut store.pending {
                    for (key, days) in push.counts {
                        let mine = pending.entry(key).or_default();
                        for (day, n) in days {
                            let slot = mine.entry(day).or_default();
                            *slot = slot.saturating_add(n);
                        }
                    }
                }
                store.pending_lifts.extend(lifts);
            }
        }
    }
}

/// Takes in what the replicas know together.
fn merge(store: &mut Store, pull: EvidencePull, max_domains: usize, now: u64) {
    for (domain, json) in pull.lifted {
        let Ok(lift) = serde_json::from_str::<Lifted>(&json) else {
            continue;
        };
        if store.lifted.get(&domain).is_some_and(|l| l.at >= lift.at) {
            continue;
        }
        if store
            .escalated
            .get(&domain)
            .is_some_and(|e| e.at <= lift.at)
        {
            store.escalated.remove(&domain);
        }
        if let Some(e) = store.domains.get_mut(&domain) {
            e.days.clear();
        }
        store.content.forget_days(&domain);
        store.lifted.insert(domain, lift);
        store.peer_lifted = true;
        store.dirty = true;
    }
    for (domain, json) in pull.escalated {
        let Ok(e) = serde_json::from_str::<Escalated>(&json) else {
            continue;
        };
        let lifted_since = store.lifted.get(&domain).is_some_and(|l| l.at >= e.at);
        if lifted_since || store.escalated.contains_key(&domain) {
            continue;
        }
        if store.escalated.len() < max_domains {
            store.escalated.insert(domain, e);
            store.dirty = true;
        }
    }
    let newest = now / super::SECS_PER_DAY;
    for (key, mut days) in pull.days {
        days.retain(|(d, _)| d + u64::from(MAX_WINDOW_DAYS) > newest);
        if let Some(domain) = key.strip_prefix("ff:") {
            if !store.domains.contains_key(domain) && store.domains.len() >= max_domains {
                continue;
            }
            let total = days.iter().map(|d| d.1).sum();
            let e = store
                .domains
                .entry(domain.to_string())
                .or_insert_with(|| DomainEvidence {
                    total,
                    first_seen: now,
                    last_seen: now,
                    ..DomainEvidence::default()
                });
            e.days = days;
        } else if let Some((rule, domain)) = key
            .strip_prefix("cr:")
            .and_then(|rest| rest.rsplit_once(':'))
        {
            let pairs = &mut store.content.pairs;
            let k = (rule.to_string(), domain.to_string());
            if !pairs.contains_key(&k) && pairs.len() >= MAX_PAIRS {
                continue;
            }
            let matches = days.iter().map(|d| d.1).sum();
            pairs
                .entry(k)
                .or_insert_with(|| Pair {
                    matches,
                    first_seen: now,
                    last_seen: now,
                    ..Pair::default()
                })
                .days = days;
        }
    }
}

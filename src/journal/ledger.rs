//! The per-domain ledger: for each sending domain, counts by decision and reason over the
//! last hour (in five-minute slots) and the last day (in hourly slots), when it was last
//! seen, and the last few activity ids per reason.
//!
//! Bounded: at most `capacity` domains, in [`SHARDS`] shards so that concurrent requests
//! from different domains rarely wait on each other. A shard holds a std mutex for a hash
//! lookup and a few array writes (no I/O, no await). When a shard is full, a new domain
//! evicts the quietest eighth of that shard (by the day's total): one scan per eighth of the
//! shard's capacity, so eviction costs a few nanoseconds per request amortised, and a flood
//! of one-off domains cannot push out the domains that send the most.

use super::window::Window;
use crate::reject::Decision;
use serde::Serialize;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Independent locks; a power of two well above the cores a proxy runs on.
pub(super) const SHARDS: usize = 16;
/// Activity ids kept per decision and reason of a domain.
pub const IDS_PER_REASON: usize = 3;
/// Five-minute slots in an hour; hourly slots in a day.
const HOUR_SLOTS: usize = 12;
const DAY_SLOTS: usize = 24;

/// The four decisions, in the order the counts arrays hold them.
pub const DECISIONS: [Decision; 4] = [
    Decision::Forwarded,
    Decision::Rejected,
    Decision::Dropped,
    Decision::WouldReject,
];

pub(super) fn decision_index(d: Decision) -> usize {
    match d {
        Decision::Forwarded => 0,
        Decision::Rejected => 1,
        Decision::Dropped => 2,
        Decision::WouldReject => 3,
    }
}

/// One domain's tallies.
#[derive(Debug, Default)]
struct Domain {
    last_seen: u64,
    tallies: Vec<Tally>,
}

/// One decision and reason of one domain.
#[derive(Debug)]
struct Tally {
    decision: Decision,
    reason: &'static str,
    hour: Window<HOUR_SLOTS>,
    day: Window<DAY_SLOTS>,
    last_ids: VecDeque<Box<str>>,
}

impl Domain {
    fn day_total(&self, now: u64) -> u64 {
        self.tallies.iter().map(|t| t.day.total(now / 3600)).sum()
    }

    fn totals(&self, now: u64) -> ([u64; 4], [u64; 4]) {
        let (mut hour, mut day) = ([0; 4], [0; 4]);
        for t in &self.tallies {
            let i = decision_index(t.decision);
            hour[i] += t.hour.total(now / 300);
            day[i] += t.day.total(now / 3600);
        }
        (hour, day)
    }
}

/// Counts per decision, as the admin API shows them.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub forwarded: u64,
    pub rejected: u64,
    pub dropped: u64,
    pub would_reject: u64,
}

impl Counts {
    fn from(c: [u64; 4]) -> Counts {
        Counts {
            forwarded: c[0],
            rejected: c[1],
            dropped: c[2],
            would_reject: c[3],
        }
    }

    pub fn total(&self) -> u64 {
        self.forwarded + self.rejected + self.dropped + self.would_reject
    }

    /// The count `sort` names (`total`, or a decision).
    pub fn by(&self, sort: Sort) -> u64 {
        match sort {
            Sort::Forwarded => self.forwarded,
            Sort::Rejected => self.rejected,
            Sort::Dropped => self.dropped,
            Sort::WouldReject => self.would_reject,
            _ => self.total(),
        }
    }
}

/// A row of `GET /admin/domains`.
#[derive(Debug, Clone, Serialize)]
pub struct DomainRow {
    pub domain: String,
    /// Unix seconds.
    pub last_seen: u64,
    pub hour: Counts,
    pub day: Counts,
}

/// One decision and reason in `GET /admin/domains/<domain>`.
#[derive(Debug, Clone, Serialize)]
pub struct ReasonRow {
    pub decision: &'static str,
    pub reason: &'static str,
    pub hour: u64,
    pub day: u64,
    /// Newest first.
    pub last_activity_ids: Vec<String>,
}

/// `GET /admin/domains/<domain>`.
#[derive(Debug, Clone, Serialize)]
pub struct DomainDetail {
    #[serde(flatten)]
    pub row: DomainRow,
    pub reasons: Vec<ReasonRow>,
}

/// How `GET /admin/domains` orders its rows (`sort=`): by the day's count, highest first,
/// or by `last_seen` (newest first) or `domain` (alphabetical).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Total,
    Forwarded,
    Rejected,
    Dropped,
    WouldReject,
    LastSeen,
    Domain,
}

impl Sort {
    /// Every order, in the order `sort=` lists them.
    pub const ALL: [Sort; 7] = [
        Sort::Total,
        Sort::Forwarded,
        Sort::Rejected,
        Sort::Dropped,
        Sort::WouldReject,
        Sort::LastSeen,
        Sort::Domain,
    ];

    /// The `sort=` word.
    pub fn name(self) -> &'static str {
        match self {
            Sort::Total => "total",
            Sort::Forwarded => "forwarded",
            Sort::Rejected => "rejected",
            Sort::Dropped => "dropped",
            Sort::WouldReject => "would_reject",
            Sort::LastSeen => "last_seen",
            Sort::Domain => "domain",
        }
    }

    pub fn parse(s: &str) -> Option<Sort> {
        Sort::ALL.into_iter().find(|sort| sort.name() == s)
    }
}

pub(super) struct Ledger {
    shards: Vec<Mutex<HashMap<Box<str>, Domain>>>,
    per_shard: usize,
}

impl Ledger {
    pub(super) fn new(capacity: usize) -> Ledger {
        Ledger {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// Counts one decision for `domain` at `now` (Unix seconds). `id` is allocated by the
    /// caller, outside the lock.
    pub(super) fn record(
        &self,
        domain: &str,
        now: u64,
        decision: Decision,
        reason: &'static str,
        id: Option<Box<str>>,
    ) {
        let mut shard = self.shard(domain);
        if !shard.contains_key(domain) {
            if shard.len() >= self.per_shard {
                evict_quietest(&mut shard, now);
            }
            shard.insert(domain.into(), Domain::default());
        }
        let Some(entry) = shard.get_mut(domain) else {
            return;
        };
        entry.last_seen = entry.last_seen.max(now);
        let at = match entry
            .tallies
            .iter()
            .position(|t| t.decision == decision && t.reason == reason)
        {
            Some(i) => i,
            None => {
                entry.tallies.push(Tally {
                    decision,
                    reason,
                    hour: Window::default(),
                    day: Window::default(),
                    last_ids: VecDeque::with_capacity(IDS_PER_REASON),
                });
                entry.tallies.len() - 1
            }
        };
        let tally = &mut entry.tallies[at];
        tally.hour.add(now / 300);
        tally.day.add(now / 3600);
        if let Some(id) = id {
            if tally.last_ids.len() == IDS_PER_REASON {
                tally.last_ids.pop_back();
            }
            tally.last_ids.push_front(id);
        }
    }

    /// Every domain's row, for listing. Each shard is locked in turn, for a copy of its rows.
    pub(super) fn rows(&self, now: u64) -> Vec<DomainRow> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            out.extend(shard.iter().map(|(name, d)| row(name, d, now)));
        }
        out
    }

    pub(super) fn detail(&self, domain: &str, now: u64) -> Option<DomainDetail> {
        let shard = self.shard(domain);
        let d = shard.get(domain)?;
        let mut reasons: Vec<ReasonRow> = d
            .tallies
            .iter()
            .map(|t| ReasonRow {
                decision: t.decision.as_str(),
                reason: t.reason,
                hour: t.hour.total(now / 300),
                day: t.day.total(now / 3600),
                last_activity_ids: t.last_ids.iter().map(|id| id.to_string()).collect(),
            })
            .collect();
        reasons.sort_by(|a, b| b.day.cmp(&a.day).then(a.reason.cmp(b.reason)));
        Some(DomainDetail {
            row: row(domain, d, now),
            reasons,
        })
    }

    /// Per decision and reason, the counts over the last hour and day of every domain in the
    /// ledger, highest day first.
    pub(super) fn reasons(&self, now: u64) -> Vec<(Decision, &'static str, u64, u64)> {
        let mut sums: HashMap<(usize, &'static str), (Decision, u64, u64)> = HashMap::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for t in shard.values().flat_map(|d| &d.tallies) {
                let e = sums
                    .entry((decision_index(t.decision), t.reason))
                    .or_insert((t.decision, 0, 0));
                e.1 += t.hour.total(now / 300);
                e.2 += t.day.total(now / 3600);
            }
        }
        let mut out: Vec<_> = sums
            .into_iter()
            .map(|((_, reason), (d, hour, day))| (d, reason, hour, day))
            .collect();
        out.sort_by(|a, b| b.3.cmp(&a.3).then(a.1.cmp(b.1)));
        out
    }

    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    fn shard(&self, domain: &str) -> MutexGuard<'_, HashMap<Box<str>, Domain>> {
        let mut h = DefaultHasher::new();
        domain.hash(&mut h);
        let i = usize::try_from(h.finish() % SHARDS as u64).unwrap_or(0);
        // A panic while counting leaves at worst one count off.
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn row(name: &str, d: &Domain, now: u64) -> DomainRow {
    let (hour, day) = d.totals(now);
    DomainRow {
        domain: name.to_string(),
        last_seen: d.last_seen,
        hour: Counts::from(hour),
        day: Counts::from(day),
    }
}

/// Removes the eighth of `shard` (at least one) with the smallest totals over the day.
fn evict_quietest(shard: &mut HashMap<Box<str>, Domain>, now: u64) {
    let mut totals: Vec<(u64, u64)> = shard
        .values()
        .map(|d| (d.day_total(now), d.last_seen))
        .collect();
    let n = (totals.len() / 8).max(1);
    if totals.is_empty() {
        return;
    }
    // The n-th smallest (total, last seen): everything at or below it goes, up to n entries.
    let (_, &mut cut, _) = totals.select_nth_unstable(n - 1);
    let mut left = n;
    shard.retain(|_, d| {
        if left > 0 && (d.day_total(now), d.last_seen) <= cut {
            left -= 1;
            false
        } else {
            true
        }
    });
}

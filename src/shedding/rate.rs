//! Fair share per sender: a GCRA token bucket per keyId host (and optionally per keyId),
//! checked right after the signature header parses, so a sender over its share costs no
//! digest, no JSON, no key fetch and no public-key operation.
//!
//! The arithmetic is governor's (a direct limiter per sender: one atomic word of state).
//! The senders live in a bounded moka cache rather than governor's keyed map, because that
//! map only shrinks when asked and has no capacity: here an idle sender's bucket is dropped
//! once it would have refilled anyway (so dropping it changes no answer), and past
//! `max_tracked_senders` the least useful bucket goes (that sender starts again with a full
//! burst: more lenient, never stricter).

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use moka::sync::Cache;
use serde::Deserialize;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// `[rate_limits]` in the main config: the default share of every sending host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Off: no sender is ever answered 429 by inboxguard.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Sustained deliveries per second per keyId host.
    #[serde(default = "default_per_second")]
    pub per_second: u32,
    /// Deliveries a host may send at once after being quiet.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// A second, per-keyId (per actor) bucket; off unless set.
    #[serde(default)]
    pub per_actor_per_second: Option<u32>,
    #[serde(default)]
    pub per_actor_burst: Option<u32>,
    /// Buckets kept in memory at most (hosts and actors together).
    #[serde(default = "default_max_tracked")]
    pub max_tracked_senders: u64,
}

fn default_true() -> bool {
    true
}
fn default_per_second() -> u32 {
    50
}
fn default_burst() -> u32 {
    500
}
fn default_max_tracked() -> u64 {
    100_000
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            per_second: default_per_second(),
            burst: default_burst(),
            per_actor_per_second: None,
            per_actor_burst: None,
            max_tracked_senders: default_max_tracked(),
        }
    }
}

impl RateLimitConfig {
    /// Checks the numbers; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("rate_limits.per_second", Some(self.per_second)),
            ("rate_limits.burst", Some(self.burst)),
            (
                "rate_limits.per_actor_per_second",
                self.per_actor_per_second,
            ),
            ("rate_limits.per_actor_burst", self.per_actor_burst),
        ];
        for (key, value) in positive {
            if value == Some(0) {
                return Err(format!("{key}: must be at least 1"));
            }
        }
        if self.per_actor_burst.is_some() && self.per_actor_per_second.is_none() {
            return Err(
                "rate_limits.per_actor_burst: needs rate_limits.per_actor_per_second".into(),
            );
        }
        if self.max_tracked_senders == 0 {
            return Err("rate_limits.max_tracked_senders: must be at least 1".into());
        }
        Ok(())
    }
}

/// A sustained rate and a burst: one bucket's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Share {
    pub fn new(per_second: u32, burst: u32) -> Option<Share> {
        Some(Share {
            per_second: NonZeroU32::new(per_second)?,
            burst: NonZeroU32::new(burst)?,
        })
    }

    fn quota(self) -> Quota {
        Quota::per_second(self.per_second).allow_burst(self.burst)
    }

    /// How long an untouched bucket takes to fill up again: after that, a fresh bucket
    /// answers exactly as the old one would, so dropping it is lossless.
    fn refill(self) -> Duration {
        Duration::from_secs_f64(f64::from(self.burst.get()) / f64::from(self.per_second.get()))
    }
}

/// Which bucket said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Host,
    Actor,
}

impl Bucket {
    /// The `bucket` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Host => "host",
            Bucket::Actor => "actor",
        }
    }
}

/// A sender over its share: when it may come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverLimit {
    pub bucket: Bucket,
    pub retry_after: Duration,
}

type ActorBuckets = Cache<Box<str>, Arc<DefaultDirectRateLimiter>>;

/// Per-sender buckets, shared by every request. A bucket built under another share than the
/// one the rules now give its host is replaced, so a changed override applies at once.
pub struct SenderLimits {
    hosts: Cache<Box<str>, Arc<(DefaultDirectRateLimiter, Share)>>,
    actors: Option<(ActorBuckets, Share)>,
    default: Share,
    clock: DefaultClock,
}

impl SenderLimits {
    /// `None` when `[rate_limits] enabled = false`.
    pub fn new(config: &RateLimitConfig) -> Option<Arc<SenderLimits>> {
        if !config.enabled {
            return None;
        }
        let default = Share::new(config.per_second, config.burst)?;
        let actor = config
            .per_actor_per_second
            .and_then(|rate| Share::new(rate, config.per_actor_burst.unwrap_or(rate)));
        // Idle buckets go once they would have refilled; a generous floor keeps the cache
        // from churning on very fast refills.
        let idle = |share: Share| share.refill().max(Duration::from_secs(10));
        let hosts = Cache::builder()
            .max_capacity(config.max_tracked_senders)
            // Overrides can be slower than the default: keep the longest refill seen.
            .time_to_idle(idle(default).max(Duration::from_secs(3600)))
            .build();
        let actors = actor.map(|share| {
            let cache = Cache::builder()
                .max_capacity(config.max_tracked_senders)
                .time_to_idle(idle(share))
                .build();
            (cache, share)
        });
        Some(Arc::new(SenderLimits {
            hosts,
            actors,
            default,
            clock: DefaultClock::default(),
        }))
    }

    /// Takes one delivery from `host`'s bucket (shaped by `share`, the matching override, or
    /// the default) and, when per-actor buckets are on, from `key_id`'s.
    pub fn check(&self, host: &str, key_id: &str, share: Option<Share>) -> Result<(), OverLimit> {
        let share = share.unwrap_or(self.default);
        let bucket = match self.hosts.get(host) {
            // A bucket built under another share (the rules changed) is replaced.
            Some(b) if b.1 == share => b,
            _ => {
                let fresh = Arc::new((RateLimiter::direct(share.quota()), share));
                self.hosts.insert(host.into(), fresh.clone());
                fresh
            }
        };
        self.take(&bucket.0, Bucket::Host)?;
        if let Some((actors, share)) = &self.actors {
            let bucket = match actors.get(key_id) {
                Some(b) => b,
                None => actors.get_with(key_id.into(), || {
                    Arc::new(RateLimiter::direct(share.quota()))
                }),
            };
            self.take(&bucket, Bucket::Actor)?;
        }
        Ok(())
    }

    fn take(&self, limiter: &DefaultDirectRateLimiter, bucket: Bucket) -> Result<(), OverLimit> {
        limiter.check().map_err(|not_until| OverLimit {
            bucket,
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }

    /// The share of a host no override names.
    pub fn default_share(&self) -> Share {
        self.default
    }

    /// The per-keyId share, when per-actor buckets are on.
    pub fn actor_share(&self) -> Option<Share> {
        self.actors.as_ref().map(|(_, share)| *share)
    }

    /// Buckets held now (hosts and actors), for the gauge.
    pub fn tracked(&self) -> u64 {
        self.hosts.entry_count() + self.actors.as_ref().map_or(0, |(c, _)| c.entry_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_second: u32, burst: u32) -> Arc<SenderLimits> {
        SenderLimits::new(&RateLimitConfig {
            per_second,
            burst,
            ..RateLimitConfig::default()
        })
        .expect("enabled")
    }

    #[test]
    fn a_burst_passes_then_the_sender_waits_for_its_rate() {
        let l = limits(10, 5);
        for _ in 0..5 {
            assert_eq!(l.check("a.example", "k", None), Ok(()));
        }
        let over = l.check("a.example", "k", None).unwrap_err();
        assert_eq!(over.bucket, Bucket::Host);
        assert!(over.retry_after <= Duration::from_millis(100), "{over:?}");
        // Another host has its own bucket.
        assert_eq!(l.check("b.example", "k", None), Ok(()));
    }

    #[test]
    fn an_override_shapes_its_hosts_bucket() {
        let l = limits(1, 1);
        let relay = Share::new(1000, 100);
        for _ in 0..100 {
            assert_eq!(l.check("relay.example", "k", relay), Ok(()));
        }
        assert!(l.check("relay.example", "k", relay).is_err());
        assert_eq!(l.check("small.example", "k", None), Ok(()));
        assert!(l.check("small.example", "k", None).is_err());
    }

    #[test]
    fn per_actor_buckets_limit_one_key_within_a_host() {
        let l = SenderLimits::new(&RateLimitConfig {
            per_second: 1000,
            burst: 1000,
            per_actor_per_second: Some(1),
            per_actor_burst: Some(2),
            ..RateLimitConfig::default()
        })
        .expect("enabled");
        assert!(l
            .check("h.example", "https://h.example/u/a#k", None)
            .is_ok());
        assert!(l
            .check("h.example", "https://h.example/u/a#k", None)
            .is_ok());
        let over = l
            .check("h.example", "https://h.example/u/a#k", None)
            .unwrap_err();
        assert_eq!(over.bucket, Bucket::Actor);
        assert!(l
            .check("h.example", "https://h.example/u/b#k", None)
            .is_ok());
    }

    #[test]
    fn memory_is_bounded_by_max_tracked_senders() {
        let l = SenderLimits::new(&RateLimitConfig {
            max_tracked_senders: 100,
            ..RateLimitConfig::default()
        })
        .expect("enabled");
        for i in 0..5_000 {
            let _ = l.check(&format!("h{i}.example"), "k", None);
        }
        l.hosts.run_pending_tasks();
        assert!(l.tracked() <= 110, "{} buckets", l.tracked());
    }

    #[test]
    fn disabled_or_zero_is_refused_or_off() {
        assert!(SenderLimits::new(&RateLimitConfig {
            enabled: false,
            ..RateLimitConfig::default()
        })
        .is_none());
        let bad = RateLimitConfig {
            burst: 0,
            ..RateLimitConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("rate_limits.burst"));
    }
}

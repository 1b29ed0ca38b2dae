//! Load shedding that needs no rule written in advance: a fair share per sender
//! (`rate`), and backpressure from Mastodon's Sidekiq queue (`sidekiq`) by priority class
//! (`classes`). Every shed delivery is answered with a status the sender retries (429 or
//! 503 with `Retry-After`): nothing is lost, only deferred.

pub mod classes;
pub mod rate;
pub mod sidekiq;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::metrics::Metrics;
use classes::{Class, Classes};
use prometheus::{Gauge, IntCounterVec, IntGauge, IntGaugeVec};
use rate::{Bucket, OverLimit, SenderLimits, Share};
use sidekiq::{SidekiqGauges, Signal};
use std::sync::Arc;
use std::time::Duration;

/// The shedding metrics. Labels are fixed words: `bucket` (host | actor), `class`
/// (low | middle | high).
#[derive(Clone)]
pub struct ShedMetrics {
    pub rate_limited_total: IntCounterVec,
    pub rate_limit_tracked_senders: IntGauge,
    pub backpressure_shed_total: IntCounterVec,
    /// 1 per class while Sidekiq's latency is over that class's threshold.
    pub backpressure_active: IntGaugeVec,
    pub sidekiq_queue_latency_seconds: Gauge,
    pub sidekiq_queue_size: IntGauge,
    pub sidekiq_signal_stale: IntGauge,
}

impl ShedMetrics {
    fn new(metrics: &Metrics) -> Result<ShedMetrics, prometheus::Error> {
        let r = metrics.registrar();
        let m = ShedMetrics {
            rate_limited_total: r.counter_vec(
                "inboxguard_rate_limited_total",
                "Deliveries answered 429 because their sender was over its share, by bucket (host | actor)",
                &["bucket"],
            )?,
            rate_limit_tracked_senders: r.gauge(
                "inboxguard_rate_limit_tracked_senders",
                "Per-sender buckets held in memory (at most rate_limits.max_tracked_senders)",
            )?,
            backpressure_shed_total: r.counter_vec(
                "inboxguard_backpressure_shed_total",
                "Deliveries answered 503 while Mastodon's Sidekiq queue was behind, by priority class",
                &["class"],
            )?,
            backpressure_active: r.gauge_vec(
                "inboxguard_backpressure_active",
                "1 while deliveries of this priority class are being shed",
                &["class"],
            )?,
            sidekiq_queue_latency_seconds: r.float_gauge(
                "inboxguard_sidekiq_queue_latency_seconds",
                "Age of the oldest job in Mastodon's watched Sidekiq queue, as Sidekiq computes it",
            )?,
            sidekiq_queue_size: r.gauge(
                "inboxguard_sidekiq_queue_size",
                "Jobs waiting in Mastodon's watched Sidekiq queue",
            )?,
            sidekiq_signal_stale: r.gauge(
                "inboxguard_sidekiq_signal_stale",
                "1 while the Sidekiq queue reading is stale (Redis unreachable or slow): shedding is off",
            )?,
        };
        Ok(m)
    }
}

/// Everything the request path needs to shed load, built once at startup.
pub struct Shedding {
    limits: Option<Arc<SenderLimits>>,
    /// Replicas' shared budgets; the local buckets answer while it does not.
    cluster: Option<Arc<Cluster>>,
    classes: Classes,
    signal: Option<Arc<Signal>>,
    stale_after: Duration,
    pub metrics: ShedMetrics,
}

/// The fair-share check against the replicas' shared buckets; `None` when Redis did not
/// answer, and the local buckets decide.
async fn shared_check(
    cluster: &Cluster,
    limits: &SenderLimits,
    host: &str,
    key_id: &str,
    share: Option<Share>,
) -> Option<Result<(), OverLimit>> {
    let over = |bucket, wait| OverLimit {
        bucket,
        retry_after: wait,
    };
    let host_share = share.unwrap_or(limits.default_share());
    if let Err(wait) = cluster.take(&format!("host:{host}"), host_share).await? {
        return Some(Err(over(Bucket::Host, wait)));
    }
    if let Some(actor_share) = limits.actor_share() {
        if let Err(wait) = cluster
            .take(&format!("actor:{key_id}"), actor_share)
            .await?
        {
            return Some(Err(over(Bucket::Actor, wait)));
        }
    }
    Some(Ok(()))
}

/// A delivery to shed under backpressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shed {
    pub class: Class,
    pub retry_after_secs: u32,
}

impl Shedding {
    pub fn new(
        config: &Config,
        metrics: &Metrics,
        cluster: Option<Arc<Cluster>>,
    ) -> Result<Shedding, String> {
        let classes = Classes::new(&config.backpressure)?;
        let signal = config.sidekiq.as_ref().map(|_| Arc::new(Signal::default()));
        let stale_after = config
            .sidekiq
            .as_ref()
            .map_or(Duration::ZERO, |s| Duration::from_secs(s.stale_after_secs));
        Ok(Shedding {
            limits: SenderLimits::new(&config.rate_limits),
            cluster,
            classes,
            signal,
            stale_after,
            metrics: ShedMetrics::new(metrics).map_err(|e| e.to_string())?,
        })
    }

    /// Takes one delivery from the sender's share.
    /// `share` is the rules' override for `host`, if any.
    pub async fn fair_share(
        &self,
        host: &str,
        key_id: &str,
        share: Option<Share>,
    ) -> Result<(), OverLimit> {
        let Some(limits) = &self.limits else {
            return Ok(());
        };
        if let Some(cluster) = &self.cluster {
            if let Some(result) = shared_check(cluster, limits, host, key_id, share).await {
                return result;
            }
        }
        limits.check(host, key_id, share)
    }

    /// Whether to shed an activity of this type now, from the last Sidekiq reading. A stale
    /// reading sheds nothing.
    pub fn backpressure(&self, kind: Option<&str>, object_kind: Option<&str>) -> Option<Shed> {
        let latency = self.signal.as_ref()?.latency(self.stale_after)?;
        let class = self.classes.classify(kind, object_kind);
        self.classes.sheds(class, latency).then_some(Shed {
            class,
            retry_after_secs: self.classes.retry_after_secs,
        })
    }

    /// The Sidekiq poller's task, when `[mastodon.sidekiq]` is configured; it also keeps the
    /// per-class `backpressure_active` gauges and the tracked-senders gauge current.
    pub fn poller(
        self: &Arc<Self>,
        config: &Config,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let (sidekiq, signal) = (config.sidekiq.clone()?, self.signal.clone()?);
        let gauges = SidekiqGauges {
            latency_seconds: self.metrics.sidekiq_queue_latency_seconds.clone(),
            size: self.metrics.sidekiq_queue_size.clone(),
            stale: self.metrics.sidekiq_signal_stale.clone(),
        };
        let me = self.clone();
        let on_reading = move || me.refresh_gauges();
        Some(tokio::spawn(sidekiq::run_poller(
            sidekiq, signal, gauges, on_reading, shutdown,
        )))
    }

    fn refresh_gauges(&self) {
        for class in [Class::Low, Class::Middle, Class::High] {
            let active = self
                .signal
                .as_ref()
                .and_then(|s| s.latency(self.stale_after))
                .is_some_and(|latency| self.classes.sheds(class, latency));
            self.metrics
                .backpressure_active
                .with_label_values(&[class.as_str()])
                .set(i64::from(active));
        }
        if let Some(limits) = &self.limits {
            let tracked = i64::try_from(limits.tracked()).unwrap_or(i64::MAX);
            self.metrics.rate_limit_tracked_senders.set(tracked);
        }
    }
}

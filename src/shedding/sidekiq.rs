//! Backpressure from Mastodon's Sidekiq: Puma answers 202 as soon as a job is queued, so an
//! overloaded Mastodon shows it only as a growing `ingress` queue. A task polls that queue's
//! latency the way `Sidekiq::Queue#latency` computes it (the oldest job is
//! `LINDEX queue:<name> -1`; latency = now − its `enqueued_at`) and its length, off the
//! request path; requests read the last reading from atomics and never wait on Redis.
//!
//! When Redis is unreachable or slow the reading goes stale after `stale_after_secs` and
//! shedding stops (fail open): a broken signal must never refuse deliveries.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `[mastodon.sidekiq]`: where Mastodon's Sidekiq keeps its queues.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidekiqConfig {
    /// Mastodon's Redis, e.g. `redis://127.0.0.1:6379/0` (with a password:
    /// `redis://:secret@host:6379/0`; never logged).
    pub redis_url: String,
    /// The queue inbox deliveries land on.
    #[serde(default = "default_queue")]
    pub queue: String,
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// A reading older than this is stale: shedding stops until a poll succeeds again.
    #[serde(default = "default_stale_after_secs")]
    pub stale_after_secs: u64,
}

fn default_queue() -> String {
    "ingress".into()
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_stale_after_secs() -> u64 {
    5
}

impl SidekiqConfig {
    pub fn validate(&self) -> Result<(), String> {
        redis::Client::open(self.redis_url.as_str())
            // The URL may hold a password: say what is wrong, not what was written.
            .map_err(|_| {
                "mastodon.sidekiq.redis_url: not a valid redis:// or unix:// URL".to_string()
            })?;
        if self.queue.is_empty() || self.queue.contains(char::is_whitespace) {
            return Err("mastodon.sidekiq.queue: a Sidekiq queue name".into());
        }
        if !(100..=60_000).contains(&self.poll_interval_ms) {
            return Err("mastodon.sidekiq.poll_interval_ms: between 100 and 60000".into());
        }
        if self.stale_after_secs == 0 {
            return Err("mastodon.sidekiq.stale_after_secs: at least 1".into());
        }
        Ok(())
    }
}

/// The last reading of the queue, shared between the poller and every request.
#[derive(Debug, Default)]
pub struct Signal {
    latency_ms: AtomicU64,
    size: AtomicU64,
    /// Unix milliseconds of the last successful poll; 0 before the first.
    read_at_ms: AtomicU64,
    stale: AtomicBool,
}

/// One reading of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub latency: Duration,
    pub size: u64,
}

impl Signal {
    /// The queue's latency, or `None` when the reading is older than `stale_after`.
    pub fn latency(&self, stale_after: Duration) -> Option<Duration> {
        let read_at = self.read_at_ms.load(Ordering::Acquire);
        let age = unix_ms().saturating_sub(read_at);
        (read_at != 0 && u128::from(age) <= stale_after.as_millis())
            .then(|| Duration::from_millis(self.latency_ms.load(Ordering::Relaxed)))
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    fn record(&self, reading: Reading) {
        let ms = u64::try_from(reading.latency.as_millis()).unwrap_or(u64::MAX);
        self.latency_ms.store(ms, Ordering::Relaxed);
        self.size.store(reading.size, Ordering::Relaxed);
        self.read_at_ms.store(unix_ms(), Ordering::Release);
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A job's `enqueued_at` as Unix milliseconds: a float of seconds up to Sidekiq 7, an
/// integer of milliseconds from Sidekiq 8. A number too small to be milliseconds of this
/// century is read as seconds, so either form of either version reads right.
pub fn enqueued_at_ms(job: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Job {
        enqueued_at: serde_json::Number,
    }
    let job: Job = serde_json::from_slice(job).ok()?;
    let n = job.enqueued_at;
    // 10^11 ms is 1973; 10^11 s is the year 5138.
    const MS_FLOOR: f64 = 1e11;
    if let Some(i) = n.as_u64() {
        return Some(if (i as f64) < MS_FLOOR {
            i.saturating_mul(1000)
        } else {
            i
        });
    }
    let f = n.as_f64()?;
    if !f.is_finite() || f < 0.0 {
        return None;
    }
    let ms = if f < MS_FLOOR { f * 1000.0 } else { f };
    // Float to integer: saturating by definition in Rust.
    Some(ms as u64)
}

/// Reads the queue once: its length and its oldest job's age.
async fn poll(conn: &mut ConnectionManager, queue: &str) -> redis::RedisResult<Reading> {
    let key = format!("queue:{queue}");
    let (oldest, size): (Option<Vec<u8>>, u64) = redis::pipe()
        .cmd("LINDEX")
        .arg(&key)
        .arg(-1)
        .cmd("LLEN")
        .arg(&key)
        .query_async(conn)
        .await?;
    let latency = oldest
        .as_deref()
        .and_then(enqueued_at_ms)
        .map_or(Duration::ZERO, |at| {
            Duration::from_millis(unix_ms().saturating_sub(at))
        });
    Ok(Reading { latency, size })
}

/// Gauges the poller keeps current.
pub struct SidekiqGauges {
    pub latency_seconds: prometheus::Gauge,
    pub size: prometheus::IntGauge,
    pub stale: prometheus::IntGauge,
}

/// Polls until `shutdown` turns true. Connection and response each time out well within the
/// poll interval, so a hung Redis only makes the reading stale.
pub async fn run_poller(
    config: SidekiqConfig,
    signal: Arc<Signal>,
    gauges: SidekiqGauges,
    on_reading: impl Fn() + Send + 'static,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(config.poll_interval_ms);
    let stale_after = Duration::from_secs(config.stale_after_secs);
    let timeout = (interval / 2).max(Duration::from_millis(100));
    let client = match redis::Client::open(config.redis_url.as_str()) {
        Ok(c) => c,
        Err(_) => {
            // Validated at load; still, a broken URL must not end the proxy.
            tracing::error!("sidekiq redis_url refused; backpressure off");
            gauges.stale.set(1);
            return;
        }
    };
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    let mut conn: Option<ConnectionManager> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        if conn.is_none() {
            let connect =
                ConnectionManager::new_with_config(client.clone(), manager_config.clone());
            match tokio::time::timeout(timeout * 2, connect).await {
                Ok(Ok(c)) => conn = Some(c),
                Ok(Err(e)) => note_failure(&signal, &gauges, stale_after, &e.to_string()),
                Err(_) => note_failure(&signal, &gauges, stale_after, "connect timed out"),
            }
        }
        let Some(c) = conn.as_mut() else {
            on_reading();
            continue;
        };
        match tokio::time::timeout(timeout * 2, poll(c, &config.queue)).await {
            Ok(Ok(reading)) => {
                signal.record(reading);
                gauges.latency_seconds.set(reading.latency.as_secs_f64());
                gauges
                    .size
                    .set(i64::try_from(reading.size).unwrap_or(i64::MAX));
                if signal.stale.swap(false, Ordering::Relaxed) {
                    tracing::info!(queue = %config.queue, "sidekiq queue signal restored");
                }
                gauges.stale.set(0);
            }
            Ok(Err(e)) => note_failure(&signal, &gauges, stale_after, &e.to_string()),
            Err(_) => note_failure(&signal, &gauges, stale_after, "poll timed out"),
        }
        // After every poll, good or failed: a stale reading ends shedding here too.
        on_reading();
    }
}

/// Marks the signal stale once its last reading is too old, logging the change once.
fn note_failure(signal: &Signal, gauges: &SidekiqGauges, stale_after: Duration, error: &str) {
    if signal.latency(stale_after).is_none() && !signal.stale.swap(true, Ordering::Relaxed) {
        // The URL may hold a password: only the error is logged.
        tracing::warn!(
            error,
            "sidekiq queue signal stale: backpressure shedding is off until Redis answers"
        );
        gauges.stale.set(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enqueued_at_in_both_sidekiq_formats() {
        // Sidekiq 7: float seconds.
        assert_eq!(
            enqueued_at_ms(br#"{"class":"X","enqueued_at":1733380000.25}"#),
            Some(1_733_380_000_250)
        );
        // Sidekiq 8: integer milliseconds.
        assert_eq!(
            enqueued_at_ms(br#"{"enqueued_at":1733380000250,"class":"X"}"#),
            Some(1_733_380_000_250)
        );
        // Integer seconds (hand-made jobs) are still seconds.
        assert_eq!(
            enqueued_at_ms(br#"{"enqueued_at":1733380000}"#),
            Some(1_733_380_000_000)
        );
        for bad in [
            &br#"{"enqueued_at":"soon"}"#[..],
            b"{}",
            b"not json",
            br#"{"enqueued_at":-5}"#,
        ] {
            assert_eq!(
                enqueued_at_ms(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_reading_goes_stale() {
        let s = Signal::default();
        assert_eq!(s.latency(Duration::from_secs(5)), None, "no reading yet");
        s.record(Reading {
            latency: Duration::from_secs(42),
            size: 7,
        });
        assert_eq!(
            s.latency(Duration::from_secs(5)),
            Some(Duration::from_secs(42))
        );
        s.read_at_ms.store(unix_ms() - 6_000, Ordering::Release);
        assert_eq!(s.latency(Duration::from_secs(5)), None);
    }
}

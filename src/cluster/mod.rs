//! State shared by replicas through Redis (`[cluster]`): one fair-share budget per sender
//! across every replica, one duplicate-suppression set, and a second-level key cache, so a
//! key fetched by one replica is not fetched again by the others; and the friendly-federator
//! and content-rule evidence and escalations (`evidence`), so every replica escalates the
//! same domain at the same threshold.
//!
//! Redis is an accelerator here, never a dependency: every operation has a short deadline, and
//! while Redis is unreachable, slow or answering errors each feature falls back to the
//! replica's own in-memory state (`inboxguard_cluster_redis_up` says which is in force). No
//! request fails because of Redis.
//!
//! Fair share is one GCRA step in one Lua script per check, on Redis's own clock: an exact
//! global budget, one round trip (about 0.1 ms on a LAN), no clock skew between replicas.
//! Leasing slices of the budget to local buckets would save the round trip but lets a sender
//! spread over N replicas get up to N slices at once, and a relay is exactly such a sender.

pub mod config;
mod evidence;
mod ops;
#[cfg(test)]
mod tests;

pub use config::ClusterConfig;
pub use evidence::{EvidencePull, EvidencePush};

use crate::metrics::Metrics;
use arc_swap::ArcSwapOption;
use prometheus::{IntCounterVec, IntGauge, Opts};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The shared dedupe key of an activity id: its SHA-256, so ids of any length make keys of
/// one size and no id is stored in Redis.
pub fn id_digest(id: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// The shared state's handle. Cheap to clone through its `Arc`.
pub struct Cluster {
    client: redis::Client,
    conn: ArcSwapOption<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    pub(crate) config: ClusterConfig,
    /// `UNKNOWN` until the first answer or failure, then `UP` or `DOWN`.
    state: AtomicU8,
    up_gauge: IntGauge,
    errors: IntCounterVec,
    shared_keys: IntCounterVec,
    gcra: redis::Script,
}

impl Cluster {
    /// `None` without `[cluster]`.
    pub fn new(
        config: Option<&ClusterConfig>,
        metrics: &Metrics,
    ) -> Result<Option<Arc<Cluster>>, String> {
        let Some(config) = config else {
            return Ok(None);
        };
        let client = redis::Client::open(config.redis_url.as_str())
            .map_err(|e| format!("cluster.redis_url: {e}"))?;
        let up_gauge = IntGauge::new(
            "inboxguard_cluster_redis_up",
            "1 while the shared Redis answers; 0 while each replica uses its own state",
        )
        .map_err(|e| e.to_string())?;
        let counter_vec = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label]).map_err(|e| e.to_string())
        };
        let errors = counter_vec(
            "inboxguard_cluster_redis_errors_total",
            "Shared-state operations that failed or timed out (the local state answered), by operation",
            "op",
        )?;
        let shared_keys = counter_vec(
            "inboxguard_cluster_key_cache_total",
            "Key cache misses answered from the replicas' shared cache (hit) or not (miss: fetched)",
            "result",
        )?;
        metrics
            .register(Box::new(up_gauge.clone()))
            .and_then(|()| metrics.register(Box::new(errors.clone())))
            .and_then(|()| metrics.register(Box::new(shared_keys.clone())))
            .map_err(|e| e.to_string())?;
        Ok(Some(Arc::new(Cluster {
            client,
            conn: ArcSwapOption::empty(),
            prefix: config.key_prefix.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            config: config.clone(),
            state: AtomicU8::new(UNKNOWN),
            up_gauge,
            errors,
            shared_keys,
            gcra: redis::Script::new(ops::GCRA),
        })))
    }

    /// Connects, and keeps checking the connection once a second until `shutdown`; the
    /// connection manager reconnects by itself, this keeps the gauge and the log honest.
    pub async fn maintain(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(200))))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
            }
            if self.conn.load().is_none() {
                let connect =
                    ConnectionManager::new_with_config(self.client.clone(), manager_config.clone());
                match tokio::time::timeout(Duration::from_secs(2), connect).await {
                    Ok(Ok(c)) => self.conn.store(Some(Arc::new(c))),
                    Ok(Err(e)) => self.connect_failed(&e.to_string()),
                    Err(_) => self.connect_failed("timed out"),
                }
            }
            if self.conn.load().is_some() {
                let _: Option<String> = self
                    .run("ping", |mut c| async move {
                        redis::cmd("PING").query_async(&mut c).await
                    })
                    .await;
            }
        }
    }

    /// Counts a key cache miss answered (or not) from the shared cache.
    pub fn count_shared_key(&self, hit: bool) {
        let label = if hit { "hit" } else { "miss" };
        self.shared_keys.with_label_values(&[label]).inc();
    }

    /// Whether Redis answered the last operation.
    pub fn is_up(&self) -> bool {
        self.state.load(Ordering::Relaxed) == UP
    }

    fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}{kind}:{rest}", self.prefix)
    }

    /// Runs one operation within the deadline; `None` (and the local state answers) when
    /// there is no connection, or on an error or timeout.
    async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn.load_full()?;
        match tokio::time::timeout(self.timeout, f((*conn).clone())).await {
            Ok(Ok(v)) => {
                self.note(true, op, "");
                Some(v)
            }
            Ok(Err(e)) => {
                self.errors.with_label_values(&[op]).inc();
                self.note(false, op, &e.to_string());
                None
            }
            Err(_) => {
                self.errors.with_label_values(&[op]).inc();
                self.note(false, op, "timed out");
                None
            }
        }
    }

    fn connect_failed(&self, error: &str) {
        self.errors.with_label_values(&["connect"]).inc();
        self.note(false, "connect", error);
    }

    /// Logs a change of state once; the URL may hold a password, so only the error is logged.
    fn note(&self, up: bool, op: &str, error: &str) {
        let state = if up { UP } else { DOWN };
        if self.state.swap(state, Ordering::Relaxed) != state {
            self.up_gauge.set(i64::from(up));
            if up {
                tracing::info!("shared Redis answers: replicas share fair share, dedupe and keys");
            } else {
                tracing::warn!(
                    op,
                    error,
                    "shared Redis unavailable: each replica uses its own state until it answers"
                );
            }
        }
    }
}

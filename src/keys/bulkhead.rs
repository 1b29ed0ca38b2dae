//! Bulkheads around key fetches, so that one slow or hostile remote cannot exhaust the proxy:
//!
//! * a global cap on concurrent fetches (a cold cache after a restart fetches in parallel,
//!   but never more than this many sockets at once; excess lookups wait their turn inside
//!   the fetch timeout);
//! * a per-host cap (a flood of distinct keyIds from one host gets `Overloaded` at once
//!   instead of queueing behind itself);
//! * a per-host circuit breaker: after `failures` consecutive transient failures (timeout,
//!   connect, DNS, 5xx), fetches from that host fail at once with `CircuitOpen` for
//!   `open_for`; then one probe fetch is let through, and its outcome closes or reopens it.
//!
//! Concurrent lookups of one keyId are already coalesced by the cache, so these limits count
//! distinct keys. Host state is a small map bounded by [`MAX_TRACKED_HOSTS`]; idle healthy
//! hosts are forgotten first.

use super::KeyError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Hosts whose breaker or in-flight state we remember at once.
pub(crate) const MAX_TRACKED_HOSTS: usize = 10_000;

#[derive(Debug, Default)]
struct HostState {
    in_flight: usize,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    /// A probe is running while the breaker is half-open; others still fail fast.
    probing: bool,
}

impl HostState {
    fn is_idle_and_healthy(&self) -> bool {
        self.in_flight == 0 && self.consecutive_failures == 0 && self.open_until.is_none()
    }
}

pub(crate) struct Bulkhead {
    global: Arc<Semaphore>,
    per_host: usize,
    failures: u32,
    open_for: Duration,
    hosts: Mutex<HashMap<String, HostState>>,
}

/// Held for the duration of one fetch; releases both caps when dropped.
pub(crate) struct Permit<'a> {
    bulkhead: &'a Bulkhead,
    host: String,
    _global: OwnedSemaphorePermit,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut hosts = self.bulkhead.lock();
        if let Some(state) = hosts.get_mut(&self.host) {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
    }
}

impl Bulkhead {
    pub(crate) fn new(global: usize, per_host: usize, failures: u32, open_for: Duration) -> Self {
        Bulkhead {
            global: Arc::new(Semaphore::new(global)),
            per_host,
            failures,
            open_for,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    // A poisoned lock only means another fetch panicked mid-update of plain counters; the
    // counters are still usable, so keep going rather than fail every later fetch.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HostState>> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits one fetch from `host`, or says why not. Waits only for the global cap.
    pub(crate) async fn admit(&self, key_id: &str, host: &str) -> Result<Permit<'_>, KeyError> {
        {
            let mut hosts = self.lock();
            if !hosts.contains_key(host) && hosts.len() >= MAX_TRACKED_HOSTS {
                hosts.retain(|_, s| !s.is_idle_and_healthy());
                if hosts.len() >= MAX_TRACKED_HOSTS {
                    // Every tracked host is busy or failing: shed rather than grow.
                    return Err(KeyError::Overloaded {
                        key_id: key_id.to_string(),
                        host: host.to_string(),
                    });
                }
            }
            let state = hosts.entry(host.to_string()).or_default();
            if let Some(until) = state.open_until {
                if Instant::now() < until || state.probing {
                    return Err(KeyError::CircuitOpen {
                        key_id: key_id.to_string(),
                        host: host.to_string(),
                    });
                }
                state.probing = true;
            }
            if state.in_flight >= self.per_host {
                return Err(KeyError::Overloaded {
                    key_id: key_id.to_string(),
                    host: host.to_string(),
                });
            }
            state.in_flight += 1;
        }
        // Constructed before the await so that a cancelled wait (the fetch timed out) still
        // gives the per-host slot back.
        let mut pending = PendingSlot {
            bulkhead: self,
            host: Some(host.to_string()),
        };
        let global = match self.global.clone().acquire_owned().await {
            Ok(p) => p,
            // The semaphore is never closed; treat it as overload if it ever is.
            Err(_) => {
                return Err(KeyError::Overloaded {
                    key_id: key_id.to_string(),
                    host: host.to_string(),
                })
            }
        };
        Ok(Permit {
            bulkhead: self,
            host: pending.host.take().unwrap_or_default(),
            _global: global,
        })
    }

    /// Records a finished fetch's outcome for the host's breaker. Only transient failures
    /// (the remote is down or slow) count; a 404 or a bad document is an answer.
    pub(crate) fn record(&self, host: &str, result: &Result<impl Sized, KeyError>) {
        if matches!(result, Err(e) if e.is_shed()) {
            return;
        }
        let mut hosts = self.lock();
        let Some(state) = hosts.get_mut(host) else {
            return;
        };
        let failed = matches!(result, Err(e) if e.is_transient());
        state.probing = false;
        if failed {
            state.consecutive_failures = state.consecutive_failures.saturating_add(1);
            if state.consecutive_failures >= self.failures {
                if state.open_until.is_none() {
                    tracing::warn!(%host, failures = state.consecutive_failures, "key server circuit opened");
                }
                state.open_until = Some(Instant::now() + self.open_for);
            }
        } else {
            if state.open_until.is_some() {
                tracing::info!(%host, "key server circuit closed");
            }
            state.consecutive_failures = 0;
            state.open_until = None;
        }
    }
}

/// Gives a per-host slot back if admission is abandoned before a [`Permit`] exists.
struct PendingSlot<'a> {
    bulkhead: &'a Bulkhead,
    host: Option<String>,
}

impl Drop for PendingSlot<'_> {
    fn drop(&mut self) {
        if let Some(host) = self.host.take() {
            let mut hosts = self.bulkhead.lock();
            if let Some(state) = hosts.get_mut(&host) {
                state.in_flight = state.in_flight.saturating_sub(1);
                state.probing = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout_err() -> Result<(), KeyError> {
        Err(KeyError::Timeout {
            key_id: "k".into(),
            secs: 1,
        })
    }

    #[tokio::test]
    async fn per_host_cap_sheds_the_excess_and_frees_on_drop() {
        let b = Bulkhead::new(10, 2, 5, Duration::from_secs(30));
        let p1 = b.admit("k1", "h.example").await.unwrap();
        let _p2 = b.admit("k2", "h.example").await.unwrap();
        assert!(matches!(
            b.admit("k3", "h.example").await,
            Err(KeyError::Overloaded { .. })
        ));
        // Another host is unaffected.
        assert!(b.admit("k4", "other.example").await.is_ok());
        drop(p1);
        assert!(b.admit("k3", "h.example").await.is_ok());
    }

    #[tokio::test]
    async fn global_cap_makes_fetches_wait() {
        let b = Arc::new(Bulkhead::new(1, 4, 5, Duration::from_secs(30)));
        let first = b.admit("k1", "a.example").await.unwrap();
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.admit("k2", "b.example").await.is_ok() });
        tokio::task::yield_now().await;
        assert!(
            !waiter.is_finished(),
            "second fetch must wait for the global slot"
        );
        drop(first);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn breaker_opens_after_consecutive_failures_then_probes() {
        let b = Bulkhead::new(10, 4, 3, Duration::from_millis(50));
        for _ in 0..3 {
            let p = b.admit("k", "slow.example").await.unwrap();
            b.record("slow.example", &timeout_err());
            drop(p);
        }
        assert!(matches!(
            b.admit("k", "slow.example").await,
            Err(KeyError::CircuitOpen { .. })
        ));
        // A 404 elsewhere does not count, and a healthy host is not affected.
        assert!(b.admit("k", "fine.example").await.is_ok());
        tokio::time::sleep(Duration::from_millis(80)).await;
        // Half-open: one probe goes through, a second concurrent one is refused.
        let probe = b.admit("k", "slow.example").await.unwrap();
        assert!(matches!(
            b.admit("k2", "slow.example").await,
            Err(KeyError::CircuitOpen { .. })
        ));
        b.record("slow.example", &Ok::<(), KeyError>(()));
        drop(probe);
        assert!(b.admit("k", "slow.example").await.is_ok());
    }

    #[tokio::test]
    async fn answers_do_not_open_the_breaker() {
        let b = Bulkhead::new(10, 4, 2, Duration::from_secs(30));
        for _ in 0..5 {
            let p = b.admit("k", "gone.example").await.unwrap();
            b.record(
                "gone.example",
                &Err::<(), _>(KeyError::Gone {
                    key_id: "k".into(),
                    url: "u".into(),
                }),
            );
            drop(p);
        }
        assert!(b.admit("k", "gone.example").await.is_ok());
    }

    #[tokio::test]
    async fn cancelled_wait_returns_the_host_slot() {
        let b = Bulkhead::new(1, 1, 5, Duration::from_secs(30));
        let _hold = b.admit("k1", "a.example").await.unwrap();
        // b.example waits for the global slot, and is abandoned (like a fetch timeout).
        let abandoned =
            tokio::time::timeout(Duration::from_millis(20), b.admit("k2", "b.example")).await;
        assert!(abandoned.is_err());
        drop(_hold);
        assert!(b.admit("k3", "b.example").await.is_ok());
    }
}

//! Bulkheads around key fetches, so that one slow or hostile remote cannot exhaust the proxy:
//!
//! * a global cap on concurrent fetches (a cold cache after a restart fetches in parallel,
//!   but never more than this many sockets at once; excess lookups wait their turn inside
//!   the fetch timeout);
//! * a per-host cap (a flood of distinct keyIds from one host gets `Overloaded` at once
//!   instead of queueing behind itself);
//! * a per-host circuit breaker: after `failures` consecutive transient failures (timeout,
//!   connect, DNS, 5xx), fetches from that host fail at once with `CircuitOpen` for
//!   `open_for`; then one probe fetch is let through, and its outcome closes or reopens it
//!   (a probe abandoned without an outcome lets the next fetch probe instead).
//!
//! Concurrent lookups of one keyId are already coalesced by the cache, so these limits count
//! distinct keys. Host state is a small map bounded by [`MAX_TRACKED_HOSTS`]; when it is full,
//! the hosts longest unused that have nothing to remember any more (no fetch in flight, and a
//! breaker that is closed or whose open period has passed) are forgotten first.

use super::KeyError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Hosts whose breaker or in-flight state we remember at once.
pub(crate) const MAX_TRACKED_HOSTS: usize = 10_000;

/// How many hosts one eviction pass forgets when the map is full: an eighth of it, so that the
/// O(n) scan is paid once per many new hosts rather than on every admission.
const EVICT_BATCH: usize = MAX_TRACKED_HOSTS / 8;

#[derive(Debug)]
struct HostState {
    in_flight: usize,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    /// A probe is running while the breaker is half-open; others still fail fast.
    probing: bool,
    /// When a fetch from this host was last admitted: eviction forgets the oldest first.
    last_admitted: Instant,
}

impl HostState {
    fn new(now: Instant) -> Self {
        HostState {
            in_flight: 0,
            consecutive_failures: 0,
            open_until: None,
            probing: false,
            last_admitted: now,
        }
    }

    /// Whether forgetting this host loses nothing that still protects us: no fetch is in
    /// flight, and its breaker is closed or its open period is over (a forgotten host starts
    /// again closed, which is what a half-open breaker would try next anyway).
    fn is_evictable(&self, now: Instant) -> bool {
        self.in_flight == 0 && !self.probing && self.open_until.is_none_or(|until| until <= now)
    }
}

pub(crate) struct Bulkhead {
    global: Arc<Semaphore>,
    per_host: usize,
    failures: u32,
    open_for: Duration,
    hosts: Mutex<HashMap<String, HostState>>,
}

/// One fetch's claim on its host's state, from admission until it ends, however it ends.
/// Dropping it gives the per-host slot back and, when it is the half-open probe, releases the
/// probe: a probe abandoned without an outcome (the request was cancelled because the sender
/// went away, or a drain aborted it) must not leave the breaker refusing that host forever.
struct HostSlot<'a> {
    bulkhead: &'a Bulkhead,
    host: String,
    probe: bool,
}

impl Drop for HostSlot<'_> {
    fn drop(&mut self) {
        let mut hosts = self.bulkhead.lock();
        if let Some(state) = hosts.get_mut(&self.host) {
            state.in_flight = state.in_flight.saturating_sub(1);
            if self.probe {
                state.probing = false;
            }
        }
    }
}

/// Held for the duration of one fetch; releases both caps when dropped. Its outcome goes to
/// [`Permit::record`].
pub(crate) struct Permit<'a> {
    slot: HostSlot<'a>,
    _global: OwnedSemaphorePermit,
}

impl Permit<'_> {
    /// Records the finished fetch's outcome for the host's breaker, then releases the caps.
    /// Only transient failures (the remote is down or slow) count; a 404 or a bad document is
    /// an answer.
    pub(crate) fn record(self, result: &Result<impl Sized, KeyError>) {
        if matches!(result, Err(e) if e.is_shed()) {
            return;
        }
        let bulkhead = self.slot.bulkhead;
        let host = self.slot.host.as_str();
        let mut hosts = bulkhead.lock();
        let Some(state) = hosts.get_mut(host) else {
            return;
        };
        let failed = matches!(result, Err(e) if e.is_transient());
        if failed {
            state.consecutive_failures = state.consecutive_failures.saturating_add(1);
            if state.consecutive_failures >= bulkhead.failures {
                if state.open_until.is_none() {
                    tracing::warn!(%host, failures = state.consecutive_failures, "key server circuit opened");
                }
                state.open_until = Some(Instant::now() + bulkhead.open_for);
            }
        } else {
            if state.open_until.is_some() {
                tracing::info!(%host, "key server circuit closed");
            }
            state.consecutive_failures = 0;
            state.open_until = None;
        }
        // The slot's drop (after this guard is released) ends the probe, if this was it.
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
        let overloaded = || KeyError::Overloaded {
            key_id: key_id.to_string(),
            host: host.to_string(),
        };
        let probe = {
            let mut hosts = self.lock();
            let now = Instant::now();
            if !hosts.contains_key(host) && hosts.len() >= MAX_TRACKED_HOSTS {
                evict_oldest(&mut hosts, now);
                if hosts.len() >= MAX_TRACKED_HOSTS {
                    // Every tracked host is busy or inside its open period: shed rather than grow.
                    return Err(overloaded());
                }
            }
            let state = hosts
                .entry(host.to_string())
                .or_insert_with(|| HostState::new(now));
            let mut probe = false;
            if let Some(until) = state.open_until {
                if now < until || state.probing {
                    return Err(KeyError::CircuitOpen {
                        key_id: key_id.to_string(),
                        host: host.to_string(),
                    });
                }
                probe = true;
            }
            if state.in_flight >= self.per_host {
                return Err(overloaded());
            }
            state.probing |= probe;
            state.in_flight += 1;
            state.last_admitted = now;
            probe
        };
        // Constructed before the await so that a cancelled wait (the fetch timed out) still
        // gives the per-host slot (and the probe) back.
        let slot = HostSlot {
            bulkhead: self,
            host: host.to_string(),
            probe,
        };
        // The semaphore is never closed; treat it as overload if it ever is.
        let global = self
            .global
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| overloaded())?;
        Ok(Permit {
            slot,
            _global: global,
        })
    }
}

/// Forgets up to [`EVICT_BATCH`] evictable hosts, those admitted longest ago first.
fn evict_oldest(hosts: &mut HashMap<String, HostState>, now: Instant) {
    let mut candidates: Vec<(Instant, String)> = hosts
        .iter()
        .filter(|(_, s)| s.is_evictable(now))
        .map(|(h, s)| (s.last_admitted, h.clone()))
        .collect();
    if candidates.len() > EVICT_BATCH {
        candidates.select_nth_unstable_by_key(EVICT_BATCH, |(at, _)| *at);
        candidates.truncate(EVICT_BATCH);
    }
    for (_, host) in candidates {
        hosts.remove(&host);
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

    /// `times` fetches from `host` that time out, one after another.
    async fn fail_times(b: &Bulkhead, host: &str, times: u32) {
        for _ in 0..times {
            b.admit("k", host).await.unwrap().record(&timeout_err());
        }
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
        fail_times(&b, "slow.example", 3).await;
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
        probe.record(&Ok::<(), KeyError>(()));
        assert!(b.admit("k", "slow.example").await.is_ok());
    }

    #[tokio::test]
    async fn answers_do_not_open_the_breaker() {
        let b = Bulkhead::new(10, 4, 2, Duration::from_secs(30));
        for _ in 0..5 {
            let p = b.admit("k", "gone.example").await.unwrap();
            p.record(&Err::<(), _>(KeyError::Gone {
                key_id: "k".into(),
                url: "u".into(),
            }));
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

    #[tokio::test]
    async fn an_abandoned_probe_lets_the_next_fetch_probe() {
        let b = Bulkhead::new(10, 4, 1, Duration::from_millis(30));
        fail_times(&b, "slow.example", 1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let probe = b.admit("k", "slow.example").await.unwrap();
        assert!(matches!(
            b.admit("k2", "slow.example").await,
            Err(KeyError::CircuitOpen { .. })
        ));
        // The request doing the probe is cancelled: no outcome is recorded.
        drop(probe);
        let next = b.admit("k", "slow.example").await;
        assert!(
            next.is_ok(),
            "the breaker stayed open after the probe was dropped"
        );
        // That one is the new probe, and its success closes the breaker.
        next.unwrap().record(&Ok::<(), KeyError>(()));
        let _a = b.admit("k", "slow.example").await.unwrap();
        let _b = b.admit("k2", "slow.example").await.unwrap();
    }

    #[tokio::test]
    async fn failing_hosts_are_forgotten_once_their_open_period_is_over() {
        let open_for = Duration::from_millis(200);
        let b = Bulkhead::new(10, 4, 1, open_for);
        for i in 0..MAX_TRACKED_HOSTS {
            fail_times(&b, &format!("h{i}.bad.example"), 1).await;
        }
        // Every tracked host is inside its open period: they are still worth remembering.
        assert!(matches!(
            b.admit("k", "new.example").await,
            Err(KeyError::Overloaded { .. })
        ));
        tokio::time::sleep(open_for + Duration::from_millis(50)).await;
        // A failing host whose fetch is in flight is not forgotten.
        let busy = b.admit("k", "h0.bad.example").await.unwrap();
        assert!(b.admit("k", "new.example").await.is_ok());
        let hosts = b.lock();
        assert!(
            hosts.len() <= MAX_TRACKED_HOSTS - EVICT_BATCH + 1,
            "{}",
            hosts.len()
        );
        assert!(hosts.contains_key("h0.bad.example"));
        drop(hosts);
        drop(busy);
    }

    #[tokio::test]
    async fn eviction_forgets_the_longest_unused_hosts_first() {
        let b = Bulkhead::new(10, 4, 5, Duration::from_secs(30));
        for i in 0..MAX_TRACKED_HOSTS {
            b.admit("k", &format!("h{i}.example")).await.unwrap();
        }
        // h0 is used again, so it is now the most recent.
        b.admit("k", "h0.example").await.unwrap();
        assert!(b.admit("k", "new.example").await.is_ok());
        let hosts = b.lock();
        assert!(hosts.contains_key("h0.example"));
        assert!(!hosts.contains_key("h1.example"));
        assert!(hosts.contains_key(&format!("h{}.example", MAX_TRACKED_HOSTS - 1)));
    }
}

//! The fetch loop: one task per remote source, refreshing on its interval with jitter and
//! backing off after failures, and the first-round latch readiness waits for.

use super::Getter;
use super::{MastodonPull, Shared, Subscription};
use crate::clock::unix_now;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::rules::Rules;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// First retry delay after a failed fetch; doubles per consecutive failure up to the source's
/// refresh interval.
pub const RETRY_MIN: Duration = Duration::from_secs(30);

/// Every remote source of one config, built by `run` and driven by [`Remotes::start`].
pub struct Remotes {
    subscriptions: Vec<Arc<Subscription>>,
    mastodon: Option<Arc<MastodonPull>>,
}

impl Remotes {
    /// Builds the sources; nothing is read or fetched yet. Errors name the setting.
    pub fn new(
        config: &Config,
        rules: &Arc<Rules>,
        metrics: &Arc<Metrics>,
    ) -> Result<Remotes, String> {
        if config.subscriptions.is_empty() && config.mastodon.is_none() {
            return Ok(Remotes {
                subscriptions: Vec::new(),
                mastodon: None,
            });
        }
        let shared = Shared {
            state_dir: config.state.dir.clone(),
            getter: Arc::new(Getter::new(&config.key_fetch.user_agent)?),
            rules: rules.clone(),
            metrics: metrics.clone(),
        };
        let subscriptions = config
            .subscriptions
            .iter()
            .map(|s| Subscription::new(s.clone(), &shared).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let mastodon = match &config.mastodon {
            Some(m) => Some(Arc::new(MastodonPull::new(m.clone(), &shared)?)),
            None => None,
        };
        Ok(Remotes {
            subscriptions,
            mastodon,
        })
    }

    pub fn subscriptions(&self) -> &[Arc<Subscription>] {
        &self.subscriptions
    }

    pub fn mastodon(&self) -> Option<&Arc<MastodonPull>> {
        self.mastodon.as_ref()
    }

    /// Puts every usable disk-cached copy in force (startup, before the proxy serves).
    pub async fn load_caches(&self) {
        for s in &self.subscriptions {
            s.load_cache().await;
        }
        if let Some(m) = &self.mastodon {
            m.load_cache().await;
        }
    }

    /// Spawns one refresh task per source, each stopping when `shutdown` turns true. The
    /// returned future resolves once every source has a copy in force or has been tried once
    /// (readiness waits for it, so a fresh install does not serve without its lists when they
    /// are reachable).
    pub fn start(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> (Vec<JoinHandle<()>>, impl Future<Output = ()> + Send) {
        let count = self.subscriptions.len() + usize::from(self.mastodon.is_some());
        let (tx, mut rx) = mpsc::channel::<()>(count.max(1));
        let mut tasks = Vec::with_capacity(count);
        for s in &self.subscriptions {
            let s = s.clone();
            let interval = Duration::from_secs(s.config.refresh_secs);
            let ready = ready_sender(s.has_copy(), &tx);
            let refresh = move || {
                let s = s.clone();
                async move { s.refresh().await.is_ok() }
            };
            tasks.push(tokio::spawn(drive(
                interval,
                refresh,
                ready,
                shutdown.clone(),
            )));
        }
        if let Some(m) = &self.mastodon {
            let m = m.clone();
            let interval = Duration::from_secs(m.refresh_secs());
            let ready = ready_sender(m.has_copy(), &tx);
            let refresh = move || {
                let m = m.clone();
                async move { m.refresh().await }
            };
            tasks.push(tokio::spawn(drive(interval, refresh, ready, shutdown)));
        }
        drop(tx);
        let first_round = async move {
            for _ in 0..count {
                // `None`: every task ended (shutdown) before reporting.
                if rx.recv().await.is_none() {
                    break;
                }
            }
        };
        (tasks, first_round)
    }
}

/// Where a source reports the end of its first attempt. A source with a copy in force is
/// ready now: it reports at once, and its first fetch must not count twice.
fn ready_sender(has_copy: bool, tx: &mpsc::Sender<()>) -> Option<mpsc::Sender<()>> {
    if has_copy {
        let _ = tx.try_send(());
        None
    } else {
        Some(tx.clone())
    }
}

/// Drives one source: refresh at once, then every `interval` (jittered), sooner after
/// failures; reports the end of its first attempt on `ready`, if given (once, whatever the
/// result).
async fn drive<F, Fut>(
    interval: Duration,
    mut refresh: F,
    mut ready: Option<mpsc::Sender<()>>,
    mut shutdown: watch::Receiver<bool>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let mut failures = 0u32;
    loop {
        let ok = tokio::select! {
            ok = refresh() => ok,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        if let Some(tx) = ready.take() {
            let _ = tx.try_send(());
        }
        failures = if ok { 0 } else { failures.saturating_add(1) };
        let delay = jitter(next_delay(interval, failures));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// `interval` after a success; after `failures` consecutive failures, [`RETRY_MIN`] doubled
/// per further failure, never more than `interval`. The Mastodon push backs off the same way.
pub(crate) fn next_delay(interval: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    let backoff = RETRY_MIN.saturating_mul(1u32 << (failures - 1).min(16));
    backoff.min(interval)
}

/// `delay` scaled by a random factor in [0.9, 1.1).
fn jitter(delay: Duration) -> Duration {
    // A randomly seeded hasher is random enough to spread fetches; no RNG crate needed.
    let r = std::collections::hash_map::RandomState::new().hash_one(unix_now());
    let factor = 0.9 + (r % 1000) as f64 / 5000.0;
    delay.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_back_off_up_to_the_interval() {
        let hour = Duration::from_secs(3600);
        assert_eq!(next_delay(hour, 0), hour);
        assert_eq!(next_delay(hour, 1), Duration::from_secs(30));
        assert_eq!(next_delay(hour, 2), Duration::from_secs(60));
        assert_eq!(next_delay(hour, 7), Duration::from_secs(1920));
        assert_eq!(next_delay(hour, 8), hour);
        assert_eq!(next_delay(hour, u32::MAX), hour);
        let short = Duration::from_secs(10);
        assert_eq!(next_delay(short, 1), short);
        for _ in 0..100 {
            let j = jitter(hour);
            assert!(j >= hour.mul_f64(0.9) && j < hour.mul_f64(1.1), "{j:?}");
        }
    }
}

//! Shared state: everything a request needs, built once by `run` and shared by `Arc`.
//! Each request takes one policy snapshot at its start and keeps it to the end, so a reload
//! never changes the rules under a request.

use crate::config::Config;
use crate::federators::Federators;
use crate::forward::Upstream;
use crate::gate::Gate;
use crate::journal::{ChangeLog, Journal};
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::shedding::Shedding;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct App {
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub rules: Arc<Rules>,
    pub keys: KeyStore,
    pub upstream: Upstream,
    /// `https` when this listener terminates TLS itself, else `http`; becomes
    /// `X-Forwarded-Proto` unless a trusted edge already set one.
    pub listener_scheme: &'static str,
    /// Friendly-federator checks and evidence (loaded from its file here, at boot).
    pub federators: Arc<Federators>,
    /// Per-sender fair share and Sidekiq backpressure.
    pub shedding: Arc<Shedding>,
    /// Replicas' shared state (`[cluster]`), when configured.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The vocabulary gate and duplicate suppression.
    pub gate: Gate,
    /// The decision ring and per-domain ledger, fed by the pipeline's finish phase.
    pub journal: Journal,
    /// The rule-change log in `[state] dir`, written by every reload from now on.
    pub rule_changes: Arc<ChangeLog>,
    ready: AtomicBool,
}

/// What sheds deliveries no rule names, built before the app: fair share and backpressure,
/// the gate, and the state replicas share.
pub struct Defences {
    pub shedding: Arc<Shedding>,
    pub gate: Gate,
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl App {
    pub fn new(
        config: Config,
        metrics: Arc<Metrics>,
        rules: Arc<Rules>,
        keys: KeyStore,
        upstream: Upstream,
        defences: Defences,
    ) -> App {
        let Defences {
            shedding,
            gate,
            cluster,
        } = defences;
        let listener_scheme = if config.server.tls_cert_file.is_some() {
            "https"
        } else {
            "http"
        };
        let mut federators = Federators::new(&config.friendly_federators, metrics.clone());
        if let Some(c) = cluster.as_ref().filter(|c| c.config.share_evidence) {
            federators.share(c.clone());
        }
        let federators = Arc::new(federators);
        let rule_changes = Arc::new(ChangeLog::new(&config.state));
        rules.observe(rule_changes.clone());
        App {
            journal: Journal::new(&config.admin),
            rule_changes,
            federators,
            shedding,
            cluster,
            gate,
            config,
            metrics,
            rules,
            keys,
            upstream,
            listener_scheme,
            ready: AtomicBool::new(false),
        }
    }

    /// Ready = rules loaded and listeners serving, and not draining.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}

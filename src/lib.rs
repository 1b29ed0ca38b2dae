//! inboxguard: a verifying, filtering reverse proxy for Mastodon's ActivityPub inboxes.
//!
//! Module map, in the order a request meets them:
//!
//! | module      | owns |
//! |-------------|------|
//! | `server`    | accept loop, connection limit, TLS, routing (inbox POST vs pass-through), drain |
//! | `pipeline`  | THE inbox request flow, phase by phase, and its single finish (metrics + log) |
//! | `signature` | draft-cavage `Signature` and RFC 9421 `Signature-Input` parsing, window, digests, signing string / signature base, verification |
//! | `keys`      | public key cache (coalesced, negative-cached) and the hardened key fetcher |
//! | `net`       | the one outbound HTTP client (key fetches, remote rule sources): URL and address checks, TLS, body cap |
//! | `activity`  | the few activity JSON fields policy needs, read in one pass |
//! | `policy`    | immutable rule snapshot, host normalisation, suffix matching, pure decisions |
//! | `forward`   | upstream client: hop-by-hop stripping, X-Forwarded-*, timeouts |
//! | `shedding`  | per-sender fair share (429) and backpressure from Mastodon's Sidekiq queue (503) |
//! | `gate`      | the vocabulary gate and duplicate suppression for verified activities (202, dropped) |
//! | `cluster`   | state replicas share through Redis: fair share, duplicate suppression, key cache; local fallback |
//! | `reject`    | every proxy-made answer: status, JSON body, metric label |
//! | `rules`     | the rule merge (one code path), the live rules and their reload, file watch, SIGHUP |
//! | `rule_files`| reading a local rule file from disk, bounded |
//! | `metrics`   | the Prometheus registry and every metric |
//! | `journal`   | the decision ring and the per-domain ledger moderators read, fed by the finish phase |
//! | `admin`     | `/metrics /healthz /readyz /admin/reload` on a separate listener |
//! | `console`   | the journal's admin endpoints for moderators |
//! | `config`    | the TOML file, validated |
//! | `app`       | the shared state those modules hang off |
//! | `demo`      | `inboxguard demo`: the whole system in one process |
//! | `explain`   | `inboxguard explain`: the decision and every matching rule for a domain, actor or activity |
//! | `federators`| friendly federators: laundering checks, evidence store and file (content-rule evidence too), escalation into a generated source |
//! | `subscriptions` | remote rule sources (`[[subscriptions]]`, Mastodon's admin API): fetch, disk cache, refresh tasks |
//! | `push`      | `[mastodon] push`: Mastodon's domain blocks kept in step with escalations and pushed subscriptions |
//! | `state_dirs`| the directories saves go to, checked by `check` and at startup |
//! | `clock`     | `unix_now`: wall-clock seconds, as state files and timestamp gauges hold them |
//! | `memory`    | freed pages handed back to the kernel after a reload, and the replaced snapshot dropped off the request path |
//!
//! Lower modules never import higher ones: `signature`, `policy`, `activity` and `config`
//! know nothing of HTTP servers, and `policy` does no I/O.
#![forbid(unsafe_code)]

pub mod activity;
pub mod admin;
pub mod app;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod console;
pub mod demo;
pub mod explain;
pub mod federators;
pub mod forward;
pub mod gate;
pub mod journal;
// The fuzz targets' shared bodies (fuzz/ and tests/fuzz_seeds.rs), never in a release build.
#[cfg(feature = "test-util")]
#[doc(hidden)]
pub mod fuzz;
pub mod keys;
pub mod memory;
pub mod metrics;
mod net;
pub mod pipeline;
pub mod policy;
pub mod push;
pub mod reject;
pub mod rule_files;
pub mod rules;
pub mod server;
pub mod shedding;
pub mod signature;
pub mod state_dirs;
pub mod subscriptions;

use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Already-bound sockets, so tests can bind `127.0.0.1:0` and `main` can report bind errors
/// before anything else starts.
pub struct Listeners {
    pub proxy: TcpListener,
    pub admin: TcpListener,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("rules: {0}")]
    Rules(#[from] rules::LoadError),
    #[error("key fetcher: {0}")]
    Keys(String),
    #[error("upstream: {0}")]
    Upstream(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("admin token: {0}")]
    AdminToken(String),
    #[error("remote rule sources: {0}")]
    Remotes(String),
    #[error("load shedding: {0}")]
    Shedding(String),
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("mastodon push: {0}")]
    Push(String),
    /// A directory saves go to is missing or not writable (see `state_dirs`).
    #[error("{0}")]
    State(String),
}

/// What `check` and startup verify before anything serves: the directories inboxguard writes
/// to (see `state_dirs::check`; `create` as there), and the Mastodon push's state file.
/// Returns notes for the operator; `Err` says what is wrong.
pub fn check_state(config: &config::Config, create: bool) -> Result<Vec<String>, String> {
    let mut notes = state_dirs::check(config, create)?;
    if let Some(note) = push::note(config) {
        // `check` refuses a push state file the push would refuse; `serve` still starts (the
        // inboxes need it) and the push logs the problem at each cycle.
        match note {
            Err(e) if !create => return Err(e),
            Ok(note) | Err(note) => notes.push(note),
        }
    }
    Ok(notes)
}

/// Runs the proxy on the given listeners until `shutdown` resolves, then stops accepting,
/// reports not-ready, drains in-flight requests (bounded by `server.shutdown_grace_secs`)
/// and returns.
pub async fn run(
    config: config::Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    for note in check_state(&config, true).map_err(RunError::State)? {
        tracing::info!("{note}");
    }
    let metrics = Arc::new(metrics::Metrics::new()?);
    let rules = rules::Rules::new(
        config.blocklists.clone(),
        config.policy.clone(),
        metrics.clone(),
    )?;
    let remotes =
        subscriptions::Remotes::new(&config, &rules, &metrics).map_err(RunError::Remotes)?;
    // Before anything serves: a restart while a list host is down keeps its last good copy.
    remotes.load_caches().await;
    let cluster =
        cluster::Cluster::new(config.cluster.as_ref(), &metrics).map_err(RunError::Cluster)?;
    let mut keys =
        keys::KeyStore::new(&config.key_fetch, metrics.clone()).map_err(RunError::Keys)?;
    if let Some(c) = &cluster {
        keys.share(c.clone());
    }
    let base = config.upstream_uri().map_err(RunError::Upstream)?;
    let upstream = forward::Upstream::new(&config.upstream, base).map_err(RunError::Upstream)?;
    let tls = match (&config.server.tls_cert_file, &config.server.tls_key_file) {
        (Some(cert), Some(key)) => Some(server::tls_acceptor(cert, key).map_err(RunError::Tls)?),
        _ => None,
    };
    let token = match &config.admin.token_file {
        Some(path) => Some(admin::Token::from_file(path).map_err(RunError::AdminToken)?),
        None => None,
    };
    let shedding = Arc::new(
        shedding::Shedding::new(&config, &metrics, cluster.clone()).map_err(RunError::Shedding)?,
    );
    let gate = gate::Gate::new(&config.activities, &metrics)?;
    let app = Arc::new(app::App::new(
        config,
        metrics,
        rules,
        keys,
        upstream,
        app::Defences {
            shedding,
            gate,
            cluster: cluster.clone(),
        },
    ));
    // Before serving: a restart must not let an escalated friendly federator through.
    federators::apply_at_startup(&app.federators, &app.rules);
    let pusher = push::Pusher::new(&app.config, app.rule_changes.clone(), &app.metrics)
        .map_err(RunError::Push)?;

    // Two stop signals: the proxy drains first while the admin port keeps answering (readyz
    // says 503, metrics stay scrapeable), then the admin port and the watcher stop.
    let (stop_proxy, proxy_rx) = watch::channel(false);
    let (stop_rest, rest_rx) = watch::channel(false);
    let watcher = tokio::spawn(app.rules.clone().watch(changed(rest_rx.clone())));
    let federators_task = tokio::spawn(federators::maintain(
        app.federators.clone(),
        app.rules.clone(),
        changed(rest_rx.clone()),
    ));
    let admin_task = tokio::spawn(admin::serve(app.clone(), listeners.admin, token, rest_rx));
    if let Ok(addr) = listeners.proxy.local_addr() {
        tracing::info!(%addr, tls = tls.is_some(), "proxy listening");
    }
    let proxy_task = tokio::spawn(server::serve(app.clone(), listeners.proxy, tls, proxy_rx));
    let (remote_tasks, first_round) = remotes.start(stop_rest.subscribe());
    let sidekiq_task = app.shedding.poller(&app.config, stop_rest.subscribe());
    let cluster_task = cluster.map(|c| tokio::spawn(c.maintain(stop_rest.subscribe())));

    // Ready once every remote source has a copy in force or has been tried once.
    let mut shutdown = std::pin::pin!(shutdown);
    let stopped_early = tokio::select! {
        () = first_round => false,
        () = &mut shutdown => true,
    };
    let mut push_task = None;
    if !stopped_early {
        app.set_ready(true);
        // Only now: before every remote source has its copy in force, a pushed list would
        // look empty.
        push_task =
            pusher.map(|p| tokio::spawn(p.maintain(app.rules.clone(), stop_rest.subscribe())));
        shutdown.await;
    }
    tracing::info!("shutting down");
    app.set_ready(false);
    let _ = stop_proxy.send(true);
    let _ = proxy_task.await;
    let _ = stop_rest.send(true);
    let _ = admin_task.await;
    let _ = watcher.await;
    // After the drain, so the final save holds every request's evidence.
    let _ = federators_task.await;
    for task in remote_tasks {
        let _ = task.await;
    }
    for task in sidekiq_task
        .into_iter()
        .chain(cluster_task)
        .chain(push_task)
    {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn changed(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

//! Pushing rules into Mastodon (`[mastodon] push`): keeps Mastodon's own domain blocks in step
//! with the rules inboxguard generated or imported — the escalated friendly federators and
//! the subscriptions marked `push = true` — so what the proxy refuses, Mastodon also knows.
//!
//! Each cycle (every `push_interval`, and `inboxguard push`):
//! 1. take the state file's lock and read the ids of the blocks inboxguard created (`state`);
//! 2. read the token from `token_file` and list Mastodon's blocks, every page (`api`);
//! 3. diff the pushed rules in force against them (`plan`): create, update, lift, or leave a
//!    block someone else made alone (logged once per domain, counted);
//! 4. write (lifts, updates, creates), recording each new id in the state file at once and
//!    each write in the rule-change log (trigger `push`). With `push = "dry-run"` the diff is
//!    logged and nothing is written.
//!
//! A refused token (401/403), a network error or a Mastodon error stops the cycle: what was
//! written is recorded, the rest waits for the retry, which backs off from 30 s (or the
//! interval, if shorter) doubling up to `push_interval`.
//!
//! | file      | owns |
//! |-----------|------|
//! | `plan`    | the pushed rules wanted, and the pure diff against Mastodon's blocks |
//! | `api`     | Mastodon's admin API for domain blocks over `crate::net` |
//! | `state`   | the state file of created ids and the cycle lock |
//! | `command` | `inboxguard push [--dry-run]` |

mod api;
mod command;
mod plan;
mod state;
#[cfg(test)]
mod tests;

pub(crate) use api::ApiError;
pub use command::command;
pub(crate) use plan::{Change, Plan, SkipReason, Wanted};
pub(crate) use state::{Managed, State, StateError, StateFile};

use crate::config::{Config, MastodonApiConfig, PushMode};
use crate::federators::SOURCE_LABEL;
use crate::journal::{ChangeLog, NamedChange, RuleChange, SourceChanges};
use crate::metrics::Metrics;
use crate::rules::Rules;
use http::HeaderValue;
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// The push's metrics. Labels are fixed words: `op` (list | create | update | delete),
/// `result` (ok or an error's reason), `reason` (manual | covered).
pub(crate) struct PushMetrics {
    requests_total: IntCounterVec,
    cycles_total: IntCounterVec,
    managed_blocks: IntGauge,
    skipped_blocks: IntGaugeVec,
    diff: IntGaugeVec,
    last_success: IntGauge,
}

impl PushMetrics {
    fn new(metrics: &Metrics) -> Result<PushMetrics, prometheus::Error> {
        let r = metrics.registrar();
        let m = PushMetrics {
            requests_total: r.counter_vec(
                "inboxguard_push_requests_total",
                "Requests to Mastodon's domain-blocks admin API by the push, by op (list, create, update, delete) and result",
                &["op", "result"],
            )?,
            cycles_total: r.counter_vec(
                "inboxguard_push_cycles_total",
                "Push cycles by result (ok, dry_run, or why the cycle stopped)",
                &["result"],
            )?,
            managed_blocks: r.gauge(
                "inboxguard_push_managed_blocks",
                "Mastodon domain blocks inboxguard created and keeps in step (its state file's ids)",
            )?,
            skipped_blocks: r.gauge_vec(
                "inboxguard_push_skipped_blocks",
                "Pushed rules not written at the last cycle, by reason (manual: Mastodon has a block inboxguard did not create; covered: a block on a parent domain)",
                &["reason"],
            )?,
            diff: r.gauge_vec(
                "inboxguard_push_diff",
                "Writes the last cycle's diff held, by op (create, update, delete); in dry-run mode, what it would write",
                &["op"],
            )?,
            last_success: r.gauge(
                "inboxguard_push_last_success_timestamp_seconds",
                "Unix time of the last push cycle that completed",
            )?,
        };
        for r in ["manual", "covered"] {
            m.skipped_blocks.with_label_values(&[r]);
        }
        for r in ["ok", "unauthorized"] {
            m.cycles_total.with_label_values(&[r]);
        }
        Ok(m)
    }
}

/// The sources whose rules are pushed: the escalated friendly federators, and each
/// subscription marked `push = true` (by its URL, its label).
pub(crate) fn pushed_sources(config: &Config) -> HashSet<String> {
    let subscriptions = config.subscriptions.iter().filter(|s| s.push);
    std::iter::once(SOURCE_LABEL.to_string())
        .chain(subscriptions.map(|s| s.url.clone()))
        .collect()
}

/// What a cycle pushes: the wanted blocks, and which pushed sources have a copy in force (a
/// block whose source has none is neither updated nor lifted).
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    pub wanted: BTreeMap<String, Wanted>,
    pub in_force: HashSet<String>,
}

impl View {
    /// From the running proxy's rules: the merge of each source's copy in force (blocking:
    /// it parses the local files' last good copies again, about 0.1 s for 100,000 local rules
    /// beside 10,000 pushed ones in a release build, once per cycle). Escalations count as in
    /// force always: they are put in force before the proxy serves, and none means none
    /// escalated.
    pub(crate) fn live(rules: &Rules, sources: &HashSet<String>) -> Result<View, String> {
        let (snapshot, _, listed) = rules
            .listing(&|r| sources.contains(&*r.source))
            .map_err(|e| e.to_string())?;
        let mut in_force: HashSet<String> = rules
            .memory_sources()
            .into_iter()
            .map(|m| m.label)
            .filter(|l| sources.contains(l))
            .collect();
        in_force.insert(SOURCE_LABEL.to_string());
        Ok(View {
            wanted: plan::wanted(&listed, &snapshot),
            in_force,
        })
    }
}

/// Why a cycle stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CycleError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl CycleError {
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            CycleError::Api(e) => e.reason(),
            CycleError::State(e) => e.reason(),
        }
    }

    fn stops_cycle(&self) -> bool {
        match self {
            CycleError::Api(e) => e.stops_cycle(),
            CycleError::State(_) => true,
        }
    }
}

/// What one cycle did.
#[derive(Debug)]
pub(crate) struct Report {
    pub plan: Plan,
    /// Each write tried, in order, and its error.
    pub done: Vec<(Change, Option<String>)>,
    /// False in dry-run mode.
    pub written: bool,
    /// The error that stopped the writes early.
    pub stopped: Option<CycleError>,
}

/// Keeps Mastodon's domain blocks in step with the pushed rules.
pub(crate) struct Pusher {
    mode: PushMode,
    interval: Duration,
    api: api::Api,
    label: String,
    state: StateFile,
    sources: HashSet<String>,
    changes: Arc<ChangeLog>,
    metrics: PushMetrics,
    /// Domains with a manual block already logged, so each is said once while it lasts.
    warned: Mutex<HashSet<String>>,
}

impl Pusher {
    /// The push the config asks for; `None` when `[mastodon] push` is off.
    pub(crate) fn new(
        config: &Config,
        changes: Arc<ChangeLog>,
        metrics: &Metrics,
    ) -> Result<Option<Arc<Pusher>>, String> {
        match &config.mastodon {
            Some(m) if m.push != PushMode::Off => {
                Pusher::build(config, m, m.push, changes, metrics).map(|p| Some(Arc::new(p)))
            }
            _ => Ok(None),
        }
    }

    fn build(
        config: &Config,
        mastodon: &MastodonApiConfig,
        mode: PushMode,
        changes: Arc<ChangeLog>,
        metrics: &Metrics,
    ) -> Result<Pusher, String> {
        let api = api::Api::new(mastodon, &config.key_fetch.user_agent)?;
        Ok(Pusher {
            mode,
            interval: mastodon.push_interval(),
            label: api.label(),
            api,
            state: StateFile::new(&config.state.dir, &mastodon.url),
            sources: pushed_sources(config),
            changes,
            metrics: PushMetrics::new(metrics).map_err(|e| e.to_string())?,
            warned: Mutex::new(HashSet::new()),
        })
    }

    /// Runs a cycle at once, then every `push_interval`; after a failure sooner, backing off
    /// up to the interval. Returns when `stop` turns true (a cycle under way finishes first:
    /// a write cut off mid-way could leave a block whose id is not recorded).
    pub(crate) async fn maintain(
        self: Arc<Self>,
        rules: Arc<Rules>,
        mut stop: watch::Receiver<bool>,
    ) {
        tracing::info!(mastodon = %self.label, mode = self.mode.as_str(), interval_secs = self.interval.as_secs(), "Mastodon push started");
        let mut failures = 0u32;
        loop {
            let ok = self.cycle_live(&rules).await;
            failures = if ok { 0 } else { failures.saturating_add(1) };
            let delay = crate::subscriptions::next_delay(self.interval, failures);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }

    async fn cycle_live(&self, rules: &Arc<Rules>) -> bool {
        let (r, sources) = (rules.clone(), self.sources.clone());
        let view = match tokio::task::spawn_blocking(move || View::live(&r, &sources)).await {
            Ok(Ok(view)) => view,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Mastodon push: cannot read the rules in force");
                self.metrics
                    .cycles_total
                    .with_label_values(&["rules"])
                    .inc();
                return false;
            }
            Err(e) => {
                tracing::error!(error = %e, "Mastodon push: rules task failed");
                return false;
            }
        };
        let write = self.mode == PushMode::On;
        let failed = match self.cycle(&view, write, rules.generation()).await {
            Ok(Report { stopped: None, .. }) => return true,
            Ok(Report {
                stopped: Some(e), ..
            }) => e,
            Err(e) => e,
        };
        tracing::warn!(
            mastodon = %self.label,
            result = failed.reason(),
            error = %failed,
            "Mastodon push stopped; what was written is recorded, the rest is tried again with backoff"
        );
        false
    }

    /// One cycle against `view`; writes only when `write`. `Err` when nothing could be
    /// planned (state file, token, listing); a write that stops the cycle is
    /// `Report::stopped`. `generation`: the rules' generation, for the rule-change log.
    pub(crate) async fn cycle(
        &self,
        view: &View,
        write: bool,
        generation: u64,
    ) -> Result<Report, CycleError> {
        let result = self.cycle_uncounted(view, write, generation).await;
        let word = match &result {
            Ok(Report {
                stopped: Some(e), ..
            })
            | Err(e) => e.reason(),
            Ok(Report { written: false, .. }) => "dry_run",
            Ok(_) => "ok",
        };
        self.metrics.cycles_total.with_label_values(&[word]).inc();
        if matches!(result, Ok(Report { stopped: None, .. })) {
            let now = i64::try_from(crate::clock::unix_now()).unwrap_or(i64::MAX);
            self.metrics.last_success.set(now);
        }
        result
    }

    async fn cycle_uncounted(
        &self,
        view: &View,
        write: bool,
        generation: u64,
    ) -> Result<Report, CycleError> {
        // Only a cycle that writes needs the lock: a dry run reads a file that is only ever
        // replaced whole.
        let _lock = if write {
            Some(self.state.lock()?)
        } else {
            None
        };
        let mut state = self.state.read()?;
        let token = self.api.token().await?;
        let listed = self.api.list(&token).await;
        self.count("list", listed.as_ref().err());
        let existing = listed?;
        let plan = plan::plan(&view.wanted, &existing, &state.blocks, &|s| {
            view.in_force.contains(s)
        });
        self.observe(&plan);
        for (domain, id) in &plan.vanished {
            tracing::warn!(domain, id, "Mastodon push: a block inboxguard created is no longer in Mastodon (deleted there by hand?); forgotten, and created again while its rule is in force");
            state.blocks.remove(domain);
        }
        let mut report = Report {
            plan,
            done: Vec::new(),
            written: write,
            stopped: None,
        };
        if !write {
            for change in report.plan.changes.iter().filter(|c| c.op().is_some()) {
                tracing::info!(mastodon = %self.label, "push dry run: would {change}");
            }
            tracing::info!(mastodon = %self.label, "push dry run: {}", report.plan.summary());
            self.metrics.managed_blocks.set(gauge(state.blocks.len()));
            return Ok(report);
        }
        if !report.plan.vanished.is_empty() {
            self.state.write(&state)?;
        }
        let writes: Vec<Change> = report
            .plan
            .changes
            .iter()
            .filter(|c| c.op().is_some())
            .cloned()
            .collect();
        for change in writes {
            let result = self.apply(&token, &change, &mut state, generation).await;
            self.metrics.managed_blocks.set(gauge(state.blocks.len()));
            match result {
                Ok(()) => report.done.push((change, None)),
                Err(e) => {
                    report.done.push((change, Some(e.to_string())));
                    if e.stops_cycle() {
                        report.stopped = Some(e);
                        return Ok(report);
                    }
                }
            }
        }
        self.metrics.managed_blocks.set(gauge(state.blocks.len()));
        if !report.done.is_empty() {
            tracing::info!(mastodon = %self.label, "Mastodon push: {}", report.plan.summary());
        }
        Ok(report)
    }

    /// One write; on success the state file records it before anything else happens.
    async fn apply(
        &self,
        token: &HeaderValue,
        change: &Change,
        state: &mut State,
        generation: u64,
    ) -> Result<(), CycleError> {
        let now = crate::clock::unix_now();
        let managed = |id: &str, w: &Wanted| Managed {
            id: id.to_string(),
            severity: w.severity.as_str().to_string(),
            reject_media: w.reject_media,
            reject_reports: w.reject_reports,
            source: w.source.clone(),
            at: now,
        };
        let (op, result) = match change {
            Change::Create(w) => ("create", self.api.create(token, w).await.map(|b| b.id)),
            Change::Update { id, to, .. } => (
                "update",
                self.api.update(token, id, to).await.map(|_| id.clone()),
            ),
            Change::Lift { id, .. } => (
                "delete",
                self.api.delete(token, id).await.map(|()| id.clone()),
            ),
            Change::Skip { .. } => return Ok(()),
        };
        self.count(op, result.as_ref().err());
        let id = match result {
            Ok(id) => id,
            // Gone already (deleted by hand between the listing and now): nothing to lift,
            // nothing to update; a rule still in force creates it again next cycle.
            Err(ApiError::Status { status: 404, .. }) if !matches!(change, Change::Create(_)) => {
                state.blocks.remove(change.domain());
                self.state.write(state)?;
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(op, domain = change.domain(), result = e.reason(), error = %e, "Mastodon push: write failed");
                return Err(e.into());
            }
        };
        match change {
            Change::Create(w) | Change::Update { to: w, .. } => {
                state.blocks.insert(w.domain.clone(), managed(&id, w));
            }
            _ => {
                state.blocks.remove(change.domain());
            }
        }
        if let Err(e) = self.state.write(state) {
            tracing::error!(op, domain = change.domain(), id, error = %e, "Mastodon push: wrote to Mastodon but cannot record it; stopping");
            return Err(e.into());
        }
        tracing::info!(op, domain = change.domain(), id, mastodon = %self.label, "Mastodon push: {change}");
        self.journal(change, generation, now);
        Ok(())
    }

    fn count(&self, op: &str, error: Option<&ApiError>) {
        let result = error.map_or("ok", ApiError::reason);
        self.metrics
            .requests_total
            .with_label_values(&[op, result])
            .inc();
    }

    /// Gauges of the plan, and each manual block logged once while it lasts.
    fn observe(&self, plan: &Plan) {
        for op in ["create", "update", "delete"] {
            self.metrics
                .diff
                .with_label_values(&[op])
                .set(gauge(plan.count(op)));
        }
        let (manual, covered) = plan.skipped();
        let skipped = &self.metrics.skipped_blocks;
        skipped.with_label_values(&["manual"]).set(gauge(manual));
        skipped.with_label_values(&["covered"]).set(gauge(covered));
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        let mut now = HashSet::new();
        for change in &plan.changes {
            if let Change::Skip {
                domain,
                reason: SkipReason::Manual { id },
            } = change
            {
                if !warned.contains(domain) {
                    tracing::warn!(domain, id, "Mastodon push: Mastodon has a block on this domain that inboxguard did not create; it is left alone");
                }
                now.insert(domain.clone());
            }
        }
        *warned = now;
    }

    /// One rule-change line per write: trigger `push`, the inboxguard source as `source`,
    /// Mastodon's list (`<url>/api/v1/admin/domain_blocks`) as the source that changed.
    fn journal(&self, change: &Change, generation: u64, unix: u64) {
        let (word, severity, source) = match change {
            Change::Create(w) => ("added", w.severity.as_str(), &w.source),
            Change::Update { to, .. } => ("changed", to.severity.as_str(), &to.source),
            Change::Lift { block, source, .. } => ("removed", block.severity.as_str(), source),
            Change::Skip { .. } => return,
        };
        let mut counts = SourceChanges::default();
        let map = match word {
            "added" => &mut counts.added,
            "removed" => &mut counts.removed,
            _ => &mut counts.changed,
        };
        map.insert(severity.to_string(), 1);
        let line = RuleChange {
            time: crate::clock::rfc3339(unix),
            unix,
            trigger: "push".into(),
            source: Some(source.clone()),
            generation,
            changes: BTreeMap::from([(self.label.clone(), counts)]),
            domains: vec![NamedChange {
                source: self.label.clone(),
                change: word.into(),
                severity: severity.into(),
                domain: change.domain().to_string(),
            }],
            refused: Vec::new(),
        };
        if let Err(e) = self.changes.append(&line) {
            tracing::warn!(error = %e, "cannot write the rule-change log");
        }
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `check`'s and startup's line on the push: mode, interval, sources, and how many blocks the
/// state file records; `Err` when the push would refuse the state file. `None` when off.
pub(crate) fn note(config: &Config) -> Option<Result<String, String>> {
    let m = config
        .mastodon
        .as_ref()
        .filter(|m| m.push != PushMode::Off)?;
    let file = StateFile::new(&config.state.dir, &m.url);
    let subscriptions = config.subscriptions.iter().filter(|s| s.push).count();
    Some(match file.read() {
        Ok(state) => Ok(format!(
            "mastodon push = {} every {} to {}: escalations and {subscriptions} subscriptions; {}: {} blocks recorded",
            m.push.as_str(),
            m.push_interval,
            m.url,
            file.path().display(),
            state.blocks.len()
        )),
        Err(e) => Err(format!("mastodon push: {e}")),
    })
}

//! Escalation: a sending domain with `threshold` references within `window` becomes a rule of
//! the generated `friendly-federators` source (or is only reported), evaluated on the
//! maintenance tick that also saves the evidence, never on the request path.

use super::evidence::{in_window, Escalated, EvidenceError, Store};
use super::report::rfc3339;
use super::{effective, gauge, unix_now, Federators, SOURCE_LABEL};
use crate::config::{EscalationAction, FriendlyFederatorsConfig};
use crate::policy::sources::{self, MASTODON_HEADER};
use crate::policy::FriendlyFederatorSettings;
use crate::policy::Severity;
use crate::rules::{MemorySource, Rules};
use std::collections::BTreeMap;
use std::sync::Arc;

impl Federators {
    /// Re-evaluates escalation at `now` under the settings in force. Returns the generated
    /// source to put in force when the escalated domains or the action changed (`Some(None)`:
    /// take it out of force), else `None`. Pure bookkeeping; the caller does the reload.
    ///
    /// Escalations are never deleted here: with escalation off or `action = "report"` they stay
    /// in the store (and the evidence file), only out of force, and come back into force with
    /// the action that is configured when it is `limit` or `suspend` again. A rules reload
    /// therefore cannot forget a sticky escalation.
    pub(super) fn evaluate(
        &self,
        now: u64,
        table: Option<&FriendlyFederatorSettings>,
    ) -> Option<Option<MemorySource>> {
        let config = effective(&self.config, table);
        let action = config.action();
        let enforcing = enforces(&config);
        let mut store = self.lock();
        let mut over: BTreeMap<String, u64> = BTreeMap::new();
        let mut changed = false;
        if let Some(threshold) = config.threshold {
            over = store
                .domains
                .iter()
                .filter_map(|(domain, e)| {
                    let count = in_window(&e.days, now, config.window_days());
                    (count >= threshold).then(|| (domain.clone(), count))
                })
                .collect();
            for (domain, &count) in &over {
                if store.escalated.contains_key(domain) {
                    continue;
                }
                if !enforcing {
                    // Logged when it crosses; but a domain already over the threshold while
                    // the action was `report` still escalates once the action enforces.
                    if !store.over_threshold.contains(domain) {
                        tracing::warn!(
                            domain = %domain,
                            references = count,
                            threshold,
                            window_days = config.window_days(),
                            "friendly federator over the escalation threshold (action = report: no rule generated)"
                        );
                    }
                    continue;
                }
                if store.escalated.len() >= config.max_tracked_domains {
                    tracing::error!(domain = %domain, limit = config.max_tracked_domains, "too many escalated friendly federators; not escalating more");
                    continue;
                }
                tracing::warn!(
                    domain = %domain,
                    references = count,
                    threshold,
                    window_days = config.window_days(),
                    action = action.as_str(),
                    "friendly federator escalated into the generated rule source"
                );
                store
                    .escalated
                    .insert(domain.clone(), Escalated { at: now, count });
                store.dirty = true;
                changed = true;
            }
        }
        store.over_threshold = over.into_keys().collect();
        let count = if enforcing {
            store.escalated.len()
        } else {
            store.over_threshold.len()
        };
        for a in [
            EscalationAction::Report,
            EscalationAction::Limit,
            EscalationAction::Suspend,
        ] {
            let value = if a == action { gauge(count) } else { 0 };
            self.metrics
                .friendly_federator_escalations
                .with_label_values(&[a.as_str()])
                .set(value);
        }
        if !enforcing {
            store.enforced.take()?;
            tracing::warn!(
                count = store.escalated.len(),
                "escalation is off or set to report: escalated friendly federators are no longer enforced (kept, and enforced again when action is limit or suspend)"
            );
            return Some(None);
        }
        let regenerate = changed || store.enforced != Some(action);
        if !regenerate || (store.escalated.is_empty() && store.enforced.is_none()) {
            return None;
        }
        match generated_source(&store.escalated, action, config.window_days()) {
            Ok(source) => {
                store.enforced = Some(action);
                Some(Some(source))
            }
            Err(e) => {
                // Domains are normalised when recorded or loaded, so this means a bug; keep
                // the rules in force as they are.
                tracing::error!(error = %e, "generated friendly-federator rules did not parse");
                None
            }
        }
    }
}

/// Whether `config` turns escalations into rules: a threshold, and an action other than
/// `report`.
fn enforces(config: &FriendlyFederatorsConfig) -> bool {
    config.threshold.is_some() && config.action() != EscalationAction::Report
}

/// Puts the escalation state loaded from the evidence file in force (blocking: call before
/// serving, or from a blocking thread), so a restart never lets an escalated domain through.
pub fn apply_at_startup(federators: &Federators, rules: &Rules) {
    apply(federators, rules, unix_now());
}

fn apply(federators: &Federators, rules: &Rules, now: u64) {
    let snapshot = rules.current().load();
    match federators.evaluate(now, snapshot.friendly_federators()) {
        None => {}
        Some(Some(source)) => {
            // `set_memory_source` logs and counts a failed reload itself; the source is kept
            // and takes effect with the next successful one.
            let _ = rules.set_memory_source(source);
        }
        Some(None) => {
            let _ = rules.remove_memory_source(SOURCE_LABEL);
        }
    }
}

/// Saves the evidence and re-evaluates escalation every `persist_interval_secs` until
/// `shutdown` resolves, then saves once more. Spawned by `run`; the last save happens after
/// the proxy has drained, so it holds every request's evidence.
pub async fn maintain(
    federators: Arc<Federators>,
    rules: Arc<Rules>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut tick = tokio::time::interval(federators.config.persist_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        let (f, r) = (federators.clone(), rules.clone());
        let work = tokio::task::spawn_blocking(move || {
            let now = unix_now();
            apply(&f, &r, now);
            save_logged(&f, now);
        });
        if let Err(e) = work.await {
            tracing::error!(error = %e, "friendly-federator maintenance task failed");
        }
    }
    let f = federators.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || save_logged(&f, unix_now())).await {
        tracing::error!(error = %e, "friendly-federator final save failed");
    }
}

fn save_logged(federators: &Federators, now: u64) {
    match federators.save(now) {
        Ok(true) => tracing::debug!("friendly-federator evidence saved"),
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot save friendly-federator evidence; retrying on the next tick")
        }
    }
}

/// The generated rule source: one Mastodon CSV line per escalated domain, parsed by the same
/// code as any rule file (so the domains are normalised and the lines are what `explain`
/// names).
fn generated_source(
    escalated: &BTreeMap<String, Escalated>,
    action: EscalationAction,
    window_days: u32,
) -> Result<MemorySource, sources::LoadError> {
    let severity = match action {
        EscalationAction::Suspend => Severity::Suspend,
        _ => Severity::Silence,
    };
    let mut text = format!("{MASTODON_HEADER}\n");
    for (domain, e) in escalated {
        text.push_str(&format!(
            "{domain},{severity},false,false,friendly federator: {} references within {window_days} days; escalated {},false\n",
            e.count,
            rfc3339(e.at)
        ));
    }
    let parsed = sources::parse_bytes(
        text.as_bytes(),
        Arc::from(SOURCE_LABEL),
        crate::config::BlocklistFormat::MastodonCsv,
    )?;
    Ok(MemorySource::new(SOURCE_LABEL, Arc::new(parsed)))
}

/// The generated `friendly-federators` source as the running proxy has it in force, from the
/// evidence file named by `config` (the effective settings, see `effective`), for `explain`
/// and `check`, which never write the file. `Ok(None)` when escalation is off or only
/// reports, or nothing escalated.
pub fn escalated_from_file(
    config: &FriendlyFederatorsConfig,
) -> Result<Option<MemorySource>, EvidenceError> {
    let (store, path, _) = Store::read(config)?;
    if !enforces(config) || store.escalated.is_empty() {
        return Ok(None);
    }
    generated_source(&store.escalated, config.action(), config.window_days())
        .map(Some)
        .map_err(|source| EvidenceError::Generated {
            path: path.to_path_buf(),
            source,
        })
}

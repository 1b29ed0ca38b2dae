//! Escalation: a sending domain with `threshold` references within `window`, or with a
//! content rule's `escalate.threshold` matches within its window, becomes a rule of the
//! generated `friendly-federators` source (or is only reported), evaluated on the maintenance
//! tick that also saves the evidence, never on the request path.

use super::days::in_window;
use super::evidence::{Escalated, EvidenceError, Store};
use super::{effective, gauge, unix_now, Federators, SOURCE_LABEL};
use crate::clock::rfc3339;
use crate::config::{EscalationAction, FriendlyFederatorsConfig};
use crate::policy::content::{ContentRules, RuleEscalation};
use crate::policy::sources::{self, MASTODON_HEADER};
use crate::policy::FriendlyFederatorSettings;
use crate::policy::Severity;
use crate::rules::{MemorySource, Rules, Trigger};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

impl Federators {
    /// Re-evaluates escalation at `now` under the settings in force and the content rules
    /// loaded. Returns the generated source to put in force when its text changed (a new or
    /// lifted domain, a new action; `Some(None)`: take it out of force), else `None`. Pure
    /// bookkeeping; the caller does the reload.
    ///
    /// Escalations are never deleted here: with escalation off or `action = "report"` they stay
    /// in the store (and the evidence file), only out of force, and come back into force with
    /// the action that is configured when it is `limit` or `suspend` again. A rules reload
    /// therefore cannot forget a sticky escalation; only a lift does.
    pub(super) fn evaluate(
        &self,
        now: u64,
        table: Option<&FriendlyFederatorSettings>,
        content: &ContentRules,
    ) -> Option<Option<MemorySource>> {
        let config = effective(&self.config, table);
        let mut guard = self.lock();
        let store = &mut *guard;
        self.evaluate_friendly(store, &config, now);
        self.evaluate_content(store, &config, content, now);
        let ff = store
            .escalated
            .values()
            .filter(|e| e.rule.is_none())
            .count();
        let count = if enforces(&config) {
            ff
        } else {
            store.over_threshold.len()
        };
        for a in [
            EscalationAction::Report,
            EscalationAction::Limit,
            EscalationAction::Suspend,
        ] {
            let value = if a == config.action() {
                gauge(count)
            } else {
                0
            };
            self.metrics
                .friendly_federator_escalations
                .with_label_values(&[a.as_str()])
                .set(value);
        }
        let text = generated_text(&store.escalated, &config, Some(content));
        if text == store.handed {
            return None;
        }
        let Some(text) = text else {
            store.handed = None;
            tracing::warn!(
                count = store.escalated.len(),
                "no escalation is enforced any more (escalation off or set to report): the escalated domains are kept, and enforced again when their action is limit or suspend"
            );
            return Some(None);
        };
        match parse_generated(&text) {
            Ok(source) => {
                store.handed = Some(text);
                Some(Some(source))
            }
            Err(e) => {
                // Domains are normalised when recorded or loaded, so this means a bug; keep
                // the rules in force as they are.
                tracing::error!(error = %e, "generated escalation rules did not parse");
                None
            }
        }
    }

    /// Friendly-federator evidence over the threshold escalates its domain (when the action
    /// enforces) or is logged once when it crosses (`report`).
    fn evaluate_friendly(&self, store: &mut Store, config: &FriendlyFederatorsConfig, now: u64) {
        let Some(threshold) = config.threshold else {
            store.over_threshold.clear();
            return;
        };
        let enforcing = enforces(config);
        let over: BTreeMap<String, u64> = store
            .domains
            .iter()
            .filter_map(|(domain, e)| {
                let count = in_window(&e.days, now, config.window_days());
                (count >= threshold).then(|| (domain.clone(), count))
            })
            .collect();
        for (domain, &count) in &over {
            if let Some(e) = store.escalated.get(domain) {
                // Already escalated; a content rule's escalation out of force makes way.
                if e.rule.is_none() || entry_action(e, config, None).is_some() {
                    continue;
                }
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
            if !room(store, config, domain) {
                continue;
            }
            tracing::warn!(
                domain = %domain,
                references = count,
                threshold,
                window_days = config.window_days(),
                action = config.action().as_str(),
                "friendly federator escalated into the generated rule source"
            );
            store.escalated.insert(
                domain.clone(),
                Escalated {
                    at: now,
                    count,
                    rule: None,
                    action: None,
                    window_days: None,
                },
            );
            store.dirty = true;
        }
        store.over_threshold = over.into_keys().collect();
    }

    /// A content rule's matches from one domain over the rule's `escalate.threshold` escalate
    /// the domain under the rule's action, or are logged once when they cross (`report`).
    fn evaluate_content(
        &self,
        store: &mut Store,
        config: &FriendlyFederatorsConfig,
        content: &ContentRules,
        now: u64,
    ) {
        let escalating: HashMap<&str, RuleEscalation> = content
            .rules()
            .iter()
            .filter_map(|r| Some((&*r.name, r.escalate?)))
            .collect();
        if escalating.is_empty() {
            store.content_over.clear();
            return;
        }
        let mut over: Vec<(String, String, u64, RuleEscalation)> = store
            .content
            .pairs
            .iter()
            .filter_map(|((rule, domain), pair)| {
                let e = *escalating.get(rule.as_str())?;
                let count = in_window(&pair.days, now, e.window.days);
                (count >= e.threshold).then(|| (rule.clone(), domain.clone(), count, e))
            })
            .collect();
        // One order across ticks and replicas: the rule with most matches first.
        over.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1))));
        let mut crossed = BTreeSet::new();
        for (rule, domain, count, e) in over {
            let key = (rule.clone(), domain.clone());
            let first = !store.content_over.contains(&key);
            crossed.insert(key);
            if store
                .escalated
                .get(&domain)
                .is_some_and(|x| entry_action(x, config, Some(content)).is_some())
            {
                continue;
            }
            let report_only = e.action == EscalationAction::Report;
            if (report_only && !first) || (!report_only && !room(store, config, &domain)) {
                continue;
            }
            tracing::warn!(
                domain = %domain,
                rule = %rule,
                matches = count,
                threshold = e.threshold,
                window_days = e.window.days,
                action = e.action.as_str(),
                "{}",
                if report_only {
                    "sending domain over a content rule's escalation threshold (action = report: no rule generated)"
                } else {
                    "sending domain escalated by a content rule into the generated rule source"
                }
            );
            if report_only {
                continue;
            }
            store.escalated.insert(
                domain,
                Escalated {
                    at: now,
                    count,
                    rule: Some(rule),
                    action: Some(e.action),
                    window_days: Some(e.window.days),
                },
            );
            store.dirty = true;
        }
        store.content_over = crossed;
    }
}

/// Whether `config` turns friendly-federator escalations into rules: a threshold, and an
/// action other than `report`.
fn enforces(config: &FriendlyFederatorsConfig) -> bool {
    config.threshold.is_some() && config.action() != EscalationAction::Report
}

/// Whether one more domain may escalate (bounded like the evidence).
fn room(store: &Store, config: &FriendlyFederatorsConfig, domain: &str) -> bool {
    if store.escalated.len() < config.max_tracked_domains || store.escalated.contains_key(domain) {
        return true;
    }
    tracing::error!(domain = %domain, limit = config.max_tracked_domains, "too many escalated domains; not escalating more");
    false
}

/// The action an escalation is enforced with now, `None` while it is not enforced: a
/// friendly federator's is the settings' action (when they enforce); a content rule's is the
/// rule's `escalate.action` while the rule is loaded with one, else the action it escalated
/// with. `content`: the loaded content rules, `None` when unknown (the recorded action).
pub(super) fn entry_action(
    e: &Escalated,
    config: &FriendlyFederatorsConfig,
    content: Option<&ContentRules>,
) -> Option<EscalationAction> {
    let action = match &e.rule {
        None => enforces(config).then(|| config.action())?,
        Some(rule) => content
            .and_then(|c| c.named(rule))
            .and_then(|r| r.escalate)
            .map(|x| x.action)
            .or(e.action)?,
    };
    (action != EscalationAction::Report).then_some(action)
}

/// Who escalated a domain, in words: `friendly federator` or `content rule NAME`.
pub fn cause(e: &Escalated) -> String {
    match &e.rule {
        None => "friendly federator".into(),
        Some(rule) => format!("content rule {rule}"),
    }
}

/// Puts the escalation state loaded from the evidence file in force (blocking: call before
/// serving, or from a blocking thread), so a restart never lets an escalated domain through.
pub fn apply_at_startup(federators: &Federators, rules: &Rules) {
    apply(federators, rules, unix_now());
}

fn apply(federators: &Federators, rules: &Rules, now: u64) {
    let _one_at_a_time = federators.applying();
    if std::mem::take(&mut federators.lock().peer_lifted) {
        apply_by(federators, rules, now, |label| Trigger::Lift(label));
    } else {
        apply_by(federators, rules, now, |label| Trigger::SetMemory(label));
    }
}

/// Evaluates escalation and hands a changed source to the rules, telling their observer
/// `trigger` asked (an escalation on the tick, or an operator's lift). The caller holds
/// `Federators::applying`.
pub(super) fn apply_by(
    federators: &Federators,
    rules: &Rules,
    now: u64,
    trigger: fn(&str) -> Trigger<'_>,
) {
    // The snapshot is let go before the reload: the reload drops the one it replaces once
    // nobody holds it, and would otherwise wait for this caller.
    let evaluated = {
        let snapshot = rules.current().load();
        federators.evaluate(
            now,
            snapshot.friendly_federators(),
            snapshot.content_rules(),
        )
    };
    match evaluated {
        None => {}
        Some(Some(source)) => {
            // `set_memory_source_by` logs and counts a failed reload itself; the source is
            // kept and takes effect with the next successful one.
            let _ = rules.set_memory_source_by(source, trigger);
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
        federators.exchange().await;
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

pub(super) fn save_logged(federators: &Federators, now: u64) {
    match federators.save(now) {
        Ok(true) => tracing::debug!("friendly-federator evidence saved"),
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot save friendly-federator evidence; retrying on the next tick")
        }
    }
}

/// The generated rule source's text: one Mastodon CSV line per escalated domain in force,
/// `None` when none is. Its shape is stable (others read it): `domain,severity,false,false,
/// comment,false`, the comment naming the cause — `friendly federator: N references within
/// D days; escalated TIME` or `content rule NAME: N matches within D days; escalated TIME`.
fn generated_text(
    escalated: &BTreeMap<String, Escalated>,
    config: &FriendlyFederatorsConfig,
    content: Option<&ContentRules>,
) -> Option<String> {
    let mut text = format!("{MASTODON_HEADER}\n");
    let mut any = false;
    for (domain, e) in escalated {
        let Some(action) = entry_action(e, config, content) else {
            continue;
        };
        any = true;
        let severity = match action {
            EscalationAction::Suspend => Severity::Suspend,
            _ => Severity::Silence,
        };
        let why = match &e.rule {
            None => format!(
                "friendly federator: {} references within {} days",
                e.count,
                config.window_days()
            ),
            Some(rule) => format!(
                "content rule {rule}: {} matches within {} days",
                e.count,
                e.window_days.unwrap_or(7)
            ),
        };
        text.push_str(&format!(
            "{domain},{severity},false,false,{why}; escalated {},false\n",
            rfc3339(e.at)
        ));
    }
    any.then_some(text)
}

/// The generated source from its text, parsed by the same code as any rule file (so the
/// domains are normalised and the lines are what `explain` names).
fn parse_generated(text: &str) -> Result<MemorySource, sources::LoadError> {
    let parsed = sources::parse_bytes(
        text.as_bytes(),
        Arc::from(SOURCE_LABEL),
        crate::config::BlocklistFormat::MastodonCsv,
    )?;
    Ok(MemorySource::new(SOURCE_LABEL, Arc::new(parsed)))
}

/// The generated `friendly-federators` source as the running proxy has it in force, from the
/// evidence file named by `config` (the effective settings, see `effective`) and the loaded
/// content rules, for `explain` and `check`, which never write the file. `Ok(None)` when no
/// escalation is enforced.
pub fn escalated_from_file(
    config: &FriendlyFederatorsConfig,
    content: &ContentRules,
) -> Result<Option<MemorySource>, EvidenceError> {
    let (store, path, _) = Store::read(config)?;
    let Some(text) = generated_text(&store.escalated, config, Some(content)) else {
        return Ok(None);
    };
    parse_generated(&text)
        .map(Some)
        .map_err(|source| EvidenceError::Generated {
            path: path.to_path_buf(),
            source,
        })
}

//! Auditing and lifting escalations: the list `inboxguard escalations` prints and
//! `GET /admin/escalations` serves, and the lift (`POST /admin/escalations/<domain>/lift`,
//! `inboxguard escalations lift`) that records who, when and why in the evidence file.
//!
//! A lift takes the domain out of the generated source at once and forgets the per-day counts
//! of its evidence (totals, samples and first/last seen stay): only evidence counted after
//! the lift can escalate it again, at the same threshold.

use super::days::in_window;
use super::escalate::{apply_by, cause, entry_action, save_logged};
pub use super::evidence::Lifted;
use super::evidence::{write_file, EvidenceError, Store};
use super::{effective, unix_now, Federators, Kind};
use crate::clock::{rfc3339, truncate};
use crate::config::FriendlyFederatorsConfig;
use crate::policy::content::ContentRules;
use crate::policy::{host, FriendlyFederatorSettings};
use crate::rules::{Rules, Trigger};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// `by` and `reason` are cut to this many bytes (on a character boundary).
const MAX_TEXT_BYTES: usize = 256;

/// Why a lift did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LiftError {
    #[error("{0:?} is not a domain")]
    InvalidDomain(String),
    #[error("{0} is not escalated")]
    NotEscalated(String),
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
}

impl Store {
    /// Takes `domain` out of the escalations, records the lift, and forgets the per-day
    /// counts of its evidence.
    pub(super) fn lift(
        &mut self,
        domain: &str,
        by: &str,
        reason: &str,
        now: u64,
        max: usize,
    ) -> Result<Lifted, LiftError> {
        let domain =
            host::normalize(domain).ok_or_else(|| LiftError::InvalidDomain(domain.into()))?;
        let escalated = self
            .escalated
            .remove(&domain)
            .ok_or_else(|| LiftError::NotEscalated(domain.clone()))?;
        if let Some(e) = self.domains.get_mut(&domain) {
            e.days.clear();
        }
        self.content.forget_days(&domain);
        if let Some(pending) = &mut self.pending {
            // Counted before the lift: not to be sent as new evidence.
            pending.retain(|key, _| key.rsplit(':').next() != Some(domain.as_str()));
        }
        self.over_threshold.remove(&domain);
        self.content_over.retain(|(_, d)| *d != domain);
        let lifted = Lifted {
            at: now,
            by: truncate(by, MAX_TEXT_BYTES).to_string(),
            reason: truncate(reason, MAX_TEXT_BYTES).to_string(),
            escalated,
        };
        self.lifted.insert(domain.clone(), lifted.clone());
        if self.pending.is_some() {
            self.pending_lifts.push((domain, lifted.clone()));
        }
        // Bounded like the evidence: the oldest lift goes.
        while self.lifted.len() > max {
            let oldest = self
                .lifted
                .iter()
                .min_by_key(|(_, l)| l.at)
                .map(|(d, _)| d.clone());
            match oldest {
                Some(d) => self.lifted.remove(&d),
                None => break,
            };
        }
        self.dirty = true;
        Ok(lifted)
    }
}

/// Lifts `domain`'s escalation in the running proxy: out of the rules in force at once
/// (`trigger="lift"` in the rule-change log), recorded and saved in the evidence file
/// (blocking file I/O: call from a blocking thread).
pub fn lift(
    federators: &Federators,
    rules: &Rules,
    domain: &str,
    by: &str,
    reason: &str,
) -> Result<Lifted, LiftError> {
    let now = unix_now();
    let _one_at_a_time = federators.applying();
    let max = federators.config.max_tracked_domains;
    let lifted = federators.lock().lift(domain, by, reason, now, max)?;
    tracing::warn!(
        domain,
        by,
        reason,
        cause = cause(&lifted.escalated),
        escalated_at = %rfc3339(lifted.escalated.at),
        "escalation lifted by an operator"
    );
    apply_by(federators, rules, now, |label| Trigger::Lift(label));
    save_logged(federators, now);
    Ok(lifted)
}

/// Lifts `domain`'s escalation in the evidence file `config` names, for a proxy that is not
/// running: it puts the file's escalations in force when it starts. A running proxy would
/// overwrite the file on its next save; lift through it instead.
pub fn lift_in_file(
    config: &FriendlyFederatorsConfig,
    domain: &str,
    by: &str,
    reason: &str,
    now: u64,
) -> Result<Lifted, LiftError> {
    let (mut store, path, _) = Store::read(config)?;
    let lifted = store.lift(domain, by, reason, now, config.max_tracked_domains)?;
    write_file(path, &store.to_file(now))?;
    Ok(lifted)
}

/// The escalations and the lifts, as `inboxguard escalations` and `GET /admin/escalations`
/// show them.
#[derive(Debug, Serialize)]
pub struct Escalations {
    pub generated_at: String,
    /// When the evidence file was saved (for a list read from the file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_at: Option<String>,
    pub escalated: Vec<EscalationRow>,
    /// The last lift of each domain, newest first.
    pub lifted: Vec<LiftRow>,
}

#[derive(Debug, Serialize)]
pub struct EscalationRow {
    pub domain: String,
    /// `limit`, `suspend`, or `not_enforced` (escalation off or set to `report`).
    pub action: &'static str,
    pub since: String,
    /// `friendly federator` or `content rule NAME`.
    pub cause: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// For a friendly federator: its references per kind (the kinds that carried content in).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<&'static str, u64>,
    /// References (or the rule's matches) within the window when it escalated.
    pub count_at_escalation: u64,
    /// Within the window now.
    pub in_window: u64,
}

#[derive(Debug, Serialize)]
pub struct LiftRow {
    pub domain: String,
    pub lifted_at: String,
    pub by: String,
    pub reason: String,
    pub cause: String,
    pub escalated_at: String,
    pub count_at_escalation: u64,
}

impl Federators {
    /// The escalations and lifts under the settings in force and the loaded content rules.
    pub fn escalations(
        &self,
        now: u64,
        table: Option<&FriendlyFederatorSettings>,
        content: Option<&ContentRules>,
    ) -> Escalations {
        let config = effective(&self.config, table);
        Escalations::build(&self.lock(), &config, content, now, None)
    }
}

/// The escalations and lifts saved in the evidence file `config` names.
pub fn escalations_from_file(
    config: &FriendlyFederatorsConfig,
    now: u64,
    content: Option<&ContentRules>,
) -> Result<Escalations, EvidenceError> {
    let (store, _, saved_at) = Store::read(config)?;
    Ok(Escalations::build(
        &store,
        config,
        content,
        now,
        Some(saved_at),
    ))
}

impl Escalations {
    fn build(
        store: &Store,
        config: &FriendlyFederatorsConfig,
        content: Option<&ContentRules>,
        now: u64,
        saved_at: Option<u64>,
    ) -> Escalations {
        let escalated = store
            .escalated
            .iter()
            .map(|(domain, e)| {
                let (kinds, in_window_now) = match &e.rule {
                    None => store.domains.get(domain).map_or_else(
                        || (BTreeMap::new(), 0),
                        |d| {
                            let kinds = Kind::ALL
                                .into_iter()
                                .map(|k| (k.as_str(), d.by_kind.get(k)))
                                .filter(|(_, n)| *n > 0)
                                .collect();
                            (kinds, in_window(&d.days, now, config.window_days()))
                        },
                    ),
                    Some(rule) => {
                        let days = content
                            .and_then(|c| c.named(rule))
                            .and_then(|r| r.escalate)
                            .map(|x| x.window.days)
                            .or(e.window_days)
                            .unwrap_or(7);
                        let n = store
                            .content
                            .pairs
                            .get(&(rule.clone(), domain.clone()))
                            .map_or(0, |p| in_window(&p.days, now, days));
                        (BTreeMap::new(), n)
                    }
                };
                EscalationRow {
                    domain: domain.clone(),
                    action: entry_action(e, config, content).map_or("not_enforced", |a| a.as_str()),
                    since: rfc3339(e.at),
                    cause: cause(e),
                    rule: e.rule.clone(),
                    kinds,
                    count_at_escalation: e.count,
                    in_window: in_window_now,
                }
            })
            .collect();
        let mut lifted: Vec<LiftRow> = store
            .lifted
            .iter()
            .map(|(domain, l)| LiftRow {
                domain: domain.clone(),
                lifted_at: rfc3339(l.at),
                by: l.by.clone(),
                reason: l.reason.clone(),
                cause: cause(&l.escalated),
                escalated_at: rfc3339(l.escalated.at),
                count_at_escalation: l.escalated.count,
            })
            .collect();
        lifted.sort_by(|a, b| b.lifted_at.cmp(&a.lifted_at).then(a.domain.cmp(&b.domain)));
        Escalations {
            generated_at: rfc3339(now),
            saved_at: saved_at.map(rfc3339),
            escalated,
            lifted,
        }
    }
}

/// The `inboxguard escalations` table: the escalations, then the lifts.
impl fmt::Display for Escalations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "escalated: {}", self.escalated.len())?;
        match &self.saved_at {
            Some(saved) => writeln!(f, " (evidence saved {saved})")?,
            None => writeln!(f)?,
        }
        let width = self
            .escalated
            .iter()
            .map(|e| e.domain.len())
            .chain(self.lifted.iter().map(|l| l.domain.len()))
            .max()
            .unwrap_or(0)
            .max("DOMAIN".len());
        if !self.escalated.is_empty() {
            writeln!(
                f,
                "{:<width$}  {:<12}  {:<20}  {:>10} {:>9}  CAUSE",
                "DOMAIN", "ACTION", "SINCE", "ESCALATED", "IN_WINDOW"
            )?;
        }
        for e in &self.escalated {
            let kinds: Vec<String> = e.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let kinds = if kinds.is_empty() {
                String::new()
            } else {
                format!(" ({})", kinds.join(", "))
            };
            writeln!(
                f,
                "{:<width$}  {:<12}  {:<20}  {:>10} {:>9}  {}{kinds}",
                e.domain, e.action, e.since, e.count_at_escalation, e.in_window, e.cause
            )?;
        }
        writeln!(f, "lifted: {}", self.lifted.len())?;
        for l in &self.lifted {
            writeln!(
                f,
                "{:<width$}  lifted {} by {:?}: {:?} (was {} since {}, {})",
                l.domain,
                l.lifted_at,
                l.by,
                l.reason,
                l.cause,
                l.escalated_at,
                l.count_at_escalation
            )?;
        }
        Ok(())
    }
}

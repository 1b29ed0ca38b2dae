//! The evidence as a report: JSON for `/admin/friendly-federators`, a table for
//! `inboxguard report`, from the live store or from the evidence file.

use super::content::{ContentReport, RuleReport};
use super::days::in_window;
use super::escalate::{cause, entry_action};
use super::evidence::{
    DomainEvidence, EvidenceError, KindCounts, Referenced, SeverityCounts, Store,
};
use super::{dropping, effective, Federators};
use crate::config::{EscalationAction, FriendlyFederatorsConfig};
use crate::policy::content::ContentRules;
use crate::policy::FriendlyFederatorSettings;
use serde::Serialize;
use std::fmt;

impl Federators {
    /// The evidence as `/admin/friendly-federators` and `inboxguard report` show it.
    /// `table`: the loaded rules file's `[friendly_federators]` table, if any (see `effective`);
    /// `content`: the content rules in force, for their escalation windows.
    pub fn report(
        &self,
        now: u64,
        table: Option<&FriendlyFederatorSettings>,
        content: Option<&ContentRules>,
    ) -> Report {
        let store = self.lock();
        let config = effective(&self.config, table);
        Report::build(&store, &config, now, None, content)
    }

    /// `GET /admin/content-rules`: the content-rule evidence alone.
    pub fn content_report(&self, now: u64, content: Option<&ContentRules>) -> ContentReport {
        let store = self.lock();
        ContentReport {
            rules: store
                .content
                .report(self.config.report_top, now, &window_of(content)),
        }
    }
}

/// A content rule's escalation window in days, by name, when it escalates.
fn window_of(content: Option<&ContentRules>) -> impl Fn(&str) -> Option<u32> + '_ {
    move |name| Some(content?.named(name)?.escalate?.window.days)
}

/// Reads the evidence file named by `config` into a report, as `inboxguard report` shows it.
/// The file is what the running proxy saved last (at most `persist_interval_secs` old).
pub fn report_from_file(
    config: &FriendlyFederatorsConfig,
    now: u64,
    content: Option<&ContentRules>,
) -> Result<Report, EvidenceError> {
    let (store, _, saved_at) = Store::read(config)?;
    Ok(Report::build(&store, config, now, Some(saved_at), content))
}

/// The evidence, most references first, for the admin endpoint (JSON) and `report` (table).
#[derive(Debug, Serialize)]
pub struct Report {
    pub generated_at: String,
    /// When the evidence file was saved (for a report read from the file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_at: Option<String>,
    pub tracked_domains: usize,
    pub max_tracked_domains: usize,
    /// The laundering kinds that drop activities.
    pub dropping: Vec<&'static str>,
    pub escalation: Option<EscalationReport>,
    /// Domains in the generated `friendly-federators` source.
    pub escalated: Vec<EscalatedReport>,
    /// At most `report_top` domains, most references first.
    pub domains: Vec<DomainReport>,
    /// Content-rule evidence: per rule with matches, its sending domains (at most
    /// `report_top` each), most matches first.
    pub content_rules: Vec<RuleReport>,
}

#[derive(Debug, Serialize)]
pub struct EscalationReport {
    pub threshold: u64,
    pub window_days: u32,
    pub action: &'static str,
}

#[derive(Debug, Serialize)]
pub struct EscalatedReport {
    pub domain: String,
    pub severity: &'static str,
    pub escalated_at: String,
    /// References (or the content rule's matches) within the window when it escalated.
    pub references_in_window: u64,
    /// `friendly federator` or `content rule NAME`.
    pub cause: String,
    /// The content rule that escalated it, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DomainReport {
    pub domain: String,
    pub total: u64,
    /// References within the escalation window (7 days when escalation is off).
    pub in_window: u64,
    pub dropped: u64,
    pub by_kind: KindCounts,
    pub by_severity: SeverityCounts,
    pub referenced: Vec<Referenced>,
    pub samples: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
    /// `escalated` (in the generated source), `would_escalate` (over the threshold with
    /// `action = "report"`), or absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
}

impl Report {
    fn build(
        store: &Store,
        config: &FriendlyFederatorsConfig,
        now: u64,
        saved_at: Option<u64>,
        content: Option<&ContentRules>,
    ) -> Report {
        let (domains, escalated) = (&store.domains, &store.escalated);
        let action = config.action();
        let mut top: Vec<(&String, &DomainEvidence)> = domains.iter().collect();
        top.sort_by(|a, b| b.1.total.cmp(&a.1.total).then_with(|| a.0.cmp(b.0)));
        top.truncate(config.report_top);
        Report {
            generated_at: rfc3339(now),
            saved_at: saved_at.map(rfc3339),
            tracked_domains: domains.len(),
            max_tracked_domains: config.max_tracked_domains,
            dropping: dropping(config, None),
            escalation: config.threshold.map(|threshold| EscalationReport {
                threshold,
                window_days: config.window_days(),
                action: action.as_str(),
            }),
            escalated: escalated
                .iter()
                .map(|(domain, e)| EscalatedReport {
                    domain: domain.clone(),
                    // Listed while out of force too (escalation off, or `report`).
                    severity: match entry_action(e, config, content) {
                        Some(EscalationAction::Suspend) => "suspend",
                        Some(_) => "silence",
                        None => "not_enforced",
                    },
                    escalated_at: rfc3339(e.at),
                    references_in_window: e.count,
                    cause: cause(e),
                    rule: e.rule.clone(),
                })
                .collect(),
            domains: top
                .into_iter()
                .map(|(domain, e)| {
                    let in_window = in_window(&e.days, now, config.window_days());
                    let status = if escalated.contains_key(domain) {
                        Some("escalated")
                    } else if config.threshold.is_some_and(|t| in_window >= t)
                        && action == EscalationAction::Report
                    {
                        Some("would_escalate")
                    } else {
                        None
                    };
                    DomainReport {
                        domain: domain.clone(),
                        total: e.total,
                        in_window,
                        dropped: e.dropped,
                        by_kind: e.by_kind,
                        by_severity: e.by_severity,
                        referenced: e.referenced.clone(),
                        samples: e.samples.clone(),
                        first_seen: rfc3339(e.first_seen),
                        last_seen: rfc3339(e.last_seen),
                        status,
                    }
                })
                .collect(),
            content_rules: store
                .content
                .report(config.report_top, now, &window_of(content)),
        }
    }
}

/// The `inboxguard report` table: one row per domain, then its referenced domains and samples.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "friendly federators: {} sending domains tracked (limit {})",
            self.tracked_domains, self.max_tracked_domains
        )?;
        match &self.saved_at {
            Some(saved) => writeln!(f, ", evidence saved {saved}")?,
            None => writeln!(f)?,
        }
        let dropping = if self.dropping.is_empty() {
            "nothing".to_string()
        } else {
            self.dropping.join(", ")
        };
        writeln!(f, "dropping: {dropping}")?;
        match &self.escalation {
            Some(e) => writeln!(
                f,
                "escalation: {} references within {} days -> {}",
                e.threshold, e.window_days, e.action
            )?,
            None => writeln!(f, "escalation: off")?,
        }
        for e in &self.escalated {
            writeln!(
                f,
                "escalated: {} ({}, since {}, {} {}, by {})",
                e.domain,
                e.severity,
                e.escalated_at,
                e.references_in_window,
                if e.rule.is_some() {
                    "matches"
                } else {
                    "references"
                },
                e.cause
            )?;
        }
        if self.domains.is_empty() {
            writeln!(f, "no evidence yet")?;
        } else {
            self.domain_table(f)?;
        }
        write_content(f, &self.content_rules)
    }
}

impl Report {
    fn domain_table(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = domain_width(self.domains.iter().map(|d| d.domain.as_str()));
        writeln!(
            f,
            "{:<width$}  {:>7} {:>9} {:>7} {:>8} {:>6} {:>6} {:>8} {:>10}  {:<20}  {:<20}  STATUS",
            "DOMAIN",
            "TOTAL",
            "IN_WINDOW",
            "DROPPED",
            "ANNOUNCE",
            "REPLY",
            "QUOTE",
            "MENTION",
            "ATTRIBUTED",
            "FIRST_SEEN",
            "LAST_SEEN",
        )?;
        for d in &self.domains {
            let k = &d.by_kind;
            writeln!(
                f,
                "{:<width$}  {:>7} {:>9} {:>7} {:>8} {:>6} {:>6} {:>8} {:>10}  {:<20}  {:<20}  {}",
                d.domain,
                d.total,
                d.in_window,
                d.dropped,
                k.announce,
                k.reply,
                k.quote,
                k.mention,
                k.attributed_to,
                d.first_seen,
                d.last_seen,
                d.status.unwrap_or("-"),
            )?;
            let referenced: Vec<String> = d
                .referenced
                .iter()
                .map(|r| format!("{} ({})", r.domain, r.count))
                .collect();
            writeln!(f, "    referenced: {}", referenced.join(", "))?;
            for sample in &d.samples {
                writeln!(f, "    sample: {sample}")?;
            }
        }
        Ok(())
    }
}

/// The content-rule part of the table: per rule, one row per sending domain, then its samples.
fn write_content(f: &mut fmt::Formatter<'_>, rules: &[RuleReport]) -> fmt::Result {
    if rules.is_empty() {
        return writeln!(f, "content rules: no matches yet");
    }
    for rule in rules {
        writeln!(
            f,
            "content rule {}: {} matches from {} sending domains",
            rule.rule,
            rule.matches,
            rule.domains.len()
        )?;
        let width = domain_width(rule.domains.iter().map(|d| d.domain.as_str()));
        writeln!(
            f,
            "  {:<width$}  {:>7} {:>7} {:>9}  {:<20}  LAST_SEEN",
            "DOMAIN", "MATCHES", "DRY_RUN", "IN_WINDOW", "FIRST_SEEN"
        )?;
        for d in &rule.domains {
            let in_window = d.in_window.map_or("-".to_string(), |n| n.to_string());
            writeln!(
                f,
                "  {:<width$}  {:>7} {:>7} {:>9}  {:<20}  {}",
                d.domain, d.matches, d.dry_run, in_window, d.first_seen, d.last_seen
            )?;
            for sample in &d.samples {
                writeln!(f, "      sample: {sample}")?;
            }
        }
    }
    Ok(())
}

pub use crate::clock::rfc3339;

/// The width of a table's DOMAIN column: its longest domain, or the heading.
fn domain_width<'a>(domains: impl Iterator<Item = &'a str>) -> usize {
    domains.map(str::len).max().unwrap_or(0).max("DOMAIN".len())
}

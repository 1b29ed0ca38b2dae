//! The laundering check: which references of a verified activity point at limited or
//! suspended domains, and whether an enabled kind stops it. `check` is pure (`explain` runs
//! it too); `Federators::inspect` runs it on the request path and records the evidence.

use super::{effective, unix_now, Federators, Kind};
use crate::activity::Facts;
use crate::config::FriendlyFederatorsConfig;
use crate::policy::{host, DomainRule, Severity, Snapshot};
use std::borrow::Cow;

/// The laundering check's answer for an activity it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    /// `Kind::reason`: the `reason` label.
    pub reason: &'static str,
    /// The suspend rule is from a dry-run source: forward it and count it as `would_reject`.
    pub dry_run: bool,
}

/// One reference an activity makes to a domain a rule covers.
#[derive(Debug, Clone)]
pub struct Reference<'a> {
    pub kind: Kind,
    /// The referenced URI as the activity wrote it.
    pub uri: &'a str,
    /// Its normalised host.
    pub host: Cow<'a, str>,
    /// The rule covering the host: the enforcing one, or for a dry-run stop the dry-run one.
    pub rule: &'a DomainRule,
}

/// What the laundering check found in one activity. Pure: `Federators::inspect` records it
/// as evidence and answers the request by it; `explain` prints it.
#[derive(Debug, Default)]
pub struct Laundering<'a> {
    /// References to limited or suspended domains under enforcing rules: the evidence.
    pub found: Vec<Reference<'a>>,
    /// The answer when an enabled kind points at a suspended domain, with that reference.
    pub stop: Option<(Stop, Reference<'a>)>,
}

/// The laundering check for one verified activity whose key host and actor host are not
/// suspended: finds references to limited or suspended domains and says whether an enabled
/// kind (`config`, overridden by `rules`' `[friendly_federators]` table) points at a suspended
/// domain. An enforcing suspend wins over a dry-run one; among kinds, the first found in the
/// order announce, attributed_to, reply, quote, mention.
pub fn check<'a>(
    rules: &'a Snapshot,
    facts: &'a Facts,
    key_host: &str,
    actor_host: Option<&str>,
    config: &FriendlyFederatorsConfig,
) -> Laundering<'a> {
    let mut out = Laundering::default();
    let Some(object) = facts.object.as_ref() else {
        return out;
    };
    let sender = actor_host.unwrap_or(key_host);
    let table = rules.friendly_federators();
    let mut visit = |kind: Kind, uri: Option<&'a str>| {
        let Some((uri, host)) = uri.and_then(|u| Some((u, host::of_uri_borrowed(u)?))) else {
            return;
        };
        // A domain quoting or replying to itself is not federating with anyone.
        if host == sender || host == key_host {
            return;
        }
        let enforcing = rules
            .rule_for(&host)
            .filter(|r| matches!(r.severity, Severity::Silence | Severity::Suspend));
        if let Some(rule) = enforcing {
            out.found.push(Reference {
                kind,
                uri,
                host: host.clone(),
                rule,
            });
        }
        if !kind.enabled(config, table) || out.stop.as_ref().is_some_and(|(s, _)| !s.dry_run) {
            return;
        }
        let (rule, dry_run) = match enforcing {
            Some(rule) if rule.severity == Severity::Suspend => (rule, false),
            _ if out.stop.is_none() && rules.has_dry_run() => {
                match rules.rule_for_including_dry_run(&host) {
                    Some(r) if r.dry_run && r.severity == Severity::Suspend => (r, true),
                    _ => return,
                }
            }
            _ => return,
        };
        let stop = Stop {
            reason: kind.reason(),
            dry_run,
        };
        out.stop = Some((
            stop,
            Reference {
                kind,
                uri,
                host,
                rule,
            },
        ));
    };
    match facts.kind.as_deref() {
        Some("Announce") => {
            visit(Kind::Announce, object.id.as_deref());
            visit(Kind::Announce, object.attributed_to.as_deref());
        }
        Some("Create" | "Update") => {
            visit(Kind::AttributedTo, object.attributed_to.as_deref());
            visit(Kind::Reply, object.in_reply_to.as_deref());
            for quote in &object.quotes {
                visit(Kind::Quote, Some(quote));
            }
            for mention in &object.mentions {
                visit(Kind::Mention, Some(mention));
            }
        }
        _ => {}
    }
    out
}

impl Federators {
    /// The laundering check (`check`) for one verified activity, on the request path: records
    /// what it found as evidence and says whether to stop the activity.
    pub fn inspect(
        &self,
        rules: &Snapshot,
        facts: &Facts,
        key_host: &str,
        actor_host: Option<&str>,
    ) -> Option<Stop> {
        let Laundering { found, stop } = check(rules, facts, key_host, actor_host, &self.config);
        if !found.is_empty() {
            let sender = actor_host.unwrap_or(key_host);
            let dropped = stop.as_ref().is_some_and(|(s, _)| !s.dry_run);
            let window_days = effective(&self.config, rules.friendly_federators()).window_days();
            self.record(
                sender,
                facts.id.as_deref(),
                &found,
                dropped,
                unix_now(),
                window_days,
            );
            if let Some((_, by)) = stop.as_ref().filter(|(s, _)| !s.dry_run) {
                tracing::info!(
                    sender,
                    referenced = %by.host,
                    kind = by.kind.as_str(),
                    activity = facts.id.as_deref().unwrap_or("-"),
                    "dropped an activity carrying content from a suspended domain"
                );
            }
        }
        stop.map(|(s, _)| s)
    }
}

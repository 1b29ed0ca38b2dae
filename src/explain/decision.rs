//! The decision lines of a report: what the rules decide, by which rule, and what the
//! friendly-federator check found.

use super::table::comment;
use crate::config::FriendlyFederatorsConfig;
use crate::federators::{self, Reference, Stop};
use crate::policy::{Decision, PolicyMode, Snapshot};
use std::fmt::Write;

/// The decision when the laundering check stops the activity: which reference matched which
/// rule.
pub(super) fn write_laundered(out: &mut String, stop: Stop, by: &Reference<'_>) {
    let rule = by.rule;
    let how = format!(
        "{} of {} (host {}) matches {} {} ({}:{}){}",
        by.kind.as_str(),
        by.uri,
        by.host,
        rule.severity,
        rule.domain,
        rule.source,
        rule.line,
        comment(rule.public_comment.as_deref())
    );
    if stop.dry_run {
        let _ = writeln!(out, "decision: forward\nreason: {}", stop.reason);
        let _ = writeln!(
            out,
            "dry run: would drop (202) ({}) by {} ({}:{})\nlaundered (dry run): {how}",
            stop.reason, rule.domain, rule.source, rule.line
        );
    } else {
        let _ = writeln!(out, "decision: drop (202)\nreason: {}", stop.reason);
        let _ = writeln!(
            out,
            "deciding rule: {} ({}:{})\nlaundered: {how}",
            rule.domain, rule.source, rule.line
        );
    }
}

/// The friendly-federator side of an activity: the laundering kinds that drop, and every
/// reference to a limited or suspended domain (what the proxy counts as evidence).
pub(super) fn write_references(
    out: &mut String,
    rules: &Snapshot,
    friendly: &FriendlyFederatorsConfig,
    found: &[Reference<'_>],
) {
    let dropping = federators::dropping(friendly, rules.friendly_federators());
    let dropping = if dropping.is_empty() {
        "none".to_string()
    } else {
        dropping.join(", ")
    };
    let _ = writeln!(
        out,
        "\nfriendly federators: laundering kinds that drop: {dropping}"
    );
    if found.is_empty() {
        let _ = writeln!(out, "  no reference to a limited or suspended domain");
    }
    for r in found {
        let _ = writeln!(
            out,
            "  {} {} -> {} {} ({}:{})",
            r.kind.as_str(),
            r.uri,
            r.rule.severity,
            r.rule.domain,
            r.rule.source,
            r.rule.line
        );
    }
}

/// The merge settings that change what rules mean, when not the defaults.
pub(super) fn write_policy(out: &mut String, rules: &Snapshot) {
    if rules.mode() == PolicyMode::Allowlist {
        let _ = writeln!(
            out,
            "mode: allowlist (only domains an allow entry names pass, not their sub-domains; blocks still apply)"
        );
    }
    if rules.subscription_threshold() > 1 {
        let _ = writeln!(
            out,
            "subscription_threshold: {} (a subscribed rule applies only when that many subscribed \
             sources list the domain)",
            rules.subscription_threshold()
        );
    }
}

/// `forward`, `reject (403)` or `drop (202)`.
pub fn outcome(decision: &Decision) -> &'static str {
    match decision {
        Decision::Forward { .. }
        | Decision::WouldStop { .. }
        | Decision::WouldSuspendActor { .. } => "forward",
        Decision::Reject { .. } | Decision::NotAllowed { .. } | Decision::ActorSuspended { .. } => {
            "reject (403)"
        }
        Decision::Drop { .. } => "drop (202)",
    }
}

/// The decision's reason label, except that a forward under a silence rule says so: the
/// metric label is `allowed` (the proxy let it through), but a reader asking about the domain
/// needs to see that Mastodon limits it.
fn explained_reason(decision: &Decision) -> &'static str {
    match decision {
        Decision::Forward { rule: Some(rule) }
            if rule.severity == crate::policy::Severity::Silence =>
        {
            "silenced (forwarded; Mastodon limits it)"
        }
        _ => decision.reason(),
    }
}

pub(super) fn write_decision(out: &mut String, decision: &Decision) {
    let _ = writeln!(out, "decision: {}", outcome(decision));
    let _ = writeln!(out, "reason: {}", explained_reason(decision));
    if let Decision::NotAllowed { host, .. } = decision {
        let _ = writeln!(out, "not allowed: no allow entry names {host}");
        return;
    }
    match (decision.would(), decision.origin()) {
        (Some(would), Some((rule, source, line))) => {
            let _ = writeln!(
                out,
                "dry run: would {} ({}) by {rule} ({source}:{line})",
                outcome(&would),
                would.reason(),
            );
        }
        (None, Some((rule, source, line))) => {
            // A forward is not decided by its rule (silence, noop): it only names it.
            let label = if decision.forwards() {
                "rule in force"
            } else {
                "deciding rule"
            };
            let _ = writeln!(out, "{label}: {rule} ({source}:{line})");
        }
        _ => {}
    }
}

pub(super) fn write_report_outcome(out: &mut String, decision: &Decision) {
    let line = match decision {
        Decision::Drop { rule } => format!(
            "dropped: the reporter's domain has reject_reports ({} at {}:{})",
            rule.domain, rule.source, rule.line
        ),
        Decision::Reject { .. } => "refused with the whole delivery".to_string(),
        Decision::WouldStop { party: None, .. } => {
            "forwarded; a dry-run reject_reports rule would drop it".to_string()
        }
        _ => "forwarded: no reject_reports rule covers the reporter's domain".to_string(),
    };
    let _ = writeln!(out, "report (Flag): {line}");
}

//! The rule tables of a report: per host, every rule that matched and why the losers lost.

use crate::policy::{
    digest_hex, domain_digest, host, DomainEntry, DomainRule, PolicyMode, Snapshot,
};
use crate::rules::{Listed, Standing};
use std::fmt::Write;

/// Everything about one host: allow entry, exception, the block rules, and held-back rules.
pub(super) fn write_host(
    out: &mut String,
    rules: &Snapshot,
    listed: &[Listed],
    host: &str,
    label: &str,
) {
    match (rules.allow_for(host), rules.mode()) {
        (Some(entry), mode) => {
            let note = if mode == PolicyMode::Allowlist {
                ""
            } else {
                " (informational: mode is blocklist)"
            };
            let _ = writeln!(
                out,
                "\nallowed: {label}{host} by {}{note}",
                entry_text(entry)
            );
        }
        (None, PolicyMode::Allowlist) => {
            let _ = writeln!(out, "\nnot allowed: no allow entry names {label}{host}");
        }
        (None, PolicyMode::Blocklist) => {}
    }
    if let Some(entry) = rules.exception_for(host) {
        let _ = writeln!(
            out,
            "\nexception: {} (block rules on it and its parent domains do not apply here; \
             rules on longer suffixes still do)",
            entry_text(entry)
        );
    }
    write_rules(out, rules, listed, host, label);
    let withheld = rules.withheld_rules(host);
    if !withheld.is_empty() {
        let _ = writeln!(
            out,
            "\nheld back by subscription_threshold = {} (listed by too few subscribed sources):",
            rules.subscription_threshold()
        );
        for rule in withheld {
            let _ = writeln!(
                out,
                "  {} {} ({}:{}){}",
                rule.domain,
                rule.severity,
                rule.source,
                rule.line,
                comment(rule.public_comment.as_deref())
            );
        }
    }
}

/// `domain (file:line) "comment"`.
fn entry_text(entry: &DomainEntry) -> String {
    format!(
        "{} ({}:{}){}",
        entry.domain,
        entry.source,
        entry.line,
        comment(entry.comment.as_deref())
    )
}

pub(super) fn comment(text: Option<&str>) -> String {
    text.map_or_else(String::new, |c| format!(" {c:?}"))
}

/// The actor rule matching account `uri`, if any.
pub(super) fn write_actor(out: &mut String, rules: &Snapshot, uri: &str, label: &str) {
    match rules.actor_rule_for(uri) {
        Some(rule) => {
            let dry = if rule.dry_run { " [dry run]" } else { "" };
            let _ = writeln!(
                out,
                "\nactor rule matching {label} {uri}: suspend {} ({}:{}){}{dry}",
                rule.actor,
                rule.source,
                rule.line,
                comment(rule.comment.as_deref())
            );
        }
        None => {
            let _ = writeln!(out, "\nno actor rule matches {label} {uri}");
        }
    }
}

/// The table of every rule matching `host`, longest suffix first: the snapshot's (one per
/// domain and tier), each followed by the rules of `listed` on its suffix that lost, with why
/// in a NOTE column (only printed when some rule lost).
fn write_rules(out: &mut String, rules: &Snapshot, listed: &[Listed], host: &str, label: &str) {
    let matching: Vec<&DomainRule> = rules.matching_rules(host).collect();
    let suffixes: Vec<&str> = host::suffixes(host).collect();
    let rank = |rule: &DomainRule| {
        suffixes.iter().position(|s| match rule.digest.as_deref() {
            Some(d) => domain_digest(s) == *d,
            None => *rule.domain == **s,
        })
    };
    // The snapshot's rule of `rule`'s tier for its domain, if any.
    let tier_winner = |rule: &DomainRule| {
        matching.iter().copied().find(|w| {
            w.dry_run == rule.dry_run && w.domain == rule.domain && w.digest == rule.digest
        })
    };
    let losers: Vec<(&DomainRule, String)> = listed
        .iter()
        .filter(|l| rank(&l.rule).is_some())
        .filter_map(|l| {
            let winner = tier_winner(&l.rule);
            if winner.is_some_and(|w| w.source == l.rule.source) {
                return None;
            }
            let note = match (l.standing, winner) {
                (Standing::BelowThreshold, _) => "below threshold".to_string(),
                (Standing::LowerPriority, _) => "lower priority".to_string(),
                (Standing::Competes, Some(w)) if w.is_harsher_than(&l.rule) => {
                    format!("shadowed: harsher rule ({}:{})", w.source, w.line)
                }
                (Standing::Competes, Some(w)) => {
                    format!("shadowed: earlier rule ({}:{})", w.source, w.line)
                }
                (Standing::Competes, None) => "shadowed".to_string(),
            };
            Some((&l.rule, note))
        })
        .collect();
    if matching.is_empty() && losers.is_empty() {
        let _ = writeln!(out, "\nno rule matches {label}{host}");
        return;
    }
    let in_force = rules.rule_for(host);
    let with_dry_run = rules.rule_for_including_dry_run(host);
    let exception = rules.exception_for(host);
    let _ = writeln!(
        out,
        "\nrules matching {label}{host} (longest suffix first; * in force, ~ would be in force \
         with dry-run sources enforced, x shadowed by the exception):"
    );
    let row = |rule: &DomainRule, winner: bool, note: String| {
        let mark = if winner && in_force.is_some_and(|r| std::ptr::eq(r, rule)) {
            "*"
        } else if winner && rule.dry_run && with_dry_run.is_some_and(|r| std::ptr::eq(r, rule)) {
            "~"
        } else if exception.is_some_and(|e| shadows(e, rule)) {
            "x"
        } else {
            ""
        };
        let domain = match rule.digest.as_deref() {
            Some(d) if !rule.domain.starts_with("sha256:") => {
                format!("{} (sha256:{})", rule.domain, digest_hex(d))
            }
            _ => rule.domain.to_string(),
        };
        let mut flags = Vec::new();
        if rule.reject_media {
            flags.push("reject_media");
        }
        if rule.reject_reports {
            flags.push("reject_reports");
        }
        let cells = [
            mark.to_string(),
            domain,
            rule.severity.as_str().to_string(),
            if flags.is_empty() {
                "-".to_string()
            } else {
                flags.join(",")
            },
            if rule.dry_run { "yes" } else { "no" }.to_string(),
            format!("{}:{}", rule.source, rule.line),
            rule.public_comment
                .as_deref()
                .map_or_else(|| "-".to_string(), |c| format!("{c:?}")),
            note,
        ];
        (rank(rule), cells)
    };
    let mut rows: Vec<(Option<usize>, [String; 8])> = matching
        .iter()
        .map(|rule| row(rule, true, String::new()))
        .chain(
            losers
                .into_iter()
                .map(|(rule, note)| row(rule, false, note)),
        )
        .collect();
    // Stable: each suffix's losers follow its snapshot rules, in load order.
    rows.sort_by_key(|(rank, _)| *rank);
    let noted = rows.iter().any(|(_, cells)| !cells[7].is_empty());
    let header = [
        "", "DOMAIN", "SEVERITY", "FLAGS", "DRY_RUN", "SOURCE", "COMMENT", "NOTE",
    ]
    .map(str::to_string);
    // Without a NOTE the table is as it always was.
    let columns = if noted { 8 } else { 7 };
    let mut widths = [0usize; 8];
    for cells in std::iter::once(&header).chain(rows.iter().map(|(_, c)| c)) {
        for (w, cell) in widths.iter_mut().zip(&cells[..columns]) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for cells in std::iter::once(&header).chain(rows.iter().map(|(_, c)| c)) {
        let mut line = String::from(" ");
        for (i, (cell, w)) in cells[..columns].iter().zip(widths).enumerate() {
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// Whether exception `e` (the longest one over the host) covers `rule`'s domain: the rule is
/// on the exception's domain or a parent of it. A digest rule's real name is unknown, so it is
/// judged by the exception's own digest or its parents'.
fn shadows(e: &DomainEntry, rule: &DomainRule) -> bool {
    host::suffixes(&e.domain).any(|c| match rule.digest.as_deref() {
        Some(d) => domain_digest(c) == *d,
        None => *rule.domain == *c,
    })
}

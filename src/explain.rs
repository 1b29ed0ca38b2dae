//! `inboxguard explain`: what the loaded rules decide for a domain, an actor or an activity
//! file, and every rule that matched, with where it is written. Read-only and offline: it never
//! fetches anything, so it answers "why was this rejected?" from the rules alone.

use crate::activity::{Facts as ActivityFacts, FactsError};
use crate::policy::{digest_hex, host, Decision, DomainRule, Facts, Snapshot};
use std::fmt::Write;
use std::io::Read;
use std::path::Path;

/// Larger activity files are refused: the proxy itself refuses bodies far smaller.
pub const MAX_ACTIVITY_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What `explain` was asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A bare domain, normalised.
    Domain(String),
    /// An actor URI (`https://…`, `acct:user@host`, `@user@host`) and its normalised host.
    Actor { uri: String, host: String },
    /// An activity read from a file.
    Activity { path: String, facts: ActivityFacts },
}

/// Why the argument could not be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The argument names an existing path that could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The activity file is over `MAX_ACTIVITY_FILE_BYTES`.
    #[error("{path}: file is larger than {MAX_ACTIVITY_FILE_BYTES} bytes")]
    TooLarge { path: String },
    /// The activity file is not a JSON object.
    #[error("{path}: {source}")]
    Json { path: String, source: FactsError },
    /// The activity has no `actor`, or its host is not valid.
    #[error("{path}: the activity names no actor with a valid host")]
    NoActor { path: String },
    /// Neither an existing file, nor an actor URI with a valid host, nor a valid domain.
    #[error("{text:?} is not a domain, an actor URI or an activity file")]
    Unrecognised { text: String },
}

impl Subject {
    /// An existing path is an activity file; anything with `://` or `@` is an actor URI;
    /// anything else must be a domain.
    pub fn parse(arg: &str) -> Result<Subject, ExplainError> {
        let path = Path::new(arg);
        if path.is_file() {
            let label = path.display().to_string();
            let bytes = read_bounded(path).map_err(|e| match e {
                Bounded::Io(source) => ExplainError::Read {
                    path: label.clone(),
                    source,
                },
                Bounded::TooLarge => ExplainError::TooLarge {
                    path: label.clone(),
                },
            })?;
            let facts = ActivityFacts::parse(&bytes).map_err(|source| ExplainError::Json {
                path: label.clone(),
                source,
            })?;
            if facts.actor.as_deref().and_then(host::of_uri).is_none() {
                return Err(ExplainError::NoActor { path: label });
            }
            return Ok(Subject::Activity { path: label, facts });
        }
        let unrecognised = || ExplainError::Unrecognised {
            text: arg.to_string(),
        };
        if arg.contains("://") || arg.contains('@') {
            let host = host::of_uri(arg).ok_or_else(unrecognised)?;
            return Ok(Subject::Actor {
                uri: arg.trim().to_string(),
                host,
            });
        }
        host::normalize(arg)
            .map(Subject::Domain)
            .ok_or_else(unrecognised)
    }
}

enum Bounded {
    Io(std::io::Error),
    TooLarge,
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, Bounded> {
    let file = std::fs::File::open(path).map_err(Bounded::Io)?;
    let mut bytes = Vec::new();
    file.take(MAX_ACTIVITY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(Bounded::Io)?;
    if bytes.len() as u64 > MAX_ACTIVITY_FILE_BYTES {
        return Err(Bounded::TooLarge);
    }
    Ok(bytes)
}

/// The full report for `subject` under `rules`: the decision first, then the matching rules
/// per host. Stable: the same rules and subject always print the same text.
pub fn report(rules: &Snapshot, subject: &Subject) -> String {
    let mut out = String::new();
    match subject {
        Subject::Domain(domain) => {
            let _ = writeln!(out, "subject: domain {domain}");
            let decision = rules.decide(&Facts {
                key_host: domain,
                actor_host: Some(domain),
                activity_type: None,
            });
            write_decision(&mut out, &decision);
            write_rules(&mut out, rules, domain, "");
        }
        Subject::Actor { uri, host } => {
            let _ = writeln!(out, "subject: actor {uri} (host {host})");
            let decision = rules.decide(&Facts {
                key_host: host,
                actor_host: Some(host),
                activity_type: None,
            });
            write_decision(&mut out, &decision);
            write_rules(&mut out, rules, host, "actor host ");
        }
        Subject::Activity { path, facts } => {
            let actor = facts.actor.as_deref().unwrap_or("-");
            // `Subject::parse` guarantees an actor host; an empty one matches nothing.
            let actor_host = facts
                .actor
                .as_deref()
                .and_then(host::of_uri)
                .unwrap_or_default();
            let kind = facts.kind.as_deref();
            let _ = writeln!(
                out,
                "subject: activity {path} (type {}, actor {actor})",
                kind.unwrap_or("-")
            );
            let _ = writeln!(
                out,
                "assuming: signed by a key on the actor's host ({actor_host})"
            );
            let decision = rules.decide(&Facts {
                key_host: &actor_host,
                actor_host: Some(&actor_host),
                activity_type: kind,
            });
            write_decision(&mut out, &decision);
            if kind == Some("Flag") {
                write_report_outcome(&mut out, &decision);
            }
            write_rules(&mut out, rules, &actor_host, "actor host ");
            let author = facts
                .object
                .as_ref()
                .and_then(|o| o.attributed_to.as_deref());
            if let Some(author) = author {
                match host::of_uri(author) {
                    Some(author_host) => {
                        let _ = writeln!(
                            out,
                            "\nobject attributedTo: {author} (informational: not enforced yet)"
                        );
                        let would = rules.decide(&Facts {
                            key_host: &author_host,
                            actor_host: Some(&author_host),
                            activity_type: None,
                        });
                        let _ =
                            writeln!(out, "  as a sender this host would be: {}", outcome(&would));
                        write_rules(&mut out, rules, &author_host, "attributedTo host ");
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            "\nobject attributedTo: {author} (no valid host; informational)"
                        );
                    }
                }
            }
        }
    }
    out
}

/// `forward`, `reject (403)` or `drop (202)`.
pub fn outcome(decision: &Decision) -> &'static str {
    match decision {
        Decision::Forward { .. } | Decision::WouldStop { .. } => "forward",
        Decision::Reject { .. } => "reject (403)",
        Decision::Drop { .. } => "drop (202)",
    }
}

fn write_decision(out: &mut String, decision: &Decision) {
    let _ = writeln!(out, "decision: {}", outcome(decision));
    let _ = writeln!(out, "reason: {}", decision.reason());
    match (decision, decision.would()) {
        (Decision::WouldStop { rule, .. }, Some(would)) => {
            let _ = writeln!(
                out,
                "dry run: would {} ({}) by {} ({}:{})",
                outcome(&would),
                would.reason(),
                rule.domain,
                rule.source,
                rule.line
            );
        }
        _ => {
            if let Some(rule) = decision.rule() {
                // A forward is not decided by its rule (silence, noop): it only names it.
                let label = if decision.forwards() {
                    "rule in force"
                } else {
                    "deciding rule"
                };
                let _ = writeln!(
                    out,
                    "{label}: {} ({}:{})",
                    rule.domain, rule.source, rule.line
                );
            }
        }
    }
}

fn write_report_outcome(out: &mut String, decision: &Decision) {
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

/// The table of every rule matching `host`, longest suffix first.
fn write_rules(out: &mut String, rules: &Snapshot, host: &str, label: &str) {
    let matching: Vec<&DomainRule> = rules.matching_rules(host).collect();
    if matching.is_empty() {
        let _ = writeln!(out, "\nno rule matches {label}{host}");
        return;
    }
    let in_force = rules.rule_for(host);
    let with_dry_run = rules.rule_for_including_dry_run(host);
    let _ = writeln!(
        out,
        "\nrules matching {label}{host} (longest suffix first; * in force, ~ would be in force \
         with dry-run sources enforced):"
    );
    let rows: Vec<[String; 7]> = matching
        .iter()
        .map(|rule| {
            let mark = if in_force.is_some_and(|r| std::ptr::eq(r, *rule)) {
                "*"
            } else if rule.dry_run && with_dry_run.is_some_and(|r| std::ptr::eq(r, *rule)) {
                "~"
            } else {
                ""
            };
            let domain = match &rule.digest {
                Some(d) if !rule.domain.starts_with("sha256:") => {
                    format!("{} (sha256:{})", rule.domain, digest_hex(d))
                }
                _ => rule.domain.clone(),
            };
            let mut flags = Vec::new();
            if rule.reject_media {
                flags.push("reject_media");
            }
            if rule.reject_reports {
                flags.push("reject_reports");
            }
            [
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
            ]
        })
        .collect();
    let header = [
        "", "DOMAIN", "SEVERITY", "FLAGS", "DRY_RUN", "SOURCE", "COMMENT",
    ]
    .map(str::to_string);
    let mut widths = [0usize; 7];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::from(" ");
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{domain_digest, Severity};
    use std::sync::Arc;

    fn rule(domain: &str, severity: Severity, line: usize) -> DomainRule {
        DomainRule {
            domain: domain.into(),
            digest: None,
            severity,
            reject_media: false,
            reject_reports: false,
            public_comment: None,
            dry_run: false,
            source: Arc::from("rules.csv"),
            line,
        }
    }

    #[test]
    fn subjects() {
        assert_eq!(
            Subject::parse("Bad.Example.").expect("domain"),
            Subject::Domain("bad.example".into())
        );
        assert_eq!(
            Subject::parse("@mallory@Bad.Example").expect("acct"),
            Subject::Actor {
                uri: "@mallory@Bad.Example".into(),
                host: "bad.example".into()
            }
        );
        assert!(matches!(
            Subject::parse("https://x.bad.example/users/m").expect("uri"),
            Subject::Actor { host, .. } if host == "x.bad.example"
        ));
        assert!(matches!(
            Subject::parse("not a domain"),
            Err(ExplainError::Unrecognised { .. })
        ));
    }

    #[test]
    fn report_marks_the_winner_and_the_dry_run_candidate() {
        let mut dry = rule("deep.bad.example", Severity::Suspend, 7);
        dry.dry_run = true;
        let mut hashed = rule("ba***.example", Severity::Silence, 9);
        hashed.digest = Some(domain_digest("bad.example"));
        let rules = Snapshot::from_rules([rule("bad.example", Severity::Noop, 3), dry, hashed]);
        let text = report(&rules, &Subject::Domain("x.deep.bad.example".into()));
        assert!(text.contains("decision: forward\n"), "{text}");
        assert!(text.contains("dry run: would reject (403) (suspended_key_host) by deep.bad.example (rules.csv:7)"), "{text}");
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("rules.csv:"))
            .filter(|l| !l.starts_with("dry run"))
            .collect();
        assert_eq!(rows.len(), 3, "{text}");
        assert!(rows[0].starts_with(" ~  deep.bad.example"), "{text}");
        // On one suffix, the harsher of name and digest is in force.
        assert!(
            rows[1].contains("bad.example") && rows[1].contains("noop"),
            "{text}"
        );
        assert!(rows[2].starts_with(" *  ba***.example (sha256:"), "{text}");
    }
}

//! `inboxguard explain`: what the loaded rules decide for a domain, an actor or an activity
//! file, and every rule that matched, with where it is written. Read-only and offline: it never
//! fetches anything, so it answers "why was this rejected?" from the rules alone. An activity
//! goes through the domain and actor rules and then the friendly-federator laundering check,
//! the same code the proxy runs (`federators::check`).

use crate::activity::{Facts as ActivityFacts, FactsError};
use crate::config::{Config, FriendlyFederatorsConfig};
use crate::federators::{self, EvidenceError, Reference, Stop};
use crate::policy::DomainDigest;
use crate::policy::{
    digest_hex, domain_digest, host, ActorPattern, Decision, DomainEntry, DomainRule, Facts,
    PolicyMode, Snapshot,
};
use crate::rules::{self, Listed, LoadError, SourceSummary, Standing};
use crate::subscriptions::{self, CachedSources};
use std::collections::HashSet;
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
    /// The hosts whose rule tables `report` prints: the domain, the actor's host, and for an
    /// activity the object author's host.
    pub fn hosts(&self) -> Vec<String> {
        match self {
            Subject::Domain(domain) => vec![domain.clone()],
            Subject::Actor { host, .. } => vec![host.clone()],
            Subject::Activity { facts, .. } => [
                facts.actor.as_deref(),
                facts
                    .object
                    .as_ref()
                    .and_then(|o| o.attributed_to.as_deref()),
            ]
            .into_iter()
            .flatten()
            .filter_map(host::of_uri)
            .collect(),
        }
    }
}

impl Subject {
    /// An existing path is an activity file; anything with `://` or `@` is an actor URI;
    /// anything else must be a domain.
    pub fn parse(arg: &str) -> Result<Subject, ExplainError> {
        let path = Path::new(arg);
        if is_activity_file(arg) {
            let label = path.display().to_string();
            let bytes = read_activity_file(arg)?;
            return Subject::activity(label, &bytes);
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

impl Subject {
    /// The activity `bytes` (read from `label`), for the explain that asks the running proxy.
    pub fn activity(label: String, bytes: &[u8]) -> Result<Subject, ExplainError> {
        let facts = ActivityFacts::parse(bytes).map_err(|source| ExplainError::Json {
            path: label.clone(),
            source,
        })?;
        if facts.actor.as_deref().and_then(host::of_uri).is_none() {
            return Err(ExplainError::NoActor { path: label });
        }
        Ok(Subject::Activity { path: label, facts })
    }
}

/// Whether `Subject::parse` reads `arg` as an activity file.
pub fn is_activity_file(arg: &str) -> bool {
    Path::new(arg).is_file() || names_a_file(arg)
}

/// The activity file `arg`, bounded by `MAX_ACTIVITY_FILE_BYTES`.
pub fn read_activity_file(arg: &str) -> Result<Vec<u8>, ExplainError> {
    let path = Path::new(arg);
    let label = path.display().to_string();
    read_bounded(path).map_err(|e| match e {
        Bounded::Io(source) => ExplainError::Read {
            path: label.clone(),
            source,
        },
        Bounded::TooLarge => ExplainError::TooLarge { path: label },
    })
}

/// The report for `subject` from the running proxy's rules: the live snapshot decides, and
/// the merge of each source's copy in force lists the rules that lost (blocking: call from a
/// blocking thread). The same text as `explain --config` for the same rules.
pub fn report_live(
    rules: &rules::Rules,
    friendly: &FriendlyFederatorsConfig,
    subject: &Subject,
) -> Result<String, LoadError> {
    let wanted = on_hosts(&subject.hosts());
    let (_, _, listed) = rules.listing(&wanted)?;
    let snapshot = rules.current().load();
    Ok(report(&snapshot, &listed, friendly, subject))
}

/// A `.json` name or a relative or absolute path (a `/` but no scheme) is meant as an activity
/// file even when it does not exist: reading it gives the real error instead of explaining
/// `missing.json` as a domain.
fn names_a_file(arg: &str) -> bool {
    let arg = arg.trim();
    arg.to_ascii_lowercase().ends_with(".json") || (arg.contains('/') && !arg.contains("://"))
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

/// The rules as `serve` starts with them, loaded offline for `check` and `explain`.
pub struct Offline {
    pub snapshot: Snapshot,
    pub summaries: Vec<SourceSummary>,
    /// Every block rule, of every source, on a suffix of the hosts asked for (by name or
    /// digest), with where it stood in the merge: the snapshot keeps only the winner per
    /// domain, and `report` shows the rest too.
    pub listed: Vec<Listed>,
    /// The remote sources' disk-cached copies (and which have none).
    pub cached: CachedSources,
    /// Why the friendly-federator escalations could not be read from the evidence file, when
    /// one is configured and unreadable.
    pub escalations_error: Option<EvidenceError>,
}

/// Loads what `serve` would put in force before its first fetch, without the network and
/// without writing anything: the local files, the remote sources' disk-cached copies, and the
/// escalated friendly federators from the evidence file as the generated source
/// `friendly-federators` (under the settings in force, so a rules file's
/// `[friendly_federators]` table counts). Memory sources go in label order, as in `Rules`.
/// `Offline::listed` holds the rules on `hosts` (none for `check`).
pub fn load_offline(config: &Config, hosts: &[String]) -> Result<Offline, LoadError> {
    let wanted = on_hosts(hosts);
    let cached = subscriptions::load_cached(config);
    let mut memory = cached.sources.clone();
    memory.sort_by(|a, b| a.label.cmp(&b.label));
    let (snapshot, summaries, listed) =
        rules::load_listing(&config.blocklists, &memory, &config.policy, &wanted)?;
    let settings =
        federators::effective(&config.friendly_federators, snapshot.friendly_federators());
    let escalated = match federators::escalated_from_file(&settings) {
        Ok(source) => source,
        Err(EvidenceError::NotConfigured | EvidenceError::Missing { .. }) => None,
        Err(e) => {
            return Ok(Offline {
                snapshot,
                summaries,
                listed,
                cached,
                escalations_error: Some(e),
            })
        }
    };
    let Some(escalated) = escalated else {
        return Ok(Offline {
            snapshot,
            summaries,
            listed,
            cached,
            escalations_error: None,
        });
    };
    memory.push(escalated);
    memory.sort_by(|a, b| a.label.cmp(&b.label));
    let (snapshot, summaries, listed) =
        rules::load_listing(&config.blocklists, &memory, &config.policy, &wanted)?;
    Ok(Offline {
        snapshot,
        summaries,
        listed,
        cached,
        escalations_error: None,
    })
}

/// Whether a rule is on a suffix of one of `hosts` (as the proxy walks them: an address has
/// none but itself), by name or by digest.
fn on_hosts(hosts: &[String]) -> impl Fn(&DomainRule) -> bool {
    let names: HashSet<String> = hosts
        .iter()
        .flat_map(|h| host::suffixes(h))
        .map(str::to_string)
        .collect();
    let digests: HashSet<DomainDigest> = names.iter().map(|n| domain_digest(n)).collect();
    move |rule| match rule.digest.as_deref() {
        Some(d) => digests.contains(d),
        None => names.contains(&*rule.domain),
    }
}

/// The full report for `subject` under `rules` and the config's `[friendly_federators]`: the
/// decision first, then the matching rules per host and per account: those in the snapshot,
/// and those of `listed` that lost in the merge. Stable: the same rules and subject always
/// print the same text.
pub fn report(
    rules: &Snapshot,
    listed: &[Listed],
    friendly: &FriendlyFederatorsConfig,
    subject: &Subject,
) -> String {
    let mut out = String::new();
    match subject {
        Subject::Domain(domain) => {
            let _ = writeln!(out, "subject: domain {domain}");
            write_policy(&mut out, rules);
            let decision = rules.decide(&Facts {
                key_host: domain,
                actor_host: Some(domain),
                ..Facts::default()
            });
            write_decision(&mut out, &decision);
            write_host(&mut out, rules, listed, domain, "");
        }
        Subject::Actor { uri, host } => {
            let _ = writeln!(out, "subject: actor {uri} (host {host})");
            write_policy(&mut out, rules);
            let actor = actor_uri(uri);
            if actor != *uri {
                let _ = writeln!(
                    out,
                    "assuming: the account's URI is {actor} (a handle cannot be resolved offline)"
                );
            }
            let decision = rules.decide(&Facts {
                key_host: host,
                actor_host: Some(host),
                actor: Some(&actor),
                ..Facts::default()
            });
            write_decision(&mut out, &decision);
            write_host(&mut out, rules, listed, host, "actor host ");
            write_actor(&mut out, rules, &actor, "actor");
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
            write_policy(&mut out, rules);
            let _ = writeln!(
                out,
                "assuming: signed by a key on the actor's host ({actor_host})"
            );
            let author = facts
                .object
                .as_ref()
                .and_then(|o| o.attributed_to.as_deref());
            let decision = rules.decide(&Facts {
                key_host: &actor_host,
                actor_host: Some(&actor_host),
                activity_type: kind,
                actor: facts.actor.as_deref(),
                attributed_to: author,
            });
            // As the proxy: the laundering check runs only on what the policy forwards.
            let laundering = decision
                .forwards()
                .then(|| federators::check(rules, facts, &actor_host, Some(&actor_host), friendly));
            match laundering.as_ref().and_then(|l| l.stop.as_ref()) {
                // A dry-run laundering stop is reported only when no dry-run policy rule
                // already is (the proxy counts the first reason, too).
                Some((stop, by)) if !stop.dry_run || decision.would().is_none() => {
                    write_laundered(&mut out, *stop, by);
                }
                _ => write_decision(&mut out, &decision),
            }
            if kind == Some("Flag") {
                write_report_outcome(&mut out, &decision);
            }
            if let Some(laundering) = &laundering {
                write_references(&mut out, rules, friendly, &laundering.found);
            }
            write_host(&mut out, rules, listed, &actor_host, "actor host ");
            write_actor(&mut out, rules, actor, "actor");
            if let Some(author) = author {
                let _ = writeln!(out, "\nobject attributedTo: {author}");
                write_actor(&mut out, rules, author, "attributedTo");
                match host::of_uri(author) {
                    Some(author_host) => {
                        let _ = writeln!(
                            out,
                            "\nthe author's domain (domain rules decide on the sender; content \
                             from a suspended author's domain is what the friendly-federator \
                             check above drops):"
                        );
                        let would = rules.decide(&Facts {
                            key_host: &author_host,
                            actor_host: Some(&author_host),
                            ..Facts::default()
                        });
                        let _ =
                            writeln!(out, "  as a sender this host would be: {}", outcome(&would));
                        write_host(&mut out, rules, listed, &author_host, "attributedTo host ");
                    }
                    None => {
                        let _ = writeln!(out, "  (no valid host)");
                    }
                }
            }
        }
    }
    out
}

/// The decision when the laundering check stops the activity: which reference matched which
/// rule.
fn write_laundered(out: &mut String, stop: Stop, by: &Reference<'_>) {
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
fn write_references(
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

/// An actor URI to match actor rules with: the subject itself, or for a handle
/// (`@user@host`, `acct:user@host`) the Mastodon-shaped `https://host/users/user`.
fn actor_uri(subject: &str) -> String {
    match ActorPattern::parse(subject) {
        Some(ActorPattern::Handle(key)) => match key.split_once('@') {
            Some((user, host)) => format!("https://{host}/users/{user}"),
            None => subject.to_string(),
        },
        _ => subject.to_string(),
    }
}

/// The merge settings that change what rules mean, when not the defaults.
fn write_policy(out: &mut String, rules: &Snapshot) {
    if rules.mode() == PolicyMode::Allowlist {
        let _ = writeln!(
            out,
            "mode: allowlist (only domains covered by an allow entry pass; blocks still apply)"
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

fn write_decision(out: &mut String, decision: &Decision) {
    let _ = writeln!(out, "decision: {}", outcome(decision));
    let _ = writeln!(out, "reason: {}", explained_reason(decision));
    if let Decision::NotAllowed { host, .. } = decision {
        let _ = writeln!(out, "not allowed: no allow entry covers {host}");
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

/// Everything about one host: allow entry, exception, the block rules, and held-back rules.
fn write_host(out: &mut String, rules: &Snapshot, listed: &[Listed], host: &str, label: &str) {
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
            let _ = writeln!(out, "\nnot allowed: no allow entry covers {label}{host}");
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

fn comment(text: Option<&str>) -> String {
    text.map_or_else(String::new, |c| format!(" {c:?}"))
}

/// The actor rule matching account `uri`, if any.
fn write_actor(out: &mut String, rules: &Snapshot, uri: &str, label: &str) {
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
        hashed.digest = Some(Box::new(domain_digest("bad.example")));
        let rules = Snapshot::from_rules([rule("bad.example", Severity::Noop, 3), dry, hashed]);
        let text = report(
            &rules,
            &[],
            &FriendlyFederatorsConfig::default(),
            &Subject::Domain("x.deep.bad.example".into()),
        );
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

    #[test]
    fn report_lists_rules_held_back_by_the_threshold() {
        let mut held = rule("bad.example", Severity::Suspend, 4);
        held.source = Arc::from("https://lists.example/blocks.csv");
        held.public_comment = Some("spam".into());
        let mut b = Snapshot::builder(crate::policy::PolicyMode::Blocklist, 3);
        b.withhold(held);
        let rules = b.build();
        let text = report(
            &rules,
            &[],
            &FriendlyFederatorsConfig::default(),
            &Subject::Domain("x.bad.example".into()),
        );
        assert!(text.contains("subscription_threshold: 3 ("), "{text}");
        assert!(text.contains("decision: forward\n"), "{text}");
        assert!(
            text.contains(
                "held back by subscription_threshold = 3 (listed by too few subscribed sources):\n  \
                 bad.example suspend (https://lists.example/blocks.csv:4) \"spam\"\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn report_says_why_each_listed_rule_lost() {
        use crate::config::{BlocklistFormat, PolicyConfig};
        use crate::rules::MemorySource;
        let source = |label: &str, text: &str, subscribed: bool, priority: i32| {
            let parsed = crate::policy::sources::parse_bytes(
                text.as_bytes(),
                Arc::from(label),
                BlocklistFormat::Auto,
            )
            .expect("parses");
            MemorySource {
                subscribed,
                priority,
                ..MemorySource::new(label, Arc::new(parsed))
            }
        };
        let memory = [
            source("https://a.example/l", "bad.example\n", true, 0),
            source("https://b.example/l", "bad.example # again\n", true, 0),
            source("local-api", "bad.example\n", false, -1),
            source("https://d.example/l", "\nx.bad.example\n", true, 0),
        ];
        let policy = PolicyConfig {
            subscription_threshold: 2,
            ..PolicyConfig::default()
        };
        let subject = Subject::Domain("x.bad.example".into());
        let (rules, _, listed) =
            rules::load_listing(&[], &memory, &policy, on_hosts(&subject.hosts())).expect("loads");
        let text = report(
            &rules,
            &listed,
            &FriendlyFederatorsConfig::default(),
            &subject,
        );
        let rows: Vec<&str> = text
            .lines()
            // Table rows, not the held-back section's lines (indented by two).
            .filter(|l| (l.starts_with(" *  ") || l.starts_with("    ")) && !l.contains("DOMAIN"))
            .collect();
        assert_eq!(rows.len(), 4, "{text}");
        assert!(
            rows[0].starts_with("    x.bad.example")
                && rows[0].contains("https://d.example/l:2")
                && rows[0].ends_with("below threshold"),
            "{text}"
        );
        assert!(rows[1].starts_with(" *  bad.example"), "{text}");
        assert!(
            rows[2].contains("\"again\"")
                && rows[2].ends_with("shadowed: earlier rule (https://a.example/l:1)"),
            "{text}"
        );
        assert!(
            rows[3].contains("local-api:1") && rows[3].ends_with("lower priority"),
            "{text}"
        );
    }

    #[test]
    fn explain_and_the_proxy_agree_on_an_ip_literal() {
        // An address is matched exactly: `2.1` is not a parent of `192.0.2.1` for the proxy,
        // so explain must neither load nor list a rule on it.
        let host = "192.0.2.1";
        let on_address = rule(host, Severity::Suspend, 1);
        let not_parents = [
            rule("0.2.1", Severity::Suspend, 2),
            rule("2.1", Severity::Suspend, 3),
        ];
        let rules = Snapshot::from_rules([on_address.clone()]);
        let listed: Vec<Listed> = not_parents
            .iter()
            .map(|r| Listed {
                rule: r.clone(),
                standing: Standing::LowerPriority,
            })
            .collect();
        let proxy: Vec<&str> = rules.matching_rules(host).map(|r| &*r.domain).collect();
        assert_eq!(proxy, [host]);
        let kept = on_hosts(&[host.to_string()]);
        assert!(kept(&on_address));
        assert!(not_parents.iter().all(|r| !kept(r)));
        let text = report(
            &rules,
            &listed,
            &FriendlyFederatorsConfig::default(),
            &Subject::Domain(host.into()),
        );
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(' ') && l.contains("rules.csv:"))
            .collect();
        assert_eq!(
            rows,
            [" *  192.0.2.1  suspend   -      no       rules.csv:1  -"],
            "{text}"
        );
        // Control: a name's parents are its suffixes, for both.
        let kept = on_hosts(&["x.2.1.example".to_string()]);
        assert!(kept(&rule("2.1.example", Severity::Suspend, 4)));
        assert!(!kept(&rule("2.1", Severity::Suspend, 5)));
    }
}

//! `inboxguard explain`: what the loaded rules decide for a domain, an actor or an activity
//! file, and every rule that matched, with where it is written. Read-only and offline: it never
//! fetches anything, so it answers "why was this rejected?" from the rules alone. An activity
//! goes through the domain and actor rules and then the friendly-federator laundering check,
//! the same code the proxy runs (`federators::check`).

use crate::config::{Config, FriendlyFederatorsConfig};
use crate::federators::{self, EvidenceError};
use crate::policy::content::Subject as ContentSubject;
use crate::policy::{domain_digest, host, ActorPattern, DomainDigest, DomainRule, Facts, Snapshot};
use crate::rules::{self, Listed, LoadError, SourceSummary};
use crate::subscriptions::{self, CachedSources};
use std::collections::HashSet;
use std::fmt::Write;

mod decision;
mod subject;
mod table;
#[cfg(test)]
mod tests;

pub use decision::outcome;
use decision::{
    write_decision, write_laundered, write_policy, write_references, write_report_outcome,
};
pub use subject::{
    is_activity_file, read_activity_file, ExplainError, Subject, MAX_ACTIVITY_FILE_BYTES,
};
use table::{write_actor, write_host};

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
    load_offline_where(config, &on_hosts(hosts))
}

/// As [`load_offline`], `Offline::listed` holding the rules `wanted` holds (the pushed
/// sources' rules, for `inboxguard push`).
pub fn load_offline_where(
    config: &Config,
    wanted: &dyn Fn(&DomainRule) -> bool,
) -> Result<Offline, LoadError> {
    let cached = subscriptions::load_cached(config);
    let mut memory = cached.sources.clone();
    memory.sort_by(|a, b| a.label.cmp(&b.label));
    let (snapshot, summaries, listed) =
        rules::load_listing(&config.blocklists, &memory, &config.policy, wanted)?;
    let settings =
        federators::effective(&config.friendly_federators, snapshot.friendly_federators());
    let escalated = match federators::escalated_from_file(&settings, snapshot.content_rules()) {
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
        rules::load_listing(&config.blocklists, &memory, &config.policy, wanted)?;
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
            write_content_rules(&mut out, rules, facts, &actor_host);
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

/// Which content rule decides the activity (as the proxy: the first in force that matches),
/// and which expired rules would have matched. Offline nothing is known of the actor's
/// document or of this instance's host, so rules on those do not match here.
fn write_content_rules(
    out: &mut String,
    rules: &Snapshot,
    facts: &crate::activity::Facts,
    actor_host: &str,
) {
    let loaded = rules.content_rules().rules();
    if loaded.is_empty() {
        return;
    }
    let now = i64::try_from(crate::clock::unix_now()).unwrap_or(i64::MAX);
    let subject = ContentSubject {
        facts,
        sender_host: actor_host,
        local_host: None,
        actor: None,
        actor_first_seen: None,
        now,
    };
    let _ = writeln!(out, "\ncontent rules ({} loaded):", loaded.len());
    let mut decided = false;
    for rule in loaded {
        let mut own = |set: &regex::RegexSet, text: &str| set.matches(text).into_iter().next();
        let Some(why) = rule.when.check(&subject, &mut own) else {
            continue;
        };
        let mode = if rule.dry_run { ", dry run" } else { "" };
        let what = |would: &str| {
            format!(
                "{} ({}:{}) {would}{}{mode}: {}",
                rule.name,
                rule.source,
                rule.line,
                rule.action.as_str(),
                why.join("; ")
            )
        };
        if rule.expired(now) {
            let when = rule.expires.map_or_else(String::new, |t| {
                crate::clock::rfc3339(u64::try_from(t).unwrap_or(0))
            });
            let _ = writeln!(out, "  expired {when}: {}", what("would "));
        } else if !decided {
            decided = true;
            let _ = writeln!(out, "* {}", what(""));
        }
    }
    if !decided {
        let _ = writeln!(out, "  none in force matches");
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

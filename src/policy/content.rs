//! Content rules: named conditions on what a verified activity says and how it is shaped
//! (mentions, links, hashtags, text, attachments, audience, sender), for the spam waves that
//! come from many small servers nobody has named in advance. Pure: the pipeline hands in the
//! facts it read and the clock; the first matching rule in file order decides.

use super::escalation::{EscalationAction, Window};
use super::host;
use crate::activity::Facts;
use regex::RegexSet;
use std::sync::Arc;

/// Content rules a rule set holds at most: each rule's name is a metric label.
pub const MAX_CONTENT_RULES: usize = 1000;

/// What a matching rule does with the activity. A signed body cannot be rewritten, so every
/// action forwards, drops or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentAction {
    /// Answered 202, not forwarded: the sender has nothing to retry.
    Drop,
    /// Answered 403.
    Reject,
    /// Forwarded; the match is counted and logged.
    Report,
}

impl ContentAction {
    /// The `action` metric label and the spelling in the rules file.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentAction::Drop => "drop",
            ContentAction::Reject => "reject",
            ContentAction::Report => "report",
        }
    }
}

/// One `[[content_rules]]` entry, checked and compiled.
#[derive(Debug, Clone)]
pub struct ContentRule {
    pub name: Arc<str>,
    pub comment: Option<String>,
    pub action: ContentAction,
    /// Matched, counted and logged, never enforced (the rule's or its source's `dry_run`).
    pub dry_run: bool,
    /// Unix seconds from which the rule no longer applies.
    pub expires: Option<i64>,
    pub when: Conditions,
    /// `escalate = { threshold, window, action }`: per sending domain, this many matches
    /// within the window escalate the domain as friendly federators escalate.
    pub escalate: Option<RuleEscalation>,
    pub source: Arc<str>,
    pub line: usize,
}

/// A content rule's escalation: the friendly federators' vocabulary (one `EscalationAction`,
/// one `Window` parser), per rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleEscalation {
    /// At least 1.
    pub threshold: u64,
    /// Default 7 days.
    pub window: Window,
    /// Default `report`.
    pub action: EscalationAction,
}

/// Every condition that is set must hold. Unset conditions (`None`, empty lists) hold.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub types: Vec<String>,
    pub object_types: Vec<String>,
    pub mentions_at_least: Option<u32>,
    pub mentions_local_at_least: Option<u32>,
    pub links_at_least: Option<u32>,
    /// Normalised hosts; a link's host or any parent of it.
    pub link_domains: Vec<String>,
    /// Lowercased, without `#`.
    pub hashtags_any: Vec<String>,
    pub text_matches: Option<RegexSet>,
    pub has_attachment: Option<bool>,
    pub attachment_blurhash: Vec<String>,
    pub attachment_digest: Vec<String>,
    /// Normalised hosts, suffix-matched against the signer's (keyId) host.
    pub sender_domains: Vec<String>,
    pub not_sender_domains: Vec<String>,
    pub public_only: bool,
    /// The actor document's `published` is less than this long ago.
    pub actor_age_under: Option<std::time::Duration>,
    /// Patterns over the actor's `preferredUsername` and `name`.
    pub actor_name_matches: Option<RegexSet>,
    /// inboxguard first saw this actor less than this long ago.
    pub actor_first_seen_under: Option<std::time::Duration>,
}

/// The few facts of an actor document content rules read (`actor_age_under`,
/// `actor_name_matches`), kept with its key: a few dozen bytes per cached key.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActorFacts {
    /// `published`, Unix seconds.
    pub published: Option<i64>,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
}

/// What a rule is matched against.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub facts: &'a Facts,
    /// The keyId host: the server that proved it sent the activity.
    pub sender_host: &'a str,
    /// This instance's host, for `mentions_local_at_least`.
    pub local_host: Option<&'a str>,
    /// The actor's document facts, when the activity's actor is the key's owner (a relayed
    /// activity's actor document was never fetched, and actor conditions do not hold).
    pub actor: Option<&'a ActorFacts>,
    /// When inboxguard first saw the activity's actor (Unix seconds), when a rule asks.
    pub actor_first_seen: Option<i64>,
    /// Unix seconds.
    pub now: i64,
}

/// Why a rule matched, for the log and `explain`: the conditions it has, in the file's words.
pub type Why = Vec<String>;

impl Conditions {
    /// No condition set: such a rule would match every activity, so the parser refuses it.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
            && self.object_types.is_empty()
            && self.sender_domains.is_empty()
            && self.not_sender_domains.is_empty()
            && self.actor_age_under.is_none()
            && self.actor_name_matches.is_none()
            && self.actor_first_seen_under.is_none()
            && !self.needs_content()
    }

    /// Whether a condition reads the post's content (`Facts::parse_with_content`).
    pub fn needs_content(&self) -> bool {
        self.mentions_at_least.is_some()
            || self.mentions_local_at_least.is_some()
            || self.links_at_least.is_some()
            || !self.link_domains.is_empty()
            || !self.hashtags_any.is_empty()
            || self.text_matches.is_some()
            || self.has_attachment.is_some()
            || !self.attachment_blurhash.is_empty()
            || !self.attachment_digest.is_empty()
            || self.public_only
    }

    /// Whether every set condition holds, and if so, what each one found. `text_match` says
    /// which of this rule's `text_matches` patterns (by index) matches the post's text.
    pub fn check(
        &self,
        s: &Subject<'_>,
        text_match: &mut dyn FnMut(&RegexSet, &str) -> Option<usize>,
    ) -> Option<Why> {
        let mut why = Vec::new();
        self.evaluate(s, text_match, &mut Some(&mut why))?;
        Some(why)
    }

    /// Whether every condition holds, without saying why: a request that passes is checked
    /// against every rule, and writing each rule's reasons only to drop them costs more than
    /// the checks.
    pub fn holds(
        &self,
        s: &Subject<'_>,
        text_match: &mut dyn FnMut(&RegexSet, &str) -> Option<usize>,
    ) -> bool {
        self.evaluate(s, text_match, &mut None).is_some()
    }

    fn evaluate(
        &self,
        s: &Subject<'_>,
        text_match: &mut dyn FnMut(&RegexSet, &str) -> Option<usize>,
        why: &mut Option<&mut Why>,
    ) -> Option<()> {
        let facts = s.facts;
        if !self.types.is_empty() {
            let kind = facts.kind.as_deref()?;
            self.types.iter().any(|t| t == kind).then_some(())?;
            note(why, || format!("type {kind}"));
        }
        if !self.object_types.is_empty() {
            let kind = facts.object.as_ref()?.kind.as_deref()?;
            self.object_types.iter().any(|t| t == kind).then_some(())?;
            note(why, || format!("object type {kind}"));
        }
        if !self.sender_domains.is_empty() {
            let listed = in_domains(&self.sender_domains, s.sender_host)?;
            note(why, || format!("sender {} under {listed}", s.sender_host));
        }
        if in_domains(&self.not_sender_domains, s.sender_host).is_some() {
            return None;
        }
        if let Some(limit) = self.actor_age_under {
            let published = s.actor?.published?;
            let age = s.now.saturating_sub(published);
            (age >= 0 && (age as u64) < limit.as_secs()).then_some(())?;
            note(why, || {
                format!("actor published {}s ago (under {}s)", age, limit.as_secs())
            });
        }
        if let Some(limit) = self.actor_first_seen_under {
            let age = s.now.saturating_sub(s.actor_first_seen?);
            (age >= 0 && (age as u64) < limit.as_secs()).then_some(())?;
            note(why, || {
                format!("actor first seen {age}s ago (under {}s)", limit.as_secs())
            });
        }
        if let Some(set) = &self.actor_name_matches {
            let actor = s.actor?;
            let (field, pattern) = [&actor.preferred_username, &actor.name]
                .into_iter()
                .flatten()
                .find_map(|n| set.matches(n).into_iter().next().map(|p| (n, p)))?;
            note(why, || {
                format!("actor name {field:?} matches {:?}", set.patterns()[pattern])
            });
        }
        if !self.needs_content() {
            return Some(());
        }
        let content = facts.content.as_deref()?;
        if let Some(n) = self.mentions_at_least {
            (content.mentions >= n).then_some(())?;
            note(why, || {
                format!("{} mentions (at least {n})", content.mentions)
            });
        }
        if let Some(n) = self.mentions_local_at_least {
            let local = s.local_host?;
            let count = content
                .mention_hrefs
                .iter()
                .filter(|href| host::of_uri_borrowed(href).is_some_and(|h| h == local))
                .count();
            (count >= n as usize).then_some(())?;
            note(why, || format!("{count} local mentions (at least {n})"));
        }
        if let Some(n) = self.links_at_least {
            (content.links.len() >= n as usize).then_some(())?;
            note(why, || {
                format!("{} links (at least {n})", content.links.len())
            });
        }
        if !self.link_domains.is_empty() {
            let hit = content.links.iter().find_map(|link| {
                let h = host::of_uri_borrowed(link)?;
                in_domains(&self.link_domains, &h).map(|d| (h.into_owned(), d))
            });
            let (h, d) = hit?;
            note(why, || format!("link to {h} under {d}"));
        }
        if let Some(tag) = any_listed(&self.hashtags_any, &content.hashtags)? {
            note(why, || format!("hashtag #{tag}"));
        }
        if let Some(set) = &self.text_matches {
            let first = text_match(set, &content.text)?;
            note(why, || format!("text matches {:?}", set.patterns()[first]));
        }
        if let Some(wanted) = self.has_attachment {
            (wanted == (content.attachments > 0)).then_some(())?;
            note(why, || format!("{} attachments", content.attachments));
        }
        if let Some(hit) = any_listed(&self.attachment_blurhash, &content.blurhashes)? {
            note(why, || format!("attachment blurhash {hit}"));
        }
        if let Some(hit) = any_listed(&self.attachment_digest, &content.digests)? {
            note(why, || format!("attachment digest {hit}"));
        }
        if self.public_only {
            content.public.then_some(())?;
            note(why, || "public".into());
        }
        Some(())
    }
}

impl ContentRule {
    pub fn expired(&self, now: i64) -> bool {
        self.expires.is_some_and(|at| now >= at)
    }
}

/// Adds a reason, when reasons are wanted.
fn note(why: &mut Option<&mut Why>, reason: impl FnOnce() -> String) {
    if let Some(why) = why {
        why.push(reason());
    }
}

/// A list condition: with `wanted` empty there is none (`Some(None)`); else the first of
/// `seen` it lists, and `None` (no match) when it lists none of them.
fn any_listed<'a>(wanted: &[String], seen: &'a [String]) -> Option<Option<&'a String>> {
    if wanted.is_empty() {
        return Some(None);
    }
    seen.iter().find(|s| wanted.contains(s)).map(Some)
}

/// The listed domain `host` is, or is under.
fn in_domains<'a>(domains: &'a [String], host: &str) -> Option<&'a str> {
    if domains.is_empty() {
        return None;
    }
    host::suffixes(host).find_map(|suffix| {
        domains
            .iter()
            .find(|d| d.as_str() == suffix)
            .map(String::as_str)
    })
}

/// The content rules in force, with every rule's text patterns compiled once more into one
/// set: a post's text is then scanned once for all rules, not once per rule with patterns.
#[derive(Debug, Clone, Default)]
pub struct ContentRules {
    rules: Vec<ContentRule>,
    combined: Option<Combined>,
}

#[derive(Debug, Clone)]
struct Combined {
    set: RegexSet,
    /// Where each rule's patterns start in `set` (rules without patterns take none).
    first: Vec<usize>,
}

/// Compiled size of all rules' patterns together.
const COMBINED_SIZE_LIMIT: usize = 64 * 1024 * 1024;

impl ContentRules {
    pub fn new(rules: Vec<ContentRule>) -> ContentRules {
        let mut first = Vec::with_capacity(rules.len());
        let mut patterns: Vec<&str> = Vec::new();
        for rule in &rules {
            first.push(patterns.len());
            if let Some(set) = &rule.when.text_matches {
                patterns.extend(set.patterns().iter().map(String::as_str));
            }
        }
        // Each rule's patterns compiled within their own limit; together they may not be,
        // and then each rule scans with its own set.
        let combined = (!patterns.is_empty())
            .then(|| {
                regex::RegexSetBuilder::new(&patterns)
                    .case_insensitive(true)
                    .size_limit(COMBINED_SIZE_LIMIT)
                    .build()
                    .ok()
            })
            .flatten()
            .map(|set| Combined { set, first });
        ContentRules { rules, combined }
    }

    pub fn rules(&self) -> &[ContentRule] {
        &self.rules
    }

    /// The rule named `name`, if loaded.
    pub fn named(&self, name: &str) -> Option<&ContentRule> {
        self.rules.iter().find(|r| &*r.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }
}

/// The first rule, in file order, that is in force and matches, with what it found.
pub fn first_match<'r>(rules: &'r ContentRules, s: &Subject<'_>) -> Option<(&'r ContentRule, Why)> {
    let mut scanned: Option<regex::SetMatches> = None;
    for (i, rule) in rules.rules.iter().enumerate() {
        if rule.expired(s.now) {
            continue;
        }
        let mut text_match = |own: &RegexSet, text: &str| match &rules.combined {
            Some(c) => {
                let hits = scanned.get_or_insert_with(|| c.set.matches(text));
                let start = c.first.get(i).copied().unwrap_or(0);
                (0..own.len()).find(|p| hits.matched(start + p))
            }
            None => own.matches(text).into_iter().next(),
        };
        if rule.when.holds(s, &mut text_match) {
            return rule.when.check(s, &mut text_match).map(|why| (rule, why));
        }
    }
    None
}

#[cfg(test)]
mod tests;

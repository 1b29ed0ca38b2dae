//! A TOML rules file's `[[content_rules]]`: each entry checked and compiled, every error
//! naming its line.

use super::lines::{Collector, LineError};
use super::parsed::LoadErrorKind;
use crate::clock;
use crate::policy::content::{
    Conditions, ContentAction, ContentRule, RuleEscalation, MAX_CONTENT_RULES,
};
use crate::policy::escalation::{EscalationAction, Window};
use crate::policy::host;
use ::toml::Spanned;
use regex::RegexSetBuilder;
use serde::Deserialize;
use std::ops::Range;

/// Compiled size one rule's patterns may take: the `regex` crate matches in linear time, and
/// this bounds the memory a pattern such as `(a{1000}){1000}` would otherwise claim.
const REGEX_SIZE_LIMIT: usize = 2 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContentRule {
    name: Spanned<String>,
    comment: Option<String>,
    action: Spanned<String>,
    #[serde(default)]
    dry_run: bool,
    expires: Option<Spanned<String>>,
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    object_types: Vec<String>,
    mentions_at_least: Option<u32>,
    mentions_local_at_least: Option<u32>,
    links_at_least: Option<u32>,
    link_domains: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    hashtags_any: Vec<String>,
    text_matches: Option<Spanned<Vec<String>>>,
    has_attachment: Option<bool>,
    #[serde(default)]
    attachment_blurhash: Vec<String>,
    #[serde(default)]
    attachment_digest: Vec<String>,
    sender_domains: Option<Spanned<Vec<String>>>,
    not_sender_domains: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    public_only: bool,
    actor_age_under: Option<Spanned<String>>,
    actor_first_seen_under: Option<Spanned<String>>,
    actor_name_matches: Option<Spanned<Vec<String>>>,
    escalate: Option<Spanned<RawEscalate>>,
}

/// `escalate = { threshold = 20, window = "1d", action = "limit" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalate {
    threshold: Option<Spanned<u64>>,
    window: Option<Spanned<String>>,
    action: Option<Spanned<String>>,
}

/// Checks and compiles `raw` into `out`, in file order.
pub(super) fn parse(
    raw: Vec<RawContentRule>,
    line: &impl Fn(Range<usize>) -> usize,
    out: &mut Collector,
) -> Result<(), LineError> {
    let invalid = |at: usize, message: String| (at, LoadErrorKind::InvalidContentRule { message });
    for r in raw {
        let at = line(r.name.span());
        let name = r.name.get_ref().trim().to_string();
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(invalid(
                at,
                format!("name {name:?}: 1 to 64 letters, digits, '-', '_' or '.' (it is a metric label)"),
            ));
        }
        if out.parsed.content_rules.iter().any(|c| *c.name == *name) {
            return Err(invalid(
                at,
                format!("name {name:?} is used by an earlier rule"),
            ));
        }
        if out.parsed.content_rules.len() >= MAX_CONTENT_RULES {
            return Err(invalid(
                at,
                format!("more than {MAX_CONTENT_RULES} content rules"),
            ));
        }
        let action = match r.action.get_ref().as_str() {
            "drop" => ContentAction::Drop,
            "reject" => ContentAction::Reject,
            "report" => ContentAction::Report,
            other => {
                return Err(invalid(
                    line(r.action.span()),
                    format!("action {other:?} (expected drop, reject or report)"),
                ))
            }
        };
        let expires = match &r.expires {
            None => None,
            Some(text) => Some(clock::parse_rfc3339(text.get_ref()).ok_or_else(|| {
                invalid(
                    line(text.span()),
                    format!(
                        "expires {:?} is not an RFC 3339 time (e.g. \"2027-01-31T00:00:00Z\")",
                        text.get_ref()
                    ),
                )
            })?),
        };
        let domains = |list: Option<Spanned<Vec<String>>>, key: &str| {
            let Some(list) = list else {
                return Ok(Vec::new());
            };
            let at = line(list.span());
            list.into_inner()
                .into_iter()
                .map(|d| {
                    host::normalize(&d)
                        .ok_or_else(|| invalid(at, format!("{key}: invalid domain {d:?}")))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let text_matches = match r.text_matches.filter(|p| !p.get_ref().is_empty()) {
            None => None,
            Some(patterns) => {
                let at = line(patterns.span());
                let set = RegexSetBuilder::new(patterns.get_ref())
                    .case_insensitive(true)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| invalid(at, format!("text_matches: {e}")))?;
                Some(set)
            }
        };
        let duration = |field: &Option<Spanned<String>>, key: &str| match field {
            None => Ok(None),
            Some(text) => crate::config::parse_duration(text.get_ref())
                .map(Some)
                .ok_or_else(|| {
                    invalid(
                        line(text.span()),
                        format!(
                            "{key} {:?} (expected e.g. \"90m\", \"12h\", \"2d\")",
                            text.get_ref()
                        ),
                    )
                }),
        };
        let actor_age_under = duration(&r.actor_age_under, "actor_age_under")?;
        let actor_first_seen_under = duration(&r.actor_first_seen_under, "actor_first_seen_under")?;
        let actor_name_matches = match r.actor_name_matches.filter(|p| !p.get_ref().is_empty()) {
            None => None,
            Some(patterns) => {
                let at = line(patterns.span());
                Some(
                    RegexSetBuilder::new(patterns.get_ref())
                        .case_insensitive(true)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|e| invalid(at, format!("actor_name_matches: {e}")))?,
                )
            }
        };
        let when = Conditions {
            types: r.types,
            object_types: r.object_types,
            mentions_at_least: r.mentions_at_least,
            mentions_local_at_least: r.mentions_local_at_least,
            links_at_least: r.links_at_least,
            link_domains: domains(r.link_domains, "link_domains")?,
            hashtags_any: r
                .hashtags_any
                .iter()
                .map(|t| t.trim_start_matches('#').to_lowercase())
                .collect(),
            text_matches,
            has_attachment: r.has_attachment,
            attachment_blurhash: r.attachment_blurhash,
            attachment_digest: r.attachment_digest,
            sender_domains: domains(r.sender_domains, "sender_domains")?,
            not_sender_domains: domains(r.not_sender_domains, "not_sender_domains")?,
            public_only: r.public_only,
            actor_age_under,
            actor_name_matches,
            actor_first_seen_under,
        };
        let escalate = match r.escalate {
            None => None,
            Some(e) => {
                let at = line(e.span());
                let e = e.into_inner();
                let threshold = match e.threshold {
                    Some(t) if *t.get_ref() >= 1 => *t.get_ref(),
                    Some(t) => {
                        return Err(invalid(
                            line(t.span()),
                            "escalate.threshold must be at least 1".into(),
                        ))
                    }
                    None => return Err(invalid(at, "escalate needs a threshold".into())),
                };
                let window = match e.window {
                    None => Window { days: 7 },
                    Some(w) => Window::parse(w.get_ref()).map_err(|_| {
                        invalid(
                            line(w.span()),
                            format!("escalate.{}", Window::refusal(w.get_ref())),
                        )
                    })?,
                };
                let action = match e.action {
                    None => EscalationAction::Report,
                    Some(a) => EscalationAction::parse(a.get_ref()).ok_or_else(|| {
                        invalid(
                            line(a.span()),
                            format!(
                                "escalate.action {:?} (expected report, limit or suspend)",
                                a.get_ref()
                            ),
                        )
                    })?,
                };
                Some(RuleEscalation {
                    threshold,
                    window,
                    action,
                })
            }
        };
        if when.is_empty() {
            return Err(invalid(
                at,
                format!("rule {name:?} has no condition: it would match every activity"),
            ));
        }
        out.parsed.content_rules.push(ContentRule {
            name: name.into(),
            comment: r.comment,
            action,
            dry_run: r.dry_run,
            expires,
            when,
            escalate,
            source: out.source.clone(),
            line: at,
        });
    }
    Ok(())
}

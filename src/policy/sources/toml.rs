//! inboxguard's TOML rules file: what a CSV cannot say. Domain rules with per-rule dry run,
//! allowed domains, exceptions, actor rules, comments, and the friendly-federator settings.
//!
//! ```toml
//! # Comments are TOML comments.
//! [[domain]]
//! domain = "bad.example"          # or "sha256:<hex>", or "exam***.com" with digest = "<hex>"
//! severity = "suspend"            # suspend (default) | silence | noop
//! reject_media = false
//! reject_reports = false
//! comment = "spam"                # the public comment
//! dry_run = false                 # preview this rule only
//!
//! [[allow]]                       # allowed domains (enforced in [policy] mode = "allowlist")
//! domain = "friend.example"
//! comment = "partner instance"
//!
//! [[exclude]]                     # block rules of every source do not apply here
//! domain = "ok.bad.example"
//! comment = "their moderation team asked"
//!
//! [[actor]]                       # suspend one account
//! actor = "@mallory@elsewhere.example"   # or "https://elsewhere.example/users/mallory"
//! comment = "harassment"
//! dry_run = false
//!
//! [friendly_federators]           # read by the friendly-federator rules; see the struct
//! announce = true
//! attributed_to = true
//! reply = false
//! quote = false
//! mention = false
//! threshold = 20                  # escalation is opt-in: only with a threshold (here or
//!                                 # in the config; keys left out keep the config's values)
//! window = "7d"                  # whole days, as in the config file (`Window`)
//! action = "report"               # report | limit | suspend
//!
//! [[rate_limits]]                 # a larger fair share for a relay (and its subdomains)
//! domain = "relay.example"
//! per_second = 500
//! burst = 5000                    # default: ten seconds' worth
//!
//! [[content_rules]]               # conditions on a verified activity (`policy::content`)
//! name = "invite-spam"            # a metric label: letters, digits, - _ .
//! types = ["Create"]
//! mentions_at_least = 5
//! text_matches = ['discord\.gg/']
//! action = "drop"                 # drop | reject | report
//! expires = "2027-01-31T00:00:00Z"
//! ```
//!
//! Unknown keys are errors. Every error names the line: toml's spans give it for syntax and
//! shape errors, and each entry's key span for a value that does not validate.

use super::lines::{entries_of, Collector, Entry, LineCursor, LineError};
use super::parsed::LoadErrorKind;
use crate::policy::actors::{ActorPattern, ActorRule};
use crate::policy::escalation::{EscalationAction, FriendlyFederatorSettings, Window, WindowError};
use crate::policy::rate::RateOverride;
use crate::policy::{host, DomainEntry, DomainRule, Severity};
use ::toml::Spanned;
use serde::Deserialize;
use std::ops::Range;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    domain: Vec<RawDomain>,
    #[serde(default)]
    allow: Vec<RawEntry>,
    #[serde(default)]
    exclude: Vec<RawEntry>,
    #[serde(default)]
    actor: Vec<RawActor>,
    friendly_federators: Option<Spanned<RawFriendly>>,
    #[serde(default)]
    content_rules: Vec<super::content::RawContentRule>,
    #[serde(default)]
    rate_limits: Vec<RawRateLimit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    domain: Spanned<String>,
    per_second: u32,
    /// Default: ten seconds' worth, the ratio of the built-in share (50/s, burst 500).
    burst: Option<u32>,
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    domain: Spanned<String>,
    #[serde(default)]
    severity: RawSeverity,
    #[serde(default)]
    reject_media: bool,
    #[serde(default)]
    reject_reports: bool,
    comment: Option<String>,
    digest: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawSeverity {
    #[default]
    Suspend,
    Silence,
    Noop,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    domain: Spanned<String>,
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActor {
    actor: Spanned<String>,
    comment: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFriendly {
    announce: Option<bool>,
    attributed_to: Option<bool>,
    reply: Option<bool>,
    quote: Option<bool>,
    mention: Option<bool>,
    threshold: Option<Spanned<u64>>,
    window: Option<Spanned<String>>,
    action: Option<EscalationAction>,
}

/// Parses a TOML rules file into `out` (domain rules go through the same checks and duplicate
/// folding as the CSV and plain formats).
pub(super) fn parse(text: &str, out: &mut Collector) -> Result<(), LineError> {
    let lines = LineCursor::new(text.as_bytes());
    let line = |span: Range<usize>| lines.line(span.start);
    let raw: RawFile = ::toml::from_str(text).map_err(|e| {
        (
            e.span().map_or(0, line),
            LoadErrorKind::Toml {
                message: e.message().trim_end().to_string(),
            },
        )
    })?;
    for d in raw.domain {
        let at = line(d.domain.span());
        let entry = Entry {
            severity: match d.severity {
                RawSeverity::Suspend => Severity::Suspend,
                RawSeverity::Silence => Severity::Silence,
                RawSeverity::Noop => Severity::Noop,
            },
            reject_media: d.reject_media,
            reject_reports: d.reject_reports,
            public_comment: d.comment,
            digest: d.digest,
        };
        if out.push(at, d.domain.get_ref(), entry)? && d.dry_run {
            if let Some(rule) = out.parsed.rules.last_mut() {
                rule.dry_run = true;
            }
        }
    }
    out.parsed.allows = named_entries(raw.allow, &line, &out.source)?;
    out.parsed.exceptions = named_entries(raw.exclude, &line, &out.source)?;
    for a in raw.actor {
        let at = line(a.actor.span());
        let text = a.actor.into_inner();
        let pattern = ActorPattern::parse(&text)
            .ok_or_else(|| (at, LoadErrorKind::InvalidActor { text: text.clone() }))?;
        out.parsed.actors.push(ActorRule {
            actor: text,
            pattern,
            comment: a.comment,
            dry_run: a.dry_run,
            source: out.source.clone(),
            line: at,
        });
    }
    super::content::parse(raw.content_rules, &line, out)?;
    for r in raw.rate_limits {
        let at = line(r.domain.span());
        let domain = named_domain(r.domain.into_inner(), at)?;
        let burst = r.burst.unwrap_or(r.per_second.saturating_mul(10));
        if r.per_second == 0 || burst == 0 {
            return Err((
                at,
                LoadErrorKind::InvalidRateLimit {
                    message: format!("{domain}: per_second and burst must be at least 1"),
                },
            ));
        }
        out.parsed.rate_limits.push(RateOverride {
            domain,
            per_second: r.per_second,
            burst,
            comment: r.comment,
            source: out.source.clone(),
            line: at,
        });
    }
    if let Some(ff) = raw.friendly_federators {
        let at = line(ff.span());
        let ff = ff.into_inner();
        let threshold = match ff.threshold {
            Some(t) if *t.get_ref() == 0 => {
                return Err((
                    line(t.span()),
                    LoadErrorKind::Toml {
                        message: "friendly_federators.threshold must be at least 1".into(),
                    },
                ));
            }
            t => t.map(Spanned::into_inner),
        };
        let window = match ff.window {
            None => None,
            Some(w) => {
                let text = w.get_ref();
                let kind = |e| match e {
                    WindowError::Syntax => LoadErrorKind::InvalidDuration { text: text.clone() },
                    WindowError::Days => LoadErrorKind::InvalidWindow { text: text.clone() },
                };
                let window = Window::parse(text).map_err(|e| (line(w.span()), kind(e)))?;
                Some(window.duration())
            }
        };
        out.parsed.friendly_federators = Some(FriendlyFederatorSettings {
            announce: ff.announce,
            attributed_to: ff.attributed_to,
            reply: ff.reply,
            quote: ff.quote,
            mention: ff.mention,
            threshold,
            window,
            action: ff.action,
            source: out.source.clone(),
            line: at,
        });
    }
    Ok(())
}

/// A domain written out by name (no digest, no wildcard), normalised; `at` is its line.
fn named_domain(text: String, at: usize) -> Result<String, LineError> {
    if text.contains('*') || text.to_ascii_lowercase().starts_with("sha256:") {
        return Err((at, LoadErrorKind::DigestNotAllowed { text }));
    }
    host::normalize(&text).ok_or((at, LoadErrorKind::InvalidDomain { text }))
}

/// `[[allow]]` or `[[exclude]]` entries: normalised names only.
fn named_entries(
    raw: Vec<RawEntry>,
    line: &impl Fn(Range<usize>) -> usize,
    source: &Arc<str>,
) -> Result<Vec<DomainEntry>, LineError> {
    let mut rules = Vec::with_capacity(raw.len());
    for e in raw {
        let at = line(e.domain.span());
        let domain = named_domain(e.domain.into_inner(), at)?;
        rules.push(DomainRule {
            domain: domain.into_boxed_str(),
            digest: None,
            severity: Severity::Noop,
            reject_media: false,
            reject_reports: false,
            public_comment: e.comment.map(Arc::from),
            dry_run: false,
            source: source.clone(),
            line: DomainRule::line_of(at),
        });
    }
    entries_of(rules)
}

#[cfg(test)]
mod tests {
    use super::super::{parse_bytes, BlocklistFormat, LoadError, LoadErrorKind, ParsedSource};
    use crate::policy::escalation::EscalationAction;
    use crate::policy::Severity;
    use std::sync::Arc;
    use std::time::Duration;

    fn parse_text(text: &str) -> Result<ParsedSource, LoadError> {
        parse_bytes(
            text.as_bytes(),
            Arc::from("rules.toml"),
            BlocklistFormat::Auto,
        )
    }

    #[test]
    fn friendly_federator_defaults_and_escalation() {
        let p = parse_text("[friendly_federators]\nreply = true\n").expect("parses");
        let ff = p.friendly_federators.expect("table");
        // Keys left out stay unset, so the config file's values apply to them.
        assert_eq!(
            (ff.announce, ff.reply, ff.quote, ff.threshold, ff.action),
            (None, Some(true), None, None, None)
        );
        assert_eq!(ff.line, 1);
        let p = parse_text("\n[friendly_federators]\nthreshold = 5\naction = \"limit\"\n")
            .expect("parses");
        let ff = p.friendly_federators.expect("table");
        assert_eq!(
            (ff.threshold, ff.window, ff.action),
            (Some(5), None, Some(EscalationAction::Limit))
        );
        // The inline-table spelling is the same table.
        let p = parse_text(
            "friendly_federators = { threshold = 3, window = \"7d\", action = \"report\" }\n",
        )
        .expect("parses");
        let ff = p.friendly_federators.expect("table");
        assert_eq!(
            (ff.threshold, ff.window, ff.action),
            (
                Some(3),
                Some(Duration::from_secs(7 * 86_400)),
                Some(EscalationAction::Report)
            )
        );
        let e = parse_text("[friendly_federators]\nthreshold = 5\nwindow = \"soon\"\n")
            .expect_err("bad window");
        assert_eq!(
            e.to_string(),
            "rules.toml:3: invalid duration \"soon\" (expected e.g. \"30m\", \"12h\", \"7d\")"
        );
        let e = parse_text("[friendly_federators]\n\nthreshold = 0\n").expect_err("zero");
        assert_eq!(e.line, 3);
        let e = parse_text("[friendly_federators]\naction = \"ban\"\n").expect_err("action");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn per_rule_dry_run_and_shapes() {
        let p = parse_text(
            "[[domain]]\ndomain = \"a.example\"\ndry_run = true\n\n\
             [[domain]]\ndomain = \"b.example\"\nseverity = \"noop\"\nreject_reports = true\n",
        )
        .expect("parses");
        let got: Vec<_> = p
            .rules
            .iter()
            .map(|r| (&*r.domain, r.severity, r.reject_reports, r.dry_run, r.line))
            .collect();
        assert_eq!(
            got,
            [
                ("a.example", Severity::Suspend, false, true, 2),
                ("b.example", Severity::Noop, true, false, 6),
            ]
        );
        let e = parse_text("[[allow]]\ndomain = \"sha256:00\"\n").expect_err("digest");
        assert!(matches!(e.kind, LoadErrorKind::DigestNotAllowed { .. }));
        assert_eq!(e.line, 2);
    }

    #[test]
    fn windows_are_whole_days_as_in_the_config() {
        let p = parse_text("[friendly_federators]\nwindow = \"48h\"\n").expect("parses");
        let window = p.friendly_federators.and_then(|t| t.window);
        assert_eq!(window, Some(Duration::from_secs(2 * 86_400)));
        for bad in ["12h", "91d"] {
            let text = format!("[friendly_federators]\n\nwindow = \"{bad}\"\n");
            let e = parse_text(&text).expect_err(bad);
            assert!(matches!(e.kind, LoadErrorKind::InvalidWindow { .. }), "{e}");
            assert_eq!(e.line, 3);
        }
    }
}

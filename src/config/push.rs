//! `[mastodon] push` and `push_interval`, and the `push` flag of `[[subscriptions]]`: which
//! rules inboxguard writes into Mastodon's own domain blocks (see `push`), and how often.

use super::{parse_duration, Config, Invalid, SourceKind};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// `push = false | true | "dry-run"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PushMode {
    /// Nothing is written to Mastodon (the default).
    #[default]
    Off,
    /// Each cycle writes the diff.
    On,
    /// Each cycle logs the diff and writes nothing.
    DryRun,
}

impl PushMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PushMode::Off => "false",
            PushMode::On => "true",
            PushMode::DryRun => "dry-run",
        }
    }
}

impl<'de> Deserialize<'de> for PushMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PushMode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"push = true, false or "dry-run""#)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<PushMode, E> {
                Ok(if v { PushMode::On } else { PushMode::Off })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PushMode, E> {
                match v {
                    "dry-run" => Ok(PushMode::DryRun),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Five minutes: a new escalation reaches Mastodon about as fast as the pull brings a
/// moderator's own block back, and an idle cycle costs one listing of the blocks.
pub(super) fn default_push_interval() -> String {
    "5m".into()
}

/// `push_interval` as a duration; validation made sure it parses.
pub(super) fn interval(text: &str) -> Duration {
    parse_duration(text).unwrap_or(Duration::from_secs(300))
}

/// What crosses tables: the interval, and the subscriptions marked `push = true`.
pub(super) fn check(config: &Config) -> Result<(), Invalid> {
    let mode = config.mastodon.as_ref().map_or(PushMode::Off, |m| m.push);
    if let Some(m) = &config.mastodon {
        match parse_duration(&m.push_interval) {
            Some(d) if (1..=86_400).contains(&d.as_secs()) => {}
            _ => {
                return Err((
                    "mastodon.push_interval",
                    format!(
                        "{:?}: a duration between 1s and 1d, as \"90s\", \"5m\", \"1h\"",
                        m.push_interval
                    ),
                ))
            }
        }
    }
    for s in config.subscriptions.iter().filter(|s| s.push) {
        let problem = if mode == PushMode::Off {
            "push = true needs [mastodon] url, token_file and push = true (or \"dry-run\")"
        } else if s.exclude || s.kind == SourceKind::Exception {
            "an exception list has no blocks to push"
        } else if s.kind == SourceKind::Allow {
            "an allow list has no blocks to push"
        } else if s.dry_run {
            "a dry_run list's rules are previews, never pushed; preview the push with [mastodon] push = \"dry-run\""
        } else if s.priority < 0 && config.mastodon.as_ref().is_some_and(|m| m.domain_blocks) {
            // The pulled copy of a pushed block would outrank the list's own rule, the rule
            // would no longer be in force, and the next cycle would lift what it created.
            "a pushed list needs priority >= 0 while [mastodon] domain_blocks pulls the blocks back"
        } else {
            continue;
        };
        return Err(("subscriptions.push", format!("{}: {problem}", s.url)));
    }
    Ok(())
}

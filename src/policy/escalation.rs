//! The friendly-federator settings a TOML rules file can carry, and the escalation vocabulary
//! (`EscalationAction`, `Window`) that file and the config file share: one type and one
//! parser each, so both accept exactly the same values.

use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The `[friendly_federators]` table of a TOML rules file, as the friendly-federator rules
/// consume it. At most one loaded source may have it (a second one fails the load). Every key
/// is optional: a key the table sets replaces the config file's `[friendly_federators]` value,
/// a key it leaves out keeps the config's (see `federators::effective`), so a table that only
/// turns on `reply` never switches off escalation configured in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FriendlyFederatorSettings {
    /// Laundering kinds: an activity from an allowed domain carrying content from a suspended
    /// domain is acknowledged (202) and not forwarded, per kind, when on.
    /// `Announce` of an object whose id or `attributedTo` is on a suspended domain.
    pub announce: Option<bool>,
    /// An object whose `attributedTo` is on a suspended domain.
    pub attributed_to: Option<bool>,
    /// A `Create` replying (`inReplyTo`) to such content.
    pub reply: Option<bool>,
    /// A `Create` quoting (`quote`, `quoteUrl`, `_misskey_quote`) such content.
    pub quote: Option<bool>,
    /// A `Create` mentioning an account of a suspended domain.
    pub mention: Option<bool>,
    /// Escalation threshold (at least 1): references within `window` that escalate a domain.
    pub threshold: Option<u64>,
    /// Always whole days, 1 to `MAX_WINDOW_DAYS` (read by `Window::parse`).
    pub window: Option<Duration>,
    pub action: Option<EscalationAction>,
    /// Where the table is written.
    pub source: Arc<str>,
    pub line: usize,
}

/// What an escalated domain becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EscalationAction {
    /// Logged and listed as "would escalate"; no rule is generated.
    #[default]
    Report,
    /// A generated `silence` rule.
    Limit,
    /// A generated `suspend` rule: its deliveries get 403.
    Suspend,
}

impl EscalationAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationAction::Report => "report",
            EscalationAction::Limit => "limit",
            EscalationAction::Suspend => "suspend",
        }
    }

    /// The spelling in a rules file or the config.
    pub fn parse(text: &str) -> Option<EscalationAction> {
        [
            EscalationAction::Report,
            EscalationAction::Limit,
            EscalationAction::Suspend,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
    }
}

/// Bounds the per-domain day buckets the evidence keeps.
pub const MAX_WINDOW_DAYS: u32 = 90;

const SECS_PER_DAY: u64 = 86_400;

/// An escalation window in whole days: evidence is bucketed per UTC day, so a window that is
/// not a whole number of days (`"12h"`) would be silently rounded; it is refused instead,
/// in the config file and in a rules file alike. Any unit may spell whole days (`"48h"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Window {
    pub days: u32,
}

/// Why a window was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowError {
    /// Not a number followed by s, m, h, d or w.
    Syntax,
    /// Not a whole number of days from 1 to `MAX_WINDOW_DAYS`.
    Days,
}

impl Window {
    /// The one parser of escalation windows: `"7d"`, `"2w"`, `"48h"`.
    pub fn parse(text: &str) -> Result<Window, WindowError> {
        let secs = crate::clock::parse_duration(text)
            .filter(|d| !d.is_zero())
            .ok_or(WindowError::Syntax)?
            .as_secs();
        let days = u32::try_from(secs / SECS_PER_DAY).map_err(|_| WindowError::Days)?;
        if secs % SECS_PER_DAY != 0 || days == 0 || days > MAX_WINDOW_DAYS {
            return Err(WindowError::Days);
        }
        Ok(Window { days })
    }

    pub fn duration(self) -> Duration {
        Duration::from_secs(u64::from(self.days) * SECS_PER_DAY)
    }

    /// What is wrong with `text` as a window, for error messages.
    pub fn refusal(text: &str) -> String {
        format!(
            "window {text:?}: expected whole days, e.g. \"7d\", \"2w\" or \"48h\", \
             at most {MAX_WINDOW_DAYS} days"
        )
    }
}

impl TryFrom<String> for Window {
    type Error = String;
    fn try_from(text: String) -> Result<Window, String> {
        Window::parse(&text).map_err(|_| Window::refusal(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_whole_days() {
        let days = |t: &str| Window::parse(t).map(|w| w.days);
        assert_eq!(days("7d"), Ok(7));
        assert_eq!(days(" 2w "), Ok(14));
        assert_eq!(days("48h"), Ok(2));
        assert_eq!(days("90d"), Ok(90));
        assert_eq!(days("12h"), Err(WindowError::Days));
        assert_eq!(days("91d"), Err(WindowError::Days));
        assert_eq!(days("0d"), Err(WindowError::Syntax));
        assert_eq!(days("soon"), Err(WindowError::Syntax));
        assert_eq!(days("7é"), Err(WindowError::Syntax));
        assert_eq!(Window { days: 7 }.duration(), Duration::from_secs(604_800));
    }
}

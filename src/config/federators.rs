//! `[friendly_federators]`: laundering checks, evidence, and opt-in escalation. The
//! escalation window and action are `policy::escalation`'s, shared with a rules file's table.

use super::{default_true, positive, Invalid};
use crate::policy::escalation::{EscalationAction, Window};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[friendly_federators]`: laundering checks, evidence, and opt-in escalation (see
/// `federators`). The escalation keys sit in this table itself, so
/// `friendly_federators = { threshold = 50, window = "7d", action = "report" }` is a valid
/// (inline-table) way to write it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FriendlyFederatorsConfig {
    /// Drop an `Announce` of an object whose id or `attributedTo` is on a suspended domain.
    #[serde(default = "default_true")]
    pub announce: bool,
    /// Drop a `Create`/`Update` whose object replies (`inReplyTo`) to a suspended domain.
    #[serde(default)]
    pub reply: bool,
    /// Drop a `Create`/`Update` whose object quotes (`quote`, `quoteUrl`, `quoteUri`,
    /// `_misskey_quote`) a suspended domain.
    #[serde(default)]
    pub quote: bool,
    /// Drop a `Create`/`Update` whose object mentions an account on a suspended domain.
    #[serde(default)]
    pub mention: bool,
    /// Drop a `Create`/`Update` whose object's `attributedTo` is on a suspended domain.
    #[serde(default = "default_true")]
    pub attributed_to: bool,
    /// Where the evidence is kept across restarts (JSON, replaced by rename). Without it the
    /// evidence lives in memory only and `inboxguard report` has nothing to read.
    pub evidence_file: Option<PathBuf>,
    /// How often the evidence is saved (and escalation re-evaluated); also saved at shutdown.
    #[serde(default = "default_persist_interval_secs")]
    pub persist_interval_secs: u64,
    /// Sending domains tracked at most; past it the domain with the fewest references goes.
    #[serde(default = "default_max_tracked_domains")]
    pub max_tracked_domains: usize,
    /// Domains listed by `/admin/friendly-federators` and `inboxguard report`, most references first.
    #[serde(default = "default_report_top")]
    pub report_top: usize,
    /// Escalation is on when this is set: a domain with this many references within `window`
    /// escalates (see `action`).
    pub threshold: Option<u64>,
    /// `"7d"`, `"2w"`, `"48h"`: whole days, at most 90 (`Window::parse`, as in a rules
    /// file). Default 7 days.
    pub window: Option<Window>,
    /// Default `report`.
    pub action: Option<EscalationAction>,
}

impl Default for FriendlyFederatorsConfig {
    fn default() -> Self {
        Self {
            announce: true,
            reply: false,
            quote: false,
            mention: false,
            attributed_to: true,
            evidence_file: None,
            persist_interval_secs: default_persist_interval_secs(),
            max_tracked_domains: default_max_tracked_domains(),
            report_top: default_report_top(),
            threshold: None,
            window: None,
            action: None,
        }
    }
}

impl FriendlyFederatorsConfig {
    pub fn window_days(&self) -> u32 {
        self.window.map_or(7, |w| w.days)
    }
    pub fn action(&self) -> EscalationAction {
        self.action.unwrap_or_default()
    }
    pub fn persist_interval(&self) -> Duration {
        Duration::from_secs(self.persist_interval_secs)
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        positive(
            "friendly_federators.persist_interval_secs",
            self.persist_interval_secs,
        )?;
        if !(1..=1_000_000).contains(&self.max_tracked_domains) {
            return Err((
                "friendly_federators.max_tracked_domains",
                "must be between 1 and 1000000".into(),
            ));
        }
        positive("friendly_federators.report_top", self.report_top as u64)?;
        match self.threshold {
            Some(threshold) => positive("friendly_federators.threshold", threshold),
            None if self.window.is_some() || self.action.is_some() => Err((
                "friendly_federators.threshold",
                "window and action need a threshold (escalation is off without one)".into(),
            )),
            None => Ok(()),
        }
    }
}

fn default_persist_interval_secs() -> u64 {
    60
}
fn default_max_tracked_domains() -> usize {
    10_000
}
fn default_report_top() -> usize {
    100
}

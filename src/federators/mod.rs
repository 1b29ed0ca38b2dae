//! Friendly federators: instances that carry content from suspended domains into this one.
//! This module owns the three parts of that:
//!
//! 1. **Laundering** (`Federators::inspect`, on the request path after verification and
//!    policy): a verified activity from a domain that is not suspended which boosts, replies to,
//!    quotes, mentions or is attributed to a suspended domain. The enabled kinds are answered
//!    202 and not forwarded (`laundered_*`); a dry-run suspend rule makes it `would_reject`.
//! 2. **Evidence**: per sending domain, how many activities referenced a limited (silence) or
//!    suspended domain, by kind, with samples and first/last seen — whether or not they were
//!    dropped. Bounded (`max_tracked_domains`; the domain with the fewest references makes
//!    room), saved as JSON (temp file + rename) every `persist_interval_secs` and at shutdown,
//!    loaded at startup.
//! 3. **Escalation** (opt-in, `threshold`): a domain with `threshold` references within
//!    `window` is reported, or becomes a `silence`/`suspend` rule of the generated memory
//!    source `friendly-federators`, which goes through the one rule merge (so exclusions
//!    override it). Escalation is sticky: the window decides when a domain escalates, not when
//!    it is forgiven (a suspended domain's count stops growing, and a rule that lifts itself a
//!    week later would flap). Evaluated on the persist tick, never on the request path, under
//!    the action in force then: a new action regenerates the source, and `report` (or no
//!    threshold) takes it out of force without forgetting any escalated domain.
//!
//! Cost on the request path: for a `Create`, `Update` or `Announce`, one `rule_for` per
//! referenced URI (at most 5 + `activity::MAX_MENTIONS`), no allocation when the URI is in the
//! canonical `https://lower.case.host/…` form and nothing matches. The evidence lock is taken
//! only when something matched.
//!
//! | file       | owns |
//! |------------|------|
//! | `launder`  | the laundering check (`check`, `Federators::inspect`) |
//! | `evidence` | the evidence store, its bounds, and the evidence file |
//! | `content`  | content-rule evidence per rule and sending domain, kept in the same store and file |
//! | `escalate` | escalation into the generated source, and the tick that saves and evaluates |
//! | `report`   | the report for the admin endpoint and `inboxguard report` |
//! | `shared`   | evidence and escalations exchanged with the other replicas through Redis |
//! | `audit`    | the list of escalations and lifts (`inboxguard escalations`), and the lift |

mod audit;
mod content;
mod days;
mod escalate;
mod evidence;
mod launder;
mod report;
mod shared;
#[cfg(test)]
mod tests;

pub use audit::{
    escalations_from_file, lift, lift_in_file, EscalationRow, Escalations, LiftError, LiftRow,
    Lifted,
};
pub use content::{ContentDomainReport, ContentMatch, ContentReport, RuleReport, MAX_PAIRS};
pub use escalate::cause as cause_of;
pub use escalate::{apply_at_startup, escalated_from_file, maintain};
pub use evidence::{Escalated, EvidenceError, KindCounts, Referenced, SeverityCounts};
pub use launder::{check, Laundering, Reference, Stop};
pub use report::{report_from_file, DomainReport, EscalatedReport, EscalationReport, Report};

use crate::config::{FriendlyFederatorsConfig, MAX_WINDOW_DAYS};
use crate::metrics::Metrics;
use crate::policy::FriendlyFederatorSettings;
use evidence::Store;
use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The generated source's label: the `source` of its rules, metrics and `explain` lines.
pub const SOURCE_LABEL: &str = "friendly-federators";
const SECS_PER_DAY: u64 = 86_400;

/// What kind of reference an activity made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An `Announce` of an object whose id or `attributedTo` is on the referenced domain.
    Announce,
    /// A `Create`/`Update` whose object's `inReplyTo` is there.
    Reply,
    /// A `Create`/`Update` whose object quotes (`quote`, `quoteUrl`, `quoteUri`,
    /// `_misskey_quote`) something there.
    Quote,
    /// A `Create`/`Update` whose object mentions an account there.
    Mention,
    /// A `Create`/`Update` whose object's `attributedTo` is there (not the sender's host).
    AttributedTo,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Announce,
        Kind::Reply,
        Kind::Quote,
        Kind::Mention,
        Kind::AttributedTo,
    ];

    /// The `kind` metric label and JSON key.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Announce => "announce",
            Kind::Reply => "reply",
            Kind::Quote => "quote",
            Kind::Mention => "mention",
            Kind::AttributedTo => "attributed_to",
        }
    }

    /// The `reason` of a dropped (or would-be dropped) activity.
    pub fn reason(self) -> &'static str {
        match self {
            Kind::Announce => "laundered_announce",
            Kind::Reply => "laundered_reply",
            Kind::Quote => "laundered_quote",
            Kind::Mention => "laundered_mention",
            Kind::AttributedTo => "laundered_attributed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// On in the rules file's table when it sets this kind, else in the config (see
    /// `effective`). Per kind rather than through `effective`, which clones the config: this
    /// runs on the request path.
    fn enabled(
        self,
        config: &FriendlyFederatorsConfig,
        table: Option<&FriendlyFederatorSettings>,
    ) -> bool {
        let (from_table, from_config) = match self {
            Kind::Announce => (table.and_then(|t| t.announce), config.announce),
            Kind::Reply => (table.and_then(|t| t.reply), config.reply),
            Kind::Quote => (table.and_then(|t| t.quote), config.quote),
            Kind::Mention => (table.and_then(|t| t.mention), config.mention),
            Kind::AttributedTo => (table.and_then(|t| t.attributed_to), config.attributed_to),
        };
        from_table.unwrap_or(from_config)
    }
}

/// The laundering kinds that drop, in `Kind::ALL` order, under `config` and the rules file's
/// table (the `dropping` of the report, and what `explain` lists).
pub fn dropping(
    config: &FriendlyFederatorsConfig,
    table: Option<&FriendlyFederatorSettings>,
) -> Vec<&'static str> {
    Kind::ALL
        .into_iter()
        .filter(|k| k.enabled(config, table))
        .map(Kind::as_str)
        .collect()
}

/// The settings in force: the config file's `[friendly_federators]`, with each key that a
/// loaded TOML rules file's `[friendly_federators]` table sets (laundering kinds, `threshold`,
/// `window`, `action`) replaced by the table's value, so moderators change them with a rules
/// reload and no restart. A key the table leaves out keeps the config's value: a table that
/// only turns on `reply` does not switch off escalation configured in the config file. Where
/// evidence is kept and how much stays with the config file.
pub fn effective<'c>(
    config: &'c FriendlyFederatorsConfig,
    table: Option<&FriendlyFederatorSettings>,
) -> Cow<'c, FriendlyFederatorsConfig> {
    let Some(table) = table else {
        return Cow::Borrowed(config);
    };
    let mut c = config.clone();
    c.announce = Kind::Announce.enabled(config, Some(table));
    c.attributed_to = Kind::AttributedTo.enabled(config, Some(table));
    c.reply = Kind::Reply.enabled(config, Some(table));
    c.quote = Kind::Quote.enabled(config, Some(table));
    c.mention = Kind::Mention.enabled(config, Some(table));
    if let Some(threshold) = table.threshold {
        c.threshold = Some(threshold);
    }
    if let Some(window) = table.window {
        // Evidence is counted in whole UTC days: a window is rounded up to days.
        let days = window.as_secs().div_ceil(SECS_PER_DAY).max(1);
        c.window = Some(crate::config::Window {
            days: u32::try_from(days)
                .unwrap_or(MAX_WINDOW_DAYS)
                .min(MAX_WINDOW_DAYS),
        });
    }
    if let Some(action) = table.action {
        c.action = Some(action);
    }
    Cow::Owned(c)
}

/// The laundering checks, the evidence store and the escalation state. Shared as
/// `Arc<Federators>` by the request path, the admin endpoint and the `maintain` task.
pub struct Federators {
    config: FriendlyFederatorsConfig,
    metrics: Arc<Metrics>,
    /// A std mutex: held for a few map operations (or one clone for a save), never across an
    /// await, and taken on the request path only when an activity referenced a listed domain.
    store: Mutex<Store>,
    /// Why the last save of the evidence file failed; `None` once one succeeds. `/readyz`
    /// shows it: the proxy still serves, but what it learns would not survive a restart.
    save_error: Mutex<Option<String>>,
    /// Held from evaluating escalation to handing its source to the rules, so a tick and a
    /// lift cannot put their sources in force in the other order.
    applying: Mutex<()>,
    /// The replicas' shared Redis (`[cluster]`), when evidence is shared.
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Federators {
    pub fn config(&self) -> &FriendlyFederatorsConfig {
        &self.config
    }

    /// Why the last save of the evidence file failed, while saves keep failing.
    pub fn save_error(&self) -> Option<String> {
        self.save_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn applying(&self) -> MutexGuard<'_, ()> {
        self.applying.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // Every update leaves the store consistent between statements that matter; a panic
        // elsewhere while holding the lock must not stop evidence or requests.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub use crate::clock::unix_now;

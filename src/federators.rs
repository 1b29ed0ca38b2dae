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

use crate::activity::Facts;
use crate::config::{EscalationAction, FriendlyFederatorsConfig, MAX_WINDOW_DAYS};
use crate::metrics::Metrics;
use crate::policy::rules_file::{self, FriendlyFederatorSettings};
use crate::policy::sources::{self, MASTODON_HEADER};
use crate::policy::{host, DomainRule, Severity, Snapshot};
use crate::rules::{MemorySource, Rules};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// The generated source's label: the `source` of its rules, metrics and `explain` lines.
pub const SOURCE_LABEL: &str = "friendly-federators";
/// Sample activity ids kept per sending domain (the newest).
pub const MAX_SAMPLES: usize = 5;
/// Distinct referenced domains kept per sending domain; later ones count only in the totals.
pub const MAX_REFERENCED: usize = 16;
/// A sample activity id longer than this is cut (on a character boundary).
const MAX_SAMPLE_BYTES: usize = 512;
/// An evidence file larger than this is refused as corrupt rather than read into memory.
const MAX_EVIDENCE_FILE_BYTES: u64 = 512 * 1024 * 1024;
/// Version of the evidence file layout.
const FILE_VERSION: u32 = 1;
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
        c.action = Some(match action {
            rules_file::EscalationAction::Report => EscalationAction::Report,
            rules_file::EscalationAction::Limit => EscalationAction::Limit,
            rules_file::EscalationAction::Suspend => EscalationAction::Suspend,
        });
    }
    Cow::Owned(c)
}

/// The laundering check's answer for an activity it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    /// `Kind::reason`: the `reason` label.
    pub reason: &'static str,
    /// The suspend rule is from a dry-run source: forward it and count it as `would_reject`.
    pub dry_run: bool,
}

/// One reference an activity makes to a domain a rule covers.
#[derive(Debug, Clone)]
pub struct Reference<'a> {
    pub kind: Kind,
    /// The referenced URI as the activity wrote it.
    pub uri: &'a str,
    /// Its normalised host.
    pub host: Cow<'a, str>,
    /// The rule covering the host: the enforcing one, or for a dry-run stop the dry-run one.
    pub rule: &'a DomainRule,
}

/// What the laundering check found in one activity. Pure: `Federators::inspect` records it
/// as evidence and answers the request by it; `explain` prints it.
#[derive(Debug, Default)]
pub struct Laundering<'a> {
    /// References to limited or suspended domains under enforcing rules: the evidence.
    pub found: Vec<Reference<'a>>,
    /// The answer when an enabled kind points at a suspended domain, with that reference.
    pub stop: Option<(Stop, Reference<'a>)>,
}

/// The laundering check for one verified activity whose key host and actor host are not
/// suspended: finds references to limited or suspended domains and says whether an enabled
/// kind (`config`, overridden by `rules`' `[friendly_federators]` table) points at a suspended
/// domain. An enforcing suspend wins over a dry-run one; among kinds, the first found in the
/// order announce, attributed_to, reply, quote, mention.
pub fn check<'a>(
    rules: &'a Snapshot,
    facts: &'a Facts,
    key_host: &str,
    actor_host: Option<&str>,
    config: &FriendlyFederatorsConfig,
) -> Laundering<'a> {
    let mut out = Laundering::default();
    let Some(object) = facts.object.as_ref() else {
        return out;
    };
    let sender = actor_host.unwrap_or(key_host);
    let table = rules.friendly_federators();
    let mut visit = |kind: Kind, uri: Option<&'a str>| {
        let Some((uri, host)) = uri.and_then(|u| Some((u, host_of(u)?))) else {
            return;
        };
        // A domain quoting or replying to itself is not federating with anyone.
        if host == sender || host == key_host {
            return;
        }
        let enforcing = rules
            .rule_for(&host)
            .filter(|r| matches!(r.severity, Severity::Silence | Severity::Suspend));
        if let Some(rule) = enforcing {
            out.found.push(Reference {
                kind,
                uri,
                host: host.clone(),
                rule,
            });
        }
        if !kind.enabled(config, table) || out.stop.as_ref().is_some_and(|(s, _)| !s.dry_run) {
            return;
        }
        let (rule, dry_run) = match enforcing {
            Some(rule) if rule.severity == Severity::Suspend => (rule, false),
            _ if out.stop.is_none() && rules.has_dry_run() => {
                match rules.rule_for_including_dry_run(&host) {
                    Some(r) if r.dry_run && r.severity == Severity::Suspend => (r, true),
                    _ => return,
                }
            }
            _ => return,
        };
        let stop = Stop {
            reason: kind.reason(),
            dry_run,
        };
        out.stop = Some((
            stop,
            Reference {
                kind,
                uri,
                host,
                rule,
            },
        ));
    };
    match facts.kind.as_deref() {
        Some("Announce") => {
            visit(Kind::Announce, object.id.as_deref());
            visit(Kind::Announce, object.attributed_to.as_deref());
        }
        Some("Create" | "Update") => {
            visit(Kind::AttributedTo, object.attributed_to.as_deref());
            visit(Kind::Reply, object.in_reply_to.as_deref());
            for quote in &object.quotes {
                visit(Kind::Quote, Some(quote));
            }
            for mention in &object.mentions {
                visit(Kind::Mention, Some(mention));
            }
        }
        _ => {}
    }
    out
}

/// The laundering checks, the evidence store and the escalation state. Shared as
/// `Arc<Federators>` by the request path, the admin endpoint and the `maintain` task.
pub struct Federators {
    config: FriendlyFederatorsConfig,
    metrics: Arc<Metrics>,
    /// A std mutex: held for a few map operations (or one clone for a save), never across an
    /// await, and taken on the request path only when an activity referenced a listed domain.
    store: Mutex<Store>,
}

/// Everything the evidence file holds, plus what only lives in memory.
#[derive(Debug, Default)]
struct Store {
    domains: HashMap<String, DomainEvidence>,
    escalated: BTreeMap<String, Escalated>,
    /// Changed since the last save.
    dirty: bool,
    /// Domains over the threshold at the last evaluation (for `action = "report"` logs, which
    /// name a domain when it crosses, not on every tick).
    over_threshold: BTreeSet<String>,
    /// The action of the generated source last handed to the rules; `None` while it is not in
    /// force (at startup, and while escalation is off or only reports). When the action in
    /// force differs from the configured one, the source is regenerated.
    enforced: Option<EscalationAction>,
}

/// Evidence about one sending domain. Also its layout in the evidence file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainEvidence {
    /// Activities that referenced at least one limited or suspended domain.
    pub total: u64,
    /// Of those, how many were dropped (not forwarded) by a laundering check.
    #[serde(default)]
    pub dropped: u64,
    /// Activities per kind of reference (one activity can count under several kinds).
    pub by_kind: KindCounts,
    /// Activities per severity of the referenced domain's rule.
    pub by_severity: SeverityCounts,
    /// Referenced domains with how many activities referenced each, at most `MAX_REFERENCED`.
    #[serde(default)]
    pub referenced: Vec<Referenced>,
    /// The newest activity ids (oldest first), at most `MAX_SAMPLES`.
    #[serde(default)]
    pub samples: Vec<String>,
    /// Unix seconds.
    pub first_seen: u64,
    pub last_seen: u64,
    /// `(UTC day number, activities)` for the last `window` days, oldest first.
    #[serde(default)]
    pub days: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    #[serde(default)]
    pub announce: u64,
    #[serde(default)]
    pub reply: u64,
    #[serde(default)]
    pub quote: u64,
    #[serde(default)]
    pub mention: u64,
    #[serde(default)]
    pub attributed_to: u64,
}

impl KindCounts {
    pub fn get(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Announce => self.announce,
            Kind::Reply => self.reply,
            Kind::Quote => self.quote,
            Kind::Mention => self.mention,
            Kind::AttributedTo => self.attributed_to,
        }
    }

    fn bump(&mut self, kind: Kind) {
        let slot = match kind {
            Kind::Announce => &mut self.announce,
            Kind::Reply => &mut self.reply,
            Kind::Quote => &mut self.quote,
            Kind::Mention => &mut self.mention,
            Kind::AttributedTo => &mut self.attributed_to,
        };
        *slot = slot.saturating_add(1);
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCounts {
    #[serde(default)]
    pub silence: u64,
    #[serde(default)]
    pub suspend: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referenced {
    pub domain: String,
    pub count: u64,
}

/// A domain escalated into the generated source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalated {
    /// Unix seconds.
    pub at: u64,
    /// References within the window when it escalated.
    pub count: u64,
}

/// The evidence file.
#[derive(Debug, Serialize, Deserialize)]
struct EvidenceFile {
    version: u32,
    /// Unix seconds.
    saved_at: u64,
    domains: BTreeMap<String, DomainEvidence>,
    #[serde(default)]
    escalated: BTreeMap<String, Escalated>,
}

/// Why the evidence file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// No `evidence_file` is configured.
    #[error("no [friendly_federators] evidence_file is configured")]
    NotConfigured,
    /// The file does not exist (nothing saved yet).
    #[error("{path}: no evidence saved yet")]
    Missing { path: PathBuf },
    /// Reading, writing or renaming failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is larger than `MAX_EVIDENCE_FILE_BYTES`.
    #[error("{path}: larger than {MAX_EVIDENCE_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    /// Not JSON of the expected shape.
    #[error("{path}: not a friendly-federator evidence file: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// The `escalated` map does not make valid rules (a hand-edited file).
    #[error("{path}: escalated domains do not make valid rules: {source}")]
    Generated {
        path: PathBuf,
        source: sources::LoadError,
    },
    /// A layout this version does not know.
    #[error(
        "{path}: evidence file version {version}; this inboxguard reads version {FILE_VERSION}"
    )]
    Version { path: PathBuf, version: u32 },
}

impl Federators {
    /// Builds the store and loads the evidence file when one is configured. A missing file
    /// starts empty; an unreadable or corrupt one is logged, kept as `<file>.corrupt` (when
    /// corrupt), and the store starts empty, so a bad file never stops the proxy.
    pub fn new(config: &FriendlyFederatorsConfig, metrics: Arc<Metrics>) -> Federators {
        let mut store = Store::default();
        if let Some(path) = &config.evidence_file {
            let count = |result: &str| {
                metrics
                    .friendly_federator_evidence_file_total
                    .with_label_values(&["load", result])
                    .inc();
            };
            match read_file(path) {
                Ok(file) => {
                    store = Store::from_file(file, config);
                    count("ok");
                    tracing::info!(
                        file = %path.display(),
                        domains = store.domains.len(),
                        escalated = store.escalated.len(),
                        "friendly-federator evidence loaded"
                    );
                }
                Err(EvidenceError::Missing { .. }) => {
                    count("missing");
                    tracing::info!(file = %path.display(), "no friendly-federator evidence saved yet; starting empty");
                }
                Err(
                    e @ (EvidenceError::Corrupt { .. }
                    | EvidenceError::Version { .. }
                    | EvidenceError::TooLarge { .. }),
                ) => {
                    count("corrupt");
                    let aside = with_suffix(path, ".corrupt");
                    match std::fs::rename(path, &aside) {
                        Ok(()) => {
                            tracing::error!(error = %e, kept_as = %aside.display(), "friendly-federator evidence file is corrupt; starting empty")
                        }
                        Err(re) => {
                            tracing::error!(error = %e, rename_error = %re, "friendly-federator evidence file is corrupt and could not be moved aside; starting empty")
                        }
                    }
                }
                Err(e) => {
                    count("error");
                    tracing::error!(error = %e, "cannot read friendly-federator evidence; starting empty");
                }
            }
        } else {
            tracing::info!(
                "no [friendly_federators] evidence_file: evidence is kept in memory only"
            );
        }
        metrics
            .friendly_federator_tracked_domains
            .set(gauge(store.domains.len()));
        Federators {
            config: config.clone(),
            metrics,
            store: Mutex::new(store),
        }
    }

    pub fn config(&self) -> &FriendlyFederatorsConfig {
        &self.config
    }

    /// The laundering check (`check`) for one verified activity, on the request path: records
    /// what it found as evidence and says whether to stop the activity.
    pub fn inspect(
        &self,
        rules: &Snapshot,
        facts: &Facts,
        key_host: &str,
        actor_host: Option<&str>,
    ) -> Option<Stop> {
        let Laundering { found, stop } = check(rules, facts, key_host, actor_host, &self.config);
        if !found.is_empty() {
            let sender = actor_host.unwrap_or(key_host);
            let dropped = stop.as_ref().is_some_and(|(s, _)| !s.dry_run);
            let window_days = effective(&self.config, rules.friendly_federators()).window_days();
            self.record(
                sender,
                facts.id.as_deref(),
                &found,
                dropped,
                unix_now(),
                window_days,
            );
            if let Some((_, by)) = stop.as_ref().filter(|(s, _)| !s.dry_run) {
                tracing::info!(
                    sender,
                    referenced = %by.host,
                    kind = by.kind.as_str(),
                    activity = facts.id.as_deref().unwrap_or("-"),
                    "dropped an activity carrying content from a suspended domain"
                );
            }
        }
        stop.map(|(s, _)| s)
    }

    /// Adds one activity's references to the sender's evidence.
    fn record(
        &self,
        sender: &str,
        id: Option<&str>,
        found: &[Reference<'_>],
        dropped: bool,
        now: u64,
        window_days: u32,
    ) {
        // Each (kind, severity) pair and each referenced domain counts once per activity.
        let mut pairs = [[false; 2]; 5];
        for f in found {
            pairs[f.kind.index()][usize::from(f.rule.severity == Severity::Suspend)] = true;
        }
        let mut referenced: Vec<&str> = found.iter().map(|f| &*f.host).collect();
        referenced.sort_unstable();
        referenced.dedup();
        let tracked = {
            let mut store = self.lock();
            store.make_room(sender, self.config.max_tracked_domains);
            let e = store
                .domains
                .entry(sender.to_owned())
                .or_insert_with(|| DomainEvidence {
                    first_seen: now,
                    ..DomainEvidence::default()
                });
            e.total = e.total.saturating_add(1);
            e.dropped = e.dropped.saturating_add(u64::from(dropped));
            for kind in Kind::ALL {
                if pairs[kind.index()].iter().any(|&p| p) {
                    e.by_kind.bump(kind);
                }
            }
            if found.iter().any(|f| f.rule.severity == Severity::Suspend) {
                e.by_severity.suspend = e.by_severity.suspend.saturating_add(1);
            } else {
                e.by_severity.silence = e.by_severity.silence.saturating_add(1);
            }
            for domain in referenced {
                if let Some(r) = e.referenced.iter_mut().find(|r| r.domain == domain) {
                    r.count = r.count.saturating_add(1);
                } else if e.referenced.len() < MAX_REFERENCED {
                    e.referenced.push(Referenced {
                        domain: domain.to_owned(),
                        count: 1,
                    });
                }
            }
            if let Some(id) = id {
                if e.samples.len() >= MAX_SAMPLES {
                    e.samples.remove(0);
                }
                e.samples.push(truncate(id, MAX_SAMPLE_BYTES).to_owned());
            }
            e.first_seen = e.first_seen.min(now);
            e.last_seen = e.last_seen.max(now);
            bump_day(&mut e.days, now / SECS_PER_DAY, window_days);
            store.dirty = true;
            store.domains.len()
        };
        for kind in Kind::ALL {
            for (i, severity) in ["silence", "suspend"].into_iter().enumerate() {
                if pairs[kind.index()][i] {
                    self.metrics
                        .friendly_federator_references_total
                        .with_label_values(&[kind.as_str(), severity])
                        .inc();
                }
            }
        }
        self.metrics
            .friendly_federator_tracked_domains
            .set(gauge(tracked));
    }

    /// The evidence as `/admin/friendly-federators` and `inboxguard report` show it.
    /// `table`: the loaded rules file's `[friendly_federators]` table, if any (see `effective`).
    pub fn report(&self, now: u64, table: Option<&FriendlyFederatorSettings>) -> Report {
        let store = self.lock();
        let config = effective(&self.config, table);
        Report::build(&store.domains, &store.escalated, &config, now, None)
    }

    /// Saves the evidence if it changed since the last save (blocking file I/O: call from a
    /// blocking thread). `Ok(false)` when there was nothing to save or no file is configured.
    pub fn save(&self, now: u64) -> Result<bool, EvidenceError> {
        let Some(path) = &self.config.evidence_file else {
            return Ok(false);
        };
        // Copy under the lock, serialise and write outside it.
        let file = {
            let mut store = self.lock();
            if !store.dirty {
                return Ok(false);
            }
            store.dirty = false;
            EvidenceFile {
                version: FILE_VERSION,
                saved_at: now,
                domains: store
                    .domains
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                escalated: store.escalated.clone(),
            }
        };
        let result = write_file(path, &file);
        let label = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .friendly_federator_evidence_file_total
            .with_label_values(&["save", label])
            .inc();
        if result.is_err() {
            // Try again on the next tick.
            self.lock().dirty = true;
        }
        result.map(|()| true)
    }

    /// Re-evaluates escalation at `now` under the settings in force. Returns the generated
    /// source to put in force when the escalated domains or the action changed (`Some(None)`:
    /// take it out of force), else `None`. Pure bookkeeping; the caller does the reload.
    ///
    /// Escalations are never deleted here: with escalation off or `action = "report"` they stay
    /// in the store (and the evidence file), only out of force, and come back into force with
    /// the action that is configured when it is `limit` or `suspend` again. A rules reload
    /// therefore cannot forget a sticky escalation.
    fn evaluate(
        &self,
        now: u64,
        table: Option<&FriendlyFederatorSettings>,
    ) -> Option<Option<MemorySource>> {
        let config = effective(&self.config, table);
        let action = config.action();
        let enforcing = config.threshold.is_some() && action != EscalationAction::Report;
        let mut store = self.lock();
        let mut over: BTreeMap<String, u64> = BTreeMap::new();
        let mut changed = false;
        if let Some(threshold) = config.threshold {
            let from_day = (now / SECS_PER_DAY + 1).saturating_sub(u64::from(config.window_days()));
            over = store
                .domains
                .iter()
                .filter_map(|(domain, e)| {
                    let count = in_window(&e.days, from_day);
                    (count >= threshold).then(|| (domain.clone(), count))
                })
                .collect();
            for (domain, &count) in &over {
                if store.escalated.contains_key(domain) {
                    continue;
                }
                if !enforcing {
                    // Logged when it crosses; but a domain already over the threshold while
                    // the action was `report` still escalates once the action enforces.
                    if !store.over_threshold.contains(domain) {
                        tracing::warn!(
                            domain = %domain,
                            references = count,
                            threshold,
                            window_days = config.window_days(),
                            "friendly federator over the escalation threshold (action = report: no rule generated)"
                        );
                    }
                    continue;
                }
                if store.escalated.len() >= config.max_tracked_domains {
                    tracing::error!(domain = %domain, limit = config.max_tracked_domains, "too many escalated friendly federators; not escalating more");
                    continue;
                }
                tracing::warn!(
                    domain = %domain,
                    references = count,
                    threshold,
                    window_days = config.window_days(),
                    action = action.as_str(),
                    "friendly federator escalated into the generated rule source"
                );
                store
                    .escalated
                    .insert(domain.clone(), Escalated { at: now, count });
                store.dirty = true;
                changed = true;
            }
        }
        store.over_threshold = over.into_keys().collect();
        let count = if enforcing {
            store.escalated.len()
        } else {
            store.over_threshold.len()
        };
        for a in [
            EscalationAction::Report,
            EscalationAction::Limit,
            EscalationAction::Suspend,
        ] {
            let value = if a == action { gauge(count) } else { 0 };
            self.metrics
                .friendly_federator_escalations
                .with_label_values(&[a.as_str()])
                .set(value);
        }
        if !enforcing {
            store.enforced.take()?;
            tracing::warn!(
                count = store.escalated.len(),
                "escalation is off or set to report: escalated friendly federators are no longer enforced (kept, and enforced again when action is limit or suspend)"
            );
            return Some(None);
        }
        let regenerate = changed || store.enforced != Some(action);
        if !regenerate || (store.escalated.is_empty() && store.enforced.is_none()) {
            return None;
        }
        match generated_source(&store.escalated, action, config.window_days()) {
            Ok(source) => {
                store.enforced = Some(action);
                Some(Some(source))
            }
            Err(e) => {
                // Domains are normalised when recorded or loaded, so this means a bug; keep
                // the rules in force as they are.
                tracing::error!(error = %e, "generated friendly-federator rules did not parse");
                None
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // Every update leaves the store consistent between statements that matter; a panic
        // elsewhere while holding the lock must not stop evidence or requests.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Puts the escalation state loaded from the evidence file in force (blocking: call before
/// serving, or from a blocking thread), so a restart never lets an escalated domain through.
pub fn apply_at_startup(federators: &Federators, rules: &Rules) {
    apply(federators, rules, unix_now());
}

fn apply(federators: &Federators, rules: &Rules, now: u64) {
    let snapshot = rules.current().load();
    match federators.evaluate(now, snapshot.friendly_federators()) {
        None => {}
        Some(Some(source)) => {
            // `set_memory_source` logs and counts a failed reload itself; the source is kept
            // and takes effect with the next successful one.
            let _ = rules.set_memory_source(source);
        }
        Some(None) => {
            let _ = rules.remove_memory_source(SOURCE_LABEL);
        }
    }
}

/// Saves the evidence and re-evaluates escalation every `persist_interval_secs` until
/// `shutdown` resolves, then saves once more. Spawned by `run`; the last save happens after
/// the proxy has drained, so it holds every request's evidence.
pub async fn maintain(
    federators: Arc<Federators>,
    rules: Arc<Rules>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut tick = tokio::time::interval(federators.config.persist_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        let (f, r) = (federators.clone(), rules.clone());
        let work = tokio::task::spawn_blocking(move || {
            let now = unix_now();
            apply(&f, &r, now);
            save_logged(&f, now);
        });
        if let Err(e) = work.await {
            tracing::error!(error = %e, "friendly-federator maintenance task failed");
        }
    }
    let f = federators.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || save_logged(&f, unix_now())).await {
        tracing::error!(error = %e, "friendly-federator final save failed");
    }
}

fn save_logged(federators: &Federators, now: u64) {
    match federators.save(now) {
        Ok(true) => tracing::debug!("friendly-federator evidence saved"),
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot save friendly-federator evidence; retrying on the next tick")
        }
    }
}

/// The generated rule source: one Mastodon CSV line per escalated domain, parsed by the same
/// code as any rule file (so the domains are normalised and the lines are what `explain`
/// names).
fn generated_source(
    escalated: &BTreeMap<String, Escalated>,
    action: EscalationAction,
    window_days: u32,
) -> Result<MemorySource, sources::LoadError> {
    let severity = match action {
        EscalationAction::Suspend => Severity::Suspend,
        _ => Severity::Silence,
    };
    let mut text = format!("{MASTODON_HEADER}\n");
    for (domain, e) in escalated {
        text.push_str(&format!(
            "{domain},{severity},false,false,friendly federator: {} references within {window_days} days; escalated {},false\n",
            e.count,
            rfc3339(e.at)
        ));
    }
    let parsed = sources::parse_bytes(
        text.as_bytes(),
        Arc::from(SOURCE_LABEL),
        crate::config::BlocklistFormat::MastodonCsv,
    )?;
    Ok(MemorySource::new(SOURCE_LABEL, Arc::new(parsed)))
}

impl Store {
    /// A store from a loaded file, cut to this configuration's bounds; entries whose domain
    /// is not a normalised host (a hand-edited file) are skipped.
    fn from_file(file: EvidenceFile, config: &FriendlyFederatorsConfig) -> Store {
        let valid = |d: &str| host::normalize(d).as_deref() == Some(d);
        let mut domains: Vec<(String, DomainEvidence)> =
            file.domains.into_iter().filter(|(d, _)| valid(d)).collect();
        if domains.len() > config.max_tracked_domains {
            domains.sort_by_key(|d| std::cmp::Reverse(d.1.total));
            domains.truncate(config.max_tracked_domains);
        }
        let keep_days = u64::from(config.window_days().min(MAX_WINDOW_DAYS));
        for (_, e) in &mut domains {
            e.samples = std::mem::take(&mut e.samples)
                .into_iter()
                .rev()
                .take(MAX_SAMPLES)
                .rev()
                .map(|s| truncate(&s, MAX_SAMPLE_BYTES).to_owned())
                .collect();
            e.referenced.retain(|r| valid(&r.domain));
            e.referenced.truncate(MAX_REFERENCED);
            e.days.sort_unstable();
            e.days.dedup_by_key(|d| d.0);
            let newest = e.days.last().map_or(0, |d| d.0);
            e.days.retain(|d| d.0 + keep_days > newest);
        }
        Store {
            domains: domains.into_iter().collect(),
            escalated: file
                .escalated
                .into_iter()
                .filter(|(d, _)| valid(d))
                .take(config.max_tracked_domains)
                .collect(),
            dirty: false,
            over_threshold: BTreeSet::new(),
            enforced: None,
        }
    }

    /// Evicts the domain with the fewest references (the least recently seen among equals)
    /// when `incoming` is new and the store is full. A linear scan: it runs only when a new
    /// domain arrives at a full store, on the rare path where a reference matched.
    fn make_room(&mut self, incoming: &str, max: usize) {
        if self.domains.len() < max || self.domains.contains_key(incoming) {
            return;
        }
        let victim = self
            .domains
            .iter()
            .min_by_key(|(_, e)| (e.total, e.last_seen))
            .map(|(d, _)| d.clone());
        if let Some(victim) = victim {
            self.domains.remove(&victim);
        }
    }
}

/// Counts one activity on `day`, keeping only the last `keep` days.
fn bump_day(days: &mut Vec<(u64, u64)>, day: u64, keep: u32) {
    match days.last_mut() {
        Some((d, n)) if *d == day => *n = n.saturating_add(1),
        // A clock that stepped back: count it on the newest day rather than reorder.
        Some((d, n)) if *d > day => *n = n.saturating_add(1),
        _ => days.push((day, 1)),
    }
    let newest = days.last().map_or(day, |d| d.0);
    days.retain(|(d, _)| d + u64::from(keep) > newest);
}

fn in_window(days: &[(u64, u64)], from_day: u64) -> u64 {
    days.iter()
        .filter(|(d, _)| *d >= from_day)
        .fold(0u64, |sum, (_, n)| sum.saturating_add(*n))
}

/// The normalised host of `uri`, borrowed when the URI is already in the canonical form most
/// senders use (`https://lower.case.host/…`), else through `host::of_uri`. Borrowing only
/// where `of_uri` would return the same text: no uppercase, port, userinfo, percent-escape,
/// trailing dot, punycode label (which IDNA validates), or numeric last label (which the URL
/// parser reads as an IPv4 address).
fn host_of(uri: &str) -> Option<Cow<'_, str>> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"));
    if let Some(rest) = rest {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let name = &rest[..end];
        if is_canonical_name(name) {
            return Some(Cow::Borrowed(name));
        }
    }
    host::of_uri(uri).map(Cow::Owned)
}

fn is_canonical_name(name: &str) -> bool {
    let labels_ok = name.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && !label.starts_with("xn--")
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    });
    let last = name.rsplit('.').next().unwrap_or("");
    let numeric_last = last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x");
    !name.is_empty() && name.len() < 256 && labels_ok && !numeric_last
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

fn read_file(path: &Path) -> Result<EvidenceFile, EvidenceError> {
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            EvidenceError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            EvidenceError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_EVIDENCE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_EVIDENCE_FILE_BYTES {
        return Err(EvidenceError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let file: EvidenceFile =
        serde_json::from_slice(&bytes).map_err(|source| EvidenceError::Corrupt {
            path: path.to_path_buf(),
            source,
        })?;
    if file.version != FILE_VERSION {
        return Err(EvidenceError::Version {
            path: path.to_path_buf(),
            version: file.version,
        });
    }
    Ok(file)
}

/// Writes `<file>.tmp`, syncs it, and renames it over the file: a crash mid-save leaves the
/// previous evidence, never half a file.
fn write_file(path: &Path, file: &EvidenceFile) -> Result<(), EvidenceError> {
    let tmp = with_suffix(path, ".tmp");
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| EvidenceError::Io { path: p, source }
    };
    let bytes = serde_json::to_vec(file).map_err(|source| EvidenceError::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    out.write_all(&bytes).map_err(io(&tmp))?;
    out.sync_all().map_err(io(&tmp))?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Reads the evidence file named by `config` into a report, as `inboxguard report` shows it.
/// The file is what the running proxy saved last (at most `persist_interval_secs` old).
pub fn report_from_file(
    config: &FriendlyFederatorsConfig,
    now: u64,
) -> Result<Report, EvidenceError> {
    let path = config
        .evidence_file
        .as_ref()
        .ok_or(EvidenceError::NotConfigured)?;
    let file = read_file(path)?;
    let saved_at = file.saved_at;
    let store = Store::from_file(file, config);
    Ok(Report::build(
        &store.domains,
        &store.escalated,
        config,
        now,
        Some(saved_at),
    ))
}

/// The generated `friendly-federators` source as the running proxy has it in force, from the
/// evidence file named by `config` (the effective settings, see `effective`), for `explain`
/// and `check`, which never write the file. `Ok(None)` when escalation is off or only
/// reports, or nothing escalated.
pub fn escalated_from_file(
    config: &FriendlyFederatorsConfig,
) -> Result<Option<MemorySource>, EvidenceError> {
    let path = config
        .evidence_file
        .as_ref()
        .ok_or(EvidenceError::NotConfigured)?;
    let store = Store::from_file(read_file(path)?, config);
    let action = config.action();
    if config.threshold.is_none()
        || action == EscalationAction::Report
        || store.escalated.is_empty()
    {
        return Ok(None);
    }
    generated_source(&store.escalated, action, config.window_days())
        .map(Some)
        .map_err(|source| EvidenceError::Generated {
            path: path.clone(),
            source,
        })
}

/// The evidence, most references first, for the admin endpoint (JSON) and `report` (table).
#[derive(Debug, Serialize)]
pub struct Report {
    pub generated_at: String,
    /// When the evidence file was saved (for a report read from the file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_at: Option<String>,
    pub tracked_domains: usize,
    pub max_tracked_domains: usize,
    /// The laundering kinds that drop activities.
    pub dropping: Vec<&'static str>,
    pub escalation: Option<EscalationReport>,
    /// Domains in the generated `friendly-federators` source.
    pub escalated: Vec<EscalatedReport>,
    /// At most `report_top` domains, most references first.
    pub domains: Vec<DomainReport>,
}

#[derive(Debug, Serialize)]
pub struct EscalationReport {
    pub threshold: u64,
    pub window_days: u32,
    pub action: &'static str,
}

#[derive(Debug, Serialize)]
pub struct EscalatedReport {
    pub domain: String,
    pub severity: &'static str,
    pub escalated_at: String,
    pub references_in_window: u64,
}

#[derive(Debug, Serialize)]
pub struct DomainReport {
    pub domain: String,
    pub total: u64,
    /// References within the escalation window (7 days when escalation is off).
    pub in_window: u64,
    pub dropped: u64,
    pub by_kind: KindCounts,
    pub by_severity: SeverityCounts,
    pub referenced: Vec<Referenced>,
    pub samples: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
    /// `escalated` (in the generated source), `would_escalate` (over the threshold with
    /// `action = "report"`), or absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
}

impl Report {
    fn build(
        domains: &HashMap<String, DomainEvidence>,
        escalated: &BTreeMap<String, Escalated>,
        config: &FriendlyFederatorsConfig,
        now: u64,
        saved_at: Option<u64>,
    ) -> Report {
        let action = config.action();
        let from_day = (now / SECS_PER_DAY + 1).saturating_sub(u64::from(config.window_days()));
        let mut top: Vec<(&String, &DomainEvidence)> = domains.iter().collect();
        top.sort_by(|a, b| b.1.total.cmp(&a.1.total).then_with(|| a.0.cmp(b.0)));
        top.truncate(config.report_top);
        // Escalated domains stay listed while escalation is off or only reports; they are
        // then not enforced.
        let severity = match (config.threshold, action) {
            (Some(_), EscalationAction::Suspend) => "suspend",
            (Some(_), EscalationAction::Limit) => "silence",
            _ => "not_enforced",
        };
        Report {
            generated_at: rfc3339(now),
            saved_at: saved_at.map(rfc3339),
            tracked_domains: domains.len(),
            max_tracked_domains: config.max_tracked_domains,
            dropping: dropping(config, None),
            escalation: config.threshold.map(|threshold| EscalationReport {
                threshold,
                window_days: config.window_days(),
                action: action.as_str(),
            }),
            escalated: escalated
                .iter()
                .map(|(domain, e)| EscalatedReport {
                    domain: domain.clone(),
                    severity,
                    escalated_at: rfc3339(e.at),
                    references_in_window: e.count,
                })
                .collect(),
            domains: top
                .into_iter()
                .map(|(domain, e)| {
                    let in_window = in_window(&e.days, from_day);
                    let status = if escalated.contains_key(domain) {
                        Some("escalated")
                    } else if config.threshold.is_some_and(|t| in_window >= t)
                        && action == EscalationAction::Report
                    {
                        Some("would_escalate")
                    } else {
                        None
                    };
                    DomainReport {
                        domain: domain.clone(),
                        total: e.total,
                        in_window,
                        dropped: e.dropped,
                        by_kind: e.by_kind,
                        by_severity: e.by_severity,
                        referenced: e.referenced.clone(),
                        samples: e.samples.clone(),
                        first_seen: rfc3339(e.first_seen),
                        last_seen: rfc3339(e.last_seen),
                        status,
                    }
                })
                .collect(),
        }
    }
}

/// The `inboxguard report` table: one row per domain, then its referenced domains and samples.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "friendly federators: {} sending domains tracked (limit {})",
            self.tracked_domains, self.max_tracked_domains
        )?;
        match &self.saved_at {
            Some(saved) => writeln!(f, ", evidence saved {saved}")?,
            None => writeln!(f)?,
        }
        let dropping = if self.dropping.is_empty() {
            "nothing".to_string()
        } else {
            self.dropping.join(", ")
        };
        writeln!(f, "dropping: {dropping}")?;
        match &self.escalation {
            Some(e) => writeln!(
                f,
                "escalation: {} references within {} days -> {}",
                e.threshold, e.window_days, e.action
            )?,
            None => writeln!(f, "escalation: off")?,
        }
        for e in &self.escalated {
            writeln!(
                f,
                "escalated: {} ({}, since {}, {} references)",
                e.domain, e.severity, e.escalated_at, e.references_in_window
            )?;
        }
        if self.domains.is_empty() {
            return writeln!(f, "no evidence yet");
        }
        let width = self
            .domains
            .iter()
            .map(|d| d.domain.len())
            .max()
            .unwrap_or(0)
            .max("DOMAIN".len());
        writeln!(
            f,
            "{:<width$}  {:>7} {:>9} {:>7} {:>8} {:>6} {:>6} {:>8} {:>10}  {:<20}  {:<20}  STATUS",
            "DOMAIN",
            "TOTAL",
            "IN_WINDOW",
            "DROPPED",
            "ANNOUNCE",
            "REPLY",
            "QUOTE",
            "MENTION",
            "ATTRIBUTED",
            "FIRST_SEEN",
            "LAST_SEEN",
        )?;
        for d in &self.domains {
            let k = &d.by_kind;
            writeln!(
                f,
                "{:<width$}  {:>7} {:>9} {:>7} {:>8} {:>6} {:>6} {:>8} {:>10}  {:<20}  {:<20}  {}",
                d.domain,
                d.total,
                d.in_window,
                d.dropped,
                k.announce,
                k.reply,
                k.quote,
                k.mention,
                k.attributed_to,
                d.first_seen,
                d.last_seen,
                d.status.unwrap_or("-"),
            )?;
            let referenced: Vec<String> = d
                .referenced
                .iter()
                .map(|r| format!("{} ({})", r.domain, r.count))
                .collect();
            writeln!(f, "    referenced: {}", referenced.join(", "))?;
            for sample in &d.samples {
                writeln!(f, "    sample: {sample}")?;
            }
        }
        Ok(())
    }
}

/// `2026-01-31T12:00:00Z` for Unix seconds (UTC; proleptic Gregorian, as chrono would print).
pub fn rfc3339(unix: u64) -> String {
    let days = unix / SECS_PER_DAY;
    let secs = unix % SECS_PER_DAY;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (non-negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(domain: &str, severity: Severity, dry_run: bool) -> DomainRule {
        DomainRule {
            domain: domain.into(),
            digest: None,
            severity,
            reject_media: false,
            reject_reports: false,
            public_comment: None,
            dry_run,
            source: Arc::from("test.csv"),
            line: 1,
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot::from_rules([
            rule("bad.example", Severity::Suspend, false),
            rule("quiet.example", Severity::Silence, false),
            rule("fine.example", Severity::Noop, false),
            rule("preview.example", Severity::Suspend, true),
        ])
    }

    fn reference(kind: Kind, rule: &DomainRule) -> Reference<'_> {
        Reference {
            kind,
            uri: "https://listed.example/n/1",
            host: Cow::Borrowed(&rule.domain),
            rule,
        }
    }

    fn config() -> FriendlyFederatorsConfig {
        FriendlyFederatorsConfig::default()
    }

    fn federators(config: FriendlyFederatorsConfig) -> Federators {
        Federators::new(&config, Arc::new(Metrics::new().expect("metrics")))
    }

    fn facts(json: &str) -> Facts {
        Facts::parse(json.as_bytes()).expect("activity")
    }

    fn check(f: &Federators, json: &str) -> Option<Stop> {
        f.inspect(
            &snapshot(),
            &facts(json),
            "friend.example",
            Some("friend.example"),
        )
    }

    fn stop(reason: &'static str) -> Option<Stop> {
        Some(Stop {
            reason,
            dry_run: false,
        })
    }

    #[test]
    fn canonical_hosts_are_borrowed_and_agree_with_of_uri() {
        for uri in [
            "https://bad.example/users/x",
            "http://a-b_c.example",
            "https://bad.example?x#y",
            "https://Bad.Example/x",
            "https://bad.example./x",
            "https://bad.example:443/x",
            "https://user@bad.example/x",
            "https://b%61d.example/x",
            "https://xn--bcher-kva.example/x",
            "https://bücher.example/x",
            "https://192.0.2.1/x",
            "https://0x7f.1/x",
            "https://[2001:db8::1]/x",
            "acct:x@bad.example",
            "https://",
            "https:///x",
            "not a uri",
            " https://bad.example/x ",
        ] {
            assert_eq!(
                host_of(uri).map(Cow::into_owned),
                host::of_uri(uri),
                "{uri}"
            );
        }
        assert!(matches!(
            host_of("https://bad.example/x"),
            Some(Cow::Borrowed("bad.example"))
        ));
    }

    #[test]
    fn each_kind_is_found_and_only_enabled_kinds_stop() {
        let f = federators(config());
        let announce = r#"{"type":"Announce","id":"https://friend.example/a/1","actor":"https://friend.example/u/f","object":"https://bad.example/n/1"}"#;
        assert_eq!(check(&f, announce), stop("laundered_announce"));
        let announce_embedded = r#"{"type":"Announce","actor":"https://friend.example/u/f",
            "object":{"id":"https://relay.example/n/1","attributedTo":"https://sub.bad.example/u/b"}}"#;
        assert_eq!(check(&f, announce_embedded), stop("laundered_announce"));
        let attributed = r#"{"type":"Create","actor":"https://friend.example/u/f",
            "object":{"id":"https://friend.example/n/1","attributedTo":"https://bad.example/u/b"}}"#;
        assert_eq!(check(&f, attributed), stop("laundered_attributed"));
        let reply = r#"{"type":"Create","actor":"https://friend.example/u/f",
            "object":{"attributedTo":"https://friend.example/u/f","inReplyTo":"https://bad.example/n/1"}}"#;
        let quote = r#"{"type":"Create","actor":"https://friend.example/u/f",
            "object":{"attributedTo":"https://friend.example/u/f","_misskey_quote":"https://bad.example/n/1"}}"#;
        let mention = r#"{"type":"Create","actor":"https://friend.example/u/f",
            "object":{"attributedTo":"https://friend.example/u/f","tag":[{"type":"Mention","href":"https://bad.example/u/b"}]}}"#;
        // Off by default: counted, not stopped.
        for body in [reply, quote, mention] {
            assert_eq!(check(&f, body), None, "{body}");
        }
        let mut on = config();
        (on.reply, on.quote, on.mention) = (true, true, true);
        let f2 = federators(on);
        assert_eq!(check(&f2, reply), stop("laundered_reply"));
        assert_eq!(check(&f2, quote), stop("laundered_quote"));
        assert_eq!(check(&f2, mention), stop("laundered_mention"));

        let report = f.report(unix_now(), None);
        let d = &report.domains[0];
        assert_eq!(d.domain, "friend.example");
        assert_eq!((d.total, d.dropped), (6, 3));
        let k = d.by_kind;
        assert_eq!(
            (k.announce, k.attributed_to, k.reply, k.quote, k.mention),
            (2, 1, 1, 1, 1)
        );
        assert_eq!(d.by_severity.suspend, 6);
        assert_eq!(
            d.referenced,
            [
                Referenced {
                    domain: "bad.example".into(),
                    count: 5
                },
                Referenced {
                    domain: "sub.bad.example".into(),
                    count: 1
                }
            ]
        );
        assert_eq!(d.samples, ["https://friend.example/a/1"]);
    }

    #[test]
    fn limited_noop_self_and_other_types_are_not_dropped() {
        let f = federators(config());
        // A boost of limited content is evidence, never a drop.
        let quiet = r#"{"type":"Announce","id":"https://friend.example/a/2","actor":"https://friend.example/u/f","object":"https://quiet.example/n/1"}"#;
        assert_eq!(check(&f, quiet), None);
        for body in [
            r#"{"type":"Announce","actor":"https://friend.example/u/f","object":"https://fine.example/n/1"}"#,
            r#"{"type":"Announce","actor":"https://friend.example/u/f","object":"https://friend.example/n/1"}"#,
            r#"{"type":"Like","actor":"https://friend.example/u/f","object":"https://bad.example/n/1"}"#,
            r#"{"type":"Create","actor":"https://friend.example/u/f","object":"https://bad.example/n/1"}"#,
            r#"{"type":"Create","actor":"https://friend.example/u/f","object":{"inReplyTo":"not a uri"}}"#,
        ] {
            assert_eq!(check(&f, body), None, "{body}");
        }
        let report = f.report(unix_now(), None);
        assert_eq!(report.domains.len(), 1);
        let d = &report.domains[0];
        assert_eq!((d.total, d.dropped, d.by_severity.silence), (1, 0, 1));
    }

    #[test]
    fn a_dry_run_suspend_would_drop_and_an_enforcing_one_wins() {
        let f = federators(config());
        let preview = r#"{"type":"Announce","actor":"https://friend.example/u/f","object":"https://preview.example/n/1"}"#;
        assert_eq!(
            check(&f, preview),
            Some(Stop {
                reason: "laundered_announce",
                dry_run: true
            })
        );
        assert!(
            f.report(unix_now(), None).domains.is_empty(),
            "a dry-run rule is no evidence"
        );
        let both = r#"{"type":"Create","actor":"https://friend.example/u/f","object":{
            "tag":[{"type":"Mention","href":"https://preview.example/u/p"}],
            "attributedTo":"https://bad.example/u/b"}}"#;
        let mut on = config();
        on.mention = true;
        let f = federators(on);
        assert_eq!(check(&f, both), stop("laundered_attributed"));
    }

    #[test]
    fn the_store_keeps_the_domains_with_most_references() {
        let mut c = config();
        c.max_tracked_domains = 2;
        let f = federators(c);
        let bad = rule("bad.example", Severity::Suspend, false);
        let found = [reference(Kind::Announce, &bad)];
        for _ in 0..3 {
            f.record("a.example", None, &found, true, 100, 7);
        }
        f.record("b.example", None, &found, true, 200, 7);
        f.record("c.example", None, &found, true, 300, 7);
        f.record(
            "c.example",
            Some("https://c.example/1"),
            &found,
            true,
            300,
            7,
        );
        let report = f.report(400, None);
        let names: Vec<&str> = report.domains.iter().map(|d| &*d.domain).collect();
        assert_eq!(names, ["a.example", "c.example"]);
        assert_eq!(report.tracked_domains, 2);
        for i in 0..10 {
            f.record("a.example", Some(&format!("id{i}")), &found, true, 500, 7);
        }
        let report = f.report(600, None);
        assert_eq!(
            report.domains[0].samples,
            ["id5", "id6", "id7", "id8", "id9"]
        );
        assert_eq!(report.domains[0].first_seen, rfc3339(100));
        assert_eq!(report.domains[0].last_seen, rfc3339(500));
    }

    #[test]
    fn evidence_survives_a_save_and_a_corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ff.json");
        let mut c = config();
        c.evidence_file = Some(path.clone());
        let f = federators(c.clone());
        assert!(!f.save(1).expect("nothing to save"), "clean store");
        check(
            &f,
            r#"{"type":"Announce","id":"https://friend.example/a/9","actor":"https://friend.example/u/f","object":"https://bad.example/n/1"}"#,
        );
        assert!(f.save(2).expect("saved"));
        assert!(!f.save(3).expect("unchanged"));
        assert!(!dir.path().join("ff.json.tmp").exists());

        let again = federators(c.clone());
        let (before, after) = (f.report(10, None), again.report(10, None));
        assert_eq!(after.domains.len(), 1);
        assert_eq!(after.domains[0].samples, before.domains[0].samples);
        assert_eq!(after.domains[0].total, 1);
        let from_file = report_from_file(&c, 10).expect("report");
        assert_eq!(from_file.saved_at.as_deref(), Some(rfc3339(2).as_str()));

        std::fs::write(&path, b"{\"version\":1,\"domains\":").expect("write");
        let fresh = federators(c.clone());
        assert!(fresh.report(10, None).domains.is_empty());
        assert!(!path.exists());
        assert_eq!(
            std::fs::read(with_suffix(&path, ".corrupt")).expect("kept"),
            b"{\"version\":1,\"domains\":"
        );
        assert!(matches!(
            report_from_file(&c, 10),
            Err(EvidenceError::Missing { .. })
        ));
    }

    fn found(n: u64, f: &Federators, domain: &str, at: u64) {
        let quiet = rule("quiet.example", Severity::Silence, false);
        let found = [reference(Kind::Reply, &quiet)];
        for _ in 0..n {
            f.record(domain, None, &found, false, at, 7);
        }
    }

    #[test]
    fn escalation_counts_within_the_window_and_report_generates_nothing() {
        const DAY: u64 = SECS_PER_DAY;
        let now = 100 * DAY + 10;
        let mut c = config();
        c.threshold = Some(3);
        let f = federators(c.clone());
        found(5, &f, "old.example", now - 8 * DAY);
        found(2, &f, "old.example", now - DAY);
        found(3, &f, "busy.example", now - 6 * DAY);
        assert!(
            f.evaluate(now, None).is_none(),
            "report never generates rules"
        );
        let report = f.report(now, None);
        let status: Vec<_> = report
            .domains
            .iter()
            .map(|d| (&*d.domain, d.in_window, d.status))
            .collect();
        assert_eq!(
            status,
            [
                ("old.example", 2, None),
                ("busy.example", 3, Some("would_escalate"))
            ]
        );
        assert!(report.escalated.is_empty());

        c.action = Some(EscalationAction::Suspend);
        let f = federators(c);
        found(3, &f, "busy.example", now);
        found(2, &f, "calm.example", now);
        let Some(Some(source)) = f.evaluate(now, None) else {
            panic!("escalation must generate a source");
        };
        assert_eq!(source.label, SOURCE_LABEL);
        let rules: Vec<_> = source
            .parsed
            .rules
            .iter()
            .map(|r| (&*r.domain, r.severity, r.line))
            .collect();
        assert_eq!(rules, [("busy.example", Severity::Suspend, 2)]);
        assert!(f.evaluate(now, None).is_none(), "unchanged set: no reload");
        // Sticky: the window moving on does not lift it.
        assert!(f.evaluate(now + 30 * DAY, None).is_none());
        assert_eq!(f.report(now + 30 * DAY, None).escalated.len(), 1);
    }

    /// A rules-file `[friendly_federators]` table (parsed by the real parser).
    fn table(text: &str) -> FriendlyFederatorSettings {
        sources::parse_bytes(
            text.as_bytes(),
            Arc::from("rules.toml"),
            crate::config::BlocklistFormat::Toml,
        )
        .expect("parses")
        .friendly_federators
        .expect("table")
    }

    fn generated(source: Option<Option<MemorySource>>) -> Vec<(String, Severity)> {
        let Some(Some(source)) = source else {
            panic!("expected a generated source, got {source:?}");
        };
        source
            .parsed
            .rules
            .iter()
            .map(|r| (r.domain.to_string(), r.severity))
            .collect()
    }

    #[test]
    fn a_domain_over_the_threshold_under_report_escalates_when_the_action_enforces() {
        let now = 100 * SECS_PER_DAY;
        let mut c = config();
        c.threshold = Some(2);
        let f = federators(c);
        found(2, &f, "busy.example", now);
        // Over the threshold while the action only reports: remembered, no rule.
        assert!(f.evaluate(now, None).is_none());
        // A rules reload turns the action to limit: the domain escalates at the next tick.
        let limit = table("[friendly_federators]\naction = \"limit\"\n");
        assert_eq!(
            generated(f.evaluate(now, Some(&limit))),
            [("busy.example".to_string(), Severity::Silence)]
        );
        assert!(f.evaluate(now, Some(&limit)).is_none(), "nothing changed");
        // limit -> suspend regenerates the rules with the new severity.
        let suspend = table("[friendly_federators]\naction = \"suspend\"\n");
        assert_eq!(
            generated(f.evaluate(now, Some(&suspend))),
            [("busy.example".to_string(), Severity::Suspend)]
        );
        assert_eq!(
            f.report(now, Some(&suspend)).escalated[0].severity,
            "suspend"
        );
    }

    #[test]
    fn a_table_without_escalation_keys_keeps_the_config_escalation_and_nothing_is_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = 100 * SECS_PER_DAY;
        let mut c = config();
        c.threshold = Some(2);
        c.action = Some(EscalationAction::Suspend);
        c.evidence_file = Some(dir.path().join("ff.json"));
        let f = federators(c.clone());
        found(2, &f, "busy.example", now);
        assert_eq!(generated(f.evaluate(now, None)).len(), 1);
        // A table that only changes a laundering kind inherits threshold, window and action.
        let kinds = table("[friendly_federators]\nreply = true\n");
        let settings = effective(&c, Some(&kinds));
        assert_eq!(
            (settings.threshold, settings.action(), settings.reply),
            (Some(2), EscalationAction::Suspend, true)
        );
        assert!(f.evaluate(now, Some(&kinds)).is_none(), "still in force");
        // Setting the action to report takes the rules out of force but keeps the escalation,
        // in memory and in the evidence file; back to suspend puts it in force again.
        let report = table("[friendly_federators]\naction = \"report\"\n");
        assert!(matches!(f.evaluate(now, Some(&report)), Some(None)));
        assert!(f.evaluate(now, Some(&report)).is_none());
        assert!(f.save(now).expect("saved"));
        let from_file = report_from_file(&effective(&c, Some(&report)), now).expect("file");
        assert_eq!(from_file.escalated[0].domain, "busy.example");
        assert_eq!(from_file.escalated[0].severity, "not_enforced");
        assert!(escalated_from_file(&effective(&c, Some(&report)))
            .expect("file")
            .is_none());
        assert_eq!(
            generated(f.evaluate(now, Some(&kinds))),
            [("busy.example".to_string(), Severity::Suspend)]
        );
        let source = escalated_from_file(&c).expect("file").expect("enforced");
        assert_eq!(&*source.parsed.rules[0].domain, "busy.example");
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_599), "2025-12-31T23:59:59Z");
    }
}

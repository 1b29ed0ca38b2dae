//! Rule loading and hot reload: the one load path, the live snapshot, and the triggers that
//! rebuild it (file watch on the sources' parent directories, SIGHUP, the admin call).
//!
//! A reload reads and parses every source off the hot path and swaps the new snapshot in whole;
//! requests keep the snapshot they started with. Each local file has its own last-good state:
//! a file that fails to read or parse is refused (logged with file and line, counted as a
//! failed reload, `inboxguard_rules_source_stale{source}` = 1) and its last good copy stays in
//! force, while the other files' and the memory sources' changes apply. The first load has no
//! last good copy, so there a broken file is fatal.

use crate::config::{BlocklistConfig, PolicyConfig};
use crate::metrics::Metrics;
use crate::policy::sources::{self, ParsedSource};
pub use crate::policy::sources::{LoadError, LoadErrorKind};
use crate::policy::{Changes, DomainDigest, DomainEntry, DomainRule, RuleKind, Sizes, Snapshot};
use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Quiet time after the last file event before reloading: an editor's save or a ConfigMap
/// update arrives as a burst of create/rename/delete events, and one reload should follow.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Per-source counts for `check`, the admin reload answer and logs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceSummary {
    /// The source path as configured; also the `source` metric label.
    pub source: String,
    /// Domain rules from this source in force, by severity. A domain listed in several sources
    /// counts only for the source whose rule won (the harshest, of the highest priority).
    pub suspend: usize,
    pub silence: usize,
    pub noop: usize,
    /// Allowed domains, exceptions and actor rules of this source in force (a domain or actor
    /// listed twice counts for the first source listing it).
    pub allow: usize,
    pub exclude: usize,
    pub actor_suspend: usize,
    /// Entries of this source not in force because another source lists the domain harsher
    /// or with a higher priority (or, for allow, exception and actor entries, first).
    pub overridden: usize,
    /// Block rules of this source with no effect because an exception names their domain.
    pub excluded: usize,
    /// Block rules of this (subscribed) source held back by `subscription_threshold`.
    pub below_threshold: usize,
    /// Entries containing `*` (obfuscated or wildcard) without a digest, which were skipped.
    pub obfuscated: usize,
    /// The source's `dry_run`: its rules are reported, not enforced.
    pub dry_run: bool,
    /// The source is an exception list (`exclude`).
    pub exception_list: bool,
    /// A remote subscription (subject to `subscription_threshold`).
    pub subscribed: bool,
    /// A local file whose current contents were refused by this reload: its last good copy
    /// is what is in force.
    pub stale: bool,
    /// What this source's reload changed in the rules in force (`Rules::reload` and the admin
    /// reload answer; empty for a first load, `check` and `explain`).
    pub changes: Changes,
}

impl SourceSummary {
    pub fn count(&self, kind: impl Into<RuleKind>) -> usize {
        match kind.into() {
            RuleKind::Suspend => self.suspend,
            RuleKind::Silence => self.silence,
            RuleKind::Noop => self.noop,
            RuleKind::Allow => self.allow,
            RuleKind::Exclude => self.exclude,
            RuleKind::ActorSuspend => self.actor_suspend,
        }
    }

    fn count_mut(&mut self, kind: RuleKind) -> &mut usize {
        match kind {
            RuleKind::Suspend => &mut self.suspend,
            RuleKind::Silence => &mut self.silence,
            RuleKind::Noop => &mut self.noop,
            RuleKind::Allow => &mut self.allow,
            RuleKind::Exclude => &mut self.exclude,
            RuleKind::ActorSuspend => &mut self.actor_suspend,
        }
    }
}

/// `suspend=1 silence=0 noop=0 allow=2 exclude=0 actor_suspend=1`, then the notable extras
/// (`overridden=`, `excluded=`, `below_threshold=`, `obfuscated=`) when not 0, and the
/// source's flags. What `check` and the admin reload print per source.
impl fmt::Display for SourceSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.source)?;
        for kind in RuleKind::ALL {
            write!(f, " {kind}={}", self.count(kind))?;
        }
        for (name, n) in [
            ("overridden", self.overridden),
            ("excluded", self.excluded),
            ("below_threshold", self.below_threshold),
            ("obfuscated", self.obfuscated),
        ] {
            if n > 0 {
                write!(f, " {name}={n}")?;
            }
        }
        for (name, on) in [
            ("dry run", self.dry_run),
            ("exception list", self.exception_list),
            ("subscribed", self.subscribed),
            ("refused: last good copy in force", self.stale),
        ] {
            if on {
                write!(f, " ({name})")?;
            }
        }
        Ok(())
    }
}

/// A rule source held in memory instead of read from a file at each reload: a remote
/// subscription's last good copy, the Mastodon admin API pull, or rules inboxguard generates
/// (friendly-federator escalation). Whoever owns it replaces it with `Rules::set_memory_source`.
/// `MemorySource::new` gives the defaults of a local file (all flags off, priority 0).
#[derive(Debug, Clone)]
pub struct MemorySource {
    /// Unique among sources: the `source` metric label, and what logs and `explain` name. Every
    /// rule in `parsed` carries it as its `source`.
    pub label: String,
    /// Its block and actor rules, allowed domains (e.g. from Mastodon's
    /// `/api/v1/admin/domain_allows`, in `parsed.allows`) and exceptions.
    pub parsed: Arc<ParsedSource>,
    /// Its rules are reported, not enforced (as `BlocklistConfig::dry_run`).
    pub dry_run: bool,
    /// An exception list (as `BlocklistConfig::exclude`): its block rules become exceptions
    /// that override the block rules of every other source.
    pub exclude: bool,
    /// A remote subscription: its block rules apply only when `[policy]
    /// subscription_threshold` subscribed sources list the domain. False for inboxguard's own
    /// generated rules and for Mastodon's admin API (the moderators' own list).
    pub subscribed: bool,
    /// As `BlocklistConfig::priority`.
    pub priority: i32,
}

impl MemorySource {
    pub fn new(label: impl Into<String>, parsed: Arc<ParsedSource>) -> MemorySource {
        MemorySource {
            label: label.into(),
            parsed,
            dry_run: false,
            exclude: false,
            subscribed: false,
            priority: 0,
        }
    }
}

/// One source on its way into a snapshot.
struct Loading<'s> {
    /// A file's parsed rules are owned, and moved into the snapshot; a memory source's are
    /// shared with its owner, and copied.
    parsed: Cow<'s, ParsedSource>,
    /// `parsed.len()` before its block rules were moved out.
    entries: usize,
    summary: SourceSummary,
    priority: i32,
}

/// A block rule as its source lists it, and how the merge treated it. The snapshot keeps one
/// rule per domain (or digest) per tier; `explain` shows every rule on a host, so it asks
/// `load_listing` for the few it needs instead of the proxy keeping them all.
#[derive(Debug, Clone)]
pub struct Listed {
    /// As the merge saw it: the source's `dry_run` applied.
    pub rule: DomainRule,
    pub standing: Standing,
}

/// Where a listed block rule stood in the merge (steps 2 and 3 of `load`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Competed for its domain: in force unless a harsher (on a tie, earlier) rule of its
    /// tier is, or an exception shadows it.
    Competes,
    /// Held back by `subscription_threshold`.
    BelowThreshold,
    /// A source of higher `priority` lists the domain.
    LowerPriority,
}

/// What `load_listing` returns: the snapshot, per-source counts, and the listed rules asked for.
pub type Loaded = (Snapshot, Vec<SourceSummary>, Vec<Listed>);

/// Builds a snapshot from every configured file source, in order, then every memory source in
/// label order (the one code path for first load and every reload). The first file that fails
/// stops the load.
///
/// Merge, per domain (or digest), in this order:
/// 1. an exception list's (`exclude`) domains become exceptions (a digest entry cannot be one:
///    it is skipped with a warning);
/// 2. block rules of subscribed sources listed by fewer than `policy.subscription_threshold`
///    subscribed sources are held back (enforcing rules count only enforcing subscriptions, so
///    a dry-run preview never tips a real rule into force; dry-run rules count all);
/// 3. of the rules left, only those of the highest `priority` listing the domain compete;
/// 4. the harshest of those wins; on a tie, the earlier source.
pub fn load(
    sources: &[BlocklistConfig],
    memory: &[MemorySource],
    policy: &PolicyConfig,
) -> Result<(Snapshot, Vec<SourceSummary>), LoadError> {
    let (snapshot, summaries, _) = load_listing(sources, memory, policy, |_| false)?;
    Ok((snapshot, summaries))
}

/// As `load`, and also every block rule of a non-exception source for which `wanted` holds,
/// with where it stood in the merge, in load order. For `explain`.
pub fn load_listing(
    sources: &[BlocklistConfig],
    memory: &[MemorySource],
    policy: &PolicyConfig,
    wanted: impl Fn(&DomainRule) -> bool,
) -> Result<Loaded, LoadError> {
    let files = sources
        .iter()
        .map(|config| sources::read_file(&config.path).and_then(|b| parse_config(config, &b)))
        .collect::<Result<Vec<_>, _>>()?;
    merge(sources, files, memory, policy, &wanted)
}

/// Parses a configured file's contents, labelled with its path as configured.
fn parse_config(config: &BlocklistConfig, bytes: &[u8]) -> Result<ParsedSource, LoadError> {
    let label = Arc::from(config.path.display().to_string());
    sources::parse_bytes_as(bytes, label, config.format, config.kind)
}

/// The one conflict between sources that refuses a load: two `[friendly_federators]` tables
/// (files in order, then memory sources, as `merge` loads them). A reload checks it before
/// merging, so it can settle which files to refuse, and give up their previous good bytes,
/// before the new snapshot is built.
fn check_conflicts(
    configs: &[BlocklistConfig],
    files: &[ParsedSource],
    memory: &[MemorySource],
) -> Result<(), LoadError> {
    let labelled = configs
        .iter()
        .map(|c| c.path.display().to_string())
        .zip(files)
        .chain(memory.iter().map(|m| (m.label.clone(), &*m.parsed)));
    let mut first: Option<String> = None;
    for (label, parsed) in labelled {
        let Some(ff) = &parsed.friendly_federators else {
            continue;
        };
        if let Some(first) = first {
            return Err(LoadError {
                file: label,
                line: ff.line,
                kind: LoadErrorKind::DuplicateFriendlyFederators { first },
            });
        }
        first = Some(label);
    }
    Ok(())
}

/// The merge of `load`, over the files already parsed (`files[i]` is `configs[i]`'s). The
/// files' block rules are moved into the snapshot rather than copied: 100,000 rules would
/// otherwise hold every domain and comment twice while the snapshot is built.
fn merge(
    configs: &[BlocklistConfig],
    files: Vec<ParsedSource>,
    memory: &[MemorySource],
    policy: &PolicyConfig,
    wanted: &dyn Fn(&DomainRule) -> bool,
) -> Result<Loaded, LoadError> {
    check_conflicts(configs, &files, memory)?;
    let mut loading: Vec<Loading<'_>> = Vec::with_capacity(files.len() + memory.len());
    for (config, parsed) in configs.iter().zip(files) {
        let label = config.path.display().to_string();
        warn_about_skips(&label, &parsed);
        loading.push(Loading {
            entries: parsed.len(),
            parsed: Cow::Owned(parsed),
            summary: SourceSummary {
                source: label,
                dry_run: config.dry_run,
                exception_list: config.exclude,
                ..SourceSummary::default()
            },
            priority: config.priority,
        });
    }
    for source in memory {
        loading.push(Loading {
            entries: source.parsed.len(),
            parsed: Cow::Borrowed(&*source.parsed),
            summary: SourceSummary {
                source: source.label.clone(),
                dry_run: source.dry_run,
                exception_list: source.exclude,
                subscribed: source.subscribed,
                ..SourceSummary::default()
            },
            priority: source.priority,
        });
    }

    let mut builder = Snapshot::builder(policy.mode, policy.subscription_threshold);
    let mut sizes = Sizes::default();
    for l in &loading {
        if l.summary.exception_list {
            sizes.exceptions += l.parsed.rules.len();
        } else {
            for rule in &l.parsed.rules {
                sizes.count_rule(rule, l.summary.dry_run);
            }
        }
        sizes.allows += l.parsed.allows.len();
        sizes.exceptions += l.parsed.exceptions.len();
    }
    builder.reserve(&sizes);
    // At most one, as `check_conflicts` made sure.
    if let Some(ff) = loading
        .iter()
        .find_map(|l| l.parsed.friendly_federators.as_ref())
    {
        builder.friendly_federators(ff.clone());
    }

    let standings = standings(&loading, policy.subscription_threshold);
    let mut below = vec![0; loading.len()];
    let mut listed = Vec::new();
    let mut list = |rule: &DomainRule, standing| {
        if wanted(rule) {
            listed.push(Listed {
                rule: rule.clone(),
                standing,
            });
        }
    };
    for ((l, standing), below) in loading.iter_mut().zip(standings).zip(&mut below) {
        let label = l.summary.source.as_str();
        let dry_run = l.summary.dry_run;
        if l.summary.exception_list {
            let named = l.parsed.rules.iter().filter(|r| r.digest.is_none());
            let digests = l.parsed.rules.len() - named.clone().count();
            if digests > 0 {
                tracing::warn!(
                    source = label,
                    count = digests,
                    "exception list entries given by digest cannot be exceptions; skipped"
                );
            }
            for rule in named {
                builder.exception(DomainEntry {
                    domain: rule.domain.clone(),
                    comment: rule.public_comment.clone(),
                    source: rule.source.clone(),
                    line: rule.line,
                });
            }
        } else {
            let (owned, shared) = match &mut l.parsed {
                Cow::Owned(parsed) => (std::mem::take(&mut parsed.rules), &[][..]),
                Cow::Borrowed(parsed) => (Vec::new(), &parsed.rules[..]),
            };
            let rules = owned.into_iter().chain(shared.iter().cloned());
            for (mut rule, standing) in rules.zip(standing) {
                rule.dry_run |= dry_run;
                list(&rule, standing);
                match standing {
                    Standing::BelowThreshold => {
                        *below += 1;
                        builder.withhold(rule);
                    }
                    Standing::LowerPriority => {}
                    Standing::Competes => {
                        builder.rule(rule);
                    }
                }
            }
        }
        for entry in l.parsed.allows.iter().cloned() {
            builder.allow(entry);
        }
        for entry in l.parsed.exceptions.iter().cloned() {
            builder.exception(entry);
        }
        for rule in l.parsed.actors.iter().cloned() {
            let mut rule = rule;
            rule.dry_run |= dry_run;
            builder.actor(rule);
        }
    }
    let snapshot = builder.build();

    // What each source has in force, from the snapshot itself.
    let mut summaries: Vec<SourceSummary> = Vec::with_capacity(loading.len());
    let mut index: HashMap<String, usize> = HashMap::with_capacity(loading.len());
    for l in &loading {
        index.insert(l.summary.source.clone(), summaries.len());
        let mut summary = l.summary.clone();
        summary.obfuscated = l.parsed.obfuscated;
        summary.below_threshold = below[summaries.len()];
        summaries.push(summary);
    }
    let mut counted = |source: &str, kind: Option<RuleKind>| {
        if let Some(s) = index.get(source).and_then(|&i| summaries.get_mut(i)) {
            match kind {
                Some(kind) => *s.count_mut(kind) += 1,
                None => s.excluded += 1,
            }
        }
    };
    for rule in snapshot.iter() {
        let kind = (!snapshot.is_excluded(rule)).then(|| RuleKind::from(rule.severity));
        counted(&rule.source, kind);
    }
    for entry in snapshot.iter_allows() {
        counted(&entry.source, Some(RuleKind::Allow));
    }
    for entry in snapshot.iter_exceptions() {
        counted(&entry.source, Some(RuleKind::Exclude));
    }
    for rule in snapshot.iter_actors() {
        counted(&rule.source, Some(RuleKind::ActorSuspend));
    }
    for (summary, l) in summaries.iter_mut().zip(&loading) {
        let entries = l.entries;
        let accounted = RuleKind::ALL
            .iter()
            .map(|&k| summary.count(k))
            .sum::<usize>()
            + summary.excluded
            + summary.below_threshold;
        summary.overridden = entries.saturating_sub(accounted);
    }
    Ok((snapshot, summaries, listed))
}

/// Where each block rule of each source stands in the merge (steps 2 and 3 of `load`), in
/// source and rule order (empty for an exception list). Decided before any rule is moved into
/// the snapshot, as the maps here borrow the rules' domains.
fn standings(loading: &[Loading<'_>], threshold: usize) -> Vec<Vec<Standing>> {
    // Agreement among subscribed sources, per rule key: [enforcing sources, all sources].
    let mut agreement: HashMap<RuleKey<'_>, [usize; 2]> = HashMap::new();
    if threshold > 1 {
        for l in loading
            .iter()
            .filter(|l| l.summary.subscribed && !l.summary.exception_list)
        {
            for rule in &l.parsed.rules {
                let seen = agreement.entry(RuleKey::of(rule)).or_default();
                seen[1] += 1;
                if !(l.summary.dry_run || rule.dry_run) {
                    seen[0] += 1;
                }
            }
        }
    }
    let agreed = |l: &Loading<'_>, rule: &DomainRule| {
        if threshold <= 1 || !l.summary.subscribed {
            return true;
        }
        let seen = agreement
            .get(&RuleKey::of(rule))
            .copied()
            .unwrap_or_default();
        let count = if l.summary.dry_run || rule.dry_run {
            seen[1]
        } else {
            seen[0]
        };
        count >= threshold
    };
    // The highest priority listing each key, among rules that will be in force.
    let mut top: HashMap<RuleKey<'_>, i32> = HashMap::new();
    if loading.iter().any(|l| l.priority != 0) {
        for l in loading.iter().filter(|l| !l.summary.exception_list) {
            for rule in l.parsed.rules.iter().filter(|r| agreed(l, r)) {
                let best = top.entry(RuleKey::of(rule)).or_insert(l.priority);
                *best = (*best).max(l.priority);
            }
        }
    }

    loading
        .iter()
        .map(|l| {
            if l.summary.exception_list {
                return Vec::new();
            }
            l.parsed
                .rules
                .iter()
                .map(|rule| {
                    if !agreed(l, rule) {
                        Standing::BelowThreshold
                    } else if top
                        .get(&RuleKey::of(rule))
                        .is_some_and(|&best| l.priority < best)
                    {
                        Standing::LowerPriority
                    } else {
                        Standing::Competes
                    }
                })
                .collect()
        })
        .collect()
}

/// What makes two sources' rules about the same domain.
#[derive(PartialEq, Eq, Hash)]
enum RuleKey<'r> {
    Name(&'r str),
    Digest(&'r DomainDigest),
}

impl<'r> RuleKey<'r> {
    fn of(rule: &'r DomainRule) -> RuleKey<'r> {
        match rule.digest.as_deref() {
            Some(digest) => RuleKey::Digest(digest),
            None => RuleKey::Name(&rule.domain),
        }
    }
}

fn warn_about_skips(label: &str, source: &ParsedSource) {
    if source.obfuscated > 0 {
        tracing::warn!(
            source = label,
            count = source.obfuscated,
            first_line = source.first_obfuscated_line,
            "skipped entries containing '*' (obfuscated or wildcard) without a digest; they cannot be matched"
        );
    }
    if source.duplicates > 0 {
        tracing::warn!(
            source = label,
            count = source.duplicates,
            first_line = source.first_duplicate_line,
            "domains listed more than once; the harshest rule of each is kept"
        );
    }
}

/// What a reload needs besides the configured files.
#[derive(Default)]
struct State {
    /// One per configured file, in the same order.
    files: Vec<FileState>,
    /// By label, so a source's replacement takes its place and the load order is stable.
    memory: BTreeMap<String, MemorySource>,
    /// Source labels that currently have gauges.
    published: Vec<String>,
    /// The copy of each memory source that the last successful reload put in force: its
    /// `rules_last_reload_timestamp_seconds` moves only when another copy comes into force.
    in_force: HashMap<String, Arc<ParsedSource>>,
}

/// A configured file as the last reload left it.
struct FileState {
    /// The path as configured: the `source` label.
    label: String,
    /// The contents last parsed without error, parsed again whenever the file on disk is
    /// refused, so its good rules stay in force while other sources reload. Raw bytes rather
    /// than the parsed rules: a fraction of their memory, and no second copy of every rule.
    good: Vec<u8>,
    /// The last reload refused the file on disk (`inboxguard_rules_source_stale`).
    stale: bool,
}

/// A reload that did not put every file's current contents in force. `Display`: each refused
/// file's `file:line: error`, separated by `; `.
#[derive(Debug)]
pub struct ReloadError {
    /// Why each file was refused, in source order (read or parse errors, or a conflict between
    /// files such as two `[friendly_federators]` tables).
    pub refused: Vec<LoadError>,
    /// What is in force after the reload, per source, when the other sources' changes were
    /// applied beside the refused files' last good copies; `None` when nothing was applied and
    /// the previous snapshot stays whole.
    pub applied: Option<Vec<SourceSummary>>,
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.refused.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ReloadError {}

/// Owns the live snapshot and knows how to rebuild it. Shared as `Arc<Rules>`.
pub struct Rules {
    sources: Vec<BlocklistConfig>,
    /// `[policy]`: mode and subscription threshold (restart-only, like the source list).
    policy: PolicyConfig,
    metrics: Arc<Metrics>,
    current: ArcSwap<Snapshot>,
    /// Held for a whole reload (load, diff, swap, gauges) so reloads from the watcher, SIGHUP,
    /// the admin endpoint and memory-source updates never interleave. It guards the memory
    /// sources and the source labels that currently have gauges. A std mutex: reloads are
    /// blocking file work on blocking threads and the guard is never held across an await.
    reloading: Mutex<State>,
    /// 0 after the first load, +1 per reload that swapped a snapshot in (also one that
    /// refused a file but applied the other sources).
    generation: AtomicU64,
}

impl Rules {
    /// First load; an error here is fatal at startup (the caller reports it). The first load
    /// is not counted in `rules_reloads_total`, but sets the gauges like a reload.
    pub fn new(
        sources: Vec<BlocklistConfig>,
        policy: PolicyConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Rules>, LoadError> {
        let mut files = Vec::with_capacity(sources.len());
        let mut parsed = Vec::with_capacity(sources.len());
        for config in &sources {
            let good = sources::read_file(&config.path)?;
            parsed.push(parse_config(config, &good)?);
            files.push(FileState {
                label: config.path.display().to_string(),
                good,
                stale: false,
            });
        }
        let (snapshot, summaries, _) = merge(&sources, parsed, &[], &policy, &|_| false)?;
        let rules = Rules {
            sources,
            policy,
            metrics,
            current: ArcSwap::from_pointee(snapshot),
            reloading: Mutex::new(State {
                files,
                ..State::default()
            }),
            generation: AtomicU64::new(0),
        };
        {
            let mut state = rules.lock();
            rules.publish(&mut state, &summaries, &[]);
        }
        for s in &summaries {
            tracing::info!(
                source = %s.source,
                suspend = s.suspend,
                silence = s.silence,
                noop = s.noop,
                allow = s.allow,
                exclude = s.exclude,
                actor_suspend = s.actor_suspend,
                overridden = s.overridden,
                excluded = s.excluded,
                below_threshold = s.below_threshold,
                "rules loaded"
            );
        }
        Ok(Arc::new(rules))
    }

    /// The live snapshot. A request `load()`s it once and keeps that snapshot to the end.
    pub fn current(&self) -> &ArcSwap<Snapshot> {
        &self.current
    }

    /// How many reloads swapped a snapshot in since the first load.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The configured sources, in load order.
    pub fn sources(&self) -> &[BlocklistConfig] {
        &self.sources
    }

    /// Rebuild from disk (blocking file I/O: call from a blocking thread). Each file is read
    /// and parsed on its own: one that fails is refused, logged with file and line, and its
    /// last good copy stays in force while every other source's changes apply (`Err` with
    /// `applied`). A reload refusing any file counts as a failure in `rules_reloads_total`
    /// and keeps `rules_reload_failing_since_timestamp_seconds` set: some edit is not in force.
    /// What changed is logged per source and severity.
    pub fn reload(&self) -> Result<Vec<SourceSummary>, ReloadError> {
        let mut state = self.lock();
        self.reload_locked(&mut state)
    }

    /// Puts `source` in force in place of the memory source with the same label (or beside the
    /// others, when new), and reloads (blocking file I/O: call from a blocking thread). A broken
    /// local file does not hold it back: that file's last good copy stands in, and the refusal
    /// is returned, logged and counted as for `reload`.
    pub fn set_memory_source(
        &self,
        source: MemorySource,
    ) -> Result<Vec<SourceSummary>, ReloadError> {
        let mut state = self.lock();
        state.memory.insert(source.label.clone(), source);
        self.reload_locked(&mut state)
    }

    /// Takes the memory source `label` out of force (for instance, a subscription removed from
    /// the config) and reloads; `Ok(None)` when there was no such source.
    pub fn remove_memory_source(
        &self,
        label: &str,
    ) -> Result<Option<Vec<SourceSummary>>, ReloadError> {
        let mut state = self.lock();
        if state.memory.remove(label).is_none() {
            return Ok(None);
        }
        self.reload_locked(&mut state).map(Some)
    }

    /// The memory sources in force, in load order.
    pub fn memory_sources(&self) -> Vec<MemorySource> {
        self.lock().memory.values().cloned().collect()
    }

    fn reload_locked(&self, state: &mut State) -> Result<Vec<SourceSummary>, ReloadError> {
        let memory: Vec<MemorySource> = state.memory.values().cloned().collect();
        // Each file on its own. `fresh[i]` holds the bytes read when they parsed; `None` marks
        // a refused file, parsed from its last good bytes instead.
        let mut refused = Vec::new();
        let mut fresh: Vec<Option<Vec<u8>>> = Vec::with_capacity(self.sources.len());
        let mut parsed = Vec::with_capacity(self.sources.len());
        for (config, file) in self.sources.iter().zip(&state.files) {
            let read = sources::read_file(&config.path)
                .and_then(|bytes| Ok((parse_config(config, &bytes)?, bytes)));
            match read {
                Ok((rules, bytes)) => {
                    parsed.push(rules);
                    fresh.push(Some(bytes));
                }
                Err(e) => {
                    refused.push(e);
                    parsed.push(self.last_good(config, file, &refused)?);
                    fresh.push(None);
                }
            }
        }
        loop {
            match check_conflicts(&self.sources, &parsed, &memory) {
                Ok(()) => break,
                // Sources conflict (two `[friendly_federators]` tables). The last good copies
                // merged, so an edit is to blame: refuse the edited file the error names, or
                // else every edited file.
                Err(e) => {
                    let edited: Vec<usize> = (0..fresh.len())
                        .filter(|&i| {
                            fresh[i]
                                .as_ref()
                                .is_some_and(|b| state.files.get(i).is_some_and(|f| f.good != *b))
                        })
                        .collect();
                    let named: Vec<usize> = edited
                        .iter()
                        .copied()
                        .filter(|&i| state.files.get(i).is_some_and(|f| f.label == e.file))
                        .collect();
                    let revert = if named.is_empty() { edited } else { named };
                    refused.push(e);
                    if revert.is_empty() {
                        return Err(self.failed(refused, None));
                    }
                    for i in revert {
                        fresh[i] = None;
                        parsed[i] = self.last_good(&self.sources[i], &state.files[i], &refused)?;
                    }
                }
            }
        }
        // Nothing left that can refuse these bytes: they replace the previous good copies now,
        // so a changed file's old and new bytes are not both held while the snapshot is built
        // (5.5 MB for 100,000 rules).
        for (file, bytes) in state.files.iter_mut().zip(fresh) {
            file.stale = bytes.is_none();
            if let Some(bytes) = bytes {
                file.good = bytes;
            }
        }
        // `check_conflicts` is merge's only failure, so this error does not happen; were it to,
        // the whole reload fails and the previous snapshot stays.
        let (snapshot, summaries, _) =
            merge(&self.sources, parsed, &memory, &self.policy, &|_| false).map_err(|e| {
                refused.push(e);
                self.failed(std::mem::take(&mut refused), None)
            })?;
        let by_source = self.current.load().diff_by_source(&snapshot);
        let total = snapshot.len();
        self.current.store(Arc::new(snapshot));
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let mut summaries = summaries;
        for s in &mut summaries {
            if let Some(changes) = by_source.get(s.source.as_str()) {
                s.changes = *changes;
            }
            s.stale = state.files.iter().any(|f| f.stale && f.label == s.source);
        }
        self.publish(state, &summaries, &memory);
        // One line per source that changed (a removed source's rules count for it too), then
        // the total.
        for (source, changes) in &by_source {
            tracing::info!(generation, source = %source, changes = %changes, "rule source changed");
        }
        let changes = Changes::sum(by_source.values());
        if !refused.is_empty() {
            // The refusal first, so the log never reads as a success followed by an error.
            let e = self.failed(refused, Some(summaries));
            tracing::warn!(generation, rules = total, changes = %changes, "rules partly reloaded: the other sources' changes are in force");
            return Err(e);
        }
        tracing::info!(generation, rules = total, changes = %changes, "rules reloaded");
        self.metrics
            .rules_reloads_total
            .with_label_values(&["success"])
            .inc();
        self.metrics
            .rules_reload_failing_since_timestamp_seconds
            .set(0);
        Ok(summaries)
    }

    /// `file`'s last good copy, parsed again, for `config`, whose current contents are refused
    /// (the errors so far in `refused`). It parsed before, so an error here means nothing can
    /// be applied: the whole reload fails.
    fn last_good(
        &self,
        config: &BlocklistConfig,
        file: &FileState,
        refused: &[LoadError],
    ) -> Result<ParsedSource, ReloadError> {
        parse_config(config, &file.good).map_err(|e| {
            let mut all = refused.to_vec();
            all.push(e);
            self.failed(all, None)
        })
    }

    /// Counts and logs a reload that refused files; `applied` as in `ReloadError`.
    fn failed(&self, refused: Vec<LoadError>, applied: Option<Vec<SourceSummary>>) -> ReloadError {
        self.metrics
            .rules_reloads_total
            .with_label_values(&["failure"])
            .inc();
        let failing_since = &self.metrics.rules_reload_failing_since_timestamp_seconds;
        if failing_since.get() == 0 {
            failing_since.set(unix_now());
        }
        let kept = if applied.is_some() {
            "rule file refused; its last good copy stays in force"
        } else {
            "rules reload failed; the previous rules stay in force"
        };
        for e in &refused {
            tracing::error!(file = %e.file, line = e.line, error = %e.kind, "{kept}");
        }
        ReloadError { refused, applied }
    }

    /// Watches the sources' parent directories and reloads on change (debounced by `DEBOUNCE`)
    /// and on SIGHUP, until `shutdown` resolves.
    ///
    /// Directories rather than files: editors save by writing a new file and renaming it over
    /// the old one, and Kubernetes updates a mounted ConfigMap by swapping the `..data` symlink,
    /// so a watch on the file itself would go deaf after the first update. When a source is a
    /// symlink, the directory of its current target is watched too. If the watcher cannot be
    /// set up, SIGHUP and the admin endpoint still work (logged as a warning).
    pub async fn watch(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()> + Send) {
        let mut shutdown = std::pin::pin!(shutdown);
        let (tx, mut changed) = tokio::sync::mpsc::channel::<()>(1);
        let names: Arc<ArcSwap<HashSet<OsString>>> = Arc::default();
        let filter = names.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = match event {
                Ok(event) => affects_sources(&event, &filter.load()),
                // A backend error (e.g. a lost event queue) may hide a change.
                Err(_) => true,
            };
            if relevant {
                // Full means a reload is already pending, which will see this change too.
                let _ = tx.try_send(());
            }
        });
        let mut watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch rule files; reload with SIGHUP or the admin endpoint");
                None
            }
        };
        let mut watched = HashSet::new();
        refresh_watches(watcher.as_mut(), &mut watched, &names, &self.sources);
        let mut hangup = hangup_signal();

        loop {
            let trigger = tokio::select! {
                () = &mut shutdown => break,
                Some(()) = changed.recv() => {
                    loop {
                        tokio::select! {
                            () = &mut shutdown => return,
                            Some(()) = changed.recv() => continue,
                            () = tokio::time::sleep(DEBOUNCE) => break,
                        }
                    }
                    "file change"
                }
                Some(()) = next_hangup(&mut hangup) => "SIGHUP",
            };
            tracing::info!(trigger, "reloading rules");
            let rules = self.clone();
            // `reload` logs and counts its own outcome.
            if let Err(e) = tokio::task::spawn_blocking(move || rules.reload()).await {
                tracing::error!(error = %e, "rules reload task failed");
            }
            // A symlinked source may now point into another directory.
            refresh_watches(watcher.as_mut(), &mut watched, &names, &self.sources);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic mid-reload leaves nothing half-done that matters: the snapshot swap is atomic.
        self.reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the per-source gauges, and removes those of sources no longer loaded.
    ///
    /// `rules_last_reload_timestamp_seconds{source}` says when that source's rules in force
    /// were loaded: for a file, this load unless it refused the file (then the load that
    /// read its last good copy); for a memory
    /// source (a subscription, the Mastodon pull, the generated friendly-federator rules), the
    /// load that first put its current copy in force. So a reload caused by one source does
    /// not make another remote source look fresh, and a subscription whose fetches fail keeps
    /// the time its last good copy came into force.
    fn publish(&self, state: &mut State, summaries: &[SourceSummary], memory: &[MemorySource]) {
        let now = unix_now();
        for stale in state
            .published
            .iter()
            .filter(|p| !summaries.iter().any(|s| &s.source == *p))
        {
            for kind in RuleKind::ALL {
                let _ = self
                    .metrics
                    .rules_loaded
                    .remove_label_values(&[stale, kind.as_str()]);
            }
            let _ = self
                .metrics
                .rules_last_reload_timestamp_seconds
                .remove_label_values(&[stale]);
        }
        state
            .in_force
            .retain(|label, _| memory.iter().any(|m| &m.label == label));
        state.published.clear();
        for s in summaries {
            for kind in RuleKind::ALL {
                let count = i64::try_from(s.count(kind)).unwrap_or(i64::MAX);
                self.metrics
                    .rules_loaded
                    .with_label_values(&[s.source.as_str(), kind.as_str()])
                    .set(count);
            }
            let fresh = match memory.iter().find(|m| m.label == s.source) {
                Some(m) => {
                    let previous = state.in_force.insert(s.source.clone(), m.parsed.clone());
                    !previous.is_some_and(|p| Arc::ptr_eq(&p, &m.parsed))
                }
                None => !s.stale,
            };
            if fresh {
                self.metrics
                    .rules_last_reload_timestamp_seconds
                    .with_label_values(&[s.source.as_str()])
                    .set(now);
            }
            state.published.push(s.source.clone());
        }
        // Files come from the config, so the label set is bounded and never shrinks.
        for file in &state.files {
            self.metrics
                .rules_source_stale
                .with_label_values(&[file.label.as_str()])
                .set(i64::from(file.stale));
        }
    }
}

/// Seconds since the Unix epoch, as the timestamp gauges hold them.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whether a directory event could change what a source path reads: a create, write, rename,
/// delete or attribute change of a source's name (or its symlink target's name), anything named
/// `..*` (Kubernetes' `..data` and `..<timestamp>` entries), or an event the backend could not
/// attribute. Plain opens and reads are ignored; our own reload causes those.
fn affects_sources(event: &notify::Event, names: &HashSet<OsString>) -> bool {
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) => return false,
        _ => {}
    }
    event.need_rescan()
        || event.paths.is_empty()
        || event.paths.iter().any(|path| {
            path.file_name()
                .is_some_and(|n| names.contains(n) || n.as_encoded_bytes().starts_with(b".."))
        })
}

/// Brings the watched directories and the names of interest in line with where the sources
/// are now. A directory that cannot be watched is logged and retried after the next reload.
fn refresh_watches(
    watcher: Option<&mut RecommendedWatcher>,
    watched: &mut HashSet<PathBuf>,
    names: &ArcSwap<HashSet<OsString>>,
    sources: &[BlocklistConfig],
) {
    let mut dirs = HashSet::new();
    let mut wanted_names = HashSet::new();
    for config in sources {
        let mut add = |path: &Path| {
            if let Some(name) = path.file_name() {
                wanted_names.insert(name.to_os_string());
            }
            dirs.insert(match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            });
        };
        add(&config.path);
        if let Ok(target) = std::fs::canonicalize(&config.path) {
            add(&target);
        }
    }
    names.store(Arc::new(wanted_names));
    let Some(watcher) = watcher else {
        return;
    };
    for dir in watched.difference(&dirs).cloned().collect::<Vec<_>>() {
        // Fails when the directory is already gone (an old ConfigMap revision): nothing to undo.
        let _ = watcher.unwatch(&dir);
        watched.remove(&dir);
    }
    for dir in dirs {
        if watched.contains(&dir) {
            continue;
        }
        match watcher.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                tracing::debug!(dir = %dir.display(), "watching for rule changes");
                watched.insert(dir);
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch rule directory");
            }
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by file change or the admin endpoint");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

/// The next SIGHUP; never resolves when there is no signal stream.
async fn next_hangup(signal: &mut Hangup) -> Option<()> {
    match signal {
        #[cfg(unix)]
        Some(signal) => signal.recv().await,
        _ => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BlocklistFormat;
    use crate::policy::Severity;
    use std::time::Instant;

    /// Generous: these wait on inotify and a debounce, on a loaded 2-core machine.
    const DEADLINE: Duration = Duration::from_secs(20);

    fn source(path: &Path) -> BlocklistConfig {
        BlocklistConfig {
            path: path.to_path_buf(),
            format: BlocklistFormat::Auto,
            dry_run: false,
            kind: crate::config::SourceKind::Block,
            exclude: false,
            priority: 0,
        }
    }

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new().expect("metrics"))
    }

    fn reloads(m: &Metrics, result: &str) -> u64 {
        m.rules_reloads_total.with_label_values(&[result]).get()
    }

    fn suspended(rules: &Rules, host: &str) -> bool {
        rules.current().load().is_suspended(host).is_some()
    }

    /// Polls until `done`, re-applying `change` every second: the watcher registers its
    /// directories asynchronously, so a change made before that is not seen, and repeating an
    /// idempotent edit is what an operator would do too.
    async fn eventually(mut change: impl FnMut(), done: impl Fn() -> bool) {
        let start = Instant::now();
        let mut last_change = Instant::now();
        change();
        while !done() {
            assert!(
                start.elapsed() < DEADLINE,
                "change not picked up within {DEADLINE:?}"
            );
            if last_change.elapsed() > Duration::from_secs(1) {
                change();
                last_change = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Writes by rename, as editors and `sed -i` do.
    fn replace(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    }

    #[test]
    fn load_merges_sources_and_counts_what_is_in_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.txt");
        std::fs::write(
            &a,
            "#domain,#severity,#reject_media,#reject_reports\n\
             shared.example,silence,false,false\n\
             only-a.example,noop,false,true\n\
             ba**.example,suspend,false,false\n",
        )
        .expect("write");
        std::fs::write(&b, "shared.example\nonly-b.example\n").expect("write");
        let (snapshot, summaries) =
            load(&[source(&a), source(&b)], &[], &PolicyConfig::default()).expect("loads");
        assert_eq!(snapshot.len(), 3);
        let shared = snapshot.get("shared.example").expect("listed");
        assert_eq!(
            shared.severity,
            Severity::Suspend,
            "the harshest source wins"
        );
        assert_eq!(&*shared.source, b.display().to_string());
        assert_eq!(
            summaries,
            [
                SourceSummary {
                    source: a.display().to_string(),
                    suspend: 0,
                    silence: 0,
                    noop: 1,
                    overridden: 1,
                    obfuscated: 1,
                    dry_run: false,
                    ..SourceSummary::default()
                },
                SourceSummary {
                    source: b.display().to_string(),
                    suspend: 2,
                    silence: 0,
                    noop: 0,
                    overridden: 0,
                    obfuscated: 0,
                    dry_run: false,
                    ..SourceSummary::default()
                },
            ]
        );
        assert_eq!(
            load(&[], &[], &PolicyConfig::default())
                .expect("no sources")
                .0
                .len(),
            0
        );
    }

    #[test]
    fn dry_run_sources_load_as_dry_run_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let enforced = dir.path().join("enforced.txt");
        let preview = dir.path().join("preview.txt");
        std::fs::write(&enforced, "both.example\n").expect("write");
        std::fs::write(&preview, "both.example\npreview.example\n").expect("write");
        let mut dry = source(&preview);
        dry.dry_run = true;
        let (snapshot, summaries) =
            load(&[source(&enforced), dry], &[], &PolicyConfig::default()).expect("loads");
        assert!(snapshot.is_suspended("both.example").is_some());
        assert!(snapshot.is_suspended("preview.example").is_none());
        let rule = snapshot.get("preview.example").expect("listed");
        assert!(rule.dry_run);
        assert_eq!(
            summaries
                .iter()
                .map(|s| (s.suspend, s.dry_run))
                .collect::<Vec<_>>(),
            [(1, false), (2, true)]
        );
    }

    #[test]
    fn load_error_names_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.txt");
        let bad = dir.path().join("bad.txt");
        std::fs::write(&good, "ok.example\n").expect("write");
        std::fs::write(&bad, "ok.example\n\nnot valid!\n").expect("write");
        let e = load(
            &[source(&good), source(&bad)],
            &[],
            &PolicyConfig::default(),
        )
        .expect_err("must fail");
        assert_eq!(e.file, bad.display().to_string());
        assert_eq!(e.line, 3);
        assert!(
            e.to_string().ends_with(":3: invalid domain \"not valid!\""),
            "{e}"
        );
    }

    #[test]
    fn failed_reload_keeps_the_old_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blocklist.csv");
        std::fs::write(&path, "old.example\n").expect("write");
        let m = metrics();
        let rules = Rules::new(vec![source(&path)], PolicyConfig::default(), m.clone())
            .expect("first load");
        let label = path.display().to_string();
        let gauge = |sev: &str| {
            m.rules_loaded
                .with_label_values(&[label.as_str(), sev])
                .get()
        };
        assert_eq!((gauge("suspend"), gauge("silence")), (1, 0));
        assert!(
            m.rules_last_reload_timestamp_seconds
                .with_label_values(&[label.as_str()])
                .get()
                > 0
        );

        std::fs::write(&path, "#domain,#severity\nnew.example,banish\n").expect("write");
        let e = rules.reload().expect_err("broken file");
        assert_eq!(e.refused.len(), 1);
        assert_eq!(e.refused[0].line, 2);
        let applied = e.applied.expect("the last good copy stands in");
        assert!(applied[0].stale && applied[0].changes.is_empty());
        assert!(
            applied[0]
                .to_string()
                .ends_with(" (refused: last good copy in force)"),
            "{}",
            applied[0]
        );
        assert!(suspended(&rules, "old.example"), "old rules stay in force");
        assert!(!suspended(&rules, "new.example"));
        assert_eq!((reloads(&m, "failure"), reloads(&m, "success")), (1, 0));
        let stale = || {
            m.rules_source_stale
                .with_label_values(&[label.as_str()])
                .get()
        };
        assert_eq!(stale(), 1);
        assert_eq!(gauge("suspend"), 1);
        let failing_since = || m.rules_reload_failing_since_timestamp_seconds.get();
        let first_failure = failing_since();
        assert!(first_failure > 0);
        // A second broken save: still failing since the first one.
        std::fs::write(&path, "#domain,#severity\nnew.example,exile\n").expect("write");
        std::thread::sleep(Duration::from_millis(1100));
        rules.reload().expect_err("still broken");
        assert_eq!(failing_since(), first_failure);

        std::fs::write(
            &path,
            "#domain,#severity\nnew.example,suspend\nlimit.example,silence\n",
        )
        .expect("write");
        let summaries = rules.reload().expect("fixed");
        assert_eq!((summaries[0].suspend, summaries[0].silence), (1, 1));
        assert!(suspended(&rules, "new.example"));
        assert!(!suspended(&rules, "old.example"));
        assert_eq!((reloads(&m, "failure"), reloads(&m, "success")), (2, 1));
        assert_eq!(failing_since(), 0, "a successful reload ends the failure");
        assert_eq!(stale(), 0);
        assert_eq!((gauge("suspend"), gauge("silence")), (1, 1));
        assert!(m
            .render()
            .contains("inboxguard_rules_loaded{severity=\"noop\""));
    }

    #[test]
    fn memory_sources_merge_survive_a_broken_file_and_can_be_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("local.csv");
        std::fs::write(&path, "#domain,#severity\nshared.example,silence\n").expect("write");
        let m = metrics();
        let rules = Rules::new(vec![source(&path)], PolicyConfig::default(), m.clone())
            .expect("first load");
        let remote = |domains: &[&str]| {
            let text: String = domains.iter().map(|d| format!("{d}\n")).collect();
            let label: Arc<str> = Arc::from("https://lists.example/blocks.txt");
            MemorySource {
                label: label.to_string(),
                parsed: Arc::new(
                    sources::parse_bytes(
                        text.as_bytes(),
                        label,
                        crate::config::BlocklistFormat::Plain,
                    )
                    .expect("parses"),
                ),
                dry_run: false,
                exclude: false,
                subscribed: true,
                priority: 0,
            }
        };
        let summaries = rules
            .set_memory_source(remote(&["shared.example", "remote.example"]))
            .expect("reload");
        assert_eq!(summaries.len(), 2);
        assert_eq!(
            (summaries[1].source.as_str(), summaries[1].suspend),
            ("https://lists.example/blocks.txt", 2),
            "the harsher remote rule wins for the shared domain"
        );
        assert_eq!(summaries[0].overridden, 1);
        assert!(suspended(&rules, "remote.example") && suspended(&rules, "shared.example"));

        // A broken local file is refused, but does not hold back the new remote copy: the
        // file's last good copy stands in beside it.
        std::fs::write(&path, "#domain,#severity\nx.example,banish\n").expect("write");
        let e = rules
            .set_memory_source(remote(&["later.example"]))
            .expect_err("broken file");
        assert_eq!(e.refused[0].file, path.display().to_string());
        assert!(suspended(&rules, "later.example") && !suspended(&rules, "remote.example"));
        assert_eq!(
            rules
                .current()
                .load()
                .rule_for("shared.example")
                .map(|r| r.severity),
            Some(Severity::Silence),
            "the file's last good rules are in force"
        );
        std::fs::write(&path, "#domain,#severity\n").expect("write");
        rules.reload().expect("fixed");
        assert!(rules.current().load().rule_for("shared.example").is_none());

        let label = "https://lists.example/blocks.txt";
        assert!(rules.remove_memory_source(label).expect("reload").is_some());
        assert!(!suspended(&rules, "later.example"));
        assert!(rules
            .remove_memory_source(label)
            .expect("nothing")
            .is_none());
        assert!(rules.memory_sources().is_empty());
        assert_eq!(
            m.rules_loaded.with_label_values(&[label, "suspend"]).get(),
            0,
            "gauges of a removed source are dropped (a fresh series reads 0)"
        );
    }

    #[test]
    fn unreadable_source_fails_the_first_load() {
        let e = Rules::new(
            vec![source(Path::new("/nonexistent/x.csv"))],
            PolicyConfig::default(),
            metrics(),
        )
        .err()
        .expect("must fail");
        assert_eq!(e.line, 0);
        assert!(matches!(e.kind, LoadErrorKind::Read(_)));
    }

    #[test]
    fn stale_gauges_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "a.example\n").expect("write");
        let m = metrics();
        let rules =
            Rules::new(vec![source(&path)], PolicyConfig::default(), m.clone()).expect("load");
        let mut state = State {
            published: vec!["gone.csv".to_string()],
            ..State::default()
        };
        m.rules_loaded
            .with_label_values(&["gone.csv", "suspend"])
            .set(5);
        rules.publish(&mut state, &[], &[]);
        assert!(state.published.is_empty());
        assert!(!m.render().contains("gone.csv"));
    }

    #[test]
    fn event_filter() {
        use notify::event::{CreateKind, ModifyKind, RenameMode};
        let names: HashSet<OsString> = [OsString::from("blocklist.csv")].into();
        let event = |kind, path: &str| notify::Event::new(kind).add_path(PathBuf::from(path));
        let rename = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert!(affects_sources(
            &event(rename, "/etc/ig/blocklist.csv"),
            &names
        ));
        assert!(affects_sources(&event(rename, "/etc/ig/..data"), &names));
        assert!(affects_sources(
            &event(EventKind::Create(CreateKind::File), "/etc/ig/blocklist.csv"),
            &names
        ));
        assert!(affects_sources(
            &event(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                "/etc/ig/blocklist.csv"
            ),
            &names
        ));
        assert!(!affects_sources(
            &event(
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                "/etc/ig/blocklist.csv"
            ),
            &names
        ));
        assert!(!affects_sources(
            &event(rename, "/etc/ig/inboxguard.toml"),
            &names
        ));
        assert!(!affects_sources(
            &event(rename, "/etc/ig/.blocklist.csv.swp"),
            &names
        ));
        assert!(affects_sources(&notify::Event::new(EventKind::Any), &names));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_picks_up_an_edit_and_stops_on_shutdown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blocklist.csv");
        std::fs::write(&path, "old.example\n").expect("write");
        let m = metrics();
        let rules =
            Rules::new(vec![source(&path)], PolicyConfig::default(), m.clone()).expect("load");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rules.clone().watch(async {
            let _ = stopped.await;
        }));

        eventually(
            || std::fs::write(&path, "old.example\nnew.example\n").expect("write in place"),
            || suspended(&rules, "new.example"),
        )
        .await;
        eventually(
            || replace(&path, "renamed.example\n"),
            || suspended(&rules, "renamed.example"),
        )
        .await;
        assert!(!suspended(&rules, "old.example"));

        // A broken edit is refused by the watcher's reload too.
        let failures = reloads(&m, "failure");
        eventually(
            || replace(&path, "broken example\n"),
            || reloads(&m, "failure") > failures,
        )
        .await;
        assert!(suspended(&rules, "renamed.example"));

        stop.send(()).expect("watcher alive");
        tokio::time::timeout(DEADLINE, task)
            .await
            .expect("watch stops on shutdown")
            .expect("watch task");
    }

    /// Kubernetes mounts a ConfigMap as `dir/blocklist.csv -> ..data/blocklist.csv` and
    /// `..data -> ..<timestamp>`; an update writes a new timestamped directory and renames a
    /// fresh `..data` symlink over the old one. Nothing named `blocklist.csv` changes.
    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_follows_a_configmap_symlink_swap() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let revision = |name: &str, text: &str| {
            std::fs::create_dir(root.join(name)).expect("revision dir");
            std::fs::write(root.join(name).join("blocklist.csv"), text).expect("write");
        };
        revision("..2026_01_01", "first.example\n");
        symlink("..2026_01_01", root.join("..data")).expect("..data");
        symlink("..data/blocklist.csv", root.join("blocklist.csv")).expect("link");
        let path = root.join("blocklist.csv");
        let rules =
            Rules::new(vec![source(&path)], PolicyConfig::default(), metrics()).expect("load");
        assert!(suspended(&rules, "first.example"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rules.clone().watch(async {
            let _ = stopped.await;
        }));

        let mut n = 0;
        eventually(
            || {
                n += 1;
                let name = format!("..2026_01_02_{n}");
                revision(&name, "second.example\n");
                let tmp = root.join("..data_tmp");
                symlink(&name, &tmp).expect("tmp link");
                std::fs::rename(&tmp, root.join("..data")).expect("swap");
            },
            || suspended(&rules, "second.example"),
        )
        .await;
        assert!(!suspended(&rules, "first.example"));
        // The old revision goes away, as the kubelet removes it; the watcher must not care.
        std::fs::remove_dir_all(root.join("..2026_01_01")).expect("cleanup");

        stop.send(()).expect("watcher alive");
        tokio::time::timeout(DEADLINE, task)
            .await
            .expect("watch stops")
            .expect("watch task");
    }

    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sighup_reloads() {
        // Installing a handler first makes SIGHUP harmless to the test process even if it
        // arrives before `watch` has installed its own.
        let _guard = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .expect("sighup handler");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blocklist.txt");
        std::fs::write(&path, "a.example\n").expect("write");
        let m = metrics();
        let rules =
            Rules::new(vec![source(&path)], PolicyConfig::default(), m.clone()).expect("load");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rules.clone().watch(async {
            let _ = stopped.await;
        }));
        // No file changes: only the signal can cause a reload.
        let pid = std::process::id().to_string();
        eventually(
            || {
                let status = std::process::Command::new("kill")
                    .args(["-HUP", &pid])
                    .status()
                    .expect("run kill");
                assert!(status.success());
            },
            || rules.generation() > 0,
        )
        .await;
        assert!(reloads(&m, "success") > 0);
        stop.send(()).expect("watcher alive");
        tokio::time::timeout(DEADLINE, task)
            .await
            .expect("watch stops")
            .expect("watch task");
    }

    fn memory(label: &str, text: &str) -> MemorySource {
        let label_arc: Arc<str> = Arc::from(label);
        let parsed = sources::parse_bytes(text.as_bytes(), label_arc, BlocklistFormat::Auto)
            .expect("parses");
        MemorySource::new(label, Arc::new(parsed))
    }

    fn subscribed(label: &str, text: &str) -> MemorySource {
        MemorySource {
            subscribed: true,
            ..memory(label, text)
        }
    }

    fn threshold(n: usize) -> PolicyConfig {
        PolicyConfig {
            subscription_threshold: n,
            ..PolicyConfig::default()
        }
    }

    #[test]
    fn exception_sources_override_every_other_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = dir.path().join("local.csv");
        let exceptions = dir.path().join("exceptions.csv");
        std::fs::write(
            &local,
            "#domain,#severity\nbad.example,suspend\nkept.example,silence\n",
        )
        .expect("write");
        std::fs::write(
            &exceptions,
            "#domain,#public_comment\nok.bad.example,\nkept.example,asked nicely\n",
        )
        .expect("write");
        let mut exclude = source(&exceptions);
        exclude.exclude = true;
        let mut remote_exceptions =
            memory("https://lists.example/exceptions.txt", "remote.example\n");
        remote_exceptions.exclude = true;
        let (snapshot, summaries) = load(
            &[source(&local), exclude],
            &[
                subscribed(
                    "https://lists.example/blocks.txt",
                    "remote.example\nx.ok.bad.example\n",
                ),
                remote_exceptions,
            ],
            &PolicyConfig::default(),
        )
        .expect("loads");
        assert!(snapshot.is_suspended("bad.example").is_some());
        assert!(snapshot.is_suspended("a.ok.bad.example").is_none());
        assert!(
            snapshot.is_suspended("y.x.ok.bad.example").is_some(),
            "a longer suffix than the exception still applies"
        );
        assert!(snapshot.rule_for("kept.example").is_none());
        assert!(
            snapshot.is_suspended("remote.example").is_none(),
            "a memory exception list works like a file"
        );
        assert_eq!(
            snapshot
                .exception_for("kept.example")
                .and_then(|e| e.comment.as_deref()),
            Some("asked nicely")
        );
        let counts: Vec<(usize, usize, usize, usize, bool)> = summaries
            .iter()
            .map(|s| {
                (
                    s.suspend,
                    s.silence,
                    s.exclude,
                    s.excluded,
                    s.exception_list,
                )
            })
            .collect();
        assert_eq!(
            counts,
            [
                (1, 0, 0, 1, false),
                (0, 0, 2, 0, true),
                (1, 0, 0, 1, false),
                (0, 0, 1, 0, true),
            ]
        );
        assert_eq!(summaries[0].overridden, 0);
    }

    #[test]
    fn subscribed_rules_need_the_threshold_and_local_files_always_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = dir.path().join("local.txt");
        std::fs::write(&local, "local.example\n").expect("write");
        let a = subscribed("https://a.example/list", "both.example\nonly-a.example\n");
        let b = subscribed(
            "https://b.example/list",
            "#domain,#severity\nboth.example,silence\nlocal.example,noop\n",
        );
        let mut preview = subscribed("https://c.example/list", "only-a.example\n");
        preview.dry_run = true;
        let api = memory("mastodon-api", "only-api.example\n");
        let (snapshot, summaries) = load(
            &[source(&local)],
            &[a.clone(), b.clone(), preview.clone(), api.clone()],
            &threshold(2),
        )
        .expect("loads");
        // Two sources agree: in force, the harsher wins.
        assert!(snapshot.is_suspended("both.example").is_some());
        // One enforcing source: held back; a dry-run preview agreeing does not tip it into
        // force, but the preview's own rule is judged with it.
        assert!(snapshot.rule_for("only-a.example").is_none());
        assert_eq!(
            snapshot
                .rule_for_including_dry_run("only-a.example")
                .map(|r| (r.dry_run, &*r.source)),
            Some((true, "https://c.example/list"))
        );
        // Local files, and memory sources that are not subscriptions, always apply.
        assert!(snapshot.is_suspended("local.example").is_some());
        assert!(snapshot.is_suspended("only-api.example").is_some());
        let withheld: Vec<&str> = snapshot
            .withheld_rules("only-a.example")
            .iter()
            .map(|r| &*r.source)
            .collect();
        assert_eq!(withheld, ["https://a.example/list"]);
        let below: Vec<(usize, usize, usize)> = summaries
            .iter()
            .map(|s| {
                (
                    s.suspend + s.silence + s.noop,
                    s.below_threshold,
                    s.overridden,
                )
            })
            .collect();
        assert_eq!(
            below,
            [(1, 0, 0), (1, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 0)]
        );
        // Threshold 1: every subscribed rule applies.
        let (snapshot, _) =
            load(&[source(&local)], &[a, b, preview, api], &threshold(1)).expect("loads");
        assert!(snapshot.is_suspended("only-a.example").is_some());
        assert_eq!(snapshot.iter_withheld().count(), 0);
    }

    #[test]
    fn priority_picks_which_sources_compete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ours = dir.path().join("ours.csv");
        std::fs::write(&ours, "#domain,#severity\nshared.example,silence\n").expect("write");
        let mut local = source(&ours);
        local.priority = 10;
        let remote = subscribed(
            "https://lists.example/blocks.txt",
            "shared.example\nother.example\n",
        );
        let (snapshot, summaries) = load(
            &[local.clone()],
            std::slice::from_ref(&remote),
            &PolicyConfig::default(),
        )
        .expect("loads");
        assert_eq!(
            snapshot.rule_for("shared.example").map(|r| r.severity),
            Some(Severity::Silence),
            "the higher priority wins even though milder"
        );
        assert!(snapshot.is_suspended("other.example").is_some());
        assert_eq!((summaries[1].suspend, summaries[1].overridden), (1, 1));
        // Equal priorities: the harshest wins, as before.
        local.priority = 0;
        let (snapshot, _) = load(&[local], &[remote], &PolicyConfig::default()).expect("loads");
        assert!(snapshot.is_suspended("shared.example").is_some());
    }

    #[test]
    fn toml_and_allow_sources_load_with_their_kinds() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/blocklists");
        let mut allows = source(&root.join("domain_allows.csv"));
        allows.kind = crate::config::SourceKind::Allow;
        let policy = PolicyConfig {
            mode: crate::config::PolicyMode::Allowlist,
            ..PolicyConfig::default()
        };
        let (snapshot, summaries) =
            load(&[source(&root.join("rules.toml")), allows], &[], &policy).expect("loads");
        assert_eq!(snapshot.mode(), crate::config::PolicyMode::Allowlist);
        assert!(snapshot.allow_for("x.partner.example").is_some());
        assert!(snapshot
            .actor_rule_for("https://elsewhere.example/@mallory")
            .is_some());
        assert!(snapshot.friendly_federators().is_some());
        let toml = &summaries[0];
        assert_eq!(
            (
                toml.suspend,
                toml.silence,
                toml.allow,
                toml.exclude,
                toml.actor_suspend,
                toml.overridden
            ),
            (2, 1, 1, 1, 2, 0)
        );
        // friend.example is in both; the first source listing it counts it.
        assert_eq!((summaries[1].allow, summaries[1].overridden), (2, 1));
        assert_eq!(
            toml.to_string(),
            format!(
                "{}: suspend=2 silence=1 noop=0 allow=1 exclude=1 actor_suspend=2",
                root.join("rules.toml").display()
            )
        );
        // A second [friendly_federators] table is refused, naming both places.
        let e = load(
            &[
                source(&root.join("rules.toml")),
                source(&root.join("rules.toml")),
            ],
            &[],
            &policy,
        )
        .expect_err("two tables");
        assert_eq!(e.line, 36);
        assert!(matches!(
            e.kind,
            LoadErrorKind::DuplicateFriendlyFederators { .. }
        ));
    }

    /// A `tracing` writer into a shared buffer, to read what a reload logged.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Held by the test that captures logs and by tests that log the same call sites at once:
    /// `tracing` caches per call site whether anyone listens, and a site first reached on
    /// another thread while the capturing subscriber is being set up can stay cached as
    /// unheard, so its lines go missing from the capture.
    static LOG_CALL_SITES: Mutex<()> = Mutex::new(());

    fn log_call_sites() -> std::sync::MutexGuard<'static, ()> {
        LOG_CALL_SITES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    #[test]
    fn a_reload_reports_and_logs_what_changed_per_source() {
        let _serial = log_call_sites();
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = dir.path().join("a.csv");
        let toml = dir.path().join("b.toml");
        std::fs::write(
            &csv,
            "#domain,#severity\nkeep.example,suspend\nup.example,silence\ngone.example,suspend\n",
        )
        .expect("write");
        std::fs::write(&toml, "[[allow]]\ndomain = \"friend.example\"\n").expect("write");
        let rules = Rules::new(
            vec![source(&csv), source(&toml)],
            PolicyConfig::default(),
            metrics(),
        )
        .expect("load");
        rules
            .set_memory_source(subscribed("https://lists.example/x", "remote.example\n"))
            .expect("reload");

        std::fs::write(
            &csv,
            "#domain,#severity\nkeep.example,suspend\nup.example,suspend\nnew.example,silence\n",
        )
        .expect("write");
        std::fs::write(
            &toml,
            "[[allow]]\ndomain = \"friend.example\"\n[[exclude]]\ndomain = \"ok.example\"\n\
             [[actor]]\nactor = \"@m@bad.example\"\n",
        )
        .expect("write");
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let summaries =
            tracing::subscriber::with_default(subscriber, || rules.reload()).expect("reload");
        let changes: Vec<String> = summaries.iter().map(|s| s.changes.to_string()).collect();
        assert_eq!(
            changes,
            [
                "suspend +0 -1 ~1, silence +1 -0 ~0, noop +0 -0 ~0, allow +0 -0 ~0, \
                 exclude +0 -0 ~0, actor_suspend +0 -0 ~0",
                "suspend +0 -0 ~0, silence +0 -0 ~0, noop +0 -0 ~0, allow +0 -0 ~0, \
                 exclude +1 -0 ~0, actor_suspend +1 -0 ~0",
                "suspend +0 -0 ~0, silence +0 -0 ~0, noop +0 -0 ~0, allow +0 -0 ~0, \
                 exclude +0 -0 ~0, actor_suspend +0 -0 ~0",
            ]
        );
        let log = String::from_utf8(log.0.lock().expect("log").clone()).expect("utf-8");
        let line = |source: &Path| {
            log.lines()
                .find(|l| {
                    l.contains("rule source changed")
                        && l.contains(&format!("source={}", source.display()))
                })
                .unwrap_or_else(|| panic!("no change line for {}:\n{log}", source.display()))
                .to_string()
        };
        assert!(
            line(&csv).contains("changes=suspend +0 -1 ~1, silence +1 -0 ~0,"),
            "{log}"
        );
        assert!(
            line(&toml).contains("exclude +1 -0 ~0, actor_suspend +1 -0 ~0"),
            "{log}"
        );
        assert!(!log.contains("source=https://lists.example/x"), "{log}");
        assert!(
            log.contains("rules reloaded") && log.contains("changes=suspend +0 -1 ~1, silence +1 -0 ~0, noop +0 -0 ~0, allow +0 -0 ~0, exclude +1 -0 ~0, actor_suspend +1 -0 ~0"),
            "{log}"
        );
    }

    #[test]
    fn reload_timestamps_move_only_for_sources_loaded_anew() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("local.txt");
        std::fs::write(&path, "local.example\n").expect("write");
        let m = metrics();
        let rules =
            Rules::new(vec![source(&path)], PolicyConfig::default(), m.clone()).expect("load");
        let remote = "https://lists.example/blocks.txt";
        rules
            .set_memory_source(subscribed(remote, "remote.example\n"))
            .expect("reload");
        let file = path.display().to_string();
        let stamp = |label: &str| {
            m.rules_last_reload_timestamp_seconds
                .with_label_values(&[label])
                .get()
        };
        assert!(stamp(&file) > 1 && stamp(remote) > 1);
        let reset = || {
            for label in [file.as_str(), remote] {
                m.rules_last_reload_timestamp_seconds
                    .with_label_values(&[label])
                    .set(1);
            }
        };

        // A reload of the file (every file is read again) leaves the subscription's copy,
        // and the time it came into force, alone.
        reset();
        std::fs::write(&path, "local.example\nother.example\n").expect("write");
        rules.reload().expect("reload");
        assert!(stamp(&file) > 1);
        assert_eq!(
            stamp(remote),
            1,
            "the subscription did not load anything new"
        );

        // A new copy of the subscription moves its own timestamp.
        reset();
        rules
            .set_memory_source(subscribed(remote, "remote.example\nmore.example\n"))
            .expect("reload");
        assert!(stamp(remote) > 1);

        // A refused file keeps the time its last good copy came into force; a subscription's
        // new copy still moves its own.
        reset();
        std::fs::write(&path, "not a domain!\n").expect("write");
        rules.reload().expect_err("broken");
        assert_eq!((stamp(&file), stamp(remote)), (1, 1));
        rules
            .set_memory_source(subscribed(remote, "third.example\n"))
            .expect_err("broken file");
        assert_eq!(stamp(&file), 1);
        assert!(stamp(remote) > 1);
    }

    #[test]
    fn gauges_and_reload_log_cover_every_kind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rules.toml");
        std::fs::write(&path, "[[allow]]\ndomain = \"a.example\"\n").expect("write");
        let m = metrics();
        let rules =
            Rules::new(vec![source(&path)], PolicyConfig::default(), m.clone()).expect("load");
        let label = path.display().to_string();
        let gauge = |kind: &str| {
            m.rules_loaded
                .with_label_values(&[label.as_str(), kind])
                .get()
        };
        assert_eq!((gauge("allow"), gauge("actor_suspend")), (1, 0));
        std::fs::write(
            &path,
            "[[actor]]\nactor = \"@m@bad.example\"\n[[exclude]]\ndomain = \"x.example\"\n",
        )
        .expect("write");
        rules.reload().expect("reload");
        assert_eq!(
            (gauge("allow"), gauge("actor_suspend"), gauge("exclude")),
            (0, 1, 1)
        );
    }

    #[test]
    fn a_refused_file_keeps_its_last_good_copy_while_other_files_reload() {
        let _serial = log_call_sites();
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.txt");
        std::fs::write(&a, "#domain,#severity\nold-a.example,suspend\n").expect("write");
        std::fs::write(&b, "old-b.example\n").expect("write");
        let m = metrics();
        let rules = Rules::new(
            vec![source(&a), source(&b)],
            PolicyConfig::default(),
            m.clone(),
        )
        .expect("load");
        let (label_a, label_b) = (a.display().to_string(), b.display().to_string());
        let stale = |label: &str| m.rules_source_stale.with_label_values(&[label]).get();
        let failing_since = || m.rules_reload_failing_since_timestamp_seconds.get();
        assert_eq!((stale(&label_a), stale(&label_b)), (0, 0));

        // A broken, B gains a domain: B's edit applies, A's old rules stay.
        std::fs::write(&a, "#domain,#severity\nnew-a.example,banish\n").expect("write");
        std::fs::write(&b, "old-b.example\nnew-b.example\n").expect("write");
        let e = rules.reload().expect_err("a is broken");
        assert_eq!(
            e.to_string(),
            format!("{label_a}:2: unknown severity \"banish\" (expected suspend, silence or noop)")
        );
        let applied = e.applied.expect("b applied");
        assert_eq!(
            applied
                .iter()
                .map(|s| (s.stale, s.suspend))
                .collect::<Vec<_>>(),
            [(true, 1), (false, 2)]
        );
        assert!(suspended(&rules, "new-b.example") && suspended(&rules, "old-a.example"));
        assert!(!suspended(&rules, "new-a.example"));
        assert_eq!((stale(&label_a), stale(&label_b)), (1, 0));
        assert_eq!((reloads(&m, "failure"), reloads(&m, "success")), (1, 0));
        let since = failing_since();
        assert!(since > 0);

        // Another reload while A is still broken (B edited again): still failing since the
        // first refusal, and A's last good copy is still the one in force.
        std::fs::write(&b, "new-b.example\n").expect("write");
        rules.reload().expect_err("a still broken");
        assert!(!suspended(&rules, "old-b.example") && suspended(&rules, "old-a.example"));
        assert_eq!((failing_since(), stale(&label_a)), (since, 1));

        // A deleted is refused the same way.
        std::fs::remove_file(&a).expect("remove");
        let e = rules.reload().expect_err("a missing");
        assert!(matches!(e.refused[0].kind, LoadErrorKind::Read(_)));
        assert!(suspended(&rules, "old-a.example"));

        // A fixed: its new rules are in force, and nothing is stale or failing.
        std::fs::write(&a, "#domain,#severity\nnew-a.example,suspend\n").expect("write");
        let summaries = rules.reload().expect("fixed");
        assert!(summaries.iter().all(|s| !s.stale));
        assert!(suspended(&rules, "new-a.example") && !suspended(&rules, "old-a.example"));
        assert_eq!((stale(&label_a), failing_since()), (0, 0));
        assert_eq!(reloads(&m, "success"), 1);
    }

    #[test]
    fn a_conflicting_edit_is_refused_and_the_other_files_still_reload() {
        let _serial = log_call_sites();
        let dir = tempfile::tempdir().expect("tempdir");
        let first = dir.path().join("first.toml");
        let second = dir.path().join("second.toml");
        let table = "[friendly_federators]\nannounce = false\n";
        std::fs::write(&first, table).expect("write");
        std::fs::write(&second, "[[domain]]\ndomain = \"old.example\"\n").expect("write");
        let m = metrics();
        let rules = Rules::new(
            vec![source(&first), source(&second)],
            PolicyConfig::default(),
            m.clone(),
        )
        .expect("load");
        // The second file gains a second [friendly_federators] table and a domain: each parses,
        // but they conflict with the first file, so the edit is refused whole.
        std::fs::write(
            &second,
            format!("[[domain]]\ndomain = \"new.example\"\n\n{table}"),
        )
        .expect("write");
        let e = rules.reload().expect_err("conflict");
        assert!(matches!(
            e.refused[0].kind,
            LoadErrorKind::DuplicateFriendlyFederators { .. }
        ));
        assert!(suspended(&rules, "old.example") && !suspended(&rules, "new.example"));
        let label = second.display().to_string();
        assert_eq!(m.rules_source_stale.with_label_values(&[&label]).get(), 1);
        assert!(rules.current().load().friendly_federators().is_some());
    }
}

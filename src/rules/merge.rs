//! The merge: configured files and memory sources in, one `Snapshot` and per-source counts
//! out, by the same rules for the first load, every reload, `check` and `explain`. Nothing
//! here holds state; the only I/O is reading the configured files in `load`.

use super::summary::SourceSummary;
use crate::config::{BlocklistConfig, PolicyConfig};
use crate::policy::sources::{self, LoadError, LoadErrorKind, ParsedSource, Unfolded};
use crate::policy::{DomainDigest, DomainEntry, DomainRule, RuleKind, Sizes, Snapshot};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

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
    /// The shrink guard (`rules::guard`) for a new copy replacing this source; `None` for
    /// sources whose owner decides (generated rules, Mastodon's own admin list).
    pub max_shrink: Option<f64>,
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
            max_shrink: None,
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
        .map(read_config)
        .collect::<Result<Vec<_>, _>>()?;
    merge(sources, files, memory, policy, &wanted)
}

/// A configured file's label: its path as configured (the `source` of its rules and metrics).
pub(super) fn label_of(config: &BlocklistConfig) -> String {
    config.path.display().to_string()
}

/// Reads and parses a configured file.
pub(super) fn read_config(config: &BlocklistConfig) -> Result<ParsedSource, LoadError> {
    read_config_keeping(config, |_| ()).map(|(parsed, ())| parsed)
}

/// Reads and parses a configured file, and what `keep` makes of its bytes (a reload's last
/// good copy). `keep` runs first, and the bytes are freed before the parse's last step: a
/// reload holds them for the parse only.
pub(super) fn read_config_keeping<K>(
    config: &BlocklistConfig,
    keep: impl FnOnce(&[u8]) -> K,
) -> Result<(ParsedSource, K), LoadError> {
    let bytes = crate::rule_files::read(&config.path)?;
    let kept = keep(&bytes);
    let unfolded = parse_unfolded(config, &bytes)?;
    drop(bytes);
    Ok((finish_config(config, unfolded)?, kept))
}

/// Parses a configured file's contents, labelled with its path as configured.
pub(super) fn parse_config(
    config: &BlocklistConfig,
    bytes: &[u8],
) -> Result<ParsedSource, LoadError> {
    finish_config(config, parse_unfolded(config, bytes)?)
}

fn parse_unfolded(config: &BlocklistConfig, bytes: &[u8]) -> Result<Unfolded, LoadError> {
    let label = Arc::from(label_of(config));
    match config.fediseer_settings() {
        Some(settings) => sources::parse_fediseer_unfolded(bytes, label, settings),
        None => sources::parse_unfolded_as(bytes, label, config.format, config.kind),
    }
}

/// The parse's last step, then the file's label filters and severity mapping.
fn finish_config(config: &BlocklistConfig, unfolded: Unfolded) -> Result<ParsedSource, LoadError> {
    let mut parsed = unfolded.finish()?;
    sources::filter_labels(&mut parsed, &config.labels_any, &config.labels_none);
    sources::import_severities(&mut parsed, &config.severity_map, config.max_severity);
    Ok(parsed)
}

/// The one conflict between sources that refuses a load: two `[friendly_federators]` tables
/// (files in order, then memory sources, as `merge` loads them). A reload checks it before
/// merging, so it can settle which files to refuse, and give up their previous good bytes,
/// before the new snapshot is built.
pub(super) fn check_conflicts(
    configs: &[BlocklistConfig],
    files: &[ParsedSource],
    memory: &[MemorySource],
) -> Result<(), LoadError> {
    let labelled = configs
        .iter()
        .map(label_of)
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
pub(super) fn merge(
    configs: &[BlocklistConfig],
    files: Vec<ParsedSource>,
    memory: &[MemorySource],
    policy: &PolicyConfig,
    wanted: &dyn Fn(&DomainRule) -> bool,
) -> Result<Loaded, LoadError> {
    check_conflicts(configs, &files, memory)?;
    let mut loading: Vec<Loading<'_>> = Vec::with_capacity(files.len() + memory.len());
    for (config, parsed) in configs.iter().zip(files) {
        let label = label_of(config);
        warn_about_skips(&label, &parsed);
        loading.push(Loading {
            entries: parsed.len(),
            parsed: Cow::Owned(parsed),
            summary: SourceSummary {
                source: label,
                dry_run: config.dry_run,
                exception_list: config.is_exception_list(),
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
                    line: rule.line_number(),
                });
            }
        } else {
            let (owned, shared) = match &mut l.parsed {
                Cow::Owned(parsed) => (std::mem::take(&mut parsed.rules), &[][..]),
                Cow::Borrowed(parsed) => (Vec::new(), &parsed.rules[..]),
            };
            // The owned rules' vector shrinks as they move into the snapshot.
            let owned = crate::memory::releasing(owned);
            let rules = owned.chain(shared.iter().cloned());
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
        for mut rule in l.parsed.actors.iter().cloned() {
            rule.dry_run |= dry_run;
            builder.actor(rule);
        }
        for rule in l.parsed.rate_limits.iter().cloned() {
            builder.rate_override(rule);
        }
        for mut rule in l.parsed.content_rules.iter().cloned() {
            rule.dry_run |= dry_run;
            let (name, source, line) = (rule.name.clone(), rule.source.clone(), rule.line);
            if !builder.content_rule(rule) {
                tracing::warn!(
                    rule = &*name,
                    rule_source = &*source,
                    rule_line = line,
                    "more content rules than the limit; this one and later ones are left out"
                );
            }
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
    let skips = [
        (
            source.obfuscated,
            source.first_obfuscated_line,
            "skipped entries containing '*' (obfuscated or wildcard) without a digest; they cannot be matched",
        ),
        (
            source.duplicates,
            source.first_duplicate_line,
            "domains listed more than once; the harshest rule of each is kept",
        ),
    ];
    for (count, first_line, what) in skips {
        if count > 0 {
            tracing::warn!(source = label, count, first_line, "{what}");
        }
    }
}

#[cfg(test)]
mod tests;

//! `Rules`, the live rules: owns the snapshot requests `load()`, each configured file's last
//! good copy, and the memory sources; rebuilds and swaps the snapshot on reload, and keeps the
//! reload metrics and per-source gauges.

use super::good::GoodCopy;
use super::guard;
use super::merge::{self, Loaded, MemorySource};
use super::observe::{ReloadObserver, Reloaded, Trigger, NAMED_CHANGES};
use super::summary::{ReloadError, SourceSummary};
use crate::config::{BlocklistConfig, PolicyConfig};
use crate::metrics::Metrics;
use crate::policy::sources::{LoadError, ParsedSource};
use crate::policy::{Changes, DomainRule, RuleKind, Snapshot};
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

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
    /// Memory sources' new copies that the shrink guard held back, by label, until accepted.
    held: BTreeMap<String, MemorySource>,
    /// Labels whose next shrink an operator accepted (cleared by the reload that follows).
    accepted: HashSet<String>,
    /// Per-source counts of the snapshot in force, for a reload that finds nothing changed.
    summaries: Vec<SourceSummary>,
}

/// A configured file as the last reload left it.
struct FileState {
    /// The path as configured: the `source` label.
    label: String,
    /// The contents last parsed without error, parsed again whenever the file on disk is
    /// refused, so its good rules stay in force while other sources reload. The bytes rather
    /// than the parsed rules, compressed: a fraction of their memory, and no second copy of
    /// every rule.
    good: GoodCopy,
    /// How many entries `good` lists: what the shrink guard compares a new version with.
    good_len: usize,
    /// As `BlocklistConfig::max_shrink`.
    max_shrink: f64,
    /// The last reload refused the file on disk (`inboxguard_rules_source_stale`).
    stale: bool,
    /// The refusal was the shrink guard's: an operator may accept the file as it is.
    held: bool,
}

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
    /// Told of each reload that swapped a snapshot in (the rule-change log).
    observer: OnceLock<Arc<dyn ReloadObserver>>,
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
            let (rules, good) = merge::read_config_keeping(config, |b| GoodCopy::new(b, None))?;
            files.push(FileState {
                label: merge::label_of(config),
                good,
                good_len: rules.len(),
                max_shrink: config.max_shrink,
                stale: false,
                held: false,
            });
            parsed.push(rules);
        }
        let (snapshot, summaries, _) = merge::merge(&sources, parsed, &[], &policy, &|_| false)?;
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
            observer: OnceLock::new(),
        };
        {
            let mut state = rules.lock();
            rules.publish(&mut state, &summaries, &[]);
        }
        crate::memory::release_freed_pages_or_log();
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
        self.reload_by(Trigger::Admin)
    }

    /// [`Rules::reload`], telling the observer what asked for it.
    pub fn reload_by(&self, trigger: Trigger<'_>) -> Result<Vec<SourceSummary>, ReloadError> {
        let mut state = self.lock();
        self.reload_locked(&mut state, trigger)
    }

    /// Sets who is told of reloads; only the first call counts.
    pub fn observe(&self, observer: Arc<dyn ReloadObserver>) {
        let _ = self.observer.set(observer);
    }

    /// Puts `source` in force in place of the memory source with the same label (or beside the
    /// others, when new), and reloads (blocking file I/O: call from a blocking thread). A broken
    /// local file does not hold it back: that file's last good copy stands in, and the refusal
    /// is returned, logged and counted as for `reload`.
    pub fn set_memory_source(
        &self,
        source: MemorySource,
    ) -> Result<Vec<SourceSummary>, ReloadError> {
        self.set_memory_source_by(source, |label| Trigger::SetMemory(label))
    }

    /// [`Rules::set_memory_source`], telling the observer `trigger(label)` asked for it (an
    /// operator's lift rather than a new escalation).
    pub fn set_memory_source_by(
        &self,
        source: MemorySource,
        trigger: fn(&str) -> Trigger<'_>,
    ) -> Result<Vec<SourceSummary>, ReloadError> {
        let mut state = self.lock();
        let label = source.label.clone();
        if let Some(max_shrink) = source.max_shrink {
            let before = state.memory.get(&label).map_or(0, |m| m.parsed.len());
            let after = source.parsed.len();
            if !state.accepted.remove(&label) && guard::too_much(before, after, max_shrink) {
                state.held.insert(label.clone(), source);
                let refusal = guard::refusal(&label, before, after, max_shrink);
                return Err(self.failed(vec![refusal], None));
            }
        }
        state.held.remove(&label);
        state.memory.insert(label.clone(), source);
        self.reload_locked(&mut state, trigger(&label))
    }

    /// An operator's word that `label`'s new version, which the shrink guard held back, is
    /// meant: a held remote copy goes into force, a local file is read again and taken as it
    /// is. `Ok(None)` when no source has that label.
    pub fn accept(&self, label: &str) -> Result<Option<Vec<SourceSummary>>, ReloadError> {
        let mut state = self.lock();
        let known = state.files.iter().any(|f| f.label == label)
            || state.memory.contains_key(label)
            || state.held.contains_key(label);
        if !known {
            return Ok(None);
        }
        tracing::warn!(source = label, "shrink accepted by an operator");
        if let Some(source) = state.held.remove(label) {
            state.memory.insert(label.to_string(), source);
        } else {
            state.accepted.insert(label.to_string());
        }
        let result = self.reload_locked(&mut state, Trigger::Accept(label));
        // An acceptance is for the version refused now, not for every later one.
        state.accepted.clear();
        result.map(Some)
    }

    /// The label of the source `name` names: its label (path as configured, or URL), or the
    /// file name of exactly one configured file.
    pub fn source_named(&self, name: &str) -> Option<String> {
        let state = self.lock();
        let labels = state.files.iter().map(|f| &f.label);
        let mut labels = labels.chain(state.memory.keys()).chain(state.held.keys());
        if let Some(label) = labels.find(|l| *l == name) {
            return Some(label.clone());
        }
        let mut by_file_name = self.sources.iter().filter(|s| {
            s.path
                .file_name()
                .is_some_and(|f| f.to_string_lossy() == name)
        });
        match (by_file_name.next(), by_file_name.next()) {
            (Some(only), None) => Some(merge::label_of(only)),
            _ => None,
        }
    }

    /// The rules in force merged again from each file's last good copy and the memory sources
    /// in force, with every block rule `wanted` holds and where it stood in the merge: what
    /// `explain` lists, answered by the running proxy even while a file on disk is broken.
    pub fn listing(&self, wanted: &dyn Fn(&DomainRule) -> bool) -> Result<Loaded, LoadError> {
        let state = self.lock();
        let files = self
            .sources
            .iter()
            .zip(&state.files)
            .map(|(config, file)| merge::parse_config(config, &file.good.bytes(&file.label)?))
            .collect::<Result<Vec<_>, _>>()?;
        let memory: Vec<MemorySource> = state.memory.values().cloned().collect();
        drop(state);
        merge::merge(&self.sources, files, &memory, &self.policy, wanted)
    }

    /// The labels of sources whose new version the shrink guard holds back now.
    pub fn held_back(&self) -> Vec<String> {
        let state = self.lock();
        let files = state.files.iter().filter(|f| f.held).map(|f| &f.label);
        files.chain(state.held.keys()).cloned().collect()
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
        self.reload_locked(&mut state, Trigger::RemoveMemory(label))
            .map(Some)
    }

    /// The memory sources in force, in load order.
    pub fn memory_sources(&self) -> Vec<MemorySource> {
        self.lock().memory.values().cloned().collect()
    }

    fn reload_locked(
        &self,
        state: &mut State,
        trigger: Trigger<'_>,
    ) -> Result<Vec<SourceSummary>, ReloadError> {
        let memory: Vec<MemorySource> = state.memory.values().cloned().collect();
        if trigger.is_file_reload() && self.nothing_changed(state, &memory) {
            return Ok(self.keep_snapshot(state, trigger, &memory));
        }
        // Each file on its own. `fresh[i]` holds the copy of the bytes read when they parsed
        // (compressed before the parse: no file's text is held beside its rules for the rest
        // of the reload); `None` marks a refused file, parsed from its last good copy instead.
        let mut refused = Vec::new();
        let mut fresh: Vec<Option<GoodCopy>> = Vec::with_capacity(self.sources.len());
        let mut parsed = Vec::with_capacity(self.sources.len());
        for (config, file) in self.sources.iter().zip(&state.files) {
            let read = merge::read_config_keeping(config, |b| GoodCopy::new(b, Some(&file.good)));
            match read {
                Ok((rules, _))
                    if !state.accepted.contains(&file.label)
                        && guard::too_much(file.good_len, rules.len(), file.max_shrink) =>
                {
                    refused.push(guard::refusal(
                        &file.label,
                        file.good_len,
                        rules.len(),
                        file.max_shrink,
                    ));
                    parsed.push(self.last_good(config, file, &refused)?);
                    fresh.push(None);
                }
                Ok((rules, good)) => {
                    parsed.push(rules);
                    fresh.push(Some(good));
                }
                Err(e) => {
                    refused.push(e);
                    parsed.push(self.last_good(config, file, &refused)?);
                    fresh.push(None);
                }
            }
        }
        loop {
            match merge::check_conflicts(&self.sources, &parsed, &memory) {
                Ok(()) => break,
                // Sources conflict (two `[friendly_federators]` tables). The last good copies
                // merged, so an edit is to blame: refuse the edited file the error names, or
                // else every edited file.
                Err(e) => {
                    let edited: Vec<usize> = (0..fresh.len())
                        .filter(|&i| {
                            fresh[i].as_ref().is_some_and(|copy| {
                                state.files.get(i).is_some_and(|f| !f.good.same_as(copy))
                            })
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
        // Nothing left that can refuse these copies: they replace the previous good copies
        // now, so a changed file's old and new copies are not both held while the snapshot is
        // built.
        for ((file, copy), parsed) in state.files.iter_mut().zip(fresh).zip(&parsed) {
            file.stale = copy.is_none();
            file.held = refused
                .iter()
                .any(|e| e.file == file.label && guard::is_refusal(e));
            if let Some(copy) = copy {
                file.good = copy;
                file.good_len = parsed.len();
            }
        }
        // The files' text, the parse's index and the replaced good copies are freed: return
        // their pages before the snapshot is built, or the reload's peak holds both.
        crate::memory::release_freed_pages_or_log();
        // `check_conflicts` is merge's only failure, so this error does not happen; were it to,
        // the whole reload fails and the previous snapshot stays.
        let (snapshot, summaries, _) =
            merge::merge(&self.sources, parsed, &memory, &self.policy, &|_| false).map_err(
                |e| {
                    refused.push(e);
                    self.failed(std::mem::take(&mut refused), None)
                },
            )?;
        let by_source = self.current.load().diff_by_source(&snapshot);
        let named = self.current.load().changed_domains_by_source(&snapshot);
        let domains = match self.observer.get() {
            Some(_) => self
                .current
                .load()
                .changed_domains(&snapshot, NAMED_CHANGES),
            None => Vec::new(),
        };
        let total = snapshot.len();
        let replaced = self.current.swap(Arc::new(snapshot));
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        if let Some(observer) = self.observer.get() {
            observer.reloaded(&Reloaded {
                trigger,
                generation,
                changes: &by_source,
                domains: &domains,
                refused: &refused,
            });
        }
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
            let domains = named.get(source).map(ToString::to_string);
            let domains = domains.unwrap_or_default();
            tracing::info!(generation, source = %source, changes = %changes, domains, "rule source changed");
        }
        // Moderators grep for these: a lifted suspension lets a domain's deliveries through.
        for (source, named) in named.iter().filter(|(_, n)| n.lifted() > 0) {
            tracing::warn!(
                generation,
                source = %source,
                suspensions = named.lifted(),
                domains = named.lifted_domains(),
                "suspend rules removed"
            );
        }
        crate::memory::retire_in_background(replaced);
        let changes = Changes::sum(by_source.values());
        if !refused.is_empty() {
            // The refusal first, so the log never reads as a success followed by an error.
            let e = self.failed(refused, Some(summaries));
            tracing::warn!(generation, rules = total, changes = %changes, "rules partly reloaded: the other sources' changes are in force");
            return Err(e);
        }
        tracing::info!(generation, rules = total, changes = %changes, "rules reloaded");
        self.succeeded();
        Ok(summaries)
    }

    /// A reload refused nothing: counted, and the failing-since gauge cleared.
    fn succeeded(&self) {
        self.metrics
            .rules_reloads_total
            .with_label_values(&["success"])
            .inc();
        self.metrics
            .rules_reload_failing_since_timestamp_seconds
            .set(0);
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
        let bytes = file.good.bytes(&file.label);
        bytes
            .and_then(|b| merge::parse_config(config, &b))
            .map_err(|e| {
                let mut all = refused.to_vec();
                all.push(e);
                self.failed(all, None)
            })
    }

    /// Counts and logs a reload that refused files; `applied` as in `ReloadError`.
    fn failed(&self, refused: Vec<LoadError>, applied: Option<Vec<SourceSummary>>) -> ReloadError {
        let (shrunk, broken) = refused
            .iter()
            .partition::<Vec<_>, _>(|e| guard::is_refusal(e));
        for (errors, result) in [(&broken, "failure"), (&shrunk, "refused_shrink")] {
            if !errors.is_empty() {
                self.metrics
                    .rules_reloads_total
                    .with_label_values(&[result])
                    .inc();
            }
        }
        let failing_since = &self.metrics.rules_reload_failing_since_timestamp_seconds;
        if failing_since.get() == 0 {
            failing_since.set(unix_now());
        }
        let kept = if applied.is_some() {
            "rule file refused; its last good copy stays in force"
        } else {
            "rules reload failed; the previous rules stay in force"
        };
        for e in broken {
            tracing::error!(file = %e.file, line = e.line, error = %e.kind, "{kept}");
        }
        for e in shrunk {
            tracing::warn!(source = %e.file, refusal = %e.kind, "rule source shrank too much: new version refused, its last good copy stays in force");
        }
        ReloadError { refused, applied }
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
        state.summaries = summaries.to_vec();
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
    i64::try_from(crate::clock::unix_now()).unwrap_or(i64::MAX)
}

mod unchanged;

#[cfg(test)]
mod tests;

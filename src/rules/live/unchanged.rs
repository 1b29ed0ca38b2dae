//! A reload that finds every file as it was last read and every memory source as it is in
//! force keeps the snapshot in force. Rebuilding it would hold a second copy of every rule
//! for nothing, and one edit often brings two reloads: the file watcher's and the operator's
//! `POST /admin/reload` or SIGHUP.

use super::{Rules, State};
use crate::rules::merge::MemorySource;
use crate::rules::observe::{Reloaded, Trigger};
use crate::rules::summary::SourceSummary;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Rules {
    /// True when a reload would build the snapshot in force again: no file refused, held or
    /// accepted, every file's bytes its last good copy, and the memory sources the copies in
    /// force. Files are read one at a time, so at most one extra copy is held.
    pub(super) fn nothing_changed(&self, state: &State, memory: &[MemorySource]) -> bool {
        let settled = state.accepted.is_empty()
            && state.held.is_empty()
            && !state.summaries.is_empty()
            && state.files.iter().all(|f| !f.stale && !f.held);
        let same_memory = memory.len() == state.in_force.len()
            && memory.iter().all(|m| {
                state
                    .in_force
                    .get(&m.label)
                    .is_some_and(|p| Arc::ptr_eq(p, &m.parsed))
            });
        settled
            && same_memory
            && self.sources.iter().zip(&state.files).all(|(config, file)| {
                // An edit that changes the size is known without reading the file, which the
                // reload is about to read anyway.
                let same_size =
                    std::fs::metadata(&config.path).is_ok_and(|m| m.len() == file.good.len());
                same_size
                    && crate::rule_files::read(&config.path).is_ok_and(|bytes| file.good.is(&bytes))
            })
    }

    /// Completes a reload that changed nothing as any other: a new generation, a line in the
    /// rule-change log, the gauges and `rules_reloads_total` — without a rebuild.
    pub(super) fn keep_snapshot(
        &self,
        state: &mut State,
        trigger: Trigger<'_>,
        memory: &[MemorySource],
    ) -> Vec<SourceSummary> {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        if let Some(observer) = self.observer.get() {
            observer.reloaded(&Reloaded {
                trigger,
                generation,
                changes: &BTreeMap::new(),
                domains: &[],
                refused: &[],
            });
        }
        let mut summaries = state.summaries.clone();
        for s in &mut summaries {
            s.changes = Default::default();
        }
        self.publish(state, &summaries, memory);
        let total = self.current.load().len();
        tracing::info!(
            generation,
            rules = total,
            "rules reloaded: every source as in force, snapshot kept"
        );
        self.succeeded();
        summaries
    }
}

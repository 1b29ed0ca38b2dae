//! Helpers shared by the rules tests: configured sources, memory sources and metrics.

use super::{MemorySource, Rules};
use crate::config::{BlocklistConfig, BlocklistFormat, PolicyConfig};
use crate::metrics::Metrics;
use crate::policy::sources;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(super) fn source(path: &Path) -> BlocklistConfig {
    BlocklistConfig::file(path.to_path_buf())
}

pub(super) fn metrics() -> Arc<Metrics> {
    Arc::new(Metrics::new().expect("metrics"))
}

pub(super) fn reloads(m: &Metrics, result: &str) -> u64 {
    m.rules_reloads_total.with_label_values(&[result]).get()
}

pub(super) fn suspended(rules: &Rules, host: &str) -> bool {
    rules.current().load().is_suspended(host).is_some()
}

pub(super) fn memory(label: &str, text: &str) -> MemorySource {
    let label_arc: Arc<str> = Arc::from(label);
    let parsed =
        sources::parse_bytes(text.as_bytes(), label_arc, BlocklistFormat::Auto).expect("parses");
    MemorySource::new(label, Arc::new(parsed))
}

pub(super) fn subscribed(label: &str, text: &str) -> MemorySource {
    MemorySource {
        subscribed: true,
        ..memory(label, text)
    }
}

pub(super) fn threshold(n: usize) -> PolicyConfig {
    PolicyConfig {
        subscription_threshold: n,
        ..PolicyConfig::default()
    }
}

/// `Rules` over the files at `paths` as block lists, first loaded, and the metrics it keeps.
pub(super) fn rules_over(paths: &[&Path]) -> (Arc<Rules>, Arc<Metrics>) {
    let m = metrics();
    let sources = paths.iter().map(|p| source(p)).collect();
    let rules = Rules::new(sources, PolicyConfig::default(), m.clone()).expect("first load");
    (rules, m)
}

/// A temporary directory holding one file per `(name, contents)`, and their paths in order.
/// The directory goes away when the returned guard is dropped.
pub(super) fn files<const N: usize>(
    contents: [(&str, &str); N],
) -> (tempfile::TempDir, [PathBuf; N]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = contents.map(|(name, text)| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    });
    (dir, paths)
}

/// `inboxguard_rules_loaded{source, severity}` for the file at `path`.
pub(super) fn loaded(m: &Metrics, path: &Path, kind: &str) -> i64 {
    let label = path.display().to_string();
    m.rules_loaded
        .with_label_values(&[label.as_str(), kind])
        .get()
}

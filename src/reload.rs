//! Rule loading and hot reload: file watch (parent directories), SIGHUP, admin call.
//!
//! OWNER: policy helper.

use crate::config::BlocklistConfig;
use crate::metrics::Metrics;
use crate::policy::Snapshot;
use arc_swap::ArcSwap;
use std::sync::Arc;

/// A blocklist line that could not be read. `Display`: `file:line: message`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct LoadError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Per-source counts for `check` and logs.
#[derive(Debug, Clone)]
pub struct SourceSummary {
    pub source: String,
    pub suspend: usize,
    pub silence: usize,
    pub noop: usize,
}

/// Builds a snapshot from every configured source (the one code path for first load and
/// every reload).
pub fn load(_sources: &[BlocklistConfig]) -> Result<(Snapshot, Vec<SourceSummary>), LoadError> {
    todo!()
}

/// Owns the live snapshot and knows how to rebuild it.
pub struct Rules {}

impl Rules {
    /// First load; an error here is fatal at startup.
    pub fn new(
        _sources: Vec<BlocklistConfig>,
        _metrics: Arc<Metrics>,
    ) -> Result<Arc<Rules>, LoadError> {
        todo!()
    }
    /// The live snapshot (hold it for one request).
    pub fn current(&self) -> &ArcSwap<Snapshot> {
        todo!()
    }
    /// Rebuild from disk; on error the old snapshot stays, the failure is logged and counted.
    pub fn reload(&self) -> Result<Vec<SourceSummary>, LoadError> {
        todo!()
    }
    /// Watches the sources' parent directories and reloads on change (debounced) and on
    /// SIGHUP, until `shutdown` resolves.
    pub async fn watch(
        self: Arc<Self>,
        _shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        todo!()
    }
}

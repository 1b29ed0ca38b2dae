//! What starts a reload on its own: a change in the sources' directories (debounced) and
//! SIGHUP, for as long as `Rules::watch` runs.

use super::live::Rules;
use super::observe::Trigger;
use crate::config::BlocklistConfig;
use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Quiet time after the last file event before reloading: an editor's save or a ConfigMap
/// update arrives as a burst of create/rename/delete events, and one reload should follow.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

impl Rules {
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
        refresh_watches(watcher.as_mut(), &mut watched, &names, self.sources());
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
                    Trigger::FileWatch
                }
                Some(()) = next_hangup(&mut hangup) => Trigger::Sighup,
            };
            tracing::info!(%trigger, "reloading rules");
            let rules = self.clone();
            // `reload` logs and counts its own outcome.
            if let Err(e) = tokio::task::spawn_blocking(move || rules.reload_by(trigger)).await {
                tracing::error!(error = %e, "rules reload task failed");
            }
            // A symlinked source may now point into another directory.
            refresh_watches(watcher.as_mut(), &mut watched, &names, self.sources());
        }
    }
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
mod tests;

//! The rules in force: the merge of every source into one snapshot, the live handle that
//! swaps a new snapshot in, and the triggers that ask it to (file watch, SIGHUP; the admin
//! call and memory-source owners call `Rules` directly).
//!
//! | file      | owns |
//! |-----------|------|
//! | `merge`   | `load` / `load_listing`: configured files and memory sources → one snapshot, by one set of merge rules (`check` and `explain` use it as the proxy does) |
//! | `summary` | `SourceSummary`: what each source has in force, for `check`, logs and the admin reload; `ReloadError`: the sources a reload refused |
//! | `guard`   | the shrink guard: a new version removing too much of a source waits for an operator |
//! | `live`    | `Rules`: the live snapshot, each file's last good copy, memory sources, reload metrics |
//! | `observe` | `ReloadObserver`: who is told of each reload (the rule-change log), and what |
//! | `watch`   | `Rules::watch`: the sources' directories watched, debounced, and SIGHUP |
//!
//! A reload reads and parses every source off the hot path and swaps the new snapshot in whole;
//! requests keep the snapshot they started with. Each local file has its own last-good state:
//! a file that fails to read or parse is refused (logged with file and line, counted as a
//! failed reload, `inboxguard_rules_source_stale{source}` = 1) and its last good copy stays in
//! force, while the other files' and the memory sources' changes apply. The first load has no
//! last good copy, so there a broken file is fatal.

mod good;
mod guard;
mod live;
mod merge;
mod observe;
mod summary;
#[cfg(test)]
mod testing;
mod watch;

pub use crate::policy::sources::{LoadError, LoadErrorKind};
pub use live::Rules;
pub use merge::{load, load_listing, Listed, Loaded, MemorySource, Standing};
pub use observe::{ReloadObserver, Reloaded, Trigger, NAMED_CHANGES};
pub use summary::{ReloadError, SourceSummary};
pub use watch::DEBOUNCE;

//! Who is told of a reload, and what they are told: the trigger, the generation, and what
//! changed per source. The decision journal's rule-change log is the observer; `rules`
//! knows nothing of it.

use crate::policy::sources::LoadError;
use crate::policy::{ChangedDomain, Changes};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger<'a> {
    /// A change in a source's directory.
    FileWatch,
    Sighup,
    /// `POST /admin/reload` (and any caller of `Rules::reload`).
    Admin,
    /// A memory source (a subscription, the Mastodon pull, the escalated friendly
    /// federators) put in force, by its label.
    SetMemory(&'a str),
    /// A memory source taken out of force, by its label.
    RemoveMemory(&'a str),
    /// A memory source put in force with rules lifted by an operator (an escalation lift),
    /// by its label.
    Lift(&'a str),
    /// An operator accepted the version of a source the shrink guard held back.
    Accept(&'a str),
}

impl Trigger<'_> {
    /// A reload that rereads the configured files and changes no memory source.
    pub fn is_file_reload(&self) -> bool {
        matches!(self, Trigger::FileWatch | Trigger::Sighup | Trigger::Admin)
    }
}

impl fmt::Display for Trigger<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::FileWatch => f.write_str("file watch"),
            Trigger::Sighup => f.write_str("SIGHUP"),
            Trigger::Admin => f.write_str("admin"),
            Trigger::SetMemory(label) => write!(f, "set {label}"),
            Trigger::RemoveMemory(label) => write!(f, "remove {label}"),
            Trigger::Lift(label) => write!(f, "lift {label}"),
            Trigger::Accept(label) => write!(f, "accept {label}"),
        }
    }
}

/// Domain rules a reload names to its observer, at most: a list replaced wholesale is
/// summed up by the counts.
pub const NAMED_CHANGES: usize = 100;

/// A reload that put a snapshot in force: a new one, or the one in force when nothing changed.
#[derive(Debug)]
pub struct Reloaded<'a> {
    pub trigger: Trigger<'a>,
    pub generation: u64,
    /// Per source that changed, what changed (sources without a change are left out).
    pub changes: &'a BTreeMap<Arc<str>, Changes>,
    /// The domain rules behind `changes`, by name, at most [`NAMED_CHANGES`].
    pub domains: &'a [ChangedDomain],
    /// Files whose current contents were refused: their last good copy stayed in force.
    pub refused: &'a [LoadError],
}

/// Told of every reload that swapped a snapshot in, on the reloading thread, while the
/// reload lock is held: so reloads reach it one at a time and in order. It must not call
/// back into `Rules`.
pub trait ReloadObserver: Send + Sync {
    fn reloaded(&self, reload: &Reloaded<'_>);
}

//! Moderation policy: an immutable snapshot of domain rules, suffix matching, and the pure
//! decision function. No I/O: `sources` turns the bytes of rule files into rules, and
//! reading the files is the caller's job.
//!
//! What the proxy can enforce, compared with Mastodon (see `decide`):
//! * **suspend** on the keyId host or the actor host → reject (403), before any key fetch when
//!   the pipeline uses `is_suspended` early;
//! * **reject_reports** → a `Flag` is acknowledged (202) and not forwarded;
//! * **silence** and **noop** are forwarded: Mastodon applies silence itself when it processes
//!   the activity, and a proxy cannot rewrite a signed body.
//!
//! | file         | owns |
//! |--------------|------|
//! | `vocab`      | severities, domain rules and entries, rule kinds, the policy mode, digests |
//! | `host`       | host normalisation and the suffixes a host is matched on |
//! | `actors`     | actor rules and their matching |
//! | `index`      | the by-name and by-digest tables inside a snapshot |
//! | `snapshot`   | the rule set in force, its builder and its lookups |
//! | `decide`     | the pure decision for one request |
//! | `diff`       | what changed between two snapshots |
//! | `escalation` | the friendly-federator settings and the escalation vocabulary |
//! | `sources`    | rule file contents (CSV, plain, JSON, TOML) → rules |

pub mod actors;
pub mod content;
mod decide;
mod diff;
pub mod escalation;
pub mod host;
mod index;
pub mod rate;
mod snapshot;
pub mod sources;
mod vocab;

pub use actors::{ActorPattern, ActorRule};
pub use decide::{ActorParty, Decision, Facts, Party};
pub use diff::{ChangedDomain, ChangedDomains, Changes};
pub use escalation::FriendlyFederatorSettings;
pub use snapshot::{Sizes, Snapshot, SnapshotBuilder};
pub(crate) use vocab::parse_digest_hex;
pub use vocab::{
    digest_hex, domain_digest, DomainDigest, DomainEntry, DomainRule, PolicyMode, RuleKind,
    Severity,
};

#[cfg(test)]
mod tests;

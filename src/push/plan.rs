//! The diff, with no I/O: the pushed rules in force and Mastodon's domain blocks in, the
//! writes that bring the blocks in step out. Only blocks whose ids the state file records are
//! ever updated or lifted; a block someone else made is left alone, whatever it says.

use super::state::Managed;
use crate::policy::{host, DomainRule, Severity, Snapshot};
use crate::rules::{Listed, Standing};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// Longest comment sent: Mastodon stores comments as text, but an admin page listing
/// thousands of blocks should not carry a list maintainer's essay on each.
const MAX_COMMENT: usize = 1000;

/// A domain block as `GET /api/v1/admin/domain_blocks` lists it (the fields the diff reads).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Block {
    pub id: String,
    pub domain: String,
    pub severity: String,
    #[serde(default)]
    pub reject_media: bool,
    #[serde(default)]
    pub reject_reports: bool,
    #[serde(default)]
    pub private_comment: Option<String>,
    #[serde(default)]
    pub public_comment: Option<String>,
}

/// A block a pushed rule asks for, as it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub domain: String,
    pub severity: Severity,
    pub reject_media: bool,
    pub reject_reports: bool,
    pub public_comment: String,
    pub private_comment: String,
    /// The inboxguard source of the rule (`friendly-federators`, a subscription's URL).
    pub source: String,
}

/// The pushed rules in force, one per domain: every block rule of a pushed source that is in
/// force (competing in the merge, not held back by `subscription_threshold` or a higher
/// priority, not dry run, not excluded). Obfuscated entries (no domain to send) and `noop`
/// rules without a flag (a block that does nothing) are left out. Where two pushed sources
/// list a domain, the harsher rule is pushed; on a tie, the first listed.
pub fn wanted(listed: &[Listed], snapshot: &Snapshot) -> BTreeMap<String, Wanted> {
    let mut out: BTreeMap<String, (&DomainRule, Wanted)> = BTreeMap::new();
    for l in listed {
        let rule = &l.rule;
        let pointless =
            rule.severity == Severity::Noop && !rule.reject_media && !rule.reject_reports;
        if l.standing != Standing::Competes
            || rule.dry_run
            || rule.digest.is_some()
            || pointless
            || snapshot.is_excluded(rule)
        {
            continue;
        }
        if let Some((held, _)) = out.get(&*rule.domain) {
            if !rule.is_harsher_than(held) {
                continue;
            }
        }
        out.insert(rule.domain.to_string(), (rule, block_for(rule)));
    }
    out.into_iter().map(|(d, (_, w))| (d, w)).collect()
}

fn block_for(rule: &DomainRule) -> Wanted {
    let source = rule.source.to_string();
    // The public comment is shown on the instance's about page: the source by its host, not
    // a list's whole URL.
    let shown = crate::net::host_of(&source).unwrap_or_else(|| source.clone());
    let public = match rule.public_comment.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => format!("{c} (inboxguard: {shown})"),
        _ => format!("inboxguard: {shown}"),
    };
    let private = format!(
        "Pushed by inboxguard from {source}. inboxguard updates and lifts this block with that rule; lift the rule in inboxguard to lift it."
    );
    Wanted {
        domain: rule.domain.to_string(),
        severity: rule.severity,
        reject_media: rule.reject_media,
        reject_reports: rule.reject_reports,
        public_comment: crate::clock::truncate(&public, MAX_COMMENT).to_string(),
        private_comment: crate::clock::truncate(&private, MAX_COMMENT).to_string(),
        source,
    }
}

/// Why a wanted block is not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Mastodon has a block for exactly this domain that inboxguard did not create.
    Manual { id: String },
    /// Mastodon has (or this cycle creates) a block on a parent domain: its API refuses a
    /// block under one (422, `existing_domain_block`).
    Covered { by: String },
}

/// One write (or non-write) of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Create(Wanted),
    Update {
        id: String,
        from: Block,
        to: Wanted,
    },
    Lift {
        id: String,
        block: Block,
        source: String,
    },
    Skip {
        domain: String,
        reason: SkipReason,
    },
}

impl Change {
    /// The `op` label of the write, `None` for a skip.
    pub fn op(&self) -> Option<&'static str> {
        match self {
            Change::Create(_) => Some("create"),
            Change::Update { .. } => Some("update"),
            Change::Lift { .. } => Some("delete"),
            Change::Skip { .. } => None,
        }
    }

    pub fn domain(&self) -> &str {
        match self {
            Change::Create(w) | Change::Update { to: w, .. } => &w.domain,
            Change::Lift { block, .. } => &block.domain,
            Change::Skip { domain, .. } => domain,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Create(w) => write!(f, "create  {} {} ({})", w.domain, flags_of(w), w.source),
            Change::Update { id, from, to } => write!(
                f,
                "update  {} id {id}: {} -> {} ({})",
                to.domain,
                block_flags(from),
                flags_of(to),
                to.source
            ),
            Change::Lift { id, block, source } => write!(
                f,
                "lift    {} id {id}: {} ({source}: no longer in force)",
                block.domain,
                block_flags(block)
            ),
            Change::Skip {
                domain,
                reason: SkipReason::Manual { id },
            } => write!(
                f,
                "skip    {domain}: Mastodon's block id {id} was not created by inboxguard; left alone"
            ),
            Change::Skip {
                domain,
                reason: SkipReason::Covered { by },
            } => write!(
                f,
                "skip    {domain}: covered by the block on {by} (Mastodon refuses a block under it)"
            ),
        }
    }
}

fn flags_of(w: &Wanted) -> String {
    flags(w.severity.as_str(), w.reject_media, w.reject_reports)
}

fn block_flags(b: &Block) -> String {
    flags(&b.severity, b.reject_media, b.reject_reports)
}

fn flags(severity: &str, reject_media: bool, reject_reports: bool) -> String {
    let mut s = severity.to_string();
    if reject_media {
        s.push_str("+reject_media");
    }
    if reject_reports {
        s.push_str("+reject_reports");
    }
    s
}

/// What a cycle does, in the order it does it: lifts first (so a lifted parent no longer
/// covers a child created after it), then updates, then creates (parents first).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Recorded blocks no longer in Mastodon (deleted there by hand): dropped from the state
    /// file; a rule still in force creates its block again.
    pub vanished: Vec<(String, String)>,
    /// Recorded blocks whose source has no copy in force (a list not fetched yet): left as
    /// they are until it has one.
    pub kept: Vec<String>,
}

impl Plan {
    pub fn count(&self, op: &str) -> usize {
        self.changes.iter().filter(|c| c.op() == Some(op)).count()
    }

    /// Skips of manual blocks and of covered domains.
    pub fn skipped(&self) -> (usize, usize) {
        let mut out = (0, 0);
        for c in &self.changes {
            match c {
                Change::Skip {
                    reason: SkipReason::Manual { .. },
                    ..
                } => out.0 += 1,
                Change::Skip { .. } => out.1 += 1,
                _ => {}
            }
        }
        out
    }

    pub fn summary(&self) -> String {
        let (manual, covered) = self.skipped();
        format!(
            "{} to create, {} to update, {} to lift, {manual} manual blocks left alone, {covered} covered by a parent block",
            self.count("create"),
            self.count("update"),
            self.count("delete")
        )
    }
}

/// The plan that brings `existing` in step with `wanted`, touching only the `managed` blocks.
/// `has_copy(source)`: whether the source a managed block came from has a copy in force.
pub fn plan(
    wanted: &BTreeMap<String, Wanted>,
    existing: &[Block],
    managed: &BTreeMap<String, Managed>,
    has_copy: &dyn Fn(&str) -> bool,
) -> Plan {
    let by_id: HashMap<&str, &Block> = existing.iter().map(|b| (b.id.as_str(), b)).collect();
    let by_domain: HashMap<String, &Block> = existing
        .iter()
        .map(|b| (b.domain.to_ascii_lowercase(), b))
        .collect();
    let mut out = Plan::default();
    let mut lifts = Vec::new();
    let mut updates = Vec::new();
    let mut lifted: HashSet<&str> = HashSet::new();
    let mut ours: HashSet<&str> = HashSet::new();
    for (domain, m) in managed {
        let block = match by_id.get(m.id.as_str()) {
            Some(b) if b.domain.eq_ignore_ascii_case(domain) => *b,
            _ => {
                out.vanished.push((domain.clone(), m.id.clone()));
                continue;
            }
        };
        ours.insert(domain);
        match wanted.get(domain) {
            Some(w) if differs(block, w) => updates.push(Change::Update {
                id: m.id.clone(),
                from: block.clone(),
                to: w.clone(),
            }),
            Some(_) => {}
            None if !has_copy(&m.source) => out.kept.push(domain.clone()),
            None => {
                lifted.insert(domain);
                // Named as the state file names it, so the lift forgets that entry.
                let mut block = block.clone();
                block.domain = domain.clone();
                lifts.push(Change::Lift {
                    id: m.id.clone(),
                    block,
                    source: m.source.clone(),
                });
            }
        }
    }
    // Parents before children, so a child of a domain created here is seen as covered.
    let mut order: Vec<&Wanted> = wanted.values().collect();
    order.sort_by_key(|w| (w.domain.matches('.').count(), w.domain.as_str()));
    let mut created: HashSet<&str> = HashSet::new();
    let mut creates = Vec::new();
    for w in order {
        if ours.contains(w.domain.as_str()) {
            continue;
        }
        if let Some(b) = by_domain.get(&w.domain) {
            out.changes.push(Change::Skip {
                domain: w.domain.clone(),
                reason: SkipReason::Manual { id: b.id.clone() },
            });
            continue;
        }
        let covering = host::suffixes(&w.domain).skip(1).find(|parent| {
            created.contains(parent) || by_domain.contains_key(*parent) && !lifted.contains(parent)
        });
        if let Some(parent) = covering {
            out.changes.push(Change::Skip {
                domain: w.domain.clone(),
                reason: SkipReason::Covered {
                    by: parent.to_string(),
                },
            });
            continue;
        }
        created.insert(&w.domain);
        creates.push(Change::Create(w.clone()));
    }
    let skips = std::mem::take(&mut out.changes);
    out.changes = lifts
        .into_iter()
        .chain(updates)
        .chain(creates)
        .chain(skips)
        .collect();
    out
}

/// Whether Mastodon's block says something else than the rule; comments compare with their
/// whitespace collapsed, so a stored comment Mastodon re-spaced does not mean a write each
/// cycle.
fn differs(block: &Block, w: &Wanted) -> bool {
    let norm = |s: Option<&str>| {
        s.unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    block.severity != w.severity.as_str()
        || block.reject_media != w.reject_media
        || block.reject_reports != w.reject_reports
        || norm(block.public_comment.as_deref()) != norm(Some(&w.public_comment))
        || norm(block.private_comment.as_deref()) != norm(Some(&w.private_comment))
}

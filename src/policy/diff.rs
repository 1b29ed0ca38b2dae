//! What a reload changes: rule additions, removals and changes between two snapshots, per
//! kind and per source, for the reload log and metrics.

use super::snapshot::Snapshot;
use super::vocab::{DomainRule, RuleKind, Severity};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Rule changes between two snapshots, per kind (see `Snapshot::diff`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    added: [usize; 6],
    removed: [usize; 6],
    changed: [usize; 6],
}

impl Changes {
    /// Whether `new` is an addition or a change against what was listed under its key.
    fn differs(was: Option<&DomainRule>, new: &DomainRule) -> bool {
        !was.is_some_and(|was| was.same_effect(new))
    }

    /// Counts `new` (which `differs`) against what was listed under the same key before.
    fn count_new(&mut self, was: Option<&DomainRule>, new: &DomainRule) {
        let i = RuleKind::from(new.severity).index();
        match was {
            None => self.added[i] += 1,
            Some(_) => self.changed[i] += 1,
        }
    }

    /// All of `changes` added up (e.g. every source's, for the whole reload).
    pub fn sum<'c>(changes: impl IntoIterator<Item = &'c Changes>) -> Changes {
        let mut total = Changes::default();
        for c in changes {
            for i in 0..total.added.len() {
                total.added[i] += c.added[i];
                total.removed[i] += c.removed[i];
                total.changed[i] += c.changed[i];
            }
        }
        total
    }

    pub fn added(&self, kind: impl Into<RuleKind>) -> usize {
        self.added[kind.into().index()]
    }
    pub fn removed(&self, kind: impl Into<RuleKind>) -> usize {
        self.removed[kind.into().index()]
    }
    pub fn changed(&self, kind: impl Into<RuleKind>) -> usize {
        self.changed[kind.into().index()]
    }
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// `suspend +2 -0 ~1, silence +0 -1 ~0, noop +0 -0 ~0, allow +0 -0 ~0, exclude +0 -0 ~0,
/// actor_suspend +1 -0 ~0` (added, removed, changed).
impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, kind) in RuleKind::ALL.into_iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "{kind} +{} -{} ~{}",
                self.added(kind),
                self.removed(kind),
                self.changed(kind)
            )?;
        }
        Ok(())
    }
}

impl Snapshot {
    /// What changed from `self` (the rules in force) to `next`, counted per kind: an entry
    /// only in `next` is added (under its new kind), one only in `self` is removed (under its
    /// old kind), and a domain rule in both with a different severity, flag or public comment
    /// is changed (under its new severity); an actor rule whose comment changed is changed.
    /// Moving an entry to another line or file is no change; moving it between an enforcing
    /// and a dry-run source is a removal and an addition.
    pub fn diff(&self, next: &Snapshot) -> Changes {
        Changes::sum(self.diff_by_source(next).values())
    }

    /// `diff` per source: an addition or a change counts for the source of the entry in
    /// `next`, a removal for the source of the entry in `self`. Sources with no change are
    /// left out.
    pub fn diff_by_source(&self, next: &Snapshot) -> BTreeMap<Arc<str>, Changes> {
        let mut by: BTreeMap<Arc<str>, Changes> = BTreeMap::new();
        fn at<'m>(by: &'m mut BTreeMap<Arc<str>, Changes>, source: &Arc<str>) -> &'m mut Changes {
            by.entry(source.clone()).or_default()
        }
        for (old, new) in [
            (&self.enforcing, &next.enforcing),
            (&self.dry_run, &next.dry_run),
        ] {
            for rule in new.by_name.iter() {
                let was = old.get(&rule.domain);
                if Changes::differs(was, rule) {
                    at(&mut by, &rule.source).count_new(was, rule);
                }
            }
            for rule in old.by_name.iter() {
                if new.get(&rule.domain).is_none() {
                    at(&mut by, &rule.source).removed[RuleKind::from(rule.severity).index()] += 1;
                }
            }
            for (digest, rule) in &new.by_digest {
                let was = old.by_digest.get(digest);
                if Changes::differs(was, rule) {
                    at(&mut by, &rule.source).count_new(was, rule);
                }
            }
            for (digest, rule) in &old.by_digest {
                if !new.by_digest.contains_key(digest) {
                    at(&mut by, &rule.source).removed[RuleKind::from(rule.severity).index()] += 1;
                }
            }
        }
        for (kind, old, new) in [
            (RuleKind::Allow, &self.allows, &next.allows),
            (RuleKind::Exclude, &self.exceptions, &next.exceptions),
        ] {
            for e in new.iter().filter(|e| old.get(&e.domain).is_none()) {
                at(&mut by, &e.source).added[kind.index()] += 1;
            }
            for e in old.iter().filter(|e| new.get(&e.domain).is_none()) {
                at(&mut by, &e.source).removed[kind.index()] += 1;
            }
        }
        let i = RuleKind::ActorSuspend.index();
        for (old, new) in [
            (&self.actors, &next.actors),
            (&self.dry_run_actors, &next.dry_run_actors),
        ] {
            for rule in new.iter() {
                match old.get(&rule.pattern) {
                    None => at(&mut by, &rule.source).added[i] += 1,
                    Some(was) if was.comment != rule.comment => {
                        at(&mut by, &rule.source).changed[i] += 1
                    }
                    Some(_) => {}
                }
            }
            for rule in old.iter().filter(|r| new.get(&r.pattern).is_none()) {
                at(&mut by, &rule.source).removed[i] += 1;
            }
        }
        by
    }

    /// The domains behind `diff_by_source`, named per source and kind (at most `NAMED`
    /// each), and the enforced suspensions each source lifted: removed, or changed to a milder
    /// severity. Digest rules and actor rules are counted by `diff_by_source` only.
    pub fn changed_domains_by_source(&self, next: &Snapshot) -> BTreeMap<Arc<str>, ChangedDomains> {
        let mut by: BTreeMap<Arc<str>, ChangedDomains> = BTreeMap::new();
        for (enforcing, old, new) in [
            (true, &self.enforcing, &next.enforcing),
            (false, &self.dry_run, &next.dry_run),
        ] {
            for rule in new.by_name.iter() {
                let was = old.get(&rule.domain);
                if !Changes::differs(was, rule) {
                    continue;
                }
                let entry = by.entry(rule.source.clone()).or_default();
                let sign = if was.is_some() { '~' } else { '+' };
                entry.note(RuleKind::from(rule.severity), sign, &rule.domain);
                let lifted = was.filter(|w| w.severity == Severity::Suspend);
                if enforcing && rule.severity != Severity::Suspend {
                    if let Some(was) = lifted {
                        by.entry(was.source.clone()).or_default().lift(&rule.domain);
                    }
                }
            }
            for rule in old.by_name.iter() {
                if new.get(&rule.domain).is_none() {
                    let entry = by.entry(rule.source.clone()).or_default();
                    entry.note(RuleKind::from(rule.severity), '-', &rule.domain);
                    if enforcing && rule.severity == Severity::Suspend {
                        entry.lift(&rule.domain);
                    }
                }
            }
        }
        for (kind, old, new) in [
            (RuleKind::Allow, &self.allows, &next.allows),
            (RuleKind::Exclude, &self.exceptions, &next.exceptions),
        ] {
            for e in new.iter().filter(|e| old.get(&e.domain).is_none()) {
                by.entry(e.source.clone())
                    .or_default()
                    .note(kind, '+', &e.domain);
            }
            for e in old.iter().filter(|e| new.get(&e.domain).is_none()) {
                by.entry(e.source.clone())
                    .or_default()
                    .note(kind, '-', &e.domain);
            }
        }
        // A new exception under a suspension that stays listed lifts it for the exception's
        // domain as surely as removing the rule would: the exception list's lift, so the same
        // WARN line names it.
        for e in next.exceptions.iter() {
            if self.exceptions.get(&e.domain).is_some() {
                continue;
            }
            let Some(was) = self.is_suspended(&e.domain) else {
                continue;
            };
            let still_listed = was.digest.is_some()
                || next
                    .enforcing
                    .get(&was.domain)
                    .is_some_and(|r| r.severity == Severity::Suspend);
            if still_listed && next.is_suspended(&e.domain).is_none() {
                by.entry(e.source.clone()).or_default().lift(&e.domain);
            }
        }
        // Which domains are named past the bound depends on the tables' order; at least the
        // log of one reload reads sorted.
        for changed in by.values_mut() {
            changed
                .named
                .iter_mut()
                .for_each(|n| n.sort_unstable_by(|a, b| a[1..].cmp(&b[1..])));
            changed.lifted_named.sort_unstable();
        }
        by
    }
}

/// How many domains a reload's log names per source and kind, and per source for lifted
/// suspensions: enough to recognise a list's edit, bounded for a list replaced whole.
pub const NAMED: usize = 20;

/// One source's changed domains (see `Snapshot::changed_domains_by_source`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangedDomains {
    /// Per kind: `+added`, `-removed`, `~changed` domains, at most `NAMED`.
    named: [Vec<String>; 6],
    /// Per kind: how many domains changed in all.
    total: [usize; 6],
    /// Enforced suspensions removed or made milder, and the first `NAMED` of them.
    lifted: usize,
    lifted_named: Vec<String>,
}

impl ChangedDomains {
    fn note(&mut self, kind: RuleKind, sign: char, domain: &str) {
        let i = kind.index();
        self.total[i] += 1;
        if self.named[i].len() < NAMED {
            self.named[i].push(format!("{sign}{domain}"));
        }
    }

    fn lift(&mut self, domain: &str) {
        self.lifted += 1;
        if self.lifted_named.len() < NAMED {
            self.lifted_named.push(domain.to_string());
        }
    }

    /// How many enforced suspensions this source lifted.
    pub fn lifted(&self) -> usize {
        self.lifted
    }

    /// The lifted suspensions' domains, space-separated, with `(+N more)` past `NAMED`.
    pub fn lifted_domains(&self) -> String {
        with_more(&self.lifted_named, self.lifted)
    }
}

fn with_more(named: &[String], total: usize) -> String {
    let mut out = named.join(" ");
    if total > named.len() {
        out.push_str(&format!(" (+{} more)", total - named.len()));
    }
    out
}

/// `suspend -a.example ~b.example; silence +c.example (+21 more)`: the kinds with changes.
impl fmt::Display for ChangedDomains {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for kind in RuleKind::ALL {
            let i = kind.index();
            if self.total[i] == 0 {
                continue;
            }
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{kind} {}", with_more(&self.named[i], self.total[i]))?;
        }
        Ok(())
    }
}

/// One domain rule a reload added, removed or changed, by name (see
/// [`Snapshot::changed_domains`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedDomain {
    pub source: Arc<str>,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    pub kind: RuleKind,
    pub domain: Box<str>,
}

impl Snapshot {
    /// The domain rules listed by name that [`Snapshot::diff_by_source`] counts as added,
    /// removed or changed, at most `cap` of them (the counts stay exact; the names are for
    /// people to read). Obfuscated entries are listed as written.
    pub fn changed_domains(&self, next: &Snapshot, cap: usize) -> Vec<ChangedDomain> {
        let mut out = Vec::new();
        for (old, new) in [
            (&self.enforcing, &next.enforcing),
            (&self.dry_run, &next.dry_run),
        ] {
            for rule in new.by_name.iter().chain(new.by_digest.values()) {
                let was = match &rule.digest {
                    Some(d) => old.by_digest.get(&**d),
                    None => old.get(&rule.domain),
                };
                if Changes::differs(was, rule) {
                    out.push(ChangedDomain {
                        source: rule.source.clone(),
                        change: if was.is_some() { "changed" } else { "added" },
                        kind: RuleKind::from(rule.severity),
                        domain: rule.domain.clone(),
                    });
                }
            }
            for rule in old.by_name.iter().chain(old.by_digest.values()) {
                let gone = match &rule.digest {
                    Some(d) => !new.by_digest.contains_key(&**d),
                    None => new.get(&rule.domain).is_none(),
                };
                if gone {
                    out.push(ChangedDomain {
                        source: rule.source.clone(),
                        change: "removed",
                        kind: RuleKind::from(rule.severity),
                        domain: rule.domain.clone(),
                    });
                }
            }
            if out.len() >= cap {
                break;
            }
        }
        out.truncate(cap);
        out
    }
}

//! Moderation policy: an immutable snapshot of domain rules, suffix matching, and the pure
//! decision function. No I/O here except in `sources`, which turns rule files into rules.
//!
//! What the proxy can enforce, compared with Mastodon (see `decide`):
//! * **suspend** on the keyId host or the actor host → reject (403), before any key fetch when
//!   the pipeline uses `is_suspended` early;
//! * **reject_reports** → a `Flag` is acknowledged (202) and not forwarded;
//! * **silence** and **noop** are forwarded: Mastodon applies silence itself when it processes
//!   the activity, and a proxy cannot rewrite a signed body.

pub mod host;
pub mod sources;

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Mastodon's domain-block severities, ordered from mildest to harshest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Noop,
    Silence,
    Suspend,
}

impl Severity {
    /// Every severity, harshest first (the order summaries and logs use).
    pub const ALL: [Severity; 3] = [Severity::Suspend, Severity::Silence, Severity::Noop];

    /// The word Mastodon's CSV export and API use; also the `severity` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Noop => "noop",
            Severity::Silence => "silence",
            Severity::Suspend => "suspend",
        }
    }

    /// Parses `suspend`, `silence` or `noop`, ignoring case and surrounding whitespace (as
    /// Mastodon's CSV import converter does).
    pub fn parse(word: &str) -> Option<Severity> {
        let word = word.trim();
        Severity::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(word))
    }

    /// 0, 1, 2 from mildest to harshest, for per-severity count arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One domain rule and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRule {
    /// Normalised with `host::normalize`.
    pub domain: String,
    pub severity: Severity,
    pub reject_media: bool,
    pub reject_reports: bool,
    pub public_comment: Option<String>,
    /// File the rule came from, and its 1-based line.
    pub source: Arc<str>,
    pub line: usize,
}

impl DomainRule {
    /// When one domain is listed twice (in one file or across files) the harsher rule wins:
    /// higher severity first, then `reject_reports`, then `reject_media`. Flags are not merged
    /// across rules, so the winning rule is exactly one line of one file, which is what logs
    /// and metrics name.
    pub fn is_harsher_than(&self, other: &DomainRule) -> bool {
        self.harshness() > other.harshness()
    }

    fn harshness(&self) -> (Severity, bool, bool) {
        (self.severity, self.reject_reports, self.reject_media)
    }

    /// Same effect on traffic and on Mastodon's list; where it is written does not matter.
    fn same_effect(&self, other: &DomainRule) -> bool {
        self.severity == other.severity
            && self.reject_media == other.reject_media
            && self.reject_reports == other.reject_reports
            && self.public_comment == other.public_comment
    }
}

/// The rule set in force. Built off the hot path, swapped in whole, never mutated.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Found by normalised domain, so a lookup of one suffix is one hash of a borrowed `&str`.
    rules: HashSet<ByDomain>,
    /// Bit `n - 1` is set when some listed domain has `n` labels (bit 63: 64 or more). A
    /// suffix whose label count no rule has cannot match, so `rule_for` does not hash it:
    /// `a.b.c.d.e.f.bad.example` costs one lookup per label count in use, not nine.
    label_counts: u64,
}

/// The `label_counts` bit for a domain of `labels` labels.
fn label_bit(labels: usize) -> u64 {
    1 << (labels.clamp(1, 64) - 1)
}

fn label_count(domain: &str) -> usize {
    domain.bytes().filter(|&b| b == b'.').count() + 1
}

/// A rule that hashes and compares as its domain, so the set is looked up by `&str` without
/// a second copy of every domain as a map key (100,000 rules would carry ~5 MB of copies).
#[derive(Debug)]
struct ByDomain(DomainRule);

impl Hash for ByDomain {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly as the `str` it borrows as.
        self.0.domain.as_str().hash(state)
    }
}

impl PartialEq for ByDomain {
    fn eq(&self, other: &ByDomain) -> bool {
        self.0.domain == other.0.domain
    }
}

impl Eq for ByDomain {}

impl Borrow<str> for ByDomain {
    fn borrow(&self) -> &str {
        &self.0.domain
    }
}

impl Snapshot {
    /// Builds a snapshot; when a domain appears more than once the harsher rule wins (see
    /// `DomainRule::is_harsher_than`), and on a tie the first one given. Domains must already be
    /// normalised (`sources` does that).
    pub fn from_rules(rules: impl IntoIterator<Item = DomainRule>) -> Snapshot {
        let rules = rules.into_iter();
        let mut set: HashSet<ByDomain> = HashSet::with_capacity(rules.size_hint().0);
        for rule in rules {
            match set.get(rule.domain.as_str()) {
                Some(existing) if !rule.is_harsher_than(&existing.0) => {}
                // Harsher than the rule listed so far, or the first one: in force.
                _ => {
                    set.replace(ByDomain(rule));
                }
            }
        }
        let label_counts = set
            .iter()
            .fold(0, |bits, r| bits | label_bit(label_count(&r.0.domain)));
        Snapshot {
            rules: set,
            label_counts,
        }
    }

    /// The most specific rule covering `host` (already normalised): every parent suffix on a
    /// label boundary is a candidate and the longest listed domain wins, as Mastodon's
    /// `DomainBlock.rule_for`. So a `noop` on `ok.bad.example` shadows a `suspend` on
    /// `bad.example` for that sub-domain. IP literals match only exactly.
    ///
    /// Cost: at most one hash lookup per label count some rule has, no allocation.
    pub fn rule_for(&self, host: &str) -> Option<&DomainRule> {
        if self.rules.is_empty() {
            return None;
        }
        // Cheap insurance against a caller that skipped normalisation of the trailing dot.
        let host = host.strip_suffix('.').unwrap_or(host);
        if host::is_ip_literal(host) {
            return self.get(host);
        }
        let mut candidate = host;
        let mut labels = label_count(host);
        loop {
            if self.label_counts & label_bit(labels) != 0 {
                if let Some(rule) = self.get(candidate) {
                    return Some(rule);
                }
            }
            candidate = candidate.split_once('.')?.1;
            labels -= 1;
        }
    }

    /// The rule that makes `host` suspended, if any: Mastodon's `DomainBlock.blocked?`. Only the
    /// most specific rule counts, so a sub-domain `noop` under a parent `suspend` is not
    /// suspended. For the pipeline's pre-fetch check of the keyId host.
    pub fn is_suspended(&self, host: &str) -> Option<&DomainRule> {
        self.rule_for(host)
            .filter(|rule| rule.severity == Severity::Suspend)
    }

    /// The rule listed for exactly `domain`, without suffix matching.
    pub fn get(&self, domain: &str) -> Option<&DomainRule> {
        self.rules.get(domain).map(|r| &r.0)
    }

    /// Every rule, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &DomainRule> {
        self.rules.iter().map(|r| &r.0)
    }

    /// Total rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The verdict for one verified request. Pure: facts in, decision out.
    ///
    /// In order:
    /// 1. the keyId host's rule is `suspend` → `Reject` (Mastodon: 403 before the key fetch);
    /// 2. the actor host's rule is `suspend` → `Reject` (Mastodon refuses to create or process
    ///    actors of a suspended domain);
    /// 3. a `Flag` whose actor host's rule (the keyId host's when the activity names no actor)
    ///    has `reject_reports` → `Drop` (Mastodon's `Flag` handler ignores it; it checks the
    ///    reporting account's domain);
    /// 4. otherwise `Forward`, carrying the harsher of the two hosts' rules for the log.
    pub fn decide<'a>(&'a self, facts: &Facts<'a>) -> Decision<'a> {
        let key_rule = self.rule_for(facts.key_host);
        if let Some(rule) = key_rule.filter(|r| r.severity == Severity::Suspend) {
            return Decision::Reject {
                party: Party::KeyHost,
                host: facts.key_host,
                rule,
            };
        }
        let actor_rule = match facts.actor_host {
            Some(actor) if actor == facts.key_host => key_rule,
            Some(actor) => self.rule_for(actor),
            None => None,
        };
        if let (Some(rule), Some(actor)) = (actor_rule, facts.actor_host) {
            if rule.severity == Severity::Suspend {
                return Decision::Reject {
                    party: Party::ActorHost,
                    host: actor,
                    rule,
                };
            }
        }
        if facts.activity_type == Some("Flag") {
            let reporter_rule = if facts.actor_host.is_some() {
                actor_rule
            } else {
                key_rule
            };
            if let Some(rule) = reporter_rule.filter(|r| r.reject_reports) {
                return Decision::Drop { rule };
            }
        }
        let rule = match (key_rule, actor_rule) {
            (Some(k), Some(a)) if a.is_harsher_than(k) => Some(a),
            (Some(k), _) => Some(k),
            (None, a) => a,
        };
        Decision::Forward { rule }
    }

    /// What changed from `self` (the rules in force) to `next`, counted per severity: a domain
    /// only in `next` is added (under its new severity), one only in `self` is removed (under
    /// its old severity), and one in both with a different severity, flag or public comment is
    /// changed (under its new severity). Moving a rule to another line or file is no change.
    pub fn diff(&self, next: &Snapshot) -> Changes {
        let mut changes = Changes::default();
        for new in next.iter() {
            match self.get(&new.domain) {
                None => changes.added[new.severity.index()] += 1,
                Some(old) if !old.same_effect(new) => changes.changed[new.severity.index()] += 1,
                Some(_) => {}
            }
        }
        for old in self.iter() {
            if next.get(&old.domain).is_none() {
                changes.removed[old.severity.index()] += 1;
            }
        }
        changes
    }
}

/// Rule changes between two snapshots, per severity (see `Snapshot::diff`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    added: [usize; 3],
    removed: [usize; 3],
    changed: [usize; 3],
}

impl Changes {
    pub fn added(&self, severity: Severity) -> usize {
        self.added[severity.index()]
    }
    pub fn removed(&self, severity: Severity) -> usize {
        self.removed[severity.index()]
    }
    pub fn changed(&self, severity: Severity) -> usize {
        self.changed[severity.index()]
    }
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// `suspend +2 -0 ~1, silence +0 -1 ~0, noop +0 -0 ~0` (added, removed, changed).
impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, severity) in Severity::ALL.into_iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "{severity} +{} -{} ~{}",
                self.added(severity),
                self.removed(severity),
                self.changed(severity)
            )?;
        }
        Ok(())
    }
}

/// What `decide` needs to know about one request, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The keyId's host, normalised (`host::normalize` / `host::of_uri`).
    pub key_host: &'a str,
    /// The activity's `actor` host, normalised, when the activity names one.
    pub actor_host: Option<&'a str>,
    /// The activity's `type` (`Create`, `Flag`, …), case-sensitive as in ActivityStreams.
    pub activity_type: Option<&'a str>,
}

/// Which of the request's hosts a rejecting rule matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    KeyHost,
    ActorHost,
}

/// The policy verdict. Each variant names the rule that decided it, so the caller can log the
/// rule's domain, source file and line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Pass to Mastodon. `rule` is the harsher matching rule (silence, noop), if any.
    Forward { rule: Option<&'a DomainRule> },
    /// Refuse with 403: `host` (the keyId's or the actor's, per `party`) is suspended.
    Reject {
        party: Party,
        host: &'a str,
        rule: &'a DomainRule,
    },
    /// Acknowledge with 202 and do not forward: a report from a `reject_reports` domain.
    Drop { rule: &'a DomainRule },
}

impl<'a> Decision<'a> {
    /// A fixed label per kind, for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Decision::Forward { .. } => "allowed",
            Decision::Reject {
                party: Party::KeyHost,
                ..
            } => "suspended_key_host",
            Decision::Reject {
                party: Party::ActorHost,
                ..
            } => "suspended_actor_host",
            Decision::Drop { .. } => "reject_reports",
        }
    }

    /// The rule that decided, if any.
    pub fn rule(&self) -> Option<&'a DomainRule> {
        match *self {
            Decision::Forward { rule } => rule,
            Decision::Reject { rule, .. } | Decision::Drop { rule } => Some(rule),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(domain: &str, severity: Severity, reject_reports: bool) -> DomainRule {
        DomainRule {
            domain: domain.into(),
            severity,
            reject_media: false,
            reject_reports,
            public_comment: None,
            source: Arc::from("test.csv"),
            line: 1,
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot::from_rules([
            rule("bad.example", Severity::Suspend, false),
            rule("ok.bad.example", Severity::Noop, false),
            rule("limited.example", Severity::Silence, false),
            rule("reports.example", Severity::Noop, true),
            rule("loud.example", Severity::Silence, true),
            rule("192.0.2.1", Severity::Suspend, false),
            rule("2.1", Severity::Suspend, false),
        ])
    }

    #[test]
    fn severity_words() {
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
        assert_eq!(Severity::parse(" SUSPEND "), Some(Severity::Suspend));
        assert_eq!(Severity::parse("Silence"), Some(Severity::Silence));
        assert_eq!(Severity::parse("block"), None);
        assert_eq!(Severity::parse(""), None);
        assert!(Severity::Noop < Severity::Silence && Severity::Silence < Severity::Suspend);
    }

    #[test]
    fn suffix_matching() {
        let s = snapshot();
        let domain = |h: &str| s.rule_for(h).map(|r| r.domain.as_str());
        assert_eq!(domain("bad.example"), Some("bad.example"));
        assert_eq!(domain("sub.bad.example"), Some("bad.example"));
        assert_eq!(domain("a.b.c.bad.example"), Some("bad.example"));
        assert_eq!(domain("bad.example."), Some("bad.example"));
        assert_eq!(domain("notbad.example"), None);
        assert_eq!(domain("bad.example.net"), None);
        assert_eq!(domain("example"), None);
        assert_eq!(domain(""), None);
        // Longest listed suffix wins: the noop shadows the parent suspend.
        assert_eq!(domain("ok.bad.example"), Some("ok.bad.example"));
        assert_eq!(domain("x.ok.bad.example"), Some("ok.bad.example"));
        // IP literals are exact only: `2.1` is not a parent of an address.
        assert_eq!(domain("192.0.2.1"), Some("192.0.2.1"));
        assert_eq!(domain("198.51.2.1"), None);
        assert_eq!(domain("x.2.1"), Some("2.1"));
    }

    #[test]
    fn only_label_counts_in_use_are_looked_up_and_every_depth_still_matches() {
        let s = Snapshot::from_rules([
            rule("bad.example", Severity::Suspend, false),
            rule("a.b.c.deep.example", Severity::Silence, false),
            rule("localhost", Severity::Suspend, false),
        ]);
        let domain = |h: &str| s.rule_for(h).map(|r| r.domain.as_str());
        assert_eq!(domain("x.y.a.b.c.deep.example"), Some("a.b.c.deep.example"));
        assert_eq!(domain("b.c.deep.example"), None);
        assert_eq!(domain("x.y.z.w.v.u.bad.example"), Some("bad.example"));
        assert_eq!(domain("localhost"), Some("localhost"));
        assert_eq!(domain("sub.localhost"), Some("localhost"));
        // Beyond 64 labels every depth shares one bit; matching stays exact.
        let long = format!("{}bad.example", "l.".repeat(70));
        assert_eq!(domain(&long), Some("bad.example"));
        let long_rule = format!("{}deep.example", "l.".repeat(70));
        let s = Snapshot::from_rules([rule(&long_rule, Severity::Suspend, false)]);
        assert!(s.rule_for(&format!("x.{long_rule}")).is_some());
        assert!(s
            .rule_for(&format!("x.{}deep.example", "l.".repeat(69)))
            .is_none());
    }

    #[test]
    fn suspension_follows_the_most_specific_rule() {
        let s = snapshot();
        assert!(s.is_suspended("bad.example").is_some());
        assert!(s.is_suspended("deep.sub.bad.example").is_some());
        assert!(s.is_suspended("ok.bad.example").is_none());
        assert!(s.is_suspended("limited.example").is_none());
        assert!(s.is_suspended("unlisted.example").is_none());
    }

    #[test]
    fn empty_snapshot_matches_nothing() {
        let s = Snapshot::default();
        assert!(s.is_empty());
        assert!(s.rule_for("bad.example").is_none());
    }

    #[test]
    fn harshest_duplicate_wins() {
        let mut later = rule("dup.example", Severity::Suspend, false);
        later.line = 9;
        let s = Snapshot::from_rules([
            rule("dup.example", Severity::Silence, true),
            later,
            rule("dup.example", Severity::Noop, true),
            rule("tie.example", Severity::Silence, false),
            rule("tie.example", Severity::Silence, true),
        ]);
        assert_eq!(s.len(), 2);
        let dup = s.get("dup.example").expect("listed");
        assert_eq!((dup.severity, dup.line), (Severity::Suspend, 9));
        assert!(!dup.reject_reports, "flags come from the winning rule only");
        assert!(s.get("tie.example").expect("listed").reject_reports);
    }

    #[test]
    fn decide_table() {
        let s = snapshot();
        // (key host, actor host, type, reason, deciding rule's domain)
        type Case = (
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            &'static str,
            Option<&'static str>,
        );
        let cases: &[Case] = &[
            (
                "good.example",
                Some("good.example"),
                Some("Create"),
                "allowed",
                None,
            ),
            ("good.example", None, None, "allowed", None),
            (
                "bad.example",
                Some("bad.example"),
                Some("Create"),
                "suspended_key_host",
                Some("bad.example"),
            ),
            (
                "sub.bad.example",
                None,
                Some("Delete"),
                "suspended_key_host",
                Some("bad.example"),
            ),
            (
                "ok.bad.example",
                Some("ok.bad.example"),
                Some("Create"),
                "allowed",
                Some("ok.bad.example"),
            ),
            (
                "relay.example",
                Some("x.bad.example"),
                Some("Announce"),
                "suspended_actor_host",
                Some("bad.example"),
            ),
            (
                "bad.example",
                Some("good.example"),
                Some("Create"),
                "suspended_key_host",
                Some("bad.example"),
            ),
            (
                "limited.example",
                Some("limited.example"),
                Some("Create"),
                "allowed",
                Some("limited.example"),
            ),
            (
                "limited.example",
                Some("limited.example"),
                Some("Flag"),
                "allowed",
                Some("limited.example"),
            ),
            (
                "reports.example",
                Some("reports.example"),
                Some("Flag"),
                "reject_reports",
                Some("reports.example"),
            ),
            (
                "reports.example",
                None,
                Some("Flag"),
                "reject_reports",
                Some("reports.example"),
            ),
            (
                "sub.reports.example",
                Some("sub.reports.example"),
                Some("Flag"),
                "reject_reports",
                Some("reports.example"),
            ),
            (
                "reports.example",
                Some("reports.example"),
                Some("Create"),
                "allowed",
                Some("reports.example"),
            ),
            (
                "reports.example",
                Some("reports.example"),
                Some("flag"),
                "allowed",
                Some("reports.example"),
            ),
            (
                "loud.example",
                Some("loud.example"),
                Some("Flag"),
                "reject_reports",
                Some("loud.example"),
            ),
            // The reporter is the actor: a relay with reject_reports does not drop another
            // server's report, and a reporter with reject_reports is dropped via any relay.
            (
                "reports.example",
                Some("good.example"),
                Some("Flag"),
                "allowed",
                Some("reports.example"),
            ),
            (
                "good.example",
                Some("reports.example"),
                Some("Flag"),
                "reject_reports",
                Some("reports.example"),
            ),
            // Forward names the harsher of the two rules.
            (
                "reports.example",
                Some("limited.example"),
                Some("Create"),
                "allowed",
                Some("limited.example"),
            ),
            (
                "limited.example",
                Some("reports.example"),
                Some("Create"),
                "allowed",
                Some("limited.example"),
            ),
            (
                "192.0.2.1",
                None,
                Some("Create"),
                "suspended_key_host",
                Some("192.0.2.1"),
            ),
        ];
        for &(key_host, actor_host, activity_type, reason, domain) in cases {
            let d = s.decide(&Facts {
                key_host,
                actor_host,
                activity_type,
            });
            assert_eq!(
                (d.reason(), d.rule().map(|r| r.domain.as_str())),
                (reason, domain),
                "decide({key_host}, {actor_host:?}, {activity_type:?})"
            );
            if let Decision::Reject { party, host, .. } = d {
                let want = if party == Party::KeyHost {
                    key_host
                } else {
                    actor_host.expect("actor")
                };
                assert_eq!(host, want);
            }
        }
    }

    #[test]
    fn diff_counts_per_severity() {
        let old = Snapshot::from_rules([
            rule("gone.example", Severity::Silence, false),
            rule("same.example", Severity::Suspend, false),
            rule("moved.example", Severity::Suspend, false),
            rule("up.example", Severity::Silence, false),
            rule("flag.example", Severity::Noop, false),
        ]);
        let mut moved = rule("moved.example", Severity::Suspend, false);
        moved.line = 40;
        moved.source = Arc::from("other.csv");
        let new = Snapshot::from_rules([
            rule("same.example", Severity::Suspend, false),
            moved,
            rule("up.example", Severity::Suspend, false),
            rule("flag.example", Severity::Noop, true),
            rule("new1.example", Severity::Suspend, false),
            rule("new2.example", Severity::Suspend, false),
        ]);
        let c = old.diff(&new);
        assert_eq!(c.added(Severity::Suspend), 2);
        assert_eq!(c.removed(Severity::Silence), 1);
        assert_eq!(c.changed(Severity::Suspend), 1);
        assert_eq!(c.changed(Severity::Noop), 1);
        assert_eq!(c.added(Severity::Noop) + c.removed(Severity::Suspend), 0);
        assert_eq!(
            c.to_string(),
            "suspend +2 -0 ~1, silence +0 -1 ~0, noop +0 -0 ~1"
        );
        assert!(new.diff(&new).is_empty());
    }
}

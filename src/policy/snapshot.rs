//! The rule set in force (`Snapshot`), how it is assembled (`SnapshotBuilder`, `Sizes`), and
//! its lookups: suffix matching, allow entries, exceptions, actor rules, withheld rules.

use super::actors::{ActorIndex, ActorRule};
use super::content::{ContentRule, ContentRules, MAX_CONTENT_RULES};
use super::escalation::FriendlyFederatorSettings;
use super::host;
use super::index::{harsher, NameSet, Tier};
use super::rate::{RateOverride, RateOverrides};
use super::vocab::{digest_hex, domain_digest, DomainEntry, DomainRule, PolicyMode, Severity};
use std::collections::HashMap;

/// The rule set in force. Built off the hot path, swapped in whole, never mutated.
///
/// Rules from `dry_run` sources live in their own tier: they never change what `rule_for`,
/// `is_suspended` or an enforcing `decide` see, and are consulted only to tell whether a
/// forwarded request would have been stopped had they been enforced.
///
/// Besides domain rules it holds allowed domains (enforced in `PolicyMode::Allowlist`),
/// exceptions (domains block rules do not apply to), actor rules, the subscribed rules held
/// back by `subscription_threshold` (for `explain`), and the friendly-federator settings of a
/// TOML rules file.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub(super) enforcing: Tier,
    pub(super) dry_run: Tier,
    pub(super) allows: NameSet<DomainEntry>,
    pub(super) exceptions: NameSet<DomainEntry>,
    pub(super) actors: ActorIndex,
    pub(super) dry_run_actors: ActorIndex,
    pub(super) mode: PolicyMode,
    /// `subscription_threshold`, and the subscribed rules it held back, by domain (or
    /// `sha256:<hex>` for a digest rule): one rule per subscribed source listing it.
    pub(super) threshold: usize,
    pub(super) withheld: HashMap<String, Vec<DomainRule>>,
    pub(super) friendly_federators: Option<FriendlyFederatorSettings>,
    /// Per-domain fair-share overrides.
    pub(super) rate_overrides: RateOverrides,
    /// Content rules of every source, in source then file order.
    pub(super) content_rules: ContentRules,
    /// Some content rule reads the post's content.
    pub(super) content_needed: bool,
    /// Some content rule asks when an actor was first seen.
    pub(super) first_seen_needed: bool,
}

/// Upper bounds on what a snapshot will hold, counted from the parsed sources before any
/// rule goes in, so `SnapshotBuilder::reserve` allocates each table once at its final size.
/// A table that grows by doubling keeps its old and new slots alive together while it
/// rehashes: for 100,000 rules that was ~7 MB of old table beside a 14 MB new one, on top of
/// the previous snapshot during a reload. Counting rules that end up withheld, outranked or
/// duplicated only leaves some slots unused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Domain rules by name and by digest, per tier: `[enforcing, dry run]`.
    pub named: [usize; 2],
    pub digests: [usize; 2],
    pub allows: usize,
    pub exceptions: usize,
}

impl Sizes {
    /// Counts `rule`, in the dry-run tier when it or its source (`dry_run`) is dry run.
    pub fn count_rule(&mut self, rule: &DomainRule, dry_run: bool) {
        let tier = usize::from(dry_run || rule.dry_run);
        match rule.digest {
            Some(_) => self.digests[tier] += 1,
            None => self.named[tier] += 1,
        }
    }
}

/// The dry-run table or the enforcing one, for a rule that is dry run or not.
fn tier<'a, T>(dry_run: bool, dry: &'a mut T, enforcing: &'a mut T) -> &'a mut T {
    if dry_run {
        dry
    } else {
        enforcing
    }
}

/// Assembles a `Snapshot` (see `Snapshot::builder`).
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    snapshot: Snapshot,
    content_rules: Vec<ContentRule>,
}

impl SnapshotBuilder {
    /// Sizes every table for `sizes` more entries, before the first is given (see `Sizes`).
    pub fn reserve(&mut self, sizes: &Sizes) -> &mut Self {
        let s = &mut self.snapshot;
        s.enforcing.reserve(sizes.named[0], sizes.digests[0]);
        s.dry_run.reserve(sizes.named[1], sizes.digests[1]);
        s.allows.reserve(sizes.allows);
        s.exceptions.reserve(sizes.exceptions);
        self
    }

    /// A domain rule: harsher wins over one already given for the same domain (or digest) in
    /// its tier; on a tie, the first one given.
    pub fn rule(&mut self, rule: DomainRule) -> &mut Self {
        let s = &mut self.snapshot;
        tier(rule.dry_run, &mut s.dry_run, &mut s.enforcing).insert(rule);
        self
    }

    /// An allowed domain; the first entry for a domain is kept.
    pub fn allow(&mut self, entry: DomainEntry) -> &mut Self {
        self.snapshot.allows.insert_first(entry);
        self
    }

    /// An exception; the first entry for a domain is kept.
    pub fn exception(&mut self, entry: DomainEntry) -> &mut Self {
        self.snapshot.exceptions.insert_first(entry);
        self
    }

    /// A content rule, after those already given; past `MAX_CONTENT_RULES` in all, `false`
    /// and the rule is left out.
    pub fn content_rule(&mut self, rule: ContentRule) -> bool {
        let rules = &mut self.content_rules;
        if rules.len() >= MAX_CONTENT_RULES {
            return false;
        }
        self.snapshot.content_needed |= rule.when.needs_content();
        self.snapshot.first_seen_needed |= rule.when.actor_first_seen_under.is_some();
        rules.push(rule);
        true
    }

    /// A fair-share override; the first one given for a domain is kept.
    pub fn rate_override(&mut self, rule: RateOverride) -> &mut Self {
        self.snapshot.rate_overrides.insert_first(rule);
        self
    }

    /// An actor rule; the first rule for a pattern in its tier is kept.
    pub fn actor(&mut self, rule: ActorRule) -> &mut Self {
        let s = &mut self.snapshot;
        tier(rule.dry_run, &mut s.dry_run_actors, &mut s.actors).insert(rule);
        self
    }

    /// A subscribed rule that `subscription_threshold` kept out of force: never matched, only
    /// shown by `explain`.
    pub fn withhold(&mut self, rule: DomainRule) -> &mut Self {
        let key = match rule.digest.as_deref() {
            Some(digest) => format!("sha256:{}", digest_hex(digest)),
            None => rule.domain.to_string(),
        };
        self.snapshot.withheld.entry(key).or_default().push(rule);
        self
    }

    pub fn friendly_federators(&mut self, settings: FriendlyFederatorSettings) -> &mut Self {
        self.snapshot.friendly_federators = Some(settings);
        self
    }

    pub fn build(mut self) -> Snapshot {
        self.snapshot.content_rules = ContentRules::new(self.content_rules);
        self.snapshot
    }
}

impl Snapshot {
    /// A builder for a snapshot in `mode` with `threshold` (`subscription_threshold`, for
    /// `explain`; `reload::load` applies it).
    pub fn builder(mode: PolicyMode, threshold: usize) -> SnapshotBuilder {
        SnapshotBuilder {
            snapshot: Snapshot {
                mode,
                threshold,
                ..Snapshot::default()
            },
            content_rules: Vec::new(),
        }
    }

    /// Builds a blocklist-mode snapshot of domain rules only; when a domain (or digest)
    /// appears more than once in one tier the harsher rule wins (see
    /// `DomainRule::is_harsher_than`), and on a tie the first one given. Domains must already
    /// be normalised (`sources` does that).
    pub fn from_rules(rules: impl IntoIterator<Item = DomainRule>) -> Snapshot {
        let rules = rules.into_iter();
        let mut builder = Snapshot::builder(PolicyMode::Blocklist, 1);
        // Usually all enforcing and named; a wrong guess only leaves slots unused.
        builder.reserve(&Sizes {
            named: [rules.size_hint().0, 0],
            ..Sizes::default()
        });
        for rule in rules {
            builder.rule(rule);
        }
        builder.build()
    }

    /// The most specific enforcing rule covering `host` (already normalised): every parent
    /// suffix on a label boundary is a candidate and the longest listed domain wins, as
    /// Mastodon's `DomainBlock.rule_for`. So a `noop` on `ok.bad.example` shadows a `suspend`
    /// on `bad.example` for that sub-domain. A digest rule counts as listing the domain it is
    /// the digest of, so the longest suffix wins across named and obfuscated entries (and when
    /// both name the same domain, the harsher). An exception counts as listing its domain with
    /// no rule, and beats rules on the same domain: `None` from there down. IP literals match
    /// only exactly.
    ///
    /// Cost: at most one hash lookup per label count some rule or exception has, no
    /// allocation; plus one SHA-256 per label only when the snapshot has digest rules.
    pub fn rule_for(&self, host: &str) -> Option<&DomainRule> {
        self.lookup(host, false)
    }

    /// Like `rule_for`, but as if the dry-run sources were enforced: the rule that would decide
    /// for `host`, which may be a dry-run rule.
    pub fn rule_for_including_dry_run(&self, host: &str) -> Option<&DomainRule> {
        self.lookup(host, true)
    }

    pub(super) fn lookup(&self, host: &str, with_dry_run: bool) -> Option<&DomainRule> {
        let empty = self.enforcing.len() == 0 && (!with_dry_run || self.dry_run.len() == 0);
        if empty {
            return None;
        }
        let hashing = !self.enforcing.by_digest.is_empty()
            || (with_dry_run && !self.dry_run.by_digest.is_empty());
        // `suffixes` also drops a trailing dot: cheap insurance against a caller that skipped
        // normalisation.
        for (candidate, labels) in host::suffixes_with_labels(host) {
            if self.exceptions.exact(candidate, labels).is_some() {
                return None;
            }
            let digest = hashing.then(|| domain_digest(candidate));
            let mut best = None;
            for rule in self.enforcing.exact(candidate, labels, digest.as_ref()) {
                best = Some(harsher(best, rule));
            }
            if with_dry_run {
                for rule in self.dry_run.exact(candidate, labels, digest.as_ref()) {
                    best = Some(harsher(best, rule));
                }
            }
            if best.is_some() {
                return best;
            }
        }
        None
    }

    /// Every rule covering `host`, enforcing and dry-run, by name and by digest: longest
    /// suffix first, and on one suffix enforcing before dry run, name before digest. Rules an
    /// exception shadows are included (`exception_for` tells which). For `explain`; it
    /// allocates, so it is not for the request path.
    pub fn matching_rules(&self, host: &str) -> impl Iterator<Item = &DomainRule> {
        let hashing = !self.enforcing.by_digest.is_empty() || !self.dry_run.by_digest.is_empty();
        let mut found = Vec::new();
        for (candidate, labels) in host::suffixes_with_labels(host) {
            let digest = hashing.then(|| domain_digest(candidate));
            found.extend(self.enforcing.exact(candidate, labels, digest.as_ref()));
            found.extend(self.dry_run.exact(candidate, labels, digest.as_ref()));
        }
        found.into_iter()
    }

    /// The exception on the longest suffix of `host`, if any. It shadows every block rule on
    /// that suffix and shorter ones; rules on longer suffixes still apply.
    pub fn exception_for(&self, host: &str) -> Option<&DomainEntry> {
        self.exceptions.longest_suffix(host)
    }

    /// Whether an exception names exactly the domain `rule` covers (by name, or by the digest
    /// of an exception's domain), so the rule has no effect anywhere.
    pub fn is_excluded(&self, rule: &DomainRule) -> bool {
        match rule.digest.as_deref() {
            None => self.exceptions.get(&rule.domain).is_some(),
            Some(digest) => self
                .exceptions
                .iter()
                .any(|e| domain_digest(&e.domain) == *digest),
        }
    }

    /// The allow entry for exactly `host`, if any: Mastodon's `DomainAllow.rule_for` matches
    /// the normalised host itself, not its parent domains as block rules do.
    pub fn allow_for(&self, host: &str) -> Option<&DomainEntry> {
        self.allows.get(host)
    }

    /// Blocklist (default) or allowlist mode.
    pub fn mode(&self) -> PolicyMode {
        self.mode
    }

    /// `subscription_threshold` as loaded (1: every subscribed rule applies).
    pub fn subscription_threshold(&self) -> usize {
        self.threshold
    }

    /// The subscribed rules held back by the threshold on every suffix of `host` (by name and
    /// by digest), longest suffix first. For `explain`.
    pub fn withheld_rules(&self, host: &str) -> Vec<&DomainRule> {
        if self.withheld.is_empty() {
            return Vec::new();
        }
        let mut found = Vec::new();
        for candidate in host::suffixes(host) {
            for key in [
                candidate.to_string(),
                format!("sha256:{}", digest_hex(&domain_digest(candidate))),
            ] {
                if let Some(rules) = self.withheld.get(&key) {
                    found.extend(rules);
                }
            }
        }
        found
    }

    /// Every withheld rule, for summaries.
    pub fn iter_withheld(&self) -> impl Iterator<Item = &DomainRule> {
        self.withheld.values().flatten()
    }

    /// The actor rule (enforcing, else dry run) matching actor URI `uri`.
    pub fn actor_rule_for(&self, uri: &str) -> Option<&ActorRule> {
        self.actors
            .find(uri)
            .or_else(|| self.dry_run_actors.find(uri))
    }

    /// The `[friendly_federators]` settings of a TOML rules file, if one has them.
    pub fn friendly_federators(&self) -> Option<&FriendlyFederatorSettings> {
        self.friendly_federators.as_ref()
    }

    /// The enforcing rule that makes `host` suspended, if any: Mastodon's `DomainBlock.blocked?`.
    /// Only the most specific rule counts, so a sub-domain `noop` under a parent `suspend` is
    /// not suspended. Dry-run rules never count here.
    pub fn is_suspended(&self, host: &str) -> Option<&DomainRule> {
        self.rule_for(host)
            .filter(|rule| rule.severity == Severity::Suspend)
    }

    /// The rule listed by name for exactly `domain`, without suffix matching: the enforcing
    /// one, else the dry-run one.
    pub fn get(&self, domain: &str) -> Option<&DomainRule> {
        self.enforcing
            .get(domain)
            .or_else(|| self.dry_run.get(domain))
    }

    /// Every domain rule (enforcing and dry run), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &DomainRule> {
        self.enforcing.iter().chain(self.dry_run.iter())
    }

    /// Every allow entry, in no particular order.
    pub fn iter_allows(&self) -> impl Iterator<Item = &DomainEntry> {
        self.allows.iter()
    }

    /// Every exception, in no particular order.
    pub fn iter_exceptions(&self) -> impl Iterator<Item = &DomainEntry> {
        self.exceptions.iter()
    }

    /// Every actor rule (enforcing and dry run), in no particular order.
    /// The fair-share override for a sending host, if a rules file gives one.
    pub fn rate_override(&self, sender_host: &str) -> Option<&RateOverride> {
        self.rate_overrides.find(sender_host)
    }

    pub fn rate_overrides(&self) -> &RateOverrides {
        &self.rate_overrides
    }

    /// Content rules in evaluation order.
    pub fn content_rules(&self) -> &ContentRules {
        &self.content_rules
    }

    /// Whether the activity's content must be read for some content rule.
    pub fn needs_content(&self) -> bool {
        self.content_needed
    }

    /// Whether actors' first sightings must be kept for some content rule.
    pub fn needs_first_seen(&self) -> bool {
        self.first_seen_needed
    }

    pub fn iter_actors(&self) -> impl Iterator<Item = &ActorRule> {
        self.actors.iter().chain(self.dry_run_actors.iter())
    }

    /// Total domain rules, enforcing and dry run.
    pub fn len(&self) -> usize {
        self.enforcing.len() + self.dry_run.len()
    }

    /// No domain rule (allow entries, exceptions and actor rules are not counted, as in
    /// `len`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any domain or actor rule comes from a dry-run source (or is marked dry run).
    pub fn has_dry_run(&self) -> bool {
        self.dry_run.len() > 0 || self.dry_run_actors.len() > 0
    }
}

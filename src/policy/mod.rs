//! Moderation policy: an immutable snapshot of domain rules, suffix matching, and the pure
//! decision function. No I/O here except in `sources`, which turns rule files into rules.
//!
//! What the proxy can enforce, compared with Mastodon (see `decide`):
//! * **suspend** on the keyId host or the actor host → reject (403), before any key fetch when
//!   the pipeline uses `is_suspended` early;
//! * **reject_reports** → a `Flag` is acknowledged (202) and not forwarded;
//! * **silence** and **noop** are forwarded: Mastodon applies silence itself when it processes
//!   the activity, and a proxy cannot rewrite a signed body.

pub mod actors;
pub mod host;
pub mod rules_file;
pub mod sources;

pub use crate::config::PolicyMode;
pub use actors::{ActorPattern, ActorRule};
pub use rules_file::FriendlyFederatorSettings;

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
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
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SHA-256 digest of a normalised domain, as Mastodon publishes next to an obfuscated entry.
pub type DomainDigest = [u8; 32];

/// The SHA-256 digest of `domain` (already normalised), as Mastodon computes it for its
/// public list (`Digest::SHA256.hexdigest(domain)`).
pub fn domain_digest(domain: &str) -> DomainDigest {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, domain.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Parses 64 hex digits (either case) into a digest.
pub fn parse_digest_hex(text: &str) -> Option<DomainDigest> {
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let nibble = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// Lower-case hex, as Mastodon writes digests.
pub fn digest_hex(digest: &DomainDigest) -> String {
    use std::fmt::Write;
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// One domain rule and where it came from.
///
/// Every field is sized for 100,000 of these living in a snapshot's hash table, twice over
/// during a reload: text is `Box<str>` (no spare capacity, 16 bytes), and the digest, which
/// few rules have, is boxed so the others pay 8 bytes for it instead of 33.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRule {
    /// Normalised with `host::normalize`. For a digest rule (`digest` is set), the entry as
    /// listed (`exam***.com`, or `sha256:<hex>`), for display only: it is never matched by name.
    pub domain: Box<str>,
    /// Set for an obfuscated entry: the rule covers the domain whose SHA-256 this is.
    pub digest: Option<Box<DomainDigest>>,
    pub severity: Severity,
    pub reject_media: bool,
    pub reject_reports: bool,
    pub public_comment: Option<Box<str>>,
    /// From the source's `dry_run`: the rule is matched and reported, never enforced.
    pub dry_run: bool,
    /// File the rule came from, and its 1-based line.
    pub source: Arc<str>,
    pub line: usize,
}

// 72 bytes (112 before): the snapshot's table slot is this plus one control byte, so each
// byte here is ~130 KB per 100,000 rules, paid again by the next snapshot during a reload
// (issue 5: peak RSS under 64 MiB). Grow it only with a measurement.
const _: () = assert!(std::mem::size_of::<DomainRule>() <= 72);

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

/// A domain named by an allow list (`kind = "allow"`, Mastodon's `domain_allows.csv`) or an
/// exception list (`exclude = true`), and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainEntry {
    /// Normalised with `host::normalize`.
    pub domain: Box<str>,
    pub comment: Option<Box<str>>,
    /// File (or source label) the entry came from, and its 1-based line.
    pub source: Arc<str>,
    pub line: usize,
}

// 56 bytes (72 with `String`s), for the same reason as `DomainRule`'s bound.
const _: () = assert!(std::mem::size_of::<DomainEntry>() <= 56);

/// Every kind of rule a source can hold: the `severity` label of `inboxguard_rules_loaded`
/// and the rows of the reload log. A fixed set, so the label stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    Suspend,
    Silence,
    Noop,
    /// An allowed domain (enforced in `mode = "allowlist"`).
    Allow,
    /// An exception: block rules do not apply to the domain and its sub-domains.
    Exclude,
    /// A suspended actor.
    ActorSuspend,
}

impl RuleKind {
    /// Every kind, in the order summaries and logs use.
    pub const ALL: [RuleKind; 6] = [
        RuleKind::Suspend,
        RuleKind::Silence,
        RuleKind::Noop,
        RuleKind::Allow,
        RuleKind::Exclude,
        RuleKind::ActorSuspend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Suspend => "suspend",
            RuleKind::Silence => "silence",
            RuleKind::Noop => "noop",
            RuleKind::Allow => "allow",
            RuleKind::Exclude => "exclude",
            RuleKind::ActorSuspend => "actor_suspend",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl From<Severity> for RuleKind {
    fn from(severity: Severity) -> RuleKind {
        match severity {
            Severity::Suspend => RuleKind::Suspend,
            Severity::Silence => RuleKind::Silence,
            Severity::Noop => RuleKind::Noop,
        }
    }
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something found by its normalised domain.
pub(crate) trait Named {
    fn name(&self) -> &str;
}

impl Named for DomainRule {
    fn name(&self) -> &str {
        &self.domain
    }
}

impl Named for DomainEntry {
    fn name(&self) -> &str {
        &self.domain
    }
}

/// A value that hashes and compares as its domain, so a set is looked up by `&str` without a
/// second copy of every domain as a map key (100,000 rules would carry ~5 MB of copies).
#[derive(Debug)]
struct ByName<T>(T);

impl<T: Named> Hash for ByName<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly as the `str` it borrows as.
        self.0.name().hash(state)
    }
}

impl<T: Named> PartialEq for ByName<T> {
    fn eq(&self, other: &ByName<T>) -> bool {
        self.0.name() == other.0.name()
    }
}

impl<T: Named> Eq for ByName<T> {}

impl<T: Named> Borrow<str> for ByName<T> {
    fn borrow(&self) -> &str {
        self.0.name()
    }
}

/// Values by normalised domain, with the label counts in use.
#[derive(Debug)]
struct NameSet<T> {
    set: HashSet<ByName<T>>,
    /// Bit `n - 1` is set when some domain has `n` labels (bit 63: 64 or more). A suffix
    /// whose label count no domain has cannot match, so `exact` does not hash it:
    /// `a.b.c.d.e.f.bad.example` costs one lookup per label count in use, not nine.
    label_counts: u64,
}

impl<T> Default for NameSet<T> {
    fn default() -> Self {
        NameSet {
            set: HashSet::new(),
            label_counts: 0,
        }
    }
}

impl<T: Named> NameSet<T> {
    /// Room for `additional` more values without growing (see `Sizes`).
    fn reserve(&mut self, additional: usize) {
        self.set.reserve(additional);
    }

    /// Puts `value` in, replacing one of the same name.
    fn replace(&mut self, value: T) {
        self.label_counts |= label_bit(label_count(value.name()));
        self.set.replace(ByName(value));
    }

    /// Puts `value` in unless one of the same name is there (the first one listed stays).
    fn insert_first(&mut self, value: T) {
        if !self.set.contains(value.name()) {
            self.replace(value);
        }
    }

    fn get(&self, name: &str) -> Option<&T> {
        self.set.get(name).map(|v| &v.0)
    }

    /// The value for exactly `candidate`, which has `labels` labels.
    fn exact(&self, candidate: &str, labels: usize) -> Option<&T> {
        if self.label_counts & label_bit(labels) == 0 {
            return None;
        }
        self.get(candidate)
    }

    /// The value on the longest suffix of `host` (already normalised); IP literals only
    /// exactly.
    fn longest_suffix(&self, host: &str) -> Option<&T> {
        if self.set.is_empty() {
            return None;
        }
        let host = host.strip_suffix('.').unwrap_or(host);
        let exact_only = host::is_ip_literal(host);
        let mut candidate = host;
        let mut labels = label_count(host);
        loop {
            if let Some(found) = self.exact(candidate, labels) {
                return Some(found);
            }
            if exact_only {
                return None;
            }
            candidate = candidate.split_once('.')?.1;
            labels -= 1;
        }
    }

    fn len(&self) -> usize {
        self.set.len()
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.set.iter().map(|v| &v.0)
    }
}

/// One tier of rules (enforcing, or dry run): by name, and by digest for obfuscated entries.
#[derive(Debug, Default)]
struct Tier {
    by_name: NameSet<DomainRule>,
    by_digest: HashMap<DomainDigest, DomainRule>,
}

/// The `label_counts` bit for a domain of `labels` labels.
fn label_bit(labels: usize) -> u64 {
    1 << (labels.clamp(1, 64) - 1)
}

fn label_count(domain: &str) -> usize {
    domain.bytes().filter(|&b| b == b'.').count() + 1
}

impl Tier {
    /// Room for `named` more rules by name and `digests` more by digest.
    fn reserve(&mut self, named: usize, digests: usize) {
        self.by_name.reserve(named);
        self.by_digest.reserve(digests);
    }

    /// Harsher wins; on a tie, the first one given.
    fn insert(&mut self, rule: DomainRule) {
        match rule.digest.as_deref() {
            Some(&digest) => match self.by_digest.get_mut(&digest) {
                Some(existing) if !rule.is_harsher_than(existing) => {}
                Some(existing) => *existing = rule,
                None => {
                    self.by_digest.insert(digest, rule);
                }
            },
            None => match self.by_name.get(&rule.domain) {
                Some(existing) if !rule.is_harsher_than(existing) => {}
                // Harsher than the rule listed so far, or the first one: in force.
                _ => self.by_name.replace(rule),
            },
        }
    }

    fn len(&self) -> usize {
        self.by_name.len() + self.by_digest.len()
    }

    fn iter(&self) -> impl Iterator<Item = &DomainRule> {
        self.by_name.iter().chain(self.by_digest.values())
    }

    fn get(&self, domain: &str) -> Option<&DomainRule> {
        self.by_name.get(domain)
    }

    /// The rules listed for exactly `candidate` (of `labels` labels): by name, then by digest
    /// (when `digest` is given, which the caller does only when this snapshot has digest rules).
    fn exact<'s>(
        &'s self,
        candidate: &str,
        labels: usize,
        digest: Option<&DomainDigest>,
    ) -> impl Iterator<Item = &'s DomainRule> {
        self.by_name
            .exact(candidate, labels)
            .into_iter()
            .chain(digest.and_then(|d| self.by_digest.get(d)))
    }
}

/// The harsher of two rules; on a tie, `a`.
fn harsher<'r>(a: Option<&'r DomainRule>, b: &'r DomainRule) -> &'r DomainRule {
    match a {
        Some(a) if !b.is_harsher_than(a) => a,
        _ => b,
    }
}

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
    enforcing: Tier,
    dry_run: Tier,
    allows: NameSet<DomainEntry>,
    exceptions: NameSet<DomainEntry>,
    actors: actors::ActorIndex,
    dry_run_actors: actors::ActorIndex,
    mode: PolicyMode,
    /// `subscription_threshold`, and the subscribed rules it held back, by domain (or
    /// `sha256:<hex>` for a digest rule): one rule per subscribed source listing it.
    threshold: usize,
    withheld: HashMap<String, Vec<DomainRule>>,
    friendly_federators: Option<FriendlyFederatorSettings>,
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

/// Assembles a `Snapshot` (see `Snapshot::builder`).
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    snapshot: Snapshot,
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
        if rule.dry_run {
            self.snapshot.dry_run.insert(rule);
        } else {
            self.snapshot.enforcing.insert(rule);
        }
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

    /// An actor rule; the first rule for a pattern in its tier is kept.
    pub fn actor(&mut self, rule: ActorRule) -> &mut Self {
        if rule.dry_run {
            self.snapshot.dry_run_actors.insert(rule);
        } else {
            self.snapshot.actors.insert(rule);
        }
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

    pub fn build(self) -> Snapshot {
        self.snapshot
    }
}

impl Snapshot {
    /// A builder for a snapshot in `mode` with `threshold` (`subscription_threshold`, for
    /// `explain`; `rules::load` applies it).
    pub fn builder(mode: PolicyMode, threshold: usize) -> SnapshotBuilder {
        SnapshotBuilder {
            snapshot: Snapshot {
                mode,
                threshold,
                ..Snapshot::default()
            },
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

    fn lookup(&self, host: &str, with_dry_run: bool) -> Option<&DomainRule> {
        let empty = self.enforcing.len() == 0 && (!with_dry_run || self.dry_run.len() == 0);
        if empty {
            return None;
        }
        let hashing = !self.enforcing.by_digest.is_empty()
            || (with_dry_run && !self.dry_run.by_digest.is_empty());
        // Cheap insurance against a caller that skipped normalisation of the trailing dot.
        let host = host.strip_suffix('.').unwrap_or(host);
        let exact_only = host::is_ip_literal(host);
        let mut candidate = host;
        let mut labels = label_count(host);
        loop {
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
            if best.is_some() || exact_only {
                return best;
            }
            candidate = candidate.split_once('.')?.1;
            labels -= 1;
        }
    }

    /// Every rule covering `host`, enforcing and dry-run, by name and by digest: longest
    /// suffix first, and on one suffix enforcing before dry run, name before digest. Rules an
    /// exception shadows are included (`exception_for` tells which). For `explain`; it
    /// allocates, so it is not for the request path.
    pub fn matching_rules(&self, host: &str) -> impl Iterator<Item = &DomainRule> {
        let hashing = !self.enforcing.by_digest.is_empty() || !self.dry_run.by_digest.is_empty();
        let mut found = Vec::new();
        for candidate in suffixes(host) {
            let digest = hashing.then(|| domain_digest(candidate));
            let labels = label_count(candidate);
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

    /// The allow entry on the longest suffix of `host`, if any (Mastodon's
    /// `DomainAllow.rule_for`).
    pub fn allow_for(&self, host: &str) -> Option<&DomainEntry> {
        self.allows.longest_suffix(host)
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
        for candidate in suffixes(host) {
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

    /// The pre-fetch check of one host (the keyId's, or the actor's once the body is parsed):
    /// `NotAllowed` in allowlist mode when no allow entry covers it, else `Reject` when an
    /// enforcing rule suspends it. Costs no I/O, so the pipeline runs it before any key fetch.
    pub fn check_host<'a>(&'a self, host: &'a str, party: Party) -> Option<Decision<'a>> {
        if self.mode == PolicyMode::Allowlist && self.allow_for(host).is_none() {
            return Some(Decision::NotAllowed { party, host });
        }
        self.is_suspended(host)
            .map(|rule| Decision::Reject { party, host, rule })
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

    /// The verdict for one verified request. Pure: facts in, decision out; no allocation
    /// unless actor rules exist (matching an actor URI parses it).
    ///
    /// The enforcing rules decide, in order:
    /// 1. allowlist mode, and no allow entry covers the keyId host → `NotAllowed`;
    /// 2. the keyId host's rule is `suspend` → `Reject` (Mastodon: 403 before the key fetch);
    /// 3. allowlist mode, and no allow entry covers the actor host → `NotAllowed`;
    /// 4. the actor host's rule is `suspend` → `Reject` (Mastodon refuses to create or process
    ///    actors of a suspended domain);
    /// 5. an actor rule matches the activity's actor, then its object's `attributedTo` →
    ///    `ActorSuspended`;
    /// 6. a `Flag` whose actor host's rule (the keyId host's when the activity names no actor)
    ///    has `reject_reports` → `Drop` (Mastodon's `Flag` handler ignores it; it checks the
    ///    reporting account's domain);
    /// 7. otherwise `Forward`, carrying the harsher of the two hosts' rules for the log.
    ///
    /// When that is `Forward` and dry-run rules exist, the same steps run again as if the
    /// dry-run sources were enforced (longest suffix across both, the harsher on the same
    /// domain); if a dry-run rule would then stop the request, the answer is `WouldStop` (or
    /// `WouldSuspendActor`), which is forwarded too. So a dry-run rule only matters where no
    /// enforcing rule stops the request, and an enforcing rule on a longer suffix shadows it
    /// as it would when enforced.
    pub fn decide<'a>(&'a self, facts: &Facts<'a>) -> Decision<'a> {
        let enforced = self.decide_with(facts, false);
        if !matches!(enforced, Decision::Forward { .. }) || !self.has_dry_run() {
            return enforced;
        }
        match self.decide_with(facts, true) {
            Decision::Reject { party, host, rule } if rule.dry_run => Decision::WouldStop {
                party: Some(party),
                host,
                rule,
            },
            Decision::Drop { rule } if rule.dry_run => Decision::WouldStop {
                party: None,
                host: facts.actor_host.unwrap_or(facts.key_host),
                rule,
            },
            Decision::ActorSuspended { party, actor, rule } if rule.dry_run => {
                Decision::WouldSuspendActor { party, actor, rule }
            }
            _ => enforced,
        }
    }

    fn decide_with<'a>(&'a self, facts: &Facts<'a>, with_dry_run: bool) -> Decision<'a> {
        let allowlist = self.mode == PolicyMode::Allowlist;
        if allowlist && self.allow_for(facts.key_host).is_none() {
            return Decision::NotAllowed {
                party: Party::KeyHost,
                host: facts.key_host,
            };
        }
        let key_rule = self.lookup(facts.key_host, with_dry_run);
        if let Some(rule) = key_rule.filter(|r| r.severity == Severity::Suspend) {
            return Decision::Reject {
                party: Party::KeyHost,
                host: facts.key_host,
                rule,
            };
        }
        if let Some(actor) = facts.actor_host {
            if allowlist && self.allow_for(actor).is_none() {
                return Decision::NotAllowed {
                    party: Party::ActorHost,
                    host: actor,
                };
            }
        }
        let actor_rule = match facts.actor_host {
            Some(actor) if actor == facts.key_host => key_rule,
            Some(actor) => self.lookup(actor, with_dry_run),
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
        if let Some(stop) = self.actor_decision(facts, with_dry_run) {
            return stop;
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

    /// Step 5 of `decide`: the activity's actor, then its object's author.
    fn actor_decision<'a>(&'a self, facts: &Facts<'a>, with_dry_run: bool) -> Option<Decision<'a>> {
        let any = self.actors.len() > 0 || (with_dry_run && self.dry_run_actors.len() > 0);
        if !any {
            return None;
        }
        let find = |uri: &str| {
            self.actors.find(uri).or_else(|| {
                with_dry_run
                    .then(|| self.dry_run_actors.find(uri))
                    .flatten()
            })
        };
        [
            (ActorParty::Actor, facts.actor),
            (ActorParty::AttributedTo, facts.attributed_to),
        ]
        .into_iter()
        .find_map(|(party, uri)| {
            let uri = uri?;
            find(uri).map(|rule| Decision::ActorSuspended {
                party,
                actor: uri,
                rule,
            })
        })
    }

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
}

/// `host` (trailing dot dropped) and each parent suffix on a label boundary, longest first;
/// an IP literal only itself.
fn suffixes(host: &str) -> impl Iterator<Item = &str> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let exact_only = host::is_ip_literal(host);
    std::iter::successors(Some(host), move |c| {
        if exact_only {
            None
        } else {
            c.split_once('.').map(|(_, parent)| parent)
        }
    })
}

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

/// What `decide` needs to know about one request, borrowed from it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    /// The keyId's host, normalised (`host::normalize` / `host::of_uri`).
    pub key_host: &'a str,
    /// The activity's `actor` host, normalised, when the activity names one.
    pub actor_host: Option<&'a str>,
    /// The activity's `type` (`Create`, `Flag`, …), case-sensitive as in ActivityStreams.
    pub activity_type: Option<&'a str>,
    /// The activity's `actor` URI as sent, for actor rules.
    pub actor: Option<&'a str>,
    /// The `attributedTo` of the activity's object as sent, for actor rules.
    pub attributed_to: Option<&'a str>,
}

/// Which of the request's hosts a rejecting rule matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    KeyHost,
    ActorHost,
}

/// Which of the request's accounts an actor rule matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorParty {
    /// The activity's `actor`.
    Actor,
    /// The `attributedTo` of the activity's object (its author).
    AttributedTo,
}

impl ActorParty {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorParty::Actor => "actor",
            ActorParty::AttributedTo => "attributedTo",
        }
    }
}

/// The policy verdict. Each variant names the rule that decided it, so the caller can log the
/// rule's domain (or actor), source file and line.
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
    /// Refuse with 403: allowlist mode, and no allow entry covers `host`.
    NotAllowed { party: Party, host: &'a str },
    /// Refuse with 403: the account `actor` (the activity's actor, or its object's author)
    /// is suspended by an actor rule.
    ActorSuspended {
        party: ActorParty,
        actor: &'a str,
        rule: &'a ActorRule,
    },
    /// Acknowledge with 202 and do not forward: a report from a `reject_reports` domain.
    Drop { rule: &'a DomainRule },
    /// Forward, but a dry-run `rule` would have stopped the request: rejected for `party`'s
    /// `host` when `party` is set, else dropped as a report from `host`.
    WouldStop {
        party: Option<Party>,
        host: &'a str,
        rule: &'a DomainRule,
    },
    /// Forward, but a dry-run actor rule would have refused it as `ActorSuspended`.
    WouldSuspendActor {
        party: ActorParty,
        actor: &'a str,
        rule: &'a ActorRule,
    },
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
            Decision::NotAllowed { .. } => "not_allowed",
            Decision::ActorSuspended { .. } => "actor_suspended",
            Decision::Drop { .. } => "reject_reports",
            Decision::WouldStop { .. } | Decision::WouldSuspendActor { .. } => {
                self.would().map_or("allowed", |d| d.reason())
            }
        }
    }

    /// The domain rule that decided, if any (for `WouldStop`, the dry-run rule).
    pub fn rule(&self) -> Option<&'a DomainRule> {
        match *self {
            Decision::Forward { rule } => rule,
            Decision::Reject { rule, .. }
            | Decision::Drop { rule }
            | Decision::WouldStop { rule, .. } => Some(rule),
            Decision::NotAllowed { .. }
            | Decision::ActorSuspended { .. }
            | Decision::WouldSuspendActor { .. } => None,
        }
    }

    /// The actor rule that decided, if any.
    pub fn actor_rule(&self) -> Option<&'a ActorRule> {
        match *self {
            Decision::ActorSuspended { rule, .. } | Decision::WouldSuspendActor { rule, .. } => {
                Some(rule)
            }
            _ => None,
        }
    }

    /// What the deciding rule lists (a domain, or an actor as written), its source and line:
    /// what logs name. `None` for `NotAllowed` (no rule decided) and a bare `Forward`.
    pub fn origin(&self) -> Option<(&'a str, &'a str, usize)> {
        if let Some(rule) = self.actor_rule() {
            return Some((&rule.actor, &rule.source, rule.line));
        }
        self.rule()
            .map(|rule| (&*rule.domain, &*rule.source, rule.line))
    }

    /// Whether the request goes on to Mastodon (`Forward`, `WouldStop`, `WouldSuspendActor`).
    pub fn forwards(&self) -> bool {
        matches!(
            self,
            Decision::Forward { .. }
                | Decision::WouldStop { .. }
                | Decision::WouldSuspendActor { .. }
        )
    }

    /// For `WouldStop` and `WouldSuspendActor`, the decision the dry-run rule would have made
    /// if enforced.
    pub fn would(&self) -> Option<Decision<'a>> {
        match *self {
            Decision::WouldStop {
                party: Some(party),
                host,
                rule,
            } => Some(Decision::Reject { party, host, rule }),
            Decision::WouldStop {
                party: None, rule, ..
            } => Some(Decision::Drop { rule }),
            Decision::WouldSuspendActor { party, actor, rule } => {
                Some(Decision::ActorSuspended { party, actor, rule })
            }
            _ => None,
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
            digest: None,
            dry_run: false,
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
        let domain = |h: &str| s.rule_for(h).map(|r| &*r.domain);
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
        let domain = |h: &str| s.rule_for(h).map(|r| &*r.domain);
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
                ..Facts::default()
            });
            assert_eq!(
                (d.reason(), d.rule().map(|r| &*r.domain)),
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

    fn dry(domain: &str, severity: Severity, reject_reports: bool) -> DomainRule {
        DomainRule {
            dry_run: true,
            ..rule(domain, severity, reject_reports)
        }
    }

    fn hashed(listed: &str, real: &str, severity: Severity) -> DomainRule {
        DomainRule {
            digest: Some(Box::new(domain_digest(real))),
            ..rule(listed, severity, false)
        }
    }

    fn decide_reason(
        s: &Snapshot,
        key: &str,
        actor: Option<&str>,
        kind: Option<&str>,
    ) -> (&'static str, bool, Option<String>) {
        let d = s.decide(&Facts {
            key_host: key,
            actor_host: actor,
            activity_type: kind,
            ..Facts::default()
        });
        (
            d.reason(),
            d.forwards(),
            d.rule().map(|r| r.domain.to_string()),
        )
    }

    #[test]
    fn dry_run_rules_forward_and_report_what_they_would_do() {
        let s = Snapshot::from_rules([
            rule("enforced.example", Severity::Suspend, false),
            dry("enforced.example", Severity::Suspend, false),
            dry("preview.example", Severity::Suspend, false),
            rule("ok.preview.example", Severity::Noop, false),
            dry("reports.example", Severity::Noop, true),
            rule("limited.example", Severity::Silence, false),
            dry("deep.limited.example", Severity::Suspend, false),
            rule("silenced.example", Severity::Silence, false),
            dry("silenced.example", Severity::Suspend, false),
        ]);
        assert!(s.has_dry_run());
        // Pre-fetch checks see enforcing rules only.
        assert!(s.is_suspended("preview.example").is_none());
        assert!(s.rule_for("preview.example").is_none());
        assert_eq!(
            s.rule_for_including_dry_run("x.preview.example")
                .map(|r| r.dry_run),
            Some(true)
        );
        let want = |reason: &'static str, forwards: bool, domain: &str| {
            (reason, forwards, Some(domain.to_string()))
        };
        // An enforcing rule decides, even when a dry-run rule names the same domain.
        let got = decide_reason(&s, "enforced.example", None, Some("Create"));
        assert_eq!(got, want("suspended_key_host", false, "enforced.example"));
        let d = s.decide(&Facts {
            key_host: "enforced.example",
            actor_host: None,
            activity_type: None,
            ..Facts::default()
        });
        assert!(!d.rule().expect("rule").dry_run);
        // A dry-run suspend forwards, carrying the reason it would have had.
        assert_eq!(
            decide_reason(
                &s,
                "preview.example",
                Some("preview.example"),
                Some("Create")
            ),
            want("suspended_key_host", true, "preview.example")
        );
        assert_eq!(
            decide_reason(
                &s,
                "good.example",
                Some("sub.preview.example"),
                Some("Announce")
            ),
            want("suspended_actor_host", true, "preview.example")
        );
        let d = s.decide(&Facts {
            key_host: "good.example",
            actor_host: Some("sub.preview.example"),
            activity_type: None,
            ..Facts::default()
        });
        assert_eq!(
            d,
            Decision::WouldStop {
                party: Some(Party::ActorHost),
                host: "sub.preview.example",
                rule: s
                    .rule_for_including_dry_run("preview.example")
                    .expect("dry"),
            }
        );
        assert!(matches!(
            d.would(),
            Some(Decision::Reject {
                party: Party::ActorHost,
                ..
            })
        ));
        // A longer enforcing suffix shadows the dry-run parent, as it would when enforced.
        assert_eq!(
            decide_reason(&s, "ok.preview.example", None, Some("Create")),
            want("allowed", true, "ok.preview.example")
        );
        // A longer dry-run suffix under an enforcing silence would suspend.
        assert_eq!(
            decide_reason(&s, "x.deep.limited.example", None, None),
            want("suspended_key_host", true, "deep.limited.example")
        );
        assert_eq!(
            decide_reason(&s, "limited.example", None, None),
            want("allowed", true, "limited.example")
        );
        // Same domain, enforcing silence and dry-run suspend: the harsher would win.
        assert_eq!(
            decide_reason(&s, "silenced.example", None, None),
            want("suspended_key_host", true, "silenced.example")
        );
        // Dry-run reject_reports: the report is forwarded, and would have been dropped.
        let d = s.decide(&Facts {
            key_host: "reports.example",
            actor_host: Some("reports.example"),
            activity_type: Some("Flag"),
            ..Facts::default()
        });
        assert_eq!(d.reason(), "reject_reports");
        assert!(d.forwards());
        assert!(matches!(d.would(), Some(Decision::Drop { .. })));
        assert_eq!(
            decide_reason(&s, "reports.example", None, Some("Create")),
            ("allowed", true, None),
            "a forward names enforcing rules only"
        );
        assert_eq!(
            decide_reason(&s, "good.example", None, None),
            ("allowed", true, None)
        );
        // Without dry-run rules, nothing changes.
        let plain = snapshot();
        assert!(!plain.has_dry_run());
    }

    #[test]
    fn digests() {
        let d = domain_digest("bad.example");
        assert_eq!(parse_digest_hex(&digest_hex(&d)), Some(d));
        assert_eq!(
            parse_digest_hex(&digest_hex(&d).to_ascii_uppercase()),
            Some(d)
        );
        assert_eq!(parse_digest_hex("abc"), None);
        assert_eq!(parse_digest_hex(&"g".repeat(64)), None);
        // Known value: SHA-256("example.com").
        assert_eq!(
            digest_hex(&domain_digest("example.com")),
            "a379a6f6eeafb9a55e378c118034e2751e682fab9f2d30ab13d2125586ce1947"
        );
    }

    #[test]
    fn digest_rules_match_by_longest_suffix_across_kinds() {
        let s = Snapshot::from_rules([
            hashed("ba*.example", "bad.example", Severity::Suspend),
            rule("ok.bad.example", Severity::Noop, false),
            hashed(
                "sub***.ok.bad.example",
                "sub.ok.bad.example",
                Severity::Silence,
            ),
            rule("named.example", Severity::Noop, false),
            hashed("nam**.example", "named.example", Severity::Suspend),
            dry("preview.example", Severity::Noop, false),
            DomainRule {
                dry_run: true,
                ..hashed("pre****.example", "preview.example", Severity::Suspend)
            },
        ]);
        let domain = |h: &str| s.rule_for(h).map(|r| &*r.domain);
        // A digest of a parent domain covers its sub-domains.
        assert_eq!(domain("bad.example"), Some("ba*.example"));
        assert_eq!(domain("x.y.bad.example"), Some("ba*.example"));
        assert!(s.is_suspended("x.bad.example").is_some());
        // The obfuscated text itself is never matched by name.
        assert_eq!(domain("ba*.example"), None);
        // A longer named rule shadows a digest parent, and a longer digest shadows a name.
        assert_eq!(domain("a.ok.bad.example"), Some("ok.bad.example"));
        assert_eq!(
            domain("a.sub.ok.bad.example"),
            Some("sub***.ok.bad.example")
        );
        // Name and digest of the same domain: the harsher wins.
        assert_eq!(domain("named.example"), Some("nam**.example"));
        assert_eq!(domain("other.example"), None);
        // Dry-run digests are consulted only as dry run.
        assert_eq!(domain("preview.example"), None);
        assert_eq!(
            s.rule_for_including_dry_run("x.preview.example")
                .map(|r| &*r.domain),
            Some("pre****.example")
        );
        let all: Vec<&str> = s
            .matching_rules("a.sub.ok.bad.example")
            .map(|r| &*r.domain)
            .collect();
        assert_eq!(
            all,
            ["sub***.ok.bad.example", "ok.bad.example", "ba*.example"]
        );
        let all: Vec<&str> = s
            .matching_rules("preview.example")
            .map(|r| &*r.domain)
            .collect();
        assert_eq!(all, ["preview.example", "pre****.example"]);
        assert_eq!(s.matching_rules("good.example").count(), 0);
        assert_eq!(s.len(), 7);
    }

    #[test]
    fn diff_sees_digest_and_dry_run_rules() {
        let old = Snapshot::from_rules([hashed("a*.example", "ab.example", Severity::Suspend)]);
        let new = Snapshot::from_rules([
            hashed("a*.example", "ab.example", Severity::Silence),
            dry("preview.example", Severity::Suspend, false),
        ]);
        let c = old.diff(&new);
        assert_eq!(c.changed(Severity::Silence), 1);
        assert_eq!(c.added(Severity::Suspend), 1);
        assert!(new.diff(&new).is_empty());
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
            "suspend +2 -0 ~1, silence +0 -1 ~0, noop +0 -0 ~1, allow +0 -0 ~0, \
             exclude +0 -0 ~0, actor_suspend +0 -0 ~0"
        );
        assert!(new.diff(&new).is_empty());
    }

    fn entry(domain: &str) -> DomainEntry {
        DomainEntry {
            domain: domain.into(),
            comment: None,
            source: Arc::from("list.txt"),
            line: 1,
        }
    }

    fn actor(text: &str, dry_run: bool) -> ActorRule {
        ActorRule {
            actor: text.into(),
            pattern: ActorPattern::parse(text).expect(text),
            comment: None,
            dry_run,
            source: Arc::from("rules.toml"),
            line: 1,
        }
    }

    fn reason_of(s: &Snapshot, facts: Facts<'_>) -> &'static str {
        s.decide(&facts).reason()
    }

    #[test]
    fn exceptions_shadow_blocks_on_their_suffix_only() {
        let mut b = Snapshot::builder(PolicyMode::Blocklist, 1);
        b.rule(rule("bad.example", Severity::Suspend, false))
            .rule(rule("deep.ok.bad.example", Severity::Silence, false))
            .rule(rule("same.example", Severity::Suspend, false))
            .rule(dry("preview.example", Severity::Suspend, false))
            .rule(hashed(
                "ha****.example",
                "hashed.example",
                Severity::Suspend,
            ))
            .exception(entry("ok.bad.example"))
            .exception(entry("same.example"))
            .exception(entry("preview.example"))
            .exception(entry("hashed.example"));
        let s = b.build();
        let domain = |h: &str| s.rule_for(h).map(|r| &*r.domain);
        assert_eq!(domain("bad.example"), Some("bad.example"));
        assert_eq!(domain("x.bad.example"), Some("bad.example"));
        // The exception and everything under it: no rule from the parent.
        assert_eq!(domain("ok.bad.example"), None);
        assert_eq!(domain("a.ok.bad.example"), None);
        assert!(s.is_suspended("a.ok.bad.example").is_none());
        // A rule on a longer suffix than the exception still applies.
        assert_eq!(domain("x.deep.ok.bad.example"), Some("deep.ok.bad.example"));
        // An exception beats a rule on the same domain, named, by digest, or dry run.
        assert_eq!(domain("same.example"), None);
        assert_eq!(domain("hashed.example"), None);
        assert!(s.rule_for_including_dry_run("x.preview.example").is_none());
        assert_eq!(
            s.exception_for("a.ok.bad.example").map(|e| &*e.domain),
            Some("ok.bad.example")
        );
        let excluded: Vec<bool> = ["bad.example", "same.example", "ha****.example"]
            .iter()
            .map(|d| {
                let r = s.iter().find(|r| *r.domain == **d).expect(d);
                s.is_excluded(r)
            })
            .collect();
        assert_eq!(excluded, [false, true, true]);
        assert_eq!(
            reason_of(
                &s,
                Facts {
                    key_host: "ok.bad.example",
                    actor_host: Some("ok.bad.example"),
                    ..Facts::default()
                }
            ),
            "allowed"
        );
    }

    #[test]
    fn allowlist_mode_passes_allowed_domains_only_and_blocks_still_apply() {
        let mut b = Snapshot::builder(PolicyMode::Allowlist, 1);
        b.allow(entry("friend.example"))
            .allow(entry("mixed.example"))
            .allow(entry("192.0.2.1"))
            .rule(rule("bad.mixed.example", Severity::Suspend, false))
            .rule(rule("mixed.example", Severity::Noop, true));
        let s = b.build();
        let check = |h: &'static str| s.check_host(h, Party::KeyHost).map(|d| d.reason());
        assert_eq!(check("friend.example"), None);
        assert_eq!(check("a.friend.example"), None, "sub-domains are allowed");
        assert_eq!(check("stranger.example"), Some("not_allowed"));
        assert_eq!(check("friend.example.evil"), Some("not_allowed"));
        assert_eq!(check("bad.mixed.example"), Some("suspended_key_host"));
        assert_eq!(check("192.0.2.1"), None);
        let facts = |key: &'static str, actor: &'static str, kind| Facts {
            key_host: key,
            actor_host: Some(actor),
            activity_type: kind,
            ..Facts::default()
        };
        assert_eq!(
            reason_of(&s, facts("friend.example", "friend.example", None)),
            "allowed"
        );
        // A relayed activity: the actor's domain must be allowed too.
        let d = s.decide(&facts("friend.example", "stranger.example", None));
        assert_eq!(
            d,
            Decision::NotAllowed {
                party: Party::ActorHost,
                host: "stranger.example"
            }
        );
        assert!(!d.forwards() && d.rule().is_none() && d.origin().is_none());
        assert_eq!(
            reason_of(&s, facts("mixed.example", "bad.mixed.example", None)),
            "suspended_actor_host"
        );
        assert_eq!(
            reason_of(&s, facts("mixed.example", "mixed.example", Some("Flag"))),
            "reject_reports"
        );
        // Allow entries mean nothing in blocklist mode.
        let mut b = Snapshot::builder(PolicyMode::Blocklist, 1);
        b.allow(entry("friend.example"));
        let s = b.build();
        assert!(s.check_host("stranger.example", Party::KeyHost).is_none());
        assert!(s.allow_for("x.friend.example").is_some());
    }

    #[test]
    fn actor_rules_apply_to_the_actor_and_the_author() {
        let mut b = Snapshot::builder(PolicyMode::Blocklist, 1);
        b.actor(actor("@mallory@bad.example", false))
            .actor(actor("https://other.example/users/x", false))
            .actor(actor("@preview@bad.example", true))
            .rule(rule("silenced.example", Severity::Silence, false));
        let s = b.build();
        assert!(s.has_dry_run());
        let facts = |actor: &'static str, author: Option<&'static str>| Facts {
            key_host: "bad.example",
            actor_host: Some("bad.example"),
            activity_type: Some("Create"),
            actor: Some(actor),
            attributed_to: author,
        };
        let d = s.decide(&facts("https://bad.example/users/Mallory", None));
        assert_eq!(d.reason(), "actor_suspended");
        assert!(matches!(
            d,
            Decision::ActorSuspended {
                party: ActorParty::Actor,
                actor: "https://bad.example/users/Mallory",
                ..
            }
        ));
        assert_eq!(d.origin().map(|o| o.0), Some("@mallory@bad.example"));
        let d = s.decide(&facts(
            "https://bad.example/users/bob",
            Some("https://other.example/users/x"),
        ));
        assert!(matches!(
            d,
            Decision::ActorSuspended {
                party: ActorParty::AttributedTo,
                ..
            }
        ));
        assert_eq!(
            reason_of(&s, facts("https://bad.example/users/bob", None)),
            "allowed"
        );
        // Dry run: forwarded, with the reason it would have had.
        let d = s.decide(&facts("https://bad.example/@preview", None));
        assert!(d.forwards());
        assert_eq!(d.reason(), "actor_suspended");
        assert!(matches!(d.would(), Some(Decision::ActorSuspended { .. })));
        assert_eq!(d.actor_rule().map(|r| r.dry_run), Some(true));
        // A domain suspension decides before actor rules.
        let mut b = Snapshot::builder(PolicyMode::Blocklist, 1);
        b.actor(actor("@mallory@bad.example", false)).rule(rule(
            "bad.example",
            Severity::Suspend,
            false,
        ));
        let s = b.build();
        assert_eq!(
            reason_of(&s, facts("https://bad.example/users/mallory", None)),
            "suspended_key_host"
        );
        assert_eq!(
            s.actor_rule_for("https://bad.example/@mallory")
                .map(|r| r.actor.as_str()),
            Some("@mallory@bad.example")
        );
    }

    #[test]
    fn diff_counts_allows_exceptions_and_actors() {
        let mut b = Snapshot::builder(PolicyMode::Blocklist, 1);
        b.allow(entry("a.example"))
            .exception(entry("x.example"))
            .actor(actor("@m@bad.example", false))
            .actor(actor("@gone@bad.example", false));
        let old = b.build();
        let mut changed = actor("@m@bad.example", false);
        changed.comment = Some("now with a reason".into());
        let mut b = Snapshot::builder(PolicyMode::Blocklist, 1);
        b.allow(entry("a.example"))
            .allow(entry("b.example"))
            .actor(changed)
            .actor(actor("@new@bad.example", true));
        let new = b.build();
        let c = old.diff(&new);
        assert_eq!(
            (c.added(RuleKind::Allow), c.removed(RuleKind::Allow)),
            (1, 0)
        );
        assert_eq!(c.removed(RuleKind::Exclude), 1);
        assert_eq!(
            (
                c.added(RuleKind::ActorSuspend),
                c.removed(RuleKind::ActorSuspend),
                c.changed(RuleKind::ActorSuspend)
            ),
            (1, 1, 1)
        );
        assert!(new.diff(&new).is_empty());
        assert!(new.is_empty(), "no domain rules");
        assert_eq!(
            (new.iter_allows().count(), new.iter_actors().count()),
            (2, 2)
        );
    }

    #[test]
    fn withheld_rules_are_never_matched_but_listed() {
        let mut b = Snapshot::builder(PolicyMode::Blocklist, 2);
        b.withhold(rule("bad.example", Severity::Suspend, false))
            .withhold(hashed("ha***.example", "hashed.example", Severity::Silence));
        let s = b.build();
        assert!(s.rule_for("x.bad.example").is_none());
        assert_eq!(s.subscription_threshold(), 2);
        let listed: Vec<&str> = s
            .withheld_rules("x.bad.example")
            .iter()
            .map(|r| &*r.domain)
            .collect();
        assert_eq!(listed, ["bad.example"]);
        assert_eq!(s.withheld_rules("hashed.example").len(), 1);
        assert_eq!(s.iter_withheld().count(), 2);
    }
}

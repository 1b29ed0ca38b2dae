//! The policy vocabulary: severities, domain rules and entries, rule kinds, the policy mode
//! and domain digests, as every other part of `policy` (and the rest of the proxy) names them.

use serde::Deserialize;
use std::fmt;
use std::sync::Arc;

/// Mastodon's domain-block severities, ordered from mildest to harshest. In the config
/// (`max_severity`, `severity_map`) by the words Mastodon uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
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
pub(crate) fn parse_digest_hex(text: &str) -> Option<DomainDigest> {
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
/// Every field is sized for 100,000 of these living in a snapshot, twice over during a
/// reload: text is `Box<str>` (no spare capacity, 16 bytes), and the digest, which
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
    /// Shared between the rules of one file that give the same comment (see
    /// `Collector::comment`): lists repeat a handful of reasons over thousands of domains.
    pub public_comment: Option<Arc<str>>,
    /// From the source's `dry_run`: the rule is matched and reported, never enforced.
    pub dry_run: bool,
    /// File the rule came from, and its 1-based line (a rule file is at most 64 MiB, so
    /// 32 bits always hold it).
    pub source: Arc<str>,
    pub line: u32,
}

// 64 bytes (112, then 72 before): each byte here is 100 KB per 100,000 rules in the
// snapshot's vector of rules, paid again by the parsed rules and the next snapshot during a
// reload (BENCHMARKS.md: peak RSS under 64 MiB). Grow it only with a measurement.
const _: () = assert!(std::mem::size_of::<DomainRule>() <= 64);

impl DomainRule {
    /// The 1-based line, as the rest of the program counts lines.
    pub fn line_number(&self) -> usize {
        usize::try_from(self.line).unwrap_or(usize::MAX)
    }

    /// `line` (1-based) as a rule keeps it.
    pub(crate) fn line_of(line: usize) -> u32 {
        u32::try_from(line).unwrap_or(u32::MAX)
    }

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

    /// A rule for tests: `domain` at `severity`, no flags, from `test.csv` line 1.
    #[cfg(test)]
    pub(crate) fn test(domain: &str, severity: Severity) -> DomainRule {
        DomainRule {
            domain: domain.into(),
            digest: None,
            severity,
            reject_media: false,
            reject_reports: false,
            public_comment: None,
            dry_run: false,
            source: Arc::from("test.csv"),
            line: 1,
        }
    }

    /// Same effect on traffic and on Mastodon's list; where it is written does not matter.
    pub(super) fn same_effect(&self, other: &DomainRule) -> bool {
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
    pub comment: Option<Arc<str>>,
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

    pub(super) fn index(self) -> usize {
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

/// `[policy] mode`: how allow entries count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Everything not blocked passes.
    #[default]
    Blocklist,
    /// Mastodon's limited federation mode: only domains an allow entry names pass;
    /// blocks still apply.
    Allowlist,
}

impl PolicyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyMode::Blocklist => "blocklist",
            PolicyMode::Allowlist => "allowlist",
        }
    }
}

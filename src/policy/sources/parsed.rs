//! What parsing a rule source yields: the formats, the parsed rules with what was skipped,
//! the errors, and the limits every format shares.

use crate::policy::content::ContentRule;
use crate::policy::escalation::{FriendlyFederatorSettings, Window};
use crate::policy::rate::RateOverride;
use crate::policy::{ActorRule, DomainEntry, DomainRule};
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;

/// Larger files are refused: a rule file is read whole into memory on every reload.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Longer lines are refused: no domain plus comment needs more, and it bounds a runaway field.
pub(crate) const MAX_LINE_BYTES: usize = 4096;
/// The header line of Mastodon's admin export (`Admin::ExportDomainBlocksController`).
pub const MASTODON_HEADER: &str =
    "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate";

/// The format a file was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    MastodonCsv,
    Plain,
    /// inboxguard's TOML rules file (`toml`).
    Toml,
    /// A JSON array of domain-block objects (`parse_json_bytes`).
    Json,
    /// A Fediseer censures or hesitations answer (`parse_fediseer_bytes`).
    Fediseer,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::MastodonCsv => "mastodon-csv",
            Format::Plain => "plain",
            Format::Toml => "toml",
            Format::Json => "json",
            Format::Fediseer => "fediseer",
        }
    }
}

/// One file's rules and what was skipped on the way.
#[derive(Debug, Clone)]
pub struct ParsedSource {
    pub format: Format,
    /// Domain (block) rules: one per domain, in file order of first appearance.
    pub rules: Vec<DomainRule>,
    /// Allowed domains (`kind = "allow"`, or a TOML file's `[[allow]]`).
    pub allows: Vec<DomainEntry>,
    /// Exceptions (a TOML file's `[[exclude]]`; a source marked `exclude` turns its `rules`
    /// into exceptions at load time instead).
    pub exceptions: Vec<DomainEntry>,
    /// Actor rules (a TOML file's `[[actor]]`).
    pub actors: Vec<ActorRule>,
    /// A TOML file's `[friendly_federators]` table.
    pub friendly_federators: Option<FriendlyFederatorSettings>,
    /// A TOML file's `[[content_rules]]`, in file order.
    pub content_rules: Vec<ContentRule>,
    /// A TOML file's `[[rate_limits]]`: per-domain fair-share overrides.
    pub rate_limits: Vec<RateOverride>,
    /// Entries containing `*` without a digest that were skipped, and the line of the first.
    pub obfuscated: usize,
    pub first_obfuscated_line: Option<usize>,
    /// Repeated domains (the harsher rule kept), and the line of the first repeat.
    pub duplicates: usize,
    pub first_duplicate_line: Option<usize>,
}

/// A rule file that could not be used. `Display`: `file:line: message`, or `file: message`
/// for problems with the file as a whole.
#[derive(Debug, Clone)]
pub struct LoadError {
    /// The source path as configured.
    pub file: String,
    /// 1-based; 0 when the problem is not on one line (unreadable, too large).
    pub line: usize,
    pub kind: LoadErrorKind,
}

/// What was wrong with a rule file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadErrorKind {
    /// The file could not be opened or read (shared so the error stays `Clone`).
    #[error("cannot read: {0}")]
    Read(Arc<std::io::Error>),
    /// The file is over `MAX_FILE_BYTES`.
    #[error("file is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    /// A line is over `MAX_LINE_BYTES`.
    #[error("line is {bytes} bytes long; the limit is {MAX_LINE_BYTES}")]
    LineTooLong { bytes: usize },
    /// The file is not UTF-8 (the line is where the first bad byte is).
    #[error("not valid UTF-8")]
    NotUtf8,
    /// `format = "mastodon-csv"` was configured but the first line is not Mastodon's header.
    #[error("expected Mastodon's header {MASTODON_HEADER:?}")]
    MissingHeader,
    /// The CSV reader failed on the file's structure.
    #[error("malformed CSV: {0}")]
    Csv(Arc<::csv::Error>),
    /// A quoted field that runs past the end of its line: an unclosed quote that would swallow
    /// the rows after it.
    #[error("a quoted field runs past the end of its line (an unclosed \")")]
    UnclosedQuote,
    /// A row with more fields than the header has columns (an unquoted comma in a comment, or
    /// a broken quote).
    #[error("row has {fields} fields; the header has {columns} columns")]
    TooManyFields { fields: usize, columns: usize },
    /// A new version that would remove more than the source's `max_shrink` share of its
    /// entries (or all of them): held back until an operator accepts it.
    #[error("would remove {} of its {before} entries (leaving {after}), more than max_shrink = {max_shrink}; held back until an operator accepts it (`inboxguard accept` or POST /admin/sources/<name>/accept)", before - after)]
    Shrink {
        before: usize,
        after: usize,
        max_shrink: f64,
    },
    /// A domain that `host::normalize` refuses.
    #[error("invalid domain {text:?}")]
    InvalidDomain { text: String },
    /// A plain-list line with a comma: most likely a CSV whose header line is missing.
    #[error("invalid domain {text:?}: read as a plain list (one domain per line); a Mastodon CSV needs its header {MASTODON_HEADER:?} on the first line")]
    CsvWithoutHeader { text: String },
    /// A `#digest` value, or a `sha256:` entry, that is not 64 hex digits.
    #[error("invalid SHA-256 digest {text:?} (expected 64 hex digits)")]
    InvalidDigest { text: String },
    /// A `#severity` other than suspend, silence or noop.
    #[error("unknown severity {value:?} (expected suspend, silence or noop)")]
    UnknownSeverity { value: String },
    /// A boolean column with a value that is neither true-ish nor false-ish.
    #[error("{column}: {value:?} is not a boolean (true/false, t/f, 1/0, yes/no, on/off)")]
    InvalidBoolean { column: &'static str, value: String },
    /// A `sha256:` or obfuscated entry where only a named domain works (allow lists and
    /// exceptions are looked up by name).
    #[error("{text:?}: only block rules can be given by digest; name the domain")]
    DigestNotAllowed { text: String },
    /// A TOML rules file that is not valid TOML or does not have the expected shape (toml's
    /// message, without its excerpt).
    #[error("{message}")]
    Toml { message: String },
    /// An `[[actor]]` entry that is neither an http(s) actor URI nor `@user@host`.
    #[error("invalid actor {text:?} (expected an https:// actor URI or @user@host)")]
    InvalidActor { text: String },
    /// A `window` that is not a number followed by s, m, h, d or w.
    #[error("invalid duration {text:?} (expected e.g. \"30m\", \"12h\", \"7d\")")]
    InvalidDuration { text: String },
    /// A `window` that is not a whole number of days, or over `MAX_WINDOW_DAYS`.
    #[error("{}", Window::refusal(text))]
    InvalidWindow { text: String },
    /// A second source with a `[friendly_federators]` table (the first one is `first`).
    #[error("[friendly_federators] is already set in {first}; keep it in one rules file")]
    DuplicateFriendlyFederators { first: String },
    /// A `[[rate_limits]]` entry with a zero rate or burst.
    #[error("rate limit: {message}")]
    InvalidRateLimit { message: String },
    /// A `[[content_rules]]` entry that does not check out (a bad regex, action, time, ...).
    #[error("content rule: {message}")]
    InvalidContentRule { message: String },
    /// A JSON list that is not valid JSON, or an entry whose fields have the wrong types.
    #[error("malformed JSON: {0}")]
    Json(Arc<serde_json::Error>),
    /// A JSON list whose top level is not an array.
    #[error("expected a JSON array of domain entries")]
    NotJsonArray,
    /// A JSON entry without a `domain` string.
    #[error("entry has no \"domain\" string")]
    MissingDomain,
    /// `format = "fediseer"` on something that is not one of Fediseer's list answers.
    #[error("expected Fediseer's answer: a JSON object with an \"instances\", \"domains\" or \"csv\" field")]
    NotFediseerAnswer,
    /// `min_censures` on an answer without counts (`?domains=true` or `?csv=true`).
    #[error("min_censures needs each instance's {}, which only the full answer has: drop ?domains=true / ?csv=true from the URL, or drop min_censures", list.count_field())]
    FediseerNoCounts { list: super::FediseerList },
    /// A full-form entry of the other list than the source says (a hesitations answer read as
    /// censures would suspend what its authors only meant to limit).
    #[error("this entry is from Fediseer's {} list, but the source says fediseer = \"{}\"", configured.other().as_str(), configured.as_str())]
    FediseerWrongList { configured: super::FediseerList },
}

impl LoadError {
    /// `kind` at `line` (0: the file as a whole) of the source labelled `file`.
    pub fn new(file: &str, (line, kind): (usize, LoadErrorKind)) -> LoadError {
        LoadError {
            file: file.to_string(),
            line,
            kind,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.kind)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.kind)
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

impl ParsedSource {
    /// An empty source of `format`, to fill in (for sources built in memory).
    pub fn new(format: Format) -> ParsedSource {
        ParsedSource {
            format,
            rules: Vec::new(),
            allows: Vec::new(),
            exceptions: Vec::new(),
            actors: Vec::new(),
            friendly_federators: None,
            content_rules: Vec::new(),
            rate_limits: Vec::new(),
            obfuscated: 0,
            first_obfuscated_line: None,
            duplicates: 0,
            first_duplicate_line: None,
        }
    }

    /// Entries of every kind this source lists.
    pub fn len(&self) -> usize {
        self.rules.len() + self.allows.len() + self.exceptions.len() + self.actors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlocklistFormat {
    /// A TOML rules file if the name ends in `.toml`; else Mastodon's CSV if the first line
    /// is its header (`#domain,...`); else a plain list.
    #[default]
    Auto,
    MastodonCsv,
    Plain,
    /// inboxguard's TOML rules file (domain, allow, exclude and actor rules, per-rule dry run,
    /// friendly-federator settings).
    Toml,
    /// A Fediseer censures or hesitations answer saved to a file (the source's `fediseer`
    /// setting says which).
    Fediseer,
}

/// What the domains of a CSV or plain source are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Domain blocks (`domain_blocks.csv`, or one domain per line = suspend).
    #[default]
    Block,
    /// Allowed domains (`domain_allows.csv` with its `#domain` header, or one per line).
    Allow,
    /// Exceptions: the domains are exempt from every other source's block rules (as
    /// `exclude = true`).
    Exception,
}

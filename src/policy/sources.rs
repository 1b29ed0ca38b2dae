//! Rule files → rules: Mastodon's `domain_blocks.csv` export, Mastodon's `domain_allows.csv`,
//! a plain one-domain-per-line list, or inboxguard's TOML rules file (`rules_file`), each rule
//! carrying its file and line.
//!
//! A CSV or plain source holds block rules, or allowed domains when configured with
//! `kind = "allow"` (Mastodon's `domain_allows.csv` is a `#domain` header and one domain per
//! row; any other column is ignored). A TOML file says per entry what it holds.
//!
//! Formats (`BlocklistFormat::Auto` picks TOML by a `.toml` name, then by the first line, as
//! Mastodon's import does):
//! * **Mastodon CSV**: the first line's first field is `#domain` (the export writes
//!   `#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate`). Columns are
//!   found by header name, so a shorter header or a different order works and unknown columns
//!   (e.g. `#private_comment` from other tools) are ignored. A missing or empty column means
//!   severity `suspend` and flags `false`, as Mastodon's import.
//! * **Plain**: one domain per line, severity `suspend`; blank lines and whole-line `#`
//!   comments are ignored, and a `#` comment after a domain is its rule's public comment.
//!
//! * **JSON** (`parse_json_bytes`, chosen by the caller, never by `Auto`): an array of objects
//!   as Mastodon's admin and public APIs and GoToSocial's export write them.
//!
//! All: a UTF-8 byte-order mark is ignored, CRLF line endings are fine, each domain goes
//! through `host::normalize` and an invalid one is an error naming the line.
//!
//! Obfuscated entries: Mastodon's public list writes `exam***.com` for blocks marked obfuscate,
//! with the SHA-256 hex digest of the real (normalised) domain next to it. Such an entry is
//! matched by digest when its digest is given: in Mastodon CSV by an optional `#digest` column
//! (read only for entries containing `*`), and in either format as an entry written
//! `sha256:<64 hex digits>`. An entry containing `*` without a digest cannot be matched, so it is
//! skipped and counted in `ParsedSource::obfuscated` rather than failing the whole file; this
//! also covers wildcard entries like `*.bad.example`, which Mastodon itself refuses
//! (sub-domains are covered by the parent entry anyway). A malformed digest is an error.
//!
//! A domain listed twice in one file keeps the harsher rule (`DomainRule::is_harsher_than`)
//! and is counted in `ParsedSource::duplicates`.

use super::{digest_hex, host, parse_digest_hex, ActorRule, DomainEntry, DomainRule, Severity};
use super::{rules_file, FriendlyFederatorSettings};
use crate::config::{BlocklistFormat, SourceKind};
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::hash_map::Entry as Slot;
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Larger files are refused: a rule file is read whole into memory on every reload.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Longer lines are refused: no domain plus comment needs more, and it bounds a runaway field.
pub const MAX_LINE_BYTES: usize = 4096;
/// The header line of Mastodon's admin export (`Admin::ExportDomainBlocksController`).
pub const MASTODON_HEADER: &str =
    "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate";

/// The format a file was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    MastodonCsv,
    Plain,
    /// inboxguard's TOML rules file (`rules_file`).
    Toml,
    /// A JSON array of domain-block objects (`parse_json_bytes`).
    Json,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::MastodonCsv => "mastodon-csv",
            Format::Plain => "plain",
            Format::Toml => "toml",
            Format::Json => "json",
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
    Csv(Arc<csv::Error>),
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
    /// A second source with a `[friendly_federators]` table (the first one is `first`).
    #[error("[friendly_federators] is already set in {first}; keep it in one rules file")]
    DuplicateFriendlyFederators { first: String },
    /// A JSON list that is not valid JSON, or an entry whose fields have the wrong types.
    #[error("malformed JSON: {0}")]
    Json(Arc<serde_json::Error>),
    /// A JSON list whose top level is not an array.
    #[error("expected a JSON array of domain entries")]
    NotJsonArray,
    /// A JSON entry without a `domain` string.
    #[error("entry has no \"domain\" string")]
    MissingDomain,
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

/// Reads and parses one block-rule (or TOML) file. The file's label in rules and errors is
/// `path` as given.
pub fn parse_file(path: &Path, format: BlocklistFormat) -> Result<ParsedSource, LoadError> {
    parse_file_as(path, format, SourceKind::Block)
}

/// Reads and parses one rule file whose CSV or plain entries are of `kind`.
pub fn parse_file_as(
    path: &Path,
    format: BlocklistFormat,
    kind: SourceKind,
) -> Result<ParsedSource, LoadError> {
    let bytes = read_file(path)?;
    parse_bytes_as(&bytes, Arc::from(path.display().to_string()), format, kind)
}

/// Reads one rule file whole, refusing one over `MAX_FILE_BYTES`. Apart from `parse_file_as`
/// so a reload can keep a file's last good bytes and parse them again later.
pub fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    let label = path.display().to_string();
    let fail = |kind| LoadError {
        file: label.clone(),
        line: 0,
        kind,
    };
    let read = |e| fail(LoadErrorKind::Read(Arc::new(e)));
    let file = std::fs::File::open(path).map_err(read)?;
    if file.metadata().map_err(read)?.len() > MAX_FILE_BYTES {
        return Err(fail(LoadErrorKind::TooLarge));
    }
    // The size check above can race with a writer; the `take` bound cannot.
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(LoadErrorKind::TooLarge));
    }
    Ok(bytes)
}

/// Parses one block-rule (or TOML) file's contents; `source` labels the rules and errors.
pub fn parse_bytes(
    bytes: &[u8],
    source: Arc<str>,
    format: BlocklistFormat,
) -> Result<ParsedSource, LoadError> {
    parse_bytes_as(bytes, source, format, SourceKind::Block)
}

/// Parses one rule file's contents whose CSV or plain entries are of `kind`: block rules, or
/// allowed domains (Mastodon's `domain_allows.csv`: header `#domain`, one domain per row; or
/// a plain list). `Auto` reads a TOML rules file when `source` ends in `.toml`.
pub fn parse_bytes_as(
    bytes: &[u8],
    source: Arc<str>,
    format: BlocklistFormat,
    kind: SourceKind,
) -> Result<ParsedSource, LoadError> {
    let fail = |line, kind| LoadError {
        file: source.to_string(),
        line,
        kind,
    };
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(0, LoadErrorKind::TooLarge));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = line_of_offset(bytes, e.valid_up_to());
        fail(line, LoadErrorKind::NotUtf8)
    })?;
    let mut lines = 0;
    for (i, line) in text.split('\n').enumerate() {
        lines = i + 1;
        if line.len() > MAX_LINE_BYTES {
            return Err(fail(
                i + 1,
                LoadErrorKind::LineTooLong { bytes: line.len() },
            ));
        }
    }
    let first_field_is_domain = has_mastodon_header(bytes);
    let toml_name = source
        .rsplit_once('.')
        .is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("toml"));
    let format = match format {
        BlocklistFormat::Toml => Format::Toml,
        BlocklistFormat::Auto if toml_name => Format::Toml,
        BlocklistFormat::Auto if first_field_is_domain => Format::MastodonCsv,
        BlocklistFormat::Auto | BlocklistFormat::Plain => Format::Plain,
        BlocklistFormat::MastodonCsv if first_field_is_domain => Format::MastodonCsv,
        BlocklistFormat::MastodonCsv => return Err(fail(1, LoadErrorKind::MissingHeader)),
    };
    let mut out = Collector::new(format, source.clone());
    if matches!(format, Format::MastodonCsv | Format::Plain) {
        // At most one rule per line: one allocation of the final size instead of doubling,
        // which held the old and new buffers (7 + 14 MB for 100,000 rules) at once.
        out.parsed.rules.reserve_exact(lines);
    }
    match format {
        Format::MastodonCsv => parse_csv(text, &mut out),
        Format::Plain => parse_plain(text, &mut out),
        Format::Toml => rules_file::parse(text, &mut out),
        Format::Json => parse_json_into(text, &mut out),
    }
    .map_err(|(line, kind)| fail(line, kind))?;
    let mut parsed = out.finish();
    if kind == SourceKind::Allow && format != Format::Toml {
        let rules = std::mem::take(&mut parsed.rules);
        parsed.allows = entries_of(rules).map_err(|(line, kind)| fail(line, kind))?;
    }
    Ok(parsed)
}

/// Whether the first line's first field is `#domain` (a byte-order mark ignored): how `Auto`
/// tells Mastodon's CSV export from a plain list, for files and subscriptions alike.
pub fn has_mastodon_header(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let field = line.split(|&b| b == b',').next().unwrap_or_default();
    field.trim_ascii().eq_ignore_ascii_case(b"#domain")
}

/// Domain rules read from an allow or exception list, as named entries (the comment kept).
pub(crate) fn entries_of(rules: Vec<DomainRule>) -> Result<Vec<DomainEntry>, LineError> {
    rules
        .into_iter()
        .map(|rule| match rule.digest {
            Some(_) => Err((
                rule.line,
                LoadErrorKind::DigestNotAllowed {
                    text: rule.domain.into(),
                },
            )),
            None => Ok(DomainEntry {
                domain: rule.domain,
                comment: rule.public_comment,
                source: rule.source,
                line: rule.line,
            }),
        })
        .collect()
}

/// Failures inside one format's parser, before the file name is attached.
pub(super) type LineError = (usize, LoadErrorKind);

/// A comment after the domain (`bad.example # spam`) becomes the rule's public comment, so
/// `explain` shows it as it shows a CSV's; whole-line comments belong to no rule.
fn parse_plain(text: &str, out: &mut Collector) -> Result<(), LineError> {
    for (i, line) in text.lines().enumerate() {
        let (domain, comment) = line.split_once('#').unwrap_or((line, ""));
        let (domain, comment) = (domain.trim(), comment.trim());
        if domain.is_empty() {
            continue;
        }
        if domain.contains(',') {
            let text = domain.to_string();
            return Err((i + 1, LoadErrorKind::CsvWithoutHeader { text }));
        }
        let entry = Entry {
            public_comment: (!comment.is_empty()).then(|| comment.to_string()),
            ..Entry::default()
        };
        out.push(i + 1, domain, entry)?;
    }
    Ok(())
}

/// Column positions found in a Mastodon CSV header.
#[derive(Default)]
struct Columns {
    domain: usize,
    severity: Option<usize>,
    reject_media: Option<usize>,
    reject_reports: Option<usize>,
    public_comment: Option<usize>,
    digest: Option<usize>,
}

fn parse_csv(text: &str, out: &mut Collector) -> Result<(), LineError> {
    let csv_error = |e: csv::Error| {
        let line = e
            .position()
            .map_or(0, |p| usize::try_from(p.line()).unwrap_or(usize::MAX));
        (line, LoadErrorKind::Csv(Arc::new(e)))
    };
    // The CSV reader miscounts record lines after CRLF terminators; LF-only text keeps every
    // line number right (a quoted CRLF inside a comment becomes LF, which is harmless).
    let text: Cow<'_, str> = if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(text)
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut columns = Columns::default();
    for (i, name) in reader.headers().map_err(csv_error)?.iter().enumerate() {
        let slot = match name.to_ascii_lowercase().as_str() {
            "#domain" => {
                columns.domain = i;
                continue;
            }
            "#severity" => &mut columns.severity,
            "#reject_media" => &mut columns.reject_media,
            "#reject_reports" => &mut columns.reject_reports,
            "#public_comment" => &mut columns.public_comment,
            "#digest" => &mut columns.digest,
            _ => continue,
        };
        *slot = Some(i);
    }
    let lines = LineCursor::new(text.as_bytes());
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(csv_error)? {
        // A line of only commas or spaces is an empty row, not an entry.
        if record.iter().all(str::is_empty) {
            continue;
        }
        // From the byte offset: the reader counts a blank line before a record as part of
        // it (its line and its start), so skip the line breaks it begins with.
        let line = record.position().map_or(0, |p| {
            let start = usize::try_from(p.byte()).unwrap_or(usize::MAX);
            let skipped = text
                .as_bytes()
                .get(start..)
                .map_or(0, |rest| rest.iter().take_while(|&&b| b == b'\n').count());
            lines.line(start.saturating_add(skipped))
        });
        let field = |i: Option<usize>| i.and_then(|i| record.get(i)).filter(|v| !v.is_empty());
        let severity = match field(columns.severity) {
            None => Severity::Suspend,
            Some(value) => Severity::parse(value).ok_or_else(|| {
                (
                    line,
                    LoadErrorKind::UnknownSeverity {
                        value: value.to_string(),
                    },
                )
            })?,
        };
        let flag = |column: &'static str, i: Option<usize>| match field(i) {
            None => Ok(false),
            Some(value) => parse_bool(value).ok_or_else(|| {
                (
                    line,
                    LoadErrorKind::InvalidBoolean {
                        column,
                        value: value.to_string(),
                    },
                )
            }),
        };
        let entry = Entry {
            severity,
            reject_media: flag("#reject_media", columns.reject_media)?,
            reject_reports: flag("#reject_reports", columns.reject_reports)?,
            public_comment: field(columns.public_comment).map(str::to_string),
            digest: field(columns.digest).map(str::to_string),
        };
        let domain = record.get(columns.domain).unwrap_or_default();
        out.push(line, domain, entry)?;
    }
    Ok(())
}

/// Rails' boolean casting as Mastodon's import applies it, made strict: Rails treats any
/// unknown word (even `no`) as true, which would silently turn a typo into a harsher rule, so
/// unknown words are errors here and matching ignores case.
fn parse_bool(value: &str) -> Option<bool> {
    const TRUE: &[&str] = &["true", "t", "1", "yes", "y", "on"];
    const FALSE: &[&str] = &["false", "f", "0", "no", "n", "off"];
    let is = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(value));
    if is(TRUE) {
        Some(true)
    } else if is(FALSE) {
        Some(false)
    } else {
        None
    }
}

/// The columns of one entry other than its domain.
pub(super) struct Entry {
    pub(super) severity: Severity,
    pub(super) reject_media: bool,
    pub(super) reject_reports: bool,
    pub(super) public_comment: Option<String>,
    /// The `#digest` column's text, for an obfuscated entry.
    pub(super) digest: Option<String>,
}

impl Default for Entry {
    /// A plain-list entry, or a CSV row with only a domain: Mastodon's import default.
    fn default() -> Self {
        Entry {
            severity: Severity::Suspend,
            reject_media: false,
            reject_reports: false,
            public_comment: None,
            digest: None,
        }
    }
}

/// Accumulates one file's rules, counting skips; duplicates are folded once at the end.
pub(super) struct Collector {
    pub(super) source: Arc<str>,
    pub(super) parsed: ParsedSource,
}

impl Collector {
    fn new(format: Format, source: Arc<str>) -> Collector {
        Collector {
            source,
            parsed: ParsedSource::new(format),
        }
    }

    /// Adds one domain rule; `Ok(false)` when it was skipped (`*` without a digest).
    pub(super) fn push(
        &mut self,
        line: usize,
        text: &str,
        entry: Entry,
    ) -> Result<bool, LineError> {
        let bad_digest = |text: &str| {
            (
                line,
                LoadErrorKind::InvalidDigest {
                    text: text.to_string(),
                },
            )
        };
        let prefixed = text
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("sha256:"))
            .map(|_| &text[7..]);
        let (domain, digest) = if let Some(hex) = prefixed {
            let digest = parse_digest_hex(hex.trim()).ok_or_else(|| bad_digest(text))?;
            (format!("sha256:{}", digest_hex(&digest)), Some(digest))
        } else if text.contains('*') {
            let Some(hex) = entry.digest.as_deref() else {
                self.parsed.obfuscated += 1;
                self.parsed.first_obfuscated_line.get_or_insert(line);
                return Ok(false);
            };
            let digest = parse_digest_hex(hex).ok_or_else(|| bad_digest(hex))?;
            (text.to_ascii_lowercase(), Some(digest))
        } else {
            let domain = host::normalize(text).ok_or_else(|| {
                (
                    line,
                    LoadErrorKind::InvalidDomain {
                        text: text.to_string(),
                    },
                )
            })?;
            (domain, None)
        };
        self.parsed.rules.push(DomainRule {
            domain: domain.into_boxed_str(),
            severity: entry.severity,
            reject_media: entry.reject_media,
            reject_reports: entry.reject_reports,
            public_comment: entry.public_comment.map(String::into_boxed_str),
            digest: digest.map(Box::new),
            dry_run: false,
            source: self.source.clone(),
            line,
        });
        Ok(true)
    }

    /// Keeps one rule per domain, at the place of its first appearance: the harsher one, or on
    /// a tie the first. The index borrows the domains already parsed instead of copying each
    /// one into a map key (a 100,000-line file would allocate 100,000 more strings).
    pub(super) fn finish(mut self) -> ParsedSource {
        let all = std::mem::take(&mut self.parsed.rules);
        // For each first appearance, the index of the rule in force for its domain.
        let mut winner: Vec<Option<usize>> = vec![None; all.len()];
        let mut first: HashMap<Key<'_>, usize> = HashMap::with_capacity(all.len());
        for (i, rule) in all.iter().enumerate() {
            // Two obfuscated entries may read the same (`exam***.com`): their digest tells
            // them apart.
            let key = match rule.digest.as_deref() {
                Some(digest) => Key::Digest(digest),
                None => Key::Name(&rule.domain),
            };
            match first.entry(key) {
                Slot::Vacant(slot) => {
                    slot.insert(i);
                    winner[i] = Some(i);
                }
                Slot::Occupied(slot) => {
                    let f = *slot.get();
                    self.parsed.duplicates += 1;
                    self.parsed.first_duplicate_line.get_or_insert(rule.line);
                    let current = winner[f].unwrap_or(f);
                    if rule.is_harsher_than(&all[current]) {
                        winner[f] = Some(i);
                    }
                }
            }
        }
        drop(first);
        if self.parsed.duplicates == 0 {
            self.parsed.rules = all;
            return self.parsed;
        }
        let mut slots: Vec<Option<DomainRule>> = all.into_iter().map(Some).collect();
        let mut rules = Vec::with_capacity(slots.len() - self.parsed.duplicates);
        rules.extend(winner.iter().flatten().filter_map(|&w| slots[w].take()));
        self.parsed.rules = rules;
        self.parsed
    }
}

/// What makes two entries of one file the same rule.
#[derive(PartialEq, Eq, Hash)]
enum Key<'a> {
    Name(&'a str),
    Digest(&'a super::DomainDigest),
}

/// The fields of one JSON list entry that rules use; every other field (`id`, `created_at`,
/// `private_comment`, `obfuscate`, ...) is ignored. `comment` is the public API's name for the
/// public comment.
#[derive(serde::Deserialize)]
struct JsonEntry {
    domain: Option<String>,
    severity: Option<String>,
    reject_media: Option<serde_json::Value>,
    reject_reports: Option<serde_json::Value>,
    public_comment: Option<String>,
    comment: Option<String>,
    digest: Option<String>,
}

/// Parses a JSON domain-block list: a top-level array of objects, as served by Mastodon's
/// admin API (`GET /api/v1/admin/domain_blocks`), Mastodon's public list
/// (`GET /api/v1/instance/domain_blocks`, obfuscated entries carrying `digest`) and
/// GoToSocial's export (no `severity`: every entry is a suspend). A missing `severity` means
/// suspend and missing flags `false`, as for CSV; booleans may be JSON booleans or the words
/// CSV accepts. "Lines" in errors and rules are the line where the entry starts (API answers are
/// often one line, so every entry of such a list reports line 1; the error text names the entry).
pub fn parse_json_bytes(bytes: &[u8], source: Arc<str>) -> Result<ParsedSource, LoadError> {
    let text = json_text(bytes, &source)?;
    let mut out = Collector::new(Format::Json, source.clone());
    parse_json_into(text, &mut out).map_err(|(line, kind)| LoadError {
        file: source.to_string(),
        line,
        kind,
    })?;
    Ok(out.finish())
}

/// One domain of a domain-allow list (Mastodon's `GET /api/v1/admin/domain_allows`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    /// Normalised with `host::normalize`.
    pub domain: String,
    /// The line where the entry starts.
    pub line: usize,
}

/// Parses a JSON domain-allow list: a top-level array of objects with a `domain` string
/// (Mastodon's admin API answer; `id` and `created_at` are ignored). A domain listed twice is
/// kept once, at its first place. Allows carry no digest: an entry containing `*` is invalid.
pub fn parse_allow_json_bytes(bytes: &[u8], source: &str) -> Result<Vec<AllowEntry>, LoadError> {
    let fail = |(line, kind)| LoadError {
        file: source.to_string(),
        line,
        kind,
    };
    let text = json_text(bytes, source)?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (line, entry) in json_entries(text).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let text = entry
            .domain
            .ok_or((line, LoadErrorKind::MissingDomain))
            .map_err(fail)?;
        let domain = host::normalize(&text)
            .ok_or_else(|| fail((line, LoadErrorKind::InvalidDomain { text })))?;
        if seen.insert(domain.clone()) {
            out.push(AllowEntry { domain, line });
        }
    }
    Ok(out)
}

/// The UTF-8 text of a JSON list, size-checked, without a byte-order mark.
fn json_text<'a>(bytes: &'a [u8], source: &str) -> Result<&'a str, LoadError> {
    let fail = |line, kind| LoadError {
        file: source.to_string(),
        line,
        kind,
    };
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(0, LoadErrorKind::TooLarge));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        fail(
            line_of_offset(bytes, e.valid_up_to()),
            LoadErrorKind::NotUtf8,
        )
    })
}

/// Splits a JSON array into its entries, each with the line it starts on, and decodes each
/// lazily (so an error names the entry's line).
#[allow(clippy::type_complexity)]
fn json_entries(
    text: &str,
) -> Result<impl Iterator<Item = (usize, Result<JsonEntry, LineError>)> + '_, LineError> {
    if !text.trim_start().starts_with('[') {
        let line = line_of_offset(text.as_bytes(), text.len() - text.trim_start().len());
        return Err((line, LoadErrorKind::NotJsonArray));
    }
    let raw: Vec<&serde_json::value::RawValue> =
        serde_json::from_str(text).map_err(|e| (e.line(), LoadErrorKind::Json(Arc::new(e))))?;
    // A RawValue borrows from `text`, so its address gives its offset: the entry's line.
    let base = text.as_ptr() as usize;
    let lines = LineCursor::new(text.as_bytes());
    Ok(raw.into_iter().map(move |value| {
        let offset = (value.get().as_ptr() as usize).saturating_sub(base);
        let line = lines.line(offset);
        let entry = serde_json::from_str::<JsonEntry>(value.get())
            .map_err(|e| (line + e.line() - 1, LoadErrorKind::Json(Arc::new(e))));
        (line, entry)
    }))
}

fn parse_json_into(text: &str, out: &mut Collector) -> Result<(), LineError> {
    for (line, entry) in json_entries(text)? {
        let entry = entry?;
        let domain = entry.domain.ok_or((line, LoadErrorKind::MissingDomain))?;
        let severity = match entry.severity.as_deref().filter(|s| !s.trim().is_empty()) {
            None => Severity::Suspend,
            Some(value) => Severity::parse(value).ok_or_else(|| {
                (
                    line,
                    LoadErrorKind::UnknownSeverity {
                        value: value.to_string(),
                    },
                )
            })?,
        };
        let flag = |column: &'static str, value: Option<serde_json::Value>| {
            let parsed = match &value {
                None | Some(serde_json::Value::Null) => Some(false),
                Some(serde_json::Value::Bool(b)) => Some(*b),
                Some(serde_json::Value::String(s)) => parse_bool(s),
                Some(_) => None,
            };
            parsed.ok_or_else(|| {
                (
                    line,
                    LoadErrorKind::InvalidBoolean {
                        column,
                        value: value.map(|v| v.to_string()).unwrap_or_default(),
                    },
                )
            })
        };
        let entry_fields = Entry {
            severity,
            reject_media: flag("reject_media", entry.reject_media)?,
            reject_reports: flag("reject_reports", entry.reject_reports)?,
            public_comment: entry
                .public_comment
                .or(entry.comment)
                .filter(|c| !c.is_empty()),
            digest: entry.digest.filter(|d| !d.is_empty()),
        };
        out.push(line, domain.trim(), entry_fields)?;
    }
    Ok(())
}

pub(super) fn line_of_offset(bytes: &[u8], offset: usize) -> usize {
    count_newlines(&bytes[..offset.min(bytes.len())]) + 1
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// Line numbers of byte offsets in one text, asked for in (mostly) increasing order: each
/// answer counts on from the previous one, so numbering every record of a 100,000-line list
/// reads the text once instead of once per record (which took minutes). An earlier offset
/// counts again from the start.
pub(super) struct LineCursor<'t> {
    bytes: &'t [u8],
    /// The last offset asked for (clamped to the text) and its 1-based line.
    at: Cell<(usize, usize)>,
}

impl<'t> LineCursor<'t> {
    pub(super) fn new(bytes: &'t [u8]) -> Self {
        LineCursor {
            bytes,
            at: Cell::new((0, 1)),
        }
    }

    /// The 1-based line that `offset` is on.
    pub(super) fn line(&self, offset: usize) -> usize {
        let offset = offset.min(self.bytes.len());
        let (from, line) = match self.at.get() {
            (at, line) if at <= offset => (at, line),
            _ => (0, 1),
        };
        let line = line + count_newlines(&self.bytes[from..offset]);
        self.at.set((offset, line));
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/blocklists")
            .join(name)
    }

    #[test]
    fn line_cursor_agrees_with_counting_from_the_start() {
        let text = b"a\n\nbb\nccc\n\n";
        let cursor = LineCursor::new(text);
        // Forward, repeated, backward (counts again from the start) and past the end.
        for offset in [0, 1, 2, 3, 5, 5, 6, 9, 4, 0, 10, 11, 99, 7] {
            assert_eq!(
                cursor.line(offset),
                line_of_offset(text, offset),
                "offset {offset}"
            );
        }
    }

    fn parse(text: &str, format: BlocklistFormat) -> Result<ParsedSource, LoadError> {
        parse_bytes(text.as_bytes(), Arc::from("mem.csv"), format)
    }

    fn find<'a>(p: &'a ParsedSource, domain: &str) -> &'a DomainRule {
        p.rules
            .iter()
            .find(|r| *r.domain == *domain)
            .unwrap_or_else(|| panic!("{domain} not parsed"))
    }

    #[test]
    fn mastodon_export_fixture() {
        let p = parse_file(&fixture("mastodon.csv"), BlocklistFormat::Auto).expect("parses");
        assert_eq!(p.format, Format::MastodonCsv);
        assert_eq!(p.rules.len(), 6);
        let spam = find(&p, "spam.example");
        assert_eq!(spam.severity, Severity::Suspend);
        assert!(spam.reject_media && spam.reject_reports);
        assert_eq!(
            spam.public_comment.as_deref(),
            Some("Spam, harassment, and \"free speech\" trolling")
        );
        assert_eq!(spam.line, 2);
        assert!(spam
            .source
            .ends_with("tests/fixtures/blocklists/mastodon.csv"));
        let limited = find(&p, "limited.example");
        assert_eq!(limited.severity, Severity::Silence);
        assert!(!limited.reject_reports && limited.reject_media);
        assert_eq!(limited.public_comment, None);
        let reports = find(&p, "reports.example");
        assert_eq!(reports.severity, Severity::Noop);
        assert!(reports.reject_reports);
        // Normalised: upper case, IDN and trailing dot in the file.
        assert_eq!(
            find(&p, "xn--bcher-kva.example").severity,
            Severity::Suspend
        );
        assert_eq!(find(&p, "loud.example").severity, Severity::Silence);
        // The public comment's embedded newline keeps later line numbers right.
        assert_eq!(find(&p, "after.example").line, 9);
        assert_eq!((p.obfuscated, p.first_obfuscated_line), (1, Some(6)));
        assert_eq!(p.duplicates, 0);
    }

    #[test]
    fn missing_columns_default_to_suspend() {
        let p = parse_file(&fixture("missing_columns.csv"), BlocklistFormat::Auto).expect("ok");
        assert_eq!(p.format, Format::MastodonCsv);
        let all: Vec<_> = p
            .rules
            .iter()
            .map(|r| (&*r.domain, r.severity, r.reject_reports))
            .collect();
        assert_eq!(
            all,
            [
                ("full.example", Severity::Silence, true),
                ("short.example", Severity::Silence, false),
                ("bare.example", Severity::Suspend, false),
                ("empty-severity.example", Severity::Suspend, false),
            ]
        );
    }

    #[test]
    fn bad_severity_names_file_and_line() {
        let e =
            parse_file(&fixture("bad_severity.csv"), BlocklistFormat::Auto).expect_err("must fail");
        assert_eq!(e.line, 4);
        assert!(matches!(&e.kind, LoadErrorKind::UnknownSeverity { value } if value == "block"));
        let msg = e.to_string();
        assert!(
            msg.contains(
                "tests/fixtures/blocklists/bad_severity.csv:4: unknown severity \"block\""
            ),
            "{msg}"
        );
    }

    #[test]
    fn plain_list_fixture() {
        let p = parse_file(&fixture("plain.txt"), BlocklistFormat::Auto).expect("parses");
        assert_eq!(p.format, Format::Plain);
        let domains: Vec<_> = p.rules.iter().map(|r| (&*r.domain, r.line)).collect();
        assert_eq!(
            domains,
            [
                ("bad.example", 3),
                ("worse.example", 4),
                ("xn--bcher-kva.example", 7),
                ("trailing.example", 8),
            ]
        );
        assert!(p
            .rules
            .iter()
            .all(|r| r.severity == Severity::Suspend && !r.reject_reports));
        let comments: Vec<_> = p
            .rules
            .iter()
            .map(|r| r.public_comment.as_deref())
            .collect();
        assert_eq!(comments, [None, Some("inline comment"), None, None]);
        assert_eq!((p.duplicates, p.first_duplicate_line), (1, Some(9)));
        assert_eq!((p.obfuscated, p.first_obfuscated_line), (1, Some(10)));
    }

    #[test]
    fn bom_and_crlf() {
        let p = parse_file(&fixture("bom_crlf.csv"), BlocklistFormat::Auto).expect("parses");
        assert_eq!(
            p.format,
            Format::MastodonCsv,
            "the BOM must not hide the header"
        );
        let got: Vec<_> = p
            .rules
            .iter()
            .map(|r| (&*r.domain, r.severity, r.reject_reports, r.line))
            .collect();
        assert_eq!(
            got,
            [
                ("crlf.example", Severity::Suspend, true, 2),
                ("second.example", Severity::Noop, false, 3),
            ]
        );
        assert_eq!(
            find(&p, "crlf.example").public_comment.as_deref(),
            Some("windows")
        );
        let plain = parse_bytes(
            b"\xEF\xBB\xBFbom.example\r\n# c\r\nnext.example # why\r\n",
            Arc::from("p.txt"),
            BlocklistFormat::Auto,
        )
        .expect("parses");
        let got: Vec<_> = plain.rules.iter().map(|r| (&*r.domain, r.line)).collect();
        assert_eq!(got, [("bom.example", 1), ("next.example", 3)]);
    }

    #[test]
    fn invalid_domain_names_the_line_and_text() {
        let e = parse(
            "#domain,#severity\nok.example,suspend\nbad..example,silence\n",
            BlocklistFormat::Auto,
        )
        .expect_err("must fail");
        assert_eq!(e.line, 3);
        assert_eq!(e.to_string(), "mem.csv:3: invalid domain \"bad..example\"");
        let e = parse("ok.example\n\nnot a domain\n", BlocklistFormat::Auto).expect_err("fail");
        assert_eq!(e.to_string(), "mem.csv:3: invalid domain \"not a domain\"");
        let e =
            parse("#domain,#severity\n , \n,suspend\n", BlocklistFormat::Auto).expect_err("fail");
        assert_eq!(e.to_string(), "mem.csv:3: invalid domain \"\"");
    }

    #[test]
    fn booleans_cast_like_rails_but_strictly() {
        for (word, want) in [
            ("true", true),
            ("TRUE", true),
            ("t", true),
            ("1", true),
            ("yes", true),
            ("On", true),
            ("false", false),
            ("F", false),
            ("0", false),
            ("no", false),
            ("off", false),
        ] {
            let text = format!(
                "#domain,#severity,#reject_media,#reject_reports\nx.example,noop,false,{word}\n"
            );
            let p = parse(&text, BlocklistFormat::Auto).expect(word);
            assert_eq!(p.rules[0].reject_reports, want, "{word}");
        }
        let e = parse(
            "#domain,#severity,#reject_media,#reject_reports\nx.example,noop,maybe,true\n",
            BlocklistFormat::Auto,
        )
        .expect_err("fail");
        assert_eq!(e.line, 2);
        assert!(e
            .to_string()
            .contains("#reject_media: \"maybe\" is not a boolean"));
    }

    #[test]
    fn columns_are_found_by_name() {
        let p = parse(
            "#domain,#private_comment,#reject_reports,#severity\nx.example,secret,true,SILENCE\n",
            BlocklistFormat::Auto,
        )
        .expect("parses");
        let r = &p.rules[0];
        assert_eq!(
            (r.severity, r.reject_reports, r.reject_media),
            (Severity::Silence, true, false)
        );
    }

    #[test]
    fn duplicates_keep_the_harsher_rule() {
        let p = parse(
            "#domain,#severity,#reject_media,#reject_reports\n\
             dup.example,silence,false,false\n\
             DUP.example.,suspend,false,false\n\
             dup.example,noop,true,true\n",
            BlocklistFormat::Auto,
        )
        .expect("parses");
        assert_eq!(p.rules.len(), 1);
        assert_eq!(
            (p.rules[0].severity, p.rules[0].line),
            (Severity::Suspend, 3)
        );
        assert_eq!((p.duplicates, p.first_duplicate_line), (2, Some(3)));
    }

    #[test]
    fn obfuscated_entries_with_a_digest_become_digest_rules() {
        use crate::policy::{digest_hex, domain_digest};
        let bad = digest_hex(&domain_digest("bad.example"));
        let other = digest_hex(&domain_digest("bar.example"));
        let text = format!(
            "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate,#digest\n\
             ba*.example,suspend,false,true,spam,true,{}\n\
             ba*.example,silence,false,false,,true,{other}\n\
             no**.example,suspend,false,false,,true,\n\
             plain.example,silence,false,false,,false,{bad}\n",
            bad.to_ascii_uppercase()
        );
        let p = parse(&text, BlocklistFormat::Auto).expect("parses");
        assert_eq!(p.rules.len(), 3, "same text, different digests: two rules");
        assert_eq!(&*p.rules[0].domain, "ba*.example");
        assert_eq!(
            p.rules[0].digest.as_deref(),
            Some(&domain_digest("bad.example"))
        );
        assert!(p.rules[0].reject_reports);
        assert_eq!(
            p.rules[1].digest.as_deref(),
            Some(&domain_digest("bar.example"))
        );
        assert_eq!((p.obfuscated, p.first_obfuscated_line), (1, Some(4)));
        // A named entry is matched by name; its digest column is not needed.
        assert_eq!(
            (&*p.rules[2].domain, p.rules[2].digest.as_deref()),
            ("plain.example", None)
        );

        let e = parse(
            "#domain,#digest\nba*.example,nothex\n",
            BlocklistFormat::Auto,
        )
        .expect_err("bad digest");
        assert_eq!(
            e.to_string(),
            "mem.csv:2: invalid SHA-256 digest \"nothex\" (expected 64 hex digits)"
        );
    }

    #[test]
    fn plain_lists_take_sha256_entries() {
        use crate::policy::{digest_hex, domain_digest};
        let hex = digest_hex(&domain_digest("bad.example"));
        let text = format!("sha256:{hex} # bad, obfuscated\nSHA256:{hex}\nok.example\n");
        let p = parse(&text, BlocklistFormat::Auto).expect("parses");
        assert_eq!(p.rules.len(), 2);
        assert_eq!(&*p.rules[0].domain, format!("sha256:{hex}"));
        assert_eq!(
            p.rules[0].digest.as_deref(),
            Some(&domain_digest("bad.example"))
        );
        assert_eq!(p.rules[0].severity, Severity::Suspend);
        assert_eq!((p.duplicates, p.first_duplicate_line), (1, Some(2)));
        let e = parse("sha256:1234\n", BlocklistFormat::Auto).expect_err("short");
        assert_eq!(e.line, 1);
        assert!(matches!(e.kind, LoadErrorKind::InvalidDigest { .. }));
    }

    #[test]
    fn folded_duplicates_keep_first_appearance_order() {
        let p = parse(
            "a.example\nb.example\n#x\nc.example\n",
            BlocklistFormat::Plain,
        )
        .expect("parses");
        assert_eq!(p.duplicates, 0);
        let p = parse(
            "#domain,#severity\n\
             a.example,noop\n\
             b.example,silence\n\
             a.example,suspend\n\
             c.example,noop\n\
             b.example,noop\n",
            BlocklistFormat::Auto,
        )
        .expect("parses");
        let got: Vec<(&str, Severity, usize)> = p
            .rules
            .iter()
            .map(|r| (&*r.domain, r.severity, r.line))
            .collect();
        assert_eq!(
            got,
            [
                ("a.example", Severity::Suspend, 4),
                ("b.example", Severity::Silence, 3),
                ("c.example", Severity::Noop, 5),
            ]
        );
        assert_eq!((p.duplicates, p.first_duplicate_line), (2, Some(4)));
    }

    #[test]
    fn forced_formats() {
        let e = parse("bad.example\n", BlocklistFormat::MastodonCsv).expect_err("no header");
        assert!(matches!(e.kind, LoadErrorKind::MissingHeader));
        assert_eq!(e.line, 1);
        // Forced plain: the export header is just a comment line, and a CSV row is not a domain.
        let p = parse(
            &format!("{MASTODON_HEADER}\nbad.example\n"),
            BlocklistFormat::Plain,
        )
        .expect("plain");
        assert_eq!(p.format, Format::Plain);
        assert_eq!(&*p.rules[0].domain, "bad.example");
        assert!(parse("bad.example,silence\n", BlocklistFormat::Plain).is_err());
        // The header alone is an empty list (the shipped starter file).
        let p = parse(&format!("{MASTODON_HEADER}\n"), BlocklistFormat::Auto).expect("empty");
        assert_eq!((p.format, p.rules.len()), (Format::MastodonCsv, 0));
        assert_eq!(
            parse("", BlocklistFormat::Auto).expect("empty").rules.len(),
            0
        );
    }

    #[test]
    fn bounds_and_encoding() {
        let long = format!("ok.example\n# {}\n", "x".repeat(MAX_LINE_BYTES));
        let e = parse(&long, BlocklistFormat::Auto).expect_err("too long");
        assert_eq!(e.line, 2);
        assert!(matches!(e.kind, LoadErrorKind::LineTooLong { .. }));
        let e = parse_bytes(
            b"ok.example\nbad\xff.example\n",
            Arc::from("b.txt"),
            BlocklistFormat::Auto,
        )
        .expect_err("not utf-8");
        assert_eq!(
            (e.line, e.to_string().as_str()),
            (2, "b.txt:2: not valid UTF-8")
        );
        let e = parse_file(
            Path::new("/nonexistent/blocklist.csv"),
            BlocklistFormat::Auto,
        )
        .expect_err("missing");
        assert_eq!(e.line, 0);
        assert!(
            e.to_string()
                .starts_with("/nonexistent/blocklist.csv: cannot read: "),
            "{e}"
        );
    }

    #[test]
    fn oversized_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("huge.txt");
        let file = std::fs::File::create(&path).expect("create");
        // Sparse: costs no disk, but its length is over the limit.
        file.set_len(MAX_FILE_BYTES + 1).expect("set_len");
        let e = parse_file(&path, BlocklistFormat::Auto).expect_err("too large");
        assert!(matches!(e.kind, LoadErrorKind::TooLarge));
    }

    #[test]
    fn example_and_starter_configs_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let example = parse_file(
            &root.join("config/blocklist.example.csv"),
            BlocklistFormat::Auto,
        )
        .expect("example parses");
        assert_eq!(example.format, Format::MastodonCsv);
        assert!(example
            .rules
            .iter()
            .any(|r| r.severity == Severity::Suspend));
        assert!(example
            .rules
            .iter()
            .any(|r| r.severity == Severity::Silence));
        assert!(example
            .rules
            .iter()
            .any(|r| r.severity == Severity::Noop && r.reject_reports));
        assert!(example.rules.iter().all(|r| r.domain.ends_with(".example")));
        let starter = parse_file(&root.join("config/blocklist.csv"), BlocklistFormat::Auto)
            .expect("starter parses");
        assert_eq!(
            (starter.format, starter.rules.len()),
            (Format::MastodonCsv, 0)
        );
    }

    #[test]
    fn mastodon_allows_fixture_and_plain_allow_list() {
        let p = parse_file_as(
            &fixture("domain_allows.csv"),
            BlocklistFormat::Auto,
            SourceKind::Allow,
        )
        .expect("parses");
        assert_eq!(p.format, Format::MastodonCsv);
        assert!(p.rules.is_empty());
        let got: Vec<_> = p.allows.iter().map(|e| (&*e.domain, e.line)).collect();
        assert_eq!(
            got,
            [
                ("friend.example", 2),
                ("partner.example", 3),
                ("xn--bcher-kva.example", 5),
            ]
        );
        assert_eq!((p.obfuscated, p.first_obfuscated_line), (1, Some(6)));
        let p = parse_file_as(
            &fixture("allows.txt"),
            BlocklistFormat::Auto,
            SourceKind::Allow,
        )
        .expect("parses");
        assert_eq!(p.format, Format::Plain);
        let got: Vec<_> = p.allows.iter().map(|e| &*e.domain).collect();
        assert_eq!(got, ["friend.example", "partner.example"]);
        let e = parse_file_as(
            &fixture("bad_allows.csv"),
            BlocklistFormat::Auto,
            SourceKind::Allow,
        )
        .expect_err("digest in an allow list");
        assert!(
            e.to_string().ends_with(
                "bad_allows.csv:3: \"sha256:a379a6f6eeafb9a55e378c118034e2751e682fab9f2d30ab13d2125586ce1947\": \
                 only block rules can be given by digest; name the domain"
            ),
            "{e}"
        );
    }

    #[test]
    fn toml_rules_fixture() {
        let p = parse_file(&fixture("rules.toml"), BlocklistFormat::Auto).expect("parses");
        assert_eq!(p.format, Format::Toml);
        let rules: Vec<_> = p
            .rules
            .iter()
            .map(|r| {
                (
                    &*r.domain,
                    r.severity,
                    r.reject_media,
                    r.reject_reports,
                    r.dry_run,
                    r.line,
                )
            })
            .collect();
        assert_eq!(
            rules,
            [
                ("bad.example", Severity::Suspend, false, true, false, 4),
                ("preview.example", Severity::Suspend, false, false, true, 10),
                ("limited.example", Severity::Silence, true, false, false, 16),
            ]
        );
        assert_eq!(
            p.rules[0].public_comment.as_deref(),
            Some("spam and harassment")
        );
        assert_eq!(
            (&*p.allows[0].domain, p.allows[0].line),
            ("friend.example", 21)
        );
        assert_eq!(p.allows[0].comment.as_deref(), Some("sister instance"));
        assert_eq!(
            (&*p.exceptions[0].domain, p.exceptions[0].line),
            ("ok.bad.example", 25)
        );
        let actors: Vec<_> = p
            .actors
            .iter()
            .map(|a| (a.actor.as_str(), a.dry_run, a.line))
            .collect();
        assert_eq!(
            actors,
            [
                ("@mallory@elsewhere.example", false, 29),
                ("https://elsewhere.example/users/preview", true, 33),
            ]
        );
        assert!(p.actors[0].source.ends_with("rules.toml"));
        let ff = p.friendly_federators.expect("table");
        assert_eq!(ff.reply, Some(true));
        assert_eq!(ff.threshold, Some(20));
        assert_eq!(ff.window.map(|w| w.as_secs()), Some(7 * 86_400));
        assert_eq!(ff.action, Some(rules_file::EscalationAction::Limit));
        assert_eq!(ff.line, 36);
        // A forced format reads any name as TOML.
        let forced = parse_bytes(
            b"[[domain]]\ndomain = \"x.example\"\n",
            Arc::from("rules.conf"),
            BlocklistFormat::Toml,
        )
        .expect("forced");
        assert_eq!((forced.format, forced.rules.len()), (Format::Toml, 1));
    }

    #[test]
    fn malformed_toml_rules_name_file_and_line() {
        for (name, line, message) in [
            (
                "bad_actor.toml",
                6,
                "invalid actor \"mallory at elsewhere\" (expected an https:// actor URI or @user@host)",
            ),
            ("bad_syntax.toml", 3, "unknown variant `obliterate`"),
            ("bad_key.toml", 6, "unknown field `reason`"),
            ("bad_domain.toml", 5, "invalid domain \"not a domain\""),
        ] {
            let e = parse_file(&fixture(name), BlocklistFormat::Auto).expect_err(name);
            assert_eq!(e.line, line, "{name}: {e}");
            let text = e.to_string();
            assert!(
                text.contains(&format!("tests/fixtures/blocklists/{name}:{line}: "))
                    && text.contains(message),
                "{name}: {text}"
            );
        }
        let e = parse("[[domain]\n", BlocklistFormat::Toml).expect_err("syntax");
        assert_eq!(e.line, 1, "{e}");
        assert!(matches!(e.kind, LoadErrorKind::Toml { .. }));
    }

    fn json_fixture(name: &str) -> ParsedSource {
        let bytes = std::fs::read(fixture(name)).expect("fixture");
        parse_json_bytes(&bytes, Arc::from(name)).expect("parses")
    }

    #[test]
    fn mastodon_admin_api_json() {
        let p = json_fixture("mastodon_admin_api.json");
        assert_eq!(p.format, Format::Json);
        assert_eq!(p.rules.len(), 3);
        let spam = find(&p, "spam.example");
        assert_eq!(spam.severity, Severity::Suspend);
        assert!(spam.reject_media && spam.reject_reports);
        assert_eq!(spam.public_comment.as_deref(), Some("Spam and harassment"));
        // The digest of a real (not obfuscated) domain is not needed to match it.
        assert_eq!(spam.digest, None);
        assert_eq!(spam.line, 2, "the line where the entry starts");
        let limited = find(&p, "limited.example");
        assert_eq!(limited.severity, Severity::Silence);
        assert!(limited.reject_media && !limited.reject_reports);
        assert_eq!(limited.public_comment, None);
        let reports = find(&p, "reports.example");
        assert_eq!(
            (reports.severity, reports.reject_reports),
            (Severity::Noop, true)
        );
    }

    #[test]
    fn mastodon_public_api_json_matches_obfuscated_entries_by_digest() {
        let p = json_fixture("mastodon_public_api.json");
        assert_eq!(p.rules.len(), 3);
        let hidden = find(&p, "hidd**.example");
        assert_eq!(
            hidden.digest.as_deref(),
            Some(&crate::policy::domain_digest("hidden.example"))
        );
        assert_eq!(hidden.severity, Severity::Silence);
        assert_eq!(
            hidden.public_comment.as_deref(),
            Some("Obfuscated on the about page"),
            "the public API calls it comment"
        );
        let snapshot = crate::policy::Snapshot::from_rules(p.rules.clone());
        assert!(snapshot.rule_for("sub.hidden.example").is_some());
        assert_eq!(p.obfuscated, 0);
    }

    #[test]
    fn gotosocial_export_json_is_all_suspends() {
        let p = json_fixture("gotosocial_export.json");
        let all: Vec<_> = p
            .rules
            .iter()
            .map(|r| (&*r.domain, r.severity, r.public_comment.as_deref()))
            .collect();
        assert_eq!(
            all,
            [
                (
                    "spam.example",
                    Severity::Suspend,
                    Some("Spam and harassment")
                ),
                ("hidden.example", Severity::Suspend, None),
                ("xn--bcher-kva.example", Severity::Suspend, Some("IDN")),
            ]
        );
    }

    #[test]
    fn json_errors_name_the_entry_line() {
        let bytes = std::fs::read(fixture("bad_entry.json")).expect("fixture");
        let e = parse_json_bytes(&bytes, Arc::from("bad_entry.json")).expect_err("bad");
        assert_eq!(e.line, 4);
        assert_eq!(
            e.to_string(),
            "bad_entry.json:4: invalid domain \"not valid!\""
        );

        let json = |text: &str| parse_json_bytes(text.as_bytes(), Arc::from("j"));
        let kind = |text: &str| json(text).expect_err("must fail").kind;
        assert!(matches!(
            kind("{\"domain\": \"a.example\"}"),
            LoadErrorKind::NotJsonArray
        ));
        assert!(matches!(
            kind("[{\"domain\": \"a.example\""),
            LoadErrorKind::Json(_)
        ));
        assert!(matches!(
            kind("[{\"severity\": \"silence\"}]"),
            LoadErrorKind::MissingDomain
        ));
        assert!(matches!(kind("[{\"domain\": 5}]"), LoadErrorKind::Json(_)));
        assert!(matches!(kind("[\"a.example\"]"), LoadErrorKind::Json(_)));
        assert!(matches!(
            kind("[{\"domain\": \"a.example\", \"severity\": \"banish\"}]"),
            LoadErrorKind::UnknownSeverity { .. }
        ));
        assert!(matches!(
            kind("[{\"domain\": \"a.example\", \"reject_media\": 2}]"),
            LoadErrorKind::InvalidBoolean {
                column: "reject_media",
                ..
            }
        ));
        assert!(matches!(
            kind("[{\"domain\": \"a***.example\", \"digest\": \"xyz\"}]"),
            LoadErrorKind::InvalidDigest { .. }
        ));
        let e = json("[\n{\"domain\": \"a.example\"},\n{\"domain\": \"b.example\",\n \"x\": }]")
            .expect_err("syntax");
        assert_eq!(e.line, 4, "{e}");
        // Words as booleans, nulls, an empty list, an obfuscated entry without a digest.
        let p = json(
            "\u{feff}[{\"domain\": \"a.example\", \"reject_reports\": \"yes\", \"severity\": null},\
             {\"domain\": \"b***.example\"}]",
        )
        .expect("ok");
        assert!(p.rules[0].reject_reports);
        assert_eq!(p.rules[0].severity, Severity::Suspend);
        assert_eq!((p.rules.len(), p.obfuscated), (1, 1));
        assert!(json("[]").expect("empty").rules.is_empty());
    }

    #[test]
    fn allow_json() {
        let bytes = std::fs::read(fixture("mastodon_admin_allows.json")).expect("fixture");
        let allows = parse_allow_json_bytes(&bytes, "allows").expect("parses");
        assert_eq!(
            allows
                .iter()
                .map(|a| (&*a.domain, a.line))
                .collect::<Vec<_>>(),
            [("friends.example", 2), ("pals.example", 7)]
        );
        let e = parse_allow_json_bytes(b"[{\"domain\": \"a*.example\"}]", "allows")
            .expect_err("no wildcards");
        assert!(matches!(e.kind, LoadErrorKind::InvalidDomain { .. }));
        let e = parse_allow_json_bytes(b"[{\"id\": \"1\"}]", "allows").expect_err("no domain");
        assert!(matches!(e.kind, LoadErrorKind::MissingDomain));
    }
}

//! Rule files → rules: Mastodon's `domain_blocks.csv` export or a plain one-domain-per-line
//! list, each rule carrying its file and line.
//!
//! Formats (`BlocklistFormat::Auto` picks by the first line, as Mastodon's import does):
//! * **Mastodon CSV**: the first line's first field is `#domain` (the export writes
//!   `#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate`). Columns are
//!   found by header name, so a shorter header or a different order works and unknown columns
//!   (e.g. `#private_comment` from other tools) are ignored. A missing or empty column means
//!   severity `suspend` and flags `false`, as Mastodon's import.
//! * **Plain**: one domain per line, severity `suspend`; blank lines and `#` comments (whole
//!   line or after the domain) are ignored.
//!
//! Both: a UTF-8 byte-order mark is ignored, CRLF line endings are fine, each domain goes
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

use super::{digest_hex, host, parse_digest_hex, DomainRule, Severity};
use crate::config::BlocklistFormat;
use std::borrow::Cow;
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
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::MastodonCsv => "mastodon-csv",
            Format::Plain => "plain",
        }
    }
}

/// One file's rules and what was skipped on the way.
#[derive(Debug, Clone)]
pub struct ParsedSource {
    pub format: Format,
    /// One rule per domain, in file order of first appearance.
    pub rules: Vec<DomainRule>,
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
    /// A `#digest` value, or a `sha256:` entry, that is not 64 hex digits.
    #[error("invalid SHA-256 digest {text:?} (expected 64 hex digits)")]
    InvalidDigest { text: String },
    /// A `#severity` other than suspend, silence or noop.
    #[error("unknown severity {value:?} (expected suspend, silence or noop)")]
    UnknownSeverity { value: String },
    /// A boolean column with a value that is neither true-ish nor false-ish.
    #[error("{column}: {value:?} is not a boolean (true/false, t/f, 1/0, yes/no, on/off)")]
    InvalidBoolean { column: &'static str, value: String },
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

/// Reads and parses one rule file. The file's label in rules and errors is `path` as given.
pub fn parse_file(path: &Path, format: BlocklistFormat) -> Result<ParsedSource, LoadError> {
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
    parse_bytes(&bytes, Arc::from(label.as_str()), format)
}

/// Parses one rule file's contents; `source` labels the rules and errors.
pub fn parse_bytes(
    bytes: &[u8],
    source: Arc<str>,
    format: BlocklistFormat,
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
    for (i, line) in text.split('\n').enumerate() {
        if line.len() > MAX_LINE_BYTES {
            return Err(fail(
                i + 1,
                LoadErrorKind::LineTooLong { bytes: line.len() },
            ));
        }
    }
    let first_field_is_domain = text
        .lines()
        .next()
        .and_then(|l| l.split(',').next())
        .is_some_and(|f| f.trim().eq_ignore_ascii_case("#domain"));
    let format = match format {
        BlocklistFormat::Auto if first_field_is_domain => Format::MastodonCsv,
        BlocklistFormat::Auto | BlocklistFormat::Plain => Format::Plain,
        BlocklistFormat::MastodonCsv if first_field_is_domain => Format::MastodonCsv,
        BlocklistFormat::MastodonCsv => return Err(fail(1, LoadErrorKind::MissingHeader)),
    };
    let mut out = Collector::new(format, source.clone());
    match format {
        Format::MastodonCsv => parse_csv(text, &mut out),
        Format::Plain => parse_plain(text, &mut out),
    }
    .map_err(|(line, kind)| fail(line, kind))?;
    Ok(out.finish())
}

/// Failures inside one format's parser, before the file name is attached.
type LineError = (usize, LoadErrorKind);

fn parse_plain(text: &str, out: &mut Collector) -> Result<(), LineError> {
    for (i, line) in text.lines().enumerate() {
        let entry = line
            .split_once('#')
            .map_or(line, |(before, _)| before)
            .trim();
        if entry.is_empty() {
            continue;
        }
        out.push(i + 1, entry, Entry::default())?;
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
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(csv_error)? {
        // A line of only commas or spaces is an empty row, not an entry.
        if record.iter().all(str::is_empty) {
            continue;
        }
        let line = record
            .position()
            .map_or(0, |p| usize::try_from(p.line()).unwrap_or(usize::MAX));
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
struct Entry {
    severity: Severity,
    reject_media: bool,
    reject_reports: bool,
    public_comment: Option<String>,
    /// The `#digest` column's text, for an obfuscated entry.
    digest: Option<String>,
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
struct Collector {
    source: Arc<str>,
    parsed: ParsedSource,
}

impl Collector {
    fn new(format: Format, source: Arc<str>) -> Collector {
        Collector {
            source,
            parsed: ParsedSource {
                format,
                rules: Vec::new(),
                obfuscated: 0,
                first_obfuscated_line: None,
                duplicates: 0,
                first_duplicate_line: None,
            },
        }
    }

    fn push(&mut self, line: usize, text: &str, entry: Entry) -> Result<(), LineError> {
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
                return Ok(());
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
            domain,
            severity: entry.severity,
            reject_media: entry.reject_media,
            reject_reports: entry.reject_reports,
            public_comment: entry.public_comment,
            digest,
            dry_run: false,
            source: self.source.clone(),
            line,
        });
        Ok(())
    }

    /// Keeps one rule per domain, at the place of its first appearance: the harsher one, or on
    /// a tie the first. The index borrows the domains already parsed instead of copying each
    /// one into a map key (a 100,000-line file would allocate 100,000 more strings).
    fn finish(mut self) -> ParsedSource {
        let all = std::mem::take(&mut self.parsed.rules);
        // For each first appearance, the index of the rule in force for its domain.
        let mut winner: Vec<Option<usize>> = vec![None; all.len()];
        let mut first: HashMap<Key<'_>, usize> = HashMap::with_capacity(all.len());
        for (i, rule) in all.iter().enumerate() {
            // Two obfuscated entries may read the same (`exam***.com`): their digest tells
            // them apart.
            let key = match &rule.digest {
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
        self.parsed.rules = winner
            .iter()
            .flatten()
            .filter_map(|&w| slots[w].take())
            .collect();
        self.parsed
    }
}

/// What makes two entries of one file the same rule.
#[derive(PartialEq, Eq, Hash)]
enum Key<'a> {
    Name(&'a str),
    Digest(&'a super::DomainDigest),
}

fn line_of_offset(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/blocklists")
            .join(name)
    }

    fn parse(text: &str, format: BlocklistFormat) -> Result<ParsedSource, LoadError> {
        parse_bytes(text.as_bytes(), Arc::from("mem.csv"), format)
    }

    fn find<'a>(p: &'a ParsedSource, domain: &str) -> &'a DomainRule {
        p.rules
            .iter()
            .find(|r| r.domain == domain)
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
            .map(|r| (r.domain.as_str(), r.severity, r.reject_reports))
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
        let domains: Vec<_> = p
            .rules
            .iter()
            .map(|r| (r.domain.as_str(), r.line))
            .collect();
        assert_eq!(
            domains,
            [
                ("bad.example", 3),
                ("worse.example", 4),
                ("xn--bcher-kva.example", 7),
                ("trailing.example", 8),
            ]
        );
        assert!(p.rules.iter().all(|r| r.severity == Severity::Suspend
            && !r.reject_reports
            && r.public_comment.is_none()));
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
            .map(|r| (r.domain.as_str(), r.severity, r.reject_reports, r.line))
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
        let got: Vec<_> = plain
            .rules
            .iter()
            .map(|r| (r.domain.as_str(), r.line))
            .collect();
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
        assert_eq!(p.rules[0].domain, "ba*.example");
        assert_eq!(p.rules[0].digest, Some(domain_digest("bad.example")));
        assert!(p.rules[0].reject_reports);
        assert_eq!(p.rules[1].digest, Some(domain_digest("bar.example")));
        assert_eq!((p.obfuscated, p.first_obfuscated_line), (1, Some(4)));
        // A named entry is matched by name; its digest column is not needed.
        assert_eq!(
            (p.rules[2].domain.as_str(), p.rules[2].digest),
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
        assert_eq!(p.rules[0].domain, format!("sha256:{hex}"));
        assert_eq!(p.rules[0].digest, Some(domain_digest("bad.example")));
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
            .map(|r| (r.domain.as_str(), r.severity, r.line))
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
        assert_eq!(p.rules[0].domain, "bad.example");
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
}

//! Rule files → rules: Mastodon's `domain_blocks.csv` export, Mastodon's `domain_allows.csv`,
//! a plain one-domain-per-line list, or inboxguard's TOML rules file (`toml`), each rule
//! carrying its file and line.
//!
//! A CSV or plain source holds block rules, or allowed domains when configured with
//! `kind = "allow"` (Mastodon's `domain_allows.csv` is a `#domain` header and one domain per
//! row; any other column is ignored). A TOML file says per entry what it holds.
//!
//! Formats (`BlocklistFormat::Auto` picks TOML by a `.toml` name, then by the first line, as
//! Mastodon's import does):
//! * **Mastodon CSV**: the first line is a header naming a `#domain` column (the export writes
//!   `#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate`; FediBlockHole,
//!   Oliphant and Garden Fence write the same names without `#`). Columns are found by header
//!   name, so a shorter header or a different order works and unknown columns (e.g.
//!   `#private_comment` from other tools) are ignored. A missing or empty column means
//!   severity `suspend` and flags `false`, as Mastodon's import.
//! * **Plain**: one domain per line, severity `suspend`; blank lines and whole-line `#`
//!   comments are ignored, and a `#` comment after a domain is its rule's public comment.
//!
//! * **JSON** (`parse_json_bytes`, chosen by the caller, never by `Auto`): an array of objects
//!   as Mastodon's admin and public APIs and GoToSocial's export write them.
//! * **Fediseer** (`parse_fediseer_bytes`, never by `Auto`): a censures or hesitations answer
//!   of Fediseer's API, read as the source's `fediseer` setting says.
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
//!
//! Pure: bytes in, rules out. Reading a file is the caller's (`rule_files::read`).
//!
//! | file    | owns |
//! |---------|------|
//! | `mod`   | the dispatch by format (and `Auto`'s guess) |
//! | `parsed`| what parsing yields: formats, parsed rules, errors, limits |
//! | `lines` | what every format shares: decoding, line numbers, the rule collector |
//! | `csv`   | Mastodon's CSV export (and `domain_allows.csv`) |
//! | `plain` | one domain per line |
//! | `json`  | Mastodon's and GoToSocial's JSON lists |
//! | `fediseer` | Fediseer's censures and hesitations answers |
//! | `toml`  | inboxguard's TOML rules file |

mod content;
mod csv;
mod fediseer;
mod json;
mod lines;
mod parsed;
mod plain;
mod toml;

pub use fediseer::{parse_fediseer_bytes, parse_fediseer_unfolded, FediseerList, FediseerSettings};
pub use json::{parse_allow_json_bytes, parse_json_bytes, AllowEntry};
pub(crate) use parsed::MAX_LINE_BYTES;
pub use parsed::{
    BlocklistFormat, Format, LoadError, LoadErrorKind, ParsedSource, SourceKind, MASTODON_HEADER,
    MAX_FILE_BYTES,
};

use crate::policy::Severity;
use lines::{entries_of, Collector, LineError};
use std::sync::Arc;

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
/// a plain list). An exception list's entries come back as block rules: the merge makes them
/// exceptions. `Auto` reads a TOML rules file when `source` ends in `.toml`. `Fediseer` is
/// read as a censures list without a minimum; `parse_fediseer_bytes` takes a source's settings.
pub fn parse_bytes_as(
    bytes: &[u8],
    source: Arc<str>,
    format: BlocklistFormat,
    kind: SourceKind,
) -> Result<ParsedSource, LoadError> {
    parse_unfolded_as(bytes, source, format, kind)?.finish()
}

/// A rule file parsed but for its last step, the fold of repeated domains. It no longer
/// borrows the file's bytes: a caller done with them frees them before `finish` sorts the
/// rules, so a reload of 100,000 rules does not hold the file's text and the fold's index
/// (5.5 + 1.6 MB) at once.
pub struct Unfolded {
    out: Collector,
    /// An allow-kind list: its entries become allowed domains at `finish`.
    allows: bool,
}

impl Unfolded {
    /// A list of no allow kind, parsed.
    fn collected(out: Collector) -> Unfolded {
        Unfolded { out, allows: false }
    }

    /// Folds repeated domains (see `Collector::finish`) and, for an allow-kind list, turns the
    /// rules into allowed domains.
    pub fn finish(self) -> Result<ParsedSource, LoadError> {
        let mut parsed = self.out.finish();
        if self.allows {
            into_allows(&mut parsed)?;
        }
        Ok(parsed)
    }
}

/// `parse_bytes_as` up to the fold (see `Unfolded`).
pub fn parse_unfolded_as(
    bytes: &[u8],
    source: Arc<str>,
    format: BlocklistFormat,
    kind: SourceKind,
) -> Result<Unfolded, LoadError> {
    let fail = |e: LineError| LoadError::new(&source, e);
    let text = lines::decode(bytes).map_err(fail)?;
    let mut lines = 0;
    for (i, line) in text.split('\n').enumerate() {
        lines = i + 1;
        // Fediseer answers every list on one line.
        if line.len() > MAX_LINE_BYTES && format != BlocklistFormat::Fediseer {
            return Err(fail((
                i + 1,
                LoadErrorKind::LineTooLong { bytes: line.len() },
            )));
        }
    }
    let first_field_is_domain = has_mastodon_header(text.as_bytes());
    let toml_name = source
        .rsplit_once('.')
        .is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("toml"));
    let format = match format {
        BlocklistFormat::Toml => Format::Toml,
        BlocklistFormat::Auto if toml_name => Format::Toml,
        BlocklistFormat::Auto if first_field_is_domain => Format::MastodonCsv,
        BlocklistFormat::Auto | BlocklistFormat::Plain => Format::Plain,
        BlocklistFormat::MastodonCsv if first_field_is_domain => Format::MastodonCsv,
        BlocklistFormat::MastodonCsv => return Err(fail((1, LoadErrorKind::MissingHeader))),
        BlocklistFormat::Fediseer => Format::Fediseer,
    };
    let mut out = Collector::new(format, source.clone());
    if matches!(format, Format::MastodonCsv | Format::Plain) {
        // At most one rule per line: one allocation of the final size instead of doubling,
        // which held the old and new buffers (7 + 14 MB for 100,000 rules) at once.
        out.parsed.rules.reserve_exact(lines);
    }
    match format {
        Format::MastodonCsv => csv::parse(text, &mut out),
        Format::Plain => plain::parse(text, &mut out),
        Format::Toml => toml::parse(text, &mut out),
        Format::Json => json::parse(text, &mut out),
        Format::Fediseer => fediseer::parse(text, FediseerSettings::default(), &mut out),
    }
    .map_err(fail)?;
    Ok(Unfolded {
        out,
        allows: kind == SourceKind::Allow && format != Format::Toml,
    })
}

/// Turns a list's block rules into allowed domains (an allow-kind source of any format):
/// flags and severities mean nothing there, a comment stays; an entry given by digest is an
/// error naming its line, as allows are looked up by name.
pub fn into_allows(parsed: &mut ParsedSource) -> Result<(), LoadError> {
    let rules = std::mem::take(&mut parsed.rules);
    let source = rules.first().map(|r| r.source.clone());
    let allows =
        entries_of(rules).map_err(|e| LoadError::new(source.as_deref().unwrap_or(""), e))?;
    parsed.allows.extend(allows);
    Ok(())
}

/// How a source's block rules are taken in: `severity_map` first (`suspend = "silence"`: a
/// list's suspends become limits), then no harsher than `max_severity` (a list trusted for
/// limits only). Flags and comments stay; the rules keep their lines.
pub fn import_severities(
    parsed: &mut ParsedSource,
    severity_map: &std::collections::BTreeMap<Severity, Severity>,
    max_severity: Option<Severity>,
) {
    if severity_map.is_empty() && max_severity.is_none() {
        return;
    }
    for rule in &mut parsed.rules {
        let mapped = severity_map.get(&rule.severity).copied();
        let severity = mapped.unwrap_or(rule.severity);
        rule.severity = max_severity.map_or(severity, |max| severity.min(max));
    }
}

/// Keeps the block rules whose public comment carries a label of `labels_any` (when any are
/// given) and none of `labels_none`. Labels are what lists write in comments: bracketed
/// (`[CSAM]`, `[spam]`) or prefixed words (`IFTAS:CSAM`); compared without regard to case,
/// a bracketed `[IFTAS:CSAM]` being the same label as `IFTAS:CSAM`.
pub fn filter_labels(parsed: &mut ParsedSource, labels_any: &[String], labels_none: &[String]) {
    if labels_any.is_empty() && labels_none.is_empty() {
        return;
    }
    let has = |labels: &[String], found: &[String]| {
        labels
            .iter()
            .any(|l| found.iter().any(|f| f.eq_ignore_ascii_case(l.trim())))
    };
    parsed.rules.retain(|rule| {
        let found = labels_in(rule.public_comment.as_deref().unwrap_or_default());
        (labels_any.is_empty() || has(labels_any, &found)) && !has(labels_none, &found)
    });
}

/// The labels in a comment: each `[bracketed]` text, and each word with a `PREFIX:` (letters
/// before a colon, as `IFTAS:CSAM`), trailing punctuation dropped.
pub fn labels_in(comment: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut rest = comment;
    while let Some((_, after)) = rest.split_once('[') {
        let Some((inside, tail)) = after.split_once(']') else {
            break;
        };
        labels.push(inside.trim().to_string());
        rest = tail;
    }
    for word in comment.split(|c: char| c.is_whitespace() || c == '[' || c == ']' || c == ',') {
        let word = word.trim_end_matches(|c: char| c.is_ascii_punctuation() && c != ':');
        if let Some((prefix, name)) = word.split_once(':') {
            let prefixed = !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_alphabetic());
            if prefixed && !name.is_empty() && !name.starts_with('/') {
                labels.push(word.to_string());
            }
        }
    }
    labels
}

/// Whether the first line is a Mastodon-style CSV header (a byte-order mark ignored): how
/// `Auto` tells a CSV from a plain list, for files and subscriptions alike. Mastodon's export
/// starts `#domain`; FediBlockHole, Oliphant and Garden Fence write the same column names
/// without the `#`, and FediBlockHole only the columns it merged, in its own order. So: a
/// field named `domain` (with or without `#`), and every field a bare column name (no dot, no
/// space), which no plain list's first line is.
pub fn has_mastodon_header(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let names = line.split(|&b| b == b',').map(|field| {
        let field = field.trim_ascii();
        field.strip_prefix(b"#").unwrap_or(field)
    });
    let mut domain = false;
    for name in names {
        let bare = !name.is_empty() && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_');
        if !bare {
            return false;
        }
        domain |= name.eq_ignore_ascii_case(b"domain");
    }
    domain
}

#[cfg(test)]
mod tests;

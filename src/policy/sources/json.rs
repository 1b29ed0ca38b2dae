//! JSON lists: Mastodon's admin API (blocks and allows), its public list, and GoToSocial's
//! export, each entry numbered by the line it starts on.

use super::lines::{self, parse_bool, Collector, Entry, LineCursor, LineError};
use super::parsed::{Format, LoadError, LoadErrorKind, ParsedSource};
use crate::policy::host;
use std::sync::Arc;

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
    let fail = |e| LoadError::new(&source, e);
    let text = lines::decode(bytes).map_err(fail)?;
    let mut out = Collector::new(Format::Json, source.clone());
    parse(text, &mut out).map_err(fail)?;
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
    let fail = |e| LoadError::new(source, e);
    let text = lines::decode(bytes).map_err(fail)?;
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

/// Splits a JSON array into its entries, each with the line it starts on, and decodes each
/// lazily (so an error names the entry's line).
#[allow(clippy::type_complexity)]
fn json_entries(
    text: &str,
) -> Result<impl Iterator<Item = (usize, Result<JsonEntry, LineError>)> + '_, LineError> {
    if !text.trim_start().starts_with('[') {
        let line = lines::line_of_offset(text.as_bytes(), text.len() - text.trim_start().len());
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

pub(super) fn parse(text: &str, out: &mut Collector) -> Result<(), LineError> {
    for (line, entry) in json_entries(text)? {
        let entry = entry?;
        let domain = entry.domain.ok_or((line, LoadErrorKind::MissingDomain))?;
        let severity = lines::severity(line, entry.severity.as_deref())?;
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

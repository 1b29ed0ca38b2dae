//! Mastodon's CSV export (`domain_blocks.csv`, and `domain_allows.csv`): columns found by
//! their header names, missing ones at Mastodon's import defaults.

use super::lines::{self, parse_bool, Collector, Entry, LineCursor, LineError};
use super::parsed::LoadErrorKind;
use std::borrow::Cow;
use std::sync::Arc;

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

pub(super) fn parse(text: &str, out: &mut Collector) -> Result<(), LineError> {
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
    let headers = reader.headers().map_err(csv_error)?;
    let width = headers.len();
    if headers.iter().any(|h| h.contains('\n')) {
        return Err((1, LoadErrorKind::UnclosedQuote));
    }
    for (i, name) in headers.iter().enumerate() {
        // Mastodon writes `#domain`; FediBlockHole and the lists built with it `domain`.
        let name = name.to_ascii_lowercase();
        let slot = match name.strip_prefix('#').unwrap_or(&name) {
            "domain" => {
                columns.domain = i;
                continue;
            }
            "severity" => &mut columns.severity,
            "reject_media" => &mut columns.reject_media,
            "reject_reports" => &mut columns.reject_reports,
            "public_comment" => &mut columns.public_comment,
            "digest" => &mut columns.digest,
            _ => continue,
        };
        *slot = Some(i);
    }
    let cursor = LineCursor::new(text.as_bytes());
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
            cursor.line(start.saturating_add(skipped))
        });
        // A quote opened in a comment and never closed swallows the rows after it into one
        // field: refuse the file rather than silently lose those rules. A comment over several
        // lines is fine (Mastodon exports them) when its record is whole and no line in it
        // reads as a row. Short rows are Mastodon's import defaults; a row wider than the
        // header is not a record of it.
        if record
            .iter()
            .any(|f| f.contains('\n') && (record.len() < width || swallows_rows(f)))
        {
            return Err((line, LoadErrorKind::UnclosedQuote));
        }
        if record.len() > width {
            return Err((
                line,
                LoadErrorKind::TooManyFields {
                    fields: record.len(),
                    columns: width,
                },
            ));
        }
        let field = |i: Option<usize>| i.and_then(|i| record.get(i)).filter(|v| !v.is_empty());
        let severity = lines::severity(line, field(columns.severity))?;
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

/// Whether a multi-line field holds a line that reads as a row of its own (`domain,...`): the
/// sign of a quote that opened and swallowed the rows after it.
fn swallows_rows(field: &str) -> bool {
    field.split('\n').skip(1).any(|line| {
        line.split_once(',').is_some_and(|(first, _)| {
            let first = first.trim();
            first.contains('.') && crate::policy::host::normalize(first).is_some()
        })
    })
}

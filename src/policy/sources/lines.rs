//! What every format shares: decoding a file's bytes, line numbers, the fields of one entry,
//! and the collector that turns entries into rules and folds duplicates.

use super::parsed::{Format, LoadErrorKind, ParsedSource, MAX_FILE_BYTES};
use crate::policy::{
    digest_hex, host, parse_digest_hex, DomainDigest, DomainEntry, DomainRule, Severity,
};
use std::cell::Cell;
use std::collections::hash_map::Entry as Slot;
use std::collections::HashMap;
use std::sync::Arc;

/// Failures inside one format's parser, before the file name is attached.
pub(super) type LineError = (usize, LoadErrorKind);

/// The UTF-8 text of a rule file, size-checked, without a byte-order mark.
pub(super) fn decode(bytes: &[u8]) -> Result<&str, LineError> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err((0, LoadErrorKind::TooLarge));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        (
            line_of_offset(bytes, e.valid_up_to()),
            LoadErrorKind::NotUtf8,
        )
    })
}

/// Domain rules read from an allow or exception list, as named entries (the comment kept).
pub(super) fn entries_of(rules: Vec<DomainRule>) -> Result<Vec<DomainEntry>, LineError> {
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

/// A severity column or field: empty or missing means suspend, as Mastodon's import.
pub(super) fn severity(line: usize, value: Option<&str>) -> Result<Severity, LineError> {
    match value.filter(|v| !v.trim().is_empty()) {
        None => Ok(Severity::Suspend),
        Some(value) => Severity::parse(value).ok_or_else(|| {
            (
                line,
                LoadErrorKind::UnknownSeverity {
                    value: value.to_string(),
                },
            )
        }),
    }
}

/// Rails' boolean casting as Mastodon's import applies it, made strict: Rails treats any
/// unknown word (even `no`) as true, which would silently turn a typo into a harsher rule, so
/// unknown words are errors here and matching ignores case.
pub(super) fn parse_bool(value: &str) -> Option<bool> {
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
    pub(super) fn new(format: Format, source: Arc<str>) -> Collector {
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
    Digest(&'a DomainDigest),
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
}

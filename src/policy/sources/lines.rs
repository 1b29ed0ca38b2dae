//! What every format shares: decoding a file's bytes, line numbers, the fields of one entry,
//! and the collector that turns entries into rules and folds duplicates.

use super::parsed::{Format, LoadErrorKind, ParsedSource, MAX_FILE_BYTES};
use crate::policy::{
    digest_hex, host, parse_digest_hex, DomainDigest, DomainEntry, DomainRule, Severity,
};
use std::cell::Cell;
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
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
                rule.line_number(),
                LoadErrorKind::DigestNotAllowed {
                    text: rule.domain.into(),
                },
            )),
            None => Ok(DomainEntry {
                line: rule.line_number(),
                domain: rule.domain,
                comment: rule.public_comment,
                source: rule.source,
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
    /// The comments given so far, each allocated once (at most `SHARED_COMMENTS`).
    comments: HashSet<Arc<str>>,
}

/// Distinct comments a file's rules share; past this many, a new comment is allocated for its
/// rule alone, so a list of 100,000 different comments builds no set of them.
const SHARED_COMMENTS: usize = 256;

impl Collector {
    pub(super) fn new(format: Format, source: Arc<str>) -> Collector {
        Collector {
            source,
            parsed: ParsedSource::new(format),
            comments: HashSet::new(),
        }
    }

    /// `text` as a rule's comment, shared with the rules before it that gave the same one.
    /// A list that gives every domain one of a few reasons ("spam") would otherwise hold one
    /// allocation per rule (0.8 MB for 100,000 rules).
    pub(super) fn comment(&mut self, text: String) -> Arc<str> {
        if let Some(shared) = self.comments.get(text.as_str()) {
            return shared.clone();
        }
        let comment: Arc<str> = Arc::from(text);
        if self.comments.len() < SHARED_COMMENTS {
            self.comments.insert(comment.clone());
        }
        comment
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
        let public_comment = entry.public_comment.map(|c| self.comment(c));
        self.parsed.rules.push(DomainRule {
            domain: domain.into_boxed_str(),
            severity: entry.severity,
            reject_media: entry.reject_media,
            reject_reports: entry.reject_reports,
            public_comment,
            digest: digest.map(Box::new),
            dry_run: false,
            source: self.source.clone(),
            line: DomainRule::line_of(line),
        });
        Ok(true)
    }

    /// Keeps one rule per domain, at the place of its first appearance: the harsher one, or on
    /// a tie the first. Equal keys are found by sorting (hash, position) pairs, 16 bytes per
    /// rule, rather than through a map of borrowed keys (~60 bytes per rule with its spare
    /// room and the winners' list): a reload runs this while it holds the previous snapshot,
    /// the new file and these rules. Winners move into place and the rest are dropped in
    /// place, so no second vector of rules is allocated either.
    pub(super) fn finish(mut self) -> ParsedSource {
        // Keyed per call: a list cannot be written so that many of its domains share a hash.
        let (duplicates, first_line) = fold_duplicates(&mut self.parsed.rules, &RandomState::new());
        self.parsed.duplicates = duplicates;
        self.parsed.first_duplicate_line = first_line;
        self.parsed
    }
}

/// `Collector::finish`'s fold, with the hasher that groups the keys: how many rules were
/// dropped as repeats, and the line of the first repeat in file order.
fn fold_duplicates(
    rules: &mut Vec<DomainRule>,
    hasher: &impl BuildHasher,
) -> (usize, Option<usize>) {
    let mut order: Vec<(u64, usize)> = rules
        .iter()
        .enumerate()
        .map(|(i, rule)| (hasher.hash_one(Key::of(rule)), i))
        .collect();
    order.sort_unstable();
    let mut dropped = vec![false; rules.len()];
    let mut duplicates = 0;
    // Position and line of the first repeat in file order.
    let mut first_repeat: Option<(usize, usize)> = None;
    let (mut pending, mut others) = (Vec::new(), Vec::new());
    for group in order.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
        // In file order. Keys that only share a hash are told apart here; the first of those
        // left over starts the next round.
        pending.clear();
        pending.extend(group.iter().map(|&(_, i)| i));
        while let Some(&first) = pending.first() {
            let mut winner = first;
            others.clear();
            for &i in &pending[1..] {
                if Key::of(&rules[i]) != Key::of(&rules[first]) {
                    others.push(i);
                    continue;
                }
                duplicates += 1;
                if first_repeat.is_none_or(|(at, _)| i < at) {
                    first_repeat = Some((i, rules[i].line_number()));
                }
                dropped[i] = true;
                if rules[i].is_harsher_than(&rules[winner]) {
                    winner = i;
                }
            }
            // The winner takes the first appearance's place; the rule it displaces lands
            // where the winner was, which is dropped.
            rules.swap(first, winner);
            std::mem::swap(&mut pending, &mut others);
        }
    }
    drop(order);
    if duplicates > 0 {
        let mut dropped = dropped.into_iter();
        rules.retain(|_| !dropped.next().unwrap_or(false));
    }
    (duplicates, first_repeat.map(|(_, line)| line))
}

/// What makes two entries of one file the same rule.
#[derive(PartialEq, Eq, Hash)]
enum Key<'a> {
    Name(&'a str),
    Digest(&'a DomainDigest),
}

impl<'a> Key<'a> {
    fn of(rule: &'a DomainRule) -> Key<'a> {
        // Two obfuscated entries may read the same (`exam***.com`): their digest tells them
        // apart.
        match rule.digest.as_deref() {
            Some(digest) => Key::Digest(digest),
            None => Key::Name(&rule.domain),
        }
    }
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
    use crate::policy::domain_digest;
    use std::collections::HashMap;

    /// The fold as a map of first appearances does it, to compare with.
    fn fold_by_map(rules: Vec<DomainRule>) -> (Vec<DomainRule>, usize, Option<usize>) {
        let mut first: HashMap<Key<'_>, usize> = HashMap::new();
        let mut winner: Vec<Option<usize>> = vec![None; rules.len()];
        let (mut duplicates, mut first_line) = (0, None);
        for (i, rule) in rules.iter().enumerate() {
            match first.get(&Key::of(rule)) {
                None => {
                    first.insert(Key::of(rule), i);
                    winner[i] = Some(i);
                }
                Some(&f) => {
                    duplicates += 1;
                    first_line.get_or_insert(rule.line_number());
                    let current = winner[f].unwrap_or(f);
                    if rule.is_harsher_than(&rules[current]) {
                        winner[f] = Some(i);
                    }
                }
            }
        }
        let kept = winner.iter().flatten().map(|&w| rules[w].clone()).collect();
        (kept, duplicates, first_line)
    }

    /// Every key in one group, as if all of them shared a hash.
    struct OneHash;

    impl BuildHasher for OneHash {
        type Hasher = OneHasher;
        fn build_hasher(&self) -> OneHasher {
            OneHasher
        }
    }

    struct OneHasher;

    impl std::hash::Hasher for OneHasher {
        fn finish(&self) -> u64 {
            7
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn folding_agrees_with_a_map_of_first_appearances_even_when_hashes_collide() {
        let severities = [Severity::Noop, Severity::Silence, Severity::Suspend];
        // 600 entries over 40 names and 5 digests, in a scrambled order, with mixed
        // severities and flags, so most names repeat and some harsher rules come late.
        let rules: Vec<DomainRule> = (0..600usize)
            .map(|n| {
                let k = (n * 37) % 45;
                let mut rule = DomainRule::test(&format!("d{k}.example"), severities[n % 3]);
                if k >= 40 {
                    rule.domain = format!("exam{k}***.com").into();
                    rule.digest = Some(Box::new(domain_digest(&format!("h{}.example", k % 2))));
                }
                rule.reject_reports = n % 7 == 0;
                rule.reject_media = n % 5 == 0;
                rule.line = DomainRule::line_of(n + 2);
                rule
            })
            .collect();
        let summary = |rules: &[DomainRule]| {
            rules
                .iter()
                .map(|r| {
                    (
                        r.domain.clone(),
                        r.severity,
                        r.reject_reports,
                        r.reject_media,
                        r.line,
                    )
                })
                .collect::<Vec<_>>()
        };
        let (expected, duplicates, first_line) = fold_by_map(rules.clone());
        assert_eq!(expected.len(), 42);
        for (what, hashed) in [
            ("random keys", fold_with(rules.clone(), &RandomState::new())),
            ("one hash for all", fold_with(rules.clone(), &OneHash)),
        ] {
            let (kept, d, f) = hashed;
            assert_eq!(summary(&kept), summary(&expected), "{what}");
            assert_eq!((d, f), (duplicates, first_line), "{what}");
        }
    }

    fn fold_with(
        mut rules: Vec<DomainRule>,
        hasher: &impl BuildHasher,
    ) -> (Vec<DomainRule>, usize, Option<usize>) {
        let (duplicates, first_line) = fold_duplicates(&mut rules, hasher);
        (rules, duplicates, first_line)
    }

    #[test]
    fn rules_giving_the_same_comment_share_it_up_to_the_cap() {
        let mut out = Collector::new(Format::Plain, Arc::from("list.txt"));
        let spam = out.comment("spam".to_string());
        assert!(Arc::ptr_eq(&spam, &out.comment("spam".to_string())));
        assert!(!Arc::ptr_eq(&spam, &out.comment("Spam".to_string())));
        for i in 0..2 * SHARED_COMMENTS {
            assert_eq!(&*out.comment(format!("reason {i}")), format!("reason {i}"));
        }
        assert_eq!(out.comments.len(), SHARED_COMMENTS);
        // Past the cap a new comment is its rule's alone; the shared ones stay shared.
        let late = format!("reason {}", 2 * SHARED_COMMENTS - 1);
        assert!(!Arc::ptr_eq(&out.comment(late.clone()), &out.comment(late)));
        assert!(Arc::ptr_eq(&spam, &out.comment("spam".to_string())));
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
}

//! The plain format: one domain per line, severity `suspend`; blank lines and whole-line `#`
//! comments are ignored.

use super::lines::{Collector, Entry, LineError};
use super::parsed::LoadErrorKind;

/// A comment after the domain (`bad.example # spam`) becomes the rule's public comment, so
/// `explain` shows it as it shows a CSV's; whole-line comments belong to no rule.
pub(super) fn parse(text: &str, out: &mut Collector) -> Result<(), LineError> {
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

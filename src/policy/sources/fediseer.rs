//! Fediseer's censure and hesitation lists (`format = "fediseer"`): the answers of
//! `GET /api/v1/censures_given/<domains>` and `/api/v1/hesitations_given/<domains>` (and of
//! the per-domain `/api/v1/censures/<domain>` and `/api/v1/hesitations/<domain>`, which share
//! their shape), in each of the three forms the API writes:
//! * `{"instances": [{"domain": …, "censure_reasons": […], "censure_count": 2, …}], "total": …}`
//!   (the default; a hesitations list has `hesitation_reasons` and `hesitation_count`);
//! * `{"domains": ["a.example", …], "total": …}` (`?domains=true`);
//! * `{"csv": "a.example,b.example", "total": …}` (`?csv=true`).
//!
//! Which list an answer is cannot be read from the two short forms, so the source says it
//! (`fediseer = "censures"` or `"hesitations"`): censures become suspends, hesitations
//! silences. The reasons become the rule's public comment as bracketed labels (`[csam]
//! [spam]`), so `labels_any` / `labels_none` select on them; evidence is left out (URLs up
//! to 1,000 characters each, which belong on Fediseer's page rather than in every log line).

use super::lines::{self, Collector, Entry, LineCursor, LineError};
use super::parsed::{Format, LoadError, LoadErrorKind, ParsedSource};
use super::Unfolded;
use crate::policy::Severity;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::Arc;

/// Which of Fediseer's lists an answer is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FediseerList {
    /// Strong disapproval: suspend.
    #[default]
    Censures,
    /// Mistrust, "a softer form of censure": silence.
    Hesitations,
}

impl FediseerList {
    pub fn as_str(self) -> &'static str {
        match self {
            FediseerList::Censures => "censures",
            FediseerList::Hesitations => "hesitations",
        }
    }

    /// The severity an entry of this list is taken in with (before `severity_map`).
    pub fn severity(self) -> Severity {
        match self {
            FediseerList::Censures => Severity::Suspend,
            FediseerList::Hesitations => Severity::Silence,
        }
    }

    /// The field of a full-form entry that counts this list's marks.
    pub fn count_field(self) -> &'static str {
        match self {
            FediseerList::Censures => "censure_count",
            FediseerList::Hesitations => "hesitation_count",
        }
    }

    /// The list this one is not.
    pub fn other(self) -> FediseerList {
        match self {
            FediseerList::Censures => FediseerList::Hesitations,
            FediseerList::Hesitations => FediseerList::Censures,
        }
    }
}

/// How a source reads a Fediseer answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FediseerSettings {
    pub list: FediseerList,
    /// Keep only instances with at least this many censures (hesitations, for a hesitations
    /// list) among the reference instances asked: `min_censures`. Needs the full form, whose
    /// entries carry the count.
    pub min_count: Option<u64>,
}

/// The top level of an answer: one of its three forms (`total` and anything else ignored).
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    instances: Option<Vec<&'a RawValue>>,
    #[serde(borrow)]
    domains: Option<Vec<&'a RawValue>>,
    #[serde(borrow)]
    csv: Option<&'a RawValue>,
}

/// The fields of a full-form entry that rules use (Fediseer's instance details: `id`,
/// `software`, `tags`, ... are ignored). Reasons may be missing or null when nobody gave one.
#[derive(Deserialize)]
struct Instance {
    domain: Option<String>,
    censure_reasons: Option<Vec<Option<String>>>,
    hesitation_reasons: Option<Vec<Option<String>>>,
    censure_count: Option<u64>,
    hesitation_count: Option<u64>,
}

impl Instance {
    fn count(&self, list: FediseerList) -> Option<u64> {
        match list {
            FediseerList::Censures => self.censure_count,
            FediseerList::Hesitations => self.hesitation_count,
        }
    }

    fn has(&self, list: FediseerList) -> bool {
        self.count(list).is_some()
            || match list {
                FediseerList::Censures => self.censure_reasons.is_some(),
                FediseerList::Hesitations => self.hesitation_reasons.is_some(),
            }
    }

    fn reasons(&mut self, list: FediseerList) -> Vec<Option<String>> {
        let reasons = match list {
            FediseerList::Censures => self.censure_reasons.take(),
            FediseerList::Hesitations => self.hesitation_reasons.take(),
        };
        reasons.unwrap_or_default()
    }
}

/// Parses a Fediseer censures or hesitations answer read with `settings`. Lines in rules and
/// errors are where each entry starts (Fediseer answers on one line, so there every entry is
/// line 1 and a JSON error's column says where); a malformed answer names line and column.
pub fn parse_fediseer_bytes(
    bytes: &[u8],
    source: Arc<str>,
    settings: FediseerSettings,
) -> Result<ParsedSource, LoadError> {
    parse_fediseer_unfolded(bytes, source, settings)?.finish()
}

/// `parse_fediseer_bytes` up to the fold of repeated domains (see `Unfolded`).
pub fn parse_fediseer_unfolded(
    bytes: &[u8],
    source: Arc<str>,
    settings: FediseerSettings,
) -> Result<Unfolded, LoadError> {
    let fail = |e| LoadError::new(&source, e);
    let text = lines::decode(bytes).map_err(fail)?;
    let mut out = Collector::new(Format::Fediseer, source.clone());
    parse(text, settings, &mut out).map_err(fail)?;
    Ok(Unfolded::collected(out))
}

pub(super) fn parse(
    text: &str,
    settings: FediseerSettings,
    out: &mut Collector,
) -> Result<(), LineError> {
    let start = text.len() - text.trim_start().len();
    let first_line = lines::line_of_offset(text.as_bytes(), start);
    if !text[start..].starts_with('{') {
        return Err((first_line, LoadErrorKind::NotFediseerAnswer));
    }
    let json = |e: serde_json::Error| (e.line(), LoadErrorKind::Json(Arc::new(e)));
    let answer: Answer<'_> = serde_json::from_str(text).map_err(json)?;
    let cursor = LineCursor::new(text.as_bytes());
    let base = text.as_ptr() as usize;
    // A RawValue borrows from `text`, so its address gives its offset: the entry's line.
    let line_of = |value: &RawValue| cursor.line((value.get().as_ptr() as usize) - base);
    // Within one entry, serde's line is relative to where the entry starts.
    let within = |line: usize| {
        move |e: serde_json::Error| (line + e.line() - 1, LoadErrorKind::Json(Arc::new(e)))
    };
    let list = settings.list;
    let plain = || Entry {
        severity: list.severity(),
        ..Entry::default()
    };
    let no_counts = |line| {
        settings.min_count.map_or(Ok(()), |_| {
            Err((line, LoadErrorKind::FediseerNoCounts { list }))
        })
    };
    match answer {
        Answer {
            instances: Some(instances),
            ..
        } => {
            for value in instances {
                let line = line_of(value);
                let mut instance: Instance =
                    serde_json::from_str(value.get()).map_err(within(line))?;
                if !instance.has(list) && instance.has(list.other()) {
                    return Err((line, LoadErrorKind::FediseerWrongList { configured: list }));
                }
                let count = instance.count(list);
                if let Some(min) = settings.min_count {
                    match count {
                        None => return Err((line, LoadErrorKind::FediseerNoCounts { list })),
                        Some(count) if count < min => continue,
                        Some(_) => {}
                    }
                }
                let domain = instance
                    .domain
                    .take()
                    .ok_or((line, LoadErrorKind::MissingDomain))?;
                let entry = Entry {
                    public_comment: comment(&instance.reasons(list), count, list),
                    ..plain()
                };
                out.push(line, domain.trim(), entry)?;
            }
        }
        Answer {
            domains: Some(domains),
            ..
        } => {
            for value in domains {
                let line = line_of(value);
                no_counts(line)?;
                let domain: String = serde_json::from_str(value.get()).map_err(within(line))?;
                out.push(line, domain.trim(), plain())?;
            }
        }
        Answer { csv: Some(csv), .. } => {
            let line = line_of(csv);
            no_counts(line)?;
            let csv: String = serde_json::from_str(csv.get()).map_err(within(line))?;
            for domain in csv.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                out.push(line, domain, plain())?;
            }
        }
        _ => return Err((first_line, LoadErrorKind::NotFediseerAnswer)),
    }
    Ok(())
}

/// `[csam] [loli] (3 censures)`, `[spam] (1 censure)`: each reason once (reasons given as `"csam, loli"` split at
/// their commas), bracketed so they read as labels; `None` when there is nothing to say.
fn comment(reasons: &[Option<String>], count: Option<u64>, list: FediseerList) -> Option<String> {
    let mut labels: Vec<&str> = Vec::new();
    for reason in reasons.iter().flatten() {
        for label in reason.split(',') {
            let label = label.trim().trim_matches(|c| c == '[' || c == ']').trim();
            if !label.is_empty() && !labels.iter().any(|l| l.eq_ignore_ascii_case(label)) {
                labels.push(label);
            }
        }
    }
    let mut text: Vec<String> = labels.iter().map(|l| format!("[{l}]")).collect();
    if let Some(count) = count {
        let noun = list.as_str();
        let noun = if count == 1 {
            &noun[..noun.len() - 1]
        } else {
            noun
        };
        text.push(format!("({count} {noun})"));
    }
    (!text.is_empty()).then(|| text.join(" "))
}

#[cfg(test)]
mod tests;

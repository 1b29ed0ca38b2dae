//! The evidence store: per sending domain, what its activities referenced, bounded in
//! memory, and saved to and loaded from the evidence file (temp file + rename).

use super::content::{ContentMatch, ContentStore, PairRecord};
use super::days::bump_day;
use super::launder::Reference;
use super::{gauge, Federators, Kind, SECS_PER_DAY};
use crate::clock::truncate;
use crate::config::{EscalationAction, FriendlyFederatorsConfig, MAX_WINDOW_DAYS};
use crate::metrics::Metrics;
use crate::policy::sources;
use crate::policy::{host, Severity};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Sample activity ids kept per sending domain (the newest).
pub const MAX_SAMPLES: usize = 5;
/// Distinct referenced domains kept per sending domain; later ones count only in the totals.
pub const MAX_REFERENCED: usize = 16;
/// A sample activity id longer than this is cut (on a character boundary).
const MAX_SAMPLE_BYTES: usize = 512;
/// An evidence file larger than this is refused as corrupt rather than read into memory.
const MAX_EVIDENCE_FILE_BYTES: u64 = 512 * 1024 * 1024;
/// Version of the evidence file layout.
const FILE_VERSION: u32 = 1;

/// Everything the evidence file holds, plus what only lives in memory.
#[derive(Debug, Default)]
pub(super) struct Store {
    pub(super) domains: HashMap<String, DomainEvidence>,
    pub(super) escalated: BTreeMap<String, Escalated>,
    /// Changed since the last save.
    pub(super) dirty: bool,
    /// Domains over the threshold at the last evaluation (for `action = "report"` logs, which
    /// name a domain when it crosses, not on every tick).
    pub(super) over_threshold: BTreeSet<String>,
    /// The generated source's text last handed to the rules; `None` while it is not in force
    /// (at startup, and while nothing escalated is enforced). A tick whose text differs puts
    /// the new one in force: a new action, a new or lifted domain.
    pub(super) handed: Option<String>,
    /// (rule, domain) pairs over a content rule's threshold at the last evaluation (for
    /// `action = "report"` logs, as `over_threshold`).
    pub(super) content_over: BTreeSet<(String, String)>,
    /// Content-rule evidence (`content`), saved in the same file.
    pub(super) content: ContentStore,
    /// The last lift of each domain: who, when, why, and what was lifted.
    pub(super) lifted: BTreeMap<String, Lifted>,
    /// Per-day counts added since the last exchange with the other replicas (`shared`);
    /// `None` while evidence is not shared.
    pub(super) pending: Option<HashMap<String, HashMap<u64, u64>>>,
    /// Lifts made here since the last exchange.
    pub(super) pending_lifts: Vec<(String, Lifted)>,
    /// Another replica's lift arrived with the last exchange: the next source put in force is
    /// a lift in the rule-change log, not an escalation.
    pub(super) peer_lifted: bool,
}

/// Evidence about one sending domain. Also its layout in the evidence file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainEvidence {
    /// Activities that referenced at least one limited or suspended domain.
    pub total: u64,
    /// Of those, how many were dropped (not forwarded) by a laundering check.
    #[serde(default)]
    pub dropped: u64,
    /// Activities per kind of reference (one activity can count under several kinds).
    pub by_kind: KindCounts,
    /// Activities per severity of the referenced domain's rule.
    pub by_severity: SeverityCounts,
    /// Referenced domains with how many activities referenced each, at most `MAX_REFERENCED`.
    #[serde(default)]
    pub referenced: Vec<Referenced>,
    /// The newest activity ids (oldest first), at most `MAX_SAMPLES`.
    #[serde(default)]
    pub samples: Vec<String>,
    /// Unix seconds.
    pub first_seen: u64,
    pub last_seen: u64,
    /// `(UTC day number, activities)` for the last `window` days, oldest first.
    #[serde(default)]
    pub days: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    #[serde(default)]
    pub announce: u64,
    #[serde(default)]
    pub reply: u64,
    #[serde(default)]
    pub quote: u64,
    #[serde(default)]
    pub mention: u64,
    #[serde(default)]
    pub attributed_to: u64,
}

impl KindCounts {
    pub fn get(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Announce => self.announce,
            Kind::Reply => self.reply,
            Kind::Quote => self.quote,
            Kind::Mention => self.mention,
            Kind::AttributedTo => self.attributed_to,
        }
    }

    fn bump(&mut self, kind: Kind) {
        let slot = match kind {
            Kind::Announce => &mut self.announce,
            Kind::Reply => &mut self.reply,
            Kind::Quote => &mut self.quote,
            Kind::Mention => &mut self.mention,
            Kind::AttributedTo => &mut self.attributed_to,
        };
        *slot = slot.saturating_add(1);
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCounts {
    #[serde(default)]
    pub silence: u64,
    #[serde(default)]
    pub suspend: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referenced {
    pub domain: String,
    pub count: u64,
}

/// A domain escalated into the generated source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalated {
    /// Unix seconds.
    pub at: u64,
    /// References (or a content rule's matches) within the window when it escalated.
    pub count: u64,
    /// The content rule whose matches escalated it; `None`: friendly-federator evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The content rule's action and window when it escalated: in force while the rule is no
    /// longer loaded or no longer escalates (an escalation is lifted by a person, not by an
    /// edit of the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<EscalationAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_days: Option<u32>,
}

/// The evidence file.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct EvidenceFile {
    version: u32,
    /// Unix seconds.
    saved_at: u64,
    domains: BTreeMap<String, DomainEvidence>,
    #[serde(default)]
    escalated: BTreeMap<String, Escalated>,
    /// Content-rule evidence per (rule, sending domain).
    #[serde(default)]
    content_rules: Vec<PairRecord>,
    #[serde(default)]
    lifted: BTreeMap<String, Lifted>,
}

/// Why the evidence file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// No `evidence_file` is configured.
    #[error("no [friendly_federators] evidence_file is configured")]
    NotConfigured,
    /// The file does not exist (nothing saved yet).
    #[error("{path}: no evidence saved yet")]
    Missing { path: PathBuf },
    /// Reading, writing or renaming failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is larger than `MAX_EVIDENCE_FILE_BYTES`.
    #[error("{path}: larger than {MAX_EVIDENCE_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    /// Not JSON of the expected shape.
    #[error("{path}: not a friendly-federator evidence file: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// The `escalated` map does not make valid rules (a hand-edited file).
    #[error("{path}: escalated domains do not make valid rules: {source}")]
    Generated {
        path: PathBuf,
        source: sources::LoadError,
    },
    /// A layout this version does not know.
    #[error(
        "{path}: evidence file version {version}; this inboxguard reads version {FILE_VERSION}"
    )]
    Version { path: PathBuf, version: u32 },
}

impl Federators {
    /// Builds the store and loads the evidence file when one is configured. A missing file
    /// starts empty; an unreadable or corrupt one is logged, kept as `<file>.corrupt` (when
    /// corrupt), and the store starts empty, so a bad file never stops the proxy.
    pub fn new(config: &FriendlyFederatorsConfig, metrics: Arc<Metrics>) -> Federators {
        let mut store = Store::default();
        if let Some(path) = &config.evidence_file {
            let count = |result: &str| {
                metrics
                    .friendly_federator_evidence_file_total
                    .with_label_values(&["load", result])
                    .inc();
            };
            match read_file(path) {
                Ok(file) => {
                    store = Store::from_file(file, config);
                    count("ok");
                    tracing::info!(
                        file = %path.display(),
                        domains = store.domains.len(),
                        escalated = store.escalated.len(),
                        content_pairs = store.content.pairs.len(),
                        "friendly-federator evidence loaded"
                    );
                }
                Err(EvidenceError::Missing { .. }) => {
                    count("missing");
                    tracing::info!(file = %path.display(), "no friendly-federator evidence saved yet; starting empty");
                }
                Err(
                    e @ (EvidenceError::Corrupt { .. }
                    | EvidenceError::Version { .. }
                    | EvidenceError::TooLarge { .. }),
                ) => {
                    count("corrupt");
                    let aside = with_suffix(path, ".corrupt");
                    match std::fs::rename(path, &aside) {
                        Ok(()) => {
                            tracing::error!(error = %e, kept_as = %aside.display(), "friendly-federator evidence file is corrupt; starting empty")
                        }
                        Err(re) => {
                            tracing::error!(error = %e, rename_error = %re, "friendly-federator evidence file is corrupt and could not be moved aside; starting empty")
                        }
                    }
                }
                Err(e) => {
                    count("error");
                    tracing::error!(error = %e, "cannot read friendly-federator evidence; starting empty");
                }
            }
        } else {
            tracing::info!(
                "no [friendly_federators] evidence_file: evidence is kept in memory only"
            );
        }
        metrics
            .friendly_federator_tracked_domains
            .set(gauge(store.domains.len()));
        Federators {
            config: config.clone(),
            metrics,
            store: Mutex::new(store),
            save_error: Mutex::new(None),
            applying: Mutex::new(()),
            cluster: None,
        }
    }

    /// Adds one activity's references to the sender's evidence.
    pub(super) fn record(
        &self,
        sender: &str,
        id: Option<&str>,
        found: &[Reference<'_>],
        dropped: bool,
        now: u64,
        window_days: u32,
    ) {
        // Each (kind, severity) pair and each referenced domain counts once per activity.
        let mut pairs = [[false; 2]; 5];
        for f in found {
            pairs[f.kind.index()][usize::from(f.rule.severity == Severity::Suspend)] = true;
        }
        let mut referenced: Vec<&str> = found.iter().map(|f| &*f.host).collect();
        referenced.sort_unstable();
        referenced.dedup();
        let tracked = {
            let mut store = self.lock();
            store.make_room(sender, self.config.max_tracked_domains);
            let e = store
                .domains
                .entry(sender.to_owned())
                .or_insert_with(|| DomainEvidence {
                    first_seen: now,
                    ..DomainEvidence::default()
                });
            e.total = e.total.saturating_add(1);
            e.dropped = e.dropped.saturating_add(u64::from(dropped));
            for kind in Kind::ALL {
                if pairs[kind.index()].iter().any(|&p| p) {
                    e.by_kind.bump(kind);
                }
            }
            if found.iter().any(|f| f.rule.severity == Severity::Suspend) {
                e.by_severity.suspend = e.by_severity.suspend.saturating_add(1);
            } else {
                e.by_severity.silence = e.by_severity.silence.saturating_add(1);
            }
            for domain in referenced {
                if let Some(r) = e.referenced.iter_mut().find(|r| r.domain == domain) {
                    r.count = r.count.saturating_add(1);
                } else if e.referenced.len() < MAX_REFERENCED {
                    e.referenced.push(Referenced {
                        domain: domain.to_owned(),
                        count: 1,
                    });
                }
            }
            if let Some(id) = id {
                if e.samples.len() >= MAX_SAMPLES {
                    e.samples.remove(0);
                }
                e.samples.push(truncate(id, MAX_SAMPLE_BYTES).to_owned());
            }
            e.first_seen = e.first_seen.min(now);
            e.last_seen = e.last_seen.max(now);
            bump_day(&mut e.days, now / SECS_PER_DAY, window_days);
            store.pending(|| ff_key(sender), now / SECS_PER_DAY);
            store.dirty = true;
            store.domains.len()
        };
        for kind in Kind::ALL {
            for (i, severity) in ["silence", "suspend"].into_iter().enumerate() {
                if pairs[kind.index()][i] {
                    self.metrics
                        .friendly_federator_references_total
                        .with_label_values(&[kind.as_str(), severity])
                        .inc();
                }
            }
        }
        self.metrics
            .friendly_federator_tracked_domains
            .set(gauge(tracked));
    }

    /// Counts one content-rule match as evidence about its sending domain (on the request
    /// path: one short lock, as for a reference).
    pub fn record_content(&self, m: &ContentMatch<'_>, now: u64) {
        let mut store = self.lock();
        store.content.record(m, now);
        store.pending(|| content_key(m.rule, m.domain), now / SECS_PER_DAY);
        store.dirty = true;
    }

    /// Saves the evidence if it changed since the last save (blocking file I/O: call from a
    /// blocking thread). `Ok(false)` when there was nothing to save or no file is configured.
    pub fn save(&self, now: u64) -> Result<bool, EvidenceError> {
        let Some(path) = &self.config.evidence_file else {
            return Ok(false);
        };
        // Copy under the lock, serialise and write outside it.
        let file = {
            let mut store = self.lock();
            if !store.dirty {
                return Ok(false);
            }
            store.dirty = false;
            store.to_file(now)
        };
        let result = write_file(path, &file);
        let label = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .friendly_federator_evidence_file_total
            .with_label_values(&["save", label])
            .inc();
        if result.is_err() {
            // Try again on the next tick.
            self.lock().dirty = true;
        }
        *self
            .save_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            result.as_ref().err().map(ToString::to_string);
        result.map(|()| true)
    }
}

impl Store {
    /// A store from a loaded file, cut to this configuration's bounds; entries whose domain
    /// is not a normalised host (a hand-edited file) are skipped.
    /// The store saved in the evidence file `config` names, as `Federators::new` loads it,
    /// with that path and when the file was saved: for the commands that read what the
    /// running proxy saved, and never write it.
    pub(super) fn read(
        config: &FriendlyFederatorsConfig,
    ) -> Result<(Store, &Path, u64), EvidenceError> {
        let path = config
            .evidence_file
            .as_deref()
            .ok_or(EvidenceError::NotConfigured)?;
        let file = read_file(path)?;
        let saved_at = file.saved_at;
        Ok((Store::from_file(file, config), path, saved_at))
    }

    /// The file's contents from this store.
    pub(super) fn to_file(&self, now: u64) -> EvidenceFile {
        EvidenceFile {
            version: FILE_VERSION,
            saved_at: now,
            domains: self
                .domains
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            escalated: self.escalated.clone(),
            content_rules: self.content.to_records(),
            lifted: self.lifted.clone(),
        }
    }

    pub(super) fn from_file(file: EvidenceFile, config: &FriendlyFederatorsConfig) -> Store {
        let valid = |d: &str| host::normalize(d).as_deref() == Some(d);
        let mut domains: Vec<(String, DomainEvidence)> =
            file.domains.into_iter().filter(|(d, _)| valid(d)).collect();
        if domains.len() > config.max_tracked_domains {
            domains.sort_by_key(|d| std::cmp::Reverse(d.1.total));
            domains.truncate(config.max_tracked_domains);
        }
        let keep_days = u64::from(config.window_days().min(MAX_WINDOW_DAYS));
        for (_, e) in &mut domains {
            e.samples = std::mem::take(&mut e.samples)
                .into_iter()
                .rev()
                .take(MAX_SAMPLES)
                .rev()
                .map(|s| truncate(&s, MAX_SAMPLE_BYTES).to_owned())
                .collect();
            e.referenced.retain(|r| valid(&r.domain));
            e.referenced.truncate(MAX_REFERENCED);
            e.days.sort_unstable();
            e.days.dedup_by_key(|d| d.0);
            let newest = e.days.last().map_or(0, |d| d.0);
            e.days.retain(|d| d.0 + keep_days > newest);
        }
        Store {
            domains: domains.into_iter().collect(),
            escalated: file
                .escalated
                .into_iter()
                .filter(|(d, _)| valid(d))
                .take(config.max_tracked_domains)
                .collect(),
            dirty: false,
            over_threshold: BTreeSet::new(),
            handed: None,
            content_over: BTreeSet::new(),
            content: ContentStore::from_records(file.content_rules),
            lifted: file
                .lifted
                .into_iter()
                .filter(|(d, _)| valid(d))
                .take(config.max_tracked_domains)
                .collect(),
            pending: None,
            pending_lifts: Vec::new(),
            peer_lifted: false,
        }
    }

    /// Evicts the domain with the fewest references (the least recently seen among equals)
    /// when `incoming` is new and the store is full. A linear scan: it runs only when a new
    /// domain arrives at a full store, on the rare path where a reference matched.
    fn make_room(&mut self, incoming: &str, max: usize) {
        if self.domains.len() < max || self.domains.contains_key(incoming) {
            return;
        }
        let victim = self
            .domains
            .iter()
            .min_by_key(|(_, e)| (e.total, e.last_seen))
            .map(|(d, _)| d.clone());
        if let Some(victim) = victim {
            self.domains.remove(&victim);
        }
    }
}

pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

pub(super) fn read_file(path: &Path) -> Result<EvidenceFile, EvidenceError> {
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            EvidenceError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            EvidenceError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_EVIDENCE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_EVIDENCE_FILE_BYTES {
        return Err(EvidenceError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let file: EvidenceFile =
        serde_json::from_slice(&bytes).map_err(|source| EvidenceError::Corrupt {
            path: path.to_path_buf(),
            source,
        })?;
    if file.version != FILE_VERSION {
        return Err(EvidenceError::Version {
            path: path.to_path_buf(),
            version: file.version,
        });
    }
    Ok(file)
}

/// Writes `<file>.tmp`, syncs it, and renames it over the file: a crash mid-save leaves the
/// previous evidence, never half a file.
pub(super) fn write_file(path: &Path, file: &EvidenceFile) -> Result<(), EvidenceError> {
    let tmp = with_suffix(path, ".tmp");
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| EvidenceError::Io { path: p, source }
    };
    let bytes = serde_json::to_vec(file).map_err(|source| EvidenceError::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    out.write_all(&bytes).map_err(io(&tmp))?;
    out.sync_all().map_err(io(&tmp))?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// A lift, as the evidence file keeps it (the last one per domain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifted {
    /// Unix seconds.
    pub at: u64,
    pub by: String,
    pub reason: String,
    /// The escalation that was lifted.
    pub escalated: Escalated,
}

/// The shared key of a friendly federator's day counts.
pub(super) fn ff_key(domain: &str) -> String {
    format!("ff:{domain}")
}

/// The shared key of a content rule's day counts for one domain.
pub(super) fn content_key(rule: &str, domain: &str) -> String {
    format!("cr:{rule}:{domain}")
}

//! Remote rule sources: `[[subscriptions]]` (a list at a URL, fetched on an interval) and
//! `[mastodon]` (Mastodon's own domain blocks from its admin API), each kept in force as a
//! `rules::MemorySource` labelled with its URL.
//!
//! The contract for every remote source:
//! * its last good copy stays in force whatever later fetches return: an error status, a
//!   timeout, a refused address, an oversized or malformed body is logged, counted in
//!   `inboxguard_subscription_fetches_total{source,result}` and changes nothing;
//! * the last good copy is also on disk (`cache`) and is put in force at startup before the
//!   first fetch, so a restart while the source is down loses nothing; `check` and `explain`
//!   read the same copies ([`load_cached`]) without touching the network;
//! * subscriptions send `If-None-Match` / `If-Modified-Since` from the copy in force; a 304
//!   keeps it;
//! * one task per source ([`Remotes::start`]) refreshes at once, then every `refresh_secs`
//!   (±10% jitter so many instances subscribed to one list do not arrive together); after a
//!   failure it retries sooner, backing off from [`RETRY_MIN`] up to `refresh_secs`.

mod cache;
mod http;
mod mastodon;
mod schedule;

pub use cache::{Cache, CacheError, CachedCopy};
pub(crate) use http::{fetch_error, same_origin};
pub use http::{link_next, FetchError, Getter, Limits, MAX_REDIRECTS};
pub(crate) use mastodon::read_bearer;
pub use mastodon::{AllowList, MastodonPull, PAGE_LIMIT};
pub(crate) use schedule::next_delay;
pub use schedule::{Remotes, RETRY_MIN};

use crate::clock::unix_now;
use crate::config::{BlocklistFormat, Config, SourceKind, SubscriptionConfig, SubscriptionFormat};
use crate::metrics::Metrics;
use crate::policy::sources::{self, LoadError, ParsedSource};
use crate::rules::{MemorySource, Rules};
use ::http::header::{ACCEPT, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use ::http::{HeaderMap, HeaderValue, StatusCode};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use url::Url;

/// Why a refresh left the copy in force unchanged.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The fetch failed (network, status, size, ...).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The answer arrived but is not a valid list (with the line where it is wrong).
    #[error("malformed list: {0}")]
    Malformed(LoadError),
    /// A 304 answered a request that carried no validators (nothing to keep).
    #[error("answered 304 Not Modified to an unconditional request")]
    UnexpectedNotModified,
    /// `headers_file` could not be read, or a line in it is not a `Name: value` header.
    #[error("headers_file: {0}")]
    Headers(String),
    /// The answer would remove more than `max_shrink` of the rules in force (an empty body, a
    /// header-only CSV): held back until an operator accepts it.
    #[error("new copy lists {rules} rules and would remove more than max_shrink of the copy in force; held back until accepted")]
    Shrink { rules: usize },
}

impl RefreshError {
    /// The bounded `result` label.
    pub fn reason(&self) -> &'static str {
        match self {
            RefreshError::Fetch(e) => e.reason(),
            RefreshError::Malformed(_) => "malformed",
            RefreshError::UnexpectedNotModified => "http_status",
            RefreshError::Shrink { .. } => "refused_shrink",
            RefreshError::Headers(_) => "headers_file",
        }
    }
}

/// What a successful refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new list is in force, with this many rules.
    Updated { rules: usize },
    /// A 200 with exactly the body already in force.
    Unchanged,
    /// A 304: the copy in force is current.
    NotModified,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Updated { .. } => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::NotModified => "not_modified",
        }
    }
}

/// The copy of a source now in force: what makes the next request conditional and lets an
/// identical body skip a reload.
#[derive(Debug, Clone)]
struct InForce {
    etag: Option<String>,
    last_modified: Option<String>,
    sha256: Vec<u8>,
}

/// How a remote source's rules take part in the merge (see `rules::MemorySource`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Merge {
    pub dry_run: bool,
    /// An exception list: its domains are taken out of every source's block rules.
    pub exclude: bool,
    /// Counts towards `policy.subscription_threshold` (a shared list); Mastodon's own admin
    /// list is not a subscription and always applies.
    pub subscribed: bool,
    pub priority: i32,
    /// As `SubscriptionConfig::max_shrink`; `None` where the source's owner decides.
    pub max_shrink: Option<f64>,
}

impl Merge {
    fn of(s: &SubscriptionConfig) -> Merge {
        Merge {
            dry_run: s.dry_run,
            exclude: s.is_exception_list(),
            subscribed: true,
            priority: s.priority,
            max_shrink: Some(s.max_shrink),
        }
    }
}

/// A subscription's answer as its config takes it in: parsed in its format (a Fediseer
/// answer with the source's `fediseer` and `min_censures`), `labels_any` / `labels_none`,
/// then `severity_map` and `max_severity`; an allow list's domains become allow entries (an
/// exception list's stay block rules, which the merge makes exceptions).
fn parse_subscription(body: &[u8], config: &SubscriptionConfig) -> Result<ParsedSource, LoadError> {
    let fediseer = config.fediseer_settings().unwrap_or_default();
    let mut parsed = parse_list(body, &config.url, config.format, fediseer)?;
    sources::filter_labels(&mut parsed, &config.labels_any, &config.labels_none);
    sources::import_severities(&mut parsed, &config.severity_map, config.max_severity);
    if config.kind == SourceKind::Allow {
        sources::into_allows(&mut parsed)?;
    }
    Ok(parsed)
}

/// The one place a remote source's rules become a `MemorySource`.
fn memory_source(label: &str, parsed: ParsedSource, merge: Merge) -> MemorySource {
    let mut source = MemorySource::new(label, Arc::new(parsed));
    source.dry_run = merge.dry_run;
    source.exclude = merge.exclude;
    source.subscribed = merge.subscribed;
    source.priority = merge.priority;
    source.max_shrink = merge.max_shrink;
    source
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// Parses a subscription body in its configured format; `Auto` takes a body starting with
/// `[` as JSON, one whose first field is `#domain` as Mastodon CSV, and anything else as a
/// plain list. Never as an inboxguard TOML rules file, whatever the URL ends in: a shared list
/// must not be able to add exceptions, allow entries, actor rules or friendly-federator
/// settings, which only the moderators' own files may say. `fediseer` is how a Fediseer
/// answer is read (its `fediseer` and `min_censures`).
pub fn parse_list(
    body: &[u8],
    label: &str,
    format: SubscriptionFormat,
    fediseer: sources::FediseerSettings,
) -> Result<ParsedSource, LoadError> {
    let source: Arc<str> = Arc::from(label);
    match format {
        SubscriptionFormat::Json => sources::parse_json_bytes(body, source),
        SubscriptionFormat::Fediseer => sources::parse_fediseer_bytes(body, source, fediseer),
        SubscriptionFormat::MastodonCsv => {
            sources::parse_bytes(body, source, BlocklistFormat::MastodonCsv)
        }
        SubscriptionFormat::Plain => sources::parse_bytes(body, source, BlocklistFormat::Plain),
        SubscriptionFormat::Auto => {
            let start = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
            if start.trim_ascii_start().starts_with(b"[") {
                sources::parse_json_bytes(body, source)
            } else if sources::has_mastodon_header(start) {
                sources::parse_bytes(body, source, BlocklistFormat::MastodonCsv)
            } else {
                sources::parse_bytes(body, source, BlocklistFormat::Plain)
            }
        }
    }
}

/// Counts a refresh and logs its outcome.
fn record(metrics: &Metrics, label: &str, result: &Result<Outcome, RefreshError>) {
    let word = match result {
        Ok(outcome) => outcome.label(),
        Err(e) => e.reason(),
    };
    metrics
        .subscription_fetches_total
        .with_label_values(&[label, word])
        .inc();
    match result {
        Ok(outcome) => {
            metrics
                .subscription_last_success_timestamp_seconds
                .with_label_values(&[label])
                .set(i64::try_from(unix_now()).unwrap_or(i64::MAX));
            match outcome {
                Outcome::Updated { rules } => {
                    tracing::info!(source = label, rules, "remote rule source updated")
                }
                _ => tracing::debug!(source = label, result = word, "remote rule source current"),
            }
        }
        Err(e) => tracing::warn!(
            source = label,
            result = word,
            error = %e,
            "remote rule source fetch failed; the last good copy stays in force"
        ),
    }
}

/// Puts `parsed` in force under `label` and stores `copy` as its last good copy. A failing
/// cache write is logged and counted: the rules are in force anyway, only a restart during an
/// outage would miss them. A copy the shrink guard holds back is not written: the disk keeps
/// the copy in force, so a restart cannot put the held one in force unasked. Returns whether
/// the guard held it back.
async fn install(
    rules: &Arc<Rules>,
    metrics: &Metrics,
    cache: &Cache,
    source: MemorySource,
    copy: CachedCopy,
) -> bool {
    let label = source.label.clone();
    let r = rules.clone();
    // `set_memory_source` keeps the source even when a broken local file fails the reload,
    // and logs and counts that failure itself.
    match tokio::task::spawn_blocking(move || r.set_memory_source(source)).await {
        Ok(Err(e)) if e.refused_shrink(&label) => return true,
        Ok(_) => {}
        Err(e) => tracing::error!(source = %label, error = %e, "rules reload task failed"),
    }
    let c = cache.clone();
    let l = label.clone();
    match tokio::task::spawn_blocking(move || c.write(&l, &copy)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => cache_error(metrics, &label, "write", &e),
        Err(e) => tracing::error!(source = %label, error = %e, "cache write task failed"),
    }
    false
}

fn cache_error(metrics: &Metrics, label: &str, op: &str, e: &CacheError) {
    metrics
        .subscription_cache_errors_total
        .with_label_values(&[label, op])
        .inc();
    tracing::warn!(source = label, op, error = %e, "remote rule source disk cache");
}

/// Reads a source's disk copy and parses it with `parse` (blocking). `Ok(None)`: no copy yet.
fn read_cached<T>(
    cache: &Cache,
    label: &str,
    max_bytes: u64,
    parse: impl FnOnce(&[u8]) -> Result<T, LoadError>,
) -> Result<Option<(T, CachedCopy)>, String> {
    let Some(copy) = cache.read(label, max_bytes).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let parsed = parse(&copy.body).map_err(|e| format!("cached copy does not parse: {e}"))?;
    Ok(Some((parsed, copy)))
}

/// One `[[subscriptions]]` entry: fetches its list and keeps the last good copy in force.
pub struct Subscription {
    config: SubscriptionConfig,
    url: Url,
    rules: Arc<Rules>,
    metrics: Arc<Metrics>,
    getter: Arc<Getter>,
    cache: Cache,
    in_force: Mutex<Option<InForce>>,
}

/// What every remote source is built with: where its last good copy is kept (`state.dir`),
/// the one HTTP client, the live rules it puts its copy into, and the metrics.
#[derive(Clone)]
pub struct Shared {
    pub state_dir: std::path::PathBuf,
    pub getter: Arc<Getter>,
    pub rules: Arc<Rules>,
    pub metrics: Arc<Metrics>,
}

impl Subscription {
    /// The URL must pass `config::check_remote_url` (config
    /// validation did that); the error names it otherwise.
    pub fn new(config: SubscriptionConfig, shared: &Shared) -> Result<Subscription, String> {
        let url = crate::config::check_remote_url(&config.url, config.allow_http)?;
        Ok(Subscription {
            cache: Cache::new(&shared.state_dir),
            config,
            url,
            rules: shared.rules.clone(),
            metrics: shared.metrics.clone(),
            getter: shared.getter.clone(),
            in_force: Mutex::new(None),
        })
    }

    /// The `source` label: the URL as configured.
    pub fn label(&self) -> &str {
        &self.config.url
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<InForce>> {
        self.in_force.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a copy of this list is in force (from the disk cache or a fetch).
    pub fn has_copy(&self) -> bool {
        self.lock().is_some()
    }

    /// Puts the disk-cached copy in force, if there is a usable one; a corrupt or unparsable
    /// one is logged, counted and ignored. Returns whether a copy was put in force.
    pub async fn load_cache(&self) -> bool {
        let (cache, config) = (self.cache.clone(), self.config.clone());
        let read = tokio::task::spawn_blocking(move || {
            read_cached(&cache, &config.url, config.max_bytes, |body| {
                parse_subscription(body, &config)
            })
        })
        .await;
        let (parsed, copy) = match read {
            Ok(Ok(Some(found))) => found,
            Ok(Ok(None)) => return false,
            Ok(Err(problem)) => {
                self.metrics
                    .subscription_cache_errors_total
                    .with_label_values(&[self.label(), "read"])
                    .inc();
                tracing::warn!(source = self.label(), problem, "ignoring the cached copy");
                return false;
            }
            Err(e) => {
                tracing::error!(source = self.label(), error = %e, "cache read task failed");
                return false;
            }
        };
        tracing::info!(
            source = self.label(),
            rules = parsed.len(),
            fetched_at = copy.fetched_at,
            "cached copy in force until the first fetch"
        );
        self.put_in_force(parsed, copy, false).await;
        true
    }

    /// Returns whether the shrink guard held the copy back (then it is not the copy in force,
    /// and the next fetch tries again).
    async fn put_in_force(&self, parsed: ParsedSource, copy: CachedCopy, write: bool) -> bool {
        let state = InForce {
            etag: copy.etag.clone(),
            last_modified: copy.last_modified.clone(),
            sha256: sha256(&copy.body),
        };
        let source = memory_source(self.label(), parsed, Merge::of(&self.config));
        if write {
            if install(&self.rules, &self.metrics, &self.cache, source, copy).await {
                return true;
            }
        } else {
            let rules = self.rules.clone();
            if let Err(e) =
                tokio::task::spawn_blocking(move || rules.set_memory_source(source)).await
            {
                tracing::error!(source = self.label(), error = %e, "rules reload task failed");
            }
        }
        *self.lock() = Some(state);
        false
    }

    /// Fetches the list once (conditionally when a copy is in force) and puts a new, valid
    /// copy in force. Logged and counted; on error the copy in force stays.
    pub async fn refresh(&self) -> Result<Outcome, RefreshError> {
        let result = self.refresh_uncounted().await;
        record(&self.metrics, self.label(), &result);
        result
    }

    async fn refresh_uncounted(&self) -> Result<Outcome, RefreshError> {
        let in_force = self.lock().clone();
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(accept(self.config.format)));
        if let Some(path) = &self.config.headers_file {
            add_headers_file(&mut headers, path)?;
        }
        let mut conditional = false;
        if let Some(f) = &in_force {
            for (name, value) in [
                (IF_NONE_MATCH, &f.etag),
                (IF_MODIFIED_SINCE, &f.last_modified),
            ] {
                if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                    headers.insert(name, v);
                    conditional = true;
                }
            }
        }
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let get = self
            .getter
            .get_following_redirects(&self.url, &headers, self.limits());
        let answer =
            tokio::time::timeout(timeout, get)
                .await
                .map_err(|_| FetchError::Timeout {
                    secs: self.config.timeout_secs,
                })??;
        if answer.status == StatusCode::NOT_MODIFIED {
            return if conditional {
                Ok(Outcome::NotModified)
            } else {
                Err(RefreshError::UnexpectedNotModified)
            };
        }
        if !answer.status.is_success() {
            return Err(FetchError::HttpStatus {
                status: answer.status.as_u16(),
            }
            .into());
        }
        let header = |name| {
            answer
                .headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let copy = CachedCopy {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
            fetched_at: unix_now(),
            body: answer.body.to_vec(),
        };
        let digest = sha256(&copy.body);
        if in_force.is_some_and(|f| f.sha256 == digest) {
            // Same list: keep it, but remember the new validators for the next request.
            *self.lock() = Some(InForce {
                etag: copy.etag,
                last_modified: copy.last_modified,
                sha256: digest,
            });
            return Ok(Outcome::Unchanged);
        }
        let parsed =
            parse_subscription(&copy.body, &self.config).map_err(RefreshError::Malformed)?;
        let rules = parsed.len();
        if self.put_in_force(parsed, copy, true).await {
            return Err(RefreshError::Shrink { rules });
        }
        Ok(Outcome::Updated { rules })
    }

    /// What this source allows a GET to do.
    fn limits(&self) -> Limits {
        Limits {
            max_bytes: self.config.max_bytes,
            allow_http: self.config.allow_http,
            allow_private_addresses: self.config.allow_private_addresses,
        }
    }
}

/// Adds the `Name: value` lines of `path` (blank lines and `#` comments skipped) to
/// `headers`, marked sensitive. Errors name the line, never its value.
fn add_headers_file(headers: &mut HeaderMap, path: &Path) -> Result<(), RefreshError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RefreshError::Headers(format!("{}: {e}", path.display())))?;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || {
            RefreshError::Headers(format!(
                "{}:{}: expected `Name: value`",
                path.display(),
                i + 1
            ))
        };
        let (name, value) = line.split_once(':').ok_or_else(bad)?;
        let name = ::http::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
        let mut value = HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(())
}

fn accept(format: SubscriptionFormat) -> &'static str {
    match format {
        SubscriptionFormat::Json | SubscriptionFormat::Fediseer => "application/json",
        SubscriptionFormat::MastodonCsv => "text/csv, text/plain;q=0.9, */*;q=0.1",
        SubscriptionFormat::Plain => "text/plain, */*;q=0.1",
        SubscriptionFormat::Auto => "text/csv, application/json, text/plain;q=0.9, */*;q=0.1",
    }
}

/// The disk-cached copies of every remote source of `config`, for `check` and `explain`
/// (blocking; no network): what `serve` would put in force before its first fetch.
#[derive(Debug, Default)]
pub struct CachedSources {
    /// In config order, then Mastodon's domain blocks.
    pub sources: Vec<MemorySource>,
    /// Mastodon's domain allows, when pulled and cached.
    pub allows: Option<AllowList>,
    /// One line per remote source without a usable copy (none yet, corrupt, unparsable).
    pub missing: Vec<String>,
}

pub fn load_cached(config: &Config) -> CachedSources {
    let cache = Cache::new(&config.state.dir);
    let mut out = CachedSources::default();
    for s in &config.subscriptions {
        match read_cached(&cache, &s.url, s.max_bytes, |body| {
            parse_subscription(body, s)
        }) {
            Ok(Some((parsed, _))) => out
                .sources
                .push(memory_source(&s.url, parsed, Merge::of(s))),
            Ok(None) => out
                .missing
                .push(format!("{}: no cached copy yet (serve fetches it)", s.url)),
            Err(problem) => out.missing.push(format!("{}: {problem}", s.url)),
        }
    }
    if let Some(m) = &config.mastodon {
        mastodon::load_cached(m, &cache, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_format_picks_json_by_its_bracket() {
        let cases: [(&[u8], sources::Format); 3] = [
            (
                b"\xEF\xBB\xBF  [{\"domain\": \"a.example\"}]",
                sources::Format::Json,
            ),
            (
                b"#domain,#severity\nb.example,silence\n",
                sources::Format::MastodonCsv,
            ),
            (b"c.example\n", sources::Format::Plain),
        ];
        for (body, format) in cases {
            let parsed =
                parse_list(body, "u", SubscriptionFormat::Auto, Default::default()).expect("auto");
            assert_eq!(parsed.format, format, "{format:?}");
        }
        assert!(parse_list(
            b"c.example\n",
            "u",
            SubscriptionFormat::Json,
            Default::default()
        )
        .is_err());
        assert!(parse_list(
            b"c.example\n",
            "u",
            SubscriptionFormat::MastodonCsv,
            Default::default()
        )
        .is_err());
    }
}

//! Mastodon's admin API as a rule source, so moderators keep using Mastodon's admin UI as the
//! source of truth: `GET /api/v1/admin/domain_blocks` (and `/api/v1/admin/domain_allows`) with
//! a bearer token, 500 entries per page, following `Link: <...>; rel="next"` until the last
//! page (Mastodon sends `next` only for a full page).
//!
//! The token is read from `token_file` before every pull (a rotated token is picked up), sent
//! only to the configured origin (a `next` link to another origin is refused and redirects
//! are not followed), marked sensitive, and never logged.
//!
//! Domain blocks become the memory source labelled `<url>/api/v1/admin/domain_blocks`. Domain
//! allows are parsed, cached like the blocks, and put in force as a source of allow entries
//! (which decide who may deliver in `policy.mode = "allowlist"`); [`MastodonPull::domain_allows`]
//! and `CachedSources::allows` give the list as pulled.

use super::http::{link_next, same_origin, FetchError, Getter, Limits};
use super::Shared;
use super::{
    install, memory_source, read_cached, record, sha256, unix_now, Cache, CachedCopy,
    CachedSources, Merge, Outcome, RefreshError,
};
use crate::config::MastodonApiConfig;
use crate::metrics::Metrics;
use crate::policy::sources::{self, AllowEntry, LoadError, LoadErrorKind, ParsedSource};
use crate::policy::DomainEntry;
use crate::rules::{MemorySource, Rules};
use ::http::header::{ACCEPT, AUTHORIZATION};
use ::http::{HeaderMap, HeaderValue, StatusCode};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use url::Url;

/// Entries per page: Mastodon's `MAX_LIMIT` since 4.3 (older versions cap at 200 and still
/// paginate correctly).
pub const PAGE_LIMIT: &str = "500";
const BLOCKS_PATH: &str = "api/v1/admin/domain_blocks";
const ALLOWS_PATH: &str = "api/v1/admin/domain_allows";

/// Mastodon's domain allows, as last pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    /// The endpoint URL, as a source label.
    pub source: String,
    pub domains: Vec<AllowEntry>,
}

/// What is in force from the last good pulls.
#[derive(Default)]
struct State {
    blocks: Option<Vec<u8>>,
    allows: Option<(Vec<u8>, Arc<AllowList>)>,
}

/// The `[mastodon]` pull.
pub struct MastodonPull {
    config: MastodonApiConfig,
    base: Url,
    blocks_label: String,
    allows_label: String,
    rules: Arc<Rules>,
    metrics: Arc<Metrics>,
    getter: Arc<Getter>,
    cache: Cache,
    state: Mutex<State>,
}

impl MastodonPull {
    /// Checks the URL and that the token file holds a usable token now (so a wrong path fails
    /// at startup, not an hour later).
    pub fn new(config: MastodonApiConfig, shared: &Shared) -> Result<MastodonPull, String> {
        let base = crate::config::check_remote_url(&config.url, config.allow_http)?;
        let text = std::fs::read_to_string(&config.token_file)
            .map_err(|e| format!("{}: cannot read: {e}", config.token_file.display()))?;
        bearer(&text).map_err(|problem| format!("{}: {problem}", config.token_file.display()))?;
        let label = |path| base.join(path).map(String::from).map_err(|e| e.to_string());
        Ok(MastodonPull {
            blocks_label: label(BLOCKS_PATH)?,
            allows_label: label(ALLOWS_PATH)?,
            base,
            cache: Cache::new(&shared.state_dir),
            config,
            rules: shared.rules.clone(),
            metrics: shared.metrics.clone(),
            getter: shared.getter.clone(),
            state: Mutex::new(State::default()),
        })
    }

    /// The domain blocks' `source` label: `<url>/api/v1/admin/domain_blocks`.
    pub fn blocks_label(&self) -> &str {
        &self.blocks_label
    }

    /// The domain allows' `source` label: `<url>/api/v1/admin/domain_allows`.
    pub fn allows_label(&self) -> &str {
        &self.allows_label
    }

    pub fn refresh_secs(&self) -> u64 {
        self.config.refresh_secs
    }

    /// The domain allows of the last good pull (or the disk cache), when `domain_allows` is on.
    pub fn domain_allows(&self) -> Option<Arc<AllowList>> {
        self.lock().allows.as_ref().map(|(_, a)| a.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether every list this pull is configured for has a copy in force.
    pub fn has_copy(&self) -> bool {
        let state = self.lock();
        (!self.config.domain_blocks || state.blocks.is_some())
            && (!self.config.domain_allows || state.allows.is_some())
    }

    /// Puts the disk-cached copies in force; a corrupt one is logged, counted and ignored.
    pub async fn load_cache(&self) {
        if self.config.domain_blocks {
            let parse =
                |body: &[u8], label: &str| sources::parse_json_bytes(body, Arc::from(label));
            if let Some((parsed, copy)) = self.read_cache(&self.blocks_label, parse).await {
                tracing::info!(
                    source = %self.blocks_label,
                    rules = parsed.rules.len(),
                    fetched_at = copy.fetched_at,
                    "cached copy in force until the first pull"
                );
                let source = memory_source(&self.blocks_label, parsed, blocks_merge(&self.config));
                self.put_in_force(source).await;
                self.lock().blocks = Some(sha256(&copy.body));
            }
        }
        if self.config.domain_allows {
            let parse = |body: &[u8], label: &str| sources::parse_allow_json_bytes(body, label);
            if let Some((domains, copy)) = self.read_cache(&self.allows_label, parse).await {
                self.put_in_force(allow_source(&self.allows_label, &domains))
                    .await;
                let list = AllowList {
                    source: self.allows_label.clone(),
                    domains,
                };
                self.lock().allows = Some((sha256(&copy.body), Arc::new(list)));
            }
        }
    }

    /// Reads and parses the disk-cached copy under `label` off the runtime. `None`: no copy,
    /// or one that cannot be used (logged and counted).
    async fn read_cache<T: Send + 'static>(
        &self,
        label: &str,
        parse: fn(&[u8], &str) -> Result<T, LoadError>,
    ) -> Option<(T, CachedCopy)> {
        let (cache, owned, max) = (self.cache.clone(), label.to_string(), self.config.max_bytes);
        let read = tokio::task::spawn_blocking(move || {
            read_cached(&cache, &owned, max, |body| parse(body, &owned))
        })
        .await;
        match read {
            Ok(Ok(found)) => found,
            Ok(Err(problem)) => {
                self.cache_problem(label, &problem);
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "cache read task failed");
                None
            }
        }
    }

    /// `set_memory_source` off the runtime; it logs and counts a failed reload itself.
    async fn put_in_force(&self, source: MemorySource) {
        let rules = self.rules.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || rules.set_memory_source(source)).await {
            tracing::error!(error = %e, "rules reload task failed");
        }
    }

    fn cache_problem(&self, label: &str, problem: &str) {
        self.metrics
            .subscription_cache_errors_total
            .with_label_values(&[label, "read"])
            .inc();
        tracing::warn!(source = label, problem, "ignoring the cached copy");
    }

    /// Pulls every configured list once (each logged and counted under its own label); true
    /// when all succeeded.
    pub async fn refresh(&self) -> bool {
        let mut ok = true;
        if self.config.domain_blocks {
            let result = self.refresh_blocks().await;
            record(&self.metrics, &self.blocks_label, &result);
            ok &= result.is_ok();
        }
        if self.config.domain_allows {
            let result = self.refresh_allows().await;
            record(&self.metrics, &self.allows_label, &result);
            ok &= result.is_ok();
        }
        ok
    }

    async fn refresh_blocks(&self) -> Result<Outcome, RefreshError> {
        let body = self.pull(BLOCKS_PATH, &self.blocks_label).await?;
        let digest = sha256(&body);
        if self.lock().blocks.as_ref() == Some(&digest) {
            return Ok(Outcome::Unchanged);
        }
        let parsed = sources::parse_json_bytes(&body, Arc::from(self.blocks_label.as_str()))
            .map_err(RefreshError::Malformed)?;
        let rules = parsed.rules.len();
        let source = memory_source(&self.blocks_label, parsed, blocks_merge(&self.config));
        install(&self.rules, &self.metrics, &self.cache, source, copy(body)).await;
        self.lock().blocks = Some(digest);
        Ok(Outcome::Updated { rules })
    }

    async fn refresh_allows(&self) -> Result<Outcome, RefreshError> {
        let body = self.pull(ALLOWS_PATH, &self.allows_label).await?;
        let digest = sha256(&body);
        if self.lock().allows.as_ref().map(|(d, _)| d) == Some(&digest) {
            return Ok(Outcome::Unchanged);
        }
        let domains = sources::parse_allow_json_bytes(&body, &self.allows_label)
            .map_err(RefreshError::Malformed)?;
        let count = domains.len();
        let source = allow_source(&self.allows_label, &domains);
        // A failed reload is logged and counted; the allows stay stored for the next one.
        self.put_in_force(source).await;
        let list = Arc::new(AllowList {
            source: self.allows_label.clone(),
            domains,
        });
        let (cache, label, copy) = (self.cache.clone(), self.allows_label.clone(), copy(body));
        match tokio::task::spawn_blocking(move || cache.write(&label, &copy)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => super::cache_error(&self.metrics, &self.allows_label, "write", &e),
            Err(e) => tracing::error!(error = %e, "cache write task failed"),
        }
        self.lock().allows = Some((digest, list));
        Ok(Outcome::Updated { rules: count })
    }

    /// GETs every page of `path` and joins their entries into one JSON array, one entry per
    /// line (so an error's line number is the entry's position in the whole list).
    async fn pull(&self, path: &str, label: &str) -> Result<Vec<u8>, RefreshError> {
        let token = self.token().await?;
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, token);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let mut url = self.base.join(path).map_err(|_| FetchError::InvalidUrl {
            url: self.config.url.clone(),
        })?;
        url.query_pairs_mut().append_pair("limit", PAGE_LIMIT);
        let max = self.config.max_bytes;
        let too_large = || FetchError::TooLarge { limit: max };
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let mut combined = b"[".to_vec();
        let mut entries = 0usize;
        let mut pages = 0usize;
        loop {
            if pages == self.config.max_pages {
                return Err(FetchError::TooManyPages {
                    limit: self.config.max_pages,
                }
                .into());
            }
            pages += 1;
            let remaining = max.saturating_sub(combined.len() as u64);
            if remaining == 0 {
                return Err(too_large().into());
            }
            let limits = Limits {
                max_bytes: remaining,
                allow_http: self.config.allow_http,
                allow_private_addresses: self.config.allow_private_addresses,
            };
            let answer = tokio::time::timeout(timeout, self.getter.get(&url, &headers, limits))
                .await
                .map_err(|_| FetchError::Timeout {
                    secs: self.config.timeout_secs,
                })?
                .map_err(|e| match e {
                    FetchError::TooLarge { .. } => too_large(),
                    e => e,
                })?;
            if answer.status != StatusCode::OK {
                if matches!(
                    answer.status,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ) {
                    tracing::warn!(
                        source = label,
                        status = answer.status.as_u16(),
                        "Mastodon refused the token: it needs an admin account's token with scope admin:read:domain_blocks (and admin:read:domain_allows)"
                    );
                }
                return Err(FetchError::HttpStatus {
                    status: answer.status.as_u16(),
                }
                .into());
            }
            let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(&answer.body)
                .map_err(|e| {
                    RefreshError::Malformed(LoadError {
                        file: format!("{label} (page {pages})"),
                        line: e.line(),
                        kind: LoadErrorKind::Json(Arc::new(e)),
                    })
                })?;
            if items.is_empty() {
                break;
            }
            for item in items {
                if entries > 0 {
                    combined.extend_from_slice(b",\n");
                }
                combined.extend_from_slice(item.get().as_bytes());
                entries += 1;
            }
            if combined.len() as u64 >= max {
                return Err(too_large().into());
            }
            match link_next(&answer.headers, &url) {
                None => break,
                Some(next) if same_origin(&next, &self.base) => url = next,
                Some(next) => {
                    return Err(FetchError::CrossOrigin {
                        url: next.to_string(),
                    }
                    .into())
                }
            }
        }
        combined.push(b']');
        tracing::debug!(source = label, pages, entries, "Mastodon list pulled");
        Ok(combined)
    }

    /// The `Authorization` value from the token file, read now.
    async fn token(&self) -> Result<HeaderValue, FetchError> {
        read_bearer(&self.config.token_file).await
    }
}

/// The `Authorization` value from the token file at `path`, read now (the pull and the push
/// read it before each use, so a rotated token needs no restart).
pub(crate) async fn read_bearer(path: &Path) -> Result<HeaderValue, FetchError> {
    let shown = path.display().to_string();
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| FetchError::Token {
            path: shown.clone(),
            problem: format!("cannot read: {e}"),
        })?;
    bearer(&text).map_err(|problem| FetchError::Token {
        path: shown,
        problem,
    })
}

/// `Bearer <token>` from a token file's text, marked sensitive (kept out of debug output).
/// The problem text never contains the token.
fn bearer(text: &str) -> Result<HeaderValue, String> {
    let token = text.trim();
    if token.is_empty() {
        return Err("the token file is empty".into());
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the token contains characters not allowed in a header".to_string())?;
    value.set_sensitive(true);
    Ok(value)
}

fn copy(body: Vec<u8>) -> CachedCopy {
    CachedCopy {
        body,
        etag: None,
        last_modified: None,
        fetched_at: unix_now(),
    }
}

/// Mastodon's own block list is the instance's source of truth, not a shared subscription:
/// it always applies (never held back by `policy.subscription_threshold`).
fn blocks_merge(config: &MastodonApiConfig) -> Merge {
    Merge {
        dry_run: config.dry_run,
        exclude: false,
        subscribed: false,
        priority: 0,
        max_shrink: None,
    }
}

/// Mastodon's domain allows as a rule source of allow entries: in `policy.mode = "allowlist"`
/// they say who may deliver (Mastodon's limited federation mode); in blocklist mode they are
/// informational, as any allow list.
fn allow_source(label: &str, domains: &[AllowEntry]) -> MemorySource {
    let source: Arc<str> = Arc::from(label);
    let mut parsed = ParsedSource::new(sources::Format::Json);
    parsed.allows = domains
        .iter()
        .map(|d| DomainEntry {
            domain: d.domain.as_str().into(),
            comment: None,
            source: source.clone(),
            line: d.line,
        })
        .collect();
    MemorySource::new(label, Arc::new(parsed))
}

/// `check`/`explain`: the cached blocks as a source and the cached allows (blocking).
pub(super) fn load_cached(config: &MastodonApiConfig, cache: &Cache, out: &mut CachedSources) {
    let Ok(base) = crate::config::check_remote_url(&config.url, config.allow_http) else {
        return;
    };
    let label = |path| base.join(path).map(String::from).unwrap_or_default();
    if config.domain_blocks {
        let label = label(BLOCKS_PATH);
        match read_cached(cache, &label, config.max_bytes, |body| {
            sources::parse_json_bytes(body, Arc::from(label.as_str()))
        }) {
            Ok(Some((parsed, _))) => {
                out.sources
                    .push(memory_source(&label, parsed, blocks_merge(config)))
            }
            Ok(None) => out
                .missing
                .push(format!("{label}: no cached copy yet (serve pulls it)")),
            Err(problem) => out.missing.push(format!("{label}: {problem}")),
        }
    }
    if config.domain_allows {
        let label = label(ALLOWS_PATH);
        match read_cached(cache, &label, config.max_bytes, |body| {
            sources::parse_allow_json_bytes(body, &label)
        }) {
            Ok(Some((domains, _))) => {
                out.sources.push(allow_source(&label, &domains));
                out.allows = Some(AllowList {
                    source: label,
                    domains,
                })
            }
            Ok(None) => out
                .missing
                .push(format!("{label}: no cached copy yet (serve pulls it)")),
            Err(problem) => out.missing.push(format!("{label}: {problem}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values_are_sensitive_and_errors_hide_the_token() {
        let v = bearer("  s3cr3t-token\n").expect("ok");
        assert_eq!(v.to_str().expect("ascii"), "Bearer s3cr3t-token");
        assert!(v.is_sensitive());
        assert_eq!(bearer("\n").expect_err("empty"), "the token file is empty");
        let e = bearer("bad\u{7f}token").expect_err("control char");
        assert!(!e.contains("bad"), "{e}");
    }
}

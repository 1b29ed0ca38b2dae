//! Mastodon's admin API for domain blocks, as the push uses it, over the one outbound client
//! (`crate::net`: scheme and address checks, TLS with the webpki roots, capped bodies):
//! `GET /api/v1/admin/domain_blocks` page by page (`Link: rel="next"`, same origin only),
//! `POST` to create, `PUT /:id` to change severity, flags and comments (never the domain),
//! `DELETE /:id` to lift. Redirects are not followed: the bearer token goes to the configured
//! origin only. Each request is bounded by `[mastodon] timeout_secs`.

use super::plan::{Block, Wanted};
use crate::config::MastodonApiConfig;
use crate::net::{self, Target};
use crate::subscriptions::{fetch_error, link_next, same_origin, FetchError, Limits};
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use std::time::Duration;
use url::Url;

const BLOCKS_PATH: &str = "api/v1/admin/domain_blocks";
/// An error answer's body is read this far, for its message.
const MAX_ERROR_BYTES: u64 = 64 * 1024;

/// Why a request did not do what the push asked.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Transport, token file, timeout, size, pagination (the pull's errors).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("Mastodon refused the token (HTTP {status}): the push needs an admin account's token with scopes admin:read:domain_blocks and admin:write:domain_blocks")]
    Unauthorized { status: u16 },
    /// A create refused because a block already covers the domain (422
    /// `existing_domain_block`).
    #[error("Mastodon already has a block on {domain} (id {id})")]
    Exists { id: String, domain: String },
    #[error("answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("answer is not what Mastodon's admin API sends: {0}")]
    Malformed(String),
}

impl ApiError {
    /// The bounded `result` label.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::Fetch(e) => e.reason(),
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::Exists { .. } => "exists",
            ApiError::Status { status: 404, .. } => "not_found",
            ApiError::Status { status, .. } if *status >= 500 => "server_error",
            ApiError::Status { .. } => "http_status",
            ApiError::Malformed(_) => "malformed",
        }
    }

    /// Whether the rest of the cycle would fail the same way (token, network, Mastodon down):
    /// stop and retry later rather than try every write.
    pub fn stops_cycle(&self) -> bool {
        match self {
            ApiError::Fetch(_) | ApiError::Unauthorized { .. } => true,
            ApiError::Status { status, .. } => *status >= 500 || *status == 429,
            ApiError::Exists { .. } | ApiError::Malformed(_) => false,
        }
    }
}

/// The admin API of the configured instance.
pub struct Api {
    client: net::Client,
    user_agent: HeaderValue,
    base: Url,
    config: MastodonApiConfig,
}

/// A 2xx answer's headers and body.
struct Answer {
    headers: HeaderMap,
    body: Bytes,
}

impl Api {
    /// `config.url` passed validation; `user_agent` is `key_fetch.user_agent`.
    pub fn new(config: &MastodonApiConfig, user_agent: &str) -> Result<Api, String> {
        let base = crate::config::check_remote_url(&config.url, config.allow_http)?;
        let user_agent = HeaderValue::from_str(user_agent)
            .map_err(|_| format!("user agent {user_agent:?} is not a valid header value"))?;
        Ok(Api {
            client: net::Client::new()?,
            user_agent,
            base,
            config: config.clone(),
        })
    }

    /// The blocks endpoint: the journal's and the logs' name for Mastodon's list.
    pub fn label(&self) -> String {
        self.endpoint(None).map(String::from).unwrap_or_default()
    }

    fn endpoint(&self, id: Option<&str>) -> Result<Url, ApiError> {
        let path = match id {
            // Ids are digits; anything else would change the path.
            Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
                format!("{BLOCKS_PATH}/{id}")
            }
            Some(id) => return Err(ApiError::Malformed(format!("block id {id:?}"))),
            None => BLOCKS_PATH.to_string(),
        };
        self.base.join(&path).map_err(|_| {
            ApiError::Fetch(FetchError::InvalidUrl {
                url: self.config.url.clone(),
            })
        })
    }

    /// The `Authorization` value, read from `token_file` now.
    pub async fn token(&self) -> Result<HeaderValue, ApiError> {
        Ok(crate::subscriptions::read_bearer(&self.config.token_file).await?)
    }

    /// Every domain block, following `Link: rel="next"` up to `max_pages` pages and
    /// `max_bytes` in all.
    pub async fn list(&self, token: &HeaderValue) -> Result<Vec<Block>, ApiError> {
        let mut url = self.endpoint(None)?;
        url.query_pairs_mut()
            .append_pair("limit", crate::subscriptions::PAGE_LIMIT);
        let mut blocks = Vec::new();
        let mut left = self.config.max_bytes;
        let too_large = FetchError::TooLarge {
            limit: self.config.max_bytes,
        };
        for _ in 0..self.config.max_pages {
            if left == 0 {
                return Err(too_large.into());
            }
            let answer = match self.call(Method::GET, &url, token, None, left).await {
                Err(ApiError::Fetch(FetchError::TooLarge { .. })) => return Err(too_large.into()),
                answer => answer?,
            };
            left = left.saturating_sub(answer.body.len() as u64);
            let page: Vec<Block> = serde_json::from_slice(&answer.body)
                .map_err(|e| ApiError::Malformed(format!("{url}: {e}")))?;
            if page.is_empty() {
                return Ok(blocks);
            }
            blocks.extend(page);
            match link_next(&answer.headers, &url) {
                None => return Ok(blocks),
                Some(next) if same_origin(&next, &self.base) => url = next,
                Some(next) => {
                    return Err(FetchError::CrossOrigin {
                        url: next.to_string(),
                    }
                    .into())
                }
            }
        }
        Err(FetchError::TooManyPages {
            limit: self.config.max_pages,
        }
        .into())
    }

    pub async fn create(&self, token: &HeaderValue, w: &Wanted) -> Result<Block, ApiError> {
        let url = self.endpoint(None)?;
        let body = fields(w, true);
        match self
            .call(Method::POST, &url, token, Some(body), MAX_ERROR_BYTES)
            .await
        {
            Ok(answer) => parse_block(&answer.body),
            Err(ApiError::Status {
                status: 422,
                message,
            }) => Err(existing(&message).unwrap_or_else(|| ApiError::Status {
                status: 422,
                message: crate::clock::truncate(&message, 512).to_string(),
            })),
            Err(e) => Err(e),
        }
    }

    pub async fn update(
        &self,
        token: &HeaderValue,
        id: &str,
        w: &Wanted,
    ) -> Result<Block, ApiError> {
        let url = self.endpoint(Some(id))?;
        let body = fields(w, false);
        let answer = self
            .call(Method::PUT, &url, token, Some(body), MAX_ERROR_BYTES)
            .await?;
        parse_block(&answer.body)
    }

    pub async fn delete(&self, token: &HeaderValue, id: &str) -> Result<(), ApiError> {
        let url = self.endpoint(Some(id))?;
        self.call(Method::DELETE, &url, token, None, MAX_ERROR_BYTES)
            .await
            .map(|_| ())
    }

    /// One request on a fresh connection. A 2xx is an answer; 401/403 is `Unauthorized`;
    /// any other status is `Status` with the start of its body.
    async fn call(
        &self,
        method: Method,
        url: &Url,
        token: &HeaderValue,
        body: Option<Vec<u8>>,
        max_bytes: u64,
    ) -> Result<Answer, ApiError> {
        let limits = Limits {
            max_bytes,
            allow_http: self.config.allow_http,
            allow_private_addresses: self.config.allow_private_addresses,
        };
        let fail = |host: &str, e| ApiError::Fetch(fetch_error(url, host, limits, e));
        let target = Target::of(url, limits.allow_http).map_err(|e| fail("", e))?;
        let mut request = Request::builder()
            .method(method)
            .uri(target.path_and_query.as_str())
            .header(HOST, target.authority.as_str())
            .header(USER_AGENT, self.user_agent.clone())
            .header(AUTHORIZATION, token.clone())
            .header(ACCEPT, "application/json");
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|_| {
                ApiError::Fetch(FetchError::InvalidUrl {
                    url: url.to_string(),
                })
            })?;
        let secs = self.config.timeout_secs;
        let exchange = async {
            self.client
                .exchange(&target, limits.allow_private_addresses, request, |status| {
                    Some(if status.is_success() {
                        max_bytes
                    } else {
                        MAX_ERROR_BYTES
                    })
                })
                .await
                .map_err(|e| fail(&target.host, e))
        };
        let (status, headers, body) = tokio::time::timeout(Duration::from_secs(secs), exchange)
            .await
            .map_err(|_| ApiError::Fetch(FetchError::Timeout { secs }))??;
        if status.is_success() {
            return Ok(Answer { headers, body });
        }
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(ApiError::Unauthorized {
                status: status.as_u16(),
            });
        }
        // A 422 keeps its whole (capped) body: a create reads `existing_domain_block` from it.
        let text = String::from_utf8_lossy(&body);
        let keep = if status == StatusCode::UNPROCESSABLE_ENTITY {
            text.len()
        } else {
            512
        };
        Err(ApiError::Status {
            status: status.as_u16(),
            message: crate::clock::truncate(&text, keep).to_string(),
        })
    }
}

/// The JSON body of a create (with the domain) or an update (a block's domain cannot change).
/// `obfuscate` is not sent: a moderator may set it on a pushed block and keep it.
fn fields(w: &Wanted, with_domain: bool) -> Vec<u8> {
    let mut body = serde_json::json!({
        "severity": w.severity.as_str(),
        "reject_media": w.reject_media,
        "reject_reports": w.reject_reports,
        "public_comment": w.public_comment,
        "private_comment": w.private_comment,
    });
    if with_domain {
        body["domain"] = serde_json::Value::from(w.domain.as_str());
    }
    body.to_string().into_bytes()
}

fn parse_block(body: &[u8]) -> Result<Block, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Malformed(e.to_string()))
}

/// A 422's `existing_domain_block`, as `Exists`.
pub(super) fn existing(body: &str) -> Option<ApiError> {
    #[derive(serde::Deserialize)]
    struct Refusal {
        existing_domain_block: Existing,
    }
    #[derive(serde::Deserialize)]
    struct Existing {
        #[serde(default)]
        id: serde_json::Value,
        domain: String,
    }
    let r: Refusal = serde_json::from_str(body).ok()?;
    let id = match r.existing_domain_block.id {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    Some(ApiError::Exists {
        id,
        domain: r.existing_domain_block.domain,
    })
}

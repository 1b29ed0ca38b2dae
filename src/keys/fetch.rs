//! The hardened key fetcher: keyId in, checked `publicKeyPem` + owner out.
//!
//! Each GET goes through [`crate::net`] on its own connection. Per GET:
//! 1. the URL must be https (unless `allow_http`); one trailing dot is dropped from the host;
//! 2. the host is resolved through `key_fetch.resolve` or DNS, every address from DNS or the
//!    URL is checked by the SSRF guard in `net::address` (unless `allow_private_addresses`)
//!    and the connection goes to an address that passed, so a second DNS answer cannot swap
//!    in another one;
//! 3. TLS with the webpki roots, SNI = host;
//! 4. `GET` with an ActivityPub `Accept`, signed on behalf of the instance actor when a key is
//!    configured (authorized-fetch servers refuse unsigned fetches);
//! 5. 404/410/other statuses become errors; one redirect is followed, and its target passes
//!    steps 1-4 again;
//! 6. content-type allowlist; body capped by `Content-Length` and while reading; JSON parse.
//!
//! `timeout_secs` bounds the whole lookup of one keyId (both GETs of a bare key object
//! included), so a slow server cannot hold an inbox request longer than that.

use super::bulkhead::Bulkhead;
use super::document::{check_owner_document, parse_key_document, FetchedKey, Parsed};
use super::KeyError;
use crate::config::KeyFetchConfig;
use crate::net::{self, is_web_url, normalise_host, Reach, Target};
use crate::signature::SigningKey;
use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, DATE, HOST, USER_AGENT};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use url::Url;

/// What we ask for: the two ActivityPub media types, as Mastodon asks.
const ACCEPT_ACTIVITYPUB: &str =
    "application/activity+json, application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"";

/// Media types (parameters ignored) a key document may come as.
const ALLOWED_CONTENT_TYPES: &[&str] = &[
    "application/activity+json",
    "application/ld+json",
    "application/json",
];

/// Redirects followed per GET. One covers `http` -> `https` and moved-actor setups; more is
/// a loop or an attempt to walk us around.
const MAX_REDIRECTS: usize = 1;

/// The instance actor's key for signed fetches.
struct Signer {
    key_id: String,
    key: SigningKey,
}

/// Fetches key documents. Holds no connections; cheap to share by reference.
pub(crate) struct Fetcher {
    timeout: Duration,
    max_body_bytes: u64,
    allow_http: bool,
    allow_private_addresses: bool,
    resolve: BTreeMap<String, SocketAddr>,
    user_agent: HeaderValue,
    signer: Option<Signer>,
    client: net::Client,
    bulkhead: Bulkhead,
}

/// What one GET produced.
enum Answer {
    Document(Bytes),
    Redirect(Url),
}

impl Fetcher {
    /// Reads the signing key file, if configured. Errors name the file and the reason.
    pub(crate) fn new(cfg: &KeyFetchConfig) -> Result<Fetcher, String> {
        let signer = match (&cfg.key_id, &cfg.private_key_file) {
            (None, None) => None,
            (Some(key_id), Some(path)) => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
                let key =
                    SigningKey::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
                Some(Signer {
                    key_id: key_id.clone(),
                    key,
                })
            }
            _ => {
                return Err(
                    "key_fetch.key_id and key_fetch.private_key_file go together".to_string(),
                )
            }
        };
        let user_agent = HeaderValue::from_str(&cfg.user_agent).map_err(|_| {
            format!(
                "key_fetch.user_agent {:?} is not a valid header value",
                cfg.user_agent
            )
        })?;
        let resolve = cfg
            .resolve
            .iter()
            .map(|(host, addr)| (normalise_host(host), *addr))
            .collect();
        Ok(Fetcher {
            timeout: Duration::from_secs(cfg.timeout_secs),
            max_body_bytes: cfg.max_body_bytes,
            allow_http: cfg.allow_http,
            allow_private_addresses: cfg.allow_private_addresses,
            resolve,
            user_agent,
            signer,
            client: net::Client::new()?,
            bulkhead: Bulkhead::new(
                cfg.max_concurrent_fetches,
                cfg.max_concurrent_fetches_per_host,
                cfg.circuit_breaker_failures,
                Duration::from_secs(cfg.circuit_breaker_open_secs),
            ),
        })
    }

    /// Fetches the document at `key_id` (and, for a bare key object, its owner's) and returns
    /// the key once every document check passed. The PEM is not parsed here.
    pub(crate) async fn fetch_key(&self, key_id: &str) -> Result<FetchedKey, KeyError> {
        let url = parse_key_id(key_id)?;
        let host = net::host_of(url.as_str()).unwrap_or_default();
        // One budget for waiting on the bulkhead and for the fetch itself, so a request never
        // waits longer than `timeout_secs` for a key however busy the fetcher is.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let permit = tokio::time::timeout_at(deadline, self.bulkhead.admit(key_id, &host))
            .await
            .map_err(|_| KeyError::Overloaded {
                key_id: key_id.to_string(),
                host: host.clone(),
            })??;
        let result = match tokio::time::timeout_at(deadline, self.fetch_key_unbounded(key_id)).await
        {
            Ok(result) => result,
            Err(_) => Err(KeyError::Timeout {
                key_id: key_id.to_string(),
                secs: self.timeout.as_secs(),
            }),
        };
        permit.record(&result);
        result
    }

    async fn fetch_key_unbounded(&self, key_id: &str) -> Result<FetchedKey, KeyError> {
        let url = parse_key_id(key_id)?;
        let doc = self.get_json(key_id, url).await?;
        match parse_key_document(key_id, &doc)? {
            Parsed::Actor(key) => Ok(key),
            Parsed::KeyObject(key) => {
                // The owner is on the keyId's host (checked by the parser) but the URL itself
                // still goes through every check, as the first GET did.
                let owner_url =
                    Url::parse(&key.owner)
                        .ok()
                        .filter(is_web_url)
                        .ok_or_else(|| KeyError::InvalidDocument {
                            key_id: key_id.to_string(),
                            problem: "the key owner is not an http(s) URL",
                        })?;
                let owner_doc = self.get_json(key_id, owner_url).await?;
                check_owner_document(key_id, &key.owner, &owner_doc)?;
                Ok(key)
            }
        }
    }

    /// GETs `url` (following at most [`MAX_REDIRECTS`]) and parses the body as JSON.
    async fn get_json(&self, key_id: &str, mut url: Url) -> Result<serde_json::Value, KeyError> {
        url.set_fragment(None);
        let mut redirects = 0;
        loop {
            match self.get_once(key_id, &url).await? {
                Answer::Document(body) => {
                    return serde_json::from_slice(&body).map_err(|_| KeyError::InvalidJson {
                        key_id: key_id.to_string(),
                    })
                }
                Answer::Redirect(next) => {
                    if !is_web_url(&next) {
                        return Err(KeyError::BadRedirect {
                            key_id: key_id.to_string(),
                            url: super::clip(url.as_str()),
                        });
                    }
                    if redirects == MAX_REDIRECTS {
                        return Err(KeyError::TooManyRedirects {
                            key_id: key_id.to_string(),
                        });
                    }
                    redirects += 1;
                    tracing::debug!(from = %url, to = %next, "key fetch redirected");
                    url = next;
                    url.set_fragment(None);
                }
            }
        }
    }

    /// One GET of `url` on a fresh connection.
    async fn get_once(&self, key_id: &str, url: &Url) -> Result<Answer, KeyError> {
        let target = self.target(key_id, url)?;
        let request = self.request(key_id, &target)?;
        let reach = Reach {
            allow_private_addresses: self.allow_private_addresses,
            pinned: self.resolve.get(&target.host).copied(),
        };
        let (response, _conn) = self
            .client
            .send(&target, reach, request)
            .await
            .map_err(|e| self.net_error(key_id, url, &target.host, e))?;
        // `_conn` keeps the connection driven until the body is read.
        self.answer(key_id, url, &target, response).await
    }

    /// Turns a response head (and body, for a 2xx) into an [`Answer`] or an error.
    async fn answer(
        &self,
        key_id: &str,
        url: &Url,
        target: &Target,
        response: Response<Incoming>,
    ) -> Result<Answer, KeyError> {
        let status = response.status();
        let key_id_s = || key_id.to_string();
        // Redirect targets come from the remote: clip them like any remote string.
        let url_s = || super::clip(url.as_str());
        match status {
            StatusCode::NOT_FOUND => {
                return Err(KeyError::NotFound {
                    key_id: key_id_s(),
                    url: url_s(),
                })
            }
            StatusCode::GONE => {
                return Err(KeyError::Gone {
                    key_id: key_id_s(),
                    url: url_s(),
                })
            }
            StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT => {
                let next = net::redirect_target(response.headers(), url).ok_or_else(|| {
                    KeyError::BadRedirect {
                        key_id: key_id_s(),
                        url: url_s(),
                    }
                })?;
                return Ok(Answer::Redirect(next));
            }
            s if !s.is_success() => {
                return Err(KeyError::HttpStatus {
                    key_id: key_id_s(),
                    url: url_s(),
                    status: s.as_u16(),
                })
            }
            _ => {}
        }

        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        if !is_allowed_content_type(&content_type) {
            return Err(KeyError::BadContentType {
                key_id: key_id_s(),
                content_type: super::clip(&content_type),
            });
        }

        net::read_body(response, self.max_body_bytes)
            .await
            .map(Answer::Document)
            .map_err(|e| self.net_error(key_id, url, &target.host, e))
    }

    /// Checks scheme and host of `url` and splits it into what the GET needs.
    fn target(&self, key_id: &str, url: &Url) -> Result<Target, KeyError> {
        Target::of(url, self.allow_http)
            .map_err(|e| self.net_error(key_id, url, url.host_str().unwrap_or_default(), e))
    }

    /// A failed GET of `url` (on `host`) as a [`KeyError`].
    fn net_error(&self, key_id: &str, url: &Url, host: &str, e: net::Error) -> KeyError {
        let key_id = key_id.to_string();
        let host = host.to_string();
        match e {
            net::Error::InvalidUrl => KeyError::InvalidKeyId { key_id },
            net::Error::InsecureScheme => KeyError::InsecureScheme {
                key_id,
                url: super::clip(url.as_str()),
            },
            net::Error::Dns => KeyError::Dns { key_id, host },
            net::Error::ForbiddenAddress => {
                tracing::warn!(%host, "key fetch refused: no public address");
                KeyError::ForbiddenAddress { key_id, host }
            }
            net::Error::Connect => KeyError::Connect { key_id, host },
            net::Error::Tls => KeyError::Tls { key_id, host },
            net::Error::Protocol => KeyError::Protocol { key_id, host },
            net::Error::TooLarge => KeyError::TooLarge {
                key_id,
                limit: self.max_body_bytes,
            },
        }
    }

    /// The GET, signed when the instance actor's key is configured.
    fn request(&self, key_id: &str, target: &Target) -> Result<Request<Empty<Bytes>>, KeyError> {
        let date = httpdate::fmt_http_date(SystemTime::now());
        let invalid = || KeyError::InvalidKeyId {
            key_id: key_id.to_string(),
        };
        let mut builder = Request::get(target.path_and_query.as_str())
            .header(HOST, target.authority.as_str())
            .header(ACCEPT, ACCEPT_ACTIVITYPUB)
            .header(USER_AGENT, self.user_agent.clone())
            .header(DATE, date.as_str());
        if let Some(signer) = &self.signer {
            let header = signature_header(signer, target, &date).ok_or_else(invalid)?;
            builder = builder.header("signature", header);
        }
        builder.body(Empty::new()).map_err(|_| invalid())
    }
}

/// The `Signature` header of a GET, as Mastodon signs fetches: `(request-target) host date`.
/// `None` only if signing fails inside aws-lc-rs.
fn signature_header(signer: &Signer, target: &Target, date: &str) -> Option<String> {
    let signing_string = format!(
        "(request-target): get {}\nhost: {}\ndate: {}",
        target.path_and_query, target.authority, date
    );
    let signature = signer.key.sign(signing_string.as_bytes()).ok()?;
    // Mastodon verifies cavage signatures as RSA whatever the label says; hs2019 is the
    // honest label for anything else.
    let algorithm = match signer.key {
        SigningKey::Rsa(_) => "rsa-sha256",
        SigningKey::Ed25519(_) => "hs2019",
    };
    Some(format!(
        "keyId=\"{}\",algorithm=\"{algorithm}\",headers=\"(request-target) host date\",signature=\"{}\"",
        signer.key_id,
        base64::engine::general_purpose::STANDARD.encode(signature)
    ))
}

/// The keyId as a URL to fetch: absolute http(s) with a host, fragment dropped.
fn parse_key_id(key_id: &str) -> Result<Url, KeyError> {
    let invalid = || KeyError::InvalidKeyId {
        key_id: key_id.to_string(),
    };
    let mut url = Url::parse(key_id).map_err(|_| invalid())?;
    if !is_web_url(&url) {
        return Err(invalid());
    }
    url.set_fragment(None);
    Ok(url)
}

fn is_allowed_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    ALLOWED_CONTENT_TYPES
        .iter()
        .any(|allowed| essence.eq_ignore_ascii_case(allowed))
}

#[cfg(test)]
mod tests;

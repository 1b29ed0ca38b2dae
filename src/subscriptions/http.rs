//! One outbound GET for a remote rule source, over `crate::net` (scheme and address checks,
//! TLS, a size-capped body), and the URL helpers pagination needs.
//!
//! Subscription URLs are chosen by the operator, not by senders, but a list host that
//! redirects to `http://169.254.169.254/` must not make us fetch from the operator's own
//! network, so every hop's addresses pass the SSRF guard in `net::address` unless the source
//! sets `allow_private_addresses`. The timeout is the caller's (`tokio::time::timeout` around
//! the whole exchange).

use crate::net::{self, Target};
use bytes::Bytes;
use http::header::{HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::Empty;
use url::Url;

/// Redirects a subscription fetch follows (list hosts move files, e.g. raw.githubusercontent).
pub const MAX_REDIRECTS: usize = 5;

/// Why a remote source could not be fetched. Each variant has a `reason` used as the
/// `result` label of `inboxguard_subscription_fetches_total`.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A URL (a redirect target or a `Link` header) that is not absolute http(s) with a host.
    #[error("{url}: not an http(s) URL with a host")]
    InvalidUrl { url: String },
    /// An http URL without `allow_http`.
    #[error("{url}: plain http is not allowed for this source")]
    InsecureScheme { url: String },
    /// The host did not resolve.
    #[error("{host}: DNS lookup failed")]
    Dns { host: String },
    /// Every address of the host is private, loopback or otherwise refused.
    #[error("{host}: resolves only to private or reserved addresses")]
    ForbiddenAddress { host: String },
    /// No address accepted the connection.
    #[error("{host}: cannot connect")]
    Connect { host: String },
    /// The TLS handshake failed (certificate, protocol).
    #[error("{host}: TLS handshake failed")]
    Tls { host: String },
    /// The HTTP exchange broke (bad response, connection lost mid-body).
    #[error("{host}: HTTP protocol error")]
    Protocol { host: String },
    /// The source's `timeout_secs` passed.
    #[error("no complete answer within {secs} s")]
    Timeout { secs: u64 },
    /// A status other than 2xx, 304 or a followed redirect.
    #[error("answered HTTP {status}")]
    HttpStatus { status: u16 },
    /// The body is (or says it is) over the source's `max_bytes`.
    #[error("answer is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// More redirects than [`MAX_REDIRECTS`], or one without a usable `Location`.
    #[error("{url}: redirect without a usable Location, or too many redirects")]
    Redirect { url: String },
    /// A pagination link to another origin (the bearer token would go there).
    #[error("{url}: pagination link leaves the configured origin")]
    CrossOrigin { url: String },
    /// More pages than `mastodon.max_pages`.
    #[error("more than {limit} pages")]
    TooManyPages { limit: usize },
    /// The token file could not be read or holds no usable token.
    #[error("{path}: {problem}")]
    Token { path: String, problem: String },
}

impl FetchError {
    /// The bounded `result` label.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::InvalidUrl { .. } => "invalid_url",
            FetchError::InsecureScheme { .. } => "insecure_scheme",
            FetchError::Dns { .. } => "dns",
            FetchError::ForbiddenAddress { .. } => "forbidden_address",
            FetchError::Connect { .. } => "connect",
            FetchError::Tls { .. } => "tls",
            FetchError::Protocol { .. } => "protocol",
            FetchError::Timeout { .. } => "timeout",
            FetchError::HttpStatus { .. } => "http_status",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::Redirect { .. } => "redirect",
            FetchError::CrossOrigin { .. } => "cross_origin",
            FetchError::TooManyPages { .. } => "too_many_pages",
            FetchError::Token { .. } => "token",
        }
    }
}

/// What one source allows a GET to do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub allow_http: bool,
    pub allow_private_addresses: bool,
}

/// A response: status, headers, and the body when the status is 2xx (else empty).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Makes GETs; holds no connections (each GET has its own: a list is fetched once an hour).
pub struct Getter {
    client: net::Client,
    user_agent: HeaderValue,
}

impl Getter {
    /// `user_agent` must be a valid header value (config validation checks
    /// `key_fetch.user_agent`, which is what callers pass).
    pub fn new(user_agent: &str) -> Result<Getter, String> {
        let user_agent = HeaderValue::from_str(user_agent)
            .map_err(|_| format!("user agent {user_agent:?} is not a valid header value"))?;
        Ok(Getter {
            client: net::Client::new()?,
            user_agent,
        })
    }

    /// One GET of `url` with `headers` added, on a fresh connection. Redirects are returned,
    /// not followed (the caller decides whether it may follow them).
    pub async fn get(
        &self,
        url: &Url,
        headers: &HeaderMap,
        limits: Limits,
    ) -> Result<Answer, FetchError> {
        let fail = |host: &str, e| fetch_error(url, host, limits, e);
        let target = Target::of(url, limits.allow_http).map_err(|e| fail("", e))?;
        let mut request = Request::get(target.path_and_query.as_str())
            .header(HOST, target.authority.as_str())
            .header(USER_AGENT, self.user_agent.clone())
            .body(Empty::<Bytes>::new())
            .map_err(|_| FetchError::InvalidUrl {
                url: url.to_string(),
            })?;
        for (name, value) in headers {
            request.headers_mut().insert(name, value.clone());
        }
        let (status, headers, body) = self
            .client
            .exchange(&target, limits.allow_private_addresses, request, |status| {
                status.is_success().then_some(limits.max_bytes)
            })
            .await
            .map_err(|e| fail(&target.host, e))?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// GETs `url`, following up to [`MAX_REDIRECTS`] redirects; each hop is checked again
    /// (scheme, addresses). A 304 is an answer, not a redirect.
    pub(crate) async fn get_following_redirects(
        &self,
        url: &Url,
        headers: &HeaderMap,
        limits: Limits,
    ) -> Result<Answer, FetchError> {
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let answer = self.get(&url, headers, limits).await?;
            if !answer.status.is_redirection() || answer.status == StatusCode::NOT_MODIFIED {
                return Ok(answer);
            }
            let next = net::redirect_target(&answer.headers, &url).ok_or_else(|| {
                FetchError::Redirect {
                    url: url.to_string(),
                }
            })?;
            tracing::debug!(from = %url, to = %next, "subscription redirected");
            url = next;
        }
        Err(FetchError::Redirect {
            url: url.to_string(),
        })
    }
}

/// A failed request to `url` (on `host`) as a [`FetchError`].
pub(crate) fn fetch_error(url: &Url, host: &str, limits: Limits, e: net::Error) -> FetchError {
    let host = host.to_string();
    match e {
        net::Error::InvalidUrl => FetchError::InvalidUrl {
            url: url.to_string(),
        },
        net::Error::InsecureScheme => FetchError::InsecureScheme {
            url: url.to_string(),
        },
        net::Error::Dns => FetchError::Dns { host },
        net::Error::ForbiddenAddress => FetchError::ForbiddenAddress { host },
        net::Error::Connect => FetchError::Connect { host },
        net::Error::Tls => FetchError::Tls { host },
        net::Error::Protocol => FetchError::Protocol { host },
        net::Error::TooLarge => FetchError::TooLarge {
            limit: limits.max_bytes,
        },
    }
}

/// The `rel="next"` target of a `Link` header (RFC 8288), resolved against `base`.
pub fn link_next(headers: &HeaderMap, base: &Url) -> Option<Url> {
    for value in headers.get_all(http::header::LINK) {
        let Ok(mut rest) = value.to_str() else {
            continue;
        };
        // Each link is `<uri>; param; param`, links separated by commas; a `<...>` may hold
        // commas, so split on the brackets rather than on commas.
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('>') else {
                break;
            };
            let uri = &after[..close];
            let params_end = after[close..].find('<').map_or(after.len(), |i| close + i);
            let params = &after[close + 1..params_end];
            let is_next = params.split(';').any(|p| {
                let p = p.trim().trim_end_matches(',').trim();
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_matches('"')
                            .split_ascii_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                })
            });
            if is_next {
                return base.join(uri).ok();
            }
            rest = &after[params_end..];
        }
    }
    None
}

/// Same scheme, host and port.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(links: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in links {
            h.append(http::header::LINK, HeaderValue::from_str(l).expect("value"));
        }
        h
    }

    #[test]
    fn link_next_as_mastodon_writes_it() {
        let base =
            Url::parse("https://m.example/api/v1/admin/domain_blocks?limit=500").expect("url");
        let h = headers(&[
            "<https://m.example/api/v1/admin/domain_blocks?limit=500&max_id=42>; rel=\"next\", <https://m.example/api/v1/admin/domain_blocks?limit=500&min_id=99>; rel=\"prev\"",
        ]);
        assert_eq!(
            link_next(&h, &base).expect("next").as_str(),
            "https://m.example/api/v1/admin/domain_blocks?limit=500&max_id=42"
        );
        // prev first, relative target, several rel values, separate header lines.
        let h = headers(&[
            "<?min_id=1>; rel=\"prev\"",
            "</api/v1/admin/domain_blocks?max_id=7>; title=\"a,b\"; rel=\"last next\"",
        ]);
        assert_eq!(
            link_next(&h, &base).expect("next").as_str(),
            "https://m.example/api/v1/admin/domain_blocks?max_id=7"
        );
        assert!(link_next(&headers(&["<https://m.example/x>; rel=\"prev\""]), &base).is_none());
        assert!(link_next(&headers(&["garbage; rel=next"]), &base).is_none());
        assert!(link_next(&HeaderMap::new(), &base).is_none());
    }

    #[test]
    fn origins() {
        let u = |s| Url::parse(s).expect("url");
        assert!(same_origin(
            &u("https://a.example/x"),
            &u("https://a.example:443/y?z")
        ));
        assert!(!same_origin(
            &u("https://a.example/"),
            &u("http://a.example/")
        ));
        assert!(!same_origin(
            &u("https://a.example/"),
            &u("https://b.example/")
        ));
        assert!(!same_origin(
            &u("https://a.example/"),
            &u("https://a.example:8443/")
        ));
    }

    #[tokio::test]
    async fn private_addresses_are_refused_unless_allowed() {
        let getter = Getter::new("test").expect("getter");
        let url = Url::parse("http://127.0.0.1:9/list").expect("url");
        let limits = Limits {
            max_bytes: 1024,
            allow_http: true,
            allow_private_addresses: false,
        };
        let e = getter
            .get(&url, &HeaderMap::new(), limits)
            .await
            .err()
            .expect("refused");
        assert!(matches!(e, FetchError::ForbiddenAddress { .. }), "{e}");
    }
}

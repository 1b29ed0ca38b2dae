//! One outbound GET for a remote rule source: scheme and address checks, TLS, a size-capped
//! body. Built on the key fetcher's TLS setup and HTTP/1.1 exchange (`keys::exchange`), so
//! inboxguard has one outbound HTTP stack.
//!
//! Subscription URLs are chosen by the operator, not by senders, but a list host that
//! redirects to `http://169.254.169.254/` must not make us fetch from the operator's own
//! network, so every hop's addresses pass [`is_forbidden_address`] unless the source sets
//! `allow_private_addresses`. The timeout is the caller's (`tokio::time::timeout` around the
//! whole exchange).

use crate::keys::{exchange, is_forbidden_address, tls_connector};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use rustls_pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::Url;

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
    /// More redirects than `MAX_REDIRECTS`, or one without a usable `Location`.
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
    tls: TlsConnector,
    user_agent: HeaderValue,
}

impl Getter {
    /// `user_agent` must be a valid header value (config validation checks
    /// `key_fetch.user_agent`, which is what callers pass).
    pub fn new(user_agent: &str) -> Result<Getter, String> {
        let user_agent = HeaderValue::from_str(user_agent)
            .map_err(|_| format!("user agent {user_agent:?} is not a valid header value"))?;
        Ok(Getter {
            tls: tls_connector()?,
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
        let target = Target::of(url, limits.allow_http)?;
        let tcp = connect(&target, limits.allow_private_addresses).await?;
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
        let protocol = |_| FetchError::Protocol {
            host: target.host.clone(),
        };
        let (response, _conn) = if target.https {
            let name = match target.literal {
                Some(ip) => ServerName::IpAddress(ip.into()),
                None => ServerName::try_from(target.host.clone()).map_err(|_| FetchError::Tls {
                    host: target.host.clone(),
                })?,
            };
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|_| FetchError::Tls {
                    host: target.host.clone(),
                })?;
            exchange(tls, request).await.map_err(protocol)?
        } else {
            exchange(tcp, request).await.map_err(protocol)?
        };
        // `_conn` keeps the connection driven until the body is read.
        let status = response.status();
        let headers = response.headers().clone();
        if !status.is_success() {
            return Ok(Answer {
                status,
                headers,
                body: Bytes::new(),
            });
        }
        let too_large = || FetchError::TooLarge {
            limit: limits.max_bytes,
        };
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limits.max_bytes) {
            return Err(too_large());
        }
        let cap = usize::try_from(limits.max_bytes).unwrap_or(usize::MAX);
        let body = match Limited::new(response.into_body(), cap).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
            Err(_) => {
                return Err(FetchError::Protocol {
                    host: target.host.clone(),
                })
            }
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// The checked pieces of a URL to GET.
struct Target {
    /// Without a trailing dot; IPv6 literals without brackets.
    host: String,
    literal: Option<IpAddr>,
    port: u16,
    https: bool,
    /// `Host` header: host (`[v6]`), `:port` when not the default.
    authority: String,
    path_and_query: String,
}

impl Target {
    fn of(url: &Url, allow_http: bool) -> Result<Target, FetchError> {
        let invalid = || FetchError::InvalidUrl {
            url: url.to_string(),
        };
        let https = match url.scheme() {
            "https" => true,
            "http" if allow_http => false,
            "http" => {
                return Err(FetchError::InsecureScheme {
                    url: url.to_string(),
                })
            }
            _ => return Err(invalid()),
        };
        let (host, literal) = match url.host().ok_or_else(invalid)? {
            url::Host::Domain(d) => (d.strip_suffix('.').unwrap_or(d).to_ascii_lowercase(), None),
            url::Host::Ipv4(ip) => (ip.to_string(), Some(IpAddr::V4(ip))),
            url::Host::Ipv6(ip) => (ip.to_string(), Some(IpAddr::V6(ip))),
        };
        if host.is_empty() {
            return Err(invalid());
        }
        let port = url.port_or_known_default().ok_or_else(invalid)?;
        let bracketed = if matches!(literal, Some(IpAddr::V6(_))) {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let authority = match url.port() {
            Some(p) => format!("{bracketed}:{p}"),
            None => bracketed,
        };
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        Ok(Target {
            host,
            literal,
            port,
            https,
            authority,
            path_and_query,
        })
    }
}

/// Resolves the host and connects to the first address that passes the SSRF check and
/// accepts; the connection goes to a checked address, so a second DNS answer cannot swap one in.
async fn connect(target: &Target, allow_private: bool) -> Result<TcpStream, FetchError> {
    let found: Vec<SocketAddr> = match target.literal {
        Some(ip) => vec![SocketAddr::new(ip, target.port)],
        None => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|_| FetchError::Dns {
                host: target.host.clone(),
            })?
            .collect(),
    };
    if found.is_empty() {
        return Err(FetchError::Dns {
            host: target.host.clone(),
        });
    }
    let allowed: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| allow_private || !is_forbidden_address(a.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(FetchError::ForbiddenAddress {
            host: target.host.clone(),
        });
    }
    for addr in allowed {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                tracing::debug!(host = %target.host, %addr, error = %e, "rule source connect failed")
            }
        }
    }
    Err(FetchError::Connect {
        host: target.host.clone(),
    })
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

    #[test]
    fn targets() {
        let u = |s| Url::parse(s).expect("url");
        let t = Target::of(&u("https://Lists.Example./x/y.csv?v=1"), false).expect("ok");
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.authority.as_str(),
                t.path_and_query.as_str()
            ),
            ("lists.example", 443, "lists.example", "/x/y.csv?v=1")
        );
        let t = Target::of(&u("http://[::1]:8080/l"), true).expect("ok");
        assert_eq!(t.authority, "[::1]:8080");
        assert!(matches!(
            Target::of(&u("http://lists.example/"), false),
            Err(FetchError::InsecureScheme { .. })
        ));
        assert!(matches!(
            Target::of(&u("ftp://lists.example/"), true),
            Err(FetchError::InvalidUrl { .. })
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

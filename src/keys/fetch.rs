//! The hardened key fetcher: keyId in, checked `publicKeyPem` + owner out.
//!
//! Each GET gets its own HTTP/1.1 connection (key fetches go to thousands of hosts, rarely
//! twice in a cache TTL, so a pool would mostly hold dead sockets). Per GET:
//! 1. the URL must be https (unless `allow_http`); one trailing dot is dropped from the host;
//! 2. the host is resolved through `key_fetch.resolve` or DNS, every address is checked against
//!    [`is_forbidden_address`] (unless `allow_private_addresses`) and the connection goes to an
//!    address that passed, so a second DNS answer cannot swap in another one;
//! 3. TLS with the webpki roots, SNI = host;
//! 4. `GET` with an ActivityPub `Accept`, signed on behalf of the instance actor when a key is
//!    configured (authorized-fetch servers refuse unsigned fetches);
//! 5. 404/410/other statuses become errors; one redirect is followed, and its target passes
//!    steps 1-4 again;
//! 6. content-type allowlist; body capped by `Content-Length` and while reading; JSON parse.
//!
//! `timeout_secs` bounds the whole lookup of one keyId (both GETs of a bare key object
//! included), so a slow server cannot hold an inbox request longer than that.

use super::address::is_forbidden_address;
use super::bulkhead::Bulkhead;
use super::document::{check_owner_document, parse_key_document, FetchedKey, Parsed};
use super::KeyError;
use crate::config::KeyFetchConfig;
use crate::signature::SigningKey;
use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, DATE, HOST, LOCATION, USER_AGENT};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
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
    tls: TlsConnector,
    bulkhead: Bulkhead,
}

/// One URL ready to be fetched: the checked pieces of a [`Url`].
struct Target {
    /// Host without a trailing dot; for IPv6 literals, without brackets.
    host: String,
    /// The literal address when the URL names one.
    literal: Option<IpAddr>,
    port: u16,
    https: bool,
    /// `Host` header value: host, `[v6]` in brackets, `:port` when not the default.
    authority: String,
    /// Origin-form request target: path and `?query`.
    path_and_query: String,
}

/// What one GET produced.
enum Answer {
    Document(Bytes),
    Redirect(Url),
}

/// Aborts the task driving a client connection once the exchange is over or abandoned
/// (timeout), so no socket outlives its fetch.
pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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
            tls: tls_connector()?,
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
        let host = url.host_str().unwrap_or_default().to_string();
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
        let tcp = self.connect(key_id, &target).await?;
        let request = self.request(key_id, &target)?;
        let protocol = |_| KeyError::Protocol {
            key_id: key_id.to_string(),
            host: target.host.clone(),
        };
        let (response, _conn) = if target.https {
            let name = match target.literal {
                Some(ip) => ServerName::IpAddress(ip.into()),
                // A host the URL parser took but rustls will not name: no handshake possible.
                None => ServerName::try_from(target.host.clone()).map_err(|_| KeyError::Tls {
                    key_id: key_id.to_string(),
                    host: target.host.clone(),
                })?,
            };
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|_| KeyError::Tls {
                    key_id: key_id.to_string(),
                    host: target.host.clone(),
                })?;
            exchange(tls, request).await.map_err(protocol)?
        } else {
            exchange(tcp, request).await.map_err(protocol)?
        };
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
                let next = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|loc| url.join(loc).ok())
                    .ok_or_else(|| KeyError::BadRedirect {
                        key_id: key_id_s(),
                        url: url_s(),
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

        let too_large = || KeyError::TooLarge {
            key_id: key_id_s(),
            limit: self.max_body_bytes,
        };
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes) {
            return Err(too_large());
        }
        let limit = usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX);
        match Limited::new(response.into_body(), limit).collect().await {
            Ok(collected) => Ok(Answer::Document(collected.to_bytes())),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
            Err(_) => Err(KeyError::Protocol {
                key_id: key_id_s(),
                host: target.host.clone(),
            }),
        }
    }

    /// Checks scheme and host of `url` and splits it into what the GET needs.
    fn target(&self, key_id: &str, url: &Url) -> Result<Target, KeyError> {
        let https = match url.scheme() {
            "https" => true,
            "http" if self.allow_http => false,
            "http" => {
                return Err(KeyError::InsecureScheme {
                    key_id: key_id.to_string(),
                    url: super::clip(url.as_str()),
                })
            }
            _ => {
                return Err(KeyError::InvalidKeyId {
                    key_id: key_id.to_string(),
                })
            }
        };
        let invalid = || KeyError::InvalidKeyId {
            key_id: key_id.to_string(),
        };
        let (host, literal) = match url.host().ok_or_else(invalid)? {
            url::Host::Domain(d) => (normalise_host(d), None),
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

    /// Resolves the target and connects to the first address that passes the SSRF check and
    /// accepts the connection.
    ///
    /// Addresses from `key_fetch.resolve` are the operator's own pinning (like curl
    /// `--resolve`) and are not second-guessed; every address from DNS or from the URL
    /// itself is.
    async fn connect(&self, key_id: &str, target: &Target) -> Result<TcpStream, KeyError> {
        let dns_error = || KeyError::Dns {
            key_id: key_id.to_string(),
            host: target.host.clone(),
        };
        let candidates: Vec<SocketAddr> = if let Some(pinned) = self.resolve.get(&target.host) {
            vec![*pinned]
        } else {
            let found: Vec<SocketAddr> = match target.literal {
                Some(ip) => vec![SocketAddr::new(ip, target.port)],
                None => tokio::net::lookup_host((target.host.as_str(), target.port))
                    .await
                    .map_err(|_| dns_error())?
                    .collect(),
            };
            if found.is_empty() {
                return Err(dns_error());
            }
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| self.allow_private_addresses || !is_forbidden_address(a.ip()))
                .collect();
            if allowed.is_empty() {
                tracing::warn!(host = %target.host, "key fetch refused: no public address");
                return Err(KeyError::ForbiddenAddress {
                    key_id: key_id.to_string(),
                    host: target.host.clone(),
                });
            }
            allowed
        };
        for addr in candidates {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    // Small request, small answer: don't wait to coalesce segments.
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(e) => {
                    tracing::debug!(host = %target.host, %addr, error = %e, "key fetch connect failed")
                }
            }
        }
        Err(KeyError::Connect {
            key_id: key_id.to_string(),
            host: target.host.clone(),
        })
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

/// Sends `request` on a new HTTP/1.1 connection over `io`. The returned guard keeps the
/// connection task alive until dropped.
pub(crate) async fn exchange<S>(
    io: S,
    request: Request<Empty<Bytes>>,
) -> Result<(Response<Incoming>, AbortOnDrop), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let guard = AbortOnDrop(tokio::spawn(async move {
        // Its errors surface through `send_request` or the body.
        let _ = conn.await;
    }));
    let response = sender.send_request(request).await?;
    Ok((response, guard))
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

/// Whether `url` is http(s) with a host: the only URLs a fetch may go to.
fn is_web_url(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https") && url.host().is_some()
}

/// Lowercase, without one trailing dot, so `Remote.Example.` and `remote.example` are one host
/// for `resolve`, SNI and `Host`.
fn normalise_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

fn is_allowed_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    ALLOWED_CONTENT_TYPES
        .iter()
        .any(|allowed| essence.eq_ignore_ascii_case(allowed))
}

pub(crate) fn tls_connector() -> Result<TlsConnector, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS client setup failed: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::test_server::{json_reply, redirect, Reply, TestServer};
    use crate::signature::signing_key::pem_decode;
    use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
    use std::io::Write;

    const KEY_ID: &str = "http://remote.test/users/alice#main-key";
    const ACTOR: &str = "http://remote.test/users/alice";
    const PEM: &str = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";

    fn actor_doc() -> String {
        serde_json::json!({
            "id": ACTOR, "type": "Person",
            "publicKey": {"id": KEY_ID, "owner": ACTOR, "publicKeyPem": PEM}
        })
        .to_string()
    }

    fn cfg_for(server: &TestServer) -> KeyFetchConfig {
        let mut cfg = KeyFetchConfig {
            allow_http: true,
            allow_private_addresses: true,
            timeout_secs: 5,
            ..KeyFetchConfig::default()
        };
        cfg.resolve.insert("remote.test".into(), server.addr);
        cfg
    }

    fn fetcher(cfg: &KeyFetchConfig) -> Fetcher {
        Fetcher::new(cfg).expect("fetcher")
    }

    fn expected() -> FetchedKey {
        FetchedKey {
            material: crate::keys::document::KeyMaterial::Pem(PEM.into()),
            owner: ACTOR.into(),
        }
    }

    #[tokio::test]
    async fn fetches_an_actor_document() {
        let server = TestServer::start(|req| match req.path() {
            "/users/alice" => json_reply(200, "application/activity+json", actor_doc()),
            _ => json_reply(404, "text/plain", "no".into()),
        })
        .await;
        let got = fetcher(&cfg_for(&server)).fetch_key(KEY_ID).await;
        assert_eq!(got, Ok(expected()));
        let seen = server.requests();
        assert_eq!(seen.len(), 1);
        // The fragment never goes on the wire; the Accept header asks for ActivityPub.
        assert_eq!(seen[0].uri, "/users/alice");
        assert_eq!(seen[0].headers[HOST], "remote.test");
        assert_eq!(seen[0].headers[ACCEPT], ACCEPT_ACTIVITYPUB);
        assert!(seen[0].headers.contains_key(DATE));
        assert!(seen[0].headers[USER_AGENT]
            .to_str()
            .expect("ua")
            .starts_with("inboxguard/"));
        assert!(!seen[0].headers.contains_key("signature"));
    }

    #[tokio::test]
    async fn ld_json_with_profile_is_accepted_and_query_is_kept() {
        let key_id = "http://remote.test/actor?id=7#main-key";
        let doc = serde_json::json!({"id": "http://remote.test/actor?id=7",
            "publicKey": {"id": key_id, "publicKeyPem": PEM}})
        .to_string();
        let server = TestServer::start(move |_| {
            json_reply(
                200,
                "application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"",
                doc.clone(),
            )
        })
        .await;
        let got = fetcher(&cfg_for(&server)).fetch_key(key_id).await;
        assert!(got.is_ok(), "{got:?}");
        assert_eq!(server.requests()[0].uri, "/actor?id=7");
    }

    #[tokio::test]
    async fn status_errors() {
        for (status, reason) in [
            (404, "not_found"),
            (410, "gone"),
            (500, "http_status"),
            (401, "http_status"),
        ] {
            let server =
                TestServer::start(move |_| json_reply(status, "application/json", "{}".into()))
                    .await;
            let err = fetcher(&cfg_for(&server))
                .fetch_key(KEY_ID)
                .await
                .expect_err("status");
            assert_eq!(err.reason(), reason, "{status}");
        }
    }

    #[tokio::test]
    async fn document_checks_apply() {
        let wrong_id = serde_json::json!({"id": ACTOR,
            "publicKey": {"id": format!("{ACTOR}#other"), "owner": ACTOR, "publicKeyPem": PEM}})
        .to_string();
        let wrong_owner = serde_json::json!({"id": ACTOR,
            "publicKey": {"id": KEY_ID, "owner": "http://remote.test/users/bob", "publicKeyPem": PEM}})
        .to_string();
        for (body, reason) in [
            (wrong_id, "id_mismatch"),
            (wrong_owner, "owner_mismatch"),
            ("{\"id\":".to_string(), "invalid_json"),
        ] {
            let server = TestServer::start(move |_| {
                json_reply(200, "application/activity+json", body.clone())
            })
            .await;
            let err = fetcher(&cfg_for(&server))
                .fetch_key(KEY_ID)
                .await
                .expect_err("document");
            assert_eq!(err.reason(), reason);
        }
    }

    #[tokio::test]
    async fn wrong_content_type_is_refused() {
        for ct in ["text/html", "application/activity+jsonx", ""] {
            let server = TestServer::start(move |_| json_reply(200, ct, actor_doc())).await;
            let err = fetcher(&cfg_for(&server))
                .fetch_key(KEY_ID)
                .await
                .expect_err("content type");
            assert_eq!(err.reason(), "bad_content_type", "{ct:?}");
        }
    }

    #[tokio::test]
    async fn body_over_the_cap_is_refused() {
        // Declared length over the cap.
        let server = TestServer::start(|_| {
            json_reply(
                200,
                "application/activity+json",
                format!("{:<2000}", actor_doc()),
            )
        })
        .await;
        let cfg = KeyFetchConfig {
            max_body_bytes: 1000,
            ..cfg_for(&server)
        };
        let err = fetcher(&cfg).fetch_key(KEY_ID).await.expect_err("large");
        assert_eq!(err.reason(), "too_large");

        // No length declared (chunked): the cap holds while reading.
        let big = "x".repeat(5000);
        let raw = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/activity+json\r\n\
             transfer-encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
            big.len()
        );
        let server = TestServer::start_raw(raw.into_bytes()).await;
        let cfg = KeyFetchConfig {
            max_body_bytes: 1000,
            ..cfg_for(&server)
        };
        let err = fetcher(&cfg).fetch_key(KEY_ID).await.expect_err("large");
        assert_eq!(err.reason(), "too_large");
    }

    #[tokio::test]
    async fn garbage_answer_is_a_protocol_error() {
        let server = TestServer::start_raw(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()).await;
        let err = fetcher(&cfg_for(&server))
            .fetch_key(KEY_ID)
            .await
            .expect_err("garbage");
        assert_eq!(err.reason(), "protocol");
        assert!(err.is_transient());
    }

    #[tokio::test]
    async fn hanging_server_times_out() {
        let server = TestServer::start(|_| Reply::Hang).await;
        let cfg = KeyFetchConfig {
            timeout_secs: 1,
            ..cfg_for(&server)
        };
        let err = fetcher(&cfg).fetch_key(KEY_ID).await.expect_err("hang");
        assert_eq!(
            err,
            KeyError::Timeout {
                key_id: KEY_ID.into(),
                secs: 1
            }
        );
        assert!(err.is_transient());
    }

    #[tokio::test]
    async fn one_redirect_is_followed() {
        let server = TestServer::start(|req| match req.path() {
            "/users/alice" => redirect(301, "/u/alice"),
            "/u/alice" => json_reply(200, "application/activity+json", actor_doc()),
            _ => json_reply(404, "text/plain", String::new()),
        })
        .await;
        let got = fetcher(&cfg_for(&server)).fetch_key(KEY_ID).await;
        assert_eq!(got, Ok(expected()));
        let paths: Vec<String> = server.requests().into_iter().map(|r| r.uri).collect();
        assert_eq!(paths, ["/users/alice", "/u/alice"]);
    }

    #[tokio::test]
    async fn second_redirect_is_refused() {
        let server = TestServer::start(|req| match req.path() {
            "/users/alice" => redirect(302, "http://remote.test/a"),
            "/a" => redirect(307, "http://remote.test/users/alice"),
            _ => json_reply(404, "text/plain", String::new()),
        })
        .await;
        let err = fetcher(&cfg_for(&server))
            .fetch_key(KEY_ID)
            .await
            .expect_err("loop");
        assert_eq!(err.reason(), "too_many_redirects");
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn redirect_without_a_usable_location_is_refused() {
        let server = TestServer::start(|req| match req.path() {
            "/users/alice" => json_reply(302, "text/plain", String::new()),
            _ => redirect(301, "ftp://remote.test/users/alice"),
        })
        .await;
        let f = fetcher(&cfg_for(&server));
        let err = f.fetch_key(KEY_ID).await.expect_err("no location");
        assert_eq!(err.reason(), "bad_redirect");
        let err = f
            .fetch_key("http://remote.test/other#main-key")
            .await
            .expect_err("ftp location");
        assert_eq!(err.reason(), "bad_redirect");
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn redirect_to_a_private_address_is_refused() {
        let server = TestServer::start(|_| json_reply(404, "text/plain", String::new())).await;
        let port = server.addr.port();
        let server = TestServer::start(move |req| match req.path() {
            "/users/alice" => redirect(302, &format!("http://127.0.0.1:{port}/users/alice")),
            _ => json_reply(200, "application/activity+json", actor_doc()),
        })
        .await;
        // remote.test is pinned by the operator (allowed); the redirect target is not.
        let cfg = KeyFetchConfig {
            allow_private_addresses: false,
            ..cfg_for(&server)
        };
        let err = fetcher(&cfg).fetch_key(KEY_ID).await.expect_err("ssrf");
        assert_eq!(err.reason(), "forbidden_address");
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn private_addresses_are_refused_before_connecting() {
        let server =
            TestServer::start(|_| json_reply(200, "application/activity+json", actor_doc())).await;
        let port = server.addr.port();
        let cfg = KeyFetchConfig {
            allow_http: true,
            ..KeyFetchConfig::default()
        };
        for key_id in [
            format!("http://127.0.0.1:{port}/users/alice#main-key"),
            format!("http://[::ffff:127.0.0.1]:{port}/users/alice#main-key"),
            format!("http://localhost:{port}/users/alice#main-key"),
            format!("http://localhost.:{port}/users/alice#main-key"),
        ] {
            let err = fetcher(&cfg).fetch_key(&key_id).await.expect_err("ssrf");
            assert_eq!(err.reason(), "forbidden_address", "{key_id}");
        }
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn plain_http_is_refused_unless_allowed() {
        let server =
            TestServer::start(|_| json_reply(200, "application/activity+json", actor_doc())).await;
        let cfg = KeyFetchConfig {
            allow_http: false,
            ..cfg_for(&server)
        };
        let err = fetcher(&cfg).fetch_key(KEY_ID).await.expect_err("http");
        assert_eq!(
            err,
            KeyError::InsecureScheme {
                key_id: KEY_ID.into(),
                url: ACTOR.into()
            }
        );
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn redirect_to_plain_http_is_refused_when_https_is_required() {
        // The first hop cannot be TLS here (no certificate), so check the second hop's
        // scheme check through `target` directly.
        let cfg = KeyFetchConfig::default();
        let f = fetcher(&cfg);
        let url = Url::parse("http://remote.test/users/alice").expect("url");
        let err = f.target(KEY_ID, &url).err().expect("insecure");
        assert_eq!(err.reason(), "insecure_scheme");
        let url = Url::parse("ftp://remote.test/users/alice").expect("url");
        assert_eq!(
            f.target(KEY_ID, &url).err().expect("scheme").reason(),
            "invalid_key_id"
        );
    }

    #[tokio::test]
    async fn tls_to_a_plain_server_fails_as_tls() {
        let server =
            TestServer::start(|_| json_reply(200, "application/activity+json", actor_doc())).await;
        let cfg = cfg_for(&server);
        let err = fetcher(&cfg)
            .fetch_key("https://remote.test/users/alice#main-key")
            .await
            .expect_err("tls");
        assert_eq!(err.reason(), "tls");
        assert!(!err.is_transient());
    }

    #[tokio::test]
    async fn unresolvable_and_unreachable_hosts() {
        let cfg = KeyFetchConfig {
            allow_http: true,
            allow_private_addresses: true,
            ..KeyFetchConfig::default()
        };
        // .invalid never resolves (RFC 6761).
        let err = fetcher(&cfg)
            .fetch_key("http://nothing.invalid/users/a#main-key")
            .await
            .expect_err("dns");
        assert_eq!(err.reason(), "dns");
        assert!(err.is_transient());

        // A port nobody listens on: bind, learn the port, close.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let err = fetcher(&cfg)
            .fetch_key(&format!("http://127.0.0.1:{port}/users/a#main-key"))
            .await
            .expect_err("connect");
        assert_eq!(err.reason(), "connect");
        assert!(err.is_transient());
    }

    #[tokio::test]
    async fn key_ids_that_are_not_urls() {
        let f = fetcher(&KeyFetchConfig::default());
        for key_id in [
            "acct:alice@remote.test",
            "not a url",
            "/users/alice",
            "mailto:a@b.test",
        ] {
            let err = f.fetch_key(key_id).await.expect_err("invalid");
            assert_eq!(err.reason(), "invalid_key_id", "{key_id}");
        }
    }

    #[tokio::test]
    async fn bare_key_object_is_confirmed_by_its_owner() {
        let key_id = "http://remote.test/keys/1";
        let key_doc =
            serde_json::json!({"id": key_id, "owner": ACTOR, "publicKeyPem": PEM}).to_string();
        let listing_owner = serde_json::json!({"id": ACTOR, "publicKey": [key_id]}).to_string();
        let other_owner =
            serde_json::json!({"id": ACTOR, "publicKey": ["http://remote.test/keys/2"]})
                .to_string();
        for (owner_doc, want) in [(listing_owner, None), (other_owner, Some("owner_mismatch"))] {
            let key_doc = key_doc.clone();
            let server = TestServer::start(move |req| match req.path() {
                "/keys/1" => json_reply(200, "application/activity+json", key_doc.clone()),
                "/users/alice" => json_reply(200, "application/activity+json", owner_doc.clone()),
                _ => json_reply(404, "text/plain", String::new()),
            })
            .await;
            let got = fetcher(&cfg_for(&server)).fetch_key(key_id).await;
            match want {
                None => assert_eq!(got, Ok(expected())),
                Some(reason) => assert_eq!(got.expect_err("owner").reason(), reason),
            }
            let paths: Vec<String> = server.requests().into_iter().map(|r| r.uri).collect();
            assert_eq!(paths, ["/keys/1", "/users/alice"]);
        }
    }

    #[tokio::test]
    async fn signed_fetch_carries_a_valid_signature() {
        let key = SigningKey::generate_rsa_2048().expect("key");
        let mut file = tempfile::NamedTempFile::new().expect("tmp");
        file.write_all(key.private_key_pem().expect("pem").as_bytes())
            .expect("write");
        let server =
            TestServer::start(|_| json_reply(200, "application/activity+json", actor_doc())).await;
        let cfg = KeyFetchConfig {
            key_id: Some("https://local.test/actor#main-key".into()),
            private_key_file: Some(file.path().to_path_buf()),
            ..cfg_for(&server)
        };
        let key_id = "http://remote.test/users/alice?x=1#main-key";
        let _ = fetcher(&cfg).fetch_key(key_id).await;
        let seen = server.requests();
        assert_eq!(seen.len(), 1);
        let header = seen[0].headers["signature"]
            .to_str()
            .expect("ascii")
            .to_string();
        let prefix = "keyId=\"https://local.test/actor#main-key\",algorithm=\"rsa-sha256\",\
                      headers=\"(request-target) host date\",signature=\"";
        assert!(header.starts_with(prefix), "{header}");
        let b64 = header[prefix.len()..].trim_end_matches('"');
        let signature = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        let date = seen[0].headers[DATE].to_str().expect("date");
        let host = seen[0].headers[HOST].to_str().expect("host");
        let signed = format!(
            "(request-target): get {}\nhost: {host}\ndate: {date}",
            seen[0].uri
        );
        assert_eq!(seen[0].uri, "/users/alice?x=1");
        let spki = pem_decode(&key.public_key_pem().expect("pem"))
            .expect("der")
            .1;
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, spki);
        assert!(public.verify(signed.as_bytes(), &signature).is_ok());
        // And the check can fail: another request target does not verify.
        let other = signed.replace("?x=1", "");
        assert!(public.verify(other.as_bytes(), &signature).is_err());
    }

    #[test]
    fn bad_signing_key_file_names_the_path() {
        let mut file = tempfile::NamedTempFile::new().expect("tmp");
        file.write_all(b"not a key").expect("write");
        let cfg = KeyFetchConfig {
            key_id: Some("https://local.test/actor#main-key".into()),
            private_key_file: Some(file.path().to_path_buf()),
            ..KeyFetchConfig::default()
        };
        let err = Fetcher::new(&cfg).err().expect("bad file");
        assert!(err.contains(&file.path().display().to_string()), "{err}");
        assert!(err.contains("not a PEM private key"), "{err}");

        let cfg = KeyFetchConfig {
            key_id: Some("https://local.test/actor#main-key".into()),
            private_key_file: Some("/nonexistent/inboxguard/key.pem".into()),
            ..KeyFetchConfig::default()
        };
        let err = Fetcher::new(&cfg).err().expect("missing file");
        assert!(
            err.starts_with("/nonexistent/inboxguard/key.pem: cannot read"),
            "{err}"
        );
    }

    #[test]
    fn content_type_allowlist() {
        for ok in [
            "application/activity+json",
            "application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"",
            "application/json; charset=utf-8",
            "Application/JSON",
        ] {
            assert!(is_allowed_content_type(ok), "{ok}");
        }
        for bad in [
            "text/html",
            "application/xml",
            "",
            "application/jsonp",
            "json",
        ] {
            assert!(!is_allowed_content_type(bad), "{bad}");
        }
    }

    #[test]
    fn targets_drop_the_trailing_dot_and_keep_ports() {
        let f = fetcher(&KeyFetchConfig::default());
        let t = f
            .target(
                KEY_ID,
                &Url::parse("https://Remote.Test./a/b?c=d").expect("url"),
            )
            .expect("target");
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.authority.as_str(),
                t.path_and_query.as_str()
            ),
            ("remote.test", 443, "remote.test", "/a/b?c=d")
        );
        let t = f
            .target(
                KEY_ID,
                &Url::parse("https://[2001:db8::1]:8443/").expect("url"),
            )
            .expect("target");
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("2001:db8::1", 8443, "[2001:db8::1]:8443")
        );
    }
}

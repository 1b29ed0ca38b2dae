//! Upstream client: sends a request to Mastodon unchanged but for hop-by-hop headers and
//! `X-Forwarded-*`, over pooled connections, with timeouts.
//!
//! Inbox deliveries, read whole before they are checked, go through
//! [`Upstream::send_buffered`] and a pool of their own; pass-through requests stream through
//! hyper's client.
//!
//! What reaches Puma is what the sender sent: same method, path and query bytes, `Host`,
//! end-to-end headers and body. Mastodon rebuilds the signing string from these (and
//! `@target-uri` from `X-Forwarded-Proto` + `Host` + path), so any rewrite here would break
//! signature checks downstream. The response comes back as a stream; nothing is buffered.
//!
//! This module never invents an answer: every failure is an [`UpstreamError`], which
//! `reject` turns into 502/503/504.

use crate::config::UpstreamConfig;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

mod body;
mod h1;
pub use body::ResponseBody;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The one body type requests and responses travel in.
pub type Body = BoxBody<Bytes, BoxError>;

/// Idle pooled connections are dropped after this. Puma closes a keep-alive connection after
/// its `persistent_timeout` (20 s by default); reusing a connection Puma is about to close
/// loses a POST that cannot be retried, so we give up idle connections first.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Headers that describe one hop, never the message (RFC 9110 §7.6.1), plus the
/// `Proxy-*` and `Keep-Alive` relics that clients still send.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Why a request got no response head from the upstream. `Display` is for the log line, with
/// connection details no sender should see; `reject` gives the status, labels and message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// No TCP connection could be opened (refused, connect timeout, unroutable): Puma is down
    /// or not listening where configured.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// A connection was open but failed before a complete response head arrived: reset,
    /// closed early (Puma worker killed mid-request), or an unparsable response.
    #[error("upstream connection lost: {0}")]
    ConnectionLost(String),
    /// No response head within `upstream.timeout_secs` of starting to send.
    #[error("upstream did not answer within the timeout")]
    Timeout,
    /// The downstream client's request body failed while it was being streamed upstream
    /// (the client went away mid-upload). Not the upstream's fault; nobody is left to answer.
    #[error("client request body failed while forwarding: {0}")]
    ClientAborted(String),
    /// `upstream.max_in_flight` requests are already waiting for Mastodon; this one was not
    /// sent. The sender is asked to retry (503 + `Retry-After`).
    #[error("upstream busy: {0} requests already in flight")]
    Overloaded(usize),
    /// The request has no path to forward (`CONNECT`, or a target that cannot be
    /// re-addressed to the upstream).
    #[error("request target cannot be forwarded: {0}")]
    InvalidTarget(String),
}

impl UpstreamError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, UpstreamError::Timeout)
    }

    /// True when the fault is on the upstream side (counts against Mastodon's health);
    /// false when the request itself or its sender was at fault.
    pub fn is_upstream_fault(&self) -> bool {
        match self {
            UpstreamError::Unreachable(_)
            | UpstreamError::ConnectionLost(_)
            | UpstreamError::Timeout
            | UpstreamError::Overloaded(_) => true,
            UpstreamError::ClientAborted(_) | UpstreamError::InvalidTarget(_) => false,
        }
    }
}

/// The pooled HTTP/1.1 client to Puma. Cheap to share behind an `Arc`; one per process.
pub struct Upstream {
    client: Client<HttpConnector, Body>,
    /// Inbox deliveries' own keep-alive connections.
    pool: Arc<h1::Pool>,
    scheme: Scheme,
    authority: Authority,
    timeout: Duration,
    /// Requests sent to Mastodon and not yet answered with a status line. When Puma is slow,
    /// new requests get 503 + `Retry-After` instead of piling up in our memory and Puma's
    /// backlog: senders retry later, which is what they would do anyway.
    in_flight: Semaphore,
    max_in_flight: usize,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("scheme", &self.scheme)
            .field("authority", &self.authority)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// `base` is `Config::upstream_uri()`: `http://host:port`, no path.
    pub fn new(cfg: &UpstreamConfig, base: http::Uri) -> Result<Upstream, String> {
        let scheme = base
            .scheme()
            .cloned()
            .ok_or_else(|| format!("upstream {base} has no scheme"))?;
        if scheme != Scheme::HTTP {
            return Err(format!("upstream {base}: only http:// is supported"));
        }
        let authority = base
            .authority()
            .cloned()
            .ok_or_else(|| format!("upstream {base} has no host"))?;
        if cfg.timeout_secs == 0 || cfg.connect_timeout_secs == 0 {
            return Err("upstream timeouts must be greater than 0".to_string());
        }

        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(cfg.connect_timeout_secs)));
        // Inbox POSTs are small request/response pairs; Nagle would only add latency.
        connector.set_nodelay(true);
        connector.enforce_http(true);

        // Plain TCP never negotiates h2, so this client speaks HTTP/1.1 only, as Puma does.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .build(connector);

        let pool = h1::Pool::new(
            authority.host(),
            authority.port_u16().unwrap_or(80),
            Duration::from_secs(cfg.connect_timeout_secs),
            POOL_IDLE_TIMEOUT,
            cfg.pool_max_idle_per_host,
        );

        Ok(Upstream {
            client,
            pool: Arc::new(pool),
            scheme,
            authority,
            timeout: Duration::from_secs(cfg.timeout_secs),
            in_flight: Semaphore::new(cfg.max_in_flight),
            max_in_flight: cfg.max_in_flight,
        })
    }

    /// Requests currently waiting for Mastodon's answer.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.in_flight.available_permits())
    }

    /// Forwards `req` (origin-form URI, as received) to the upstream. `peer` is appended to
    /// `X-Forwarded-For`; `proto` becomes `X-Forwarded-Proto` unless `keep_proto` and the
    /// request already carries one.
    ///
    /// The timeout runs from the start of sending until the response head arrives, so it
    /// includes streaming the request body; the response body then streams without a limit
    /// from this module.
    pub async fn send(
        &self,
        req: http::Request<Body>,
        peer: SocketAddr,
        proto: &'static str,
        keep_proto: bool,
    ) -> Result<http::Response<Body>, UpstreamError> {
        let (mut parts, body) = req.into_parts();
        let _slot = self.admit(&mut parts, peer, proto, keep_proto)?;
        let uri = self.upstream_uri(&parts.uri)?;

        let mut out = http::Request::new(body);
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        // The request may have arrived over HTTP/2 or as HTTP/1.0; Puma gets HTTP/1.1 with
        // keep-alive either way (the legacy client refuses HTTP/2 requests on an h1 pool).
        *out.version_mut() = Version::HTTP_11;
        *out.headers_mut() = parts.headers;

        let response = match tokio::time::timeout(self.timeout, self.client.request(out)).await {
            Err(_elapsed) => return Err(UpstreamError::Timeout),
            Ok(Err(e)) => return Err(classify(&e)),
            Ok(Ok(response)) => response,
        };

        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let body = body.map_err(|e| -> BoxError { Box::new(e) }).boxed();
        Ok(http::Response::from_parts(parts, body))
    }

    /// What both ways of sending do first: refuse `CONNECT`, take an in-flight slot, and turn
    /// the received headers into the forwarded ones. The slot is held until the response head
    /// arrives: that is when Puma's thread is done with the request (inbox answers have no
    /// body to speak of).
    fn admit(
        &self,
        parts: &mut http::request::Parts,
        peer: SocketAddr,
        proto: &'static str,
        keep_proto: bool,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, UpstreamError> {
        if parts.method == Method::CONNECT {
            return Err(UpstreamError::InvalidTarget(
                "CONNECT is not forwarded".to_string(),
            ));
        }
        let slot = self
            .in_flight
            .try_acquire()
            .map_err(|_| UpstreamError::Overloaded(self.max_in_flight))?;
        prepare_request_headers(
            &mut parts.headers,
            parts.uri.authority(),
            peer.ip(),
            proto,
            keep_proto,
        );
        Ok(slot)
    }

    /// Forwards a request whose body is already in memory (an inbox delivery), as [`send`]
    /// does, on connections of its own: the head and body go out in one write, and the
    /// response streams back from the same connection.
    ///
    /// [`send`]: Upstream::send
    pub async fn send_buffered(
        &self,
        mut parts: http::request::Parts,
        body: Bytes,
        peer: SocketAddr,
        proto: &'static str,
        keep_proto: bool,
    ) -> Result<http::Response<Body>, UpstreamError> {
        let _slot = self.admit(&mut parts, peer, proto, keep_proto)?;
        let head = request_head(
            &parts.method,
            &parts.uri,
            &parts.headers,
            &self.authority,
            body.len(),
        );
        match tokio::time::timeout(self.timeout, h1::exchange(&self.pool, &head, &body)).await {
            Err(_elapsed) => Err(UpstreamError::Timeout),
            Ok(Err(e)) => Err(e),
            Ok(Ok(response)) => Ok(response.map(BodyExt::boxed)),
        }
    }

    /// The upstream's scheme and authority with the request's own path and query, byte for
    /// byte: Mastodon signs and verifies `(request-target)` over exactly these bytes.
    fn upstream_uri(&self, received: &Uri) -> Result<Uri, UpstreamError> {
        let path_and_query = received
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| UpstreamError::InvalidTarget(e.to_string()))
    }
}

/// The HTTP/1.1 request line and header section for [`Upstream::send_buffered`]: the
/// received path and query bytes, the headers in their order, `Content-Length` giving the
/// body's length, and `Host` from the upstream only when the request had none.
fn request_head(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    upstream: &Authority,
    body_len: usize,
) -> Vec<u8> {
    let target = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let mut head = Vec::with_capacity(2048);
    for part in [method.as_str(), " ", target, " HTTP/1.1\r\n"] {
        head.extend_from_slice(part.as_bytes());
    }
    if !headers.contains_key(header::HOST) {
        head.extend_from_slice(b"host: ");
        head.extend_from_slice(upstream.as_str().as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    let mut digits = [0u8; 20];
    let length = decimal(body_len, &mut digits);
    let mut length_written = false;
    for (name, value) in headers {
        let value = if name == header::CONTENT_LENGTH {
            // Hyper checked the sender's value against the body; one line, ours, is sent.
            if std::mem::replace(&mut length_written, true) {
                continue;
            }
            length
        } else {
            value.as_bytes()
        };
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    if !length_written {
        head.extend_from_slice(b"content-length: ");
        head.extend_from_slice(length);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// `n` in decimal ASCII, written into `buf` without an allocation per delivery.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Sorts a client error into the variants above. The hyper error inside says whether our own
/// request body failed (a client that went away) or the connection did.
fn classify(err: &hyper_util::client::legacy::Error) -> UpstreamError {
    let message = error_chain(err);
    if err.is_connect() {
        return UpstreamError::Unreachable(message);
    }
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(hyper_err) = e.downcast_ref::<hyper::Error>() {
            // A "user" error with a cause on a client connection is the body stream's error.
            if hyper_err.is_user() && hyper_err.source().is_some() {
                return UpstreamError::ClientAborted(message);
            }
            break;
        }
        source = e.source();
    }
    UpstreamError::ConnectionLost(message)
}

/// "client error (Connect): tcp connect error: Connection refused (os error 111)": the
/// outer errors alone say too little for an operator.
fn error_chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// Turns the received request headers into the forwarded ones: hop-by-hop headers removed,
/// `Host` kept (or taken from an absolute URI's authority, as HTTP/2 requests carry it),
/// `X-Forwarded-For` extended with `peer`, `X-Forwarded-Proto` set.
pub fn prepare_request_headers(
    headers: &mut HeaderMap,
    uri_authority: Option<&Authority>,
    peer: IpAddr,
    proto: &'static str,
    keep_proto: bool,
) {
    strip_hop_by_hop(headers);

    if !headers.contains_key(header::HOST) {
        if let Some(authority) = uri_authority {
            if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
                headers.insert(header::HOST, value);
            }
        }
    }

    append_forwarded_for(headers, peer);

    if !(keep_proto && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
}

/// Removes hop-by-hop headers and every header the `Connection` header names. Used on both
/// the forwarded request and the returned response.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        // `Connection: host` must not make Mastodon see the upstream's address as Host.
        .filter(|name| *name != header::HOST)
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// `X-Forwarded-For: <existing>, <peer>` as one field line (several incoming lines are
/// joined, as RFC 9110 allows for list headers). IPv4-mapped IPv6 peers (a dual-stack
/// listener) are written as plain IPv4 so Rails' trusted-proxy matching sees the real address.
fn append_forwarded_for(headers: &mut HeaderMap, peer: IpAddr) {
    let peer = peer.to_canonical().to_string();
    let mut joined: Vec<u8> = Vec::new();
    for value in headers.get_all(&X_FORWARDED_FOR) {
        let trimmed = value.as_bytes().trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(trimmed);
    }
    if !joined.is_empty() {
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(peer.as_bytes());
    // The existing values were valid header bytes, so the join is too; fall back to the peer
    // alone rather than forward a header we could not build.
    let value = HeaderValue::from_bytes(&joined)
        .or_else(|_| HeaderValue::from_str(&peer))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    headers.insert(X_FORWARDED_FOR, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn all(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = map(&[
            ("host", "example.social"),
            ("connection", "X-Foo, keep-alive"),
            ("connection", "x-bar"),
            ("x-foo", "1"),
            ("x-bar", "2"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("signature", "keyId=\"k\""),
            ("digest", "SHA-256=abc"),
        ]);
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["host", "signature", "digest"]);
    }

    #[test]
    fn connection_cannot_remove_host() {
        let mut h = map(&[("host", "example.social"), ("connection", "Host")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(all(&h, "host"), vec!["example.social"]);
    }

    #[test]
    fn forwarded_for_is_appended_to_all_existing_lines() {
        let mut h = map(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "198.51.100.2, 198.51.100.3"),
        ]);
        prepare_request_headers(&mut h, None, PEER, "https", true);
        assert_eq!(
            all(&h, "x-forwarded-for"),
            vec!["198.51.100.1, 198.51.100.2, 198.51.100.3, 203.0.113.7"]
        );
    }

    #[test]
    fn forwarded_for_is_created_and_mapped_v6_is_canonical() {
        let mut h = HeaderMap::new();
        let mapped = IpAddr::V6(std::net::Ipv4Addr::new(192, 0, 2, 9).to_ipv6_mapped());
        prepare_request_headers(&mut h, None, mapped, "http", true);
        assert_eq!(all(&h, "x-forwarded-for"), vec!["192.0.2.9"]);

        let mut h = HeaderMap::new();
        prepare_request_headers(&mut h, None, IpAddr::V6(Ipv6Addr::LOCALHOST), "http", true);
        assert_eq!(all(&h, "x-forwarded-for"), vec!["::1"]);
    }

    #[test]
    fn forwarded_proto_kept_only_when_trusted_and_present() {
        let mut h = map(&[("x-forwarded-proto", "https")]);
        prepare_request_headers(&mut h, None, PEER, "http", true);
        assert_eq!(all(&h, "x-forwarded-proto"), vec!["https"]);

        let mut h = map(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-proto", "http"),
        ]);
        prepare_request_headers(&mut h, None, PEER, "http", false);
        assert_eq!(all(&h, "x-forwarded-proto"), vec!["http"]);

        let mut h = HeaderMap::new();
        prepare_request_headers(&mut h, None, PEER, "https", true);
        assert_eq!(all(&h, "x-forwarded-proto"), vec!["https"]);
    }

    #[test]
    fn host_is_kept_or_taken_from_the_uri_authority() {
        let authority = Authority::from_static("example.social");
        let mut h = map(&[("host", "public.example")]);
        prepare_request_headers(&mut h, Some(&authority), PEER, "https", true);
        assert_eq!(all(&h, "host"), vec!["public.example"]);

        let mut h = HeaderMap::new();
        prepare_request_headers(&mut h, Some(&authority), PEER, "https", true);
        assert_eq!(all(&h, "host"), vec!["example.social"]);

        let mut h = HeaderMap::new();
        prepare_request_headers(&mut h, None, PEER, "https", true);
        assert!(h.get("host").is_none());
    }

    #[test]
    fn end_to_end_headers_keep_their_order_and_bytes() {
        let mut h = HeaderMap::new();
        h.append("accept", HeaderValue::from_static("a"));
        h.append("x-raw", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        h.append("accept", HeaderValue::from_static("b"));
        prepare_request_headers(&mut h, None, PEER, "https", true);
        assert_eq!(all(&h, "accept"), vec!["a", "b"]);
        assert_eq!(h.get("x-raw").unwrap().as_bytes(), b"caf\xe9");
    }

    #[test]
    fn upstream_uri_keeps_path_and_query_bytes() {
        let cfg = UpstreamConfig {
            url: "http://127.0.0.1:3000".into(),
            timeout_secs: 30,
            connect_timeout_secs: 5,
            pool_max_idle_per_host: 4,
            max_in_flight: 256,
        };
        let up = Upstream::new(&cfg, "http://127.0.0.1:3000".parse().unwrap()).unwrap();
        let received: Uri = "/users/a/inbox?a=1&b=%2F&c=%7e".parse().unwrap();
        assert_eq!(
            up.upstream_uri(&received).unwrap().to_string(),
            "http://127.0.0.1:3000/users/a/inbox?a=1&b=%2F&c=%7e"
        );
        let absolute: Uri = "https://example.social/inbox?x".parse().unwrap();
        assert_eq!(
            up.upstream_uri(&absolute).unwrap().to_string(),
            "http://127.0.0.1:3000/inbox?x"
        );
    }

    #[test]
    fn request_head_keeps_target_and_header_order_and_states_the_body_length() {
        let upstream = Authority::from_static("127.0.0.1:3000");
        let h = map(&[
            ("host", "example.social"),
            ("content-length", "999"),
            ("date", "Sat, 05 Dec 2026 12:00:00 GMT"),
            ("content-length", "999"),
            ("signature", "keyId=\"k\""),
        ]);
        let uri: Uri = "/users/a/inbox?b=%2F".parse().unwrap();
        let head = request_head(&Method::POST, &uri, &h, &upstream, 3);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "POST /users/a/inbox?b=%2F HTTP/1.1\r\nhost: example.social\r\n\
             content-length: 3\r\ndate: Sat, 05 Dec 2026 12:00:00 GMT\r\n\
             signature: keyId=\"k\"\r\n\r\n"
        );

        let head = request_head(&Method::POST, &uri, &HeaderMap::new(), &upstream, 0);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "POST /users/a/inbox?b=%2F HTTP/1.1\r\nhost: 127.0.0.1:3000\r\n\
             content-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn decimal_lengths() {
        let mut buf = [0u8; 20];
        for n in [0, 7, 10, 3755, usize::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn new_refuses_a_base_without_http_authority() {
        let cfg = UpstreamConfig {
            url: String::new(),
            timeout_secs: 30,
            connect_timeout_secs: 5,
            pool_max_idle_per_host: 4,
            max_in_flight: 256,
        };
        assert!(Upstream::new(&cfg, "/relative".parse().unwrap()).is_err());
        assert!(Upstream::new(&cfg, "https://127.0.0.1:3000".parse().unwrap()).is_err());
    }

    #[test]
    fn fault_sides() {
        assert!(UpstreamError::Timeout.is_timeout());
        let e = UpstreamError::Unreachable("x".into());
        assert!(e.is_upstream_fault());
        let e = UpstreamError::ClientAborted("x".into());
        assert!(!e.is_upstream_fault());
    }
}

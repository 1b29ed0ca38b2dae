//! The one outbound HTTP client: how the key fetcher and the remote rule sources GET a
//! document from another server, and how the Mastodon push writes its domain blocks.
//!
//! Each GET gets its own HTTP/1.1 connection (key fetches go to thousands of hosts, rarely
//! twice in a cache TTL, and a list is fetched once an hour, so a pool would mostly hold dead
//! sockets). Per GET:
//! 1. the URL must be https (unless the caller allows http) with a host; one trailing dot is
//!    dropped from the host ([`Target`]);
//! 2. the host is resolved (or taken from the caller's pin), every address is checked against
//!    [`address::is_forbidden_address`] unless the caller allows private addresses, and the
//!    connection goes to an address that passed, so a second DNS answer cannot swap in
//!    another one;
//! 3. TLS with the webpki roots, SNI = host;
//! 4. the caller's request goes out; [`read_body`] reads a 2xx body under a cap.
//!
//! Redirects (each hop is a new [`Target`], so it passes every check again), statuses,
//! timeouts and what a body must contain are the callers' business; each maps [`Error`] into
//! its own error type, adding what it knows (keyId, URL, limit).

mod address;
mod connect;
mod target;

pub(crate) use target::{host_of, is_web_url, normalise_host, Target};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, LOCATION};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use url::Url;

/// Why a GET failed before the caller could look at the answer. The host is the target's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Error {
    /// Not http(s), or no host.
    InvalidUrl,
    /// Plain http while the caller requires https.
    InsecureScheme,
    /// The host did not resolve, or resolved to nothing.
    Dns,
    /// Every address of the host is refused by [`address::is_forbidden_address`].
    ForbiddenAddress,
    /// No address accepted the connection.
    Connect,
    /// The TLS handshake failed (certificate, name, protocol).
    Tls,
    /// The HTTP exchange broke (not HTTP/1.1, connection lost mid-body).
    Protocol,
    /// The body is (or says it is) over the cap.
    TooLarge,
}

/// Where a GET may connect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reach {
    /// Skip the address check (a loudly named config option).
    pub allow_private_addresses: bool,
    /// The operator's address for this host, used instead of DNS and not checked.
    pub pinned: Option<SocketAddr>,
}

/// Makes GETs. Holds the TLS setup and no connections; cheap to share by reference.
pub(crate) struct Client {
    tls: TlsConnector,
}

/// Aborts the task driving a client connection once the exchange is over or abandoned
/// (timeout), so no socket outlives its fetch.
pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Client {
    pub(crate) fn new() -> Result<Client, String> {
        Ok(Client {
            tls: connect::connector()?,
        })
    }

    /// Connects to `target` (address checks, TLS for https) and sends `request` on the new
    /// connection. The guard keeps the connection driven until the body is read; drop it with
    /// the response.
    pub(crate) async fn send<B>(
        &self,
        target: &Target,
        reach: Reach,
        request: Request<B>,
    ) -> Result<(Response<Incoming>, AbortOnDrop), Error>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let tcp = connect::tcp(target, reach).await?;
        let sent = if target.https {
            let tls = connect::tls(&self.tls, target, tcp).await?;
            exchange(tls, request).await
        } else {
            exchange(tcp, request).await
        };
        sent.map_err(|_| Error::Protocol)
    }

    /// [`Client::send`] without a pinned address, then the whole answer: status, headers and
    /// the body, read up to `cap(status)` bytes (`None` leaves it unread).
    pub(crate) async fn exchange<B>(
        &self,
        target: &Target,
        allow_private_addresses: bool,
        request: Request<B>,
        cap: impl FnOnce(StatusCode) -> Option<u64>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Error>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let reach = Reach {
            allow_private_addresses,
            pinned: None,
        };
        let (response, _conn) = self.send(target, reach, request).await?;
        // `_conn` keeps the connection driven until the body is read.
        let status = response.status();
        let headers = response.headers().clone();
        let body = match cap(status) {
            Some(max_bytes) => read_body(response, max_bytes).await?,
            None => Bytes::new(),
        };
        Ok((status, headers, body))
    }
}

/// Sends `request` on a new HTTP/1.1 connection over `io`.
async fn exchange<S, B>(
    io: S,
    request: Request<B>,
) -> Result<(Response<Incoming>, AbortOnDrop), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let guard = AbortOnDrop(tokio::spawn(async move {
        // Its errors surface through `send_request` or the body.
        let _ = conn.await;
    }));
    let response = sender.send_request(request).await?;
    Ok((response, guard))
}

/// The body of `response`, refused as [`Error::TooLarge`] when its `Content-Length` says more
/// than `max_bytes` (nothing read) or once reading passes `max_bytes`.
pub(crate) async fn read_body(
    response: Response<Incoming>,
    max_bytes: u64,
) -> Result<Bytes, Error> {
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes) {
        return Err(Error::TooLarge);
    }
    let cap = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    match Limited::new(response.into_body(), cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::TooLarge),
        Err(_) => Err(Error::Protocol),
    }
}

/// Where a redirect answer to a GET of `url` points: its `Location`, resolved against `url`.
pub(crate) fn redirect_target(headers: &HeaderMap, url: &Url) -> Option<Url> {
    headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|loc| url.join(loc).ok())
}

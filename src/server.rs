//! The proxy listener: accept loop, connection limit, timeouts, TLS, routing, graceful drain.
//!
//! The connection-limit permit is taken *before* `accept`, so past the limit new connections
//! wait in the kernel's backlog instead of costing a task each (as tokio's mini-redis).
//! Accept errors (EMFILE, ECONNABORTED) are logged and retried with a growing pause rather
//! than ending the server.
//!
//! Each connection task owns its connection and enforces its deadlines itself, the same way
//! for every protocol, because hyper-util's protocol detection has no timeout, hyper's
//! header timeout covers HTTP/1 only, and hyper has no idle timeout for HTTP/2 (its
//! keep-alive pings only detect dead peers):
//! - the first complete request head within `header_read_timeout_secs` of the accept (HTTP/2
//!   preface, settings and first HEADERS frame included), and each later HTTP/1.1 head
//!   within the same time of the previous response; otherwise the connection is cut;
//! - no request in flight and none started or finished for `idle_timeout_secs`: closed
//!   gracefully (HTTP/2 GOAWAY, HTTP/1.1 close). Bytes alone (PINGs) are not activity;
//! - older than `max_connection_age_secs`: closed gracefully, requests in flight finish;
//! - once closing, a connection with nothing in flight that has not gone within
//!   `CLOSE_LINGER` is cut, so a GOAWAY'd peer cannot keep its slot.
//!
//! Connections cut here, and those hyper refuses before the pipeline (431, 400, HTTP/2
//! protocol errors), are counted in `inboxguard_connection_errors_total{kind}`.

use crate::app::App;
use crate::forward::Body;
use crate::pipeline;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

mod accept;
mod deadlines;
pub(crate) use accept::Acceptor;
use deadlines::{run_connection, Activity, Deadlines, Ended, InFlight, MarkedBody, Tracked};

/// Whether a path is one of Mastodon's inbox routes (`config/routes.rb`), with Rails'
/// optional `.json` format suffix: `/inbox`, `/users/{name}/inbox`, `/ap/users/{id}/inbox`,
/// `/actor/inbox`.
pub fn is_inbox_path(path: &str) -> bool {
    let path = path.strip_suffix(".json").unwrap_or(path);
    let Some(prefix) = path.strip_suffix("/inbox") else {
        return false;
    };
    if prefix.is_empty() || prefix == "/actor" {
        return true;
    }
    if let Some(name) = prefix.strip_prefix("/users/") {
        return !name.is_empty() && !name.contains('/');
    }
    if let Some(id) = prefix.strip_prefix("/ap/users/") {
        let digits = id.strip_prefix('-').unwrap_or(id);
        return !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    }
    false
}

async fn route(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let to_inbox = req.method() == Method::POST && is_inbox_path(req.uri().path());
    pipeline::handle(&app, req, peer, to_inbox).await
}

/// A connection's transport: plain (HTTP/1.1 or h2c) or TLS, over the tracked socket.
enum Io {
    Plain(Tracked<TcpStream>),
    Tls(Box<tokio_rustls::server::TlsStream<Tracked<TcpStream>>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Builds the TLS acceptor from the configured PEM files (ALPN: h2, http/1.1).
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves the proxy listener until `shutdown` turns true, then drains in-flight requests for
/// at most the configured grace period.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = app.config.server.max_connections;
    let pauses = (Duration::from_millis(10), Duration::from_secs(1));
    let acceptor = Acceptor::new(listener, "proxy", limit, pauses);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(app.config.server.header_read_timeout())
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        // A peer that does not answer a PING within the timeout is dead: its slot is freed.
        .keep_alive_interval(Duration::from_secs(60))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    // Owns every connection task, so that connections still open when the grace period
    // ends are closed (aborted) rather than outliving `serve`.
    let mut connections = JoinSet::new();

    while let Some((permit, stream, peer)) = acceptor.next(&mut shutdown).await {
        // Reap finished connection tasks so the set stays as small as the open connections.
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        let conn_shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            app.metrics.connections_active.inc();
            let activity = Activity::new();
            let stream = Tracked {
                inner: stream,
                activity: activity.clone(),
            };
            let svc_app = app.clone();
            let svc_activity = activity.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let app = svc_app.clone();
                let in_flight = InFlight::start(&svc_activity, req.version());
                async move {
                    let response = route(app, req, peer).await;
                    Ok::<_, Infallible>(response.map(|inner| MarkedBody {
                        inner,
                        _in_flight: in_flight,
                    }))
                }
            });
            let io = match tls {
                None => Io::Plain(stream),
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        app.config.server.header_read_timeout(),
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(tls_stream)) => Io::Tls(Box::new(tls_stream)),
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            count(&app, ConnectionError::TlsHandshake);
                            app.metrics.connections_active.dec();
                            return;
                        }
                        Err(_) => {
                            tracing::info!(%peer, "TLS handshake timed out");
                            count(&app, ConnectionError::HeaderTimeout);
                            app.metrics.connections_active.dec();
                            return;
                        }
                    }
                }
            };
            let conn = builder.serve_connection(TokioIo::new(io), service);
            let server = &app.config.server;
            let limits = Deadlines {
                head: server.header_read_timeout(),
                idle: server.idle_timeout(),
                max_age: server.max_connection_age(),
            };
            let ended = run_connection(conn, &activity, limits, conn_shutdown).await;
            if let Some(kind) = ended.error() {
                count(&app, kind);
                match &ended {
                    Ended::Failed(e) => {
                        tracing::info!(%peer, kind = kind.as_str(), error = %e, "connection refused or broken before the pipeline")
                    }
                    _ => tracing::info!(%peer, kind = kind.as_str(), "connection cut at its deadline"),
                }
            }
            app.metrics.connections_active.dec();
        });
    }

    drop(acceptor);
    let grace = app.config.server.shutdown_grace();
    tracing::info!(grace_secs = grace.as_secs(), "draining in-flight requests");
    // Every connection task has seen `shutdown` and is closing gracefully.
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "grace period over; closing remaining connections"
        );
    }
    connections.shutdown().await;
}

/// The `kind` label of `inboxguard_connection_errors_total`: a fixed, small vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionError {
    /// No complete request head in time (slowloris, a dripped HTTP/2 preface, a silent
    /// connection), or a TLS handshake that did not finish in that time.
    HeaderTimeout,
    /// Asked to close (GOAWAY, idle, maximum age, shutdown), the peer kept the connection open.
    CloseTimeout,
    /// A request head larger than hyper's buffer: hyper answered 431.
    HeaderTooLarge,
    /// A malformed request head (bad Content-Length, bad method, bad version …): hyper
    /// answered 400.
    BadRequest,
    /// A TLS handshake that failed.
    TlsHandshake,
    /// An HTTP/2 protocol error, or another error hyper reported for the connection.
    Protocol,
    /// The connection broke (reset, closed mid-message).
    Io,
}

impl ConnectionError {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionError::HeaderTimeout => "header_timeout",
            ConnectionError::CloseTimeout => "close_timeout",
            ConnectionError::HeaderTooLarge => "header_too_large",
            ConnectionError::BadRequest => "bad_request",
            ConnectionError::TlsHandshake => "tls_handshake",
            ConnectionError::Protocol => "protocol",
            ConnectionError::Io => "io",
        }
    }

    fn of(e: &(dyn std::error::Error + 'static)) -> ConnectionError {
        if let Some(e) = e.downcast_ref::<hyper::Error>() {
            if e.is_parse_too_large() {
                ConnectionError::HeaderTooLarge
            } else if e.is_parse() || e.is_parse_status() {
                ConnectionError::BadRequest
            } else if e.is_timeout() {
                ConnectionError::HeaderTimeout
            } else if e.is_incomplete_message()
                || e.is_closed()
                || e.is_canceled()
                || std::error::Error::source(e).is_some_and(|s| s.is::<io::Error>())
            {
                ConnectionError::Io
            } else {
                ConnectionError::Protocol
            }
        } else if e.downcast_ref::<io::Error>().is_some() {
            ConnectionError::Io
        } else {
            ConnectionError::Protocol
        }
    }
}

fn count(app: &App, kind: ConnectionError) {
    app.metrics
        .connection_errors_total
        .with_label_values(&[kind.as_str()])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::is_inbox_path;

    #[test]
    fn inbox_routes() {
        for p in [
            "/inbox",
            "/inbox.json",
            "/users/alice/inbox",
            "/users/alice/inbox.json",
            "/ap/users/1234/inbox",
            "/ap/users/-99/inbox",
            "/actor/inbox",
        ] {
            assert!(is_inbox_path(p), "{p}");
        }
        for p in [
            "/",
            "/users/alice",
            "/users//inbox",
            "/users/a/b/inbox",
            "/ap/users/abc/inbox",
            "/ap/users//inbox",
            "/inboxes",
            "/api/v1/inbox",
            "/users/alice/outbox",
            "/inbox/",
        ] {
            assert!(!is_inbox_path(p), "{p}");
        }
    }
}

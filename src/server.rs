//! The proxy listener: accept loop, connection limit, timeouts, TLS, routing, graceful drain.
//!
//! The connection-limit permit is taken *before* `accept`, so past the limit new connections
//! wait in the kernel's backlog instead of costing a task each (as tokio's mini-redis).
//! Accept errors (EMFILE, ECONNABORTED) are logged and retried with a growing pause rather
//! than ending the server.
//!
//! Each connection task owns its connection and ends it gracefully (HTTP/2 GOAWAY, HTTP/1.1
//! close after the current response) on shutdown or when it has been idle — no request in
//! flight, no byte read or written — for `idle_timeout_secs`. hyper has no idle timeout of
//! its own for HTTP/2 (its keep-alive pings only detect dead peers), and an idle connection
//! would otherwise hold a `max_connections` slot forever.

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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

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
    if req.method() == Method::POST && is_inbox_path(req.uri().path()) {
        pipeline::handle_inbox(&app, req, peer).await
    } else {
        pipeline::passthrough(&app, req, peer).await
    }
}

/// What the idle watchdog of one connection looks at: when a byte last moved, and how many
/// requests are being answered (a request waiting on a slow upstream moves no bytes but is
/// not idle).
struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` of the last read or write that moved bytes.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }

    /// Resolves once the connection has had no request in flight and no traffic for `idle`.
    async fn idle(&self, idle: Duration) {
        loop {
            let quiet = self.quiet_for();
            if self.in_flight.load(Ordering::Relaxed) == 0 && quiet >= idle {
                return;
            }
            // With a request in flight, look again a whole period later.
            tokio::time::sleep(idle.saturating_sub(quiet).max(Duration::from_millis(10))).await;
        }
    }
}

/// The connection's socket, noting every read and write that moves bytes.
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
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

/// One request being answered; dropped with the response body (finished, failed, or the
/// client gone), so a response still streaming counts as in flight.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A response body carrying its request's [`InFlight`] mark.
struct MarkedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for MarkedBody {
    type Data = bytes::Bytes;
    type Error = crate::forward::BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
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
    let limit = Arc::new(Semaphore::new(app.config.server.max_connections));
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
        .keep_alive_interval(Duration::from_secs(60));
    let builder = Arc::new(builder);
    let mut backoff = Duration::from_millis(10);
    // Owns every connection task, so that connections still open when the grace period
    // ends are closed (aborted) rather than outliving `serve`.
    let mut connections = JoinSet::new();

    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => {
                    backoff = Duration::from_millis(10);
                    conn
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
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
            let service = service_fn(move |req| {
                let app = svc_app.clone();
                let in_flight = InFlight::start(&svc_activity);
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
                            app.metrics.connections_active.dec();
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            app.metrics.connections_active.dec();
                            return;
                        }
                    }
                }
            };
            let conn = builder.serve_connection(TokioIo::new(io), service);
            let idle = app.config.server.idle_timeout();
            let result = run_connection(conn, &activity, idle, conn_shutdown).await;
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            app.metrics.connections_active.dec();
        });
    }

    drop(listener);
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

/// Drives one connection to its end, closing it gracefully on shutdown or when idle.
async fn run_connection<S>(
    conn: auto::Connection<'_, TokioIo<Io>, S, TokioExecutor>,
    activity: &Activity,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<MarkedBody>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
{
    let mut conn = std::pin::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => return result,
            // A dropped sender also means shutdown.
            _ = shutdown.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = activity.idle(idle), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
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

//! The proxy listener: accept loop, connection limit, timeouts, TLS, routing, graceful drain.
//!
//! The connection-limit permit is taken *before* `accept`, so past the limit new connections
//! wait in the kernel's backlog instead of costing a task each (as tokio's mini-redis).
//! Accept errors (EMFILE, ECONNABORTED) are logged and retried with a growing pause rather
//! than ending the server.

use crate::app::App;
use crate::forward::Body;
use crate::pipeline;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
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
    let graceful = GracefulShutdown::new();
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
        let watcher = graceful.watcher();
        connections.spawn(async move {
            let _permit = permit;
            app.metrics.connections_active.inc();
            let svc_app = app.clone();
            let service = service_fn(move |req| {
                let app = svc_app.clone();
                async move { Ok::<_, Infallible>(route(app, req, peer).await) }
            });
            let result = match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        app.config.server.header_read_timeout(),
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(tls_stream)) => {
                            let conn = builder.serve_connection(TokioIo::new(tls_stream), service);
                            watcher.watch(conn.into_owned()).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            app.metrics.connections_active.dec();
        });
    }

    drop(listener);
    let grace = app.config.server.shutdown_grace();
    tracing::info!(grace_secs = grace.as_secs(), "draining in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "grace period over; closing remaining connections"
        );
    }
    connections.shutdown().await;
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

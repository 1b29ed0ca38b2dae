//! The admin listener, separate from the proxy port and loopback-only unless a bearer token
//! is configured (config validation enforces that). Endpoints:
//!
//! | method | path            | token needed | answer                                        |
//! |--------|-----------------|--------------|-----------------------------------------------|
//! | GET    | `/metrics`      | yes          | Prometheus text                               |
//! | GET    | `/healthz`      | no           | 200 while the process runs                    |
//! | GET    | `/readyz`       | no           | 200 once rules are loaded and serving; 503 while draining |
//! | POST   | `/admin/reload` | yes          | reload rule files; 200 + per-source counts and changes, or 500 + each refused file's file:line error (its last good copy stays; the other sources' changes apply, listed as for 200) |
//! | GET    | `/admin/friendly-federators` | yes | friendly-federator evidence and escalations (JSON) |
//! | GET    | `/admin/domains`, `/admin/domains/<domain>`, `/admin/decisions`, `/admin/rule-changes` | yes | the decision journal and rule-change log (JSON; `console` lists the parameters) |
//!
//! "Token needed" applies only when `admin.token_file` is set; probes stay token-free so that
//! a kubelet needs no secret.
//!
//! In Kubernetes this listener binds 0.0.0.0, so it gets the proxy listener's hygiene in small:
//! a connection cap taken before `accept` and a header read timeout, so that slow or idle
//! clients cannot pile up tasks and sockets. [`probe`] is the client side of `/healthz` and
//! `/readyz`, for `inboxguard healthcheck` in images that have no HTTP client.

use crate::app::App;
use crate::forward::Body;
use crate::reject::full;
use crate::rules::SourceSummary;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Admin connections served at once. Probes, a scraper and an operator need a handful; past the
/// cap new connections wait in the kernel's backlog instead of each costing a task.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request's headers, and how long an idle keep-alive
/// connection is kept: a slowloris client would otherwise hold one of the capped slots for good.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A bearer token, never printed.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    pub fn from_file(path: &std::path::Path) -> Result<Token, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read admin token: {e}", path.display()))?;
        let token = text.trim();
        if token.len() < 16 {
            return Err(format!(
                "{}: admin token must be at least 16 characters",
                path.display()
            ));
        }
        Ok(Token(token.into()))
    }

    fn matches(&self, req: &Request<Incoming>) -> bool {
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return false;
        };
        let Some(given) = value.as_bytes().strip_prefix(b"Bearer ") else {
            return false;
        };
        aws_lc_rs::constant_time::verify_slices_are_equal(given, self.0.as_bytes()).is_ok()
    }
}

pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    token: Option<Token>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // Taken before accept (as the proxy listener does), and released when the connection ends.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                // Never closed; if it were, nothing more could be served.
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let app = app.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req| {
                let app = app.clone();
                let token = token.clone();
                async move { Ok::<_, Infallible>(handle(&app, token.as_ref(), req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection error");
            }
        });
    }
}

/// Why a [`probe`] did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}: only http://host:port/path URLs are probed")]
    Url(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
}

/// One plain `GET url` (`http://host:port/path`, as `/healthz` or `/readyz` on this listener)
/// bounded by `timeout` as a whole; returns the answer's status. No TLS and no token: the
/// probes need neither.
pub async fn probe(url: &str, timeout: Duration) -> Result<StatusCode, ProbeError> {
    let uri: http::Uri = url.parse().map_err(|_| ProbeError::Url(url.to_string()))?;
    let (Some("http"), Some(authority)) = (uri.scheme_str(), uri.authority().cloned()) else {
        return Err(ProbeError::Url(url.to_string()));
    };
    let get = async {
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|source| ProbeError::Connect { addr, source })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream)).await?;
        // Drives the connection; it ends when the answer is read or the probe gives up.
        tokio::spawn(conn);
        let mut req = Request::new(full(Vec::new()));
        *req.uri_mut() = uri.path_and_query().map_or_else(
            || http::Uri::from_static("/"),
            |p| http::Uri::from(p.clone()),
        );
        req.headers_mut().insert(
            header::HOST,
            HeaderValue::from_str(authority.as_str())
                .map_err(|_| ProbeError::Url(url.to_string()))?,
        );
        Ok(sender.send_request(req).await?.status())
    };
    tokio::time::timeout(timeout, get)
        .await
        .map_err(|_| ProbeError::Timeout(timeout))?
}

async fn handle(app: &App, token: Option<&Token>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let needs_token = !matches!(path, "/healthz" | "/readyz");
    if needs_token {
        if let Some(token) = token {
            if !token.matches(&req) {
                return text(StatusCode::UNAUTHORIZED, "bearer token required\n");
            }
        }
    }
    match (req.method(), path) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => {
            if app.is_ready() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        (&Method::GET, "/metrics") => {
            app.metrics
                .upstream_in_flight
                .set(i64::try_from(app.upstream.in_flight()).unwrap_or(i64::MAX));
            let mut resp = Response::new(full(app.metrics.render()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            resp
        }
        (&Method::POST, "/admin/reload") => {
            let rules = app.rules.clone();
            match tokio::task::spawn_blocking(move || rules.reload()).await {
                Ok(Ok(summaries)) => text(StatusCode::OK, &reloaded(&summaries)),
                // A refused file is an error for whoever edited it, even though the other
                // sources' changes are in force: name it, then what is in force.
                Ok(Err(e)) => match &e.applied {
                    Some(summaries) => {
                        let mut out = String::new();
                        for refused in &e.refused {
                            out.push_str(&format!(
                                "refused {refused}; its last good copy stays in force\n"
                            ));
                        }
                        out.push_str(&reloaded(summaries));
                        // The last line is the outcome, as the status says.
                        out.push_str(&format!(
                            "failed: {} refused (first lines); the other sources' changes are in force\n",
                            e.refused.len()
                        ));
                        text(StatusCode::INTERNAL_SERVER_ERROR, &out)
                    }
                    None => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("reload failed, previous rules kept: {e}\n"),
                    ),
                },
                Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "reload task failed\n"),
            }
        }
        (&Method::GET, "/admin/friendly-federators") => {
            let rules = app.rules.current().load();
            let report = app
                .federators
                .report(crate::federators::unix_now(), rules.friendly_federators());
            match serde_json::to_vec_pretty(&report) {
                Ok(body) => {
                    let mut resp = Response::new(full(body));
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    resp
                }
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("cannot encode the report: {e}\n"),
                ),
            }
        }
        (&Method::GET, p) if crate::console::serves(p) => {
            crate::console::get(app, p, req.uri().query()).await
        }
        (
            _,
            "/healthz" | "/readyz" | "/metrics" | "/admin/reload" | "/admin/friendly-federators",
        ) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        (_, p) if crate::console::serves(p) => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `reloaded`, then per source what is in force (suspend, silence, noop, allow, exclude,
/// actor_suspend, notable extras) and what this reload changed.
fn reloaded(summaries: &[SourceSummary]) -> String {
    let mut out = String::from("reloaded\n");
    for s in summaries {
        let changes = if s.changes.is_empty() {
            "none".to_string()
        } else {
            s.changes.to_string()
        };
        out.push_str(&format!("{s}\n  changed: {changes}\n"));
    }
    out
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut resp = Response::new(full(body.to_owned()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

//! The admin listener, separate from the proxy port and loopback-only unless a bearer token
//! is configured (config validation enforces that). Endpoints:
//!
//! | method | path            | token needed | answer                                        |
//! |--------|-----------------|--------------|-----------------------------------------------|
//! | GET    | `/metrics`      | yes          | Prometheus text                               |
//! | GET    | `/healthz`      | no           | 200 while the process runs                    |
//! | GET    | `/readyz`       | no           | 200 once rules are loaded and serving (`ready`, then a line per failing evidence save or held-back source); 503 while draining |
//! | POST   | `/admin/reload` | yes          | reload rule files; 200 + per-source counts and changes, or 500 + each refused file's file:line error (its last good copy stays; the other sources' changes apply, listed as for 200) |
//! | GET    | `/admin/friendly-federators` | yes | friendly-federator and content-rule evidence and escalations (JSON) |
//! | GET    | `/admin/content-rules` | yes | content-rule evidence alone (JSON) |
//! | GET    | `/admin/escalations` | yes | escalated domains (action, since, cause, counts) and the last lift of each (JSON) |
//! | POST   | `/admin/escalations/<domain>/lift?by=NAME&reason=TEXT` | yes | lift an escalation: out of the rules in force now (`trigger="lift"`), who/when/why saved in the evidence file; 200, 404 when not escalated, 400 for a bad domain |
//! | GET, POST | `/admin/explain?subject=…` | yes | `inboxguard explain`'s report for a domain or actor from the rules in force (their last good copies), or for the activity JSON POSTed as the body; 400 for a subject that names nothing |
//! | POST   | `/admin/sources/<name>/accept` | yes | put in force the version of a rule source the shrink guard holds back (`<name>`: its path or URL as configured, percent-encoded, or a file's name); 200, or 404 for an unknown source |
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
use crate::server::Acceptor;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

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
    let pause = Duration::from_millis(100);
    let acceptor = Acceptor::new(listener, "admin", MAX_CONNECTIONS, (pause, pause));
    while let Some((slot, stream, _)) = acceptor.next(&mut shutdown).await {
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
    call(Method::GET, url, None, Vec::new(), timeout)
        .await
        .map(|(status, _)| status)
}

/// The base URL (`http://host:port`) at which this machine reaches the admin listener that
/// `config` binds: a wildcard address is reached on loopback.
pub fn base_url(config: &crate::config::AdminConfig) -> String {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

/// One request to this listener (`http://host:port/path`) with the bearer `token` if given,
/// bounded by `timeout` as a whole; the answer's status and body (lossy UTF-8). What the
/// commands that ask the running proxy (`accept`, `explain --admin`) use.
pub async fn call(
    method: Method,
    url: &str,
    token: Option<&Token>,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(StatusCode, String), ProbeError> {
    use http_body_util::BodyExt;
    let uri: http::Uri = url.parse().map_err(|_| ProbeError::Url(url.to_string()))?;
    let (Some("http"), Some(authority)) = (uri.scheme_str(), uri.authority().cloned()) else {
        return Err(ProbeError::Url(url.to_string()));
    };
    let request = async {
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
        // Drives the connection; it ends when the answer is read or the call gives up.
        tokio::spawn(conn);
        let mut req = Request::new(full(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri.path_and_query().map_or_else(
            || http::Uri::from_static("/"),
            |p| http::Uri::from(p.clone()),
        );
        req.headers_mut().insert(
            header::HOST,
            HeaderValue::from_str(authority.as_str())
                .map_err(|_| ProbeError::Url(url.to_string()))?,
        );
        if let Some(token) = token {
            let value = HeaderValue::from_str(&format!("Bearer {}", token.0))
                .map_err(|_| ProbeError::Url(url.to_string()))?;
            req.headers_mut().insert(header::AUTHORIZATION, value);
        }
        let answer = sender.send_request(req).await?;
        let status = answer.status();
        let body = answer.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, request)
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
                text(StatusCode::OK, &readiness_detail(app))
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
            let report = app.federators.report(
                crate::federators::unix_now(),
                rules.friendly_federators(),
                Some(rules.content_rules()),
            );
            json(&report)
        }
        (&Method::GET, "/admin/content-rules") => {
            let rules = app.rules.current().load();
            let report = app
                .federators
                .content_report(crate::federators::unix_now(), Some(rules.content_rules()));
            json(&report)
        }
        (&Method::GET | &Method::POST, "/admin/explain") => explain(app, req).await,
        (&Method::GET, "/admin/escalations") => {
            let rules = app.rules.current().load();
            json(&app.federators.escalations(
                crate::federators::unix_now(),
                rules.friendly_federators(),
                Some(rules.content_rules()),
            ))
        }
        (method, path) if escalation_to_lift(path).is_some() => {
            if method != Method::POST {
                return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            }
            let domain = escalation_to_lift(path).unwrap_or_default();
            lift(app, domain, req.uri().query().unwrap_or_default()).await
        }
        (method, path) if source_to_accept(path).is_some() => {
            if method != Method::POST {
                return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            }
            let name = source_to_accept(path).unwrap_or_default();
            accept(app, name).await
        }
        (&Method::GET, p) if crate::console::serves(p) => {
            crate::console::get(app, p, req.uri().query()).await
        }
        (
            _,
            "/healthz"
            | "/readyz"
            | "/metrics"
            | "/admin/reload"
            | "/admin/friendly-federators"
            | "/admin/content-rules"
            | "/admin/escalations"
            | "/admin/explain",
        ) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        (_, p) if crate::console::serves(p) => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `GET /admin/explain?subject=<domain or actor>`, or `POST` with an activity as the body
/// (`subject=` then names its file): `explain`'s report from the rules in force.
async fn explain(app: &App, req: Request<Incoming>) -> Response<Body> {
    use crate::explain::{report_live, Subject, MAX_ACTIVITY_FILE_BYTES};
    use http_body_util::{BodyExt, Limited};
    let subject = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("subject="))
        .map(|v| percent_decode(&v.replace('+', " ")))
        .unwrap_or_default();
    let parsed = if req.method() == Method::POST {
        let limit = usize::try_from(MAX_ACTIVITY_FILE_BYTES).unwrap_or(usize::MAX);
        match Limited::new(req.into_body(), limit).collect().await {
            Ok(body) => Subject::activity(subject, &body.to_bytes()),
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the activity: {e}\n"),
                )
            }
        }
    } else if crate::explain::is_activity_file(&subject) {
        // The proxy's own files are not the operator's: an activity comes as the body.
        return text(
            StatusCode::BAD_REQUEST,
            "an activity file is sent as the body of a POST\n",
        );
    } else {
        Subject::parse(&subject)
    };
    let subject = match parsed {
        Ok(s) => s,
        Err(e) => return text(StatusCode::BAD_REQUEST, &format!("{e}\n")),
    };
    let (rules, friendly) = (app.rules.clone(), app.federators.config().clone());
    match tokio::task::spawn_blocking(move || report_live(&rules, &friendly, &subject)).await {
        Ok(Ok(report)) => text(StatusCode::OK, &report),
        Ok(Err(e)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot list the rules in force: {e}\n"),
        ),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "explain task failed\n"),
    }
}

/// `ready`, then a line per problem that does not stop serving but needs an operator: a
/// failing evidence save, a source version the shrink guard holds back.
fn readiness_detail(app: &App) -> String {
    let mut out = String::from("ready\n");
    if let Some(e) = app.federators.save_error() {
        out.push_str(&format!(
            "error: friendly-federator evidence not saved: {e}\n"
        ));
    }
    for label in app.rules.held_back() {
        out.push_str(&format!(
            "held back: {label}: new version would remove too much (inboxguard accept)\n"
        ));
    }
    out
}

/// The source named in `/admin/sources/<name>/accept`, percent-decoded (a URL or a path
/// travels percent-encoded in one segment).
fn source_to_accept(path: &str) -> Option<String> {
    let name = path
        .strip_prefix("/admin/sources/")?
        .strip_suffix("/accept")?;
    (!name.is_empty()).then(|| percent_decode(name))
}

/// The domain named in `/admin/escalations/<domain>/lift`, percent-decoded.
fn escalation_to_lift(path: &str) -> Option<String> {
    let domain = path
        .strip_prefix("/admin/escalations/")?
        .strip_suffix("/lift")?;
    (!domain.is_empty()).then(|| percent_decode(domain))
}

/// The value of `name` in a query string (`a=1&b=2`), `+` and `%XX` decoded.
fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decode(&value.replace('+', " ")))
    })
}

/// `POST /admin/escalations/<domain>/lift?by=NAME&reason=TEXT`: an operator lifts an
/// escalation; who, when and why go into the evidence file, the domain out of the rules in
/// force.
async fn lift(app: &App, domain: String, query: &str) -> Response<Body> {
    use crate::federators::LiftError;
    let by = query_value(query, "by").unwrap_or_else(|| "admin".into());
    let reason = query_value(query, "reason").unwrap_or_default();
    let (federators, rules) = (app.federators.clone(), app.rules.clone());
    let d = domain.clone();
    let lifted = tokio::task::spawn_blocking(move || {
        crate::federators::lift(&federators, &rules, &d, &by, &reason)
    })
    .await;
    match lifted {
        Ok(Ok(l)) => text(
            StatusCode::OK,
            &format!(
                "lifted {domain} (escalated {} by {}) by {:?}: {:?}\n",
                crate::clock::rfc3339(l.escalated.at),
                crate::federators::cause_of(&l.escalated),
                l.by,
                l.reason
            ),
        ),
        Ok(Err(e @ LiftError::NotEscalated(_))) => text(StatusCode::NOT_FOUND, &format!("{e}\n")),
        Ok(Err(e @ LiftError::InvalidDomain(_))) => {
            text(StatusCode::BAD_REQUEST, &format!("{e}\n"))
        }
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "lift task failed\n"),
    }
}

/// `%XX` escapes decoded; anything else as it is.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `%XX`-escapes everything but unreserved characters, so a URL or a path fits one segment.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `POST /admin/sources/<name>/accept`: an operator's word that the version of `name` the
/// shrink guard holds back is meant.
async fn accept(app: &App, name: String) -> Response<Body> {
    let Some(label) = app.rules.source_named(&name) else {
        return text(
            StatusCode::NOT_FOUND,
            &format!("no rule source named {name:?} (give its path or URL as configured, or a file's name)\n"),
        );
    };
    let rules = app.rules.clone();
    let l = label.clone();
    match tokio::task::spawn_blocking(move || rules.accept(&l)).await {
        Ok(Ok(summaries)) => {
            let mut out = format!("accepted {label}\n");
            out.push_str(&reloaded(&summaries.unwrap_or_default()));
            text(StatusCode::OK, &out)
        }
        // The accepted source is in force; another file is still refused.
        Ok(Err(e)) if !e.refused.iter().any(|r| r.file == label) => {
            let mut out = format!("accepted {label}\n");
            for refused in &e.refused {
                out.push_str(&format!(
                    "refused {refused}; its last good copy stays in force\n"
                ));
            }
            out.push_str(&reloaded(e.applied.as_deref().unwrap_or_default()));
            text(StatusCode::OK, &out)
        }
        Ok(Err(e)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("{label} still refused: {e}\n"),
        ),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "accept task failed\n"),
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

/// A JSON report, pretty-printed for people reading it with curl.
fn json(report: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_vec_pretty(report) {
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

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut resp = Response::new(full(body.to_owned()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

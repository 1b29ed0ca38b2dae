//! THE inbox request flow. One request moves one way through these phases; each phase either
//! hands the request on or stops it with a `Verdict`:
//!
//! ```text
//! limits ─► signature (parse, strength, window) ─► blocked key host ─► body digest
//!        ─► activity facts (JSON) ─► blocked actor host
//!        ─► key (cache, fetch on miss; gone actor's self-Delete) ─► verify (refetch once)
//!        ─► policy ─► friendly federators (laundered content) ─► forward
//!        ─► finish: metrics + access log, exactly once, whatever happened above
//! ```
//!
//! Cheap before expensive: a request from a suspended domain (or, in allowlist mode, from a
//! domain not allowed), a stale or tampered request, or broken JSON costs no key fetch and no
//! public-key operation. Actor rules (a suspended account as actor or as the object's author)
//! are applied in the policy phase. Both signature formats
//! (draft-cavage and RFC 9421) take this same path; only `signature::prepare_headers` tells
//! them
//! apart.
//!
//! A relayed activity (its actor is not the key's owner: relays, forwarded replies) is held to
//! the rules of both hosts and forwarded; Mastodon checks its embedded LD signature or
//! FEP-8b32 proof itself.

use crate::activity::Facts;
use crate::app::App;
use crate::forward::Body;
use crate::keys::Source;
use crate::policy::{self, host};
use crate::reject::{full, Decision, Verdict};
use crate::signature;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

/// How long a sender is asked to wait before retrying after a transient failure.
const RETRY_AFTER_SECS: u32 = 30;

/// What the access log and metrics learn about a request as it moves along.
#[derive(Debug, Default)]
struct Context {
    key_host: Option<String>,
    actor: Option<String>,
    kind: Option<String>,
    /// The activity's actor is not the key's owner (relays, forwarded replies). Set only
    /// once the key verified the signature.
    relayed: bool,
    format: Option<signature::Format>,
    /// A dry-run rule would have stopped this verified request, for this reason; it is
    /// forwarded all the same and counted as `would_reject`.
    would_stop: Option<&'static str>,
}

enum Outcome {
    /// Mastodon answered; its response goes back to the sender.
    Forwarded(Response<Body>),
    /// The proxy answered itself.
    Stopped(Verdict),
}

/// Handles one POST to an inbox path.
pub async fn handle_inbox(app: &App, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let start = Instant::now();
    let mut ctx = Context::default();
    let outcome = inbox(app, req, peer, &mut ctx).await;
    finish(app, &ctx, start, outcome)
}

async fn inbox(app: &App, req: Request<Incoming>, peer: SocketAddr, ctx: &mut Context) -> Outcome {
    let (mut parts, body) = req.into_parts();
    ensure_host_header(&mut parts);

    // Limits: the declared length first (no byte read), then the real length while reading.
    let max = app.config.server.max_body_bytes;
    if let Some(len) = content_length(&parts.headers) {
        if len > max {
            linger(body, len, max, app.config.server.body_read_timeout());
            return Outcome::Stopped(too_large(max));
        }
    }
    let body = match read_body(app, body, max).await {
        Ok(b) => b,
        Err(v) => return Outcome::Stopped(v),
    };

    // Signature: everything that needs no key.
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let target = signature::RequestTarget {
        scheme: public_scheme(app, &parts.headers),
        authority: parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok()),
    };
    let prepared = match signature::prepare_headers(
        &parts.method,
        path_and_query,
        &parts.headers,
        &target,
        SystemTime::now(),
        &app.config.signatures,
    ) {
        Ok(p) => p,
        Err(e) => return Outcome::Stopped(bad_signature(app, &e)),
    };
    ctx.format = Some(prepared.format());
    let Some(key_host) = host::normalize(&prepared.key_host) else {
        return Outcome::Stopped(Verdict::reject(
            StatusCode::UNAUTHORIZED,
            "invalid_key_id",
            format!("Invalid keyId host in {}", prepared.key_id),
        ));
    };
    ctx.key_host = Some(key_host.clone());

    // One snapshot for the whole request.
    let rules = app.rules.current().load();
    let refused = rules.check_host(&key_host, policy::Party::KeyHost);
    if let Some(verdict) = refused.as_ref().and_then(policy_verdict) {
        return Outcome::Stopped(verdict);
    }
    if let Err(e) = prepared.check_body(&parts.headers, &body) {
        return Outcome::Stopped(bad_signature(app, &e));
    }

    let facts = match Facts::parse(&body) {
        Ok(f) => f,
        Err(e) => {
            return Outcome::Stopped(Verdict::reject(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                e.to_string(),
            ))
        }
    };
    ctx.actor = facts.actor.clone();
    ctx.kind = facts.kind.clone();
    let actor_host = facts.actor.as_deref().and_then(host::of_uri);
    if let Some(actor_host) = &actor_host {
        let refused = rules.check_host(actor_host, policy::Party::ActorHost);
        if let Some(verdict) = refused.as_ref().and_then(policy_verdict) {
            return Outcome::Stopped(verdict);
        }
    }

    // Key, then the one expensive operation.
    let record = match app.keys.get(&prepared.key_id).await {
        Ok((record, source)) => match prepared.verify(&record.key) {
            Ok(()) => record,
            Err(first) if source == Source::Cache => {
                // The sender may have rotated its key since we cached it: refetch once.
                match app.keys.refresh(&prepared.key_id).await {
                    Ok(fresh) => match prepared.verify(&fresh.key) {
                        Ok(()) => fresh,
                        Err(e) => return Outcome::Stopped(bad_signature(app, &e)),
                    },
                    Err(_) => return Outcome::Stopped(bad_signature(app, &first)),
                }
            }
            Err(e) => return Outcome::Stopped(bad_signature(app, &e)),
        },
        Err(e) if e.is_gone() && facts.is_self_delete_or_update() => {
            // The actor is gone and so is its key: Mastodon could not verify this either.
            // Acknowledge it so the sender stops retrying an account-deletion flood.
            return Outcome::Stopped(Verdict::drop("gone_actor"));
        }
        Err(e) if e.is_transient() => {
            return Outcome::Stopped(
                Verdict::reject(
                    StatusCode::SERVICE_UNAVAILABLE,
                    e.request_reason(),
                    e.to_string(),
                )
                .with_retry_after(RETRY_AFTER_SECS),
            )
        }
        Err(e) => {
            return Outcome::Stopped(Verdict::reject(
                StatusCode::UNAUTHORIZED,
                e.request_reason(),
                e.to_string(),
            ))
        }
    };
    ctx.relayed = facts.actor.as_deref() != Some(record.owner.as_str());

    // Policy on the verified request.
    let decision = rules.decide(&policy::Facts {
        key_host: &key_host,
        actor_host: actor_host.as_deref(),
        activity_type: facts.kind.as_deref(),
        actor: facts.actor.as_deref(),
        attributed_to: facts
            .object
            .as_ref()
            .and_then(|o| o.attributed_to.as_deref()),
    });
    if let Some(verdict) = policy_verdict(&decision) {
        return Outcome::Stopped(verdict);
    }
    if let (Some(would), Some((rule, source, line))) = (decision.would(), decision.origin()) {
        let reason = decision.reason();
        tracing::warn!(
            reason,
            would = ?would,
            rule,
            rule_source = source,
            rule_line = line,
            "dry-run rule would have stopped this request; forwarding it"
        );
        ctx.would_stop = Some(reason);
    }

    // Friendly federators: a verified sender carrying content from a suspended domain. After
    // verification, so only senders that proved who they are count as evidence.
    if let Some(stop) = app
        .federators
        .inspect(&rules, &facts, &key_host, actor_host.as_deref())
    {
        if !stop.dry_run {
            return Outcome::Stopped(Verdict::drop(stop.reason));
        }
        ctx.would_stop.get_or_insert(stop.reason);
    }

    forward(app, parts, body, peer).await
}

async fn forward(app: &App, parts: http::request::Parts, body: Bytes, peer: SocketAddr) -> Outcome {
    match send_upstream(app, Request::from_parts(parts, full(body)), peer).await {
        Ok(resp) => Outcome::Forwarded(resp),
        Err(e) => Outcome::Stopped(upstream_error(&e)),
    }
}

/// Sends a request to Mastodon and records the upstream metrics, for inbox and pass-through
/// requests alike.
async fn send_upstream(
    app: &App,
    req: Request<Body>,
    peer: SocketAddr,
) -> Result<Response<Body>, crate::forward::UpstreamError> {
    let started = Instant::now();
    let result = app
        .upstream
        .send(
            req,
            peer,
            app.listener_scheme,
            app.config.server.trust_forwarded_proto,
        )
        .await;
    app.metrics
        .upstream_duration_seconds
        .observe(started.elapsed().as_secs_f64());
    let result_label = match &result {
        Ok(resp) => status_class(resp.status()),
        Err(e) => e.reason(),
    };
    app.metrics
        .upstream_responses_total
        .with_label_values(&[result_label])
        .inc();
    result
}

/// Writes the request's metrics and its access-log line. Runs once for every inbox request.
fn finish(app: &App, ctx: &Context, start: Instant, outcome: Outcome) -> Response<Body> {
    let (decision, reason, response) = match outcome {
        Outcome::Forwarded(resp) => match ctx.would_stop {
            Some(reason) => (Decision::WouldReject, reason, resp),
            None => (Decision::Forwarded, "forwarded", resp),
        },
        Outcome::Stopped(v) => (v.decision, v.reason, v.into_response()),
    };
    let elapsed = start.elapsed();
    app.metrics
        .requests_total
        .with_label_values(&[decision.as_str(), reason])
        .inc();
    if ctx.relayed {
        app.metrics
            .relayed_requests_total
            .with_label_values(&[decision.as_str()])
            .inc();
    }
    app.metrics
        .request_duration_seconds
        .with_label_values(&[decision.as_str()])
        .observe(elapsed.as_secs_f64());
    tracing::info!(
        target: "inboxguard::access",
        key_host = ctx.key_host.as_deref().unwrap_or("-"),
        actor = ctx.actor.as_deref().unwrap_or("-"),
        activity_type = ctx.kind.as_deref().unwrap_or("-"),
        relayed = ctx.relayed,
        signature_format = ctx.format.map_or("-", signature::Format::as_str),
        decision = decision.as_str(),
        reason,
        status = response.status().as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "inbox"
    );
    response
}

/// Streams a non-inbox request to Mastodon untouched.
pub async fn passthrough(app: &App, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    app.metrics.passthrough_requests_total.inc();
    let req = req.map(|b| {
        b.map_err(|e| Box::new(e) as crate::forward::BoxError)
            .boxed()
    });
    match send_upstream(app, req, peer).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::warn!(error = %e, "pass-through request failed");
            upstream_error(&e).into_response()
        }
    }
}

/// Bytes of an over-long body read and thrown away after a 413, as a multiple of
/// `max_body_bytes`.
const LINGER_FACTOR: u64 = 4;

/// Reads and discards a refused body while the 413 goes out, if it is at most
/// [`LINGER_FACTOR`] × `max` long and arrives within `timeout` (nginx's "lingering close").
/// Closing a socket with unread input makes the kernel answer with a reset, which can destroy
/// the 413 before the sender reads it: the sender (or the edge proxy, which does not retry
/// POSTs) then sees a transport error, takes it as transient and sends the same body again.
/// Bodies beyond the bound are dropped at once: the connection closes, as before.
fn linger(body: Incoming, declared: u64, max: u64, timeout: Duration) {
    if declared > max.saturating_mul(LINGER_FACTOR) {
        return;
    }
    tokio::spawn(async move {
        let drain = async {
            let mut body = body;
            while let Some(Ok(_)) = body.frame().await {}
        };
        let _ = tokio::time::timeout(timeout, drain).await;
    });
}

async fn read_body(app: &App, body: Incoming, max: u64) -> Result<Bytes, Verdict> {
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let read = Limited::new(body, limit).collect();
    match tokio::time::timeout(app.config.server.body_read_timeout(), read).await {
        Err(_) => Err(Verdict::reject(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "Request body not received in time",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(max)),
        Ok(Err(e)) => Err(Verdict::reject(
            StatusCode::BAD_REQUEST,
            "body_read_error",
            format!("Request body could not be read: {e}"),
        )),
    }
}

/// HTTP/2 carries the host in `:authority`, not in a `Host` header; signatures (and Mastodon)
/// name `host`, so give the request the header it would have had over HTTP/1.1.
fn ensure_host_header(parts: &mut http::request::Parts) {
    if parts.headers.contains_key(header::HOST) {
        return;
    }
    if let Some(value) = parts
        .uri
        .authority()
        .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    {
        parts.headers.insert(header::HOST, value);
    }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn too_large(max: u64) -> Verdict {
    Verdict::reject(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("Request body larger than {max} bytes"),
    )
}

fn suspended(host: &str, reason: &'static str) -> Verdict {
    Verdict::reject(
        StatusCode::FORBIDDEN,
        reason,
        format!("Deliveries from {host} are refused: the domain is suspended on this instance"),
    )
}

fn bad_signature(app: &App, e: &signature::SigError) -> Verdict {
    app.metrics
        .signature_failures_total
        .with_label_values(&[e.reason()])
        .inc();
    Verdict::reject(e.status(), e.reason(), e.to_string())
}

/// The scheme the sender used, for RFC 9421's `@target-uri`: a trusted `X-Forwarded-Proto`
/// (its last `http`/`https` value, as Rack reads it, so Mastodon sees the same URL), else
/// `server.public_scheme`.
fn public_scheme(app: &App, headers: &http::HeaderMap) -> &'static str {
    if app.config.server.trust_forwarded_proto {
        let forwarded = headers
            .get_all("x-forwarded-proto")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|p| match p.trim() {
                p if p.eq_ignore_ascii_case("https") => Some("https"),
                p if p.eq_ignore_ascii_case("http") => Some("http"),
                _ => None,
            })
            .next_back();
        if let Some(scheme) = forwarded {
            return scheme;
        }
    }
    app.config.server.public_scheme.as_str()
}

fn policy_verdict(decision: &policy::Decision) -> Option<Verdict> {
    let reason = decision.reason();
    match *decision {
        policy::Decision::Forward { .. }
        | policy::Decision::WouldStop { .. }
        | policy::Decision::WouldSuspendActor { .. } => None,
        policy::Decision::Reject { host, .. } => Some(suspended(host, reason)),
        policy::Decision::NotAllowed { host, .. } => Some(Verdict::reject(
            StatusCode::FORBIDDEN,
            reason,
            format!(
                "Deliveries from {host} are refused: this instance federates only with allowed domains"
            ),
        )),
        policy::Decision::ActorSuspended { actor, .. } => Some(Verdict::reject(
            StatusCode::FORBIDDEN,
            reason,
            format!("Activities involving {actor} are refused: the account is suspended on this instance"),
        )),
        policy::Decision::Drop { .. } => Some(Verdict::drop(reason)),
    }
}

fn upstream_error(e: &crate::forward::UpstreamError) -> Verdict {
    let reason = match e {
        crate::forward::UpstreamError::Timeout => "upstream_timeout",
        crate::forward::UpstreamError::ClientAborted(_) => "client_aborted",
        crate::forward::UpstreamError::InvalidTarget(_) => "invalid_target",
        crate::forward::UpstreamError::Overloaded(_) => "upstream_overloaded",
        _ => "upstream_unreachable",
    };
    let verdict = Verdict::reject(e.status(), reason, e.to_string());
    if e.is_upstream_fault() {
        verdict.with_retry_after(RETRY_AFTER_SECS)
    } else {
        verdict
    }
}

fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

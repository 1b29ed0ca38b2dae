//! THE inbox request flow. One request moves one way through these phases; each phase either
//! hands the request on or stops it with a [`Rejection`], which `reject` turns into an answer:
//!
//! ```text
//! limits ─► signature (parse, strength, window) ─► key host policy ─► fair share (429)
//!        ─► body digest ─► activity facts (JSON) ─► actor host policy ─► backpressure (503)
//!        ─► key and verify (cache, fetch on miss, refetch once; gone actor's self-Delete)
//!        ─► policy ─► friendly federators (laundered content)
//!        ─► vocabulary (202) ─► duplicate (202) ─► content rules (202 / 403 / report)
//!        ─► forward (remember what Mastodon took)
//!        ─► finish: metrics, access log and decision journal, exactly once, whatever happened above
//! ```
//!
//! Cheap before expensive: a request from a suspended domain (or, in allowlist mode, from a
//! domain not allowed), a stale or tampered request, or broken JSON costs no key fetch and no
//! public-key operation. Actor rules (a suspended account as actor or as the object's author)
//! are applied in the policy phase. Both signature formats (draft-cavage and RFC 9421) take
//! this same path; only `signature::prepare_headers` tells them apart.
//!
//! The finish phase is a drop guard (`Finish`): it also runs for a request whose future is
//! dropped (the client reset the connection, or the drain's grace period ended), which is
//! then recorded as `cancelled`. Pass-through requests get an access-log line from it too.
//!
//! A relayed activity (its actor is not the key's owner: relays, forwarded replies) is held to
//! the rules of both hosts and forwarded; Mastodon checks its embedded LD signature or
//! FEP-8b32 proof itself.

use crate::activity::Facts;
use crate::app::App;
use crate::cluster;
use crate::forward::{Body, BoxError, UpstreamError};
use crate::keys::{KeyRecord, Source};
use crate::policy::content::{ContentAction, Subject as ContentSubject};
use crate::policy::{self, host, Snapshot};
use crate::reject::{self, PolicyStop, Rejection};
use crate::shedding::rate::Share;
use crate::signature::{self, Prepared, SigError};
use bytes::Bytes;
use http::request::Parts;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

mod finish;
mod request;
use finish::{Finish, Route};
use request::{
    content_length, ensure_host_header, linger, mark_request_start, public_scheme, read_body,
    status_class,
};

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
    /// For the decision journal: the activity's id, the deciding rule's `source:line`, and
    /// the client's address (kept only if `[admin] journal_client_ip`).
    activity_id: Option<String>,
    rule: Option<String>,
    client_ip: Option<std::net::IpAddr>,
}

/// What the phases after the key check read: the request's rules snapshot, its activity and
/// the normalised hosts of its key and actor.
#[derive(Clone, Copy)]
struct Verified<'a> {
    rules: &'a Snapshot,
    facts: &'a Facts,
    key_host: &'a str,
    actor_host: Option<&'a str>,
}

/// Handles one request: a POST to an inbox path through the phases, anything else passed
/// through to Mastodon untouched.
pub async fn handle(
    app: &App,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    to_inbox: bool,
) -> Response<Body> {
    mark_request_start(req.headers_mut());
    if to_inbox {
        handle_inbox(app, req, peer).await
    } else {
        passthrough(app, req, peer).await
    }
}

async fn handle_inbox(app: &App, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let mut finish = Finish::start(app, Route::Inbox);
    let result = inbox(app, req, peer, &mut finish.ctx).await;
    finish.respond(result)
}

/// The phases, in order; the first that stops the request gives the answer.
async fn inbox(
    app: &App,
    req: Request<Incoming>,
    peer: SocketAddr,
    ctx: &mut Context,
) -> Result<Response<Body>, Rejection> {
    ctx.client_ip = Some(peer.ip());
    let (mut parts, body) = req.into_parts();
    ensure_host_header(&mut parts);
    let body = limits(app, &parts, body).await?;
    let prepared = signature(app, &parts, ctx).map_err(|stop| unsigned(stop, &body, ctx))?;
    // One snapshot for the whole request.
    let rules = app.rules.current().load();
    let key_host = key_host_policy(&rules, &prepared, ctx)?;
    fair_share(app, &rules, &prepared, &key_host).await?;
    digest(&prepared, &parts, &body)?;
    let facts = activity_facts(&rules, &body, ctx)?;
    let actor_host = actor_host_policy(&rules, &facts, ctx)?;
    backpressure(app, &facts)?;
    let record = key_and_verify(app, &prepared, &facts).await?;
    ctx.relayed = facts.actor.as_deref() != Some(record.owner.as_str());
    let verified = Verified {
        rules: &rules,
        facts: &facts,
        key_host: &key_host,
        actor_host: actor_host.as_deref(),
    };
    decide(&verified, ctx)?;
    friendly_federators(app, &verified, ctx)?;
    vocabulary(app, &facts)?;
    let dedupe_key = duplicate(app, &facts, &key_host).await?;
    content_rules(app, &verified, &record, &parts, ctx)?;
    let response = forward(app, parts, body, peer).await?;
    if let Some(key) = dedupe_key.filter(|_| response.status().is_success()) {
        app.gate.delivered(key);
        if let (Some(cluster), Some(id)) = (&app.cluster, &facts.id) {
            cluster.remember(&cluster::id_digest(id), app.gate.window());
        }
    }
    Ok(response)
}

/// Limits: the declared length first (no byte read), then the real length and the read
/// timeout while reading the body.
async fn limits(app: &App, parts: &Parts, body: Incoming) -> Result<Bytes, Rejection> {
    let max = app.config.server.max_body_bytes;
    if let Some(len) = content_length(&parts.headers) {
        if len > max {
            linger(body, len, max, app.config.server.body_read_timeout());
            return Err(Rejection::BodyTooLarge(max));
        }
    }
    read_body(app, body, max).await
}

/// Signature: parsing and every check that needs neither the key nor the body.
fn signature(app: &App, parts: &Parts, ctx: &mut Context) -> Result<Prepared, Rejection> {
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
    // From the headers, so a request refused while its signature is parsed is logged with it.
    ctx.format = signature::format_of(&parts.headers);
    Ok(signature::prepare_headers(
        &parts.method,
        path_and_query,
        &parts.headers,
        &target,
        SystemTime::now(),
        &app.config.signatures,
    )?)
}

/// Unsigned: refused with 401, but for the actor's own `Delete`, which is acknowledged and
/// dropped. Mastodon answers an unknown actor's with 202 before any signature check
/// (`skip_unknown_actor_activity`) and refuses a known actor's; which actors it knows is not
/// ours to ask, the activity is dropped either way, and a 401 only makes the sender retry.
fn unsigned(stop: Rejection, body: &[u8], ctx: &mut Context) -> Rejection {
    if !matches!(stop, Rejection::Signature(SigError::NotSigned)) {
        return stop;
    }
    match Facts::parse(body) {
        Ok(facts)
            if facts.kind.as_deref() == Some("Delete") && facts.is_self_delete_or_update() =>
        {
            ctx.actor = facts.actor;
            ctx.kind = facts.kind;
            Rejection::UnsignedSelfDelete
        }
        _ => stop,
    }
}

/// Key host policy: the keyId's host, normalised, must not be suspended (or, in allowlist
/// mode, must be allowed). Returns the normalised host.
fn key_host_policy(
    rules: &Snapshot,
    prepared: &Prepared,
    ctx: &mut Context,
) -> Result<String, Rejection> {
    let key_host = host::normalize(&prepared.key_host)
        .ok_or_else(|| Rejection::KeyIdHost(prepared.key_id.clone()))?;
    ctx.key_host = Some(key_host.clone());
    let decision = rules.check_host(&key_host, policy::Party::KeyHost);
    note_rule(ctx, decision.as_ref());
    refuse(decision)?;
    Ok(key_host)
}

/// Fair share: one delivery from the sender's bucket (its keyId host, and its keyId when
/// per-actor buckets are on). Before the digest, the JSON and any key fetch, so a sender over
/// its share costs nothing more.
async fn fair_share(
    app: &App,
    rules: &Snapshot,
    prepared: &Prepared,
    key_host: &str,
) -> Result<(), Rejection> {
    let share = rules
        .rate_override(key_host)
        .and_then(|o| Share::new(o.per_second, o.burst));
    app.shedding
        .fair_share(key_host, &prepared.key_id, share)
        .await
        .map_err(Rejection::RateLimited)
}

/// Backpressure: while Mastodon's Sidekiq queue is behind, activities of the classes over
/// their threshold are deferred (503), before they cost a key fetch or a verify.
fn backpressure(app: &App, facts: &Facts) -> Result<(), Rejection> {
    let object_kind = facts.object.as_ref().and_then(|o| o.kind.as_deref());
    match app
        .shedding
        .backpressure(facts.kind.as_deref(), object_kind)
    {
        Some(shed) => Err(Rejection::Backpressure(shed)),
        None => Ok(()),
    }
}

/// Vocabulary: a verified activity of a type Mastodon ignores is acknowledged, not forwarded.
fn vocabulary(app: &App, facts: &Facts) -> Result<(), Rejection> {
    if app.gate.handles(facts) {
        Ok(())
    } else {
        Err(Rejection::UnhandledType)
    }
}

/// Duplicate: a verified activity Mastodon already took is acknowledged, not forwarded.
/// Returns the key to remember once Mastodon takes this one.
/// With replicas, another replica's delivery counts too (the shared set, when it answers).
async fn duplicate(app: &App, facts: &Facts, key_host: &str) -> Result<Option<u64>, Rejection> {
    match app.gate.duplicate(facts, key_host) {
        Some((_, true)) => Err(Rejection::Duplicate),
        Some((key, false)) => {
            if let (Some(cluster), Some(id)) = (&app.cluster, &facts.id) {
                if cluster.seen(&cluster::id_digest(id)).await == Some(true) {
                    return Err(Rejection::Duplicate);
                }
            }
            Ok(Some(key))
        }
        None => Ok(None),
    }
}

/// Content rules: the first rule in file order whose conditions all hold decides: drop
/// (202), reject (403) or report (forwarded). Every match is counted and logged, dry-run
/// ones too; a dry-run match is forwarded as `would_reject`.
fn content_rules(
    app: &App,
    verified: &Verified<'_>,
    record: &KeyRecord,
    parts: &Parts,
    ctx: &mut Context,
) -> Result<(), Rejection> {
    let Verified {
        rules,
        facts,
        key_host,
        ..
    } = *verified;
    if rules.content_rules().is_empty() {
        return Ok(());
    }
    let local_host = match &app.config.server.public_host {
        Some(h) => Some(h.as_str()),
        None => parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name)),
    };
    let now = i64::try_from(crate::clock::unix_now()).unwrap_or(i64::MAX);
    let actor_first_seen = match (&facts.actor, rules.needs_first_seen()) {
        (Some(actor), true) => Some(app.gate.first_seen(actor, now)),
        _ => None,
    };
    let subject = ContentSubject {
        facts,
        sender_host: key_host,
        local_host,
        actor: (!ctx.relayed).then_some(&record.actor),
        actor_first_seen,
        now,
    };
    let Some((rule, why)) = policy::content::first_match(rules.content_rules(), &subject) else {
        return Ok(());
    };
    let action = rule.action;
    ctx.rule = Some(format!("{}:{}", rule.source, rule.line));
    app.gate
        .content_rule_matches
        .with_label_values(&[&*rule.name, action.as_str()])
        .inc();
    app.federators.record_content(
        &crate::federators::ContentMatch {
            rule: &rule.name,
            domain: key_host,
            dry_run: rule.dry_run,
            id: facts.id.as_deref(),
            window_days: 1,
        },
        crate::clock::unix_now(),
    );
    // INFO like the access log: a wave of matches must not flood a WARN-level log.
    tracing::info!(
        rule = &*rule.name,
        action = action.as_str(),
        dry_run = rule.dry_run,
        rule_source = &*rule.source,
        rule_line = rule.line,
        key_host,
        activity_id = facts.id.as_deref().unwrap_or("-"),
        why = why.join("; "),
        "content rule matched"
    );
    match action {
        ContentAction::Report => Ok(()),
        _ if rule.dry_run => {
            ctx.would_stop
                .get_or_insert(Rejection::ContentRule(action).answer().reason);
            Ok(())
        }
        _ => Err(Rejection::ContentRule(action)),
    }
}

/// Digest: the body against the digest header the signature covers. After the key host
/// policy, so a request refused anyway costs no SHA-256 over its body.
fn digest(prepared: &Prepared, parts: &Parts, body: &[u8]) -> Result<(), Rejection> {
    Ok(prepared.check_body(&parts.headers, body)?)
}

/// Activity facts: the few JSON fields policy and the access log need, and the post's
/// content in the same pass when a loaded content rule reads it.
fn activity_facts(rules: &Snapshot, body: &[u8], ctx: &mut Context) -> Result<Facts, Rejection> {
    let facts = if rules.needs_content() {
        Facts::parse_with_content(body)?
    } else {
        Facts::parse(body)?
    };
    ctx.actor = facts.actor.clone();
    ctx.kind = facts.kind.clone();
    ctx.activity_id = facts.id.clone();
    Ok(facts)
}

/// Actor host policy: the activity's actor's host is held to the same host rules as the
/// keyId's. Returns that host.
fn actor_host_policy(
    rules: &Snapshot,
    facts: &Facts,
    ctx: &mut Context,
) -> Result<Option<String>, Rejection> {
    let actor_host = facts.actor.as_deref().and_then(host::of_uri);
    if let Some(actor_host) = &actor_host {
        let decision = rules.check_host(actor_host, policy::Party::ActorHost);
        note_rule(ctx, decision.as_ref());
        refuse(decision)?;
    }
    Ok(actor_host)
}

/// Key and verify: the key from the cache or its owner, then the one expensive operation.
/// A cached key that fails is refetched once: the sender may have rotated it.
async fn key_and_verify(
    app: &App,
    prepared: &Prepared,
    facts: &Facts,
) -> Result<Arc<KeyRecord>, Rejection> {
    let (record, source) = match app.keys.get(&prepared.key_id).await {
        Ok(found) => found,
        Err(e) if e.is_gone() && facts.is_self_delete_or_update() => {
            return Err(Rejection::GoneActor)
        }
        Err(e) => return Err(e.into()),
    };
    let key = app.keys.verifying_key(&prepared.key_id, &record)?;
    match prepared.verify(&key) {
        Ok(()) => Ok(record),
        Err(first) if source == Source::Cache => {
            let fresh = app
                .keys
                .refresh(&prepared.key_id)
                .await
                .map_err(|_| first)?;
            prepared.verify(&*app.keys.verifying_key(&prepared.key_id, &fresh)?)?;
            Ok(fresh)
        }
        Err(e) => Err(e.into()),
    }
}

/// Policy: domain and actor rules on the verified request. A dry-run rule that would have
/// stopped it is logged and noted for the finish phase.
fn decide(v: &Verified<'_>, ctx: &mut Context) -> Result<(), Rejection> {
    let Verified {
        rules,
        facts,
        key_host,
        actor_host,
    } = *v;
    let decision = rules.decide(&policy::Facts {
        key_host,
        actor_host,
        activity_type: facts.kind.as_deref(),
        actor: facts.actor.as_deref(),
        attributed_to: facts
            .object
            .as_ref()
            .and_then(|o| o.attributed_to.as_deref()),
    });
    note_rule(ctx, Some(&decision));
    refuse(Some(decision))?;
    let would = decision.would();
    if let (Some(stop), Some((rule, source, line))) =
        (would.as_ref().and_then(PolicyStop::of), decision.origin())
    {
        let reason = Rejection::Policy(stop).answer().reason;
        tracing::warn!(
            reason,
            rule,
            rule_source = source,
            rule_line = line,
            rule_severity = decision.severity().map_or("-", policy::Severity::as_str),
            "dry-run rule would have stopped this request; forwarding it"
        );
        ctx.would_stop = Some(reason);
    }
    Ok(())
}

/// Friendly federators: a verified sender carrying content from a suspended domain. After
/// verification, so only senders that proved who they are count as evidence.
fn friendly_federators(app: &App, v: &Verified<'_>, ctx: &mut Context) -> Result<(), Rejection> {
    if let Some(stop) = app
        .federators
        .inspect(v.rules, v.facts, v.key_host, v.actor_host)
    {
        let laundered = Rejection::laundered(&stop);
        if !stop.dry_run {
            return Err(laundered);
        }
        ctx.would_stop.get_or_insert(laundered.answer().reason);
    }
    Ok(())
}

/// Forward: the request, as received, to Mastodon; its answer goes back to the sender.
async fn forward(
    app: &App,
    parts: Parts,
    body: Bytes,
    peer: SocketAddr,
) -> Result<Response<Body>, Rejection> {
    let trust_proto = app.config.server.trust_forwarded_proto;
    let sending = app
        .upstream
        .send_buffered(parts, body, peer, app.listener_scheme, trust_proto);
    Ok(send_upstream(app, sending).await?)
}

/// Notes the rule behind `decision`, if one decided, for the decision journal.
fn note_rule(ctx: &mut Context, decision: Option<&policy::Decision<'_>>) {
    if let Some((_, source, line)) = decision.and_then(policy::Decision::origin) {
        ctx.rule = Some(format!("{source}:{line}"));
    }
}

/// Stops the request if a policy decision says so.
fn refuse(decision: Option<policy::Decision<'_>>) -> Result<(), Rejection> {
    match decision.as_ref().and_then(PolicyStop::of) {
        Some(stop) => Err(stop.into()),
        None => Ok(()),
    }
}

/// Streams a non-inbox request to Mastodon untouched.
async fn passthrough(app: &App, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    app.metrics.passthrough_requests_total.inc();
    let route = Route::Passthrough {
        method: req.method().clone(),
        path: req.uri().path().to_string(),
    };
    let finish = Finish::start(app, route);
    let req = req.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed());
    let trust_proto = app.config.server.trust_forwarded_proto;
    let sending = app
        .upstream
        .send(req, peer, app.listener_scheme, trust_proto);
    let result = send_upstream(app, sending).await.map_err(Rejection::from);
    finish.respond(result)
}

/// Awaits a request's exchange with Mastodon and records the upstream metrics, for inbox and
/// pass-through requests alike.
async fn send_upstream(
    app: &App,
    sending: impl std::future::Future<Output = Result<Response<Body>, UpstreamError>>,
) -> Result<Response<Body>, UpstreamError> {
    let started = Instant::now();
    let result = sending.await;
    app.metrics
        .upstream_duration_seconds
        .observe(started.elapsed().as_secs_f64());
    let result_label = match &result {
        Ok(resp) => status_class(resp.status()),
        Err(e) => reject::upstream_result(e),
    };
    app.metrics
        .upstream_responses_total
        .with_label_values(&[result_label])
        .inc();
    result
}

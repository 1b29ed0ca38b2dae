//! The finish phase: one place where a request's metrics and access-log line are written,
//! whatever happened in the phases before it (including a dropped future).

use super::Context;
use crate::app::App;
use crate::forward::Body;
use crate::reject::{Answer, Decision, Rejection};
use crate::signature;
use http::{Method, Response, StatusCode};
use std::time::{Duration, Instant};

/// Which kind of request a [`Finish`] records.
pub(super) enum Route {
    /// Counted in `requests_total` and logged with what the phases learnt.
    Inbox,
    /// Logged only (`passthrough_requests_total` counts it as it starts).
    Passthrough { method: Method, path: String },
}

/// The finish phase: writes the request's metrics and its access-log line, exactly once.
/// Created as the request starts; [`Finish::respond`] runs it with the outcome, and a guard
/// dropped before that (the request's future was dropped) runs it as [`Rejection::Cancelled`].
pub(super) struct Finish<'a> {
    app: &'a App,
    route: Route,
    start: Instant,
    pub(super) ctx: Context,
    done: bool,
}

impl<'a> Finish<'a> {
    pub(super) fn start(app: &'a App, route: Route) -> Finish<'a> {
        Finish {
            app,
            route,
            start: Instant::now(),
            ctx: Context::default(),
            done: false,
        }
    }

    /// Records the outcome and returns the response to send.
    pub(super) fn respond(mut self, result: Result<Response<Body>, Rejection>) -> Response<Body> {
        self.done = true;
        match result {
            Ok(response) => {
                let (decision, reason) = match self.ctx.would_stop {
                    Some(reason) => (Decision::WouldReject, reason),
                    None => (Decision::Forwarded, "forwarded"),
                };
                self.record(decision, reason, response.status());
                response
            }
            Err(cause) => {
                let answer = cause.answer();
                self.record_rejection(&cause, &answer);
                answer.into_response()
            }
        }
    }

    fn record_rejection(&self, cause: &Rejection, answer: &Answer) {
        let shedding = &self.app.shedding.metrics;
        let counted = match cause {
            Rejection::Signature(_) => {
                Some((&self.app.metrics.signature_failures_total, answer.reason))
            }
            Rejection::RateLimited(over) => {
                Some((&shedding.rate_limited_total, over.bucket.as_str()))
            }
            Rejection::Backpressure(shed) => {
                Some((&shedding.backpressure_shed_total, shed.class.as_str()))
            }
            // The details the answer leaves out.
            Rejection::Upstream(e) => {
                tracing::warn!(error = %e, "forwarding to Mastodon failed");
                None
            }
            _ => None,
        };
        if let Some((counter, label)) = counted {
            counter.with_label_values(&[label]).inc();
        }
        self.record(answer.decision, answer.reason, answer.status);
    }

    fn record(&self, decision: Decision, reason: &'static str, status: StatusCode) {
        let elapsed = self.start.elapsed();
        let (path, method) = match &self.route {
            Route::Passthrough { method, path } => (path, method),
            Route::Inbox => {
                self.record_inbox(decision, reason, status, elapsed);
                return;
            }
        };
        tracing::info!(
            target: "inboxguard::access",
            method = method.as_str(),
            path = path.as_str(),
            decision = decision.as_str(),
            reason,
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "passthrough"
        );
    }

    fn record_inbox(
        &self,
        decision: Decision,
        reason: &'static str,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let (metrics, ctx) = (&self.app.metrics, &self.ctx);
        metrics
            .requests_total
            .with_label_values(&[decision.as_str(), reason])
            .inc();
        if ctx.relayed {
            metrics
                .relayed_requests_total
                .with_label_values(&[decision.as_str()])
                .inc();
        }
        metrics
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
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "inbox"
        );
        self.app.journal.record(crate::journal::Seen {
            key_host: ctx.key_host.as_deref(),
            actor: ctx.actor.as_deref(),
            activity_type: ctx.kind.as_deref(),
            activity_id: ctx.activity_id.as_deref(),
            rule: ctx.rule.as_deref(),
            client_ip: ctx.client_ip,
            decision,
            reason,
            status,
        });
    }
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            let cause = Rejection::Cancelled;
            self.record_rejection(&cause, &cause.answer());
        }
    }
}

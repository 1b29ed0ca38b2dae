//! Why the proxy answers a request itself, and what it answers. [`Rejection`] is the typed
//! cause; [`Rejection::answer`] is THE table from cause to status, `reason` label, client
//! message, `Retry-After` and decision. Nothing else chooses a status. The table has no side
//! effects: the pipeline's finish phase records metrics and the access log from the cause and
//! its answer.
//!
//! Two failures are labelled twice on purpose, one word per metric: an upstream failure is
//! `upstream_timeout` / `upstream_unreachable` / ... in `inboxguard_requests_total` and
//! `timeout` / `unreachable` / `connection_lost` / ... in `inboxguard_upstream_responses_total`
//! ([`upstream_result`]); a key failure is `key_` + the `inboxguard_key_fetches_total` word
//! ([`KeyError::request_reason`]).

use crate::activity::FactsError;
use crate::federators::{Kind, Stop};
use crate::forward::{Body, UpstreamError};
use crate::keys::KeyError;
use crate::policy::content::ContentAction;
use crate::policy::{self, Party};
use crate::shedding::rate::{Bucket, OverLimit};
use crate::shedding::Shed;
use crate::signature::SigError;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::borrow::Cow;

/// How long a sender is asked to wait before retrying after a transient failure.
const RETRY_AFTER_SECS: u32 = 30;

/// Why a request did not reach Mastodon, or reached it and got no answer.
#[derive(Debug)]
pub enum Rejection {
    /// The body, declared or as read, is longer than `server.max_body_bytes` (the value).
    BodyTooLarge(u64),
    /// The body did not arrive within `server.body_read_timeout_secs`.
    BodyTimeout,
    /// The body stream failed (a protocol error, the client gone mid-upload).
    BodyRead(String),
    /// The signature failed a check: parse, coverage, window, digest or verification.
    Signature(SigError),
    /// The keyId names a host no rule could match (the value is the keyId).
    KeyIdHost(String),
    /// The body is not a JSON object.
    Json(FactsError),
    /// No key could be had for the keyId.
    Key(KeyError),
    /// The key's actor is gone (404/410) and the activity is its own `Delete`/`Update`:
    /// Mastodon could not verify it either, so it is acknowledged and the sender stops
    /// retrying an account-deletion flood.
    GoneActor,
    /// The sender is over its fair share: it should come back after the wait.
    RateLimited(OverLimit),
    /// Mastodon's Sidekiq queue is behind and this activity's class is shed for now.
    Backpressure(Shed),
    /// An unsigned `Delete` of the actor itself. Mastodon answers an unknown actor's with 202
    /// before any signature check (`skip_unknown_actor_activity`) and drops a known actor's
    /// with 401; it is dropped either way, and a 401 only makes the sender retry.
    UnsignedSelfDelete,
    /// A rule refuses or drops the request.
    Policy(PolicyStop),
    /// A verified activity of a type Mastodon ignores: acknowledged, not forwarded.
    UnhandledType,
    /// A verified activity Mastodon already accepted within the dedupe window.
    Duplicate,
    /// A content rule drops or refuses the verified activity (the rule's action).
    ContentRule(ContentAction),
    /// A verified sender carries content from a suspended domain (friendly federators).
    Laundered(Kind),
    /// Mastodon gave no response head.
    Upstream(UpstreamError),
    /// The request was abandoned before it had an answer: its client went away, or the
    /// drain's grace period ended. Nobody receives the answer; it is what the access log and
    /// metrics record.
    Cancelled,
}

/// What a policy decision that stops a request says, owned so that it outlives the rules
/// snapshot it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyStop {
    /// `host` (the keyId's or the actor's) is suspended.
    Suspended { party: Party, host: String },
    /// Allowlist mode, and no allow entry covers `host`.
    NotAllowed { host: String },
    /// An actor rule suspends `actor` (the activity's actor or its object's author).
    ActorSuspended { actor: String },
    /// A report from a `reject_reports` domain.
    Report,
}

impl PolicyStop {
    /// The stop `decision` makes if it were enforced; `None` for a forward. A dry-run
    /// decision is asked through [`policy::Decision::would`].
    pub fn of(decision: &policy::Decision<'_>) -> Option<PolicyStop> {
        match *decision {
            policy::Decision::Reject { party, host, .. } => Some(PolicyStop::Suspended {
                party,
                host: host.to_string(),
            }),
            policy::Decision::NotAllowed { host, .. } => Some(PolicyStop::NotAllowed {
                host: host.to_string(),
            }),
            policy::Decision::ActorSuspended { actor, .. } => Some(PolicyStop::ActorSuspended {
                actor: actor.to_string(),
            }),
            policy::Decision::Drop { .. } => Some(PolicyStop::Report),
            policy::Decision::Forward { .. }
            | policy::Decision::WouldStop { .. }
            | policy::Decision::WouldSuspendActor { .. } => None,
        }
    }
}

/// `?` lifts each stage's error into its cause.
macro_rules! rejection_from {
    ($($error:ty => $variant:ident),* $(,)?) => {
        $(impl From<$error> for Rejection {
            fn from(e: $error) -> Rejection {
                Rejection::$variant(e)
            }
        })*
    };
}

rejection_from! {
    SigError => Signature,
    KeyError => Key,
    FactsError => Json,
    PolicyStop => Policy,
    UpstreamError => Upstream,
}

/// The `decision` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Mastodon received the request (whatever it answered).
    Forwarded,
    /// The sender got an error status from the proxy (4xx, or 5xx meaning "retry").
    Rejected,
    /// The sender got 202, but the request was deliberately not forwarded (policy).
    Dropped,
    /// Mastodon received the request, but a rule of a `dry_run` source would have stopped it;
    /// `reason` is the reason it would have had. Counted instead of `Forwarded`.
    WouldReject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Forwarded => "forwarded",
            Decision::Rejected => "rejected",
            Decision::Dropped => "dropped",
            Decision::WouldReject => "would_reject",
        }
    }
}

/// What the proxy answers for a [`Rejection`].
#[derive(Debug)]
pub struct Answer {
    pub decision: Decision,
    pub status: StatusCode,
    /// Fixed snake_case word: the `reason` metric label and the log field.
    pub reason: &'static str,
    /// Sent to the client as `{"error": message}` (not for `Dropped`, which has no body).
    pub message: Cow<'static, str>,
    /// Seconds for `Retry-After`, where the sender should come back.
    pub retry_after: Option<u32>,
}

impl Rejection {
    /// THE table: status, label, message, `Retry-After` and decision for every cause.
    pub fn answer(&self) -> Answer {
        use StatusCode as S;
        match self {
            Rejection::BodyTooLarge(max) => reject(
                S::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("Request body larger than {max} bytes"),
            ),
            Rejection::BodyTimeout => reject(
                S::REQUEST_TIMEOUT,
                "body_timeout",
                "Request body not received in time",
            ),
            Rejection::BodyRead(e) => reject(
                S::BAD_REQUEST,
                "body_read_error",
                format!("Request body could not be read: {e}"),
            ),
            // 400 for a malformed `Content-Digest`, as Mastodon answers.
            Rejection::Signature(e @ SigError::ContentDigestMalformed) => {
                reject(S::BAD_REQUEST, e.reason(), e.to_string())
            }
            Rejection::Signature(e) => reject(S::UNAUTHORIZED, e.reason(), e.to_string()),
            Rejection::KeyIdHost(key_id) => reject(
                S::UNAUTHORIZED,
                "invalid_key_id",
                format!("Invalid keyId host in {key_id}"),
            ),
            Rejection::Json(e) => reject(S::BAD_REQUEST, "invalid_json", e.to_string()),
            Rejection::Key(e) if e.is_transient() => {
                reject(S::SERVICE_UNAVAILABLE, e.request_reason(), e.to_string())
                    .retry_after(RETRY_AFTER_SECS)
            }
            Rejection::Key(e) => reject(S::UNAUTHORIZED, e.request_reason(), e.to_string()),
            Rejection::GoneActor => dropped("gone_actor"),
            // 429 and 503 are retried by Mastodon's delivery worker (not "unsalvageable"):
            // the delivery is deferred, never lost.
            Rejection::RateLimited(over) => reject(
                S::TOO_MANY_REQUESTS,
                "rate_limited",
                match over.bucket {
                    Bucket::Host => "Too many deliveries from this server; retry later",
                    Bucket::Actor => "Too many deliveries from this actor; retry later",
                },
            )
            .retry_after(whole_secs(over.retry_after)),
            Rejection::Backpressure(shed) => reject(
                S::SERVICE_UNAVAILABLE,
                "backpressure",
                "This instance is catching up on its queue; retry later",
            )
            .retry_after(shed.retry_after_secs),
            Rejection::UnhandledType => dropped("unhandled_type"),
            Rejection::Duplicate => dropped("duplicate"),
            Rejection::ContentRule(ContentAction::Reject) => reject(
                S::FORBIDDEN,
                "content_rule",
                "This activity is refused by this instance's content rules",
            ),
            Rejection::ContentRule(_) => dropped("content_rule"),
            Rejection::UnsignedSelfDelete => dropped("unsigned_self_delete"),
            Rejection::Policy(PolicyStop::Suspended { party, host }) => reject(
                S::FORBIDDEN,
                match party {
                    Party::KeyHost => "suspended_key_host",
                    Party::ActorHost => "suspended_actor_host",
                },
                format!(
                    "Deliveries from {host} are refused: the domain is suspended on this instance"
                ),
            ),
            Rejection::Policy(PolicyStop::NotAllowed { host }) => reject(
                S::FORBIDDEN,
                "not_allowed",
                format!(
                    "Deliveries from {host} are refused: this instance federates only with allowed domains"
                ),
            ),
            Rejection::Policy(PolicyStop::ActorSuspended { actor }) => reject(
                S::FORBIDDEN,
                "actor_suspended",
                format!("Activities involving {actor} are refused: the account is suspended on this instance"),
            ),
            Rejection::Policy(PolicyStop::Report) => dropped("reject_reports"),
            Rejection::Laundered(kind) => dropped(match kind {
                Kind::Announce => "laundered_announce",
                Kind::Reply => "laundered_reply",
                Kind::Quote => "laundered_quote",
                Kind::Mention => "laundered_mention",
                Kind::AttributedTo => "laundered_attributed",
            }),
            Rejection::Upstream(e) => {
                // Connection details (addresses, OS errors) stay in the log: a 502 body is
                // read by remote senders.
                let answer = match e {
                    UpstreamError::Unreachable(_) => {
                        reject(S::BAD_GATEWAY, "upstream_unreachable", "upstream unreachable")
                    }
                    // One request label for both: to the sender, Mastodon did not answer.
                    UpstreamError::ConnectionLost(_) => reject(
                        S::BAD_GATEWAY,
                        "upstream_unreachable",
                        "upstream connection lost",
                    ),
                    UpstreamError::Timeout => {
                        reject(S::GATEWAY_TIMEOUT, "upstream_timeout", e.to_string())
                    }
                    UpstreamError::Overloaded(_) => {
                        reject(S::SERVICE_UNAVAILABLE, "upstream_overloaded", e.to_string())
                    }
                    // The client is gone; 400 is only what the access log records.
                    UpstreamError::ClientAborted(_) => {
                        reject(S::BAD_REQUEST, "client_aborted", e.to_string())
                    }
                    UpstreamError::InvalidTarget(_) => {
                        reject(S::BAD_REQUEST, "invalid_target", e.to_string())
                    }
                };
                if e.is_upstream_fault() {
                    answer.retry_after(RETRY_AFTER_SECS)
                } else {
                    answer
                }
            }
            // nginx's "client closed request": no status was sent.
            Rejection::Cancelled => reject(
                StatusCode::from_u16(499).unwrap_or(S::BAD_REQUEST),
                "cancelled",
                "",
            ),
        }
    }
}

impl Rejection {
    /// The rejection a friendly-federators stop makes. `federators::Stop` names its kind by
    /// the kind's label, so the kind is found back from it (the table gives every kind that
    /// same label; a test holds them together).
    pub fn laundered(stop: &Stop) -> Rejection {
        let kind = Kind::ALL
            .into_iter()
            .find(|kind| kind.reason() == stop.reason)
            .unwrap_or(Kind::Announce);
        Rejection::Laundered(kind)
    }
}

/// The `result` label of `inboxguard_upstream_responses_total` for a request Mastodon did not
/// answer (an answered one is labelled by its status class).
pub fn upstream_result(e: &UpstreamError) -> &'static str {
    match e {
        UpstreamError::Unreachable(_) => "unreachable",
        UpstreamError::ConnectionLost(_) => "connection_lost",
        UpstreamError::Timeout => "timeout",
        UpstreamError::ClientAborted(_) => "client_aborted",
        UpstreamError::InvalidTarget(_) => "invalid_target",
        UpstreamError::Overloaded(_) => "overloaded",
    }
}

impl SigError {
    /// The `reason` label of a signature failure, in `inboxguard_requests_total` and
    /// `inboxguard_signature_failures_total` alike.
    pub fn reason(&self) -> &'static str {
        match self {
            SigError::NotSigned => "not_signed",
            SigError::SignatureTooLarge => "signature_too_large",
            SigError::Malformed => "malformed_signature",
            SigError::TooManyParameters => "too_many_parameters",
            SigError::DuplicateParameter => "duplicate_parameter",
            SigError::MissingParameters => "missing_parameters",
            SigError::SignatureNotBase64 => "signature_not_base64",
            SigError::UnsupportedAlgorithm => "unsupported_algorithm",
            SigError::InvalidKeyId(_) => "invalid_key_id",
            SigError::TooManySignedHeaders => "too_many_signed_headers",
            SigError::MissingDate => "missing_date",
            SigError::TargetNotSigned => "target_not_signed",
            SigError::HostNotSigned => "host_not_signed",
            SigError::DigestNotSigned => "digest_not_signed",
            SigError::InvalidPseudoHeader(_) => "invalid_pseudo_header",
            SigError::PseudoHeaderArgumentMissing(_) => "pseudo_header_argument_missing",
            SigError::InvalidTimestamp(_) => "invalid_timestamp",
            SigError::InvalidDate(_) => "invalid_date",
            SigError::OutsideWindow => "outside_window",
            SigError::DigestMissing => "digest_missing",
            SigError::DigestUnsupported(_) => "digest_unsupported",
            SigError::DigestNotBase64(_) => "digest_invalid",
            SigError::DigestWrongLength(_) => "digest_wrong_length",
            SigError::DigestMismatch { .. } => "digest_mismatch",
            SigError::Rfc9421TooLarge(_) => "rfc9421_too_large",
            SigError::Rfc9421Malformed(_) => "rfc9421_malformed",
            SigError::Rfc9421MultipleSignatures => "rfc9421_multiple_signatures",
            SigError::Rfc9421SignatureMissing(_) => "rfc9421_signature_missing",
            SigError::Rfc9421DuplicateComponent(_) => "rfc9421_duplicate_component",
            SigError::Rfc9421MissingParameters => "rfc9421_missing_parameters",
            SigError::Rfc9421UnsupportedAlgorithm(_) => "rfc9421_unsupported_algorithm",
            SigError::Rfc9421RsaPssRefused => "rfc9421_rsa_pss_refused",
            SigError::Rfc9421TargetNotCovered => "rfc9421_missing_component",
            SigError::ContentDigestNotSigned => "content_digest_not_signed",
            SigError::Rfc9421UnsupportedComponent(_) => "rfc9421_unsupported_component",
            SigError::Rfc9421UnsupportedParameter(_) => "rfc9421_unsupported_parameter",
            SigError::Rfc9421ComponentAbsent(_) => "rfc9421_component_absent",
            SigError::ContentDigestMissing => "content_digest_missing",
            SigError::ContentDigestMalformed => "content_digest_malformed",
            SigError::ContentDigestUnsupported(_) => "content_digest_unsupported",
            SigError::ContentDigestMismatch(_) => "content_digest_mismatch",
            SigError::Rfc9421KeyTypeMismatch { .. } => "rfc9421_key_type_mismatch",
            SigError::KeyTypeMismatch(_) => "key_type_mismatch",
            SigError::BadSignature(_) => "bad_signature",
        }
    }
}

fn reject(
    status: StatusCode,
    reason: &'static str,
    message: impl Into<Cow<'static, str>>,
) -> Answer {
    Answer {
        decision: Decision::Rejected,
        status,
        reason,
        message: message.into(),
        retry_after: None,
    }
}

/// Answered 202 Accepted and not forwarded: the sender stops retrying.
/// Whole seconds for `Retry-After`, rounded up and at least 1 (0 would invite an instant retry).
fn whole_secs(wait: std::time::Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

fn dropped(reason: &'static str) -> Answer {
    Answer {
        decision: Decision::Dropped,
        status: StatusCode::ACCEPTED,
        reason,
        message: Cow::Borrowed(""),
        retry_after: None,
    }
}

impl Answer {
    fn retry_after(mut self, secs: u32) -> Answer {
        self.retry_after = Some(secs);
        self
    }

    pub fn into_response(self) -> Response<Body> {
        let body = match self.decision {
            Decision::Dropped => Bytes::new(),
            _ => Bytes::from(serde_json::json!({ "error": self.message }).to_string()),
        };
        let mut resp = Response::new(full(body));
        *resp.status_mut() = self.status;
        if self.decision != Decision::Dropped {
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// A complete in-memory body in the proxy's body type.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

#[cfg(test)]
mod tests;

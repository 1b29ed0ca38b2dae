//! Outcomes that stop a request in the proxy, in one place: each gets its HTTP status, its
//! JSON body, its bounded metric label and its decision word. The pipeline builds a `Verdict`
//! and never writes a response by hand.

use crate::forward::Body;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::borrow::Cow;

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

/// A request the proxy answers itself.
#[derive(Debug)]
pub struct Verdict {
    pub decision: Decision,
    pub status: StatusCode,
    /// Fixed snake_case word: the `reason` metric label and the log field.
    pub reason: &'static str,
    /// Sent to the client as `{"error": message}` (not for `Dropped`, which has no body).
    pub message: Cow<'static, str>,
    /// Seconds for `Retry-After`, on 503s where the sender should come back.
    pub retry_after: Option<u32>,
}

impl Verdict {
    pub fn reject(
        status: StatusCode,
        reason: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Verdict {
        Verdict {
            decision: Decision::Rejected,
            status,
            reason,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Answered 202 Accepted and not forwarded: the sender stops retrying.
    pub fn drop(reason: &'static str) -> Verdict {
        Verdict {
            decision: Decision::Dropped,
            status: StatusCode::ACCEPTED,
            reason,
            message: Cow::Borrowed(""),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, secs: u32) -> Verdict {
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
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejection_has_json_error_body() {
        let resp = Verdict::reject(StatusCode::UNAUTHORIZED, "bad_signature", "nope \"x\"")
            .into_response();
        assert_eq!(resp.status(), 401);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "nope \"x\"");
    }

    #[tokio::test]
    async fn drop_is_an_empty_202_and_503_carries_retry_after() {
        let resp = Verdict::drop("reject_reports").into_response();
        assert_eq!(resp.status(), 202);
        assert!(resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty());
        let resp = Verdict::reject(StatusCode::SERVICE_UNAVAILABLE, "key_fetch_failed", "later")
            .with_retry_after(30)
            .into_response();
        assert_eq!(resp.headers()[header::RETRY_AFTER], "30");
    }
}

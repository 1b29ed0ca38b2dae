use super::*;

async fn body_json(resp: Response<Body>) -> serde_json::Value {
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn rejection_has_json_error_body() {
    let cause = Rejection::KeyIdHost("nope \"x\"".into());
    let message = cause.answer().message.into_owned();
    let resp = cause.answer().into_response();
    assert_eq!(resp.status(), 401);
    assert_eq!(body_json(resp).await["error"], message.as_str());
    assert!(message.contains("nope \"x\""), "{message}");
}

#[tokio::test]
async fn drop_is_an_empty_202_and_503_carries_retry_after() {
    let resp = Rejection::Policy(PolicyStop::Report)
        .answer()
        .into_response();
    assert_eq!(resp.status(), 202);
    assert!(resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .is_empty());
    let transient = KeyError::Timeout {
        key_id: "https://remote.test/users/a#main-key".into(),
        secs: 5,
    };
    let answer = Rejection::Key(transient).answer();
    assert_eq!(
        (answer.status, answer.reason),
        (StatusCode::SERVICE_UNAVAILABLE, "key_timeout")
    );
    let resp = answer.into_response();
    assert_eq!(resp.headers()[header::RETRY_AFTER], "30");
}

#[test]
fn upstream_reasons_and_statuses() {
    let answer = Rejection::Upstream(UpstreamError::Timeout).answer();
    assert_eq!(upstream_result(&UpstreamError::Timeout), "timeout");
    assert_eq!(
        (answer.status.as_u16(), answer.reason),
        (504, "upstream_timeout")
    );
    let e = UpstreamError::Unreachable("x".into());
    assert_eq!(upstream_result(&e), "unreachable");
    let answer = Rejection::Upstream(e).answer();
    assert_eq!(
        (answer.status.as_u16(), answer.reason),
        (502, "upstream_unreachable")
    );
    assert_eq!(answer.retry_after, Some(RETRY_AFTER_SECS));
    let e = UpstreamError::ConnectionLost("x".into());
    assert_eq!(upstream_result(&e), "connection_lost");
    assert_eq!(
        Rejection::Upstream(e).answer().reason,
        "upstream_unreachable"
    );
    let answer = Rejection::Upstream(UpstreamError::ClientAborted("x".into())).answer();
    assert_eq!(
        (answer.reason, answer.retry_after),
        ("client_aborted", None)
    );
}

#[tokio::test]
async fn a_502_keeps_connection_details_out_of_the_body() {
    for e in [
        UpstreamError::Unreachable("tcp connect error: 10.0.0.7:3000 refused".into()),
        UpstreamError::ConnectionLost("connection reset by 10.0.0.7:3000".into()),
    ] {
        let resp = Rejection::Upstream(e).answer().into_response();
        assert_eq!(resp.status(), 502);
        let message = body_json(resp).await["error"].as_str().unwrap().to_string();
        assert!(!message.contains("10.0.0.7"), "{message}");
        assert!(!message.is_empty());
    }
}

#[test]
fn laundering_kinds_keep_their_labels() {
    for kind in Kind::ALL {
        let answer = Rejection::Laundered(kind).answer();
        assert_eq!(answer.decision, Decision::Dropped);
        assert_eq!(answer.reason, kind.reason());
    }
}

#[test]
fn policy_stops_answer_403_or_202() {
    let cases = [
        (
            PolicyStop::Suspended {
                party: Party::KeyHost,
                host: "bad.example".into(),
            },
            403,
            "suspended_key_host",
        ),
        (
            PolicyStop::Suspended {
                party: Party::ActorHost,
                host: "bad.example".into(),
            },
            403,
            "suspended_actor_host",
        ),
        (
            PolicyStop::NotAllowed {
                host: "other.example".into(),
            },
            403,
            "not_allowed",
        ),
        (
            PolicyStop::ActorSuspended {
                actor: "https://bad.example/users/a".into(),
            },
            403,
            "actor_suspended",
        ),
        (PolicyStop::Report, 202, "reject_reports"),
    ];
    for (stop, status, reason) in cases {
        let answer = Rejection::Policy(stop).answer();
        assert_eq!((answer.status.as_u16(), answer.reason), (status, reason));
    }
}

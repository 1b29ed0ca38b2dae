//! End-to-end tests of `forward::Upstream` against a recording stand-in for Puma, plus
//! self-checks of the shared harness (signer, remote instance, metrics parser).

mod common;

use bytes::Bytes;
use common::*;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::BodyExt;
use inboxguard::config::UpstreamConfig;
use inboxguard::forward::{Body, BoxError, Upstream, UpstreamError};
use inboxguard::reject::{upstream_result, Rejection};
use std::net::SocketAddr;

const PEER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7)),
    50000,
);

fn upstream_for(addr: SocketAddr, timeout_secs: u64) -> Upstream {
    upstream_with_cap(addr, timeout_secs, 256)
}

fn upstream_with_cap(addr: SocketAddr, timeout_secs: u64, max_in_flight: usize) -> Upstream {
    let cfg = UpstreamConfig {
        url: format!("http://{addr}"),
        timeout_secs,
        connect_timeout_secs: 2,
        pool_max_idle_per_host: 4,
        max_in_flight,
    };
    let base = cfg.url.parse().expect("upstream url");
    Upstream::new(&cfg, base).expect("upstream client")
}

fn request(method: Method, target: &str, headers: HeaderMap, body: Body) -> Request<Body> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = target.parse().expect("request target");
    *req.headers_mut() = headers;
    req
}

async fn forward(
    upstream: &Upstream,
    req: Request<Body>,
    keep_proto: bool,
) -> Result<http::Response<Body>, UpstreamError> {
    within("forward", upstream.send(req, PEER, "https", keep_proto)).await
}

/// The status the proxy answers for `err`.
fn status_of(err: &UpstreamError) -> StatusCode {
    Rejection::from(err.clone()).answer().status
}

#[tokio::test]
async fn body_host_path_and_query_arrive_unchanged() {
    let puma = RecordingUpstream::start().await;
    let up = upstream_for(puma.addr(), 5);
    let body: &[u8] = b"\x00\xff{\"type\":\"Create\"}\xfe\r\n\x80";
    let h = headers(&[
        ("host", "example.social"),
        ("content-type", "application/activity+json"),
        ("digest", "SHA-256=abc="),
        (
            "signature",
            "keyId=\"http://remote.test/users/a#main-key\",signature=\"x\"",
        ),
    ]);
    let target = "/users/bob/inbox?a=1&b=%2F&c=%7e&d";
    let resp = forward(&up, request(Method::POST, target, h, full_body(body)), true)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    let got = puma.only();
    assert_eq!(got.method, Method::POST);
    assert_eq!(got.target(), target);
    assert_eq!(got.version, Version::HTTP_11);
    assert_eq!(got.header("host"), "example.social");
    assert_eq!(&got.body[..], body);
    assert_eq!(got.header("content-length"), body.len().to_string());
    assert_eq!(got.header("digest"), "SHA-256=abc=");
    assert_eq!(
        got.header("signature"),
        "keyId=\"http://remote.test/users/a#main-key\",signature=\"x\""
    );
    assert_eq!(got.header("content-type"), "application/activity+json");
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let puma = RecordingUpstream::start().await;
    puma.set_response_headers(headers(&[
        ("connection", "x-resp"),
        ("x-resp", "1"),
        ("keep-alive", "timeout=5"),
        ("x-end", "kept"),
    ]));
    let up = upstream_for(puma.addr(), 5);
    let h = headers(&[
        ("host", "example.social"),
        ("connection", "x-foo, keep-alive"),
        ("x-foo", "secret"),
        ("keep-alive", "300"),
        ("proxy-connection", "keep-alive"),
        ("te", "trailers"),
        ("upgrade", "websocket"),
        ("proxy-authorization", "Basic Zm9vOmJhcg=="),
        ("transfer-encoding", "chunked"),
        ("x-keep", "yes"),
    ]);
    let resp = forward(
        &up,
        request(Method::POST, "/inbox", h, full_body("hello")),
        true,
    )
    .await
    .unwrap();

    let got = puma.only();
    for gone in [
        "connection",
        "x-foo",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "proxy-authorization",
        "transfer-encoding",
    ] {
        assert!(!got.has_header(gone), "{gone} reached the upstream");
    }
    assert_eq!(got.header("x-keep"), "yes");
    // The body is framed afresh by this hop: it is complete, so Content-Length.
    assert_eq!(got.header("content-length"), "5");
    assert_eq!(&got.body[..], b"hello");

    for gone in ["connection", "x-resp", "keep-alive"] {
        assert!(
            !resp.headers().contains_key(gone),
            "{gone} came back from the upstream"
        );
    }
    assert_eq!(resp.headers()["x-end"], "kept");
}

#[tokio::test]
async fn forwarded_for_is_appended_and_proto_kept_or_replaced() {
    let puma = RecordingUpstream::start().await;
    let up = upstream_for(puma.addr(), 5);

    let h = headers(&[
        ("host", "example.social"),
        ("x-forwarded-for", "198.51.100.1"),
        ("x-forwarded-proto", "http"),
    ]);
    forward(
        &up,
        request(Method::POST, "/inbox", h.clone(), full_body("")),
        true,
    )
    .await
    .unwrap();
    forward(
        &up,
        request(Method::POST, "/inbox", h, full_body("")),
        false,
    )
    .await
    .unwrap();
    let h = headers(&[("host", "example.social")]);
    forward(&up, request(Method::POST, "/inbox", h, full_body("")), true)
        .await
        .unwrap();

    let got = puma.requests();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0].header("x-forwarded-for"),
        "198.51.100.1, 203.0.113.7"
    );
    assert_eq!(
        got[0].header("x-forwarded-proto"),
        "http",
        "trusted edge value kept"
    );
    assert_eq!(
        got[1].header("x-forwarded-proto"),
        "https",
        "untrusted value replaced"
    );
    assert_eq!(got[2].header("x-forwarded-for"), "203.0.113.7");
    assert_eq!(got[2].header("x-forwarded-proto"), "https");
}

/// An HTTP/2 request carries its host in the URI, not in a Host header; Puma must still see
/// the public host, over HTTP/1.1.
#[tokio::test]
async fn http2_style_request_gets_host_from_its_authority() {
    let puma = RecordingUpstream::start().await;
    let up = upstream_for(puma.addr(), 5);
    let mut req = request(
        Method::POST,
        "https://example.social/users/bob/inbox?x=%2F",
        HeaderMap::new(),
        full_body("{}"),
    );
    *req.version_mut() = Version::HTTP_2;
    forward(&up, req, true).await.unwrap();

    let got = puma.only();
    assert_eq!(got.header("host"), "example.social");
    assert_eq!(got.target(), "/users/bob/inbox?x=%2F");
    assert_eq!(got.version, Version::HTTP_11);
}

#[tokio::test]
async fn dead_upstream_is_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let up = upstream_for(dead, 5);
    let h = headers(&[("host", "example.social")]);
    let err = forward(
        &up,
        request(Method::POST, "/inbox", h, full_body("x")),
        true,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, UpstreamError::Unreachable(_)), "{err:?}");
    assert_eq!(upstream_result(&err), "unreachable");
    assert_eq!(status_of(&err), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn silent_upstream_times_out() {
    let puma = RecordingUpstream::start().await;
    puma.hang();
    let up = upstream_for(puma.addr(), 1);
    let h = headers(&[("host", "example.social")]);
    let err = forward(
        &up,
        request(Method::POST, "/inbox", h, full_body("x")),
        true,
    )
    .await
    .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(upstream_result(&err), "timeout");
    assert_eq!(status_of(&err), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn requests_beyond_the_in_flight_cap_are_refused_not_queued() {
    let puma = RecordingUpstream::start().await;
    puma.hang();
    let up = std::sync::Arc::new(upstream_with_cap(puma.addr(), 2, 1));
    let first = {
        let up = up.clone();
        tokio::spawn(async move {
            let h = headers(&[("host", "example.social")]);
            forward(
                &up,
                request(Method::POST, "/inbox", h, full_body("1")),
                true,
            )
            .await
        })
    };
    // Wait until the first request holds the only slot (it has reached the upstream).
    within("first request reaches the upstream", async {
        while puma.count() == 0 || up.in_flight() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let h = headers(&[("host", "example.social")]);
    let err = forward(
        &up,
        request(Method::POST, "/inbox", h, full_body("2")),
        true,
    )
    .await
    .unwrap_err();
    assert_eq!(upstream_result(&err), "overloaded");
    assert_eq!(status_of(&err), StatusCode::SERVICE_UNAVAILABLE);
    assert!(err.is_upstream_fault());
    assert_eq!(
        puma.count(),
        1,
        "the refused request never reached the upstream"
    );
    // Once the first answers, the slot is free again.
    puma.answer();
    let _ = within("first request", first).await;
    assert_eq!(up.in_flight(), 0);
}

#[tokio::test]
async fn upstream_closing_without_answer_is_connection_lost() {
    let puma = RecordingUpstream::start().await;
    puma.close_without_response();
    let up = upstream_for(puma.addr(), 5);
    let h = headers(&[("host", "example.social")]);
    let err = forward(
        &up,
        request(Method::POST, "/inbox", h, full_body("x")),
        true,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, UpstreamError::ConnectionLost(_)), "{err:?}");
    assert_eq!(status_of(&err), StatusCode::BAD_GATEWAY);
    assert_eq!(puma.count(), 1);
}

#[tokio::test]
async fn upstream_500_is_a_response_not_an_error() {
    let puma = RecordingUpstream::start().await;
    puma.fail();
    puma.set_response_body("oops");
    let up = upstream_for(puma.addr(), 5);
    let h = headers(&[("host", "example.social")]);
    let resp = forward(
        &up,
        request(Method::POST, "/inbox", h, full_body("x")),
        true,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"oops");
}

/// The upstream sends its second chunk only after the test has received the first: a
/// forwarder that buffered the response would never deliver anything.
#[tokio::test]
async fn response_body_is_streamed() {
    let puma = RecordingUpstream::start().await;
    let stream = puma.respond_streaming();
    stream.send("first");
    let up = upstream_for(puma.addr(), 5);
    let h = headers(&[("host", "example.social")]);
    let resp = forward(
        &up,
        request(Method::GET, "/api/v1/streaming", h, full_body("")),
        true,
    )
    .await
    .unwrap();
    let mut body = resp.into_body();

    let mut received = Vec::new();
    while received.len() < 5 {
        let frame = within("first chunk", body.frame()).await.unwrap().unwrap();
        received.extend_from_slice(&frame.into_data().unwrap());
    }
    assert_eq!(received, b"first");

    stream.send("second");
    drop(stream);
    let rest = within("rest of body", body.collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&rest[..], b"second");
}

/// A pass-through client that disconnects mid-upload: the body stream fails while being
/// forwarded. That is an error for the caller (no panic), and not the upstream's fault.
#[tokio::test]
async fn request_body_failure_is_client_aborted() {
    let puma = RecordingUpstream::start().await;
    let up = upstream_for(puma.addr(), 5);
    let (tx, body) = channel_body::<BoxError>();
    tx.send(Ok(Bytes::from_static(b"partial upload"))).unwrap();
    tx.send(Err("client went away".into())).unwrap();
    let h = headers(&[("host", "example.social")]);
    let req = request(Method::POST, "/api/v2/media", h, body.boxed());
    let err = forward(&up, req, true).await.unwrap_err();
    assert!(matches!(err, UpstreamError::ClientAborted(_)), "{err:?}");
    assert!(!err.is_upstream_fault());
    assert_eq!(
        puma.count(),
        0,
        "a truncated body must not arrive as a request"
    );

    // The client keeps working for the next request.
    let h = headers(&[("host", "example.social")]);
    let resp = forward(
        &up,
        request(Method::POST, "/inbox", h, full_body("x")),
        true,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn connect_requests_are_refused() {
    let puma = RecordingUpstream::start().await;
    let up = upstream_for(puma.addr(), 5);
    let req = request(
        Method::CONNECT,
        "example.social:443",
        HeaderMap::new(),
        full_body(""),
    );
    let err = forward(&up, req, true).await.unwrap_err();
    assert!(matches!(err, UpstreamError::InvalidTarget(_)), "{err:?}");
    assert_eq!(puma.count(), 0);
}

// ---------------------------------------------------------------------------------------
// Harness self-checks: the other end-to-end tests trust these pieces.
// ---------------------------------------------------------------------------------------

/// The test signer's output verifies against the served key with a plain RSA check over a
/// signing string spelled out here, so it cannot agree with the proxy by sharing a bug.
#[tokio::test]
async fn harness_signer_and_remote_instance_agree() {
    use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;

    let remote = RemoteInstance::start("remote.test").await;
    let alice = remote.add_actor("alice");
    let body = alice.activity(
        "Follow",
        serde_json::json!("http://example.social/users/bob"),
    );
    let date = "Sun, 06 Nov 1994 08:49:37 GMT".to_string();
    let signed = alice.sign_post_with(
        "/users/bob/inbox",
        "example.social",
        &body,
        &SignOptions {
            date: Some(date.clone()),
            ..SignOptions::default()
        },
    );
    let h = &signed.headers;
    let digest = format!(
        "SHA-256={}",
        b64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body))
    );
    assert_eq!(h["digest"], digest.as_str());
    assert_eq!(h["date"], date.as_str());
    let expected_string = format!(
        "(request-target): post /users/bob/inbox\nhost: example.social\ndate: {date}\ndigest: {digest}\ncontent-type: application/activity+json"
    );

    let sig_header = h["signature"].to_str().unwrap();
    assert!(sig_header.starts_with(
        "keyId=\"http://remote.test/users/alice#main-key\",algorithm=\"rsa-sha256\",headers=\"(request-target) host date digest content-type\",signature=\""
    ));
    let sig_b64 = sig_header
        .rsplit("signature=\"")
        .next()
        .unwrap()
        .trim_end_matches('"');
    let sig = b64.decode(sig_b64).unwrap();

    // Fetch the actor like a key fetcher would: by the keyId minus its fragment.
    let mut fetch = HeaderMap::new();
    fetch.insert("host", "remote.test".parse().unwrap());
    let (status, resp_headers, doc) = send(
        remote.addr(),
        Method::GET,
        "/users/alice",
        fetch,
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp_headers["content-type"], "application/activity+json");
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(doc["id"], "http://remote.test/users/alice");
    assert_eq!(doc["publicKey"]["id"], alice.key_id.as_str());
    assert_eq!(doc["publicKey"]["owner"], alice.id.as_str());
    let pem = doc["publicKey"]["publicKeyPem"].as_str().unwrap();
    let (_, spki) = inboxguard::signature::signing_key::pem_decode(pem).unwrap();
    let key = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, spki.clone());
    assert!(key.verify(expected_string.as_bytes(), &sig).is_ok());
    assert!(key.verify(b"something else", &sig).is_err());
    assert_eq!(remote.key_fetches(&alice), 1);

    // Rotation: same keyId, a different key served and used from now on.
    let old = remote.rotate_key(&alice);
    let (_, _, doc2) = send(
        remote.addr(),
        Method::GET,
        "/users/alice",
        headers(&[("host", "remote.test")]),
        Vec::new(),
    )
    .await;
    let doc2: serde_json::Value = serde_json::from_slice(&doc2).unwrap();
    assert_eq!(doc2["publicKey"]["id"], alice.key_id.as_str());
    assert_ne!(
        doc2["publicKey"]["publicKeyPem"],
        doc["publicKey"]["publicKeyPem"]
    );
    assert_eq!(old.public_key_pem().unwrap(), pem);
    assert_eq!(remote.key_fetches(&alice), 2);

    // Options: tampered body, no signature, other algorithm name.
    let opts = SignOptions {
        tamper_body: true,
        omit_signature: true,
        algorithm: Some("hs2019".into()),
        ..SignOptions::default()
    };
    let odd = alice.sign_post_with("/inbox", "example.social", &body, &opts);
    assert_ne!(odd.body, body);
    assert!(!odd.headers.contains_key("signature"));
    let hs = alice.sign_post_with(
        "/inbox",
        "example.social",
        &body,
        &SignOptions {
            algorithm: Some("hs2019".into()),
            ..SignOptions::default()
        },
    );
    assert!(hs.headers["signature"]
        .to_str()
        .unwrap()
        .contains("algorithm=\"hs2019\""));

    // Deleted and unknown actors.
    remote.make_gone(&alice);
    let (status, _, _) = send(
        remote.addr(),
        Method::GET,
        "/users/alice",
        HeaderMap::new(),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::GONE);
    remote.make_missing(&alice);
    let (status, _, _) = send(
        remote.addr(),
        Method::GET,
        "/users/alice",
        HeaderMap::new(),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = send(
        remote.addr(),
        Method::GET,
        "/users/nobody",
        HeaderMap::new(),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(remote.gets("/users/nobody"), 1);
}

#[test]
fn harness_metric_parser() {
    const SAMPLE: &str = r#"# HELP inboxguard_requests_total Inbox requests
# TYPE inboxguard_requests_total counter
inboxguard_requests_total{decision="forwarded",reason="ok"} 3
inboxguard_requests_total{decision="rejected",reason="bad_signature"} 2
inboxguard_requests_total{decision="rejected",reason="blocked"} 5
inboxguard_passthrough_requests_total 7
weird{msg="a \"}\" b"} 1.5 1700000000
"#;
    assert_eq!(
        metric_value(
            SAMPLE,
            r#"inboxguard_requests_total{reason="ok",decision="forwarded"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        metric_value(SAMPLE, "inboxguard_passthrough_requests_total"),
        Some(7.0)
    );
    assert_eq!(
        metric_value(SAMPLE, r#"inboxguard_requests_total{decision="rejected"}"#),
        None
    );
    assert_eq!(metric_value(SAMPLE, "inboxguard_missing_total"), None);
    assert_eq!(
        metric_sum(SAMPLE, r#"inboxguard_requests_total{decision="rejected"}"#),
        7.0
    );
    assert_eq!(metric_value(SAMPLE, r#"weird{msg="a \"}\" b"}"#), Some(1.5));
}

//! End-to-end tests of the inbox pipeline: the whole proxy in process on loopback, a recording
//! stand-in for Puma, stand-in remote instances publishing real RSA keys. Each test checks what
//! the sender got, what Puma received, what the metrics say and how often keys were fetched.

mod common;

use bytes::Bytes;
use common::*;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use inboxguard::signature::SigningKey;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// A Mastodon `domain_blocks.csv` export covering every severity and the longest-suffix rule.
const BLOCKLIST: &str = "\
#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate
bad.example,suspend,false,false,Spam,false
ok.bad.example,noop,false,false,Carved out of bad.example,false
limited.example,silence,false,false,Unmoderated,false
quiet.example,noop,false,false,,false
reports.example,noop,false,true,Report spam,false
";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn labelled(metrics: &str, name: &str, label: &str, value: &str) -> f64 {
    metric_value(metrics, &format!("{name}{{{label}=\"{value}\"}}")).unwrap_or(0.0)
}

/// Sends a [`Signed`] request as a POST to `path`.
async fn post(proxy: &Proxy, path: &str, signed: Signed) -> (StatusCode, HeaderMap, Bytes) {
    within(
        "inbox POST",
        send(
            proxy.proxy_addr,
            Method::POST,
            path,
            signed.headers,
            signed.body,
        ),
    )
    .await
}

/// The proxy's own rejections carry `{"error": "<non-empty message>"}` as JSON.
fn assert_json_error(headers: &HeaderMap, body: &[u8]) {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?}"
    );
    let value: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {body:?}"));
    let message = value["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no \"error\" string in {value}"));
    assert!(!message.is_empty());
}

async fn start_proxy(puma: &RecordingUpstream, remotes: &[&RemoteInstance]) -> Proxy {
    let mut builder = Proxy::builder(puma.addr());
    for remote in remotes {
        builder = builder.remote(remote);
    }
    let proxy = builder
        .blocklist_file("domain_blocks.csv", BLOCKLIST)
        .start()
        .await;
    proxy.wait_ready().await;
    proxy
}

// ---------------------------------------------------------------------------------------
// 1. Valid delivery and routing
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn valid_delivery_is_forwarded_byte_for_byte_and_upstream_answer_returned() {
    let remote = RemoteInstance::start("good.example").await;
    let alice = remote.add_actor("alice");
    let puma = RecordingUpstream::start().await;
    puma.set_status(StatusCode::ACCEPTED);
    puma.set_response_body("{\"queued\":true}");
    puma.set_response_headers(headers(&[("x-puma", "yes")]));
    let proxy = start_proxy(&puma, &[&remote]).await;

    // Irregular spacing, key order and escapes: any re-serialisation changes these bytes.
    let body = format!(
        "{{ \"@context\":\"https://www.w3.org/ns/activitystreams\",  \"type\" : \"Create\",\n\
         \"actor\":\"{id}\", \"id\":\"{id}/activities/x\",\"object\":{{\"type\":\"Note\",\
         \"content\":\"caf\\u00e9 \u{2713}\"}} }}",
        id = alice.id
    )
    .into_bytes();
    let sent = alice.sign_post(INBOX, LOCAL, &body);
    let (status, resp_headers, resp_body) = within(
        "delivery",
        send(
            proxy.proxy_addr,
            Method::POST,
            INBOX,
            sent.clone(),
            body.clone(),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(&resp_body[..], b"{\"queued\":true}");
    assert_eq!(resp_headers["x-puma"], "yes");

    let got = puma.only();
    assert_eq!(got.method, Method::POST);
    assert_eq!(got.target(), INBOX);
    assert_eq!(&got.body[..], &body[..]);
    assert_eq!(got.header("host"), LOCAL);
    for name in ["signature", "digest", "date", "content-type"] {
        assert_eq!(
            got.header(name),
            sent[name].to_str().unwrap(),
            "{name} changed on the way"
        );
    }
    assert!(
        got.header("x-forwarded-for").contains("127.0.0.1"),
        "{:?}",
        got.headers
    );

    assert_eq!(remote.key_fetches(&alice), 1);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "forwarded", "forwarded"), 1.0);
    assert_eq!(metric_sum(&m, "inboxguard_requests_total"), 1.0);
    assert_eq!(
        labelled(&m, "inboxguard_upstream_responses_total", "result", "2xx"),
        1.0
    );
}

#[tokio::test]
async fn every_inbox_route_goes_through_the_pipeline_and_other_requests_pass_through() {
    let remote = RemoteInstance::start("good.example").await;
    let alice = remote.add_actor("alice");
    let puma = RecordingUpstream::start().await;
    let proxy = start_proxy(&puma, &[&remote]).await;
    let body = alice.activity("Create", note(&alice, "hi"));

    let routes = [
        "/inbox",
        "/users/alice/inbox",
        "/ap/users/1/inbox",
        "/actor/inbox",
        "/inbox.json",
        "/users/alice/inbox.json",
    ];
    for path in routes {
        let signed = alice.sign_post_with(
            path,
            LOCAL,
            &body,
            &SignOptions {
                omit_signature: true,
                ..SignOptions::default()
            },
        );
        let (status, h, b) = post(&proxy, path, signed).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_json_error(&h, &b);
    }
    assert_eq!(puma.count(), 0, "an unsigned inbox POST reached Mastodon");

    // The same routes signed correctly are forwarded (the 401s above were the pipeline's).
    let (status, _, _) = within(
        "signed /inbox",
        proxy.post_signed(&alice, "/inbox", LOCAL, &body),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(puma.count(), 1);

    let (status, _, _) = within(
        "GET actor",
        send(
            proxy.proxy_addr,
            Method::GET,
            "/users/alice",
            headers(&[("host", LOCAL), ("accept", "application/activity+json")]),
            Vec::new(),
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "pass-through returns Puma's status"
    );
    let (status, _, _) = within(
        "GET inbox",
        send(
            proxy.proxy_addr,
            Method::GET,
            "/inbox",
            headers(&[("host", LOCAL), ("x-request-start", "t=1733380000.250")]),
            Vec::new(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let recorded = puma.requests();
    assert_eq!(recorded.len(), 3);
    assert_eq!(
        (recorded[1].method.clone(), recorded[1].target()),
        (Method::GET, "/users/alice")
    );
    assert_eq!(
        (recorded[2].method.clone(), recorded[2].target()),
        (Method::GET, "/inbox")
    );
    assert_eq!(recorded[1].header("accept"), "application/activity+json");
    // Puma's queue time counts from arrival: set when the edge did not, kept when it did.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    for r in &recorded[..2] {
        let start = r.header("x-request-start");
        let secs: f64 = start
            .strip_prefix("t=")
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("x-request-start {start:?}"));
        assert!((now - secs).abs() < 60.0, "{start}");
    }
    assert_eq!(recorded[2].header("x-request-start"), "t=1733380000.250");

    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "not_signed"), routes.len() as f64);
    assert_eq!(requests(&m, "forwarded", "forwarded"), 1.0);
    assert_eq!(
        metric_value(&m, "inboxguard_passthrough_requests_total"),
        Some(2.0)
    );
    assert_eq!(remote.key_fetches(&alice), 1);
}

// ---------------------------------------------------------------------------------------
// 2-4. Signature checks that need no key
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn tampered_body_is_refused_before_any_key_fetch() {
    let remote = RemoteInstance::start("good.example").await;
    let alice = remote.add_actor("alice");
    let puma = RecordingUpstream::start().await;
    let proxy = start_proxy(&puma, &[&remote]).await;

    let body = alice.activity("Create", note(&alice, "original"));
    let (status, h, b) = deliver_with(
        &proxy,
        &alice,
        &body,
        SignOptions {
            tamper_body: true,
            ..SignOptions::default()
        },
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_json_error(&h, &b);
    assert_eq!(puma.count(), 0);
    assert_eq!(remote.total_gets(), 0);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "digest_mismatch"), 1.0);
    assert_eq!(metric_sum(&m, "inboxguard_requests_total"), 1.0);
}

#[tokio::test]
async fn stale_and_future_dates_are_refused_before_any_key_fetch() {
    let remote = RemoteInstance::start("good.example").await;
    let alice = remote.add_actor("alice");
    let puma = RecordingUpstream::start().await;
    let proxy = start_proxy(&puma, &[&remote]).await;
    let body = alice.activity("Create", note(&alice, "when?"));

    for offset in [-2 * 3600, 2 * 3600] {
        let (status, h, b) = deliver_with(
            &proxy,
            &alice,
            &body,
            SignOptions {
                date: Some(http_date_offset(offset)),
                ..SignOptions::default()
            },
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "offset {offset}");
        assert_json_error(&h, &b);
    }
    assert_eq!(puma.count(), 0);
    assert_eq!(remote.total_gets(), 0);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "outside_window"), 2.0);

    // Control: the same body with a current date is accepted, so the window is what refused.
    let (status, _, _) = deliver(&proxy, &alice, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(puma.count(), 1);
}

#[tokio::test]
async fn malformed_signatures_are_refused_with_their_reasons() {
    let remote = RemoteInstance::start("good.example").await;
    let alice = remote.add_actor("alice");
    let puma = RecordingUpstream::start().await;
    let proxy = start_proxy(&puma, &[&remote]).await;
    let body = alice.activity("Create", note(&alice, "sig"));

    let cases: Vec<(&str, SignOptions)> = vec![
        (
            "not_signed",
            SignOptions {
                omit_signature: true,
                ..SignOptions::default()
            },
        ),
        (
            "unsupported_algorithm",
            SignOptions {
                algorithm: Some("hmac-sha256".into()),
                ..SignOptions::default()
            },
        ),
        (
            "digest_not_signed",
            SignOptions {
                signed_headers: Some(vec![
                    "(request-target)".into(),
                    "host".into(),
                    "date".into(),
                ]),
                ..SignOptions::default()
            },
        ),
    ];
    for (reason, opts) in cases {
        let (status, h, b) = deliver_with(&proxy, &alice, &body, opts).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{reason}");
        assert_json_error(&h, &b);
        let m = proxy.metrics().await;
        assert_eq!(requests(&m, "rejected", reason), 1.0, "{reason}");
    }

    // A repeated parameter: a well-formed signature with a second `algorithm=` appended.
    let mut signed = alice.sign_post_with(INBOX, LOCAL, &body, &SignOptions::default());
    let original = signed.headers["signature"].to_str().unwrap().to_string();
    signed.headers.insert(
        "signature",
        HeaderValue::from_str(&format!("{original},algorithm=\"rsa-sha256\"")).unwrap(),
    );
    let (status, h, b) = post(&proxy, INBOX, signed).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_json_error(&h, &b);

    assert_eq!(puma.count(), 0);
    assert_eq!(remote.total_gets(), 0);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "duplicate_parameter"), 1.0);
    assert_eq!(metric_sum(&m, "inboxguard_requests_total"), 4.0);
}

// ---------------------------------------------------------------------------------------
// 5-6. Domain rules
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn suspended_domains_are_refused_without_fetching_and_longest_suffix_wins() {
    let bad = RemoteInstance::start("bad.example").await;
    let sub = RemoteInstance::start("sub.bad.example").await;
    let carved = RemoteInstance::start("ok.bad.example").await;
    let good = RemoteInstance::start("good.example").await;
    let mallory = bad.add_actor("mallory");
    let subby = sub.add_actor("subby");
    let okay = carved.add_actor("okay");
    let alice = good.add_actor("alice");
    let puma = RecordingUpstream::start().await;
    let proxy = start_proxy(&puma, &[&bad, &sub, &carved, &good]).await;

    for actor in [&mallory, &subby] {
        let body = actor.activity("Create", note(actor, "spam"));
        let (status, h, b) = deliver(&proxy, actor, &body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{}", actor.host);
        assert_json_error(&h, &b);
    }
    // The keyId host is refused before the body digest is computed: a suspended sender's
    // tampered body is a 403 like any other of its deliveries, not a signature failure.
    let body = mallory.activity("Create", note(&mallory, "spam"));
    let (status, _, _) = deliver_with(
        &proxy,
        &mallory,
        &body,
        SignOptions {
            tamper_body: true,
            ..SignOptions::default()
        },
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(bad.total_gets(), 0, "key fetched from a suspended domain");
    assert_eq!(
        sub.total_gets(),
        0,
        "key fetched from a suspended subdomain"
    );

    // ok.bad.example has its own noop rule, which shadows the suspension of bad.example.
    let body = okay.activity("Create", note(&okay, "fine"));
    let (status, _, _) = deliver(&proxy, &okay, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(&puma.only().body[..], &body[..]);
    assert_eq!(carved.key_fetches(&okay), 1);

    // Signed by a good key, but claiming an actor on a suspended host.
    let body = json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}/activities/relay", mallory.id),
        "type": "Announce",
        "actor": mallory.id,
        "object": "http://good.example/users/alice/statuses/1",
    })
    .to_string()
    .into_bytes();
    let (status, h, b) = deliver(&proxy, &alice, &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_json_error(&h, &b);
    assert_eq!(
        good.total_gets(),
        0,
        "key fetched for a suspended actor host"
    );
    assert_eq!(bad.total_gets(), 0);
    assert_eq!(puma.count(), 1);

    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "suspended_key_host"), 3.0);
    assert_eq!(requests(&m, "rejected", "digest_mismatch"), 0.0);
    assert_eq!(requests(&m, "rejected", "suspended_actor_host"), 1.0);
    assert_eq!(requests(&m, "forwarded", "forwarded"), 1.0);
    assert_eq!(
        labelled(&m, "inboxguard_key_fetches_total", "result", "ok"),
        1.0
    );
}

#[tokio::test]
async fn limited_and_noop_domains_are_forwarded_and_reports_can_be_dropped() {
    let limited = RemoteInstance::start("limited.example").await;
    let quiet = RemoteInstance::start("quiet.example").await;
    let reports = RemoteInstance::start("reports.example").await;
    let lim = limited.add_actor("lim");
    let qui = quiet.add_actor("qui");
    let rep = reports.add_actor("rep");
    let puma = RecordingUpstream::start().await;
    puma.set_response_body("from puma");
    let proxy = start_proxy(&puma, &[&limited, &quiet, &reports]).await;

    let mut forwarded = Vec::new();
    for actor in [&lim, &qui] {
        let body = actor.activity("Create", note(actor, "hello"));
        let (status, _, b) = deliver(&proxy, actor, &body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{}", actor.host);
        assert_eq!(&b[..], b"from puma", "{} not answered by Puma", actor.host);
        forwarded.push(body);
    }

    let flag = rep.activity(
        "Flag",
        json!([
            "http://mastodon.local/users/alice",
            "http://mastodon.local/statuses/1"
        ]),
    );
    let (status, _, b) = deliver(&proxy, &rep, &flag).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(b.is_empty(), "a dropped report got a body: {b:?}");

    let create = rep.activity("Create", note(&rep, "not a report"));
    let (status, _, b) = deliver(&proxy, &rep, &create).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(&b[..], b"from puma");
    forwarded.push(create);

    let received: Vec<Vec<u8>> = puma.requests().iter().map(|r| r.body.to_vec()).collect();
    assert_eq!(
        received, forwarded,
        "exactly the non-report activities arrive"
    );
    assert_eq!(reports.key_fetches(&rep), 1);

    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "forwarded", "forwarded"), 3.0);
    assert_eq!(requests(&m, "dropped", "reject_reports"), 1.0);
    assert_eq!(metric_sum(&m, "inboxguard_requests_total"), 4.0);
}

// ---------------------------------------------------------------------------------------
// 7-9. Keys: coalescing, rotation, gone actors
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn one_hundred_concurrent_deliveries_cost_one_key_fetch() {
    let remote = RemoteInstance::start("busy.example").await;
    let busy = remote.add_actor("busy");
    let puma = RecordingUpstream::start().await;
    let proxy = Arc::new(start_proxy(&puma, &[&remote]).await);

    let mut expected = Vec::new();
    for _batch in 0..5 {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let body = busy.activity("Like", json!("http://mastodon.local/statuses/1"));
            expected.push(body.clone());
            let signed = busy.sign_post(INBOX, LOCAL, &body);
            let addr = proxy.proxy_addr;
            tasks.spawn(async move { send(addr, Method::POST, INBOX, signed, body).await.0 });
        }
        while let Some(status) = within("batch", tasks.join_next()).await {
            assert_eq!(status.unwrap(), StatusCode::ACCEPTED);
        }
    }

    assert_eq!(
        remote.key_fetches(&busy),
        1,
        "concurrent misses were not coalesced"
    );
    let mut received: Vec<Vec<u8>> = puma.requests().iter().map(|r| r.body.to_vec()).collect();
    received.sort();
    expected.sort();
    assert_eq!(received, expected);

    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "forwarded", "forwarded"), 100.0);
    assert_eq!(metric_sum(&m, "inboxguard_key_cache_requests_total"), 100.0);
    assert_eq!(
        labelled(&m, "inboxguard_key_fetches_total", "result", "ok"),
        1.0
    );
}

#[tokio::test]
async fn rotated_key_is_refetched_once() {
    let remote = RemoteInstance::start("rotating.example").await;
    let rot = remote.add_actor("rot");
    let puma = RecordingUpstream::start().await;
    let proxy = start_proxy(&puma, &[&remote]).await;

    let (status, _, _) = deliver(&proxy, &rot, &rot.activity("Create", note(&rot, "1"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(remote.key_fetches(&rot), 1);

    // The key store serves a refresh from an entry younger than 5 s (so bad signatures
    // cannot buy a fetch each); rotation is only picked up past that.
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let old = remote.rotate_key(&rot);

    let body = rot.activity("Create", note(&rot, "2"));
    let (status, _, _) = deliver(&proxy, &rot, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "new key refused");
    assert_eq!(
        remote.key_fetches(&rot),
        2,
        "rotation costs exactly one fetch"
    );
    assert_eq!(&puma.requests()[1].body[..], &body[..]);

    // The new key is now cached: another delivery needs no fetch.
    let (status, _, _) = deliver(&proxy, &rot, &rot.activity("Like", json!("x:1"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(remote.key_fetches(&rot), 2);

    // A sender still on the old key no longer verifies.
    let (status, h, b) = deliver_with(
        &proxy,
        &rot,
        &rot.activity("Create", note(&rot, "3")),
        SignOptions {
            key: Some(old),
            ..SignOptions::default()
        },
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_json_error(&h, &b);
    assert_eq!(puma.count(), 3);

    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "forwarded", "forwarded"), 3.0);
    assert_eq!(requests(&m, "rejected", "bad_signature"), 1.0);
}

#[tokio::test]
async fn wrong_key_for_a_cached_key_id_is_a_bad_signature() {
    let remote = RemoteInstance::start("good.example").await;
    let alice = remote.add_actor("alice");
    let puma = RecordingUpstream::start().await;
    let proxy = start_proxy(&puma, &[&remote]).await;

    let (status, _, _) = deliver(&proxy, &alice, &alice.activity("Follow", json!("x:bob"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(remote.key_fetches(&alice), 1);

    let forger = Arc::new(SigningKey::generate_rsa_2048().unwrap());
    for i in 0..3 {
        let (status, h, b) = deliver_with(
            &proxy,
            &alice,
            &alice.activity("Create", note(&alice, &format!("forged {i}"))),
            SignOptions {
                key: Some(forger.clone()),
                ..SignOptions::default()
            },
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_json_error(&h, &b);
    }
    assert_eq!(puma.count(), 1, "a forged delivery reached Mastodon");
    // At most one refetch in total, not one per forged request.
    assert!(
        remote.key_fetches(&alice) <= 2,
        "{}",
        remote.key_fetches(&alice)
    );

    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "bad_signature"), 3.0);
}

#[tokio::test]
async fn gone_actors_self_delete_is_acknowledged_and_dropped() {
    let remote = RemoteInstance::start("gone.example").await;
    let ghost = remote.add_actor("ghost");
    let missing = remote.add_actor("missing");
    let zombie = remote.add_actor("zombie");
    remote.make_gone(&ghost);
    remote.make_missing(&missing);
    remote.make_gone(&zombie);
    let puma = RecordingUpstream::start().await;
    let proxy = start_proxy(&puma, &[&remote]).await;

    for actor in [&ghost, &missing] {
        let body = actor.activity("Delete", json!(actor.id));
        let (status, _, b) = deliver(&proxy, actor, &body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{}", actor.username);
        assert!(b.is_empty());
        assert_eq!(remote.key_fetches(actor), 1);
    }

    // Not about the actor itself: a gone key cannot vouch for it.
    let body = zombie.activity("Create", note(&zombie, "still here?"));
    let (status, h, b) = deliver(&proxy, &zombie, &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_json_error(&h, &b);
    // Deleting someone else's object is not a self-Delete either.
    let body = zombie.activity("Delete", json!("http://gone.example/users/ghost"));
    let (status, _, _) = deliver(&proxy, &zombie, &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(remote.key_fetches(&zombie), 1, "the 410 was not remembered");

    assert_eq!(puma.count(), 0);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "dropped", "gone_actor"), 2.0);
    assert_eq!(requests(&m, "rejected", "key_gone"), 2.0);
}

/// Mastodon answers an unsigned self-`Delete` from an actor it does not know with 202 before
/// any signature check (`skip_unknown_actor_activity`). inboxguard cannot tell known actors
/// from unknown ones, and the activity is dropped either way: it is acknowledged, never
/// forwarded, and costs no key fetch.
#[tokio::test]
async fn mastodon_acknowledges_an_unsigned_self_delete() {
    let remote = RemoteInstance::start("good.example").await;
    let alice = remote.add_actor("alice");
    let puma = RecordingUpstream::start().await;
    let proxy = start_proxy(&puma, &[&remote]).await;
    let unsigned = SignOptions {
        omit_signature: true,
        ..SignOptions::default()
    };
    let embedded = json!({"id": alice.id, "type": "Person"});
    for object in [json!(alice.id), embedded] {
        let body = alice.activity("Delete", object);
        let (status, _, b) = deliver_with(&proxy, &alice, &body, unsigned.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert!(b.is_empty(), "{b:?}");
    }
    assert_eq!(puma.count(), 0, "an unsigned Delete reached Mastodon");
    assert_eq!(remote.key_fetches(&alice), 0);

    // The controls, still refused as unsigned: a Delete of something else, an unsigned
    // self-Update (Mastodon processes a known actor's), any other activity.
    for body in [
        alice.activity(
            "Delete",
            json!("http://good.example/users/alice/statuses/1"),
        ),
        alice.activity("Update", json!(alice.id)),
        alice.activity("Create", note(&alice, "hi")),
    ] {
        let (status, h, b) = deliver_with(&proxy, &alice, &body, unsigned.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_json_error(&h, &b);
    }
    assert_eq!(puma.count(), 0);

    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "dropped", "unsigned_self_delete"), 2.0, "{m}");
    assert_eq!(requests(&m, "rejected", "not_signed"), 3.0, "{m}");
}

// ---------------------------------------------------------------------------------------
// 10. Body size
// ---------------------------------------------------------------------------------------

/// A signed activity of exactly `len` bytes (padding in `content`).
fn activity_of_len(actor: &Actor, len: usize) -> Vec<u8> {
    let mut body = actor.activity("Create", note(actor, ""));
    let pad = len.checked_sub(body.len()).expect("len too small");
    let text = String::from_utf8(body).expect("activities are UTF-8");
    body = text
        .replacen(
            "\"content\":\"\"",
            &format!("\"content\":\"{}\"", "x".repeat(pad)),
            1,
        )
        .into_bytes();
    assert_eq!(body.len(), len);
    body
}

#[tokio::test]
async fn oversize_bodies_get_413_and_are_not_forwarded() {
    const MAX: u64 = 1024;
    let remote = RemoteInstance::start("good.example").await;
    let alice = remote.add_actor("alice");
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&remote)
        .configure(|c| c.server.max_body_bytes = MAX)
        .start()
        .await;
    proxy.wait_ready().await;

    // Declared too large: answered from the head alone. The body never finishes arriving, so
    // a proxy that waited for it would hang here (body_read_timeout is 30 s).
    let big = activity_of_len(&alice, 2000);
    let mut h = alice.sign_post(INBOX, LOCAL, &big);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(big.len()));
    let (tx, body) = channel_body::<std::io::Error>();
    tx.send(Ok(Bytes::copy_from_slice(&big[..100]))).unwrap();
    let mut req = Request::new(body);
    *req.method_mut() = Method::POST;
    *req.uri_mut() = INBOX.parse().unwrap();
    *req.headers_mut() = h;
    let resp = within(
        "declared oversize",
        request_on_new_connection(proxy.proxy_addr, req),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    drop(tx);

    // Chunked, no Content-Length: refused once more than MAX bytes arrived.
    let big = activity_of_len(&alice, 1600);
    let h = alice.sign_post(INBOX, LOCAL, &big);
    let (tx, body) = channel_body::<std::io::Error>();
    for chunk in big.chunks(400) {
        tx.send(Ok(Bytes::copy_from_slice(chunk))).unwrap();
    }
    let mut req = Request::new(body);
    *req.method_mut() = Method::POST;
    *req.uri_mut() = INBOX.parse().unwrap();
    *req.headers_mut() = h;
    let resp = within(
        "chunked oversize",
        request_on_new_connection(proxy.proxy_addr, req),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (parts, body) = resp.into_parts();
    let body = within("413 body", body.collect()).await.unwrap().to_bytes();
    assert_json_error(&parts.headers, &body);
    drop(tx);

    assert_eq!(puma.count(), 0);
    assert_eq!(remote.total_gets(), 0);

    // Control: a chunked body of exactly MAX bytes is read and forwarded.
    let fits = activity_of_len(&alice, MAX as usize);
    let h = alice.sign_post(INBOX, LOCAL, &fits);
    let (tx, body) = channel_body::<std::io::Error>();
    for chunk in fits.chunks(300) {
        tx.send(Ok(Bytes::copy_from_slice(chunk))).unwrap();
    }
    drop(tx);
    let mut req = Request::new(body);
    *req.method_mut() = Method::POST;
    *req.uri_mut() = INBOX.parse().unwrap();
    *req.headers_mut() = h;
    let resp = within(
        "chunked fits",
        request_on_new_connection(proxy.proxy_addr, req),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(&puma.only().body[..], &fits[..]);

    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "body_too_large"), 2.0);
    assert_eq!(requests(&m, "forwarded", "forwarded"), 1.0);
}

// ---------------------------------------------------------------------------------------
// 11-12. Upstream and key server failures
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn upstream_down_gives_502_and_upstream_hang_gives_504() {
    let remote = RemoteInstance::start("good.example").await;
    let alice = remote.add_actor("alice");

    // Nothing listens on `dead` once the listener is dropped.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let down = Proxy::builder(dead).remote(&remote).start().await;
    down.wait_ready().await;
    let (status, h, b) = deliver(&down, &alice, &alice.activity("Create", note(&alice, "a"))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(h.contains_key(header::RETRY_AFTER), "{h:?}");
    assert_json_error(&h, &b);
    let m = down.metrics().await;
    assert_eq!(requests(&m, "rejected", "upstream_unreachable"), 1.0);
    assert_eq!(
        labelled(
            &m,
            "inboxguard_upstream_responses_total",
            "result",
            "unreachable"
        ),
        1.0
    );
    assert_eq!(requests(&m, "forwarded", "forwarded"), 0.0);

    let puma = RecordingUpstream::start().await;
    puma.hang();
    let slow = Proxy::builder(puma.addr())
        .remote(&remote)
        .configure(|c| c.upstream.timeout_secs = 1)
        .start()
        .await;
    slow.wait_ready().await;
    let (status, h, b) = deliver(&slow, &alice, &alice.activity("Create", note(&alice, "b"))).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(h.contains_key(header::RETRY_AFTER), "{h:?}");
    assert_json_error(&h, &b);
    assert_eq!(
        puma.count(),
        1,
        "the request did reach the hanging upstream"
    );
    let m = slow.metrics().await;
    assert_eq!(requests(&m, "rejected", "upstream_timeout"), 1.0);
    assert_eq!(
        labelled(
            &m,
            "inboxguard_upstream_responses_total",
            "result",
            "timeout"
        ),
        1.0
    );

    // Both proxies still serve, and the second forwards again once Puma answers.
    for proxy in [&down, &slow] {
        let (status, _) = within("readyz", get_text(proxy.admin_addr, "/readyz")).await;
        assert_eq!(status, StatusCode::OK);
    }
    puma.answer();
    let (status, _, _) = deliver(&slow, &alice, &alice.activity("Create", note(&alice, "c"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(puma.count(), 2);
}

#[tokio::test]
async fn key_server_failures_are_503_or_401() {
    let slow = RemoteInstance::start("slow.example").await;
    let broken = RemoteInstance::start("broken.example").await;
    let liar = RemoteInstance::start("liar.example").await;
    let snail = slow.add_actor("snail");
    let crash = broken.add_actor("crash");
    let fib = liar.add_actor("fib");
    slow.set_delay(Some(Duration::from_secs(4)));
    broken.set_actor_status(&crash, StatusCode::INTERNAL_SERVER_ERROR);
    // The document names a different key than the keyId the request is signed with.
    let doc = actor_document("liar.example", "fib", &fib.key().public_key_pem().unwrap())
        .replace("#main-key", "#other-key");
    liar.serve_raw(
        &fib.path(),
        StatusCode::OK,
        "application/activity+json",
        doc,
    );

    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&slow)
        .remote(&broken)
        .remote(&liar)
        .configure(|c| c.key_fetch.timeout_secs = 1)
        .start()
        .await;
    proxy.wait_ready().await;

    for actor in [&snail, &crash] {
        let (status, h, b) =
            deliver(&proxy, actor, &actor.activity("Create", note(actor, "?"))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{}", actor.host);
        assert!(h.contains_key(header::RETRY_AFTER), "{h:?}");
        assert_json_error(&h, &b);
    }
    let (status, h, b) = deliver(&proxy, &fib, &fib.activity("Create", note(&fib, "!"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!h.contains_key(header::RETRY_AFTER));
    assert_json_error(&h, &b);

    assert_eq!(puma.count(), 0);
    assert_eq!(slow.key_fetches(&snail), 1);
    assert_eq!(broken.key_fetches(&crash), 1);
    assert_eq!(liar.key_fetches(&fib), 1);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "key_timeout"), 1.0);
    assert_eq!(requests(&m, "rejected", "key_http_status"), 1.0);
    assert_eq!(requests(&m, "rejected", "key_id_mismatch"), 1.0);
}

// ---------------------------------------------------------------------------------------
// 13. Broken JSON
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn broken_json_with_a_valid_signature_is_400_without_a_key_fetch() {
    let remote = RemoteInstance::start("good.example").await;
    let alice = remote.add_actor("alice");
    let puma = RecordingUpstream::start().await;
    let proxy = start_proxy(&puma, &[&remote]).await;

    for body in [
        &b"{\"type\": \"Create\", \"actor\": "[..],
        b"[1, 2]",
        b"not json",
    ] {
        let (status, h, b) = deliver(&proxy, &alice, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_json_error(&h, &b);
    }
    assert_eq!(puma.count(), 0);
    assert_eq!(remote.total_gets(), 0);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "invalid_json"), 3.0);
}

// ---------------------------------------------------------------------------------------
// 14. Metrics
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_account_for_a_mixed_run() {
    let good = RemoteInstance::start("good.example").await;
    let bad = RemoteInstance::start("bad.example").await;
    let reports = RemoteInstance::start("reports.example").await;
    let alice = good.add_actor("alice");
    let mallory = bad.add_actor("mallory");
    let rep = reports.add_actor("rep");
    let puma = RecordingUpstream::start().await;
    let proxy = start_proxy(&puma, &[&good, &bad, &reports]).await;

    // 3 forwarded (1 cache miss, 2 hits).
    for i in 0..3 {
        let body = alice.activity("Create", note(&alice, &format!("{i}")));
        assert_eq!(deliver(&proxy, &alice, &body).await.0, StatusCode::ACCEPTED);
    }
    // 2 tampered and 1 unsigned: no cache lookup.
    for opts in [
        SignOptions {
            tamper_body: true,
            ..SignOptions::default()
        },
        SignOptions {
            tamper_body: true,
            ..SignOptions::default()
        },
        SignOptions {
            omit_signature: true,
            ..SignOptions::default()
        },
    ] {
        let body = alice.activity("Create", note(&alice, "x"));
        assert_eq!(
            deliver_with(&proxy, &alice, &body, opts).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // 1 forged (a cache hit, then a failed verification).
    let forger = Arc::new(SigningKey::generate_rsa_2048().unwrap());
    let body = alice.activity("Create", note(&alice, "forged"));
    let opts = SignOptions {
        key: Some(forger),
        ..SignOptions::default()
    };
    assert_eq!(
        deliver_with(&proxy, &alice, &body, opts).await.0,
        StatusCode::UNAUTHORIZED
    );
    // 1 suspended (no lookup), 1 dropped report (a miss).
    let body = mallory.activity("Create", note(&mallory, "spam"));
    assert_eq!(
        deliver(&proxy, &mallory, &body).await.0,
        StatusCode::FORBIDDEN
    );
    let body = rep.activity("Flag", json!("http://mastodon.local/users/alice"));
    assert_eq!(deliver(&proxy, &rep, &body).await.0, StatusCode::ACCEPTED);
    // 1 pass-through: counted upstream, not as an inbox request.
    let (status, _, _) = send(
        proxy.proxy_addr,
        Method::GET,
        "/about",
        headers(&[("host", LOCAL)]),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let m = proxy.metrics().await;
    let expected = [
        ("forwarded", "forwarded", 3.0),
        ("rejected", "digest_mismatch", 2.0),
        ("rejected", "not_signed", 1.0),
        ("rejected", "bad_signature", 1.0),
        ("rejected", "suspended_key_host", 1.0),
        ("dropped", "reject_reports", 1.0),
    ];
    for (decision, reason, count) in expected {
        assert_eq!(requests(&m, decision, reason), count, "{decision}/{reason}");
    }
    assert_eq!(metric_sum(&m, "inboxguard_requests_total"), 9.0, "{m}");
    for (decision, count) in [("forwarded", 3.0), ("rejected", 5.0), ("dropped", 1.0)] {
        assert_eq!(
            labelled(
                &m,
                "inboxguard_request_duration_seconds_count",
                "decision",
                decision
            ),
            count,
            "{decision}"
        );
    }
    assert_eq!(
        metric_sum(&m, "inboxguard_request_duration_seconds_count"),
        9.0
    );
    let hits = labelled(&m, "inboxguard_key_cache_requests_total", "result", "hit");
    let misses = labelled(&m, "inboxguard_key_cache_requests_total", "result", "miss");
    assert_eq!((hits, misses), (3.0, 2.0));
    assert_eq!(
        misses as usize,
        good.key_fetches(&alice) + reports.key_fetches(&rep)
    );
    assert_eq!(bad.total_gets(), 0);
    assert_eq!(
        labelled(&m, "inboxguard_upstream_responses_total", "result", "2xx"),
        4.0
    );
    assert_eq!(metric_sum(&m, "inboxguard_upstream_responses_total"), 4.0);
    assert_eq!(
        metric_value(&m, "inboxguard_passthrough_requests_total"),
        Some(1.0)
    );
    assert_eq!(puma.count(), 4);
}

// ---------------------------------------------------------------------------------------
// 15. HTTP/2
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn h2c_deliveries_are_verified_and_forwarded() {
    let remote = RemoteInstance::start("good.example").await;
    let alice = remote.add_actor("alice");
    let puma = RecordingUpstream::start().await;
    let proxy = start_proxy(&puma, &[&remote]).await;

    let stream = TcpStream::connect(proxy.proxy_addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });

    let h2_request = |body: &[u8], opts: &SignOptions| {
        let mut signed = alice.sign_post_with(INBOX, LOCAL, body, opts);
        // HTTP/2 carries the host in :authority only.
        signed.headers.remove(header::HOST);
        let mut req = Request::new(Full::new(Bytes::from(signed.body)));
        *req.method_mut() = Method::POST;
        *req.version_mut() = Version::HTTP_2;
        *req.uri_mut() = format!("http://{LOCAL}{INBOX}").parse().unwrap();
        *req.headers_mut() = signed.headers;
        req
    };

    let body = alice.activity("Create", note(&alice, "over h2"));
    let resp = within(
        "h2 delivery",
        sender.send_request(h2_request(&body, &SignOptions::default())),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(resp.version(), Version::HTTP_2);

    // Same connection, another stream: a tampered body is refused there too.
    let tampered = alice.activity("Create", note(&alice, "tampered over h2"));
    let opts = SignOptions {
        tamper_body: true,
        ..SignOptions::default()
    };
    let resp = within(
        "h2 tampered",
        sender.send_request(h2_request(&tampered, &opts)),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let got = puma.only();
    assert_eq!(got.version, Version::HTTP_11);
    assert_eq!(got.header("host"), LOCAL);
    assert_eq!(got.target(), INBOX);
    assert_eq!(&got.body[..], &body[..]);
    assert_eq!(remote.key_fetches(&alice), 1);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "forwarded", "forwarded"), 1.0);
    assert_eq!(requests(&m, "rejected", "digest_mismatch"), 1.0);
}

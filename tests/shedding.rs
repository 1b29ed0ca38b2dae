//! Load shedding and the gate, end to end over real sockets: a sender over its fair share
//! gets 429 + Retry-After; while Mastodon's Sidekiq queue (a real `redis-server`) is behind,
//! low classes get 503 + Retry-After and Deletes and Follows still pass; a broken Redis sheds
//! nothing; Mastodon's own 503/429 pass back with its Retry-After; types Mastodon ignores and
//! activities it already took are answered 202 and not forwarded.

mod common;

use common::*;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn note(actor: &Actor, n: u32) -> serde_json::Value {
    json!({
        "id": format!("{}/statuses/{n}", actor.id),
        "type": "Note",
        "attributedTo": actor.id,
        "content": "hello",
    })
}

fn retry_after(h: &HeaderMap) -> u64 {
    h.get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in {h:?}"))
}

#[tokio::test]
async fn a_sender_over_its_share_gets_429_with_retry_after_before_any_key_fetch() {
    let busy = RemoteInstance::start("busy.example").await;
    let calm = RemoteInstance::start("calm.example").await;
    let (b, c) = (busy.add_actor("b"), calm.add_actor("c"));
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&busy)
        .remote(&calm)
        .toml("[rate_limits]\nper_second = 1\nburst = 3")
        .start()
        .await;
    proxy.wait_ready().await;

    for _ in 0..3 {
        let body = b.activity("Like", json!("https://mastodon.local/statuses/1"));
        assert_eq!(
            deliver_status(&proxy, &b, &body).await,
            StatusCode::ACCEPTED
        );
    }
    let body = b.activity("Like", json!("https://mastodon.local/statuses/1"));
    let (status, h, _) = deliver(&proxy, &b, &body).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=2).contains(&retry_after(&h)), "{h:?}");
    assert_eq!(puma.count(), 3, "a 429 is never forwarded");
    assert_eq!(busy.key_fetches(&b), 1);

    // Another server has its own share.
    let body = c.activity("Like", json!("https://mastodon.local/statuses/1"));
    assert_eq!(
        deliver_status(&proxy, &c, &body).await,
        StatusCode::ACCEPTED
    );
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "rate_limited"), 1.0);
    assert_eq!(
        metric_value(&m, "inboxguard_rate_limited_total{bucket=\"host\"}"),
        Some(1.0)
    );

    // The share refills: after the wait it asked for, the sender is served again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        deliver_status(&proxy, &b, &body).await,
        StatusCode::ACCEPTED
    );
}

/// A Sidekiq job as Mastodon's Puma pushes it, `enqueued_at` in Sidekiq 7's float seconds or
/// Sidekiq 8's integer milliseconds, `age` ago.
fn job(age: Duration, sidekiq8: bool) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    let at = now - age;
    let enqueued_at = if sidekiq8 {
        json!(at.as_millis() as u64)
    } else {
        json!(at.as_secs_f64())
    };
    json!({
        "class": "ActivityPub::ProcessingWorker",
        "queue": "ingress",
        "args": [1, "{}"],
        "jid": "0123456789abcdef01234567",
        "enqueued_at": enqueued_at,
    })
    .to_string()
}

#[tokio::test]
async fn sidekiq_backlog_sheds_low_classes_first_and_never_deletes_or_follows() {
    let Some(mut redis) = RedisServer::start("sidekiq_backlog_sheds_low_classes_first") else {
        return;
    };
    let remote = RemoteInstance::start("busy.example").await;
    let a = remote.add_actor("a");
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&remote)
        .toml(&format!(
            "[mastodon.sidekiq]\nredis_url = \"{}\"\npoll_interval_ms = 200\nstale_after_secs = 2\n\
             [backpressure]\nlow_above_secs = 30\nmiddle_above_secs = 120\nretry_after_secs = 45",
            redis.url()
        ))
        .start()
        .await;
    proxy.wait_ready().await;
    let like = |n: u32| {
        a.activity(
            "Like",
            json!(format!("https://mastodon.local/statuses/{n}")),
        )
    };

    // 60 s behind (Sidekiq 7 format): likes wait, posts, follows and deletes pass.
    redis.cmd::<i64>(&[
        "LPUSH",
        "queue:ingress",
        &job(Duration::from_secs(60), false),
    ]);
    wait_metric(&proxy, "inboxguard_sidekiq_queue_latency_seconds", |v| {
        v > 30.0
    })
    .await;
    let (status, h, _) = deliver(&proxy, &a, &like(1)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&h), 45);
    let create = a.activity("Create", note(&a, 1));
    assert_eq!(
        deliver_status(&proxy, &a, &create).await,
        StatusCode::ACCEPTED
    );
    let follow = a.activity("Follow", json!("https://mastodon.local/users/alice"));
    assert_eq!(
        deliver_status(&proxy, &a, &follow).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 2);

    // 200 s behind (Sidekiq 8 format, milliseconds): posts wait too; deletes still pass.
    redis.cmd::<i64>(&["DEL", "queue:ingress"]);
    redis.cmd::<i64>(&[
        "LPUSH",
        "queue:ingress",
        &job(Duration::from_secs(200), true),
    ]);
    wait_metric(&proxy, "inboxguard_sidekiq_queue_latency_seconds", |v| {
        v > 120.0
    })
    .await;
    let create = a.activity("Create", note(&a, 2));
    assert_eq!(
        deliver_status(&proxy, &a, &create).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let delete = a.activity("Delete", json!(format!("{}/statuses/1", a.id)));
    assert_eq!(
        deliver_status(&proxy, &a, &delete).await,
        StatusCode::ACCEPTED
    );
    let follow = a.activity("Follow", json!("https://mastodon.local/users/bob"));
    assert_eq!(
        deliver_status(&proxy, &a, &follow).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 4);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "backpressure"), 2.0);
    assert_eq!(
        metric_value(&m, "inboxguard_backpressure_shed_total{class=\"low\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&m, "inboxguard_backpressure_shed_total{class=\"middle\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&m, "inboxguard_backpressure_active{class=\"middle\"}"),
        Some(1.0)
    );

    // The queue drains: forwarding is back within about two seconds.
    redis.cmd::<i64>(&["DEL", "queue:ingress"]);
    within("forwarding restored", async {
        let mut n = 10;
        loop {
            n += 1;
            if deliver_status(&proxy, &a, &like(n)).await == StatusCode::ACCEPTED {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    // Redis goes away while the queue is behind: the reading goes stale and nothing is shed.
    redis.cmd::<i64>(&[
        "LPUSH",
        "queue:ingress",
        &job(Duration::from_secs(600), true),
    ]);
    wait_metric(&proxy, "inboxguard_sidekiq_queue_latency_seconds", |v| {
        v > 500.0
    })
    .await;
    redis.kill();
    wait_metric(&proxy, "inboxguard_sidekiq_signal_stale", |v| v == 1.0).await;
    let create = a.activity("Create", note(&a, 3));
    assert_eq!(
        deliver_status(&proxy, &a, &create).await,
        StatusCode::ACCEPTED,
        "a stale signal sheds nothing"
    );
}

#[tokio::test]
async fn mastodons_own_503_and_429_pass_back_with_their_retry_after() {
    let remote = RemoteInstance::start("a.example").await;
    let a = remote.add_actor("a");
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr()).remote(&remote).start().await;
    proxy.wait_ready().await;
    for status in [
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        puma.set_status(status);
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("120"));
        puma.set_response_headers(h);
        let body = a.activity("Create", note(&a, u32::from(status.as_u16())));
        let (got, h, _) = deliver(&proxy, &a, &body).await;
        assert_eq!(got, status);
        assert_eq!(retry_after(&h), 120);
    }
}

#[tokio::test]
async fn types_mastodon_ignores_are_acknowledged_after_verification_not_forwarded() {
    let remote = RemoteInstance::start("video.example").await;
    let v = remote.add_actor("v");
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr()).remote(&remote).start().await;
    proxy.wait_ready().await;

    for kind in ["View", "EmojiReact", "Read"] {
        let body = v.activity(kind, json!("https://mastodon.local/statuses/1"));
        assert_eq!(
            deliver_status(&proxy, &v, &body).await,
            StatusCode::ACCEPTED
        );
    }
    let chat = v.activity(
        "Create",
        json!({"id": format!("{}/chat/1", v.id), "type": "ChatMessage"}),
    );
    assert_eq!(
        deliver_status(&proxy, &v, &chat).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 0, "nothing Mastodon ignores was forwarded");
    // A forged View is still refused: the gate comes after verification.
    let body = v.activity("View", json!("https://mastodon.local/statuses/2"));
    let forged = v.sign_post_with(
        INBOX,
        LOCAL,
        &body,
        &SignOptions {
            tamper_body: true,
            ..SignOptions::default()
        },
    );
    let (status, _, _) = send(
        proxy.proxy_addr,
        http::Method::POST,
        INBOX,
        forged.headers,
        forged.body,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // What Mastodon acts on goes through.
    let like = v.activity("Like", json!("https://mastodon.local/statuses/1"));
    assert_eq!(
        deliver_status(&proxy, &v, &like).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 1);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "dropped", "unhandled_type"), 4.0);
}

#[tokio::test]
async fn an_activity_mastodon_already_took_is_not_forwarded_again() {
    let remote = RemoteInstance::start("gone.example").await;
    let relay_host = RemoteInstance::start("relay.example").await;
    let g = remote.add_actor("g");
    let relay = relay_host.add_actor("relay");
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&remote)
        .remote(&relay_host)
        .start()
        .await;
    proxy.wait_ready().await;

    // A Delete storm: the same activity many times.
    let delete = g.activity("Delete", json!(format!("{}/statuses/1", g.id)));
    for _ in 0..5 {
        assert_eq!(
            deliver_status(&proxy, &g, &delete).await,
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(puma.count(), 1);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "dropped", "duplicate"), 4.0);

    // A copy whose first delivery failed upstream is forwarded again.
    puma.fail();
    let update = g.activity("Update", note(&g, 7));
    assert_eq!(
        deliver_status(&proxy, &g, &update).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    puma.set_status(StatusCode::ACCEPTED);
    assert_eq!(
        deliver_status(&proxy, &g, &update).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 3);

    // Someone else cannot suppress g's activity by sending its id first.
    let like = g.activity("Like", json!("https://mastodon.local/statuses/9"));
    assert_eq!(
        deliver_status(&proxy, &relay, &like).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        deliver_status(&proxy, &g, &like).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 5, "the relay's copy did not count for g's");
}

#[tokio::test]
async fn a_rules_file_gives_a_relay_a_larger_share_by_suffix_and_a_reload_changes_it() {
    let relay = RemoteInstance::start("hub.relay.example").await;
    let small = RemoteInstance::start("small.example").await;
    let (r, s) = (relay.add_actor("relay"), small.add_actor("s"));
    let puma = RecordingUpstream::start().await;
    let rules = |burst: u32| {
        format!(
            "[[rate_limits]]\ndomain = \"relay.example\"\nper_second = 1\nburst = {burst}\n\
             comment = \"our relay\"\n"
        )
    };
    let proxy = Proxy::builder(puma.addr())
        .remote(&relay)
        .remote(&small)
        .blocklist_file("rules.toml", &rules(5))
        .toml("[rate_limits]\nper_second = 1\nburst = 2")
        .start()
        .await;
    proxy.wait_ready().await;
    let like = |actor: &Actor| actor.activity("Like", json!("https://mastodon.local/statuses/1"));

    // The default share: two at once.
    for expected in [202, 202, 429] {
        assert_eq!(
            deliver_status(&proxy, &s, &like(&s)).await.as_u16(),
            expected
        );
    }
    // The relay's subdomain gets the override: five at once.
    for expected in [202, 202, 202, 202, 202, 429] {
        assert_eq!(
            deliver_status(&proxy, &r, &like(&r)).await.as_u16(),
            expected
        );
    }

    // A smaller override applies as soon as the rules reload: the bucket is rebuilt.
    proxy.write_file("rules.toml", &rules(1));
    assert_eq!(admin_reload(&proxy).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for expected in [202, 429] {
        assert_eq!(
            deliver_status(&proxy, &r, &like(&r)).await.as_u16(),
            expected
        );
    }

    // A zero rate is refused with its line; the last good override stays.
    proxy.write_file(
        "rules.toml",
        "[[rate_limits]]\ndomain = \"relay.example\"\nper_second = 0\n",
    );
    let (status, text) = admin_reload(&proxy).await;
    assert_ne!(status, StatusCode::OK);
    assert!(text.contains("rules.toml:2: rate limit"), "{text}");
}

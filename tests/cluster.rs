//! Replicas sharing state through a real `redis-server`: two proxies in front of one
//! Mastodon keep one fair-share budget per sender, suppress each other's duplicates, fetch
//! a key once between them, and escalate (and lift) together on their summed evidence; when
//! Redis dies, both keep serving on their own state.

mod common;

use common::*;
use http::StatusCode;
use serde_json::json;
use std::time::Duration;

async fn replica(
    puma: &RecordingUpstream,
    remote: &RemoteInstance,
    redis: &RedisServer,
    extra: &str,
) -> Proxy {
    let proxy = Proxy::builder(puma.addr())
        .remote(remote)
        .toml(&format!(
            "[cluster]\nredis_url = \"{}\"\nkey_prefix = \"test:\"\ntimeout_ms = 200\n{extra}",
            redis.url()
        ))
        .start()
        .await;
    proxy.wait_ready().await;
    wait_metric(&proxy, "inboxguard_cluster_redis_up", |v| v == 1.0).await;
    proxy
}

/// Waits until Redis holds `key` (the replicas write shared state off the request path).
async fn wait_key(redis: &RedisServer, key: &str) {
    within(key, async {
        while redis.cmd::<i64>(&["EXISTS", key]) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn two_replicas_share_one_budget_one_dedupe_set_and_one_key_fetch() {
    let Some(mut redis) = RedisServer::start("cluster") else {
        return;
    };
    let remote = RemoteInstance::start("busy.example").await;
    let a = remote.add_actor("a");
    let puma = RecordingUpstream::start().await;
    let limits = "[rate_limits]\nper_second = 1\nburst = 4\n";
    let one = replica(&puma, &remote, &redis, limits).await;

    // The first replica fetches the key and shares it; the second uses the shared copy.
    let like = || a.activity("Like", json!("https://mastodon.local/statuses/1"));
    assert_eq!(
        deliver_status(&one, &a, &like()).await,
        StatusCode::ACCEPTED
    );
    wait_key(&redis, &format!("test:key:{}", a.key_id)).await;
    let two = replica(&puma, &remote, &redis, limits).await;
    assert_eq!(
        deliver_status(&two, &a, &like()).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        remote.key_fetches(&a),
        1,
        "the second replica used the shared key"
    );
    let m = two.metrics().await;
    assert_eq!(
        metric_value(&m, "inboxguard_cluster_key_cache_total{result=\"hit\"}"),
        Some(1.0)
    );

    // One budget across both: burst 4, two used above; two more, then 429 on either.
    assert_eq!(
        deliver_status(&one, &a, &like()).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        deliver_status(&two, &a, &like()).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        deliver_status(&one, &a, &like()).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        deliver_status(&two, &a, &like()).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(puma.count(), 4);

    // Dedupe across replicas: what one delivered, the other does not forward again (after
    // two seconds, the shared budget has room for both copies).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let delete = a.activity("Delete", json!(format!("{}/statuses/9", a.id)));
    assert_eq!(
        deliver_status(&one, &a, &delete).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 5);
    let id = serde_json::from_slice::<serde_json::Value>(&delete).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    wait_key(
        &redis,
        &format!("test:dedupe:{}", inboxguard::cluster::id_digest(&id)),
    )
    .await;
    assert_eq!(
        deliver_status(&two, &a, &delete).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        puma.count(),
        5,
        "the copy was not forwarded by the other replica"
    );
    let m = two.metrics().await;
    assert_eq!(requests(&m, "dropped", "duplicate"), 1.0);

    // Redis dies: both replicas keep serving, each on its own buckets and caches.
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let other = remote.add_actor("other");
    for proxy in [&one, &two] {
        let body = other.activity("Like", json!("https://mastodon.local/statuses/2"));
        assert_eq!(
            deliver_status(proxy, &other, &body).await,
            StatusCode::ACCEPTED
        );
        wait_metric(proxy, "inboxguard_cluster_redis_up", |v| v == 0.0).await;
    }
    assert_eq!(puma.count(), 7);
}

/// The domains `/admin/escalations` lists, sorted.
async fn escalated(proxy: &Proxy) -> Vec<String> {
    let (_, list) = get_json(proxy.admin_addr, "/admin/escalations").await;
    let mut domains: Vec<String> = list["escalated"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["domain"].as_str().unwrap_or_default().to_string())
        .collect();
    domains.sort();
    domains
}

/// Waits until the replica lists exactly `want` (escalation runs on its tick).
async fn wait_escalated(proxy: &Proxy, want: &[&str]) {
    within("escalations", async {
        while escalated(proxy).await != want {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// Evidence and escalations shared through Redis: each replica sees half the threshold, and
/// both escalate (a friendly federator, and a content rule's sender); both restarted without
/// any evidence file still refuse them; a lift on one is a lift on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_escalate_together_keep_it_across_restarts_and_lift_together() {
    let Some(mut redis) = RedisServer::start("cluster evidence") else {
        return;
    };
    let friend = RemoteInstance::start("friend.example").await;
    let spammy = RemoteInstance::start("spammy.example").await;
    let (fred, sam) = (friend.add_actor("fred"), spammy.add_actor("sam"));
    let puma = RecordingUpstream::start().await;
    let rules = "[[domain]]\ndomain = \"bad.example\"\nseverity = \"suspend\"\n\n\
                 [[content_rules]]\nname = \"likes\"\ntypes = [\"Like\"]\naction = \"report\"\n\
                 escalate = { threshold = 2, window = \"1d\", action = \"suspend\" }\n";
    let start = || async {
        let proxy = Proxy::builder(puma.addr())
            .remote(&friend)
            .remote(&spammy)
            .blocklist_file("rules.toml", rules)
            .toml(&format!(
                "[cluster]\nredis_url = \"{}\"\nkey_prefix = \"test:\"\ntimeout_ms = 500\n\n\
                 [friendly_federators]\npersist_interval_secs = 1\nthreshold = 2\naction = \"suspend\"\n",
                redis.url()
            ))
            .start()
            .await;
        proxy.wait_ready().await;
        wait_metric(&proxy, "inboxguard_cluster_redis_up", |v| v == 1.0).await;
        proxy
    };
    let note = |n: u32| {
        fred.activity(
            "Create",
            json!({"id": format!("{}/statuses/{n}", fred.id), "type": "Note", "content": "hi"}),
        )
    };
    let like = || sam.activity("Like", json!("https://mastodon.local/statuses/1"));

    let (one, two) = (start().await, start().await);
    // Half the threshold each.
    for proxy in [&one, &two] {
        let boost = fred.activity("Announce", json!("https://bad.example/notes/1"));
        assert_eq!(
            deliver_status(proxy, &fred, &boost).await,
            StatusCode::ACCEPTED
        );
        assert_eq!(
            deliver_status(proxy, &sam, &like()).await,
            StatusCode::ACCEPTED
        );
    }
    let both = &["friend.example", "spammy.example"];
    for proxy in [&one, &two] {
        wait_escalated(proxy, both).await;
        assert_eq!(
            deliver_status(proxy, &fred, &note(1)).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            deliver_status(proxy, &sam, &like()).await,
            StatusCode::FORBIDDEN
        );
    }

    // Both restarted, no evidence file: Redis has it all.
    one.shutdown().await.expect("clean shutdown");
    two.shutdown().await.expect("clean shutdown");
    let (one, two) = (start().await, start().await);
    for proxy in [&one, &two] {
        wait_escalated(proxy, both).await;
        assert_eq!(
            deliver_status(proxy, &fred, &note(2)).await,
            StatusCode::FORBIDDEN
        );
        let (_, report) = get_json(proxy.admin_addr, "/admin/friendly-federators").await;
        let friend_row = report["domains"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["domain"] == "friend.example"))
            .unwrap_or_else(|| panic!("{report}"));
        assert_eq!(
            friend_row["in_window"], 2,
            "both replicas' references: {report}"
        );
    }

    // A lift on one is a lift on both.
    let (status, _, body) = send(
        one.admin_addr,
        http::Method::POST,
        "/admin/escalations/friend.example/lift?by=alice&reason=ok",
        http::HeaderMap::new(),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let rest = &["spammy.example"];
    for proxy in [&one, &two] {
        wait_escalated(proxy, rest).await;
        assert_eq!(
            deliver_status(proxy, &fred, &note(3)).await,
            StatusCode::ACCEPTED
        );
        // Each replica's rule-change log calls it a lift.
        let (_, log) = get_json(proxy.admin_addr, "/admin/rule-changes?since=0").await;
        assert!(
            log.as_array()
                .is_some_and(|l| l.iter().any(|c| c["trigger"] == "lift")),
            "{log}"
        );
    }
    assert_eq!(
        puma.count(),
        4,
        "the likes before escalation and the notes after the lift"
    );

    // Redis dies: a replica escalates on its own evidence, and says the exchange failed.
    redis.kill();
    for n in 2..=3 {
        let boost = fred.activity("Announce", json!(format!("https://bad.example/notes/{n}")));
        assert_eq!(
            deliver_status(&one, &fred, &boost).await,
            StatusCode::ACCEPTED
        );
    }
    wait_escalated(&one, both).await;
    assert_eq!(
        deliver_status(&one, &fred, &note(4)).await,
        StatusCode::FORBIDDEN
    );
    let m = one.metrics().await;
    assert!(
        metric_value(
            &m,
            "inboxguard_cluster_redis_errors_total{op=\"evidence_read\"}"
        )
        .is_some_and(|n| n > 0.0),
        "{m}"
    );
}

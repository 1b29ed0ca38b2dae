//! Allowlist mode, exception lists and actor rules end to end: the whole proxy in process,
//! rule files in its tempdir, real signed deliveries, and what Puma, the senders' key servers
//! and the metrics saw.

mod common;

use common::*;
use http::StatusCode;
use serde_json::json;

/// Every `inboxguard_rules_loaded` value of `severity`, one per source.
fn loaded(metrics: &str, severity: &str) -> Vec<f64> {
    let label = format!("severity=\"{severity}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("inboxguard_rules_loaded{") && l.contains(&label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
        .filter(|&v: &f64| v > 0.0)
        .collect()
}

/// `[[blocklists]]` for `path` with extra keys, as raw TOML.
fn source_toml(path: &std::path::Path, extra: &str) -> String {
    let quoted = toml::Value::String(path.display().to_string()).to_string();
    format!("[[blocklists]]\npath = {quoted}\n{extra}\n")
}

#[tokio::test]
async fn allowlist_mode_forwards_allowed_domains_and_refuses_the_rest_before_any_key_fetch() {
    let friend = RemoteInstance::start("friend.example").await;
    let stranger = RemoteInstance::start("stranger.example").await;
    let blocked = RemoteInstance::start("bad.friend.example").await;
    let (fay, sam, bob) = (
        friend.add_actor("fay"),
        stranger.add_actor("sam"),
        blocked.add_actor("bob"),
    );
    let puma = RecordingUpstream::start().await;
    let builder = Proxy::builder(puma.addr())
        .remote(&friend)
        .remote(&stranger)
        .remote(&blocked);
    let allows = builder.write_file(
        "domain_allows.csv",
        "#domain\nfriend.example\nbad.friend.example\n",
    );
    let builder = builder.blocklist_file("blocks.txt", "bad.friend.example\n");
    let proxy = builder
        .toml(&source_toml(&allows, "kind = \"allow\""))
        .toml("[policy]\nmode = \"allowlist\"")
        .start()
        .await;
    proxy.wait_ready().await;

    // An allowed domain: forwarded byte for byte.
    let body = fay.activity(
        "Create",
        json!("http://friend.example/users/fay/statuses/1"),
    );
    assert_eq!(
        deliver_status(&proxy, &fay, &body).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 1);
    assert_eq!(&puma.only().body[..], &body[..]);

    // A domain no allow entry covers: 403 before its key is fetched.
    let body = sam.activity(
        "Create",
        json!("http://stranger.example/users/sam/statuses/1"),
    );
    let (status, _, answer) = within(
        "stranger delivery",
        proxy.post_signed(&sam, INBOX, LOCAL, &body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        String::from_utf8_lossy(&answer).contains("federates only with allowed domains"),
        "{answer:?}"
    );
    assert_eq!(
        stranger.key_fetches(&sam),
        0,
        "refused before any key fetch"
    );

    // Allowed by its own entry, but blocked: blocks still apply.
    let body = bob.activity(
        "Create",
        json!("http://bad.friend.example/users/bob/statuses/1"),
    );
    assert_eq!(
        deliver_status(&proxy, &bob, &body).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(blocked.key_fetches(&bob), 0);

    // Relayed by an allowed server, but the actor's domain is not allowed.
    let relayed = serde_json::to_vec(&json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": "http://stranger.example/users/sam/activities/relayed",
        "type": "Create",
        "actor": "http://stranger.example/users/sam",
        "object": "http://stranger.example/users/sam/statuses/2",
    }))
    .expect("json");
    assert_eq!(
        deliver_status(&proxy, &fay, &relayed).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        puma.count(),
        1,
        "only the allowed delivery reached Mastodon"
    );

    let metrics = proxy.metrics().await;
    assert_eq!(requests(&metrics, "rejected", "not_allowed"), 2.0);
    assert_eq!(requests(&metrics, "rejected", "suspended_key_host"), 1.0);
    assert_eq!(requests(&metrics, "forwarded", "forwarded"), 1.0);
    assert_eq!(
        loaded(&metrics, "allow"),
        [2.0],
        "allow entries have their gauge"
    );
}

/// Mastodon's `DomainAllow.rule_for` matches the normalised host itself: an allow entry for
/// a domain does not let its sub-domains deliver in limited federation mode.
#[tokio::test]
async fn mastodon_allow_entries_match_the_exact_host_only() {
    let friend = RemoteInstance::start("friend.example").await;
    let sub = RemoteInstance::start("sub.friend.example").await;
    let (fay, sid) = (friend.add_actor("fay"), sub.add_actor("sid"));
    let puma = RecordingUpstream::start().await;
    let builder = Proxy::builder(puma.addr()).remote(&friend).remote(&sub);
    // Upper case and a trailing dot: the entry is normalised like the hosts it is matched to.
    let allows = builder.write_file("domain_allows.csv", "#domain\nFriend.Example.\n");
    let proxy = builder
        .toml(&source_toml(&allows, "kind = \"allow\""))
        .toml("[policy]\nmode = \"allowlist\"")
        .start()
        .await;
    proxy.wait_ready().await;

    let body = sid.activity(
        "Create",
        json!("http://sub.friend.example/users/sid/statuses/1"),
    );
    assert_eq!(
        deliver_status(&proxy, &sid, &body).await,
        StatusCode::FORBIDDEN,
        "a sub-domain of an allowed domain is not allowed"
    );
    assert_eq!(sub.key_fetches(&sid), 0, "refused before any key fetch");

    // The control: the allowed host itself delivers.
    let body = fay.activity(
        "Create",
        json!("http://friend.example/users/fay/statuses/1"),
    );
    assert_eq!(
        deliver_status(&proxy, &fay, &body).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 1);
    assert_eq!(&puma.only().body[..], &body[..]);
    let metrics = proxy.metrics().await;
    assert_eq!(requests(&metrics, "rejected", "not_allowed"), 1.0);
}

#[tokio::test]
async fn actor_rules_refuse_the_actor_and_the_author_and_dry_run_ones_forward() {
    let elsewhere = RemoteInstance::start("elsewhere.example").await;
    let good = RemoteInstance::start("good.example").await;
    let (mallory, eve, pat, bea, gil) = (
        elsewhere.add_actor("Mallory"),
        elsewhere.add_actor("eve"),
        elsewhere.add_actor("pat"),
        elsewhere.add_actor("bea"),
        good.add_actor("gil"),
    );
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&elsewhere)
        .remote(&good)
        .blocklist_file(
            "rules.toml",
            "[[actor]]\n\
             actor = \"@mallory@elsewhere.example\"\n\
             comment = \"harassment\"\n\n\
             [[actor]]\n\
             actor = \"https://elsewhere.example/users/eve\"\n\n\
             [[actor]]\n\
             actor = \"@pat@elsewhere.example\"\n\
             dry_run = true\n",
        )
        .start()
        .await;
    proxy.wait_ready().await;

    // By handle (the URI's username differs in case) and by URI (scheme ignored).
    for actor in [&mallory, &eve] {
        let body = actor.activity("Create", json!({"type": "Note", "content": "hi"}));
        let (status, _, answer) = within(
            "suspended actor",
            proxy.post_signed(actor, INBOX, LOCAL, &body),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            String::from_utf8_lossy(&answer).contains("the account is suspended"),
            "{answer:?}"
        );
    }
    assert_eq!(puma.count(), 0);

    // The author of a boosted object.
    let boost = gil.activity(
        "Announce",
        json!({
            "id": "http://elsewhere.example/users/Mallory/statuses/1",
            "type": "Note",
            "attributedTo": "http://elsewhere.example/users/Mallory",
        }),
    );
    assert_eq!(
        deliver_status(&proxy, &gil, &boost).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(puma.count(), 0);

    // Accounts without a rule pass, on the same domain and as authors.
    let fine = gil.activity(
        "Announce",
        json!({
            "id": "http://elsewhere.example/users/bea/statuses/1",
            "type": "Note",
            "attributedTo": "http://elsewhere.example/users/bea",
        }),
    );
    assert_eq!(
        deliver_status(&proxy, &gil, &fine).await,
        StatusCode::ACCEPTED
    );
    let body = bea.activity("Create", json!({"type": "Note", "content": "hi"}));
    assert_eq!(
        deliver_status(&proxy, &bea, &body).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 2);

    // A dry-run actor rule: forwarded, counted as what it would have been.
    let body = pat.activity("Create", json!({"type": "Note", "content": "hi"}));
    assert_eq!(
        deliver_status(&proxy, &pat, &body).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 3);
    assert_eq!(&puma.requests()[2].body[..], &body[..]);

    let metrics = proxy.metrics().await;
    assert_eq!(requests(&metrics, "rejected", "actor_suspended"), 3.0);
    assert_eq!(requests(&metrics, "would_reject", "actor_suspended"), 1.0);
    assert_eq!(requests(&metrics, "forwarded", "forwarded"), 2.0);
    assert_eq!(
        loaded(&metrics, "actor_suspend"),
        [3.0],
        "actor rules have their gauge"
    );
}

#[tokio::test]
async fn an_exception_list_lets_a_sub_domain_of_a_suspended_domain_through() {
    let carved = RemoteInstance::start("ok.bad.example").await;
    let rest = RemoteInstance::start("bad.example").await;
    let (olga, bob) = (carved.add_actor("olga"), rest.add_actor("bob"));
    let puma = RecordingUpstream::start().await;
    let builder = Proxy::builder(puma.addr()).remote(&carved).remote(&rest);
    let exceptions = builder.write_file("exceptions.txt", "ok.bad.example\n");
    let proxy = builder
        .blocklist_file("blocks.txt", "bad.example\n")
        .toml(&source_toml(&exceptions, "exclude = true"))
        .start()
        .await;
    proxy.wait_ready().await;

    let body = olga.activity(
        "Create",
        json!("http://ok.bad.example/users/olga/statuses/1"),
    );
    assert_eq!(
        deliver_status(&proxy, &olga, &body).await,
        StatusCode::ACCEPTED
    );
    let body = bob.activity("Create", json!("http://bad.example/users/bob/statuses/1"));
    assert_eq!(
        deliver_status(&proxy, &bob, &body).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(puma.count(), 1);
}

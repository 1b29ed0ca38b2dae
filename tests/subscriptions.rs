//! Remote rule sources against list servers on 127.0.0.1: a subscription's first load, 304,
//! change, outages (error status, refused connection, malformed and oversized bodies), a
//! restart during an outage served from the disk cache, Mastodon's admin API over two pages,
//! `check`/`explain` reading the cache offline, and a subscribed domain refused by the proxy.

// Helpers outside #[test] fns panic on a broken environment too, which is the right failure.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use inboxguard::config::{Config, MastodonApiConfig, SubscriptionConfig, SubscriptionFormat};
use inboxguard::subscriptions::{
    load_cached, Cache, FetchError, Getter, MastodonPull, Outcome, RefreshError,
};
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const LM1: &str = "Wed, 01 May 2024 10:00:00 GMT";
const LM2: &str = "Thu, 02 May 2024 10:00:00 GMT";

// ---------------------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn first_load_not_modified_and_change() {
    let server = ListServer::start().await;
    server.serve_list("a.example\nb.example\n", "\"v1\"", LM1);
    let state = tempfile::tempdir().unwrap();
    let url = server.url("/blocks.txt");
    let (sub, rules, metrics) = subscription(sub_config(&url), state.path());
    assert!(!sub.has_copy());

    let outcome = within("first fetch", sub.refresh()).await.unwrap();
    assert_eq!(outcome, Outcome::Updated { rules: 2 });
    assert!(suspended(&rules, "a.example") && suspended(&rules, "sub.b.example"));
    let first = server.last();
    assert!(first.header("if-none-match").is_none() && first.header("if-modified-since").is_none());
    let loaded = rules.current().load();
    assert_eq!(&*loaded.get("a.example").unwrap().source, url.as_str());
    let in_force = rules.memory_sources();
    assert!(in_force.len() == 1 && in_force[0].subscribed && !in_force[0].exclude);
    assert_eq!(
        metrics
            .rules_loaded
            .with_label_values(&[url.as_str(), "suspend"])
            .get(),
        2
    );
    assert!(
        metrics
            .subscription_last_success_timestamp_seconds
            .with_label_values(&[url.as_str()])
            .get()
            > 0
    );

    // Unchanged upstream: the validators go back and 304 keeps the list without a reload.
    let generation = rules.generation();
    let outcome = within("conditional fetch", sub.refresh()).await.unwrap();
    assert_eq!(outcome, Outcome::NotModified);
    let second = server.last();
    assert_eq!(second.header("if-none-match"), Some("\"v1\""));
    assert_eq!(second.header("if-modified-since"), Some(LM1));
    assert_eq!(rules.generation(), generation);
    assert!(suspended(&rules, "a.example"));

    // A new version replaces the list whole.
    server.serve_list("b.example\nc.example\n", "\"v2\"", LM2);
    let outcome = within("changed fetch", sub.refresh()).await.unwrap();
    assert_eq!(outcome, Outcome::Updated { rules: 2 });
    assert!(!suspended(&rules, "a.example"));
    assert!(suspended(&rules, "b.example") && suspended(&rules, "c.example"));
    let outcome = within("conditional fetch", sub.refresh()).await.unwrap();
    assert_eq!(outcome, Outcome::NotModified);
    assert_eq!(server.last().header("if-none-match"), Some("\"v2\""));
    assert_eq!(server.last().header("if-modified-since"), Some(LM2));

    // A server that ignores validators and sends the same body: no reload.
    server.answer(|_| reply(200, &[], "b.example\nc.example\n"));
    let generation = rules.generation();
    assert_eq!(
        within("same body", sub.refresh()).await.unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(rules.generation(), generation);

    assert_eq!(fetches(&metrics, &url, "updated"), 2);
    assert_eq!(fetches(&metrics, &url, "not_modified"), 2);
    assert_eq!(fetches(&metrics, &url, "unchanged"), 1);
    assert!(metrics
        .render()
        .contains("inboxguard_subscription_fetches_total{result=\"updated\","));
}

#[tokio::test]
async fn outages_keep_the_last_good_list() {
    let mut server = ListServer::start().await;
    server.serve_list("kept.example\n", "\"v1\"", LM1);
    let state = tempfile::tempdir().unwrap();
    let url = server.url("/blocks.csv");
    let mut config = sub_config(&url);
    config.format = SubscriptionFormat::MastodonCsv;
    config.max_bytes = 1024;
    let (sub, rules, metrics) = subscription(config, state.path());

    // The first answer is not Mastodon CSV although the format says so: nothing in force.
    assert!(matches!(
        within("fetch", sub.refresh()).await,
        Err(RefreshError::Malformed(_))
    ));
    assert!(!sub.has_copy());
    server.answer(|_| {
        reply(
            200,
            &[("etag", "\"csv1\"")],
            "#domain,#severity\nkept.example,suspend\n",
        )
    });
    within("fetch", sub.refresh()).await.unwrap();
    assert!(suspended(&rules, "kept.example"));

    let outages: Vec<(&str, Response<Full<Bytes>>)> = vec![
        ("http_status", reply(500, &[], "oops")),
        ("http_status", reply(404, &[], "")),
        (
            "malformed",
            reply(200, &[], "#domain,#severity\nnew.example,banish\n"),
        ),
        ("too_large", reply(200, &[], vec![b'#'; 2048])),
        ("redirect", reply(302, &[], "")),
    ];
    for (reason, response) in outages {
        let response = Arc::new(Mutex::new(Some(response)));
        server.answer(move |_| {
            response
                .lock()
                .unwrap()
                .take()
                .unwrap_or_else(|| reply(500, &[], ""))
        });
        let e = within("failing fetch", sub.refresh()).await.unwrap_err();
        assert_eq!(e.reason(), reason, "{e}");
        assert!(suspended(&rules, "kept.example"), "after {reason}");
        assert!(!suspended(&rules, "new.example"));
    }
    assert_eq!(fetches(&metrics, &url, "http_status"), 2);
    assert_eq!(fetches(&metrics, &url, "malformed"), 2);
    assert_eq!(fetches(&metrics, &url, "too_large"), 1);
    assert_eq!(fetches(&metrics, &url, "redirect"), 1);

    // The server goes away entirely: connection refused.
    server.task.abort();
    let _ = (&mut server.task).await;
    let e = within("refused fetch", sub.refresh()).await.unwrap_err();
    assert!(
        matches!(e, RefreshError::Fetch(FetchError::Connect { .. })),
        "{e}"
    );
    assert!(suspended(&rules, "kept.example"));
    assert_eq!(fetches(&metrics, &url, "connect"), 1);
}

#[tokio::test]
async fn redirects_are_followed() {
    let server = ListServer::start().await;
    server.answer(move |seen| match seen.target.as_str() {
        "/old.txt" => reply(301, &[("location", "/new.txt")], ""),
        "/new.txt" => reply(200, &[], "moved.example\n"),
        _ => reply(404, &[], ""),
    });
    let state = tempfile::tempdir().unwrap();
    let (sub, rules, _) = subscription(sub_config(&server.url("/old.txt")), state.path());
    within("fetch", sub.refresh()).await.unwrap();
    assert!(suspended(&rules, "moved.example"));
    assert_eq!(server.last().target, "/new.txt");
    // Rules keep the configured URL as their source, not the redirect target.
    assert_eq!(
        &*rules.current().load().get("moved.example").unwrap().source,
        server.url("/old.txt").as_str()
    );
}

/// A shared list must never speak inboxguard's TOML rules format, whatever its URL ends in:
/// exceptions, allow entries, actor rules and friendly-federator settings are the moderators'
/// own. With `format = "auto"` a `.toml` URL is still read as a plain list (so TOML is
/// malformed and changes nothing), and a list that is a valid plain list loads as one.
#[tokio::test]
async fn auto_never_reads_a_subscription_as_a_toml_rules_file() {
    let server = ListServer::start().await;
    let injected =
        "[[exclude]]\ndomain = \"bad.example\"\n\n[[allow]]\ndomain = \"evil.example\"\n\n\
                    [[actor]]\nactor = \"@mod@local.example\"\n\n\
                    [friendly_federators]\nannounce = false\n";
    server.answer(move |_| reply(200, &[], injected));
    let state = tempfile::tempdir().unwrap();
    let url = server.url("/rules.toml");
    let (sub, rules, metrics) = subscription(sub_config(&url), state.path());
    let e = within("fetch", sub.refresh()).await.unwrap_err();
    assert_eq!(e.reason(), "malformed", "{e}");
    let loaded = rules.current().load();
    assert!(loaded.exception_for("bad.example").is_none());
    assert!(loaded.allow_for("evil.example").is_none());
    assert!(loaded.friendly_federators().is_none());
    assert_eq!(loaded.iter_actors().count(), 0);
    assert!(rules.memory_sources().is_empty());
    assert_eq!(fetches(&metrics, &url, "malformed"), 1);

    // The same URL serving a plain list: read as one.
    server.answer(|_| reply(200, &[], "listed.example\n"));
    within("fetch", sub.refresh()).await.unwrap();
    assert!(suspended(&rules, "listed.example"));
    assert!(rules.current().load().friendly_federators().is_none());
}

#[tokio::test]
async fn restart_during_an_outage_uses_the_disk_cache() {
    let server = ListServer::start().await;
    server.serve_list("cached.example\n", "\"v1\"", LM1);
    let state = tempfile::tempdir().unwrap();
    let url = server.url("/blocks.txt");
    {
        let (sub, _, _) = subscription(sub_config(&url), state.path());
        within("fetch", sub.refresh()).await.unwrap();
    }

    // "Restart": new rules, new subscription, and the list host is down.
    server.answer(|_| reply(503, &[], ""));
    let (sub, rules, metrics) = subscription(sub_config(&url), state.path());
    assert!(!suspended(&rules, "cached.example"));
    assert!(within("cache load", sub.load_cache()).await);
    assert!(sub.has_copy());
    assert!(
        suspended(&rules, "cached.example"),
        "in force without any fetch"
    );
    let before = server.requests().len();
    assert!(within("fetch", sub.refresh()).await.is_err());
    assert!(suspended(&rules, "cached.example"));
    // The cached validators make even the first request after a restart conditional.
    assert_eq!(server.requests().len(), before + 1);
    assert_eq!(server.last().header("if-none-match"), Some("\"v1\""));
    assert_eq!(fetches(&metrics, &url, "http_status"), 1);

    // A corrupt cache file is ignored, logged and counted.
    let path = Cache::new(state.path()).path_of(&url);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let (sub, rules, metrics) = subscription(sub_config(&url), state.path());
    assert!(!within("cache load", sub.load_cache()).await);
    assert!(!suspended(&rules, "cached.example"));
    assert_eq!(
        metrics
            .subscription_cache_errors_total
            .with_label_values(&[url.as_str(), "read"])
            .get(),
        1
    );
}

// ---------------------------------------------------------------------------------------
// Mastodon's admin API
// ---------------------------------------------------------------------------------------

const TOKEN: &str = "test-admin-token-0123456789";

fn block(id: u32, domain: &str, severity: &str) -> serde_json::Value {
    json!({
        "id": id.to_string(), "domain": domain, "digest": "", "created_at": "2024-05-01T00:00:00.000Z",
        "severity": severity, "reject_media": false, "reject_reports": severity == "noop",
        "private_comment": null, "public_comment": format!("{domain} comment"), "obfuscate": false
    })
}

/// Serves domain blocks over two pages (as Mastodon: `next` only after a full page) and the
/// domain allows on one; anything without the bearer token gets 401.
fn serve_mastodon(server: &ListServer, second_page_next: Option<String>) {
    let addr = server.addr;
    server.answer(move |seen| {
        if seen.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return reply(401, &[], r#"{"error":"The access token is invalid"}"#);
        }
        let base = format!("http://{addr}/api/v1/admin/domain_blocks");
        match seen.target.as_str() {
            "/api/v1/admin/domain_blocks?limit=500" => {
                let page = json!([block(9, "one.example", "suspend"), block(8, "two.example", "silence")]);
                let link = format!(
                    "<{base}?limit=500&max_id=8>; rel=\"next\", <{base}?limit=500&min_id=9>; rel=\"prev\""
                );
                reply(200, &[("link", link.as_str()), ("content-type", "application/json")], page.to_string())
            }
            "/api/v1/admin/domain_blocks?limit=500&max_id=8" => {
                let page = json!([block(3, "three.example", "suspend"), block(2, "quiet.example", "noop")]);
                match &second_page_next {
                    Some(next) => {
                        let link = format!("<{next}>; rel=\"next\"");
                        reply(200, &[("link", link.as_str())], page.to_string())
                    }
                    None => reply(200, &[], page.to_string()),
                }
            }
            "/api/v1/admin/domain_allows?limit=500" => reply(
                200,
                &[],
                json!([{"id": "1", "domain": "friends.example", "created_at": "2024-01-01T00:00:00.000Z"}])
                    .to_string(),
            ),
            _ => reply(404, &[], ""),
        }
    });
}

fn mastodon_config(server: &ListServer, token_file: &Path) -> MastodonApiConfig {
    let text = format!(
        "url = {:?}\ntoken_file = {:?}\ndomain_allows = true\nallow_http = true\nallow_private_addresses = true\ntimeout_secs = 5\n",
        server.url("/"),
        token_file
    );
    toml::from_str(&text).unwrap()
}

#[tokio::test]
async fn mastodon_admin_api_two_pages() {
    let server = ListServer::start().await;
    serve_mastodon(&server, None);
    let state = tempfile::tempdir().unwrap();
    let token_file = state.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let (rules, metrics) = fresh_rules();
    let getter = Arc::new(Getter::new("inboxguard-test").unwrap());
    let parts = shared(state.path(), getter.clone(), &rules, &metrics);
    let pull = MastodonPull::new(mastodon_config(&server, &token_file), &parts).unwrap();
    let label = pull.blocks_label().to_string();
    assert_eq!(label, server.url("/api/v1/admin/domain_blocks"));

    assert!(within("pull", pull.refresh()).await);
    let requests = server.requests();
    assert_eq!(
        requests
            .iter()
            .map(|r| r.target.as_str())
            .collect::<Vec<_>>(),
        [
            "/api/v1/admin/domain_blocks?limit=500",
            "/api/v1/admin/domain_blocks?limit=500&max_id=8",
            "/api/v1/admin/domain_allows?limit=500",
        ]
    );
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    let snapshot = rules.current().load();
    assert!(suspended(&rules, "one.example") && suspended(&rules, "three.example"));
    assert_eq!(
        snapshot.get("two.example").unwrap().severity.as_str(),
        "silence"
    );
    let quiet = snapshot.get("quiet.example").unwrap();
    assert!(quiet.reject_reports);
    assert_eq!(&*quiet.source, label.as_str());
    assert_eq!(quiet.line, 4, "line = position in the whole list");
    assert_eq!(
        quiet.public_comment.as_deref(),
        Some("quiet.example comment")
    );
    let allows = pull.domain_allows().unwrap();
    assert_eq!(allows.domains.len(), 1);
    assert_eq!(allows.domains[0].domain, "friends.example");
    // The allows are a rule source of allow entries (they decide in allowlist mode), and
    // Mastodon's own block list is not a subscription (the threshold never holds it back).
    let snapshot = rules.current().load();
    let allow = snapshot.allow_for("friends.example").unwrap();
    assert_eq!(&*allow.source, pull.allows_label());
    assert!(snapshot.allow_for("www.friends.example").is_none());
    assert!(snapshot.allow_for("quiet.example").is_none());
    let in_force = rules.memory_sources();
    assert!(in_force.iter().all(|s| !s.subscribed && !s.exclude));
    assert_eq!(fetches(&metrics, &label, "updated"), 1);
    assert_eq!(fetches(&metrics, pull.allows_label(), "updated"), 1);

    // Unchanged on the next pull: no reload.
    let generation = rules.generation();
    assert!(within("pull", pull.refresh()).await);
    assert_eq!(rules.generation(), generation);
    assert_eq!(fetches(&metrics, &label, "unchanged"), 1);

    // A revoked token: 401, the pulled rules stay.
    std::fs::write(&token_file, "revoked-token-xxxxxxxx\n").unwrap();
    assert!(!within("pull", pull.refresh()).await);
    assert_eq!(fetches(&metrics, &label, "http_status"), 1);
    assert!(suspended(&rules, "three.example"));
    std::fs::write(&token_file, TOKEN).unwrap();

    // A next link to another origin would carry the token there: refused.
    serve_mastodon(&server, Some("http://elsewhere.example/steal".into()));
    assert!(!within("pull", pull.refresh()).await);
    assert_eq!(fetches(&metrics, &label, "cross_origin"), 1);
    assert!(suspended(&rules, "one.example"));

    // Restart while Mastodon is down: the cached pull is in force without any request.
    server.answer(|_| reply(502, &[], ""));
    let (rules, metrics) = fresh_rules();
    let parts = shared(state.path(), getter, &rules, &metrics);
    let pull = MastodonPull::new(mastodon_config(&server, &token_file), &parts).unwrap();
    within("cache load", pull.load_cache()).await;
    assert!(pull.has_copy());
    assert!(suspended(&rules, "one.example") && suspended(&rules, "three.example"));
    assert_eq!(
        pull.domain_allows().unwrap().domains[0].domain,
        "friends.example"
    );
}

#[test]
fn mastodon_pull_needs_a_readable_token() {
    let dir = tempfile::tempdir().unwrap();
    let config: MastodonApiConfig = toml::from_str(&format!(
        "url = \"https://mastodon.example\"\ntoken_file = {:?}\n",
        dir.path().join("missing")
    ))
    .unwrap();
    let (rules, metrics) = fresh_rules();
    let getter = Arc::new(Getter::new("t").unwrap());
    let e = MastodonPull::new(config, &shared(dir.path(), getter, &rules, &metrics))
        .err()
        .unwrap();
    assert!(e.contains("missing") && e.contains("cannot read"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Config, check and explain
// ---------------------------------------------------------------------------------------

const BASE: &str =
    "[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n";

#[test]
fn config_validation() {
    let load = |extra: &str| Config::from_toml(&format!("{BASE}{extra}"), Path::new("t.toml"));
    let c = load("[[subscriptions]]\nurl = \"https://lists.example/b.csv\"\n").unwrap();
    let s = &c.subscriptions[0];
    assert_eq!(
        (s.refresh_secs, s.timeout_secs, s.max_bytes),
        (3600, 30, 16 * 1024 * 1024)
    );
    assert_eq!(
        (s.format, s.priority, s.dry_run),
        (SubscriptionFormat::Auto, 0, false)
    );
    assert_eq!(c.state.dir, Path::new("/var/lib/inboxguard"));
    for (extra, key) in [
        ("[[subscriptions]]\nurl = \"http://lists.example/b\"\n", "subscriptions.url"),
        ("[[subscriptions]]\nurl = \"ftp://lists.example/b\"\nallow_http = true\n", "subscriptions.url"),
        ("[[subscriptions]]\nurl = \"https://u:p@lists.example/b\"\n", "subscriptions.url"),
        (
            "[[subscriptions]]\nurl = \"https://l.example/b\"\n[[subscriptions]]\nurl = \"https://l.example/b\"\n",
            "subscriptions.url",
        ),
        ("[[subscriptions]]\nurl = \"https://l.example/b\"\nmax_bytes = 0\n", "subscriptions.max_bytes"),
        ("[[subscriptions]]\nurl = \"https://l.example/b\"\nrefresh_secs = 0\n", "subscriptions.refresh_secs"),
        ("[mastodon]\nurl = \"https://m.example/admin\"\ntoken_file = \"t\"\n", "mastodon.url"),
        (
            "[mastodon]\nurl = \"https://m.example\"\ntoken_file = \"t\"\ndomain_blocks = false\n",
            "mastodon.domain_blocks",
        ),
        ("[mastodon]\nurl = \"https://m.example\"\ntoken_file = \"t\"\nmax_pages = 0\n", "mastodon.max_pages"),
    ] {
        let e = load(extra).expect_err(extra);
        assert!(e.to_string().contains(key), "{extra}: {e}");
    }
    assert!(load("[[subscriptions]]\nurl = \"https://l.example/b\"\nformat = \"xml\"\n").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_explain_read_the_cache_offline() {
    let server = ListServer::start().await;
    server.answer(|_| {
        reply(
            200,
            &[],
            r#"[{"domain": "listed.example", "severity": "silence", "comment": "from the list"}]"#,
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let url = server.url("/blocks.json");
    let config_text = format!(
        "{BASE}[state]\ndir = {:?}\n[[subscriptions]]\nurl = {url:?}\nformat = \"json\"\nallow_http = true\nallow_private_addresses = true\n[[subscriptions]]\nurl = \"https://never.example/list.txt\"\n",
        dir.path()
    );
    let config_path = dir.path().join("inboxguard.toml");
    std::fs::write(&config_path, &config_text).unwrap();
    let config = Config::load(&config_path).unwrap();
    assert_eq!(load_cached(&config).missing.len(), 2);
    let (sub, _, _) = subscription(config.subscriptions[0].clone(), &config.state.dir);
    within("fetch", sub.refresh()).await.unwrap();
    drop(server);

    let cached = load_cached(&config);
    assert_eq!(cached.sources.len(), 1);
    assert_eq!(cached.sources[0].label, url);
    assert_eq!(cached.missing.len(), 1);
    assert!(cached.missing[0].starts_with("https://never.example/list.txt: no cached copy"));

    let bin = env!("CARGO_BIN_EXE_inboxguard");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let config_arg = config_path.to_str().unwrap();
    let check = run(&["check", "--config", config_arg]);
    assert!(
        check.contains(&format!("{url}: suspend=0 silence=1 noop=0")),
        "{check}"
    );
    assert!(
        check.contains("https://never.example/list.txt: no cached copy yet"),
        "{check}"
    );
    let explain = run(&["explain", "--config", config_arg, "sub.listed.example"]);
    assert!(
        explain.contains(&url) && explain.contains("from the list"),
        "{explain}"
    );
    assert!(explain.contains("silence"), "{explain}");
}

// ---------------------------------------------------------------------------------------
// End to end through the proxy
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn subscribed_domain_is_refused_by_the_proxy() {
    let list = ListServer::start().await;
    list.answer(|_| {
        reply(
            200,
            &[("etag", "\"1\"")],
            "#domain,#severity\nbad.example,suspend\n",
        )
    });
    let bad = RemoteInstance::start("bad.example").await;
    let good = RemoteInstance::start("good.example").await;
    let (mallory, alice) = (bad.add_actor("mallory"), good.add_actor("alice"));
    let puma = RecordingUpstream::start().await;
    let state = tempfile::tempdir().unwrap();
    let url = list.url("/shared-blocklist.csv");
    let toml = format!(
        "[state]\ndir = {:?}\n\n[[subscriptions]]\nurl = {url:?}\nallow_http = true\nallow_private_addresses = true\n",
        state.path()
    );
    let proxy = Proxy::builder(puma.addr())
        .remote(&bad)
        .remote(&good)
        .toml(&toml)
        .start()
        .await;
    // Ready only after the first fetch of the subscription.
    proxy.wait_ready().await;
    assert_eq!(list.requests().len(), 1);

    let body = mallory.activity("Create", json!("http://bad.example/statuses/1"));
    let (status, _, _) = within(
        "delivery from a subscribed domain",
        proxy.post_signed(&mallory, "/inbox", "mastodon.local", &body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(bad.total_gets(), 0, "refused before any key fetch");
    let body = alice.activity("Create", json!("http://good.example/statuses/1"));
    let (status, _, _) = within(
        "delivery from elsewhere",
        proxy.post_signed(&alice, "/inbox", "mastodon.local", &body),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(puma.count(), 1);

    let m = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            &format!(
                "inboxguard_subscription_fetches_total{{result=\"updated\",source=\"{url}\"}}"
            )
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric_value(
            &m,
            &format!("inboxguard_rules_loaded{{severity=\"suspend\",source=\"{url}\"}}")
        ),
        Some(1.0),
        "{m}"
    );
    assert!(proxy.shutdown().await.is_ok());

    // Restart while the list host fails: the disk copy is in force from the start.
    list.answer(|_| reply(500, &[], ""));
    let proxy = Proxy::builder(puma.addr())
        .remote(&bad)
        .remote(&good)
        .toml(&toml)
        .start()
        .await;
    proxy.wait_ready().await;
    let body = mallory.activity("Create", json!("http://bad.example/statuses/2"));
    let (status, _, _) = within(
        "delivery after a restart during an outage",
        proxy.post_signed(&mallory, "/inbox", "mastodon.local", &body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(puma.count(), 1);
    // Readiness did not wait for that fetch (a copy was in force): wait for its failure.
    let failed =
        format!("inboxguard_subscription_fetches_total{{result=\"http_status\",source=\"{url}\"}}");
    within("the failed fetch is counted", async {
        while metric_value(&proxy.metrics().await, &failed).is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let body = mallory.activity("Create", json!("http://bad.example/statuses/3"));
    let (status, _, _) = within(
        "delivery after the failed fetch",
        proxy.post_signed(&mallory, "/inbox", "mastodon.local", &body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the last good copy stays");
    assert!(proxy.shutdown().await.is_ok());
}

/// A list host answering 200 with an empty body, or a CSV with only its header, would lift
/// every rule of the list: the shrink guard holds the answer back, the last good copy stays
/// in force and on disk (so a restart does not lift them either), until `max_shrink = 1.0`.
#[tokio::test]
async fn an_empty_answer_is_held_back_and_not_cached() {
    let server = ListServer::start().await;
    server.answer(|_| {
        reply(
            200,
            &[],
            "#domain,#severity\nkept.example,suspend\nalso.example,silence\n",
        )
    });
    let state = tempfile::tempdir().unwrap();
    let url = server.url("/blocks.csv");
    let (sub, rules, metrics) = subscription(sub_config(&url), state.path());
    within("fetch", sub.refresh()).await.unwrap();
    assert!(suspended(&rules, "kept.example"));

    for body in ["", "#domain,#severity\n"] {
        server.answer(move |_| reply(200, &[], body));
        let e = within("empty fetch", sub.refresh()).await.unwrap_err();
        assert_eq!(e.reason(), "refused_shrink", "{e}");
        assert!(suspended(&rules, "kept.example"), "after {body:?}");
    }
    assert_eq!(fetches(&metrics, &url, "refused_shrink"), 2);
    assert_eq!(
        metrics
            .rules_reloads_total
            .with_label_values(&["refused_shrink"])
            .get(),
        2
    );

    // Restart: the disk copy is still the good one.
    let (restarted, rules, _) = subscription(sub_config(&url), state.path());
    assert!(restarted.load_cache().await);
    assert!(suspended(&rules, "kept.example"));

    // A list that says any shrink is meant.
    let mut config = sub_config(&url);
    config.max_shrink = 1.0;
    let (sub, rules, _) = subscription(config, state.path());
    assert!(sub.load_cache().await);
    assert_eq!(
        within("fetch", sub.refresh()).await.unwrap(),
        Outcome::Updated { rules: 0 }
    );
    assert!(!suspended(&rules, "kept.example"));
}

/// The same through the whole proxy: the suspended domain stays refused while the list host
/// answers nothing, the refusal is counted, and `POST /admin/sources/<url>/accept` lifts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_subscription_keeps_refusing_until_accepted() {
    let list = ListServer::start().await;
    list.answer(|_| reply(200, &[], "#domain,#severity\nbad.example,suspend\n"));
    let bad = RemoteInstance::start("bad.example").await;
    let mallory = bad.add_actor("mallory");
    let puma = RecordingUpstream::start().await;
    let state = tempfile::tempdir().unwrap();
    let url = list.url("/shared-blocklist.csv");
    let toml = format!(
        "[state]\ndir = {:?}\n\n[[subscriptions]]\nurl = {url:?}\nrefresh_secs = 1\n\
         allow_http = true\nallow_private_addresses = true\n",
        state.path()
    );
    let proxy = Proxy::builder(puma.addr())
        .remote(&bad)
        .toml(&toml)
        .start()
        .await;
    proxy.wait_ready().await;
    let deliver = |n: u32| {
        let body = mallory.activity("Create", json!(format!("http://bad.example/statuses/{n}")));
        let proxy = &proxy;
        let mallory = &mallory;
        async move {
            within(
                "delivery",
                proxy.post_signed(mallory, "/inbox", "mastodon.local", &body),
            )
            .await
            .0
        }
    };
    assert_eq!(deliver(1).await, StatusCode::FORBIDDEN);

    list.answer(|_| reply(200, &[], ""));
    let refused = "inboxguard_rules_reloads_total{result=\"refused_shrink\"}";
    within("the held-back answer is counted", async {
        while metric_value(&proxy.metrics().await, refused).is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(deliver(2).await, StatusCode::FORBIDDEN);
    assert_eq!(puma.count(), 0);

    let path = format!(
        "/admin/sources/{}/accept",
        inboxguard::admin::percent_encode(&url)
    );
    let (status, body) = within(
        "accept",
        send(
            proxy.admin_addr,
            http::Method::POST,
            &path,
            HeaderMap::new(),
            Vec::new(),
        ),
    )
    .await
    .map_body();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(&format!("accepted {url}")), "{body}");
    assert_eq!(deliver(3).await, StatusCode::ACCEPTED);
    let (status, _) = within(
        "unknown source",
        send(
            proxy.admin_addr,
            http::Method::POST,
            "/admin/sources/nothing.csv/accept",
            HeaderMap::new(),
            Vec::new(),
        ),
    )
    .await
    .map_body();
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(proxy.shutdown().await.is_ok());
}

trait MapBody {
    fn map_body(self) -> (StatusCode, String);
}

impl MapBody for (StatusCode, HeaderMap, Bytes) {
    fn map_body(self) -> (StatusCode, String) {
        (self.0, String::from_utf8_lossy(&self.2).into_owned())
    }
}

/// `max_severity` / `severity_map` on a subscription, from the config file's words.
#[tokio::test]
async fn a_subscription_can_be_trusted_for_limits_only() {
    let server = ListServer::start().await;
    server.answer(|_| {
        reply(
            200,
            &[],
            "#domain,#severity\nharsh.example,suspend\nquiet.example,silence\n",
        )
    });
    let state = tempfile::tempdir().unwrap();
    let url = server.url("/blocks.csv");
    let text = format!(
        "url = {url:?}\nallow_http = true\nallow_private_addresses = true\n\
         max_severity = \"silence\"\nseverity_map = {{ silence = \"noop\" }}\n"
    );
    let config: SubscriptionConfig = toml::from_str(&text).unwrap();
    let (sub, rules, metrics) = subscription(config, state.path());
    within("fetch", sub.refresh()).await.unwrap();
    let severity = |d: &str| {
        rules
            .current()
            .load()
            .rule_for(d)
            .map(|r| r.severity.as_str())
    };
    assert_eq!(severity("harsh.example"), Some("silence"));
    assert_eq!(severity("quiet.example"), Some("noop"));
    let gauge = |s: &str| {
        metrics
            .rules_loaded
            .with_label_values(&[url.as_str(), s])
            .get()
    };
    assert_eq!(
        (gauge("suspend"), gauge("silence"), gauge("noop")),
        (0, 1, 1)
    );
    let bad: Result<SubscriptionConfig, _> =
        toml::from_str(&format!("url = {url:?}\nmax_severity = \"block\"\n"));
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("unknown variant `block`"));
}

/// `labels_any` / `labels_none` on a subscription: only the labelled rules are taken in.
#[tokio::test]
async fn a_subscription_can_take_only_labelled_rules() {
    let server = ListServer::start().await;
    server.answer(|_| {
        reply(
            200,
            &[],
            "domain,severity,public_comment\ncsam.example,suspend,IFTAS:CSAM\n\
             spam.example,suspend,[spam]\nboth.example,suspend,IFTAS:CSAM [disputed]\n",
        )
    });
    let state = tempfile::tempdir().unwrap();
    let url = server.url("/iftas.csv");
    let text = format!(
        "url = {url:?}\nallow_http = true\nallow_private_addresses = true\n\
         labels_any = [\"IFTAS:CSAM\"]\nlabels_none = [\"disputed\"]\n"
    );
    let config: SubscriptionConfig = toml::from_str(&text).unwrap();
    let (sub, rules, _) = subscription(config, state.path());
    assert_eq!(
        within("fetch", sub.refresh()).await.unwrap(),
        Outcome::Updated { rules: 1 }
    );
    assert!(suspended(&rules, "csam.example"));
    assert!(!suspended(&rules, "spam.example") && !suspended(&rules, "both.example"));
}

/// A private list: `headers_file` is read at each fetch and its headers sent; an unreadable or
/// malformed file fails the fetch without naming the secret, and the copy in force stays.
#[tokio::test]
async fn headers_file_credentials_are_sent_and_reread() {
    let server = ListServer::start().await;
    server.answer(|seen| match seen.header("authorization") {
        Some("Bearer first-secret") => reply(200, &[], "a.example\n"),
        Some("Bearer second-secret") => reply(200, &[], "a.example\nb.example\n"),
        _ => reply(401, &[], ""),
    });
    let state = tempfile::tempdir().unwrap();
    let secrets = state.path().join("headers");
    std::fs::write(
        &secrets,
        "# for the private list\nAuthorization: Bearer first-secret\napikey: k1\n",
    )
    .unwrap();
    let url = server.url("/private.txt");
    let mut config = sub_config(&url);
    config.headers_file = Some(secrets.clone());
    let (sub, rules, metrics) = subscription(config, state.path());
    within("fetch", sub.refresh()).await.unwrap();
    assert!(suspended(&rules, "a.example"));
    assert_eq!(server.last().header("apikey"), Some("k1"));

    std::fs::write(&secrets, "Authorization: Bearer second-secret\n").unwrap();
    within("fetch", sub.refresh()).await.unwrap();
    assert!(suspended(&rules, "b.example"), "read again at each fetch");

    std::fs::write(&secrets, "Authorization Bearer third-secret\n").unwrap();
    let e = within("fetch", sub.refresh()).await.unwrap_err();
    assert_eq!(e.reason(), "headers_file");
    assert!(e.to_string().contains(":1: expected `Name: value`"), "{e}");
    assert!(!e.to_string().contains("third-secret"), "{e}");
    assert!(suspended(&rules, "b.example"));
    assert_eq!(fetches(&metrics, &url, "headers_file"), 1);
}

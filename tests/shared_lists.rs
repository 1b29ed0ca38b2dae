//! The lists moderators share, from list servers on 127.0.0.1 and from files: Fediseer's
//! censures and hesitations answers (`format = "fediseer"`, `min_censures`, malformed
//! answers), and allow-kind and exception-kind subscriptions deciding real signed
//! deliveries, with the shrink guard holding an emptied allow list back.

// Helpers outside #[test] fns panic on a broken environment too, which is the right failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use http::StatusCode;
use inboxguard::config::{Config, SubscriptionConfig};
use inboxguard::policy::Severity;
use inboxguard::subscriptions::{load_cached, Outcome, RefreshError};
use serde_json::json;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/blocklists/fediseer")
        .join(name)
}

fn fixture_text(name: &str) -> &'static str {
    Box::leak(
        std::fs::read_to_string(fixture(name))
            .unwrap()
            .into_boxed_str(),
    )
}

/// A subscription to `url` with the test list server's allowances and `extra` keys.
fn config(url: &str, extra: &str) -> SubscriptionConfig {
    toml::from_str(&format!(
        "url = {url:?}\nallow_http = true\nallow_private_addresses = true\ntimeout_secs = 5\n{extra}"
    ))
    .unwrap()
}

const BASE: &str =
    "[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n";

fn run_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_inboxguard"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Fediseer
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn fediseer_censures_suspend_with_their_reasons() {
    let server = ListServer::start().await;
    let body = fixture_text("censures_given.json");
    server.answer(move |_| reply(200, &[("content-type", "application/json")], body));
    let state = tempfile::tempdir().unwrap();
    let url = server.url("/api/v1/censures_given/mod.example,friend.example");
    let (sub, rules, metrics) = subscription(
        config(&url, "format = \"fediseer\"\nfediseer = \"censures\"\n"),
        state.path(),
    );
    assert_eq!(
        within("fetch", sub.refresh()).await.unwrap(),
        Outcome::Updated { rules: 4 }
    );
    assert_eq!(server.last().header("accept"), Some("application/json"));
    let snapshot = rules.current().load();
    let rule = snapshot.rule_for("csam-host.example").unwrap();
    assert_eq!(rule.severity, Severity::Suspend);
    assert_eq!(
        rule.public_comment.as_deref(),
        Some("[csam] [loli] [shota] (3 censures)")
    );
    assert_eq!(&*rule.source, url.as_str());
    assert!(suspended(&rules, "sub.spam-farm.example"));
    assert_eq!(
        metrics
            .rules_loaded
            .with_label_values(&[url.as_str(), "suspend"])
            .get(),
        4
    );
}

/// Hesitations silence unless the source maps them otherwise, and `labels_none` works on
/// their reasons.
#[tokio::test]
async fn fediseer_hesitations_silence_unless_mapped() {
    let server = ListServer::start().await;
    let body = fixture_text("hesitations_given.json");
    server.answer(move |_| reply(200, &[], body));
    let state = tempfile::tempdir().unwrap();
    let url = server.url("/api/v1/hesitations_given/mod.example");
    let plain = config(&url, "format = \"fediseer\"\nfediseer = \"hesitations\"\n");
    let (sub, rules, _) = subscription(plain, state.path());
    within("fetch", sub.refresh()).await.unwrap();
    let severity = |rules: &inboxguard::rules::Rules, d: &str| {
        rules.current().load().rule_for(d).map(|r| r.severity)
    };
    assert_eq!(severity(&rules, "edgy.example"), Some(Severity::Silence));
    assert_eq!(
        severity(&rules, "mixed-case.example"),
        Some(Severity::Silence)
    );
    assert!(!suspended(&rules, "edgy.example"));

    let mapped = config(
        &url,
        "format = \"fediseer\"\nfediseer = \"hesitations\"\n\
         severity_map = { silence = \"suspend\" }\nlabels_none = [\"spam\"]\n",
    );
    let (sub, rules, _) = subscription(mapped, state.path());
    within("fetch", sub.refresh()).await.unwrap();
    assert!(suspended(&rules, "edgy.example"));
    assert_eq!(
        severity(&rules, "loose-mods.example"),
        None,
        "labelled [spam]"
    );
}

/// `min_censures` keeps instances with enough censures; an answer without counts is refused
/// (the copy in force stays), as a malformed answer is, naming the URL, line and column.
#[tokio::test]
async fn fediseer_min_censures_and_malformed_answers_keep_the_copy_in_force() {
    let server = ListServer::start().await;
    let full = fixture_text("censures_given.json");
    server.answer(move |_| reply(200, &[], full));
    let state = tempfile::tempdir().unwrap();
    let url = server.url("/api/v1/censures_given/mod.example,friend.example,third.example");
    let (sub, rules, metrics) = subscription(
        config(
            &url,
            "format = \"fediseer\"\nfediseer = \"censures\"\nmin_censures = 2\n",
        ),
        state.path(),
    );
    within("fetch", sub.refresh()).await.unwrap();
    assert!(suspended(&rules, "csam-host.example") && suspended(&rules, "nazi.example"));
    assert!(!suspended(&rules, "spam-farm.example"), "one censure only");

    let short = fixture_text("censures_given_domains.json");
    server.answer(move |_| reply(200, &[], short));
    let e = within("short answer", sub.refresh()).await.unwrap_err();
    assert_eq!(e.reason(), "malformed");
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "{url}:1: min_censures needs each instance's censure_count"
        )),
        "{text}"
    );

    let malformed = fixture_text("malformed.json");
    server.answer(move |_| reply(200, &[], malformed));
    let e = within("malformed answer", sub.refresh()).await.unwrap_err();
    assert!(matches!(e, RefreshError::Malformed(_)), "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("{url}:6: malformed JSON")) && text.contains("line 6 column"),
        "{text}"
    );
    assert_eq!(fetches(&metrics, &url, "malformed"), 2);
    assert!(
        suspended(&rules, "csam-host.example"),
        "the good copy stays"
    );
}

/// A Fediseer answer saved to a file, through `inboxguard check` and `explain`; and `check`
/// refusing `min_censures` on a file without counts, naming the file and the setting.
#[test]
fn fediseer_files_through_check_and_explain() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("inboxguard.toml");
    let write = |blocklists: &str| {
        std::fs::write(
            &config_path,
            format!("{BASE}[state]\ndir = {:?}\n{blocklists}", dir.path()),
        )
        .unwrap();
    };
    let censures = fixture("censures_given.json");
    let hesitations = fixture("hesitations_given.json");
    write(&format!(
        "[[blocklists]]\npath = {censures:?}\nformat = \"fediseer\"\nfediseer = \"censures\"\n\
         min_censures = 2\n\
         [[blocklists]]\npath = {hesitations:?}\nformat = \"fediseer\"\nfediseer = \"hesitations\"\n"
    ));
    let config_arg = config_path.to_str().unwrap();
    let out = run_cli(&["check", "--config", config_arg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains(&format!("{}: suspend=2 silence=0", censures.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}: suspend=0 silence=3", hesitations.display())),
        "{stdout}"
    );
    let out = run_cli(&["explain", "--config", config_arg, "a.nazi.example"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{}:1", censures.display()))
            && stdout.contains("[fascism] [hate speech] (2 censures)"),
        "{stdout}"
    );

    let domains = fixture("censures_given_domains.json");
    write(&format!(
        "[[blocklists]]\npath = {domains:?}\nformat = \"fediseer\"\nfediseer = \"censures\"\nmin_censures = 2\n"
    ));
    let out = run_cli(&["check", "--config", config_arg]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr.contains(&format!(
            "{}:1: min_censures needs each instance's censure_count",
            domains.display()
        )),
        "{stderr}"
    );
}

#[test]
fn fediseer_and_kind_settings_are_checked_with_the_config() {
    let load = |extra: &str| Config::from_toml(&format!("{BASE}{extra}"), Path::new("t.toml"));
    let sub = |keys: &str| {
        format!("[[subscriptions]]\nurl = \"https://fediseer.example/api/v1/censures_given/a.example\"\n{keys}")
    };
    let ok = load(&sub(
        "format = \"fediseer\"\nfediseer = \"hesitations\"\nkind = \"block\"\n",
    ));
    assert!(ok.is_ok(), "{ok:?}");
    for (extra, key, words) in [
        (sub("format = \"fediseer\"\n"), "subscriptions.fediseer", "needs fediseer = \"censures\""),
        (sub("fediseer = \"censures\"\n"), "subscriptions.fediseer", "are for format = \"fediseer\""),
        (sub("min_censures = 2\n"), "subscriptions.min_censures", "are for format = \"fediseer\""),
        (
            sub("format = \"fediseer\"\nfediseer = \"censures\"\nmin_censures = 0\n"),
            "subscriptions.min_censures",
            "at least 1",
        ),
        (
            "[[subscriptions]]\nurl = \"https://fediseer.example/api/v1/censures_given/a.example?domains=true\"\n\
             format = \"fediseer\"\nfediseer = \"censures\"\nmin_censures = 2\n"
                .to_string(),
            "subscriptions.min_censures",
            "?domains=true",
        ),
        (
            sub("format = \"fediseer\"\nfediseer = \"censures\"\nkind = \"allow\"\n"),
            "subscriptions.kind",
            "holds block rules",
        ),
        (sub("kind = \"allow\"\nexclude = true\n"), "subscriptions.kind", "one or the other"),
        (sub("kind = \"allow\"\ndry_run = true\n"), "subscriptions.dry_run", "allow or exception"),
        (sub("kind = \"exception\"\ndry_run = true\n"), "subscriptions.dry_run", "allow or exception"),
        (
            "[[blocklists]]\npath = \"f.json\"\nformat = \"fediseer\"\n".to_string(),
            "blocklists.fediseer",
            "needs fediseer",
        ),
        (
            "[[blocklists]]\npath = \"f.txt\"\nkind = \"exception\"\ndry_run = true\n".to_string(),
            "blocklists.dry_run",
            "cannot be dry_run",
        ),
    ] {
        let e = load(&extra).expect_err(&extra).to_string();
        assert!(e.contains(key) && e.contains(words), "{extra}: {e}");
    }
    assert!(load(&sub("format = \"fediseer\"\nfediseer = \"endorsements\"\n")).is_err());
    assert!(load(&sub("kind = \"deny\"\n")).is_err());
}

// ---------------------------------------------------------------------------------------
// Allow and exception lists, deciding real deliveries
// ---------------------------------------------------------------------------------------

/// In allowlist mode an allow-kind subscription says who may deliver (exactly the hosts it
/// names, as Mastodon's DomainAllow). An emptied answer is held back by the shrink guard: the
/// allowed stay allowed until an operator accepts it, instead of everyone being refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_list_subscription_decides_who_may_deliver() {
    let list = ListServer::start().await;
    list.answer(|_| reply(200, &[], "#domain\nfriend.example\n"));
    let friend = RemoteInstance::start("friend.example").await;
    let sub_friend = RemoteInstance::start("sub.friend.example").await;
    let stranger = RemoteInstance::start("stranger.example").await;
    let (alice, bob, eve) = (
        friend.add_actor("alice"),
        sub_friend.add_actor("bob"),
        stranger.add_actor("eve"),
    );
    let puma = RecordingUpstream::start().await;
    let url = list.url("/shared/domain_allows.csv");
    let proxy = Proxy::builder(puma.addr())
        .remote(&friend)
        .remote(&sub_friend)
        .remote(&stranger)
        .toml(&format!(
            "[policy]\nmode = \"allowlist\"\n\n[[subscriptions]]\nurl = {url:?}\nkind = \"allow\"\n\
             refresh_secs = 1\nallow_http = true\nallow_private_addresses = true\n"
        ))
        .start()
        .await;
    proxy.wait_ready().await;
    let send = |actor: &Actor, n: u32| {
        let body = actor.activity("Create", json!(format!("{}/statuses/{n}", actor.id)));
        let proxy = &proxy;
        let actor = actor.clone();
        async move {
            within(
                "delivery",
                proxy.post_signed(&actor, "/inbox", "mastodon.local", &body),
            )
            .await
            .0
        }
    };
    assert_eq!(send(&alice, 1).await, StatusCode::ACCEPTED);
    assert_eq!(
        send(&bob, 1).await,
        StatusCode::FORBIDDEN,
        "exact host only"
    );
    assert_eq!(send(&eve, 1).await, StatusCode::FORBIDDEN);
    assert_eq!(puma.count(), 1);
    let m = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            &format!("inboxguard_rules_loaded{{severity=\"allow\",source=\"{url}\"}}")
        ),
        Some(1.0),
        "{m}"
    );

    let admin = format!("http://{}", proxy.admin_addr);
    let out = tokio::task::spawn_blocking(move || {
        run_cli(&["explain", "--admin", &admin, "friend.example"])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "allowed: friend.example by friend.example ({url}:2)"
        )),
        "{stdout}"
    );

    // The list host answers a header-only CSV: held back, alice still delivers.
    list.answer(|_| reply(200, &[], "#domain\n"));
    wait_metric(
        &proxy,
        "inboxguard_rules_reloads_total{result=\"refused_shrink\"}",
        |v| v >= 1.0,
    )
    .await;
    assert_eq!(send(&alice, 2).await, StatusCode::ACCEPTED);
    assert_eq!(puma.count(), 2);
    assert!(proxy.shutdown().await.is_ok());
}

/// An exception-kind subscription (an operator's own list hosted elsewhere) exempts its
/// domains and their sub-domains from the local suspension of a parent domain; `explain`
/// names the list and line that decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_list_subscription_exempts_from_local_blocks() {
    let list = ListServer::start().await;
    list.answer(|_| reply(200, &[], "# our exceptions\nfriendly.bad.example\n"));
    let bad = RemoteInstance::start("bad.example").await;
    let friendly = RemoteInstance::start("friendly.bad.example").await;
    let (mallory, carol) = (bad.add_actor("mallory"), friendly.add_actor("carol"));
    let puma = RecordingUpstream::start().await;
    let url = list.url("/ours/exceptions.txt");
    let builder = Proxy::builder(puma.addr());
    let blocks = builder.write_file("blocks.csv", "#domain,#severity\nbad.example,suspend\n");
    let proxy = builder
        .remote(&bad)
        .remote(&friendly)
        .blocklist(blocks)
        .toml(&format!(
            "[[subscriptions]]\nurl = {url:?}\nkind = \"exception\"\n\
             allow_http = true\nallow_private_addresses = true\n"
        ))
        .start()
        .await;
    proxy.wait_ready().await;
    let body = carol.activity("Create", json!("http://friendly.bad.example/statuses/1"));
    let (status, _, _) = within(
        "delivery from the exempted sub-domain",
        proxy.post_signed(&carol, "/inbox", "mastodon.local", &body),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let body = mallory.activity("Create", json!("http://bad.example/statuses/1"));
    let (status, _, _) = within(
        "delivery from the suspended parent",
        proxy.post_signed(&mallory, "/inbox", "mastodon.local", &body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(bad.total_gets(), 0, "refused before any key fetch");
    assert_eq!(puma.count(), 1);
    let m = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            &format!("inboxguard_rules_loaded{{severity=\"exclude\",source=\"{url}\"}}")
        ),
        Some(1.0),
        "{m}"
    );
    let admin = format!("http://{}", proxy.admin_addr);
    let out = tokio::task::spawn_blocking(move || {
        run_cli(&["explain", "--admin", &admin, "friendly.bad.example"])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("exception: friendly.bad.example") && stdout.contains(&format!("{url}:2")),
        "{stdout}"
    );
    assert!(proxy.shutdown().await.is_ok());
}

/// `check` reads an allow-kind subscription's cached copy as allow entries, as `serve` does.
#[tokio::test]
async fn cached_allow_and_exception_lists_load_as_their_kinds() {
    let server = ListServer::start().await;
    server.answer(|_| reply(200, &[], "friend.example\nother.example\n"));
    let dir = tempfile::tempdir().unwrap();
    let allow_url = server.url("/allows.txt");
    let except_url = server.url("/exceptions.txt");
    let text = format!(
        "{BASE}[state]\ndir = {:?}\n\
         [[subscriptions]]\nurl = {allow_url:?}\nkind = \"allow\"\nallow_http = true\nallow_private_addresses = true\n\
         [[subscriptions]]\nurl = {except_url:?}\nkind = \"exception\"\nallow_http = true\nallow_private_addresses = true\n",
        dir.path()
    );
    let config = Config::from_toml(&text, Path::new("t.toml")).unwrap();
    for s in &config.subscriptions {
        let (sub, rules, _) = subscription(s.clone(), &config.state.dir);
        assert_eq!(
            within("fetch", sub.refresh()).await.unwrap(),
            Outcome::Updated { rules: 2 }
        );
        let snapshot = rules.current().load();
        let kinds = (
            snapshot.allow_for("friend.example").is_some(),
            snapshot.exception_for("a.friend.example").is_some(),
        );
        let expected = if s.url == allow_url {
            (true, false)
        } else {
            (false, true)
        };
        assert_eq!(kinds, expected, "{}", s.url);
    }
    let cached = load_cached(&config);
    assert_eq!(cached.sources.len(), 2, "{:?}", cached.missing);
    let allow = cached
        .sources
        .iter()
        .find(|m| m.label == allow_url)
        .unwrap();
    assert_eq!(
        (allow.parsed.allows.len(), allow.parsed.rules.len()),
        (2, 0)
    );
    assert!(!allow.exclude);
    let except = cached
        .sources
        .iter()
        .find(|m| m.label == except_url)
        .unwrap();
    assert!(except.exclude && except.parsed.rules.len() == 2);
}

//! `[mastodon] push`: the proxy keeps a stand-in Mastodon admin API's domain blocks in step
//! with a pushed subscription (served by the same stand-in), over loopback sockets: create,
//! severity update, lift, manual blocks left alone, token failure and retry, pagination of
//! the existing list, dry run, and the rule-change log.

// Helpers outside #[test] fns panic on a broken environment too, which is the right failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const TOKEN: &str = "t0ken-for-the-push";
const LIST: &str = "/lists/push.csv";
const HEADER: &str = "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n";
const POLL: Duration = Duration::from_millis(50);

/// A proxy pushing the list at `LIST` on `mastodon` every second, with `push` as given.
async fn proxy(mastodon: &MastodonAdmin, push: &str) -> (Proxy, PathBuf) {
    proxy_with(mastodon, push, "").await
}

/// As [`proxy`], with `extra` TOML appended.
async fn proxy_with(mastodon: &MastodonAdmin, push: &str, extra: &str) -> (Proxy, PathBuf) {
    let builder = Proxy::builder(RecordingUpstream::start().await.addr());
    let token_file = builder.write_file("mastodon-token", &format!("{TOKEN}\n"));
    let state = builder.dir().join("state");
    let url = mastodon.url();
    let toml = format!(
        r#"
[[subscriptions]]
url = "{url}{LIST}"
refresh_secs = 1
max_shrink = 1.0
allow_http = true
allow_private_addresses = true
push = true

[mastodon]
url = "{url}"
token_file = {token_file:?}
domain_blocks = false
allow_http = true
allow_private_addresses = true
push = {push}
push_interval = "1s"

[state]
dir = {state:?}

{extra}
"#
    );
    let proxy = builder.toml(&toml).start().await;
    proxy.wait_ready().await;
    (proxy, token_file)
}

/// Polls until `done` holds (bounded by the hang guard).
async fn until(what: &str, done: impl Fn() -> bool) {
    within(what, async {
        while !done() {
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
}

/// Waits for the push cycle under way (or the next one) to end: a cycle records its state file
/// and journal lines after Mastodon has seen its writes.
async fn settled(proxy: &Proxy) {
    const OK: &str = "inboxguard_push_cycles_total{result=\"ok\"}";
    let before = metric_value(&proxy.metrics().await, OK).unwrap_or(0.0);
    wait_metric(proxy, OK, |v| v > before).await;
}

fn state_file(proxy: &Proxy) -> Value {
    let path = proxy.dir().join("state").join("mastodon-push.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The rule-change log's `push` lines: (change, severity, domain, source).
fn pushes(proxy: &Proxy) -> Vec<(String, String, String, String)> {
    let path = proxy.dir().join("state").join("rule-changes.jsonl");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["trigger"] != "push" {
            continue;
        }
        for d in v["domains"].as_array().unwrap() {
            out.push((
                d["change"].as_str().unwrap().to_string(),
                d["severity"].as_str().unwrap().to_string(),
                d["domain"].as_str().unwrap().to_string(),
                v["source"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

fn metric(text: &str, series: &str) -> f64 {
    metric_value(text, series).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_updates_and_lifts_in_step_with_a_pushed_list() {
    let mastodon = MastodonAdmin::start(TOKEN).await;
    mastodon.serve_file(
        LIST,
        &format!("{HEADER}bad.example,suspend,true,false,spam,false\nmeh.example,silence,false,false,,false\n"),
    );
    let (proxy, _) = proxy(&mastodon, "true").await;
    until("both created", || {
        mastodon.block("bad.example").is_some() && mastodon.block("meh.example").is_some()
    })
    .await;
    settled(&proxy).await;
    let bad = mastodon.block("bad.example").unwrap();
    assert_eq!(
        (bad["severity"].as_str(), bad["reject_media"].as_bool()),
        (Some("suspend"), Some(true))
    );
    let list_url = format!("{}{LIST}", mastodon.url());
    assert_eq!(bad["public_comment"], "spam (inboxguard: 127.0.0.1)");
    assert!(
        bad["private_comment"].as_str().unwrap().contains(&list_url),
        "{bad}"
    );
    let posts: Vec<Recorded> = mastodon
        .calls()
        .into_iter()
        .filter(|c| c.method == http::Method::POST)
        .collect();
    assert_eq!(posts.len(), 2);
    for post in &posts {
        assert_eq!(post.header("authorization"), format!("Bearer {TOKEN}"));
        assert_eq!(post.header("content-type"), "application/json");
    }
    let (bad_id, meh_id) = (
        bad["id"].as_str().unwrap().to_string(),
        mastodon.block("meh.example").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let state = state_file(&proxy);
    assert_eq!(state["blocks"]["bad.example"]["id"], bad_id.as_str());
    assert_eq!(state["blocks"]["meh.example"]["id"], meh_id.as_str());

    // meh.example turns suspend, bad.example leaves the list.
    mastodon.serve_file(
        LIST,
        &format!("{HEADER}meh.example,suspend,false,false,,false\n"),
    );
    until("updated and lifted", || {
        mastodon.block("bad.example").is_none()
            && mastodon
                .block("meh.example")
                .is_some_and(|b| b["severity"] == "suspend")
    })
    .await;
    let writes = mastodon.writes();
    assert!(
        writes.contains(&format!("PUT /api/v1/admin/domain_blocks/{meh_id}")),
        "{writes:?}"
    );
    assert!(
        writes.contains(&format!("DELETE /api/v1/admin/domain_blocks/{bad_id}")),
        "{writes:?}"
    );
    assert_eq!(
        mastodon.block("meh.example").unwrap()["id"],
        meh_id.as_str(),
        "PUT keeps the block"
    );
    until("state forgets the lifted block", || {
        state_file(&proxy)["blocks"].get("bad.example").is_none()
    })
    .await;

    // Every write is a line of the rule-change log, which is appended after the write
    // succeeds, not necessarily before the state file is saved.
    until("the rule-change log has every write", || {
        pushes(&proxy).len() >= 4
    })
    .await;
    let mut journal = pushes(&proxy);
    journal.sort();
    let line = |c: &str, s: &str, d: &str| {
        (
            c.to_string(),
            s.to_string(),
            d.to_string(),
            list_url.clone(),
        )
    };
    assert_eq!(
        journal,
        [
            line("added", "silence", "meh.example"),
            line("added", "suspend", "bad.example"),
            line("changed", "suspend", "meh.example"),
            line("removed", "suspend", "bad.example"),
        ]
    );
    let m = proxy.metrics().await;
    for op in ["create", "update", "delete"] {
        assert!(
            metric(
                &m,
                &format!("inboxguard_push_requests_total{{op=\"{op}\",result=\"ok\"}}")
            ) >= 1.0,
            "{op}"
        );
    }
    assert_eq!(metric(&m, "inboxguard_push_managed_blocks"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_inboxguard_did_not_create_is_never_touched() {
    let mastodon = MastodonAdmin::start(TOKEN).await;
    let manual = mastodon.add_block("manual.example", "silence");
    mastodon.serve_file(
        LIST,
        &format!("{HEADER}manual.example,suspend,false,false,,false\nours.example,suspend,false,false,,false\n"),
    );
    let (proxy, _) = proxy(&mastodon, "true").await;
    until("ours created", || mastodon.block("ours.example").is_some()).await;
    settled(&proxy).await;
    wait_metric(
        &proxy,
        "inboxguard_push_skipped_blocks{reason=\"manual\"}",
        |v| v == 1.0,
    )
    .await;

    // The list drops both: ours is lifted, the manual block stays as it was.
    mastodon.serve_file(LIST, HEADER);
    until("ours lifted", || mastodon.block("ours.example").is_none()).await;
    settled(&proxy).await;
    wait_metric(
        &proxy,
        "inboxguard_push_skipped_blocks{reason=\"manual\"}",
        |v| v == 0.0,
    )
    .await;
    let kept = mastodon.block("manual.example").expect("still there");
    assert_eq!(
        (kept["id"].as_str(), kept["severity"].as_str()),
        (Some(manual.as_str()), Some("silence"))
    );
    let touching: Vec<Recorded> = mastodon
        .calls()
        .into_iter()
        .filter(|c| c.method != http::Method::GET)
        .filter(|c| {
            c.uri.path().ends_with(&format!("/{manual}"))
                || String::from_utf8_lossy(&c.body).contains("manual.example")
        })
        .collect();
    assert!(touching.is_empty(), "{touching:?}");
    // Control: the filter does see the writes about ours.
    assert_eq!(mastodon.writes().len(), 2, "{:?}", mastodon.writes());
    assert!(state_file(&proxy)["blocks"].get("manual.example").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_keeps_the_state_and_the_push_retries() {
    let mastodon = MastodonAdmin::start(TOKEN).await;
    mastodon.serve_file(
        LIST,
        &format!("{HEADER}first.example,suspend,false,false,,false\n"),
    );
    let (proxy, token_file) = proxy(&mastodon, "true").await;
    until("first created", || {
        mastodon.block("first.example").is_some()
    })
    .await;
    settled(&proxy).await;
    let state_path = proxy.dir().join("state").join("mastodon-push.json");
    let recorded = std::fs::read(&state_path).unwrap();

    // Mastodon revokes the token; meanwhile the list changes.
    mastodon.set_token("rotated-token");
    let writes_before = mastodon.writes().len();
    mastodon.serve_file(
        LIST,
        &format!("{HEADER}second.example,suspend,false,false,,false\n"),
    );
    wait_metric(
        &proxy,
        "inboxguard_push_cycles_total{result=\"unauthorized\"}",
        |v| v >= 2.0,
    )
    .await;
    assert_eq!(
        mastodon.writes().len(),
        writes_before,
        "nothing written with a refused token"
    );
    assert_eq!(std::fs::read(&state_path).unwrap(), recorded, "state kept");
    let m = proxy.metrics().await;
    assert!(
        metric(
            &m,
            "inboxguard_push_requests_total{op=\"list\",result=\"unauthorized\"}"
        ) >= 2.0
    );
    assert!(!m.contains(TOKEN) && !m.contains("rotated-token"));

    // The operator puts the new token in the file: the next retry catches up.
    std::fs::write(&token_file, "rotated-token\n").unwrap();
    until("caught up", || {
        mastodon.block("first.example").is_none() && mastodon.block("second.example").is_some()
    })
    .await;
    settled(&proxy).await;
    let state = state_file(&proxy);
    assert!(
        state["blocks"].get("second.example").is_some()
            && state["blocks"].get("first.example").is_none()
    );
    let log =
        std::fs::read_to_string(proxy.dir().join("state").join("rule-changes.jsonl")).unwrap();
    assert!(!log.contains(TOKEN) && !log.contains("rotated-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_existing_list_is_read_page_by_page() {
    let mastodon = MastodonAdmin::start(TOKEN).await;
    mastodon.set_page_size(2);
    // The oldest block (lowest id) comes last, on the third page.
    mastodon.add_block("late.example", "silence");
    for i in 0..4 {
        mastodon.add_block(&format!("other{i}.example"), "suspend");
    }
    mastodon.serve_file(
        LIST,
        &format!("{HEADER}late.example,suspend,false,false,,false\nfresh.example,suspend,false,false,,false\n"),
    );
    let (proxy, _) = proxy(&mastodon, "true").await;
    until("fresh created", || {
        mastodon.block("fresh.example").is_some()
    })
    .await;
    settled(&proxy).await;
    wait_metric(
        &proxy,
        "inboxguard_push_skipped_blocks{reason=\"manual\"}",
        |v| v == 1.0,
    )
    .await;
    let lists: Vec<String> = mastodon
        .calls()
        .iter()
        .filter(|c| c.method == http::Method::GET && c.uri.path() == "/api/v1/admin/domain_blocks")
        .map(|c| c.target().to_string())
        .collect();
    let first_cycle: Vec<&str> = lists.iter().take(3).map(String::as_str).collect();
    assert_eq!(
        first_cycle,
        [
            "/api/v1/admin/domain_blocks?limit=500",
            "/api/v1/admin/domain_blocks?limit=500&max_id=103",
            "/api/v1/admin/domain_blocks?limit=500&max_id=101",
        ]
    );
    // Only fresh.example was written: late.example, seen on the last page, is a manual block.
    let posts: Vec<String> = mastodon.writes();
    assert_eq!(posts, ["POST /api/v1/admin/domain_blocks"], "{posts:?}");
    assert_eq!(
        mastodon.block("late.example").unwrap()["severity"],
        "silence"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_logs_the_diff_and_writes_nothing() {
    let mastodon = MastodonAdmin::start(TOKEN).await;
    mastodon.add_block("manual.example", "silence");
    mastodon.serve_file(
        LIST,
        &format!("{HEADER}would.example,suspend,false,false,,false\nmanual.example,suspend,false,false,,false\n"),
    );
    let (proxy, _) = proxy(&mastodon, "\"dry-run\"").await;
    wait_metric(
        &proxy,
        "inboxguard_push_cycles_total{result=\"dry_run\"}",
        |v| v >= 2.0,
    )
    .await;
    let m = proxy.metrics().await;
    assert_eq!(metric(&m, "inboxguard_push_diff{op=\"create\"}"), 1.0);
    assert_eq!(
        metric(&m, "inboxguard_push_skipped_blocks{reason=\"manual\"}"),
        1.0
    );
    assert!(mastodon.writes().is_empty(), "{:?}", mastodon.writes());
    assert!(!proxy
        .dir()
        .join("state")
        .join("mastodon-push.json")
        .exists());
    assert!(pushes(&proxy).is_empty());

    // The command prints the same diff, and also writes nothing.
    let config = proxy.config_path.clone();
    let out = cli(&["push", "--config", config.to_str().unwrap(), "--dry-run"]).await;
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("(dry run): 1 to create, 0 to update, 0 to lift, 1 manual"),
        "{stdout}"
    );
    assert!(stdout.contains("create  would.example suspend"), "{stdout}");
    assert!(stdout.contains("skip    manual.example"), "{stdout}");
    assert!(mastodon.writes().is_empty());
    // Without --dry-run it refuses while the config says dry-run.
    let out = cli(&["push", "--config", config.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("push = true"));
    assert!(mastodon.writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_pushes_once_from_the_cached_rules() {
    let mastodon = MastodonAdmin::start(TOKEN).await;
    mastodon.serve_file(
        LIST,
        &format!("{HEADER}once.example,silence,false,true,,false\n"),
    );
    // A proxy in dry-run mode fetches and caches the list; the command, with a config that
    // says push = true, then writes from that cached copy.
    let (proxy, _) = proxy(&mastodon, "\"dry-run\"").await;
    wait_metric(
        &proxy,
        "inboxguard_push_cycles_total{result=\"dry_run\"}",
        |v| v >= 1.0,
    )
    .await;
    let text = std::fs::read_to_string(&proxy.config_path).unwrap();
    let config = proxy.write_file(
        "push.toml",
        &text.replace("push = \"dry-run\"", "push = true"),
    );
    let out = cli(&["push", "--config", config.to_str().unwrap()]).await;
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("create  once.example silence+reject_reports"),
        "{stdout}"
    );
    assert!(stdout.contains(": done"), "{stdout}");
    let block = mastodon.block("once.example").expect("created");
    assert_eq!(block["reject_reports"], true);
    let journal = pushes(&proxy);
    assert_eq!(journal.len(), 1, "{journal:?}");
    assert_eq!(
        (journal[0].0.as_str(), journal[0].2.as_str()),
        ("added", "once.example")
    );
    assert_eq!(
        state_file(&proxy)["blocks"]["once.example"]["id"],
        block["id"]
    );
    // Run again: in step, nothing to do.
    let out = cli(&["push", "--config", config.to_str().unwrap()]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 to create, 0 to update, 0 to lift"),
        "{out:?}"
    );
    assert_eq!(mastodon.writes().len(), 1);
}

async fn cli(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    within(
        "inboxguard push",
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_inboxguard"))
                .args(&args)
                .env_remove("RUST_LOG")
                .output()
                .unwrap()
        }),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_is_pushed_and_an_exclusion_lifts_it() {
    let mastodon = MastodonAdmin::start(TOKEN).await;
    mastodon.serve_file(LIST, HEADER);
    let files = tempfile::tempdir().unwrap();
    let evidence = files.path().join("friendly-federators.json");
    // A friendly federator escalated before this start: in force before the proxy serves.
    let saved = serde_json::json!({
        "version": 1, "saved_at": 1_700_000_000u64, "domains": {},
        "escalated": {"friend.example": {"at": 1_700_000_000u64, "count": 7}},
    });
    std::fs::write(&evidence, saved.to_string()).unwrap();
    let exceptions = files.path().join("exceptions.txt");
    std::fs::write(&exceptions, "unrelated.example\n").unwrap();
    let extra = format!(
        "[friendly_federators]\nevidence_file = {evidence:?}\nthreshold = 5\naction = \"suspend\"\n\n[[blocklists]]\npath = {exceptions:?}\nexclude = true\n"
    );
    let (proxy, _) = proxy_with(&mastodon, "true", &extra).await;
    until("escalation pushed", || {
        mastodon.block("friend.example").is_some()
    })
    .await;
    settled(&proxy).await;
    let block = mastodon.block("friend.example").unwrap();
    assert_eq!(block["severity"], "suspend");
    assert!(
        block["public_comment"]
            .as_str()
            .unwrap()
            .ends_with("(inboxguard: friendly-federators)"),
        "{block}"
    );

    // The moderators' answer to an escalation they disagree with: an exclusion.
    std::fs::write(&exceptions, "unrelated.example\nfriend.example\n").unwrap();
    let (status, _) = admin_reload(&proxy).await;
    assert!(status.is_success(), "{status}");
    until("escalation lifted", || {
        mastodon.block("friend.example").is_none()
    })
    .await;
    settled(&proxy).await;
    let journal = pushes(&proxy);
    let sources: Vec<(&str, &str)> = journal
        .iter()
        .map(|j| (j.0.as_str(), j.3.as_str()))
        .collect();
    assert_eq!(
        sources,
        [
            ("added", "friendly-federators"),
            ("removed", "friendly-federators")
        ]
    );
}

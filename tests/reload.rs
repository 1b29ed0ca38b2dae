//! End-to-end hot reload of blocklists through the whole proxy on loopback: edits picked up by
//! the file watcher (editor-style rename, Kubernetes ConfigMap symlink swap), broken files
//! keeping the old rules, and `POST /admin/reload`. SIGHUP is covered by the unit tests of
//! `rules::watch`.

// Helpers outside #[test] fns panic on a broken environment too, which is the right failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use http::StatusCode;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

const INBOX: &str = "/users/bob/inbox";
const LOCAL_HOST: &str = "local.test";
const CSV_HEADER: &str =
    "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n";

/// How often an edit is re-applied while waiting for it to be seen: the watcher registers its
/// directories on its own task after the proxy reports ready, so the very first edit can land
/// before anyone listens (an operator would simply save again).
const REAPPLY_EVERY: Duration = Duration::from_secs(1);

fn csv(rows: &[&str]) -> String {
    let mut text = CSV_HEADER.to_string();
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text
}

/// Writes `text` next to `path` and renames it over `path`, as editors and `sed -i` save.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("csv.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Applies `change`, then polls `done` until it holds, re-applying `change` every
/// [`REAPPLY_EVERY`]; fails after `HANG_GUARD`.
async fn eventually<C, D, Fut>(what: &str, mut change: C, mut done: D)
where
    C: FnMut(),
    D: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(what, async {
        let mut last = tokio::time::Instant::now();
        change();
        while !done().await {
            if last.elapsed() >= REAPPLY_EVERY {
                change();
                last = tokio::time::Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// A fresh signed Create from `actor` through the proxy; its status.
async fn deliver(proxy: &Proxy, actor: &Actor) -> StatusCode {
    let body = actor.activity("Create", serde_json::json!("http://local.test/notes/1"));
    let (status, _, _) = within(
        "delivery",
        proxy.post_signed(actor, INBOX, LOCAL_HOST, &body),
    )
    .await;
    status
}

fn reloads(metrics: &str, result: &str) -> f64 {
    metric_value(
        metrics,
        &format!("inboxguard_rules_reloads_total{{result=\"{result}\"}}"),
    )
    .unwrap_or(0.0)
}

fn loaded(metrics: &str, source: &Path, severity: &str) -> Option<f64> {
    let source = source.display().to_string();
    metric_value(
        metrics,
        &format!(
            "inboxguard_rules_loaded{{source={},severity=\"{severity}\"}}",
            serde_json::Value::String(source)
        ),
    )
}

struct Setup {
    _puma: RecordingUpstream,
    _evil: RemoteInstance,
    actor: Actor,
    proxy: Proxy,
}

/// A proxy whose only blocklist is `<tempdir>/blocklist.csv` holding `initial`, and an actor
/// on `evil.test`.
async fn setup(initial: &str) -> (Setup, std::path::PathBuf) {
    let puma = RecordingUpstream::start().await;
    let evil = RemoteInstance::start("evil.test").await;
    let actor = evil.add_actor("mallory");
    let builder = Proxy::builder(puma.addr())
        .remote(&evil)
        .blocklist_file("blocklist.csv", initial);
    let path = builder.dir().join("blocklist.csv");
    let proxy = builder.start().await;
    proxy.wait_ready().await;
    (
        Setup {
            _puma: puma,
            _evil: evil,
            actor,
            proxy,
        },
        path,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_blocklist_takes_effect_without_restart() {
    let (s, path) = setup(&csv(&[])).await;
    let (proxy, actor) = (&s.proxy, &s.actor);
    assert_eq!(deliver(proxy, actor).await, StatusCode::ACCEPTED);
    let before = s.proxy.metrics().await;
    assert_eq!(loaded(&before, &path, "suspend"), Some(0.0), "{before}");

    let suspended = csv(&["evil.test,suspend,false,false,,false"]);
    eventually(
        "suspension picked up by the watcher",
        || replace(&path, &suspended),
        || async move { deliver(proxy, actor).await == StatusCode::FORBIDDEN },
    )
    .await;

    let after = s.proxy.metrics().await;
    assert!(
        reloads(&after, "success") > reloads(&before, "success"),
        "{after}"
    );
    assert_eq!(loaded(&after, &path, "suspend"), Some(1.0), "{after}");
    assert_eq!(reloads(&after, "failure"), 0.0, "{after}");
    // Still refused on the next try: the new rules stay.
    assert_eq!(deliver(&s.proxy, &s.actor).await, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_blocklist_keeps_the_old_rules_until_fixed() {
    let (s, path) = setup(&csv(&["evil.test,suspend,false,false,,false"])).await;
    assert_eq!(deliver(&s.proxy, &s.actor).await, StatusCode::FORBIDDEN);
    let (proxy, actor) = (&s.proxy, &s.actor);
    let before = proxy.metrics().await;
    let failures_before = reloads(&before, "failure");

    // Line 3 has a severity Mastodon does not know; the whole file is refused.
    let broken = csv(&[
        "other.test,silence,false,false,,false",
        "evil.test,block,false,false,,false",
    ]);
    eventually(
        "failed reload counted",
        || replace(&path, &broken),
        || async move { reloads(&proxy.metrics().await, "failure") > failures_before },
    )
    .await;
    assert_eq!(deliver(&s.proxy, &s.actor).await, StatusCode::FORBIDDEN);
    let during = s.proxy.metrics().await;
    assert_eq!(loaded(&during, &path, "suspend"), Some(1.0), "{during}");
    assert_eq!(loaded(&during, &path, "silence"), Some(0.0), "{during}");
    assert_eq!(
        reloads(&during, "success"),
        reloads(&before, "success"),
        "{during}"
    );

    // Fixed: evil.test is only limited now, which Mastodon applies itself, so it is forwarded.
    let fixed = csv(&[
        "other.test,silence,false,false,,false",
        "evil.test,silence,false,false,,false",
    ]);
    eventually(
        "fixed file picked up",
        || replace(&path, &fixed),
        || async move { deliver(proxy, actor).await == StatusCode::ACCEPTED },
    )
    .await;
    let after = s.proxy.metrics().await;
    assert!(
        reloads(&after, "success") > reloads(&before, "success"),
        "{after}"
    );
    assert_eq!(loaded(&after, &path, "suspend"), Some(0.0), "{after}");
    assert_eq!(loaded(&after, &path, "silence"), Some(2.0), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reload_applies_at_once_and_refuses_a_broken_file() {
    let (s, path) = setup(&csv(&[])).await;
    let source = path.display().to_string();
    assert_eq!(deliver(&s.proxy, &s.actor).await, StatusCode::ACCEPTED);

    std::fs::write(&path, csv(&["evil.test,suspend,false,false,,false"])).unwrap();
    let (status, body) = admin_reload(&s.proxy).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The answer reports what it loaded, so it read the new file itself.
    assert!(
        body.contains(&format!("{source}: suspend=1 silence=0 noop=0")),
        "{body}"
    );
    assert_eq!(deliver(&s.proxy, &s.actor).await, StatusCode::FORBIDDEN);

    let broken = csv(&[
        "evil.test,suspend,false,false,,false",
        "other.test,block,false,false,,false",
    ]);
    std::fs::write(&path, broken).unwrap();
    let failures_before = reloads(&s.proxy.metrics().await, "failure");
    let (status, body) = admin_reload(&s.proxy).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains(&format!("{source}:3:")), "{body}");
    assert!(body.contains("block"), "{body}");
    assert_eq!(deliver(&s.proxy, &s.actor).await, StatusCode::FORBIDDEN);
    let metrics = s.proxy.metrics().await;
    assert!(reloads(&metrics, "failure") > failures_before, "{metrics}");
    assert_eq!(loaded(&metrics, &path, "suspend"), Some(1.0), "{metrics}");

    // Emptied: that would lift every rule of the file, so it waits for an operator.
    std::fs::write(&path, csv(&[])).unwrap();
    let (status, body) = admin_reload(&s.proxy).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body.contains(&format!(
            "refused {source}: would remove 1 of its 1 entries"
        )),
        "{body}"
    );
    assert_eq!(deliver(&s.proxy, &s.actor).await, StatusCode::FORBIDDEN);
    let metrics = s.proxy.metrics().await;
    assert_eq!(reloads(&metrics, "refused_shrink"), 1.0, "{metrics}");

    // Accepted by its file name: the suspension is gone on the next request.
    let (status, _, body) = within(
        "accept",
        send(
            s.proxy.admin_addr,
            http::Method::POST,
            "/admin/sources/blocklist.csv/accept",
            http::HeaderMap::new(),
            Vec::new(),
        ),
    )
    .await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(&format!("accepted {source}")), "{body}");
    assert_eq!(deliver(&s.proxy, &s.actor).await, StatusCode::ACCEPTED);
}

/// Kubernetes mounts a ConfigMap as `dir/blocklist.csv -> ..data/blocklist.csv` and
/// `..data -> ..<revision>`; an update writes a new revision directory and renames a fresh
/// `..data` symlink over the old one. Nothing named `blocklist.csv` is touched.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_symlink_swap_takes_effect() {
    use std::os::unix::fs::symlink;

    let puma = RecordingUpstream::start().await;
    let evil = RemoteInstance::start("evil.test").await;
    let actor = evil.add_actor("mallory");
    let builder = Proxy::builder(puma.addr()).remote(&evil);
    let mount = builder.dir().join("configmap");
    std::fs::create_dir(&mount).unwrap();
    let revision = |name: &str, text: &str| {
        std::fs::create_dir(mount.join(name)).unwrap();
        std::fs::write(mount.join(name).join("blocklist.csv"), text).unwrap();
    };
    revision("..v1", &csv(&["unrelated.test,suspend,false,false,,false"]));
    symlink("..v1", mount.join("..data")).unwrap();
    symlink("..data/blocklist.csv", mount.join("blocklist.csv")).unwrap();
    let path = mount.join("blocklist.csv");
    let proxy = builder.blocklist(&path).start().await;
    proxy.wait_ready().await;
    assert_eq!(deliver(&proxy, &actor).await, StatusCode::ACCEPTED);

    let (proxy_ref, actor_ref) = (&proxy, &actor);
    let mut n = 1;
    eventually(
        "ConfigMap update picked up",
        || {
            n += 1;
            let name = format!("..v{n}");
            revision(&name, &csv(&["evil.test,suspend,false,false,,false"]));
            let tmp = mount.join("..data_tmp");
            symlink(&name, &tmp).unwrap();
            std::fs::rename(&tmp, mount.join("..data")).unwrap();
        },
        || async move { deliver(proxy_ref, actor_ref).await == StatusCode::FORBIDDEN },
    )
    .await;
    // The kubelet removes the old revision afterwards; nothing may depend on it.
    std::fs::remove_dir_all(mount.join("..v1")).unwrap();
    assert_eq!(deliver(&proxy, &actor).await, StatusCode::FORBIDDEN);
    let metrics = proxy.metrics().await;
    assert_eq!(loaded(&metrics, &path, "suspend"), Some(1.0), "{metrics}");
    assert!(reloads(&metrics, "success") >= 1.0, "{metrics}");
}

/// The admin reload answer counts every kind per source (allow, exclude, actor rules too) and
/// says what the reload changed; with nothing edited, nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reload_answer_counts_every_kind_and_the_changes() {
    let puma = RecordingUpstream::start().await;
    let builder = Proxy::builder(puma.addr()).blocklist_file(
        "rules.toml",
        "[[domain]]\ndomain = \"bad.test\"\n\n[[allow]]\ndomain = \"friend.test\"\n\n\
         [[exclude]]\ndomain = \"ok.bad.test\"\n\n[[actor]]\nactor = \"@m@evil.test\"\n",
    );
    let path = builder.dir().join("rules.toml");
    let proxy = builder.start().await;
    proxy.wait_ready().await;
    let (status, body) = admin_reload(&proxy).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains(&format!(
            "{}: suspend=1 silence=0 noop=0 allow=1 exclude=1 actor_suspend=1\n  changed: none\n",
            path.display()
        )),
        "{body}"
    );
}

fn gauge(metrics: &str, name: &str, source: &Path) -> Option<f64> {
    let source = serde_json::Value::String(source.display().to_string());
    metric_value(metrics, &format!("{name}{{source={source}}}"))
}

/// Each file has its own last good copy: while one file is broken, an edit to another still
/// takes effect and the broken file's previous rules stay enforced; the admin answer and the
/// metrics say which file is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_does_not_hold_back_another_files_edit() {
    let puma = RecordingUpstream::start().await;
    let evil = RemoteInstance::start("evil.test").await;
    let spam = RemoteInstance::start("spam.test").await;
    let mallory = evil.add_actor("mallory");
    let spammer = spam.add_actor("spammer");
    let builder = Proxy::builder(puma.addr())
        .remote(&evil)
        .remote(&spam)
        .blocklist_file("a.csv", &csv(&["spam.test,suspend,false,false,,false"]))
        .blocklist_file("b.csv", &csv(&[]));
    let (a, b) = (builder.dir().join("a.csv"), builder.dir().join("b.csv"));
    let proxy = builder.start().await;
    proxy.wait_ready().await;
    assert_eq!(deliver(&proxy, &spammer).await, StatusCode::FORBIDDEN);
    assert_eq!(deliver(&proxy, &mallory).await, StatusCode::ACCEPTED);
    let before = proxy.metrics().await;

    // A gets a severity Mastodon does not know on line 3; B suspends evil.test.
    std::fs::write(
        &a,
        csv(&[
            "spam.test,silence,false,false,,false",
            "other.test,block,false,false,,false",
        ]),
    )
    .unwrap();
    std::fs::write(&b, csv(&["evil.test,suspend,false,false,,false"])).unwrap();
    let (status, body) = admin_reload(&proxy).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body.starts_with(&format!("refused {}:3: unknown severity", a.display()))
            && body.contains("its last good copy stays in force\nreloaded\n"),
        "{body}"
    );
    assert!(
        body.ends_with(
            "failed: 1 refused (first lines); the other sources' changes are in force\n"
        ),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "{}: suspend=1 silence=0 noop=0 allow=0 exclude=0 actor_suspend=0 \
             (refused: last good copy in force)\n",
            a.display()
        )) && body.contains(&format!("{}: suspend=1 silence=0 noop=0", b.display())),
        "{body}"
    );
    assert_eq!(
        deliver(&proxy, &mallory).await,
        StatusCode::FORBIDDEN,
        "B's edit"
    );
    assert_eq!(
        deliver(&proxy, &spammer).await,
        StatusCode::FORBIDDEN,
        "A's old rule"
    );
    let during = proxy.metrics().await;
    let stale = "inboxguard_rules_source_stale";
    assert_eq!(gauge(&during, stale, &a), Some(1.0), "{during}");
    assert_eq!(gauge(&during, stale, &b), Some(0.0), "{during}");
    assert!(reloads(&during, "failure") > reloads(&before, "failure"));
    let failing = "inboxguard_rules_reload_failing_since_timestamp_seconds";
    assert!(metric_value(&during, failing).unwrap() > 0.0, "{during}");

    // A fixed: its new rule (spam.test only limited, so forwarded) is in force.
    std::fs::write(&a, csv(&["spam.test,silence,false,false,,false"])).unwrap();
    let (status, body) = admin_reload(&proxy).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(deliver(&proxy, &spammer).await, StatusCode::ACCEPTED);
    assert_eq!(deliver(&proxy, &mallory).await, StatusCode::FORBIDDEN);
    let after = proxy.metrics().await;
    assert_eq!(gauge(&after, stale, &a), Some(0.0), "{after}");
    assert_eq!(metric_value(&after, failing), Some(0.0), "{after}");
}

/// A public comment that opens a quote and never closes it would swallow the rows after it
/// into the comment, lifting their suspensions: the file is refused at the line where the
/// quote opens, and the suspension stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unclosed_quote_is_refused_and_the_suspension_stays() {
    let (s, path) = setup(&csv(&[
        "first.test,suspend,false,false,,false",
        "evil.test,suspend,false,false,,false",
    ]))
    .await;
    assert_eq!(deliver(&s.proxy, &s.actor).await, StatusCode::FORBIDDEN);
    let failures_before = reloads(&s.proxy.metrics().await, "failure");

    let broken = csv(&[
        "first.test,suspend,false,false,\"Harassment campaign, see report,false",
        "evil.test,suspend,false,false,,false",
        "other.test,silence,false,false,,false",
    ]);
    std::fs::write(&path, broken).unwrap();
    let (status, body) = admin_reload(&s.proxy).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body.contains(&format!("{}:2: a quoted field runs past", path.display())),
        "{body}"
    );
    assert_eq!(deliver(&s.proxy, &s.actor).await, StatusCode::FORBIDDEN);
    let metrics = s.proxy.metrics().await;
    assert!(reloads(&metrics, "failure") > failures_before, "{metrics}");
    assert_eq!(loaded(&metrics, &path, "suspend"), Some(2.0), "{metrics}");
    assert_eq!(
        gauge(&metrics, "inboxguard_rules_source_stale", &path),
        Some(1.0),
        "{metrics}"
    );
}

/// `inboxguard accept --config FILE <source>` asks the proxy running with that config, on
/// its admin listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accept_command_reaches_the_running_proxy() {
    let (s, path) = setup(&csv(&["evil.test,suspend,false,false,,false"])).await;
    std::fs::write(&path, csv(&[])).unwrap();
    let (status, _) = admin_reload(&s.proxy).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(deliver(&s.proxy, &s.actor).await, StatusCode::FORBIDDEN);

    let accept = |source: String| {
        let config = s.proxy.config_path.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_inboxguard"))
                .arg("accept")
                .arg("--config")
                .arg(config)
                .arg(source)
                .output()
                .unwrap()
        })
    };
    let out = within("accept", accept("no-such-list.csv".into()))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    let out = within("accept", accept(path.display().to_string()))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("accepted {}", path.display())),
        "{stdout}"
    );
    assert_eq!(deliver(&s.proxy, &s.actor).await, StatusCode::ACCEPTED);
}

/// `explain --admin URL` asks the running proxy: the same report as `explain --config`, and
/// still the rules in force while the file on disk is broken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_asks_the_running_proxy_with_the_same_output() {
    let (s, path) = setup(&csv(&[
        "evil.test,suspend,false,true,Harassment,false",
        "other.test,silence,false,false,,false",
    ]))
    .await;
    let config = s.proxy.config_path.display().to_string();
    let admin = format!("http://{}", s.proxy.admin_addr);
    let activity = path.with_file_name("activity.json");
    std::fs::write(
        &activity,
        r#"{"type":"Create","id":"https://evil.test/a/1","actor":"https://evil.test/users/mallory","object":{"type":"Note","attributedTo":"https://other.test/users/o"}}"#,
    )
    .unwrap();
    let explain = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_inboxguard"))
                .arg("explain")
                .args(args)
                .env_remove("RUST_LOG")
                .output()
                .unwrap()
        })
    };
    let offline = |subject: &str| explain(vec!["--config".into(), config.clone(), subject.into()]);
    let live = |subject: &str| explain(vec!["--admin".into(), admin.clone(), subject.into()]);
    let text = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();

    let subjects = [
        "evil.test".to_string(),
        "@mallory@sub.evil.test".to_string(),
        activity.display().to_string(),
    ];
    let mut before = Vec::new();
    for subject in &subjects {
        let from_disk = within("explain", offline(subject)).await.unwrap();
        let from_proxy = within("explain --admin", live(subject)).await.unwrap();
        assert!(from_disk.status.success() && from_proxy.status.success());
        assert!(
            text(&from_disk).contains("reject (403)"),
            "{}",
            text(&from_disk)
        );
        assert_eq!(text(&from_proxy), text(&from_disk), "{subject}");
        before.push(text(&from_proxy));
    }

    // Broken on disk: `explain --config` refuses it, the proxy answers from its last good copy.
    std::fs::write(
        &path,
        csv(&[
            "evil.test,suspend,false,true,\"Harassment,false",
            "x.test,silence,false,false,,false",
        ]),
    )
    .unwrap();
    let (status, _) = admin_reload(&s.proxy).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let from_disk = within("explain", offline("evil.test")).await.unwrap();
    assert_eq!(from_disk.status.code(), Some(64));
    for (subject, before) in subjects.iter().zip(&before) {
        let from_proxy = within("explain --admin", live(subject)).await.unwrap();
        assert_eq!(&text(&from_proxy), before, "{subject}");
    }
    let bad = within("explain --admin", live("not a domain!"))
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a domain"));
}

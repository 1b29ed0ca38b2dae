//! Friendly federators end to end: the whole proxy in process with real signatures and a
//! recording Puma. Laundered activities are answered 202 and never reach Puma; evidence is
//! counted, served at `/admin/friendly-federators`, saved at shutdown and loaded at the next
//! start, and read by the `inboxguard report` binary; escalation generates (or, for
//! `action = "report"`, does not generate) a rule that rejects the domain.

// Helpers outside #[test] fns panic on a broken environment too, which is the right failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use http::StatusCode;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const LOCAL: &str = "mastodon.local";
const INBOX: &str = "/inbox";
const BLOCKLIST: &str = "#domain,#severity\nbad.example,suspend\nquiet.example,silence\n";

async fn deliver(proxy: &Proxy, actor: &Actor, body: &[u8]) -> StatusCode {
    within(
        "signed delivery",
        proxy.post_signed(actor, INBOX, LOCAL, body),
    )
    .await
    .0
}

/// A `Create` of a `Note` by `actor` with extra object fields.
fn create(actor: &Actor, n: u32, extra: Value) -> Vec<u8> {
    let mut object = json!({
        "id": format!("{}/statuses/{n}", actor.id),
        "type": "Note",
        "attributedTo": actor.id,
        "content": "<p>hello</p>",
    });
    if let (Some(object), Value::Object(extra)) = (object.as_object_mut(), extra) {
        object.extend(extra);
    }
    actor.activity("Create", object)
}

async fn admin_json(proxy: &Proxy) -> Value {
    let (status, text) = get_text(proxy.admin_addr, "/admin/friendly-federators").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn domain<'v>(report: &'v Value, name: &str) -> &'v Value {
    report["domains"]
        .as_array()
        .and_then(|ds| ds.iter().find(|d| d["domain"] == name))
        .unwrap_or_else(|| panic!("{name} not in {report:#}"))
}

/// Polls the admin JSON until `done` holds (the maintenance tick is asynchronous).
async fn wait_for(proxy: &Proxy, what: &str, done: impl Fn(&Value, &str) -> bool) {
    within(what, async {
        loop {
            let report = admin_json(proxy).await;
            if done(&report, &proxy.metrics().await) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn laundered_activities_are_dropped_and_disabled_kinds_forwarded() {
    let friend = RemoteInstance::start("friend.example").await;
    let fred = friend.add_actor("fred");
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&friend)
        .blocklist_file("blocks.csv", BLOCKLIST)
        .blocklist_file("preview.txt", "preview.example\n")
        .configure(|c| c.blocklists[1].dry_run = true)
        .toml("[friendly_federators]\nreply = true\nquote = true\n")
        .start()
        .await;
    proxy.wait_ready().await;

    // Dropped: answered 202, never forwarded.
    let dropped = [
        (
            "laundered_announce",
            fred.activity("Announce", json!("https://bad.example/notes/1")),
        ),
        (
            "laundered_announce",
            fred.activity(
                "Announce",
                json!({"id": "https://relay.example/n/1", "attributedTo": "https://sub.bad.example/u/b"}),
            ),
        ),
        (
            "laundered_attributed",
            create(
                &fred,
                1,
                json!({"attributedTo": "https://bad.example/users/b"}),
            ),
        ),
        (
            "laundered_reply",
            create(&fred, 2, json!({"inReplyTo": "https://bad.example/notes/2"})),
        ),
        (
            "laundered_quote",
            create(&fred, 3, json!({"quoteUrl": "https://bad.example/notes/3"})),
        ),
        (
            "laundered_quote",
            create(
                &fred,
                4,
                json!({"_misskey_quote": "https://bad.example/notes/4"}),
            ),
        ),
    ];
    for (reason, body) in &dropped {
        assert_eq!(
            deliver(&proxy, &fred, body).await,
            StatusCode::ACCEPTED,
            "{reason}"
        );
    }
    assert_eq!(puma.count(), 0, "Puma must not see a laundered activity");

    // Forwarded: mentions are off; a reply into a limited domain is evidence only; a dry-run
    // suspend is forwarded and counted as would_reject.
    let forwarded = [
        create(
            &fred,
            5,
            json!({"tag": [{"type": "Mention", "href": "https://bad.example/users/b"}]}),
        ),
        create(
            &fred,
            6,
            json!({"inReplyTo": "https://quiet.example/notes/1"}),
        ),
        fred.activity("Announce", json!("https://preview.example/notes/1")),
        create(
            &fred,
            7,
            json!({"inReplyTo": "https://elsewhere.example/n"}),
        ),
    ];
    for body in &forwarded {
        assert_eq!(deliver(&proxy, &fred, body).await, StatusCode::ACCEPTED);
    }
    let seen: Vec<_> = puma.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(seen.len(), forwarded.len());
    for (seen, sent) in seen.iter().zip(&forwarded) {
        assert_eq!(&seen[..], &sent[..], "forwarded byte for byte");
    }

    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "dropped", "laundered_announce"), 2.0, "{m}");
    assert_eq!(requests(&m, "dropped", "laundered_attributed"), 1.0, "{m}");
    assert_eq!(requests(&m, "dropped", "laundered_reply"), 1.0, "{m}");
    assert_eq!(requests(&m, "dropped", "laundered_quote"), 2.0, "{m}");
    assert_eq!(
        requests(&m, "would_reject", "laundered_announce"),
        1.0,
        "{m}"
    );
    assert_eq!(requests(&m, "forwarded", "forwarded"), 3.0, "{m}");
    let refs = |kind: &str, severity: &str| {
        metric_value(
            &m,
            &format!("inboxguard_friendly_federator_references_total{{kind=\"{kind}\",severity=\"{severity}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(refs("announce", "suspend"), 2.0);
    assert_eq!(refs("quote", "suspend"), 2.0);
    assert_eq!(refs("mention", "suspend"), 1.0);
    assert_eq!(refs("reply", "suspend"), 1.0);
    assert_eq!(refs("reply", "silence"), 1.0);
    assert!(!m.contains("friend.example"), "no domain label: {m}");

    // The evidence, as the admin endpoint serves it.
    let report = admin_json(&proxy).await;
    assert_eq!(report["tracked_domains"], 1);
    assert_eq!(
        report["dropping"],
        json!(["announce", "reply", "quote", "attributed_to"])
    );
    assert_eq!(report["escalation"], Value::Null);
    let d = domain(&report, "friend.example");
    assert_eq!(d["total"], 8, "{d:#}");
    assert_eq!(d["dropped"], 6);
    assert_eq!(
        d["by_kind"],
        json!({"announce": 2, "reply": 2, "quote": 2, "mention": 1, "attributed_to": 1})
    );
    assert_eq!(d["by_severity"], json!({"silence": 1, "suspend": 7}));
    let referenced: Vec<&str> = d["referenced"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["domain"].as_str().unwrap())
        .collect();
    assert_eq!(
        referenced,
        ["bad.example", "sub.bad.example", "quiet.example"]
    );
    assert_eq!(d["samples"].as_array().unwrap().len(), 5);
    assert_eq!(d.get("status"), None);
}

#[tokio::test]
async fn announce_can_be_turned_off() {
    let friend = RemoteInstance::start("friend.example").await;
    let fred = friend.add_actor("fred");
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&friend)
        .blocklist_file("blocks.csv", BLOCKLIST)
        .toml("[friendly_federators]\nannounce = false\nattributed_to = false\n")
        .start()
        .await;
    proxy.wait_ready().await;
    let boost = fred.activity("Announce", json!("https://bad.example/notes/1"));
    assert_eq!(deliver(&proxy, &fred, &boost).await, StatusCode::ACCEPTED);
    let note = create(&fred, 1, json!({"attributedTo": "https://bad.example/u/b"}));
    assert_eq!(deliver(&proxy, &fred, &note).await, StatusCode::ACCEPTED);
    assert_eq!(puma.count(), 2, "both forwarded");
    let d = admin_json(&proxy).await;
    assert_eq!(domain(&d, "friend.example")["dropped"], 0);
}

#[tokio::test]
async fn a_rules_file_table_overrides_the_config_kinds() {
    let friend = RemoteInstance::start("friend.example").await;
    let fred = friend.add_actor("fred");
    let puma = RecordingUpstream::start().await;
    // The config turns replies off and announces on (the defaults); the moderators' rules file
    // turns replies on and announces off, and wins.
    let proxy = Proxy::builder(puma.addr())
        .remote(&friend)
        .blocklist_file("blocks.csv", BLOCKLIST)
        .blocklist_file(
            "rules.toml",
            "[friendly_federators]\nannounce = false\nreply = true\n",
        )
        .start()
        .await;
    proxy.wait_ready().await;
    let reply = create(
        &fred,
        1,
        json!({"inReplyTo": "https://bad.example/notes/9"}),
    );
    assert_eq!(deliver(&proxy, &fred, &reply).await, StatusCode::ACCEPTED);
    assert_eq!(puma.count(), 0, "the reply is dropped");
    let boost = fred.activity("Announce", json!("https://bad.example/notes/1"));
    assert_eq!(deliver(&proxy, &fred, &boost).await, StatusCode::ACCEPTED);
    assert_eq!(puma.count(), 1, "the boost is forwarded");
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "dropped", "laundered_reply"), 1.0);
    assert_eq!(requests(&m, "dropped", "laundered_announce"), 0.0);
    let d = admin_json(&proxy).await;
    assert_eq!(d["dropping"], json!(["reply", "attributed_to"]), "{d}");
}

fn evidence_toml(path: &Path, extra: &str) -> String {
    format!(
        "[friendly_federators]\nevidence_file = {}\n{extra}\n",
        toml::Value::String(path.display().to_string())
    )
}

#[tokio::test]
async fn evidence_is_saved_at_shutdown_reloaded_and_reported() {
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("friendly-federators.json");
    let friend = RemoteInstance::start("friend.example").await;
    let fred = friend.add_actor("fred");
    let puma = RecordingUpstream::start().await;
    let start = || {
        Proxy::builder(puma.addr())
            .remote(&friend)
            .blocklist_file("blocks.csv", BLOCKLIST)
            // Long enough that only the shutdown save can have written the file.
            .toml(&evidence_toml(&file, "persist_interval_secs = 3600"))
            .start()
    };
    let proxy = start().await;
    proxy.wait_ready().await;
    let boost = fred.activity("Announce", json!("https://bad.example/notes/1"));
    let boost_id = serde_json::from_slice::<Value>(&boost).unwrap()["id"].clone();
    assert_eq!(deliver(&proxy, &fred, &boost).await, StatusCode::ACCEPTED);
    let reply = create(&fred, 1, json!({"inReplyTo": "https://quiet.example/n/1"}));
    assert_eq!(deliver(&proxy, &fred, &reply).await, StatusCode::ACCEPTED);
    assert!(!file.exists(), "not saved before the interval or shutdown");
    proxy.shutdown().await.expect("clean shutdown");
    assert!(file.exists(), "saved at shutdown");

    // `inboxguard report` reads the saved file, with the escalation settings of its config.
    let config = state.path().join("inboxguard.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:18080\"\n[upstream]\nurl = \"http://127.0.0.1:13000\"\n{}",
            evidence_toml(&file, "threshold = 2")
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run_inboxguard(&["report", "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 sending domains tracked"), "{stdout}");
    assert!(
        stdout.contains("escalation: 2 references within 7 days -> report"),
        "{stdout}"
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("friend.example "))
        .unwrap_or_else(|| panic!("no row for friend.example:\n{stdout}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    // DOMAIN TOTAL IN_WINDOW DROPPED ANNOUNCE REPLY QUOTE MENTION ATTRIBUTED FIRST LAST STATUS
    assert_eq!(
        cells[..9],
        ["friend.example", "2", "2", "1", "1", "1", "0", "0", "0"],
        "{stdout}"
    );
    assert_eq!(cells[11], "would_escalate", "{stdout}");
    assert!(
        stdout.contains("referenced: bad.example (1), quiet.example (1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("sample: {}", boost_id.as_str().unwrap())),
        "{stdout}"
    );
    let (code, json_out, _) =
        run_inboxguard(&["report", "--config", config.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0));
    let parsed: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(domain(&parsed, "friend.example")["total"], 2);

    // A restart loads what was saved and keeps counting from there.
    let proxy = start().await;
    proxy.wait_ready().await;
    assert_eq!(
        domain(&admin_json(&proxy).await, "friend.example")["total"],
        2
    );
    let again = fred.activity("Announce", json!("https://bad.example/notes/2"));
    assert_eq!(deliver(&proxy, &fred, &again).await, StatusCode::ACCEPTED);
    assert_eq!(
        domain(&admin_json(&proxy).await, "friend.example")["total"],
        3
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "inboxguard_friendly_federator_evidence_file_total{op=\"load\",result=\"ok\"}"
        ),
        Some(1.0),
        "{m}"
    );
    proxy.shutdown().await.expect("clean shutdown");
    assert_eq!(puma.count(), 1, "only the reply into a limited domain");
}

#[tokio::test]
async fn report_without_an_evidence_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("inboxguard.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:18080\"\n[upstream]\nurl = \"http://127.0.0.1:13000\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run_inboxguard(&["report", "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("evidence_file"), "{stderr}");
    // Configured, but nothing saved yet: an empty answer, not an error.
    let file = dir.path().join("ff.json");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:18080\"\n[upstream]\nurl = \"http://127.0.0.1:13000\"\n{}",
            evidence_toml(&file, "")
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run_inboxguard(&["report", "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("no evidence saved yet"), "{stdout}");
    // As JSON too: what the admin endpoint serves before any evidence.
    let (code, stdout, stderr) =
        run_inboxguard(&["report", "--config", config.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["tracked_domains"], 0, "{stdout}");
    assert_eq!(report["domains"], json!([]), "{stdout}");
}

#[tokio::test]
async fn escalation_to_suspend_generates_a_rule_that_rejects_the_domain() {
    let friend = RemoteInstance::start("friend.example").await;
    let other = RemoteInstance::start("other.example").await;
    let (fred, olga) = (friend.add_actor("fred"), other.add_actor("olga"));
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&friend)
        .remote(&other)
        .blocklist_file("blocks.csv", BLOCKLIST)
        .toml("[friendly_federators]\npersist_interval_secs = 1\nthreshold = 2\nwindow = \"7d\"\naction = \"suspend\"\n")
        .start()
        .await;
    proxy.wait_ready().await;
    // One reference from other.example: under the threshold.
    let boost = olga.activity("Announce", json!("https://bad.example/notes/9"));
    assert_eq!(deliver(&proxy, &olga, &boost).await, StatusCode::ACCEPTED);
    for n in 1..=2 {
        let boost = fred.activity("Announce", json!(format!("https://bad.example/notes/{n}")));
        assert_eq!(deliver(&proxy, &fred, &boost).await, StatusCode::ACCEPTED);
    }
    wait_for(&proxy, "escalation", |report, metrics| {
        report["escalated"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
            && metric_value(
                metrics,
                "inboxguard_rules_loaded{source=\"friendly-federators\",severity=\"suspend\"}",
            ) == Some(1.0)
    })
    .await;
    let report = admin_json(&proxy).await;
    assert_eq!(report["escalated"][0]["domain"], "friend.example");
    assert_eq!(report["escalated"][0]["severity"], "suspend");
    assert_eq!(report["escalated"].as_array().unwrap().len(), 1);
    assert_eq!(domain(&report, "friend.example")["status"], "escalated");
    let m = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "inboxguard_friendly_federator_escalations{action=\"suspend\"}"
        ),
        Some(1.0),
        "{m}"
    );

    // The generated rule is enforced like any suspend: 403 for any delivery from the domain.
    let harmless = create(&fred, 1, json!({}));
    assert_eq!(
        deliver(&proxy, &fred, &harmless).await,
        StatusCode::FORBIDDEN
    );
    let harmless = create(&olga, 1, json!({}));
    assert_eq!(
        deliver(&proxy, &olga, &harmless).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 1, "only other.example's note");
}

#[tokio::test]
async fn escalation_action_report_generates_no_rule() {
    let friend = RemoteInstance::start("friend.example").await;
    let fred = friend.add_actor("fred");
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&friend)
        .blocklist_file("blocks.csv", BLOCKLIST)
        .toml("[friendly_federators]\npersist_interval_secs = 1\nthreshold = 1\nwindow = \"1d\"\n")
        .start()
        .await;
    proxy.wait_ready().await;
    let boost = fred.activity("Announce", json!("https://bad.example/notes/1"));
    assert_eq!(deliver(&proxy, &fred, &boost).await, StatusCode::ACCEPTED);
    // The tick has evaluated escalation once the gauge shows the domain.
    wait_for(&proxy, "escalation evaluated", |_, metrics| {
        metric_value(
            metrics,
            "inboxguard_friendly_federator_escalations{action=\"report\"}",
        ) == Some(1.0)
    })
    .await;
    let report = admin_json(&proxy).await;
    assert_eq!(report["escalation"]["action"], "report");
    assert_eq!(report["escalated"], json!([]));
    assert_eq!(
        domain(&report, "friend.example")["status"],
        "would_escalate"
    );
    assert!(!proxy.metrics().await.contains("friendly-federators"));
    let note = create(&fred, 1, json!({}));
    assert_eq!(deliver(&proxy, &fred, &note).await, StatusCode::ACCEPTED);
    assert_eq!(puma.count(), 1, "still forwarded");
}

/// POSTs `/admin/reload`, which must succeed, and returns its answer.
async fn reload_ok(proxy: &Proxy) -> String {
    let (status, body) = admin_reload(proxy).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn generated(metrics: &str, severity: &str) -> Option<f64> {
    metric_value(
        metrics,
        &format!(
            "inboxguard_rules_loaded{{source=\"friendly-federators\",severity=\"{severity}\"}}"
        ),
    )
}

/// The action is changed by rules reloads: a domain already over the threshold while the
/// action was `report` escalates once it is `limit` (a silence rule: still forwarded), is
/// regenerated as a suspend rule when the action becomes `suspend`, and an exclusion
/// overrides the escalated domain.
#[tokio::test]
async fn escalation_follows_the_action_in_force_and_exclusions_override_it() {
    let friend = RemoteInstance::start("friend.example").await;
    let fred = friend.add_actor("fred");
    let puma = RecordingUpstream::start().await;
    let builder = Proxy::builder(puma.addr())
        .remote(&friend)
        .blocklist_file("blocks.csv", BLOCKLIST)
        .toml("[friendly_federators]\npersist_interval_secs = 1\nthreshold = 2\n");
    let rules = builder.write_file("rules.toml", "");
    let proxy = builder.blocklist(rules).start().await;
    proxy.wait_ready().await;
    for n in 1..=2 {
        let boost = fred.activity("Announce", json!(format!("https://bad.example/notes/{n}")));
        assert_eq!(deliver(&proxy, &fred, &boost).await, StatusCode::ACCEPTED);
    }
    wait_for(&proxy, "over the threshold under report", |_, m| {
        metric_value(
            m,
            "inboxguard_friendly_federator_escalations{action=\"report\"}",
        ) == Some(1.0)
    })
    .await;

    proxy.write_file("rules.toml", "[friendly_federators]\naction = \"limit\"\n");
    reload_ok(&proxy).await;
    wait_for(&proxy, "escalated to limit", |r, m| {
        generated(m, "silence") == Some(1.0) && r["escalated"][0]["severity"] == "silence"
    })
    .await;
    // A generated silence rule forwards, as any silence rule.
    let note = create(&fred, 1, json!({}));
    assert_eq!(deliver(&proxy, &fred, &note).await, StatusCode::ACCEPTED);
    assert_eq!(puma.count(), 1);

    proxy.write_file(
        "rules.toml",
        "[friendly_federators]\naction = \"suspend\"\n",
    );
    reload_ok(&proxy).await;
    wait_for(&proxy, "regenerated as suspend", |r, m| {
        generated(m, "suspend") == Some(1.0)
            && generated(m, "silence") == Some(0.0)
            && r["escalated"][0]["severity"] == "suspend"
    })
    .await;
    let note = create(&fred, 2, json!({}));
    assert_eq!(deliver(&proxy, &fred, &note).await, StatusCode::FORBIDDEN);

    // An exclusion overrides the generated rule.
    proxy.write_file(
        "rules.toml",
        "[friendly_federators]\naction = \"suspend\"\n\n[[exclude]]\ndomain = \"friend.example\"\n",
    );
    let answer = reload_ok(&proxy).await;
    assert!(
        answer.contains("friendly-federators: suspend=0"),
        "{answer}"
    );
    let note = create(&fred, 3, json!({}));
    assert_eq!(deliver(&proxy, &fred, &note).await, StatusCode::ACCEPTED);
    assert_eq!(puma.count(), 2);
    assert_eq!(
        admin_json(&proxy).await["escalated"][0]["domain"],
        "friend.example"
    );
}

/// Escalation configured in the main config survives a rules file whose
/// `[friendly_federators]` table only changes a laundering kind: nothing is un-escalated in
/// force or in the evidence file.
#[tokio::test]
async fn a_rules_file_table_without_escalation_keys_keeps_the_config_escalations() {
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("friendly-federators.json");
    let friend = RemoteInstance::start("friend.example").await;
    let other = RemoteInstance::start("other.example").await;
    let (fred, olga) = (friend.add_actor("fred"), other.add_actor("olga"));
    let puma = RecordingUpstream::start().await;
    let builder = Proxy::builder(puma.addr())
        .remote(&friend)
        .remote(&other)
        .blocklist_file("blocks.csv", BLOCKLIST)
        .toml(&evidence_toml(
            &file,
            "persist_interval_secs = 1\nthreshold = 2\naction = \"suspend\"",
        ));
    let rules = builder.write_file("rules.toml", "");
    let proxy = builder.blocklist(rules).start().await;
    proxy.wait_ready().await;
    for n in 1..=2 {
        let boost = fred.activity("Announce", json!(format!("https://bad.example/notes/{n}")));
        assert_eq!(deliver(&proxy, &fred, &boost).await, StatusCode::ACCEPTED);
    }
    wait_for(&proxy, "escalation", |_, m| {
        generated(m, "suspend") == Some(1.0)
    })
    .await;

    proxy.write_file("rules.toml", "[friendly_federators]\nreply = true\n");
    reload_ok(&proxy).await;
    // New evidence makes the next tick save the file; that tick evaluated escalation first.
    let boost = olga.activity("Announce", json!("https://bad.example/notes/9"));
    assert_eq!(deliver(&proxy, &olga, &boost).await, StatusCode::ACCEPTED);
    within("a tick after the reload", async {
        while !std::fs::read_to_string(&file).is_ok_and(|t| t.contains("other.example")) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        saved["escalated"]["friend.example"].is_object(),
        "{saved:#}"
    );
    let m = proxy.metrics().await;
    assert_eq!(generated(&m, "suspend"), Some(1.0), "{m}");
    let report = admin_json(&proxy).await;
    assert_eq!(report["escalation"]["action"], "suspend", "{report:#}");
    assert_eq!(
        report["dropping"],
        json!(["announce", "reply", "attributed_to"])
    );
    let note = create(&fred, 1, json!({}));
    assert_eq!(deliver(&proxy, &fred, &note).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_mention_of_a_suspended_account_is_dropped_when_mention_is_on() {
    let friend = RemoteInstance::start("friend.example").await;
    let fred = friend.add_actor("fred");
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&friend)
        .blocklist_file("blocks.csv", BLOCKLIST)
        .toml("[friendly_federators]\nmention = true\n")
        .start()
        .await;
    proxy.wait_ready().await;
    let mention = create(
        &fred,
        1,
        json!({"tag": [{"type": "Mention", "href": "https://bad.example/users/b"}]}),
    );
    assert_eq!(deliver(&proxy, &fred, &mention).await, StatusCode::ACCEPTED);
    // A mention of a limited account is evidence, not a drop.
    let limited = create(
        &fred,
        2,
        json!({"tag": [{"type": "Mention", "href": "https://quiet.example/users/q"}]}),
    );
    assert_eq!(deliver(&proxy, &fred, &limited).await, StatusCode::ACCEPTED);
    assert_eq!(puma.count(), 1, "only the mention of the limited account");
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "dropped", "laundered_mention"), 1.0, "{m}");
    let d = admin_json(&proxy).await;
    assert_eq!(domain(&d, "friend.example")["by_kind"]["mention"], 2);
    assert_eq!(domain(&d, "friend.example")["dropped"], 1);
}

#[tokio::test]
async fn the_evidence_endpoint_needs_the_admin_token() {
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .admin_token("s3cret-admin-token-0123456789\n")
        .start()
        .await;
    proxy.wait_ready().await;
    let get = |auth: Option<&'static str>| {
        let headers = match auth {
            Some(value) => headers(&[("authorization", value)]),
            None => http::HeaderMap::new(),
        };
        send(
            proxy.admin_addr,
            http::Method::GET,
            "/admin/friendly-federators",
            headers,
            Vec::new(),
        )
    };
    assert_eq!(get(None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(Some("Bearer wrong-token-0123456789")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _, body) = get(Some("Bearer s3cret-admin-token-0123456789")).await;
    assert_eq!(status, StatusCode::OK);
    let report: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(report["tracked_domains"], 0);
}

/// The spelling of the escalation rule, as an inline table in a rules file.
#[tokio::test]
async fn the_inline_escalation_rule_spelling_works() {
    let friend = RemoteInstance::start("friend.example").await;
    let fred = friend.add_actor("fred");
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&friend)
        .blocklist_file("blocks.csv", BLOCKLIST)
        .blocklist_file(
            "rules.toml",
            "friendly_federators = { threshold = 1, window = \"7d\", action = \"report\" }\n",
        )
        .toml("[friendly_federators]\npersist_interval_secs = 1\n")
        .start()
        .await;
    proxy.wait_ready().await;
    let boost = fred.activity("Announce", json!("https://bad.example/notes/1"));
    assert_eq!(deliver(&proxy, &fred, &boost).await, StatusCode::ACCEPTED);
    wait_for(&proxy, "escalation evaluated", |_, m| {
        metric_value(
            m,
            "inboxguard_friendly_federator_escalations{action=\"report\"}",
        ) == Some(1.0)
    })
    .await;
    let report = admin_json(&proxy).await;
    assert_eq!(
        report["escalation"],
        json!({"threshold": 1, "window_days": 7, "action": "report"})
    );
    assert_eq!(
        domain(&report, "friend.example")["status"],
        "would_escalate"
    );
    assert_eq!(report["escalated"], json!([]));
}

/// An evidence file whose directory is gone: every save fails, and a restart would come up
/// without the escalations. A running proxy keeps refusing the escalated domain and shows the
/// failing save in a metric and `/readyz`; `check` and `serve` refuse the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_evidence_directory_is_shown_and_refused() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join("evidence");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("friendly-federators.json");
    let friend = RemoteInstance::start("friend.example").await;
    let other = RemoteInstance::start("other.example").await;
    let (fred, olga) = (friend.add_actor("fred"), other.add_actor("olga"));
    let puma = RecordingUpstream::start().await;
    let settings = "persist_interval_secs = 1\nthreshold = 1\naction = \"suspend\"";
    let proxy = Proxy::builder(puma.addr())
        .remote(&friend)
        .remote(&other)
        .blocklist_file("blocks.csv", BLOCKLIST)
        .toml(&evidence_toml(&file, settings))
        .start()
        .await;
    proxy.wait_ready().await;
    let boost = fred.activity("Announce", json!("https://bad.example/notes/1"));
    assert_eq!(deliver(&proxy, &fred, &boost).await, StatusCode::ACCEPTED);
    wait_for(&proxy, "escalation saved", |report, _| {
        report["escalated"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    })
    .await;
    within("first save", async {
        while !file.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    std::fs::remove_dir_all(&dir).unwrap();
    // New evidence, from another domain, to be saved.
    let boost = olga.activity("Announce", json!("https://bad.example/notes/3"));
    assert_eq!(deliver(&proxy, &olga, &boost).await, StatusCode::ACCEPTED);
    let boost = fred.activity("Announce", json!("https://bad.example/notes/2"));
    assert_eq!(deliver(&proxy, &fred, &boost).await, StatusCode::FORBIDDEN);
    let failed = "inboxguard_friendly_federator_evidence_file_total{op=\"save\",result=\"error\"}";
    wait_for(&proxy, "failed save counted", |_, metrics| {
        metric_value(metrics, failed).is_some_and(|n| n > 0.0)
    })
    .await;
    let (status, body) = get_text(proxy.admin_addr, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "still serving: {body}");
    assert!(
        body.starts_with("ready\n")
            && body.contains("error: friendly-federator evidence not saved")
            && body.contains("friendly-federators.json"),
        "{body}"
    );
    assert_eq!(deliver(&proxy, &fred, &boost).await, StatusCode::FORBIDDEN);
    // The proxy's directory goes with it; its config (listing the evidence file) stays.
    let config = state.path().join("inboxguard.toml");
    std::fs::copy(&proxy.config_path, &config).unwrap();
    let config = config.to_str().unwrap().to_string();
    proxy.shutdown().await.expect("clean shutdown");

    // `check` and a restart refuse the path instead of starting without the escalations.
    for command in ["check", "serve"] {
        let (code, stdout, stderr) = run_inboxguard(&[command, "--config", &config]);
        assert_eq!(code, Some(64), "{command}: {stdout}\n{stderr}");
        let said = format!("{stdout}{stderr}");
        assert!(
            said.contains("friendly_federators.evidence_file")
                && said.contains(&format!("directory {} does not exist", dir.display())),
            "{command}: {said}"
        );
    }
}

//! Content rules end to end over real sockets: a rules file's `[[content_rules]]` drop,
//! refuse or report verified activities by what they say; dry run forwards and counts; a
//! rule that expires stops applying without a reload; an edited file applies on reload; and
//! none of it applies to a request that is not verified.

mod common;

use common::*;
use http::StatusCode;
use serde_json::json;
use std::time::Duration;

/// A post in the shape of the 2024 waves: ten mentions, two of them of local accounts, and an
/// invite link.
fn wave_post(actor: &Actor, n: u32) -> serde_json::Value {
    let tags: Vec<_> = (0..10)
        .map(|i| {
            let host = if i < 2 { LOCAL } else { "elsewhere.example" };
            json!({"type": "Mention", "href": format!("https://{host}/users/u{i}")})
        })
        .collect();
    json!({
        "id": format!("{}/statuses/{n}", actor.id),
        "type": "Note",
        "attributedTo": actor.id,
        "content": "<p>free nitro: <a href=\"https://discord.gg/x1y2\">discord.gg/x1y2</a></p>",
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "tag": tags,
    })
}

const WAVE_RULES: &str = r#"
[[content_rules]]
name = "discord-nuke-2024"
comment = "mention spam with a Discord invite"
types = ["Create"]
mentions_at_least = 5
mentions_local_at_least = 2
text_matches = ['discord\.gg/', 'discord\.com/invite']
action = "drop"

[[content_rules]]
name = "no-crypto"
types = ["Create"]
link_domains = ["coin.example"]
action = "reject"

[[content_rules]]
name = "watch-polls"
object_types = ["Question"]
action = "report"

[[content_rules]]
name = "preview-hashtag"
hashtags_any = ["nitro"]
action = "drop"
dry_run = true
"#;

#[tokio::test]
async fn content_rules_drop_refuse_report_and_preview_verified_activities() {
    let remote = RemoteInstance::start("tiny.example").await;
    let a = remote.add_actor("a");
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&remote)
        .blocklist_file("rules.toml", WAVE_RULES)
        .start()
        .await;
    proxy.wait_ready().await;

    // The wave: dropped with 202, never forwarded.
    let spam = a.activity("Create", wave_post(&a, 1));
    assert_eq!(
        deliver_status(&proxy, &a, &spam).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 0, "a dropped activity is not forwarded");

    // An ordinary post from the same server is forwarded byte for byte.
    let ordinary = a.activity(
        "Create",
        note(&a, "hello <a href=\"https://discord.gg/x\">x</a>"),
    );
    assert_eq!(
        deliver_status(&proxy, &a, &ordinary).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 1);
    assert_eq!(puma.requests()[0].body, ordinary);

    // reject: 403.
    let mut coin = note(&a, "<a href=\"https://pump.coin.example/x\">buy</a>");
    coin["id"] = json!(format!("{}/statuses/2", a.id));
    let coin = a.activity("Create", coin);
    assert_eq!(
        deliver_status(&proxy, &a, &coin).await,
        StatusCode::FORBIDDEN
    );

    // report: forwarded and counted.
    let poll = a.activity(
        "Create",
        json!({"id": format!("{}/questions/1", a.id), "type": "Question", "content": "?"}),
    );
    assert_eq!(
        deliver_status(&proxy, &a, &poll).await,
        StatusCode::ACCEPTED
    );
    // dry run: forwarded, counted as would_reject.
    let tagged = a.activity(
        "Create",
        json!({"id": format!("{}/statuses/3", a.id), "type": "Note", "content": "#nitro",
               "tag": [{"type": "Hashtag", "name": "#Nitro"}]}),
    );
    assert_eq!(
        deliver_status(&proxy, &a, &tagged).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        puma.count(),
        3,
        "ordinary post, reported poll, previewed hashtag"
    );

    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "dropped", "content_rule"), 1.0);
    assert_eq!(requests(&m, "rejected", "content_rule"), 1.0);
    assert_eq!(requests(&m, "would_reject", "content_rule"), 1.0);
    for (rule, action) in [
        ("discord-nuke-2024", "drop"),
        ("no-crypto", "reject"),
        ("watch-polls", "report"),
        ("preview-hashtag", "drop"),
    ] {
        let name =
            format!("inboxguard_content_rule_matches_total{{action=\"{action}\",rule=\"{rule}\"}}");
        assert_eq!(metric_value(&m, &name), Some(1.0), "{name}\n{m}");
    }

    // Which servers the wave came from, per rule.
    let (status, text) = get_text(proxy.admin_addr, "/admin/content-rules").await;
    assert_eq!(status, StatusCode::OK);
    let report: serde_json::Value = serde_json::from_str(&text).expect("json");
    let wave = report["rules"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["rule"] == "discord-nuke-2024"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(wave["domains"][0]["domain"], "tiny.example");
    assert_eq!(wave["domains"][0]["matches"], 1);
    let spam_id = format!("{}/activities/", a.id);
    assert!(
        wave["domains"][0]["samples"][0]
            .as_str()
            .is_some_and(|s| s.starts_with(&spam_id)),
        "{text}"
    );

    // A forgery of the same wave is refused as a forgery, not acknowledged.
    let opts = SignOptions {
        tamper_body: true,
        ..SignOptions::default()
    };
    let (status, _, _) = deliver_with(&proxy, &a, &spam, opts).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(puma.count(), 3);
}

#[tokio::test]
async fn a_rule_stops_at_its_expiry_and_an_edited_file_applies_on_reload() {
    let remote = RemoteInstance::start("tiny.example").await;
    let a = remote.add_actor("a");
    let puma = RecordingUpstream::start().await;
    let expires = inboxguard::clock::unix_now() + 2;
    let rules = |expires: u64| {
        format!(
            "[[content_rules]]\nname = \"short\"\ntypes = [\"Like\"]\naction = \"drop\"\nexpires = \"{}\"\n",
            inboxguard::clock::rfc3339(expires)
        )
    };
    let proxy = Proxy::builder(puma.addr())
        .remote(&remote)
        .blocklist_file("rules.toml", &rules(expires))
        .start()
        .await;
    proxy.wait_ready().await;
    let like = || a.activity("Like", json!("https://mastodon.local/statuses/1"));
    assert_eq!(
        deliver_status(&proxy, &a, &like()).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 0);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        deliver_status(&proxy, &a, &like()).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        puma.count(),
        1,
        "an expired rule no longer applies, without a reload"
    );

    // The moderator extends it: the reload puts it back in force.
    proxy.write_file("rules.toml", &rules(inboxguard::clock::unix_now() + 3600));
    let (status, _) = admin_reload(&proxy).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        deliver_status(&proxy, &a, &like()).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 1);

    // A broken pattern is refused with its line; the last good rules stay in force.
    proxy.write_file(
        "rules.toml",
        "[[content_rules]]\nname = \"bad\"\naction = \"drop\"\ntext_matches = ['(']\n",
    );
    let (status, text) = admin_reload(&proxy).await;
    assert_ne!(status, StatusCode::OK);
    assert!(text.contains("rules.toml:4"), "{text}");
    assert_eq!(
        deliver_status(&proxy, &a, &like()).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 1, "the last good rule still drops");
}

#[tokio::test]
async fn an_actor_first_seen_moments_ago_is_new_and_later_is_not() {
    let remote = RemoteInstance::start("tiny.example").await;
    let a = remote.add_actor("a");
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&remote)
        .blocklist_file(
            "rules.toml",
            "[[content_rules]]\nname = \"brand-new\"\ntypes = [\"Like\"]\n\
             actor_first_seen_under = \"1s\"\naction = \"drop\"\n",
        )
        .start()
        .await;
    proxy.wait_ready().await;
    let like = || a.activity("Like", json!("https://mastodon.local/statuses/1"));
    assert_eq!(
        deliver_status(&proxy, &a, &like()).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 0, "a just-seen actor is new");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        deliver_status(&proxy, &a, &like()).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 1, "the first sighting is remembered");
}

/// Which servers a wave came from survives a restart: the matches are saved with the
/// evidence file at shutdown, loaded at the next start and counted on, and `inboxguard
/// report` prints them from the file, as a table and as JSON.
#[tokio::test]
async fn content_rule_evidence_is_saved_loaded_and_reported() {
    let state = tempfile::tempdir().expect("tempdir");
    let file = state.path().join("evidence.json");
    let remote = RemoteInstance::start("tiny.example").await;
    let a = remote.add_actor("a");
    let puma = RecordingUpstream::start().await;
    let evidence = format!(
        "[friendly_federators]\nevidence_file = {:?}\npersist_interval_secs = 3600\n",
        file.display().to_string()
    );
    let start = || {
        Proxy::builder(puma.addr())
            .remote(&remote)
            .blocklist_file("rules.toml", WAVE_RULES)
            .toml(&evidence)
            .start()
    };
    let proxy = start().await;
    proxy.wait_ready().await;
    let spam = a.activity("Create", wave_post(&a, 1));
    let spam_id = serde_json::from_slice::<serde_json::Value>(&spam).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        deliver_status(&proxy, &a, &spam).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 0);
    // What `report` needs: the evidence file (the rules only add escalation windows).
    let kept = state.path().join("inboxguard.toml");
    std::fs::write(
        &kept,
        format!(
            "[server]\nlisten = \"127.0.0.1:18080\"\n[upstream]\nurl = \"http://127.0.0.1:13000\"\n{evidence}"
        ),
    )
    .expect("config");
    proxy.shutdown().await.expect("clean shutdown");
    assert!(file.exists(), "saved at shutdown");

    let (code, stdout, stderr) = run_inboxguard(&["report", "--config", kept.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("content rule discord-nuke-2024: 1 matches from 1 sending domains"),
        "{stdout}"
    );
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("tiny.example "))
        .unwrap_or_else(|| panic!("no row for tiny.example:\n{stdout}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..3], ["tiny.example", "1", "0"], "{stdout}");
    assert!(stdout.contains(&format!("sample: {spam_id}")), "{stdout}");
    let (code, json_out, stderr) =
        run_inboxguard(&["report", "--config", kept.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let parsed: serde_json::Value = serde_json::from_str(&json_out).expect("json");
    assert_eq!(
        parsed["content_rules"][0]["domains"][0]["domain"], "tiny.example",
        "{json_out}"
    );

    // A restart loads the matches and counts on from there.
    let proxy = start().await;
    proxy.wait_ready().await;
    let again = a.activity("Create", wave_post(&a, 2));
    assert_eq!(
        deliver_status(&proxy, &a, &again).await,
        StatusCode::ACCEPTED
    );
    let (status, text) = get_text(proxy.admin_addr, "/admin/content-rules").await;
    assert_eq!(status, StatusCode::OK);
    let report: serde_json::Value = serde_json::from_str(&text).expect("json");
    let pair = &report["rules"][0]["domains"][0];
    assert_eq!(pair["matches"], 2, "{text}");
    assert_eq!(pair["samples"][0], spam_id.as_str(), "{text}");
    let (_, text) = get_text(proxy.admin_addr, "/admin/friendly-federators").await;
    let report: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(report["content_rules"][0]["matches"], 2, "{text}");
    assert_eq!(puma.count(), 0);
}

/// `escalate` on a content rule: a sending domain whose matches reach the threshold becomes a
/// rule of the generated source, exactly as an escalated friendly federator: refused from then
/// on (here `suspend`), logged as an `escalation` in the rule-change log, and named with its
/// rule by `explain` and the report. Another domain under the threshold is not touched.
#[tokio::test]
async fn a_content_rule_escalates_a_sending_domain_at_its_threshold() {
    let state = tempfile::tempdir().expect("tempdir");
    let file = state.path().join("evidence.json");
    let spammy = RemoteInstance::start("spammy.example").await;
    let tiny = RemoteInstance::start("tiny.example").await;
    let (s, t) = (spammy.add_actor("s"), tiny.add_actor("t"));
    let puma = RecordingUpstream::start().await;
    let rules = "[[content_rules]]\nname = \"invite-wave\"\ntypes = [\"Create\"]\n\
                 text_matches = ['discord\\.gg/']\naction = \"report\"\n\
                 escalate = { threshold = 2, window = \"1d\", action = \"suspend\" }\n";
    let proxy = Proxy::builder(puma.addr())
        .remote(&spammy)
        .remote(&tiny)
        .blocklist_file("rules.toml", rules)
        .toml(&format!(
            "[friendly_federators]\nevidence_file = {:?}\npersist_interval_secs = 1\n",
            file.display().to_string()
        ))
        .start()
        .await;
    proxy.wait_ready().await;
    // action = "report": each match is forwarded; the evidence counts.
    for n in 1..=2 {
        let post = s.activity("Create", wave_post(&s, n));
        assert_eq!(
            deliver_status(&proxy, &s, &post).await,
            StatusCode::ACCEPTED
        );
    }
    let post = t.activity("Create", wave_post(&t, 1));
    assert_eq!(
        deliver_status(&proxy, &t, &post).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 3);
    wait_metric(
        &proxy,
        "inboxguard_rules_loaded{source=\"friendly-federators\",severity=\"suspend\"}",
        |v| v == 1.0,
    )
    .await;

    // Refused like any suspended domain, whatever it sends; tiny.example is not.
    let like = s.activity("Like", json!("https://mastodon.local/statuses/1"));
    assert_eq!(
        deliver_status(&proxy, &s, &like).await,
        StatusCode::FORBIDDEN
    );
    let like = t.activity("Like", json!("https://mastodon.local/statuses/1"));
    assert_eq!(
        deliver_status(&proxy, &t, &like).await,
        StatusCode::ACCEPTED
    );

    let (_, text) = get_text(proxy.admin_addr, "/admin/friendly-federators").await;
    let report: serde_json::Value = serde_json::from_str(&text).expect("json");
    let escalated = report["escalated"].as_array().expect("escalated");
    assert_eq!(escalated.len(), 1, "{text}");
    assert_eq!(escalated[0]["domain"], "spammy.example");
    assert_eq!(escalated[0]["cause"], "content rule invite-wave");
    assert_eq!(escalated[0]["severity"], "suspend");
    assert_eq!(escalated[0]["references_in_window"], 2);

    let (status, text) = get_text(proxy.admin_addr, "/admin/explain?subject=spammy.example").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("decision: reject (403)"), "{text}");
    assert!(
        text.contains("content rule invite-wave: 2 matches within 1 days"),
        "{text}"
    );
    let (_, text) = get_text(proxy.admin_addr, "/admin/rule-changes?since=0").await;
    let log: serde_json::Value = serde_json::from_str(&text).expect("json");
    let escalation = log
        .as_array()
        .and_then(|l| l.iter().find(|c| c["trigger"] == "escalation"))
        .unwrap_or_else(|| panic!("no escalation in {text}"));
    assert_eq!(
        escalation["domains"][0]["domain"], "spammy.example",
        "{text}"
    );

    // Saved with the rule that escalated it.
    within("escalation saved", async {
        while !std::fs::read_to_string(&file).is_ok_and(|t| t.contains("invite-wave")) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("file")).expect("json");
    assert_eq!(
        saved["escalated"]["spammy.example"]["rule"], "invite-wave",
        "{saved:#}"
    );
}

#[test]
fn check_refuses_a_bad_escalation_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[content_rules]]\nname = \"w\"\ntypes = [\"Create\"]\naction = \"drop\"\n\
         escalate = { threshold = 20, window = \"36h\", action = \"limit\" }\n",
    )
    .expect("rules");
    let config = dir.path().join("inboxguard.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:18080\"\n[upstream]\nurl = \"http://127.0.0.1:13000\"\n\
             [[blocklists]]\npath = {:?}\n",
            rules.display().to_string()
        ),
    )
    .expect("config");
    let (code, stdout, stderr) = run_inboxguard(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(64), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("{}:5", rules.display()))
            && stderr.contains("escalate.window \"36h\": expected whole days"),
        "{stderr}"
    );
}

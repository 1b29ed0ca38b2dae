//! Auditing and lifting escalations end to end: `inboxguard escalations` lists what the
//! running proxy saved, `inboxguard escalations lift` asks the running proxy (admin listener)
//! to lift one, which takes it out of the rules in force at once, records who/when/why in the
//! evidence file and the rule-change log (`trigger="lift"`); only evidence counted after the
//! lift escalates the domain again. `--offline` lifts in the file of a stopped proxy.

mod common;

use common::*;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const BLOCKLIST: &str = "#domain,#severity\nbad.example,suspend\n";

async fn admin_json(proxy: &Proxy, path: &str) -> Value {
    let (status, value) = get_json(proxy.admin_addr, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {value}");
    value
}

/// Polls `/admin/escalations` until `done` holds (escalation runs on the save tick).
async fn wait_escalations(proxy: &Proxy, what: &str, done: impl Fn(&Value) -> bool) {
    within(what, async {
        loop {
            if done(&admin_json(proxy, "/admin/escalations").await) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

fn saved(file: &Path) -> Value {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

fn boost(actor: &Actor, n: u32) -> Vec<u8> {
    actor.activity("Announce", json!(format!("https://bad.example/notes/{n}")))
}

fn note(actor: &Actor, n: u32) -> Vec<u8> {
    actor.activity(
        "Create",
        json!({"id": format!("{}/statuses/{n}", actor.id), "type": "Note", "content": "hi"}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_is_listed_lifted_through_the_proxy_and_escalates_again_only_on_new_evidence()
{
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("evidence.json");
    let friend = RemoteInstance::start("friend.example").await;
    let fred = friend.add_actor("fred");
    let puma = RecordingUpstream::start().await;
    let evidence = format!(
        "[friendly_federators]\nevidence_file = {:?}\npersist_interval_secs = 1\nthreshold = 2\n\
         window = \"7d\"\naction = \"suspend\"\n",
        file.display().to_string()
    );
    let start = || {
        Proxy::builder(puma.addr())
            .remote(&friend)
            .blocklist_file("blocks.csv", BLOCKLIST)
            .toml(&evidence)
            .start()
    };
    let proxy = start().await;
    proxy.wait_ready().await;
    let config = proxy.config_path.to_str().unwrap().to_string();
    for n in 1..=2 {
        assert_eq!(
            deliver_status(&proxy, &fred, &boost(&fred, n)).await,
            StatusCode::ACCEPTED
        );
    }
    wait_escalations(&proxy, "escalated", |e| {
        e["escalated"][0]["domain"] == "friend.example"
    })
    .await;
    assert_eq!(
        deliver_status(&proxy, &fred, &note(&fred, 1)).await,
        StatusCode::FORBIDDEN
    );
    within("escalation saved", async {
        while saved(&file)["escalated"]["friend.example"].is_null() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // The list, from the saved file: action, since, cause with its kinds, counts.
    let (code, stdout, stderr) = run_inboxguard(&["escalations", "--config", &config]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("friend.example "))
        .unwrap_or_else(|| panic!("no row:\n{stdout}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "suspend", "{stdout}");
    assert_eq!(cells[3..5], ["2", "2"], "{stdout}");
    assert!(row.ends_with("friendly federator (announce 2)"), "{stdout}");
    let (code, stdout, _) = run_inboxguard(&["escalations", "--config", &config, "--json"]);
    assert_eq!(code, Some(0));
    let list: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(list["escalated"][0]["kinds"], json!({"announce": 2}));
    assert_eq!(list["escalated"][0]["action"], "suspend");
    assert_eq!(list["lifted"], json!([]));

    // A domain that is not escalated: 404 from the proxy, exit 1.
    let (code, _, stderr) =
        run_inboxguard(&["escalations", "lift", "other.example", "--config", &config]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("other.example is not escalated"),
        "{stderr}"
    );

    // The lift, through the running proxy.
    let (code, stdout, stderr) = run_inboxguard(&[
        "escalations",
        "lift",
        "friend.example",
        "--config",
        &config,
        "--by",
        "alice",
        "--reason",
        "talked to their admin",
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("lifted friend.example"), "{stdout}");
    assert_eq!(
        deliver_status(&proxy, &fred, &note(&fred, 2)).await,
        StatusCode::ACCEPTED,
        "no longer refused"
    );
    assert_eq!(puma.count(), 1);
    let lifted = &saved(&file)["lifted"]["friend.example"];
    assert_eq!(lifted["by"], "alice", "saved at once: {lifted}");
    assert_eq!(lifted["reason"], "talked to their admin");
    assert!(saved(&file)["escalated"]["friend.example"].is_null());
    let log = admin_json(&proxy, "/admin/rule-changes?since=0").await;
    let lift = log
        .as_array()
        .and_then(|l| l.iter().find(|c| c["trigger"] == "lift"))
        .unwrap_or_else(|| panic!("no lift in {log}"));
    assert_eq!(lift["domains"][0]["domain"], "friend.example", "{lift}");
    assert_eq!(lift["domains"][0]["change"], "removed", "{lift}");
    let list = admin_json(&proxy, "/admin/escalations").await;
    assert_eq!(list["escalated"], json!([]));
    assert_eq!(list["lifted"][0]["by"], "alice");
    assert_eq!(list["lifted"][0]["cause"], "friendly federator");

    // The two references before the lift no longer count: one more is under the threshold.
    assert_eq!(
        deliver_status(&proxy, &fred, &boost(&fred, 3)).await,
        StatusCode::ACCEPTED
    );
    // Saved after the tick that evaluated it.
    within("the tick after new evidence", async {
        while saved(&file)["domains"]["friend.example"]["total"] != 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        admin_json(&proxy, "/admin/escalations").await["escalated"],
        json!([])
    );
    assert_eq!(
        deliver_status(&proxy, &fred, &note(&fred, 3)).await,
        StatusCode::ACCEPTED
    );
    // New evidence reaching the threshold escalates it again.
    assert_eq!(
        deliver_status(&proxy, &fred, &boost(&fred, 4)).await,
        StatusCode::ACCEPTED
    );
    wait_escalations(&proxy, "escalated again", |e| {
        e["escalated"][0]["domain"] == "friend.example"
    })
    .await;
    assert_eq!(
        deliver_status(&proxy, &fred, &note(&fred, 4)).await,
        StatusCode::FORBIDDEN
    );
    proxy.shutdown().await.expect("clean shutdown");

    // A stopped proxy: --offline lifts in the file, and the next start forwards.
    let kept = state.path().join("inboxguard.toml");
    std::fs::write(
        &kept,
        format!(
            "[server]\nlisten = \"127.0.0.1:18080\"\n[upstream]\nurl = \"http://127.0.0.1:13000\"\n{evidence}"
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run_inboxguard(&[
        "escalations",
        "lift",
        "friend.example",
        "--offline",
        "--config",
        kept.to_str().unwrap(),
        "--by",
        "bob",
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(saved(&file)["lifted"]["friend.example"]["by"], "bob");
    let proxy = start().await;
    proxy.wait_ready().await;
    assert_eq!(
        deliver_status(&proxy, &fred, &note(&fred, 5)).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        puma.count(),
        3,
        "notes 2, 3 and 5; the boosts are laundered"
    );
}

#[tokio::test]
async fn the_lift_endpoint_needs_the_admin_token_and_a_post() {
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .admin_token("s3cret-admin-token-0123456789\n")
        .start()
        .await;
    proxy.wait_ready().await;
    let path = "/admin/escalations/friend.example/lift?by=me";
    let (status, _, _) = send(
        proxy.admin_addr,
        Method::POST,
        path,
        HeaderMap::new(),
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let auth = headers(&[("authorization", "Bearer s3cret-admin-token-0123456789")]);
    let (status, _, _) = send(proxy.admin_addr, Method::GET, path, auth.clone(), vec![]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _, body) = send(proxy.admin_addr, Method::POST, path, auth, vec![]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body:?}");
}

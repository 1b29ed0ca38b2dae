//! The decision journal end to end: real signed deliveries through the whole proxy, then
//! what `/admin/domains`, `/admin/domains/<domain>` and `/admin/decisions` say about them.

// Helpers outside #[test] fns panic on a broken environment too, which is the right failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use http::StatusCode;
use serde_json::{json, Value};

async fn get_json(proxy: &Proxy, path: &str) -> (StatusCode, Value) {
    within(path, common::get_json(proxy.admin_addr, path)).await
}

/// A friend who is forwarded twice and a suspended domain refused three times; the ids of
/// the friend's activities.
async fn traffic(client_ip: bool) -> (RecordingUpstream, Proxy, Vec<String>) {
    let FriendAndSpam {
        friend: _friend,
        spam: _spam,
        fay,
        sam,
        puma,
        proxy,
    } = FriendAndSpam::start("# suspended\nspam.example\n", |b| {
        b.configure(move |c| c.admin.journal_client_ip = client_ip)
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..2 {
        let body = fay.activity("Create", note(&fay, &format!("hello {i}")));
        let id = serde_json::from_slice::<Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        ids.push(id);
        assert_eq!(
            deliver_status(&proxy, &fay, &body).await,
            StatusCode::ACCEPTED
        );
    }
    for i in 0..3 {
        let body = sam.activity("Create", note(&sam, &format!("buy {i}")));
        assert_eq!(
            deliver_status(&proxy, &sam, &body).await,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(puma.count(), 2);
    (puma, proxy, ids)
}

#[tokio::test]
async fn the_ledger_lists_domains_by_what_was_done_with_their_deliveries() {
    let (_puma, proxy, friend_ids) = traffic(false).await;

    let (status, rows) = get_json(&proxy, "/admin/domains?sort=rejected&limit=50").await;
    assert_eq!(status, StatusCode::OK);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["domain"], "spam.example");
    assert_eq!(rows[0]["day"]["rejected"], 3);
    assert_eq!(rows[0]["hour"]["rejected"], 3);
    assert_eq!(rows[1]["domain"], "friend.example");
    assert_eq!(rows[1]["day"]["forwarded"], 2);

    let (_, top) = get_json(&proxy, "/admin/domains?sort=forwarded&limit=1").await;
    assert_eq!(top.as_array().unwrap().len(), 1);
    assert_eq!(top[0]["domain"], "friend.example");

    let (status, spam) = get_json(&proxy, "/admin/domains/spam.example").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(spam["reasons"][0]["reason"], "suspended_key_host");
    assert_eq!(spam["reasons"][0]["day"], 3);
    // Refused on its key's host, before its body is read: no activity id is known.
    assert_eq!(spam["reasons"][0]["last_activity_ids"], json!([]));
    let (_, friend) = get_json(&proxy, "/admin/domains/friend.example").await;
    assert_eq!(friend["reasons"][0]["reason"], "forwarded");
    let newest_first: Vec<Value> = friend_ids.iter().rev().map(|id| json!(id)).collect();
    assert_eq!(
        friend["reasons"][0]["last_activity_ids"],
        json!(newest_first)
    );

    let (status, _) = get_json(&proxy, "/admin/domains/never.example").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get_json(&proxy, "/admin/domains?sort=loudest").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_decision_ring_names_the_rule_and_filters_without_keeping_client_addresses() {
    let (_puma, proxy, friend_ids) = traffic(false).await;

    let (status, all) = get_json(&proxy, "/admin/decisions").await;
    assert_eq!(status, StatusCode::OK);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 5);
    let newest = &all[0];
    assert_eq!(newest["key_host"], "spam.example");
    assert_eq!(newest["decision"], "rejected");
    assert_eq!(newest["reason"], "suspended_key_host");
    assert_eq!(newest["status"], 403);
    let rule = newest["rule"].as_str().unwrap();
    assert!(rule.ends_with("blocks.txt:2"), "{rule}");
    assert!(newest.get("client_ip").is_none(), "{newest}");

    let (_, forwarded) = get_json(&proxy, "/admin/decisions?decision=forwarded").await;
    let forwarded = forwarded.as_array().unwrap();
    assert_eq!(forwarded.len(), 2);
    assert!(forwarded.iter().all(|d| d["key_host"] == "friend.example"));
    assert!(forwarded.iter().all(|d| d["rule"].is_null()));
    assert_eq!(forwarded[0]["actor"], "http://friend.example/users/fay");
    assert_eq!(forwarded[0]["activity_type"], "Create");
    assert_eq!(forwarded[0]["activity_id"], json!(friend_ids[1]));
    assert_eq!(forwarded[0]["status"], 202);

    let (_, one) = get_json(
        &proxy,
        "/admin/decisions?domain=spam.example&reason=suspended_key_host&limit=1",
    )
    .await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    let (_, by_actor) = get_json(
        &proxy,
        "/admin/decisions?actor=http%3A%2F%2Ffriend.example%2Fusers%2Ffay",
    )
    .await;
    assert_eq!(by_actor.as_array().unwrap().len(), 2);
    let (_, none) = get_json(&proxy, "/admin/decisions?domain=example.org").await;
    assert_eq!(none, json!([]));
    let (status, _) = get_json(&proxy, "/admin/decisions?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_client_address_is_journalled_when_configured() {
    let (_puma, proxy, _) = traffic(true).await;
    let (_, all) = get_json(&proxy, "/admin/decisions?limit=1").await;
    assert_eq!(all[0]["client_ip"], "127.0.0.1");
}

/// The suspend rules the log names as `change`, sorted.
fn named(log: &Value, change: &str) -> Vec<String> {
    let mut names: Vec<String> = log
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["domains"].as_array().cloned().unwrap_or_default())
        .filter(|d| d["change"] == change && d["severity"] == "suspend")
        .map(|d| d["domain"].as_str().unwrap().to_string())
        .collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn every_reload_appends_what_changed_to_the_rule_change_log() {
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .blocklist_file("blocks.txt", "spam.example\n")
        .start()
        .await;
    proxy.wait_ready().await;
    let (_, empty) = get_json(&proxy, "/admin/rule-changes").await;
    assert_eq!(empty, json!([]), "the first load is no change");

    proxy.write_file("blocks.txt", "spam.example\nworse.example\nthird.example\n");
    let (status, text) = admin_reload(&proxy).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // The file watcher may reload too; the admin reload's line is the one to read.
    let (status, log) = get_json(&proxy, "/admin/rule-changes?since=0").await;
    assert_eq!(status, StatusCode::OK);
    let admin = log
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["trigger"] == "admin")
        .unwrap_or_else(|| panic!("no admin reload in {log}"));
    let changes = admin["changes"].as_object().unwrap();
    let added: u64 = changes
        .values()
        .filter_map(|c| c["added"]["suspend"].as_u64())
        .sum();
    let watched: u64 = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["trigger"] == "file watch")
        .flat_map(|c| c["changes"].as_object().unwrap().values())
        .filter_map(|c| c["added"]["suspend"].as_u64())
        .sum();
    assert_eq!(added + watched, 2, "{log}");
    assert_eq!(
        named(&log, "added"),
        ["third.example", "worse.example"],
        "{log}"
    );

    proxy.write_file("blocks.txt", "worse.example\nthird.example\n");
    assert_eq!(admin_reload(&proxy).await.0, StatusCode::OK);
    let (_, log) = get_json(&proxy, "/admin/rule-changes").await;
    assert_eq!(named(&log, "removed"), ["spam.example"], "{log}");
    assert!(admin["time"].as_str().unwrap().ends_with('Z'));
    assert!(admin["generation"].as_u64().unwrap() >= 1);

    let (_, later) = get_json(&proxy, "/admin/rule-changes?since=2999-01-01T00:00:00Z").await;
    assert_eq!(later, json!([]));
    let (status, _) = get_json(&proxy, "/admin/rule-changes?since=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let file = proxy.dir().join("state").join("rule-changes.jsonl");
    assert!(std::fs::read_to_string(&file).unwrap().lines().count() >= 1);
}

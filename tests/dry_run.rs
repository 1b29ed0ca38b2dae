//! Dry-run sources and obfuscated digests end to end: the whole proxy in process, a dry-run
//! blocklist next to an enforcing one, real signed deliveries, and what Puma and the metrics saw.

mod common;

use common::*;
use http::StatusCode;
use inboxguard::policy::{digest_hex, domain_digest};
use serde_json::json;

#[tokio::test]
async fn dry_run_matches_are_forwarded_and_counted_as_would_reject() {
    let preview = RemoteInstance::start("preview.example").await;
    let reports = RemoteInstance::start("reports.example").await;
    let enforced = RemoteInstance::start("enforced.example").await;
    let hashed = RemoteInstance::start("sub.hashed.example").await;
    let good = RemoteInstance::start("good.example").await;
    let (pat, rita, eve, hal, gil) = (
        preview.add_actor("pat"),
        reports.add_actor("rita"),
        enforced.add_actor("eve"),
        hashed.add_actor("hal"),
        good.add_actor("gil"),
    );
    let puma = RecordingUpstream::start().await;
    let mut builder = Proxy::builder(puma.addr());
    for remote in [&preview, &reports, &enforced, &hashed, &good] {
        builder = builder.remote(remote);
    }
    // The enforcing list names hashed.example only by digest, as Mastodon publishes it.
    let enforcing = format!(
        "enforced.example\nsha256:{}\n",
        digest_hex(&domain_digest("hashed.example"))
    );
    let proxy = builder
        .blocklist_file("enforcing.txt", &enforcing)
        .blocklist_file(
            "preview.csv",
            "#domain,#severity,#reject_media,#reject_reports\n\
             preview.example,suspend,false,false\n\
             enforced.example,noop,false,false\n\
             reports.example,noop,false,true\n",
        )
        .configure(|c| c.blocklists[1].dry_run = true)
        .start()
        .await;
    proxy.wait_ready().await;

    // A dry-run suspend: forwarded byte for byte, counted as what it would have been.
    let body = pat.activity(
        "Create",
        json!("http://preview.example/users/pat/statuses/1"),
    );
    assert_eq!(
        deliver_status(&proxy, &pat, &body).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 1);
    assert_eq!(&puma.only().body[..], &body[..]);
    assert_eq!(preview.key_fetches(&pat), 1, "verified like any delivery");

    // A dry-run reject_reports: the report reaches Mastodon.
    let flag = json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": "http://reports.example/flags/1",
        "type": "Flag",
        "actor": rita.id,
        "object": ["http://mastodon.local/users/alice"],
    })
    .to_string()
    .into_bytes();
    assert_eq!(
        deliver_status(&proxy, &rita, &flag).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 2);

    // The enforcing rule decides where both sources list a domain.
    let body = eve.activity("Create", json!("http://enforced.example/statuses/1"));
    assert_eq!(
        deliver_status(&proxy, &eve, &body).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(enforced.total_gets(), 0);

    // A digest rule for a parent domain covers a sub-domain, before any key fetch.
    let body = hal.activity("Create", json!("http://sub.hashed.example/statuses/1"));
    assert_eq!(
        deliver_status(&proxy, &hal, &body).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(hashed.total_gets(), 0);

    let body = gil.activity("Create", json!("http://good.example/statuses/1"));
    assert_eq!(
        deliver_status(&proxy, &gil, &body).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 3);

    let m = proxy.metrics().await;
    assert_eq!(
        requests(&m, "would_reject", "suspended_key_host"),
        1.0,
        "{m}"
    );
    assert_eq!(requests(&m, "would_reject", "reject_reports"), 1.0, "{m}");
    assert_eq!(requests(&m, "forwarded", "forwarded"), 1.0, "{m}");
    assert_eq!(requests(&m, "rejected", "suspended_key_host"), 2.0, "{m}");
    assert_eq!(
        metric_value(
            &m,
            "inboxguard_request_duration_seconds_count{decision=\"would_reject\"}"
        ),
        Some(2.0),
        "{m}"
    );
}

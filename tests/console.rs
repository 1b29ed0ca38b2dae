//! The console's pages over plain HTTP: what they show after real signed deliveries, that
//! what remote servers send is escaped, and the headers that keep the pages self-contained.
//! `tests/console_browser.rs` drives the same pages in a real browser.

// Helpers outside #[test] fns panic on a broken environment too, which is the right failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use http::{HeaderMap, Method, StatusCode};
use serde_json::json;

async fn page(proxy: &Proxy, path: &str) -> (StatusCode, HeaderMap, String) {
    let (status, headers, body) = within(
        path,
        send(
            proxy.admin_addr,
            Method::GET,
            path,
            HeaderMap::new(),
            Vec::new(),
        ),
    )
    .await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_console_shows_the_decisions_sent_and_escapes_what_senders_wrote() {
    let FriendAndSpam {
        friend: _friend,
        spam: _spam,
        fay,
        sam,
        puma: _puma,
        proxy,
    } = FriendAndSpam::start("spam.example\n", |b| b).await;
    // An activity id meant to break out of the page.
    let hostile = json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": "http://friend.example/<script>alert(1)</script>",
        "type": "Create",
        "actor": "http://friend.example/users/fay",
        "object": note(&fay, "hi"),
    })
    .to_string();
    assert_eq!(
        deliver_status(&proxy, &fay, hostile.as_bytes()).await,
        StatusCode::ACCEPTED
    );
    for i in 0..2 {
        let body = sam.activity("Create", note(&sam, &format!("buy {i}")));
        assert_eq!(
            deliver_status(&proxy, &sam, &body).await,
            StatusCode::FORBIDDEN
        );
    }

    let (status, headers, overview) = page(&proxy, "/admin/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        overview.contains("data-total=\"rejected\">2<"),
        "{overview}"
    );
    assert!(
        overview.contains("data-total=\"forwarded\">1<"),
        "{overview}"
    );
    assert!(overview.contains("suspended_key_host"), "{overview}");
    assert!(overview.contains("blocks.txt"), "the rule source is listed");

    let (_, _, domains) = page(&proxy, "/admin/console/domains?sort=rejected").await;
    let spam_at = domains.find("data-domain=\"spam.example\"").unwrap();
    let friend_at = domains.find("data-domain=\"friend.example\"").unwrap();
    assert!(spam_at < friend_at, "sorted by rejected");
    let (_, _, found) = page(&proxy, "/admin/console/domains?q=FRIEND").await;
    assert!(found.contains("data-domain=\"friend.example\""));
    assert!(!found.contains("data-domain=\"spam.example\""));

    let (status, _, friend_page) = page(&proxy, "/admin/console/domains/friend.example").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!friend_page.contains("<script>alert"), "escaped");
    assert!(friend_page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let (_, _, spam_page) = page(&proxy, "/admin/console/domains/spam.example").await;
    assert!(
        spam_page.contains("suspend"),
        "its rules, from the live snapshot"
    );
    assert!(spam_page.contains("blocks.txt:1"), "{spam_page}");

    let (_, _, answer) = page(&proxy, "/admin/console/explain?q=sub.spam.example").await;
    assert!(answer.contains("id=\"answer\""), "{answer}");
    assert!(answer.contains("blocks.txt"), "{answer}");
    let (_, _, not_a_file) = page(&proxy, "/admin/console/explain?q=%2Fetc%2Fpasswd").await;
    assert!(!not_a_file.contains("root:"), "never read as a file");

    for asset in ["/admin/console/console.css", "/admin/console/console.js"] {
        let (status, headers, body) = page(&proxy, asset).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(!body.is_empty());
    }
    let (status, _, _) = page(&proxy, "/admin/console/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_console_needs_the_token_when_one_is_configured() {
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .admin_token("s3cr3t-t0ken-0123456789abcdefABC\n")
        .start()
        .await;
    proxy.wait_ready().await;
    for path in ["/admin/", "/admin/console/domains", "/admin/decisions"] {
        let (status, _, _) = page(&proxy, path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, _, _) = within(
        "with token",
        send(
            proxy.admin_addr,
            Method::GET,
            "/admin/",
            headers(&[("authorization", "Bearer s3cr3t-t0ken-0123456789abcdefABC")]),
            Vec::new(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_domain_page_shows_the_content_rules_its_posts_matched() {
    let FriendAndSpam {
        friend: _friend,
        spam: _spam,
        fay,
        puma: _puma,
        proxy,
        ..
    } = FriendAndSpam::start("spam.example\n", |b| {
        b.blocklist_file(
            "content.toml",
            "[[content_rules]]\nname = \"nitro-promo\"\ntypes = [\"Create\"]\ntext_matches = ['free nitro']\naction = \"report\"\n",
        )
    })
    .await;
    let (_, _, before) = page(&proxy, "/admin/console/domains/friend.example").await;
    assert!(!before.contains("Content-rule evidence"), "nothing yet");
    for (i, text) in ["free nitro for all", "an ordinary post", "free nitro again"]
        .iter()
        .enumerate()
    {
        let body = fay.activity("Create", note(&fay, &format!("{text} {i}")));
        assert_eq!(
            deliver_status(&proxy, &fay, &body).await,
            StatusCode::ACCEPTED,
            "a report rule forwards"
        );
    }
    let (status, _, page_html) = page(&proxy, "/admin/console/domains/friend.example").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page_html.contains("Content-rule evidence"), "{page_html}");
    assert!(
        page_html.contains("<td>nitro-promo</td><td>2</td><td>0</td>"),
        "two matches, none in dry run: {page_html}"
    );
    let (_, _, spam_page) = page(&proxy, "/admin/console/domains/spam.example").await;
    assert!(
        !spam_page.contains("Content-rule evidence"),
        "only the sender's own"
    );
}

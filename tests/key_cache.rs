//! The key cache keeps every key compact (its DER) and only the most recently used ones
//! parsed (`key_fetch.parsed_cache_capacity`): a key that left the parsed set verifies again
//! from the cache, without a refetch, for every kind of key and scheme the proxy accepts.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use http::{Method, StatusCode};
use inboxguard::signature::SigningKey;

/// How a delivery is signed.
enum Way {
    /// draft-cavage rsa-sha256 (what Mastodon sends).
    Cavage,
    /// draft-cavage hs2019 (Ed25519 keys).
    Hs2019,
    /// RFC 9421 with the scheme the key implies.
    Rfc9421,
    /// RFC 9421 `alg="rsa-pss-sha512"`.
    Rfc9421Pss,
}

async fn deliver_as(proxy: &Proxy, actor: &Actor, way: &Way, n: usize) -> StatusCode {
    let body = actor.activity("Create", note(actor, &format!("note {n}")));
    let signed = match way {
        Way::Cavage | Way::Hs2019 => {
            let options = SignOptions {
                algorithm: matches!(way, Way::Hs2019).then(|| "hs2019".into()),
                ..SignOptions::default()
            };
            actor.sign_post_with(INBOX, LOCAL, &body, &options)
        }
        Way::Rfc9421 | Way::Rfc9421Pss => {
            let options = Rfc9421Options {
                alg: matches!(way, Way::Rfc9421Pss).then(|| "rsa-pss-sha512".into()),
                ..Rfc9421Options::default()
            };
            actor.sign_rfc9421(INBOX, LOCAL, &body, &options)
        }
    };
    let (status, _, _) = send(
        proxy.proxy_addr,
        Method::POST,
        INBOX,
        signed.headers,
        signed.body,
    )
    .await;
    status
}

#[tokio::test]
async fn keys_that_left_the_parsed_set_verify_again_without_a_fetch() {
    let puma = RecordingUpstream::start().await;
    let remote = RemoteInstance::start("remote.test").await;
    let rsa = remote.add_actor("rsa");
    let pss = remote.add_actor("pss");
    let ed_pem = remote.add_actor_with_key("edpem", SigningKey::generate_ed25519().unwrap());
    let ed_multikey = remote.add_multikey_actor("edmulti");
    let proxy = Proxy::builder(puma.addr())
        .remote(&remote)
        .toml("[activities]\ndedupe_window = \"0s\"\n[signatures]\nallow_rsa_pss = true")
        // One parsed key at a time: every delivery below evicts the previous sender's.
        .configure(|c| c.key_fetch.parsed_cache_capacity = 1)
        .start()
        .await;
    proxy.wait_ready().await;

    let senders = [
        (&rsa, Way::Cavage),
        (&rsa, Way::Rfc9421),
        (&pss, Way::Rfc9421Pss),
        (&ed_pem, Way::Hs2019),
        (&ed_pem, Way::Rfc9421),
        (&ed_multikey, Way::Hs2019),
        (&ed_multikey, Way::Rfc9421),
    ];
    let mut sent = 0;
    for round in 0..3 {
        for (actor, way) in &senders {
            let status = deliver_as(&proxy, actor, way, sent).await;
            assert_eq!(
                status,
                StatusCode::ACCEPTED,
                "round {round}, {}",
                actor.key_id
            );
            sent += 1;
        }
    }
    assert_eq!(puma.count(), sent);
    // Each key was fetched once: after the first round every verify used a key parsed again
    // from the cache's DER.
    for actor in [&rsa, &pss, &ed_pem, &ed_multikey] {
        assert_eq!(remote.key_fetches(actor), 1, "{}", actor.key_id);
    }
    // Three senders per round sign twice in a row (the second finds its key parsed); every
    // other delivery parsed its key again.
    let m = proxy.metrics().await;
    let parsed = |result: &str| {
        metric_value(
            &m,
            &format!(r#"inboxguard_parsed_key_cache_requests_total{{result="{result}"}}"#),
        )
    };
    assert_eq!(
        (parsed("hit"), parsed("miss")),
        (Some(9.0), Some(12.0)),
        "{m}"
    );

    // The compact form keeps verification exact: a signature by another key under a cached
    // keyId still fails, and a refused delivery does not reach Mastodon.
    let forger = std::sync::Arc::new(SigningKey::generate_rsa_2048().unwrap());
    let body = rsa.activity("Create", note(&rsa, "forged"));
    let (status, _, _) = deliver_with(
        &proxy,
        &rsa,
        &body,
        SignOptions {
            key: Some(forger),
            ..SignOptions::default()
        },
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(puma.count(), sent);
}

#[test]
fn a_parsed_cache_larger_than_the_key_cache_is_refused() {
    use inboxguard::config::Config;
    use std::path::Path;
    let base = "[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n";
    for (key_fetch, message) in [
        (
            "parsed_cache_capacity = 0",
            "x.toml: key_fetch.parsed_cache_capacity: must be greater than 0",
        ),
        (
            "cache_capacity = 500\nparsed_cache_capacity = 1024",
            "x.toml: key_fetch.parsed_cache_capacity: 1024 is more than \
             key_fetch.cache_capacity (500): only cached keys are kept parsed",
        ),
    ] {
        let text = format!("{base}[key_fetch]\n{key_fetch}\n");
        let e = Config::from_toml(&text, Path::new("x.toml")).expect_err(key_fetch);
        assert_eq!(e.to_string(), message);
    }
    let text = format!("{base}[key_fetch]\ncache_capacity = 500\nparsed_cache_capacity = 500\n");
    let c = Config::from_toml(&text, Path::new("x.toml")).expect("equal capacities load");
    assert_eq!(c.key_fetch.parsed_cache_capacity, 500);
}

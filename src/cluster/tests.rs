use super::*;

#[test]
fn id_digests_are_fixed_size_hex_and_distinct() {
    let a = id_digest("https://a.example/activities/1");
    let b = id_digest("https://a.example/activities/2");
    assert_eq!(a.len(), 64);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
    assert_eq!(a, id_digest("https://a.example/activities/1"));
}

#[test]
fn config_checks_name_the_key() {
    let base = ClusterConfig {
        redis_url: "redis://127.0.0.1:6379/0".into(),
        key_prefix: "inboxguard:".into(),
        timeout_ms: 50,
        share_rate_limits: true,
        share_dedupe: true,
        share_keys: true,
        share_evidence: true,
    };
    assert_eq!(base.validate(), Ok(()));
    let bad_url = ClusterConfig {
        redis_url: "http://x".into(),
        ..base.clone()
    };
    assert!(bad_url
        .validate()
        .unwrap_err()
        .starts_with("cluster.redis_url"));
    let zero = ClusterConfig {
        timeout_ms: 0,
        ..base.clone()
    };
    assert!(zero
        .validate()
        .unwrap_err()
        .starts_with("cluster.timeout_ms"));
    let empty = ClusterConfig {
        key_prefix: String::new(),
        ..base
    };
    assert!(empty
        .validate()
        .unwrap_err()
        .starts_with("cluster.key_prefix"));
}

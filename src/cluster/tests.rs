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
    for (broken, key) in [
        (
            ClusterConfig {
                redis_url: "http://x".into(),
                ..base.clone()
            },
            "cluster.redis_url",
        ),
        (
            ClusterConfig {
                timeout_ms: 0,
                ..base.clone()
            },
            "cluster.timeout_ms",
        ),
        (
            ClusterConfig {
                key_prefix: String::new(),
                ..base
            },
            "cluster.key_prefix",
        ),
    ] {
        let e = broken.validate().unwrap_err();
        assert!(e.starts_with(key), "{e}");
    }
}

//! Activity fact extraction (`activity::Facts::parse`) on typical Mastodon payloads: a
//! `Create` carrying a ~2 KB `Note`, an `Announce`, a `Delete`; and what the flood defences
//! add per request: the content facts and 50 content rules (only paid while rules are
//! loaded), and a fair-share bucket check.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use inboxguard::activity::Facts;
use inboxguard::policy::content::{first_match, ContentRules, Subject};
use inboxguard::policy::sources::{parse_bytes, BlocklistFormat};
use inboxguard::shedding::rate::{RateLimitConfig, SenderLimits};
use std::hint::black_box;
use std::sync::Arc;

#[allow(dead_code)]
mod support;

const ACTOR: &str = "https://remote.example/users/alice";

fn activity(c: &mut Criterion) {
    let mut g = c.benchmark_group("activity_facts");
    for (name, body) in [
        ("create_note", support::create(ACTOR, 1)),
        ("announce", support::announce(ACTOR, 1)),
        ("delete", support::delete(ACTOR, 1)),
    ] {
        let facts = Facts::parse(body.as_bytes()).expect("valid activity");
        assert_eq!(facts.actor.as_deref(), Some(ACTOR), "{name}");
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("{name}_{}B", body.len()), |b| {
            b.iter(|| Facts::parse(black_box(body.as_bytes())).is_ok())
        });
    }
    g.finish();
}

fn flood_defences(c: &mut Criterion) {
    let mut g = c.benchmark_group("flood_defences");
    let body = support::create(ACTOR, 1);
    g.bench_function("facts_with_content_create_note", |b| {
        b.iter(|| Facts::parse_with_content(black_box(body.as_bytes())).is_ok())
    });
    let rules = ContentRules::new(
        parse_bytes(
            support::content_rules(50, false).as_bytes(),
            Arc::from("wave.toml"),
            BlocklistFormat::Toml,
        )
        .expect("rules")
        .content_rules,
    );
    assert_eq!(rules.len(), 50);
    let facts = Facts::parse_with_content(body.as_bytes()).expect("facts");
    let subject = Subject {
        facts: &facts,
        sender_host: "remote.example",
        local_host: Some("mastodon.local"),
        actor: None,
        actor_first_seen: None,
        now: 1_800_000_000,
    };
    assert!(
        first_match(&rules, &subject).is_none(),
        "the post must pass"
    );
    g.bench_function("fifty_content_rules_no_match", |b| {
        b.iter(|| first_match(black_box(&rules), black_box(&subject)).is_none())
    });
    let limits = SenderLimits::new(&RateLimitConfig {
        per_second: u32::MAX / 2,
        burst: u32::MAX / 2,
        ..RateLimitConfig::default()
    })
    .expect("enabled");
    g.bench_function("fair_share_check_hit", |b| {
        b.iter(|| limits.check(black_box("remote.example"), black_box(ACTOR), None))
    });
    g.finish();
}

criterion_group!(benches, activity, flood_defences);
criterion_main!(benches);

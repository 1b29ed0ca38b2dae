//! The policy decision against a 100,000-domain rule set (hit, miss, deep sub-domains), a
//! full rebuild of that rule set from Mastodon CSV text (parse + snapshot), as a reload does,
//! and the parse of a 10,000-instance Fediseer censures answer.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use inboxguard::config::BlocklistFormat;
use inboxguard::policy::{sources, Facts, Snapshot};
use std::hint::black_box;
use std::sync::Arc;

#[allow(dead_code)]
mod support;

const RULES: usize = 100_000;

fn build(csv: &str) -> Snapshot {
    let parsed = sources::parse_bytes(
        csv.as_bytes(),
        Arc::from("domain_blocks.csv"),
        BlocklistFormat::Auto,
    )
    .expect("generated CSV parses");
    Snapshot::from_rules(parsed.rules)
}

fn policy(c: &mut Criterion) {
    let csv = support::mastodon_csv(RULES, &[]);
    let snapshot = build(&csv);
    assert_eq!(snapshot.len(), RULES);

    let listed = support::blocked_domain(4242); // suspend (4242 % 10 == 2)
    let deep_hit = format!("a.b.c.d.e.f.{listed}");
    let cases = [
        ("hit", listed.clone()),
        ("miss", "mastodon.social".to_string()),
        ("deep_hit_a.b.c.d.e.f", deep_hit),
        ("deep_miss_a.b.c.d.e.f", "a.b.c.d.e.f.example".to_string()),
    ];
    let mut g = c.benchmark_group("policy_100k");
    for (name, host) in &cases {
        g.bench_function(format!("decide/{name}"), |b| {
            b.iter(|| {
                let facts = Facts {
                    key_host: black_box(host),
                    actor_host: Some(black_box(host)),
                    activity_type: Some("Create"),
                    ..Facts::default()
                };
                snapshot.decide(&facts).reason()
            })
        });
        g.bench_function(format!("is_suspended/{name}"), |b| {
            b.iter(|| snapshot.is_suspended(black_box(host)).is_some())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("rebuild_100k");
    g.sample_size(10);
    g.bench_function("parse_csv_and_snapshot", |b| {
        // Dropping the previous snapshot is part of a real reload too, but happens after the
        // swap; keep it out of the timed part.
        b.iter_batched(|| (), |_| build(black_box(&csv)), BatchSize::PerIteration)
    });
    g.bench_function("reload_load_from_file", |b| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("domain_blocks.csv");
        std::fs::write(&path, &csv).expect("write CSV");
        let sources = [inboxguard::config::BlocklistConfig {
            max_shrink: 0.5,
            ..inboxguard::config::BlocklistConfig::file(path)
        }];
        b.iter_batched(
            || (),
            |_| {
                inboxguard::rules::load(black_box(&sources), &[], &Default::default())
                    .expect("load")
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// A Fediseer `censures_given` answer in its full form, on one line as served: each instance
/// with the details Fediseer writes, two reasons, an evidence link and a count.
fn fediseer_answer(n: usize) -> String {
    let instances: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "id": i, "domain": support::blocked_domain(i), "software": "mastodon",
                "version": "4.2.10", "claimed": 1, "open_registrations": true,
                "approval_required": false, "has_captcha": false, "endorsements": 0,
                "approvals": 0, "guarantor": "fediseer.com", "state": "UP", "tags": [],
                "censure_reasons": ["spam", "harassment, hate speech"],
                "censure_evidence": [format!("https://evidence.example/{i}")],
                "censure_count": 1 + i % 3,
            })
        })
        .collect();
    serde_json::json!({ "instances": instances, "total": n }).to_string()
}

fn fediseer(c: &mut Criterion) {
    const INSTANCES: usize = 10_000;
    let body = fediseer_answer(INSTANCES);
    let mut g = c.benchmark_group("fediseer_10k");
    g.sample_size(10);
    for (name, min_count) in [("parse", None), ("parse_min_censures_2", Some(2))] {
        let settings = sources::FediseerSettings {
            list: sources::FediseerList::Censures,
            min_count,
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                sources::parse_fediseer_bytes(
                    black_box(body.as_bytes()),
                    Arc::from("censures_given.json"),
                    settings,
                )
                .expect("generated answer parses")
                .rules
                .len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, policy, fediseer);
criterion_main!(benches);

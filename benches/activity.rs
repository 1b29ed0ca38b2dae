//! Activity fact extraction (`activity::Facts::parse`) on typical Mastodon payloads: a
//! `Create` carrying a ~2 KB `Note`, an `Announce`, a `Delete`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use inboxguard::activity::Facts;
use std::hint::black_box;

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

criterion_group!(benches, activity);
criterion_main!(benches);

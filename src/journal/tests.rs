use super::ledger::Ledger;
use super::window::Window;
use super::*;

fn config(decisions: usize, domains: usize, client_ip: bool) -> AdminConfig {
    AdminConfig {
        journal_decisions: decisions,
        journal_domains: domains,
        journal_client_ip: client_ip,
        ..AdminConfig::default()
    }
}

fn seen<'a>(key_host: &'a str, decision: Decision, reason: &'static str) -> Seen<'a> {
    Seen {
        key_host: Some(key_host),
        actor: None,
        activity_type: Some("Create"),
        activity_id: None,
        rule: None,
        client_ip: Some(IpAddr::from([192, 0, 2, 1])),
        decision,
        reason,
        status: StatusCode::ACCEPTED,
    }
}

#[test]
fn a_window_forgets_slots_time_has_passed() {
    let mut w = Window::<4>::default();
    w.add(100);
    w.add(100);
    w.add(102);
    assert_eq!(w.total(102), 3);
    assert_eq!(w.series(102), [0, 2, 0, 1]);
    assert_eq!(w.total(103), 3, "slot 100 is still inside 100..=103");
    assert_eq!(w.total(104), 1, "slot 100 has left the window");
    w.add(104);
    assert_eq!(w.series(104), [0, 1, 0, 1]);
    assert_eq!(w.total(200), 0);
    w.add(200);
    assert_eq!(w.series(200), [0, 0, 0, 1], "a long gap clears everything");
}

#[test]
fn a_window_counts_a_slot_from_before_its_newest_in_the_newest() {
    let mut w = Window::<4>::default();
    w.add(10);
    w.add(8);
    assert_eq!(w.series(10), [0, 0, 0, 2]);
}

#[test]
fn the_ledger_counts_by_decision_and_reason_and_keeps_the_last_ids() {
    let j = Journal::new(&config(100, 100, false));
    for i in 0..5 {
        let id = format!("https://spam.example/a/{i}");
        j.record(Seen {
            activity_id: Some(&id),
            ..seen("spam.example", Decision::Rejected, "domain_suspended")
        });
    }
    j.record(seen("spam.example", Decision::Forwarded, "forwarded"));
    let d = j.domain("spam.example").expect("in the ledger");
    assert_eq!(d.row.day.rejected, 5);
    assert_eq!(d.row.hour.rejected, 5);
    assert_eq!(d.row.day.forwarded, 1);
    assert_eq!(d.reasons[0].reason, "domain_suspended");
    assert_eq!(
        d.reasons[0].last_activity_ids,
        [
            "https://spam.example/a/4",
            "https://spam.example/a/3",
            "https://spam.example/a/2"
        ]
    );
    assert!(j.domain("other.example").is_none());
}

#[test]
fn a_full_ledger_evicts_the_quietest_domains_not_the_busiest() {
    // 64 a shard, 4 busy domains a shard on average.
    let ledger = Ledger::new(ledger::SHARDS * 64);
    let now = 1_800_000_000;
    for i in 0..ledger::SHARDS * 4 {
        let name = format!("busy{i}.example");
        for _ in 0..10 {
            ledger.record(&name, now, Decision::Forwarded, "forwarded", None);
        }
    }
    for i in 0..ledger::SHARDS * 100 {
        let name = format!("once{i}.example");
        ledger.record(&name, now, Decision::Rejected, "signature_invalid", None);
    }
    assert!(ledger.len() <= ledger::SHARDS * 64, "{}", ledger.len());
    let busy = ledger
        .rows(now)
        .iter()
        .filter(|r| r.domain.starts_with("busy"))
        .count();
    assert_eq!(busy, ledger::SHARDS * 4, "every busy domain stays");
}

#[test]
fn the_ring_keeps_the_newest_and_filters() {
    let j = Journal::new(&config(3, 100, false));
    j.record(seen("a.example", Decision::Forwarded, "forwarded"));
    j.record(seen("b.example", Decision::Rejected, "domain_suspended"));
    j.record(Seen {
        actor: Some("https://b.example/users/x"),
        ..seen("relay.example", Decision::Forwarded, "forwarded")
    });
    j.record(seen("sub.b.example", Decision::Dropped, "duplicate"));
    let all = j.decisions(&Query {
        limit: 10,
        ..Query::default()
    });
    let hosts: Vec<_> = all.iter().map(|e| e.key_host.as_deref()).collect();
    assert_eq!(
        hosts,
        [
            Some("sub.b.example"),
            Some("relay.example"),
            Some("b.example")
        ]
    );
    let about_b = j.decisions(&Query {
        domain: Some("b.example".into()),
        decision: Some("forwarded".into()),
        limit: 10,
        ..Query::default()
    });
    assert_eq!(about_b.len(), 1, "the relayed one, by its actor's host");
    assert_eq!(about_b[0].key_host.as_deref(), Some("relay.example"));
    let limited = j.decisions(&Query {
        limit: 1,
        ..Query::default()
    });
    assert_eq!(limited.len(), 1);
    let ab = j.decisions(&Query {
        domain: Some("ab.example".into()),
        limit: 10,
        ..Query::default()
    });
    assert!(
        ab.is_empty(),
        "a suffix that is not a subdomain is no match"
    );
}

#[test]
fn the_client_address_is_kept_only_when_configured() {
    let off = Journal::new(&config(10, 10, false));
    off.record(seen("a.example", Decision::Forwarded, "forwarded"));
    let on = Journal::new(&config(10, 10, true));
    on.record(seen("a.example", Decision::Forwarded, "forwarded"));
    let q = Query {
        limit: 1,
        ..Query::default()
    };
    assert_eq!(off.decisions(&q)[0].client_ip, None);
    assert_eq!(
        on.decisions(&q)[0].client_ip,
        Some(IpAddr::from([192, 0, 2, 1]))
    );
}

#[test]
fn domains_sort_by_the_named_count() {
    let j = Journal::new(&config(100, 100, false));
    for _ in 0..3 {
        j.record(seen("loud.example", Decision::Forwarded, "forwarded"));
    }
    for _ in 0..2 {
        j.record(seen("bad.example", Decision::Rejected, "domain_suspended"));
    }
    let names = |rows: Vec<DomainRow>| rows.into_iter().map(|r| r.domain).collect::<Vec<_>>();
    assert_eq!(
        names(j.domains(Sort::Rejected, 10, None)),
        ["bad.example", "loud.example"]
    );
    assert_eq!(
        names(j.domains(Sort::Total, 10, None)),
        ["loud.example", "bad.example"]
    );
    assert_eq!(names(j.domains(Sort::Total, 1, None)), ["loud.example"]);
    assert_eq!(
        names(j.domains(Sort::Domain, 10, Some("BAD"))),
        ["bad.example"]
    );
}

#[test]
fn the_chart_counts_each_decision_in_its_minute() {
    let j = Journal::new(&config(100, 100, false));
    j.record(seen("a.example", Decision::Forwarded, "forwarded"));
    j.record(seen("a.example", Decision::Rejected, "domain_suspended"));
    j.record(seen("a.example", Decision::Rejected, "domain_suspended"));
    let series = j.per_minute();
    let total = |d: Decision| -> u32 {
        series
            .iter()
            .filter(|(x, _)| *x == d)
            .flat_map(|(_, s)| s.iter())
            .sum()
    };
    assert_eq!(total(Decision::Forwarded), 1);
    assert_eq!(total(Decision::Rejected), 2);
    assert_eq!(total(Decision::Dropped), 0);
}

fn change(unix: u64, trigger: &str) -> RuleChange {
    RuleChange {
        time: crate::clock::rfc3339(unix),
        unix,
        trigger: trigger.to_string(),
        source: None,
        generation: unix,
        changes: Default::default(),
        domains: Vec::new(),
        refused: Vec::new(),
    }
}

/// A change log in `dir`, rotating at `max_bytes`.
fn change_log(dir: std::path::PathBuf, max_bytes: u64) -> ChangeLog {
    ChangeLog::new(&crate::config::StateConfig {
        dir,
        rule_changes_max_bytes: max_bytes,
    })
}

#[test]
fn the_rule_change_log_rotates_by_size_and_reads_both_files_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = change_log(dir.path().join("state"), 4096);
    assert_eq!(log.since(0, 10).expect("no file yet"), []);
    for t in 0..40 {
        log.append(&change(1_000 + t, "admin")).expect("append");
    }
    let current = std::fs::metadata(dir.path().join("state").join(FILE_NAME)).expect("log");
    let rotated = std::fs::metadata(dir.path().join("state").join(format!("{FILE_NAME}.1")));
    assert!(current.len() <= 4096, "{}", current.len());
    assert!(rotated.is_ok(), "rotated past 4096 bytes");
    let newest = log.since(1_030, 100).expect("read");
    let times: Vec<u64> = newest.iter().map(|c| c.unix).collect();
    assert_eq!(times, (1_030..1_040).rev().collect::<Vec<_>>());
    assert_eq!(log.since(0, 3).expect("read").len(), 3);
}

#[test]
fn a_torn_line_is_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = change_log(dir.path().to_path_buf(), 1 << 20);
    log.append(&change(5, "SIGHUP")).expect("append");
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join(FILE_NAME))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"time\":\"20"))
        .expect("tear");
    let read = log.since(0, 10).expect("read");
    assert_eq!(read, [change(5, "SIGHUP")]);
}

#[test]
fn memory_sources_are_named_subscription_escalation_or_lift() {
    use crate::rules::{ReloadObserver, Reloaded, Trigger};
    let dir = tempfile::tempdir().expect("tempdir");
    let log = change_log(dir.path().to_path_buf(), 1 << 20);
    let escalation = crate::federators::SOURCE_LABEL;
    let none = Default::default();
    for trigger in [
        Trigger::Sighup,
        Trigger::SetMemory("https://lists.example/blocks.csv"),
        Trigger::SetMemory(escalation),
        Trigger::RemoveMemory(escalation),
        Trigger::Lift(escalation),
    ] {
        log.reloaded(&Reloaded {
            trigger,
            generation: 1,
            changes: &none,
            domains: &[],
            refused: &[],
        });
    }
    let read = log.since(0, 10).expect("read");
    let named: Vec<(&str, Option<&str>)> = read
        .iter()
        .rev()
        .map(|c| (c.trigger.as_str(), c.source.as_deref()))
        .collect();
    assert_eq!(
        named,
        [
            ("SIGHUP", None),
            ("subscription", Some("https://lists.example/blocks.csv")),
            ("escalation", Some(escalation)),
            ("lift", Some(escalation)),
            ("lift", Some(escalation)),
        ]
    );
}

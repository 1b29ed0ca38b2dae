//! The demo's second act: what domain rules cannot stop. A mention-spam wave from fresh
//! accounts on ten small servers (the 2024 shape: ten mentions and an invite link), mixed
//! with ordinary posts; a Delete storm that repeats the same ids; and a flood of PeerTube
//! `View`s, a type Mastodon ignores. Each is shed by the rule or gate made for it, and every
//! ordinary post still reaches Mastodon.

use super::{decisions, post_signed, DemoActor, DemoError, LOCAL};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The wave's servers: ten small instances nobody has a rule for.
pub(super) const WAVE_HOSTS: [&str; 10] = [
    "wave1.example",
    "wave2.example",
    "wave3.example",
    "wave4.example",
    "wave5.example",
    "wave6.example",
    "wave7.example",
    "wave8.example",
    "wave9.example",
    "wave10.example",
];
/// A PeerTube instance sending `View`s.
pub(super) const VIDEOS: &str = "videos.example";
/// Fresh accounts per wave server.
const ACCOUNTS_PER_HOST: usize = 3;
/// Spam posts per account (an ordinary post follows every sixth).
const POSTS_PER_ACCOUNT: usize = 2;
/// Copies of each Delete in the storm, and the `View`s in the flood.
const DELETE_COPIES: usize = 20;
const VIEWS: usize = 20;

/// The content rule the demo's rules file carries for the wave.
pub(super) const RULE: &str = r#"
[[content_rules]]
name = "discord-nuke-2024"
comment = "mention spam with a Discord invite, Feb/Oct 2024 waves"
types = ["Create"]
mentions_at_least = 5
text_matches = ['discord\.gg/', 'discord\.com/invite']
action = "drop"
"#;

/// The wave's actors: `ACCOUNTS_PER_HOST` fresh accounts on each wave server, then the
/// PeerTube channel.
pub(super) fn actors() -> Result<Vec<DemoActor>, DemoError> {
    let mut out = Vec::new();
    for host in WAVE_HOSTS {
        for name in ["fresh1", "fresh2", "fresh3"]
            .iter()
            .take(ACCOUNTS_PER_HOST)
        {
            out.push(DemoActor::new(host, name)?);
        }
    }
    out.push(DemoActor::new(VIDEOS, "channel")?);
    Ok(out)
}

/// Sends the wave, the storm and the flood, and prints what happened to each.
pub(super) async fn run(
    proxy: SocketAddr,
    admin: SocketAddr,
    wave: &[DemoActor],
    ordinary: &DemoActor,
    received: &Arc<AtomicUsize>,
) -> Result<(), DemoError> {
    let Some((channel, spammers)) = wave.split_last() else {
        return Ok(());
    };
    println!();
    println!(
        "floods no domain rule names: {} fresh accounts on {} servers posting mention spam, a Delete storm, a View flood",
        spammers.len(),
        WAVE_HOSTS.len()
    );

    let start = received.load(Ordering::Relaxed);
    let before = decisions(admin).await?;
    let mut n = 0;
    let mut sent_spam = 0;
    for round in 0..POSTS_PER_ACCOUNT {
        for (i, actor) in spammers.iter().enumerate() {
            n += 1;
            post_signed(proxy, actor, &spam(actor, n)).await?;
            sent_spam += 1;
            // An ordinary post every few spam posts, as real traffic is mixed.
            if (round * spammers.len() + i) % 6 == 5 {
                n += 1;
                post_signed(proxy, ordinary, &post(ordinary, n)).await?;
            }
        }
    }
    let after = decisions(admin).await?;
    let forwarded = received.load(Ordering::Relaxed) - start;
    let ordinary_sent = (POSTS_PER_ACCOUNT * spammers.len()) / 6;
    line(
        "mention-spam wave",
        sent_spam + ordinary_sent,
        &before,
        &after,
        &format!("{forwarded} forwarded (the {ordinary_sent} ordinary posts)"),
    );

    let start = received.load(Ordering::Relaxed);
    let before = after;
    let gone = &spammers[0];
    for _ in 0..DELETE_COPIES {
        post_signed(proxy, gone, &delete(gone)).await?;
    }
    let after = decisions(admin).await?;
    let forwarded = received.load(Ordering::Relaxed) - start;
    line(
        "Delete storm (one id, repeated)",
        DELETE_COPIES,
        &before,
        &after,
        &format!("{forwarded} forwarded"),
    );

    let start = received.load(Ordering::Relaxed);
    let before = after;
    for v in 0..VIEWS {
        post_signed(proxy, channel, &view(channel, v)).await?;
    }
    let after = decisions(admin).await?;
    let forwarded = received.load(Ordering::Relaxed) - start;
    line(
        "PeerTube View flood",
        VIEWS,
        &before,
        &after,
        &format!("{forwarded} forwarded"),
    );
    Ok(())
}

/// One summary line: how many were sent, and what the proxy's own metrics say it did.
fn line(
    what: &str,
    sent: usize,
    before: &BTreeMap<(String, String), f64>,
    after: &BTreeMap<(String, String), f64>,
    forwarded: &str,
) {
    let shed: Vec<String> = after
        .iter()
        .filter_map(|((decision, reason), v)| {
            let delta = v - before
                .get(&(decision.clone(), reason.clone()))
                .copied()
                .unwrap_or(0.0);
            (delta > 0.0 && decision != "forwarded").then(|| format!("{delta} {decision} {reason}"))
        })
        .collect();
    println!(
        "  {what:<32} {sent:>3} sent: {forwarded}; {}",
        if shed.is_empty() {
            "none shed".to_string()
        } else {
            shed.join(", ")
        }
    );
}

fn spam(actor: &DemoActor, n: usize) -> String {
    let mentions: Vec<_> = (0..10)
        .map(|i| {
            serde_json::json!({
                "type": "Mention",
                "href": format!("https://{LOCAL}/users/user{i}"),
                "name": format!("@user{i}@{LOCAL}"),
            })
        })
        .collect();
    serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}/activities/{n}", actor.uri()),
        "type": "Create",
        "actor": actor.uri(),
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "object": {
            "id": format!("{}/statuses/{n}", actor.uri()),
            "type": "Note",
            "attributedTo": actor.uri(),
            "content": "<p>free nitro, join now <a href=\"https://discord.gg/a1b2c3\">discord.gg/a1b2c3</a></p>",
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
            "tag": mentions,
        }
    })
    .to_string()
}

fn post(actor: &DemoActor, n: usize) -> String {
    serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}/activities/wave-{n}", actor.uri()),
        "type": "Create",
        "actor": actor.uri(),
        "object": {
            "id": format!("{}/statuses/wave-{n}", actor.uri()),
            "type": "Note",
            "attributedTo": actor.uri(),
            "content": "<p>an ordinary post, mentioning <a href=\"https://mastodon.local/@user1\" class=\"mention\">@user1</a></p>",
            "tag": [{"type": "Mention", "href": "https://mastodon.local/users/user1"}],
        }
    })
    .to_string()
}

fn delete(actor: &DemoActor) -> String {
    serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}#delete", actor.uri()),
        "type": "Delete",
        "actor": actor.uri(),
        "object": format!("{}/statuses/1", actor.uri()),
    })
    .to_string()
}

fn view(actor: &DemoActor, n: usize) -> String {
    serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}/views/{n}", actor.uri()),
        "type": "View",
        "actor": actor.uri(),
        "object": format!("http://{VIDEOS}/videos/watch/{n}"),
    })
    .to_string()
}

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

    let mark = Mark::now(admin, received).await?;
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
    let ordinary_sent = (POSTS_PER_ACCOUNT * spammers.len()) / 6;
    let mark = mark
        .line(
            admin,
            received,
            "mention-spam wave",
            sent_spam + ordinary_sent,
            |f| format!("{f} forwarded (the {ordinary_sent} ordinary posts)"),
        )
        .await?;

    let gone = &spammers[0];
    for _ in 0..DELETE_COPIES {
        post_signed(proxy, gone, &delete(gone)).await?;
    }
    let storm = "Delete storm (one id, repeated)";
    let mark = mark
        .line(admin, received, storm, DELETE_COPIES, |f| {
            format!("{f} forwarded")
        })
        .await?;

    for v in 0..VIEWS {
        post_signed(proxy, channel, &view(channel, v)).await?;
    }
    let flood = "PeerTube View flood";
    mark.line(admin, received, flood, VIEWS, |f| format!("{f} forwarded"))
        .await?;
    Ok(())
}

/// Where a phase starts: what Mastodon had received, and the proxy's decisions so far.
struct Mark {
    received: usize,
    decisions: BTreeMap<(String, String), f64>,
}

impl Mark {
    async fn now(admin: SocketAddr, received: &AtomicUsize) -> Result<Mark, DemoError> {
        Ok(Mark {
            received: received.load(Ordering::Relaxed),
            decisions: decisions(admin).await?,
        })
    }

    /// Prints the line of the phase that started at `self` (`forwarded` words how many
    /// reached Mastodon); where the next phase starts.
    async fn line(
        self,
        admin: SocketAddr,
        received: &AtomicUsize,
        what: &str,
        sent: usize,
        forwarded: impl FnOnce(usize) -> String,
    ) -> Result<Mark, DemoError> {
        let next = Mark::now(admin, received).await?;
        let note = forwarded(next.received - self.received);
        line(what, sent, &self.decisions, &next.decisions, &note);
        Ok(next)
    }
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
    let mut note = note(
        actor,
        &format!("/statuses/{n}"),
        "<p>free nitro, join now <a href=\"https://discord.gg/a1b2c3\">discord.gg/a1b2c3</a></p>",
        mentions.into(),
    );
    note["to"] = PUBLIC.into();
    let fields = serde_json::json!({ "to": PUBLIC, "object": note });
    activity(actor, &format!("/activities/{n}"), "Create", fields)
}

fn post(actor: &DemoActor, n: usize) -> String {
    let note = note(
        actor,
        &format!("/statuses/wave-{n}"),
        "<p>an ordinary post, mentioning <a href=\"https://mastodon.local/@user1\" class=\"mention\">@user1</a></p>",
        serde_json::json!([{"type": "Mention", "href": "https://mastodon.local/users/user1"}]),
    );
    let fields = serde_json::json!({ "object": note });
    activity(actor, &format!("/activities/wave-{n}"), "Create", fields)
}

fn delete(actor: &DemoActor) -> String {
    let fields = serde_json::json!({ "object": format!("{}/statuses/1", actor.uri()) });
    activity(actor, "#delete", "Delete", fields)
}

fn view(actor: &DemoActor, n: usize) -> String {
    let fields = serde_json::json!({ "object": format!("http://{VIDEOS}/videos/watch/{n}") });
    activity(actor, &format!("/views/{n}"), "View", fields)
}

/// The public collection, as an audience.
const PUBLIC: [&str; 1] = ["https://www.w3.org/ns/activitystreams#Public"];

/// An activity of `kind` by `actor`, its id `id` under the actor's URI, with `fields`
/// (`object`, `to`) added.
fn activity(actor: &DemoActor, id: &str, kind: &str, fields: serde_json::Value) -> String {
    let mut activity = serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}{id}", actor.uri()),
        "type": kind,
        "actor": actor.uri(),
    });
    if let (Some(activity), serde_json::Value::Object(fields)) = (activity.as_object_mut(), fields)
    {
        activity.extend(fields);
    }
    activity.to_string()
}

/// A note by `actor`, its id `id` under the actor's URI.
fn note(actor: &DemoActor, id: &str, content: &str, tag: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "id": format!("{}{id}", actor.uri()),
        "type": "Note",
        "attributedTo": actor.uri(),
        "content": content,
        "tag": tag,
    })
}

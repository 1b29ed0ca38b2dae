//! `inboxguard demo`: the whole system in one process, for a newcomer's first run.
//!
//! It starts a stand-in Mastodon (answers 202 and counts what it receives), one stand-in
//! remote server that hosts several made-up instances by `Host` header (each actor with a
//! freshly generated RSA-2048 key), and the real proxy between them — the same `run` that
//! `serve` uses, with `allow_http` and `allow_private_addresses` on because everything is on
//! loopback. Then it sends a scripted mix of signed deliveries and prints, for each, the
//! decision and reason the proxy recorded in its own `/metrics`.

use crate::config::Config;
use crate::reject::full;
use crate::signature::sign::{sign_request, SignStyle};
use crate::signature::SigningKey;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};

mod wave;

type DemoError = Box<dyn std::error::Error + Send + Sync>;

/// The made-up instances the stand-in remote server hosts.
const GOOD: &str = "good.example";
const BAD: &str = "bad.example";
const BAD_SUB: &str = "sub.bad.example";
const LIMITED: &str = "limited.example";
const REPORTS: &str = "reports.example";
const GONE: &str = "gone.example";
const LOCAL: &str = "mastodon.local";

/// The demo's blocklist, in Mastodon's own `domain_blocks.csv` export format.
const BLOCKLIST: &str = "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate
bad.example,suspend,false,false,Spam and harassment,false
limited.example,silence,false,false,Unmoderated,false
reports.example,noop,false,true,Report spam,false
";

/// The moderators' TOML rules file: what a CSV cannot say, here a suspended account (and,
/// added in `run`, the content rule for the spam wave).
const RULES: &str = r#"[[actor]]
actor = "@mallory@good.example"
comment = "Ban evasion"
"#;

struct DemoActor {
    host: &'static str,
    name: &'static str,
    key: SigningKey,
}

impl DemoActor {
    fn new(host: &'static str, name: &'static str) -> Result<DemoActor, DemoError> {
        Ok(DemoActor {
            host,
            name,
            key: SigningKey::generate_rsa_2048()?,
        })
    }
    fn uri(&self) -> String {
        format!("http://{}/users/{}", self.host, self.name)
    }
    fn key_id(&self) -> String {
        format!("{}#main-key", self.uri())
    }
    fn document(&self) -> Result<String, DemoError> {
        Ok(serde_json::json!({
            "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
            "id": self.uri(),
            "type": "Person",
            "preferredUsername": self.name,
            "inbox": format!("{}/inbox", self.uri()),
            "publicKey": {
                "id": self.key_id(),
                "owner": self.uri(),
                "publicKeyPem": self.key.public_key_pem()?,
            }
        })
        .to_string())
    }
}

/// Stand-in remote instances: `GET /users/<name>` by `Host`, counting every fetch.
struct Remotes {
    documents: HashMap<String, String>,
    gone: Vec<String>,
    fetches: AtomicUsize,
}

async fn serve_remotes(remotes: Arc<Remotes>, listener: TcpListener) {
    serve_http1(listener, move |req| {
        let remotes = remotes.clone();
        async move {
            remotes.fetches.fetch_add(1, Ordering::Relaxed);
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("")
                .to_string();
            let uri = format!("http://{host}{}", req.uri().path());
            let mut resp = Response::new(Full::new(Bytes::new()));
            if remotes.gone.contains(&uri) {
                *resp.status_mut() = StatusCode::GONE;
            } else if let Some(doc) = remotes.documents.get(&uri) {
                *resp.body_mut() = Full::new(Bytes::from(doc.clone()));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/activity+json"),
                );
            } else {
                *resp.status_mut() = StatusCode::NOT_FOUND;
            }
            resp
        }
    })
    .await
}

/// Stand-in Mastodon: answers every request 202 and counts them.
async fn serve_mastodon(received: Arc<AtomicUsize>, listener: TcpListener) {
    serve_http1(listener, move |req| {
        let received = received.clone();
        async move {
            let _ = req.into_body().collect().await;
            received.fetch_add(1, Ordering::Relaxed);
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::ACCEPTED;
            resp
        }
    })
    .await
}

/// Answers every HTTP/1.1 request on `listener` with `answer`, one task per connection.
async fn serve_http1<F, Fut>(listener: TcpListener, answer: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let answer = answer.clone();
                async move { Ok::<_, Infallible>(answer(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// One HTTP/1.1 request over a fresh connection.
async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Bytes), DemoError> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::new(full(body));
    *req.method_mut() = method;
    *req.uri_mut() = path.parse()?;
    *req.headers_mut() = headers;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// `inboxguard_requests_total` by (decision, reason), read from the proxy's own `/metrics`.
async fn decisions(admin: SocketAddr) -> Result<BTreeMap<(String, String), f64>, DemoError> {
    let (_, body) = send(
        admin,
        Method::GET,
        "/metrics",
        HeaderMap::new(),
        Bytes::new(),
    )
    .await?;
    let text = String::from_utf8_lossy(&body);
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("inboxguard_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        out.insert(
            (label("decision"), label("reason")),
            value.trim().parse().unwrap_or(0.0),
        );
    }
    Ok(out)
}

fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A scripted delivery: who sends what, and how it is (mis)signed.
struct Step {
    label: &'static str,
    actor: usize,
    kind: &'static str,
    /// Sign with this actor's key instead (a forgery when it differs from `actor`).
    signer: Option<usize>,
    /// Signature date offset from now.
    date_offset_secs: i64,
    tamper: bool,
    unsigned: bool,
    hs2019: bool,
    self_delete: bool,
    /// The object is this URI (an `Announce` of someone else's post) instead of a new Note.
    object_uri: Option<&'static str>,
}

impl Step {
    fn new(label: &'static str, actor: usize, kind: &'static str) -> Step {
        Step {
            label,
            actor,
            kind,
            signer: None,
            date_offset_secs: 0,
            tamper: false,
            unsigned: false,
            hs2019: false,
            self_delete: false,
            object_uri: None,
        }
    }
}

pub async fn run() -> Result<(), DemoError> {
    // Actors, by index: 0 alice@good, 1 mallory@good (forger), 2 spammer@bad, 3 bot@sub.bad,
    // 4 carol@limited, 5 reporter@reports, 6 ghost@gone (its server answers 410). mallory is
    // also the account the rules file suspends.
    let actors = vec![
        DemoActor::new(GOOD, "alice")?,
        DemoActor::new(GOOD, "mallory")?,
        DemoActor::new(BAD, "spammer")?,
        DemoActor::new(BAD_SUB, "bot")?,
        DemoActor::new(LIMITED, "carol")?,
        DemoActor::new(REPORTS, "reporter")?,
        DemoActor::new(GONE, "ghost")?,
    ];
    let wave_actors = wave::actors()?;
    let mut documents = HashMap::new();
    for a in actors[..6].iter().chain(&wave_actors) {
        documents.insert(a.uri(), a.document()?);
    }
    let remotes = Arc::new(Remotes {
        documents,
        gone: vec![actors[6].uri()],
        fetches: AtomicUsize::new(0),
    });
    let remote_listener = TcpListener::bind("127.0.0.1:0").await?;
    let remote_addr = remote_listener.local_addr()?;
    tokio::spawn(serve_remotes(remotes.clone(), remote_listener));

    let received = Arc::new(AtomicUsize::new(0));
    let mastodon_listener = TcpListener::bind("127.0.0.1:0").await?;
    let mastodon_addr = mastodon_listener.local_addr()?;
    tokio::spawn(serve_mastodon(received.clone(), mastodon_listener));

    let dir = std::env::temp_dir().join(format!("inboxguard-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let blocklist = dir.join("domain_blocks.csv");
    std::fs::write(&blocklist, BLOCKLIST)?;
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, format!("{RULES}{}", wave::RULE))?;
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await?;
    let admin_listener = TcpListener::bind("127.0.0.1:0").await?;
    let proxy_addr = proxy_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let config = demo_config(
        proxy_addr,
        admin_addr,
        mastodon_addr,
        remote_addr,
        &blocklist,
        &rules,
    )?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let proxy = tokio::spawn(crate::run(
        config,
        crate::Listeners {
            proxy: proxy_listener,
            admin: admin_listener,
        },
        async move {
            let _ = stopped.await;
        },
    ));

    println!("inboxguard demo");
    println!("  stand-in Mastodon  http://{mastodon_addr}  (answers 202)");
    println!("  remote instances   http://{remote_addr}  ({GOOD}, {BAD}, {BAD_SUB}, {LIMITED}, {REPORTS}, {GONE})");
    println!("  inboxguard         http://{proxy_addr}  admin http://{admin_addr}");
    println!("  blocklist          {BAD} suspend, {LIMITED} silence (limit), {REPORTS} noop+reject_reports");
    println!("  rules.toml         actor @mallory@{GOOD} suspended; content rule discord-nuke-2024 drops mention spam with an invite link");
    println!();

    let script = vec![
        Step::new("valid delivery", 0, "Create"),
        Step::new("same sender again (cached key)", 0, "Like"),
        Step {
            signer: Some(1),
            ..Step::new("forged: signed by another key", 0, "Create")
        },
        Step {
            tamper: true,
            ..Step::new("tampered body after signing", 0, "Create")
        },
        Step {
            date_offset_secs: -3 * 3600,
            ..Step::new("stale signature (3 h old)", 0, "Create")
        },
        Step {
            date_offset_secs: 2 * 3600,
            ..Step::new("signature dated 2 h ahead", 0, "Create")
        },
        Step {
            unsigned: true,
            ..Step::new("unsigned", 0, "Create")
        },
        Step::new("suspended domain", 2, "Create"),
        Step::new("subdomain of a suspended domain", 3, "Announce"),
        Step::new("limited domain (Mastodon limits it)", 4, "Create"),
        Step::new("report from a reject_reports domain", 5, "Flag"),
        Step {
            self_delete: true,
            ..Step::new("self-Delete of a gone actor", 6, "Delete")
        },
        Step {
            hs2019: true,
            ..Step::new("hs2019 signature with (created)", 0, "Follow")
        },
        Step {
            object_uri: Some("https://bad.example/users/spammer/statuses/1"),
            ..Step::new("boost of a suspended domain's post", 0, "Announce")
        },
        Step::new("post by a suspended account", 1, "Create"),
    ];

    println!(
        "{:<38} {:<34} {:<9} {:<10} {:<22} status",
        "request", "sender", "activity", "decision", "reason"
    );
    let mut before = decisions(admin_addr).await?;
    for (i, step) in script.iter().enumerate() {
        let status = deliver(proxy_addr, &actors, step, i).await?;
        let after = decisions(admin_addr).await?;
        let (decision, reason) = after
            .iter()
            .find(|(k, v)| before.get(*k).copied().unwrap_or(0.0) < **v)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| ("?".into(), "?".into()));
        before = after;
        let actor = &actors[step.actor];
        println!(
            "{:<38} {:<34} {:<9} {:<10} {:<22} {}",
            step.label,
            format!("{}@{}", actor.name, actor.host),
            step.kind,
            decision,
            reason,
            status.as_u16()
        );
    }

    wave::run(proxy_addr, admin_addr, &wave_actors, &actors[0], &received).await?;

    let (_, metrics) = send(
        admin_addr,
        Method::GET,
        "/metrics",
        HeaderMap::new(),
        Bytes::new(),
    )
    .await?;
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    println!();
    println!("metrics summary (from http://{admin_addr}/metrics)");
    for line in metrics.lines().filter(|l| {
        l.starts_with("inboxguard_requests_total")
            || l.starts_with("inboxguard_key_fetches_total")
            || l.starts_with("inboxguard_key_cache_requests_total")
            || l.starts_with("inboxguard_content_rule_matches_total")
    }) {
        println!("  {line}");
    }
    println!(
        "  stand-in Mastodon received {} deliveries; remote servers answered {} key fetches ({} total counted by the proxy)",
        received.load(Ordering::Relaxed),
        remotes.fetches.load(Ordering::Relaxed),
        metric_sum(&metrics, "inboxguard_key_fetches_total"),
    );
    println!();
    println!("Next: `cargo test` runs the test suite; README.md shows how to put inboxguard in front of Mastodon.");

    let _ = stop.send(());
    proxy.await??;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn deliver(
    proxy: SocketAddr,
    actors: &[DemoActor],
    step: &Step,
    n: usize,
) -> Result<StatusCode, DemoError> {
    let actor = &actors[step.actor];
    let object = if step.self_delete {
        serde_json::Value::String(actor.uri())
    } else if let Some(uri) = step.object_uri {
        serde_json::Value::String(uri.to_string())
    } else {
        serde_json::json!({
            "id": format!("{}/statuses/{n}", actor.uri()),
            "type": "Note",
            "attributedTo": actor.uri(),
            "content": "hello from the demo",
        })
    };
    let body = serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}/activities/{n}", actor.uri()),
        "type": step.kind,
        "actor": actor.uri(),
        "object": object,
    })
    .to_string();
    let path = "/users/admin/inbox";
    let date = SystemTime::now()
        .checked_add(Duration::from_secs(step.date_offset_secs.max(0) as u64))
        .and_then(|t| t.checked_sub(Duration::from_secs((-step.date_offset_secs).max(0) as u64)))
        .unwrap_or_else(SystemTime::now);
    let mut headers = inbox_headers(date)?;
    if !step.unsigned {
        let signer = &actors[step.signer.unwrap_or(step.actor)];
        let style = if step.hs2019 {
            SignStyle::Hs2019
        } else {
            SignStyle::Mastodon
        };
        sign_request(
            &signer.key,
            &actor.key_id(),
            &Method::POST,
            path,
            &mut headers,
            body.as_bytes(),
            style,
        )?;
    }
    let mut body = body.into_bytes();
    if step.tamper {
        body.extend_from_slice(b" ");
    }
    let (status, _) = send(proxy, Method::POST, path, headers, Bytes::from(body)).await?;
    Ok(status)
}

/// A POST of `body` to Mastodon's shared inbox, signed by `actor` as Mastodon signs.
async fn post_signed(
    proxy: SocketAddr,
    actor: &DemoActor,
    body: &str,
) -> Result<StatusCode, DemoError> {
    let path = "/inbox";
    let mut headers = inbox_headers(SystemTime::now())?;
    sign_request(
        &actor.key,
        &actor.key_id(),
        &Method::POST,
        path,
        &mut headers,
        body.as_bytes(),
        SignStyle::Mastodon,
    )?;
    let body = Bytes::from(body.to_owned());
    Ok(send(proxy, Method::POST, path, headers, body).await?.0)
}

/// `Host`, `Content-Type` and `Date` of an inbox POST, before it is signed.
fn inbox_headers(date: SystemTime) -> Result<HeaderMap, DemoError> {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static(LOCAL));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/activity+json"),
    );
    headers.insert(
        header::DATE,
        HeaderValue::from_str(&httpdate::fmt_http_date(date))?,
    );
    Ok(headers)
}

fn demo_config(
    proxy: SocketAddr,
    admin: SocketAddr,
    mastodon: SocketAddr,
    remotes: SocketAddr,
    blocklist: &Path,
    rules: &Path,
) -> Result<Config, DemoError> {
    let resolve: String = [GOOD, BAD, BAD_SUB, LIMITED, REPORTS, GONE, wave::VIDEOS]
        .iter()
        .chain(&wave::WAVE_HOSTS)
        .map(|h| format!("\"{h}\" = \"{remotes}\"\n"))
        .collect();
    // The demo's own directory, so its reloads' rule-change log is removed with it.
    let state = blocklist.parent().unwrap_or(Path::new(".")).join("state");
    let text = format!(
        r#"
[state]
dir = {state:?}
[server]
listen = "{proxy}"
[upstream]
url = "http://{mastodon}"
[admin]
listen = "{admin}"
[key_fetch]
allow_http = true
allow_private_addresses = true
[key_fetch.resolve]
{resolve}
[[blocklists]]
path = {blocklist:?}
[[blocklists]]
path = {rules:?}
"#
    );
    Ok(Config::from_toml(&text, Path::new("<demo>"))?)
}

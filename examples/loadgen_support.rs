//! Support process for `benches/load.sh` (not part of the inboxguard binary): writes the
//! pre-signed requests the load generator replays, the rule file and the proxy's config
//! pieces, then serves the stand-in remote instances' actor documents until it is killed.
//!
//! Usage: `loadgen_support <out-dir> [requests] [suspended-requests] [actors] [keys] [wave] [noisy]`
//!
//! * `verified.req`: `requests` inbox POSTs signed rsa-sha256 the way Mastodon signs them,
//!   from `actors` actors (keyIds) spread over `HOSTS` instances, each request with its own
//!   body (so its own digest and signature); consecutive requests come from different actors.
//!   The actors share `keys` RSA-2048 keys: distinct keyIds are what fill the proxy's key
//!   cache, and generating 10,000 RSA keys would only slow the setup down.
//! * `suspended.req`: POSTs whose keyId host is suspended by the rule file.
//! * `wave.req`: `wave` requests, four in five a spam-wave post ([`support::wave_create`]) from
//!   `WAVE_ACTORS` fresh accounts on `WAVE_HOSTS` instances, one in five an ordinary post from
//!   the `verified.req` actors.
//! * `others.req` / `noisy.req`: the noisy-sender scene. `others.req` holds ordinary traffic
//!   from the first `OTHER_HOSTS` instances only; `noisy.req` holds `noisy` requests from one
//!   instance, `NOISY_HOST`, with `NOISY_ACTORS` accounts.
//! * `content_rules.toml`: 50 content rules, the last the 2024 waves' rule.
//! * `domain_blocks.csv`: 100,000 generated rules plus the suspended hosts.
//! * `resolve.toml`: the `[key_fetch.resolve]` table pointing every instance at this process.
//!
//! Request files hold, per request, a decimal byte length, `\n`, then the raw HTTP/1.1
//! request (what `benches/load.lua` hands to wrk). Every Date is the generation time, well
//! inside the proxy's window (5 min expiry + 1 h clock skew by default).

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use inboxguard::signature::{SignStyle, SigningKey};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::net::TcpListener;

#[allow(dead_code)]
#[path = "../benches/support/mod.rs"]
mod support;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Instances the actors live on (each needs one `resolve` entry in the proxy's config).
const HOSTS: usize = 1_000;
/// Instances a spam wave comes from, and the fresh accounts on them.
const WAVE_HOSTS: usize = 500;
const WAVE_ACTORS: usize = 1_000;
/// The noisy-sender scene: ordinary traffic from this many instances, and one noisy instance.
const OTHER_HOSTS: usize = 400;
const NOISY_HOST: &str = "noisy.example";
const NOISY_ACTORS: usize = 200;
/// Suspended instances the `suspended.req` senders live on.
const SUSPENDED_HOSTS: usize = 5;
/// Rules in the generated blocklist, besides the suspended hosts.
const RULES: usize = 100_000;

fn host(a: usize) -> String {
    format!("inst{}.example", a % HOSTS)
}

fn wave_host(a: usize) -> String {
    format!("wave{}.example", a % WAVE_HOSTS)
}

fn suspended_host(a: usize) -> String {
    format!("spam{}.suspended.example", a % SUSPENDED_HOSTS)
}

fn actor_uri(host: &str, a: usize) -> String {
    format!("http://{host}/users/u{a}")
}

fn arg(args: &[String], i: usize, default: usize) -> Result<usize, Error> {
    match args.get(i) {
        Some(v) => Ok(v.parse()?),
        None => Ok(default),
    }
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let out = PathBuf::from(args.get(1).ok_or(
        "usage: loadgen_support <out-dir> [requests] [suspended-requests] [actors] [keys] [wave] [noisy]",
    )?);
    let requests = arg(&args, 2, 20_000)?;
    let suspended = arg(&args, 3, 5_000)?;
    let actors = arg(&args, 4, 10_000)?.max(1);
    let key_count = arg(&args, 5, 8)?.max(1);
    let wave = arg(&args, 6, 20_000)?;
    let noisy = arg(&args, 7, 5_000)?;
    std::fs::create_dir_all(&out)?;

    let keys: Vec<SigningKey> = (0..key_count)
        .map(|_| SigningKey::generate_rsa_2048())
        .collect::<Result<_, _>>()?;
    let pems: Vec<String> = keys
        .iter()
        .map(|k| k.public_key_pem())
        .collect::<Result<_, _>>()?;

    let suspended_hosts: Vec<String> = (0..SUSPENDED_HOSTS).map(suspended_host).collect();
    let refs: Vec<&str> = suspended_hosts.iter().map(String::as_str).collect();
    std::fs::write(
        out.join("domain_blocks.csv"),
        support::mastodon_csv(RULES, &refs),
    )?;

    let now = SystemTime::now();
    write_requests(&out.join("verified.req"), requests, &keys, now, |n| {
        let a = n % actors;
        (actor_uri(&host(a), a), a)
    })?;
    write_requests(&out.join("suspended.req"), suspended, &keys, now, |n| {
        (actor_uri(&suspended_host(n), n), n)
    })?;
    std::fs::write(
        out.join("content_rules.toml"),
        support::content_rules(50, true),
    )?;
    write_requests(&out.join("wave.req"), wave, &keys, now, |n| {
        if n % 5 == 4 {
            let a = n % actors;
            (actor_uri(&host(a), a), a)
        } else {
            let a = n % WAVE_ACTORS;
            (actor_uri(&wave_host(a), a), a)
        }
    })?;
    // Ordinary actors on the first OTHER_HOSTS instances: all of them are in `verified.req`,
    // so the warm-up has cached their keys.
    let per_host = (actors / HOSTS).max(1);
    write_requests(&out.join("others.req"), requests, &keys, now, |n| {
        let a = ((n / OTHER_HOSTS) % per_host) * HOSTS + n % OTHER_HOSTS;
        (actor_uri(&host(a), a), a)
    })?;
    write_requests(&out.join("noisy.req"), noisy, &keys, now, |n| {
        let a = n % NOISY_ACTORS;
        (actor_uri(NOISY_HOST, a), a)
    })?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut resolve = String::new();
        let hosts = (0..HOSTS)
            .map(host)
            .chain((0..WAVE_HOSTS).map(wave_host))
            .chain([NOISY_HOST.to_string()])
            .chain(suspended_hosts.iter().cloned());
        for h in hosts {
            writeln!(resolve, "\"{h}\" = \"{addr}\"")?;
        }
        std::fs::write(out.join("resolve.toml"), resolve)?;
        // load.sh waits for this file: everything above is in place once it exists.
        std::fs::write(out.join("ready"), addr.to_string())?;
        serve_actors(listener, Arc::new(pems), key_count).await;
        Ok::<(), Error>(())
    })
}

/// Signs `count` requests on every core (RSA signing is the slow part of the setup) and
/// writes them in order. `actor_of(n)` names request `n`'s actor and its number, which picks
/// the actor's key.
fn write_requests(
    path: &Path,
    count: usize,
    keys: &[SigningKey],
    now: SystemTime,
    actor_of: impl Fn(usize) -> (String, usize) + Sync,
) -> Result<(), Error> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread: Vec<Vec<Vec<u8>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let actor_of = &actor_of;
                s.spawn(move || {
                    (t..count)
                        .step_by(threads)
                        .map(|n| {
                            let (actor, a) = actor_of(n);
                            raw_request(&keys[a % keys.len()], &actor, n, now)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "signing thread panicked"))
            .collect::<Result<_, _>>()
    })?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for n in 0..count {
        let request = &per_thread[n % threads][n / threads];
        file.write_all(format!("{}\n", request.len()).as_bytes())?;
        file.write_all(request)?;
    }
    file.flush()?;
    Ok(())
}

/// Mostly Creates (with a ~2 KB note), some boosts and deletes, as a busy inbox sees; from a
/// wave instance, its spam post.
fn raw_request(key: &SigningKey, actor: &str, n: usize, now: SystemTime) -> Vec<u8> {
    let body = if actor.starts_with("http://wave") {
        support::wave_create(actor, n)
    } else {
        match n % 10 {
            0..=5 => support::create(actor, n),
            6..=8 => support::announce(actor, n),
            _ => support::delete(actor, n),
        }
    };
    let key_id = format!("{actor}#main-key");
    let headers = support::signed_post(key, &key_id, body.as_bytes(), now, SignStyle::Mastodon);
    let mut out = format!("POST {} HTTP/1.1\r\n", support::INBOX).into_bytes();
    for (name, value) in &headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body.as_bytes());
    out
}

/// The stand-in remote instances: `GET /users/u<n>` on any host answers an actor document
/// whose key is `pems[n % keys]`.
async fn serve_actors(listener: TcpListener, pems: Arc<Vec<String>>, keys: usize) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let pems = pems.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let pems = pems.clone();
                async move {
                    let host = req
                        .headers()
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .and_then(|h| h.split(':').next())
                        .unwrap_or("")
                        .to_string();
                    let n = req
                        .uri()
                        .path()
                        .strip_prefix("/users/u")
                        .and_then(|n| n.parse::<usize>().ok());
                    let mut resp = Response::new(Full::new(Bytes::new()));
                    match n {
                        Some(n) => {
                            let uri = actor_uri(&host, n);
                            // Wave accounts are an hour old; everyone else has been around.
                            let published = if host.starts_with("wave") {
                                inboxguard::clock::rfc3339(inboxguard::clock::unix_now() - 3600)
                            } else {
                                "2019-03-01T00:00:00Z".to_string()
                            };
                            let doc = serde_json::json!({
                                "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
                                "id": uri,
                                "type": "Person",
                                "preferredUsername": format!("u{n}"),
                                "published": published,
                                "inbox": format!("{uri}/inbox"),
                                "publicKey": {
                                    "id": format!("{uri}#main-key"),
                                    "owner": uri,
                                    "publicKeyPem": pems[n % keys],
                                }
                            });
                            *resp.body_mut() = Full::new(Bytes::from(doc.to_string()));
                            resp.headers_mut().insert(
                                header::CONTENT_TYPE,
                                HeaderValue::from_static("application/activity+json"),
                            );
                        }
                        None => *resp.status_mut() = StatusCode::NOT_FOUND,
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

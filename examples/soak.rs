//! Soak run: the release `inboxguard` binary (a child process, on loopback) between a stand-in
//! Mastodon and stand-in remote instances served by this process, driven at a fixed rate with
//! mixed traffic for a bounded time.
//!
//! Traffic, per 20 requests: 14 valid deliveries from 20 actors (→ 202), 3 forged (signed
//! with a key that is not the actor's → 401), 2 from a suspended domain (→ 403) and 1
//! oversized body (→ 413). Requests are signed before the clock starts (the Date window is
//! hours wide), so the driver's own cost stays out of the proxy's latency.
//!
//! Reports unexpected statuses and transport errors, the proxy process's RSS (`VmRSS` from
//! `/proc/<pid>/status`) once ready, after warm-up and at the end (and its peak, `VmHWM`),
//! p50/p99/max latency and the proxy's own decision counts. Exits 1 if any request got an
//! unexpected answer, the proxy exited early, or its RSS at the end exceeds the RSS after
//! warm-up by more than [`RSS_GROWTH_FRACTION`] + [`RSS_GROWTH_SLACK_KIB`].
//!
//! `SOAK_SECS` (default 600) and `SOAK_RATE` (requests per second, default 200) override the
//! defaults; `INBOXGUARD_BIN` names the binary. Run with `scripts/soak.sh`, which builds both
//! in release mode.
// A broken harness should stop the run loudly.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use bytes::Bytes;
use common::{Actor, RemoteInstance, SignOptions};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

const LOCAL: &str = "mastodon.local";
const INBOX: &str = "/users/alice/inbox";
const BLOCKLIST: &str = "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate
bad.example,suspend,false,false,Spam,false
";
/// Distinct pre-signed requests per kind, sent round-robin.
const POOL: usize = 64;
/// Requests in flight at once; past it a tick is counted as skipped rather than queued.
const MAX_OUTSTANDING: usize = 2048;
/// RSS growth allowed from after warm-up (a tenth of the run) to the end: 25 % of the warm-up
/// RSS plus [`RSS_GROWTH_SLACK_KIB`]. By then the key cache holds every actor this traffic
/// uses, the connection pools and per-thread allocator arenas are at their working size, and
/// every other cache is bounded, so steady traffic should not grow memory further; what does
/// is a leak. The fraction absorbs growth proportional to that working set (late-filling
/// buffers, allocator fragmentation), the fixed slack the noise of a small process.
const RSS_GROWTH_FRACTION: f64 = 0.25;
const RSS_GROWTH_SLACK_KIB: u64 = 8 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Valid,
    Forged,
    Blocked,
    Oversized,
}

impl Kind {
    fn expected(self) -> StatusCode {
        match self {
            Kind::Valid => StatusCode::ACCEPTED,
            Kind::Forged => StatusCode::UNAUTHORIZED,
            Kind::Blocked => StatusCode::FORBIDDEN,
            Kind::Oversized => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The kind of the `n`th request: 14 valid, 3 forged, 2 blocked, 1 oversized per 20.
    fn of(n: u64) -> Kind {
        match n % 20 {
            0..=13 => Kind::Valid,
            14..=16 => Kind::Forged,
            17 | 18 => Kind::Blocked,
            _ => Kind::Oversized,
        }
    }
}

struct Prepared {
    headers: HeaderMap,
    body: Bytes,
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {v:?}")),
        Err(_) => default,
    }
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`); 0 if the process is gone.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The proxy under test: the release binary as a child process, killed when dropped.
struct ProxyProcess {
    child: std::process::Child,
    proxy_addr: SocketAddr,
    admin_addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl ProxyProcess {
    /// Writes the config (default limits: 1 MiB bodies, 256 upstream requests in flight) and
    /// starts `bin serve`, then waits until `/readyz` answers 200.
    async fn start(bin: &str, upstream: SocketAddr, remotes: &[&RemoteInstance]) -> ProxyProcess {
        let dir = tempfile::tempdir().unwrap();
        // Free ports picked by binding :0; nothing else on loopback races for them here.
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        };
        let (proxy_addr, admin_addr) = (free_port(), free_port());
        let blocklist = dir.path().join("domain_blocks.csv");
        std::fs::write(&blocklist, BLOCKLIST).unwrap();
        let mut config = format!(
            "[server]\nlisten = \"{proxy_addr}\"\n\n[upstream]\nurl = \"http://{upstream}\"\n\n\
             [admin]\nlisten = \"{admin_addr}\"\n\n[logging]\nfilter = \"warn\"\n\n\
             [[blocklists]]\npath = {:?}\n\n\
             [key_fetch]\nallow_http = true\nallow_private_addresses = true\n\n[key_fetch.resolve]\n",
            blocklist.to_string_lossy()
        );
        for remote in remotes {
            config.push_str(&format!("\"{}\" = \"{}\"\n", remote.host(), remote.addr()));
        }
        let config_path = dir.path().join("inboxguard.toml");
        std::fs::write(&config_path, config).unwrap();
        let child = std::process::Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let mut proxy = ProxyProcess {
            child,
            proxy_addr,
            admin_addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("{bin} exited during startup: {status}");
            }
            let ready = common::try_send(
                admin_addr,
                Method::GET,
                "/readyz",
                HeaderMap::new(),
                Vec::new(),
            )
            .await;
            if matches!(ready, Ok((StatusCode::OK, _, _))) {
                return proxy;
            }
            assert!(Instant::now() < deadline, "{bin} not ready after 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn metrics(&self) -> String {
        common::get_text(self.admin_addr, "/metrics").await.1
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stand-in Mastodon that answers 202 and only counts (a recording one would grow).
async fn counting_upstream() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let counted = counted.clone();
                    async move {
                        let _ = req.into_body().collect().await;
                        counted.fetch_add(1, Ordering::Relaxed);
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = StatusCode::ACCEPTED;
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, count)
}

fn sign(actor: &Actor, body: Vec<u8>, opts: &SignOptions) -> Prepared {
    let signed = actor.sign_post_with(INBOX, LOCAL, &body, opts);
    Prepared {
        headers: signed.headers,
        body: Bytes::from(signed.body),
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[tokio::main]
async fn main() {
    let secs = env_u64("SOAK_SECS", 600);
    let rate = env_u64("SOAK_RATE", 200).max(1);
    println!(
        "soak: {secs} s at {rate} requests/s against a release build of the proxy on loopback"
    );

    let bin =
        std::env::var("INBOXGUARD_BIN").unwrap_or_else(|_| "target/release/inboxguard".into());
    // Stand-ins, then the proxy.
    let good = RemoteInstance::start("good.example").await;
    let bad = RemoteInstance::start("bad.example").await;
    let actors: Vec<Actor> = (0..20).map(|i| good.add_actor(&format!("a{i}"))).collect();
    let blocked_actor = bad.add_actor("spammer");
    let forger = inboxguard::signature::SigningKey::generate_rsa_2048().unwrap();
    let forger = Arc::new(forger);
    let (upstream, upstream_count) = counting_upstream().await;
    let mut proxy = ProxyProcess::start(&bin, upstream, &[&good, &bad]).await;
    let pid = proxy.pid();

    // Pre-signed pools.
    let mut pools: BTreeMap<Kind, Vec<Prepared>> = BTreeMap::new();
    for i in 0..POOL {
        let actor = &actors[i % actors.len()];
        let note = serde_json::json!({"type": "Note", "content": format!("soak {i}")});
        pools.entry(Kind::Valid).or_default().push(sign(
            actor,
            actor.activity("Create", note.clone()),
            &SignOptions::default(),
        ));
        let forged = SignOptions {
            key: Some(forger.clone()),
            ..SignOptions::default()
        };
        pools.entry(Kind::Forged).or_default().push(sign(
            actor,
            actor.activity("Create", note.clone()),
            &forged,
        ));
        pools.entry(Kind::Blocked).or_default().push(sign(
            &blocked_actor,
            blocked_actor.activity("Create", note),
            &SignOptions::default(),
        ));
    }
    for actor in &actors[..4] {
        // Valid JSON just over the 1 MiB cap; refused on Content-Length before reading.
        let mut body = actor.activity("Create", serde_json::json!({"type": "Note"}));
        body.pop();
        body.extend_from_slice(b",\"pad\":\"");
        body.resize(1024 * 1024 + 1024, b'x');
        body.extend_from_slice(b"\"}");
        pools
            .entry(Kind::Oversized)
            .or_default()
            .push(sign(actor, body, &SignOptions::default()));
    }
    let pools = Arc::new(pools);

    // Keep-alive connections, as an edge proxy would hold them.
    // No Nagle delay on the sender side either (the proxy sets TCP_NODELAY on its sockets).
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(connector);
    let base = format!("http://{}", proxy.proxy_addr);

    let total = secs * rate;
    // Allocated up front, so the driver's own memory does not grow during the run.
    let latencies: Arc<Mutex<BTreeMap<Kind, Vec<u32>>>> = Arc::new(Mutex::new(
        [Kind::Valid, Kind::Forged, Kind::Blocked, Kind::Oversized]
            .into_iter()
            .map(|k| (k, Vec::with_capacity(total as usize / 2 + 16)))
            .collect(),
    ));
    let unexpected: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let sent: Arc<Mutex<BTreeMap<Kind, u64>>> = Arc::default();
    let outstanding = Arc::new(Semaphore::new(MAX_OUTSTANDING));
    let mut skipped = 0u64;

    let rss_setup = status_kib(pid, "VmRSS");
    let warm_at = (total / 10).max(1);
    let mut rss_warm = rss_setup;
    let mut interval = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        interval.tick().await;
        if n == warm_at {
            rss_warm = status_kib(pid, "VmRSS");
        }
        if last_report.elapsed() >= Duration::from_secs(30) {
            last_report = Instant::now();
            println!(
                "  t={:>4}s sent={n} rss={} unexpected={}",
                started.elapsed().as_secs(),
                mib(status_kib(pid, "VmRSS")),
                unexpected.lock().unwrap().values().sum::<u64>()
            );
        }
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = outstanding.clone().try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        let kind = Kind::of(n);
        *sent.lock().unwrap().entry(kind).or_default() += 1;
        let (pools, client, uri) = (pools.clone(), client.clone(), format!("{base}{INBOX}"));
        let (latencies, unexpected) = (latencies.clone(), unexpected.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let pool = &pools[&kind];
            let prepared = &pool[(n / 20) as usize % pool.len()];
            let mut request = Request::new(Full::new(prepared.body.clone()));
            *request.method_mut() = Method::POST;
            *request.uri_mut() = uri.parse().unwrap();
            *request.headers_mut() = prepared.headers.clone();
            let t0 = Instant::now();
            let outcome = match client.request(request).await {
                Ok(response) => {
                    let status = response.status();
                    match response.into_body().collect().await {
                        Ok(_) => Ok(status),
                        Err(e) => Err(format!("{kind:?}: body error after {status}: {e}")),
                    }
                }
                Err(e) => Err(format!("{kind:?}: transport error: {e}")),
            };
            let micros = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
            latencies
                .lock()
                .unwrap()
                .get_mut(&kind)
                .unwrap()
                .push(micros);
            let problem = match outcome {
                Ok(status) if status == kind.expected() => return,
                Ok(status) => format!("{kind:?}: got {status}, expected {}", kind.expected()),
                Err(e) => e,
            };
            *unexpected.lock().unwrap().entry(problem).or_default() += 1;
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let rss_end = status_kib(pid, "VmRSS");

    let by_kind = std::mem::take(&mut *latencies.lock().unwrap());
    let mut latencies: Vec<u32> = by_kind.values().flatten().copied().collect();
    latencies.sort_unstable();
    let unexpected = unexpected.lock().unwrap().clone();
    let errors: u64 = unexpected.values().sum();
    let rss_peak = status_kib(pid, "VmHWM");
    let metrics = proxy.metrics().await;
    let exited = proxy.child.try_wait().ok().flatten();

    println!();
    println!(
        "sent {} requests in {:.1} s ({:.1}/s); skipped ticks (over {MAX_OUTSTANDING} outstanding): {skipped}",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    for (kind, n) in sent.lock().unwrap().iter() {
        println!("  {kind:?}: {n} (expect {})", kind.expected());
    }
    println!(
        "forwarded to the stand-in Mastodon: {}",
        upstream_count.load(Ordering::Relaxed)
    );
    let line = |name: &str, sorted: &[u32]| {
        println!(
            "latency {name:<10} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            percentile(sorted, 50.0) as f64 / 1000.0,
            percentile(sorted, 99.0) as f64 / 1000.0,
            sorted.last().copied().unwrap_or(0) as f64 / 1000.0
        )
    };
    line("all", &latencies);
    for (kind, mut values) in by_kind {
        values.sort_unstable();
        line(&format!("{kind:?}"), &values);
    }
    println!(
        "proxy RSS: ready {}, after warm-up {}, at end {} (end - warm-up: {:+.1} MiB); peak {}",
        mib(rss_setup),
        mib(rss_warm),
        mib(rss_end),
        (rss_end as f64 - rss_warm as f64) / 1024.0,
        mib(rss_peak)
    );
    println!(
        "key fetches: {}",
        common::metric_sum(&metrics, "inboxguard_key_fetches_total")
    );
    println!("proxy decisions (inboxguard_requests_total):");
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("inboxguard_requests_total{"))
    {
        println!("  {line}");
    }
    println!("unexpected answers: {errors}");
    for (problem, n) in &unexpected {
        println!("  {n} × {problem}");
    }
    if let Some(status) = exited {
        println!("the proxy exited during the run: {status}");
        std::process::exit(1);
    }
    drop(proxy);
    // f64 → u64 saturates; RSS values are far below where precision matters.
    let rss_bound =
        rss_warm + (rss_warm as f64 * RSS_GROWTH_FRACTION) as u64 + RSS_GROWTH_SLACK_KIB;
    let rss_grew = rss_end > rss_bound;
    println!(
        "RSS at end {} {} the bound {} (after warm-up + {:.0} % + {} MiB)",
        mib(rss_end),
        if rss_grew { "EXCEEDS" } else { "is within" },
        mib(rss_bound),
        RSS_GROWTH_FRACTION * 100.0,
        RSS_GROWTH_SLACK_KIB / 1024
    );
    if errors > 0 || rss_grew {
        std::process::exit(1);
    }
}

//! End-to-end tests of the admin listener (probes, metrics, routing, bearer token) and of
//! graceful shutdown, through the whole proxy on loopback.

// Helpers outside #[test] fns panic on a broken environment too, which is the right failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use http::{header, HeaderMap, Method, StatusCode};
use std::net::SocketAddr;

const INBOX: &str = "/users/bob/inbox";
const LOCAL_HOST: &str = "local.test";
/// 32 characters; the minimum is 16.
const TOKEN: &str = "s3cr3t-t0ken-0123456789abcdefABC";

async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: HeaderMap,
) -> (StatusCode, HeaderMap, String) {
    let (status, headers, body) = within(
        &format!("{method} {path}"),
        send(addr, method.clone(), path, headers, Vec::new()),
    )
    .await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn bearer(token: &str) -> HeaderMap {
    headers(&[("authorization", &format!("Bearer {token}"))])
}

async fn plain_proxy() -> (RecordingUpstream, Proxy) {
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr()).start().await;
    proxy.wait_ready().await;
    (puma, proxy)
}

#[tokio::test]
async fn probes_answer_200() {
    let (_puma, proxy) = plain_proxy().await;
    let (status, _, body) =
        request(proxy.admin_addr, Method::GET, "/healthz", HeaderMap::new()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) =
        request(proxy.admin_addr, Method::GET, "/readyz", HeaderMap::new()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_build_info() {
    let (_puma, proxy) = plain_proxy().await;
    let (status, headers, body) =
        request(proxy.admin_addr, Method::GET, "/metrics", HeaderMap::new()).await;
    assert_eq!(status, StatusCode::OK);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .expect("content-type")
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "{content_type}"
    );
    assert!(
        body.contains("# TYPE inboxguard_build_info gauge"),
        "{body}"
    );
    let build_info = format!(
        "inboxguard_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(metric_value(&body, &build_info), Some(1.0), "{body}");
    // Every sample line parses as `series value`: no stray output in the exposition.
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "not a sample line: {line:?}"
        );
    }
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405() {
    let (_puma, proxy) = plain_proxy().await;
    let admin = proxy.admin_addr;
    let (status, _, _) = request(admin, Method::GET, "/nope", HeaderMap::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = request(admin, Method::GET, "/metrics/extra", HeaderMap::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (method, path) in [
        (Method::POST, "/healthz"),
        (Method::DELETE, "/readyz"),
        (Method::POST, "/metrics"),
        (Method::GET, "/admin/reload"),
    ] {
        let (status, _, _) = request(admin, method.clone(), path, HeaderMap::new()).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    }
}

#[tokio::test]
async fn token_guards_metrics_and_reload_but_not_probes() {
    let puma = RecordingUpstream::start().await;
    // A trailing newline, as `echo` or a Kubernetes Secret leaves it, is not part of the token.
    let proxy = Proxy::builder(puma.addr())
        .admin_token(&format!("{TOKEN}\n"))
        .start()
        .await;
    proxy.wait_ready().await;
    let admin = proxy.admin_addr;

    for (method, path) in [(Method::GET, "/metrics"), (Method::POST, "/admin/reload")] {
        let (status, _, _) = request(admin, method.clone(), path, HeaderMap::new()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without token"
        );
        let wrong = format!("{}x", &TOKEN[..TOKEN.len() - 1]);
        let (status, _, _) = request(admin, method.clone(), path, bearer(&wrong)).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} wrong token"
        );
        let (status, _, _) = request(admin, method.clone(), path, bearer(&TOKEN[..16])).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} token prefix"
        );
        let basic = headers(&[("authorization", &format!("Basic {TOKEN}"))]);
        let (status, _, _) = request(admin, method.clone(), path, basic).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} not bearer"
        );
        let (status, _, body) = request(admin, method.clone(), path, bearer(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{method} {path} with token: {body}");
    }
    let (status, _, body) = request(admin, Method::GET, "/metrics", bearer(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("inboxguard_build_info"), "{body}");

    for path in ["/healthz", "/readyz"] {
        let (status, _, _) = request(admin, Method::GET, path, HeaderMap::new()).await;
        assert_eq!(status, StatusCode::OK, "{path} without token");
    }
}

#[tokio::test]
async fn a_short_admin_token_stops_startup() {
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .admin_token("too-short\n")
        .start()
        .await;
    match proxy.shutdown().await {
        Err(inboxguard::RunError::AdminToken(message)) => {
            assert!(message.contains("admin-token"), "{message}");
            assert!(message.contains("16"), "{message}");
        }
        other => panic!("expected an admin token error, got {other:?}"),
    }
}

/// Starts a proxy whose upstream is `puma`, with a remote `remote.test` and one actor.
async fn proxy_with_actor(puma: &RecordingUpstream) -> (RemoteInstance, Actor, Proxy) {
    let remote = RemoteInstance::start("remote.test").await;
    let actor = remote.add_actor("alice");
    let proxy = Proxy::builder(puma.addr()).remote(&remote).start().await;
    proxy.wait_ready().await;
    (remote, actor, proxy)
}

fn spawn_delivery(
    proxy_addr: SocketAddr,
    actor: &Actor,
) -> tokio::task::JoinHandle<Result<(StatusCode, HeaderMap, bytes::Bytes), BoxError>> {
    let body = actor.activity("Create", serde_json::json!("http://local.test/notes/1"));
    let headers = actor.sign_post(INBOX, LOCAL_HOST, &body);
    tokio::spawn(try_send(proxy_addr, Method::POST, INBOX, headers, body))
}

async fn wait_for_upstream_request(puma: &RecordingUpstream) {
    within("delivery reaches the upstream", async {
        while puma.count() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
}

async fn assert_refuses_connections(addr: SocketAddr) {
    let attempt = within(
        "connect after shutdown",
        tokio::net::TcpStream::connect(addr),
    )
    .await;
    assert!(
        attempt.is_err(),
        "the proxy port still accepts connections after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_a_request_waiting_on_the_upstream() {
    let puma = RecordingUpstream::start().await;
    // A status Mastodon would not send by default, so the answer is recognisably the upstream's.
    puma.set_status(StatusCode::CREATED);
    puma.set_response_body("from puma");
    puma.set_delay(Some(std::time::Duration::from_secs(1)));
    let (_remote, actor, proxy) = proxy_with_actor(&puma).await;
    let proxy_addr = proxy.proxy_addr;

    let delivery = spawn_delivery(proxy_addr, &actor);
    wait_for_upstream_request(&puma).await;
    within("shutdown", proxy.shutdown())
        .await
        .expect("clean shutdown");

    // `shutdown` returned, so the drain is over; the request it waited for got its answer.
    let (status, _, body) = within("in-flight delivery", delivery)
        .await
        .unwrap()
        .expect("the in-flight request completes during the drain");
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(&body[..], b"from puma");
    assert_eq!(puma.count(), 1);
    assert_refuses_connections(proxy_addr).await;
}

/// The upstream streams its answer and the test decides when it ends, so the drain is
/// observable for as long as needed: `/readyz` must say 503 while a request is still in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_draining() {
    let puma = RecordingUpstream::start().await;
    let stream = puma.respond_streaming();
    let (_remote, actor, proxy) = proxy_with_actor(&puma).await;
    let (proxy_addr, admin_addr) = (proxy.proxy_addr, proxy.admin_addr);

    let delivery = spawn_delivery(proxy_addr, &actor);
    wait_for_upstream_request(&puma).await;
    stream.send("first part, ");
    let stopping = tokio::spawn(proxy.shutdown());

    within("readyz turns 503", async {
        loop {
            let answer = try_send(
                admin_addr,
                Method::GET,
                "/readyz",
                HeaderMap::new(),
                Vec::new(),
            )
            .await;
            match answer {
                Ok((StatusCode::SERVICE_UNAVAILABLE, _, _)) => break,
                Ok((StatusCode::OK, _, _)) => {}
                other => panic!("/readyz during the drain: {other:?}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    // Metrics stay scrapeable during the drain.
    let (status, _) = get_text(admin_addr, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !stopping.is_finished(),
        "shutdown did not wait for the request"
    );
    assert!(!delivery.is_finished(), "the in-flight request was cut off");

    stream.send("second part");
    drop(stream);
    let (status, _, body) = within("in-flight delivery", delivery)
        .await
        .unwrap()
        .expect("the in-flight request completes during the drain");
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(&body[..], b"first part, second part");
    within("shutdown", stopping)
        .await
        .unwrap()
        .expect("clean shutdown");
    assert_refuses_connections(proxy_addr).await;
}

/// Past the grace period, a connection still waiting on a hung upstream is closed: the
/// sender sees the connection end (and retries) long before the 60 s upstream timeout, and
/// no connection outlives `run`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_still_open_after_the_grace_period_are_closed() {
    let puma = RecordingUpstream::start().await;
    puma.hang();
    let remote = RemoteInstance::start("remote.test").await;
    let actor = remote.add_actor("alice");
    let proxy = Proxy::builder(puma.addr())
        .remote(&remote)
        .configure(|c| {
            c.server.shutdown_grace_secs = 1;
            c.upstream.timeout_secs = 60;
        })
        .start()
        .await;
    proxy.wait_ready().await;
    let proxy_addr = proxy.proxy_addr;

    let delivery = spawn_delivery(proxy_addr, &actor);
    wait_for_upstream_request(&puma).await;
    within("shutdown", proxy.shutdown())
        .await
        .expect("clean shutdown");
    // `within` fails the test after 20 s: without closing, the request would wait 60 s.
    let outcome = within("in-flight delivery after the grace period", delivery)
        .await
        .unwrap();
    assert!(
        outcome.is_err(),
        "the hung request must end with a closed connection, not an answer: {outcome:?}"
    );
    assert_refuses_connections(proxy_addr).await;
}

/// Reads from `stream` until the peer closes it (or errors), or `limit` passes; true if closed.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(limit, read_to_end).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_capped_and_closed_by_the_header_timeout() {
    use inboxguard::admin::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let (_puma, proxy) = plain_proxy().await;
    // Every slot taken by a client that starts a request and never finishes its headers.
    let mut slow = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut s = tokio::net::TcpStream::connect(proxy.admin_addr)
            .await
            .unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    // One more client waits in the backlog: the cap holds.
    let probe = tokio::spawn(send(
        proxy.admin_addr,
        Method::GET,
        "/healthz",
        HeaderMap::new(),
        Vec::new(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !probe.is_finished(),
        "admin connection {} was served past the cap of {MAX_CONNECTIONS}",
        MAX_CONNECTIONS + 1
    );
    // The header timeout closes the slow ones, which frees the slots.
    for s in &mut slow {
        assert!(
            closed_within(s, HEADER_READ_TIMEOUT + Duration::from_secs(3)).await,
            "a slowloris admin connection was not closed"
        );
    }
    let (status, _, _) = within("the waiting probe", probe).await.unwrap();
    assert_eq!(status, StatusCode::OK);
}

/// Runs `inboxguard healthcheck ARGS` (a blocking child process) and returns its exit code.
async fn healthcheck(args: &[&str]) -> Option<i32> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_inboxguard"))
            .arg("healthcheck")
            .args(&args)
            .output()
            .unwrap()
    });
    let out = within("inboxguard healthcheck", out).await.unwrap();
    out.status.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_command_exits_0_only_for_a_2xx_answer() {
    let (puma, proxy) = plain_proxy().await;
    let url = |addr: SocketAddr, path: &str| format!("http://{addr}{path}");
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            healthcheck(&["--url", &url(proxy.admin_addr, path)]).await,
            Some(0),
            "{path}"
        );
    }
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert_eq!(
        healthcheck(&["--url", &url(closed, "/healthz")]).await,
        Some(1)
    );
    // An answer, but not a healthy one.
    puma.set_status(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        healthcheck(&["--url", &url(puma.addr(), "/readyz")]).await,
        Some(1)
    );
    // A listener that never answers: the timeout ends the check.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        healthcheck(&[
            "--url",
            &url(silent.local_addr().unwrap(), "/healthz"),
            "--timeout-secs",
            "1"
        ])
        .await,
        Some(1)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

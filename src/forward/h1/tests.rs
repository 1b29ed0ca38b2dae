use super::*;
use http_body_util::BodyExt;
use std::sync::atomic::AtomicUsize;
use tokio::net::TcpListener;

/// A loopback upstream that answers every request on a connection with the next of `replies`
/// (raw bytes), then closes the connection if `close_after` says so. Counts connections and
/// keeps the raw requests.
struct Upstream {
    port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

async fn upstream(replies: Vec<&'static [u8]>, close_after: bool) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (connections.clone(), requests.clone());
    let replies = Arc::new(Mutex::new(replies.into_iter()));
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let (seen, replies) = (seen.clone(), replies.clone());
            tokio::spawn(async move {
                loop {
                    let Some(request) = read_request(&mut stream).await else {
                        return;
                    };
                    seen.lock().unwrap().push(request);
                    let Some(reply) = replies.lock().unwrap().next() else {
                        return;
                    };
                    if stream.write_all(reply).await.is_err() || close_after {
                        return;
                    }
                }
            });
        }
    });
    Upstream {
        port,
        connections,
        requests,
    }
}

/// One request: its head up to the blank line and `content-length` body bytes.
async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        got.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&got).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.ok()?;
    got.extend_from_slice(&body);
    Some(got)
}

fn pool(port: u16) -> Arc<Pool> {
    Arc::new(Pool::new(
        "127.0.0.1",
        port,
        Duration::from_secs(2),
        Duration::from_secs(15),
        4,
    ))
}

const HEAD: &[u8] = b"POST /inbox HTTP/1.1\r\nhost: example.social\r\ncontent-length: 2\r\n\r\n";

async fn deliver(pool: &Arc<Pool>) -> Result<(StatusCode, HeaderMap, Vec<u8>), String> {
    let response = exchange(pool, HEAD, b"{}")
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.map_err(|e| e.to_string())?;
    Ok((parts.status, parts.headers, bytes.to_bytes().to_vec()))
}

#[tokio::test]
async fn a_length_framed_answer_is_read_and_the_connection_reused() {
    let up = upstream(
        vec![
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nfirst",
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
        ],
        false,
    )
    .await;
    let pool = pool(up.port);
    let (status, headers, body) = deliver(&pool).await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, b"first");
    assert!(
        !headers.contains_key(header::CONNECTION),
        "hop-by-hop removed"
    );
    let (status, _, body) = deliver(&pool).await.unwrap();
    assert_eq!((status, body.len()), (StatusCode::ACCEPTED, 0));
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
    let requests = up.requests.lock().unwrap().clone();
    assert_eq!(
        requests,
        vec![[HEAD, &b"{}"[..]].concat(); 2],
        "bytes as given"
    );
}

#[tokio::test]
async fn a_chunked_answer_is_decoded_with_extensions_and_trailers() {
    let up = upstream(
        vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n\
              5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok",
        ],
        false,
    )
    .await;
    let pool = pool(up.port);
    let (status, headers, body) = deliver(&pool).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"hello world");
    assert!(!headers.contains_key(header::TRANSFER_ENCODING));
    assert!(
        !headers.contains_key(header::CONTENT_LENGTH),
        "ignored beside chunks"
    );
    assert_eq!(deliver(&pool).await.unwrap().2, b"ok");
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_answer_without_length_ends_at_close_and_is_not_reused() {
    let up = upstream(
        vec![
            b"HTTP/1.1 202 Accepted\r\n\r\nuntil the end",
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
        ],
        true,
    )
    .await;
    let pool = pool(up.port);
    assert_eq!(deliver(&pool).await.unwrap().2, b"until the end");
    assert_eq!(deliver(&pool).await.unwrap().0, StatusCode::ACCEPTED);
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_interim_answer_is_skipped() {
    let up = upstream(
        vec![b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"],
        false,
    )
    .await;
    assert_eq!(
        deliver(&pool(up.port)).await.unwrap().0,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn cut_short_bodies_are_errors_not_short_successes() {
    for reply in [
        &b"HTTP/1.1 202 Accepted\r\nContent-Length: 10\r\n\r\nshort"[..],
        b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\na\r\nshort",
        b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ] {
        let up = upstream(vec![reply], true).await;
        let err = deliver(&pool(up.port)).await.unwrap_err();
        assert!(err.contains("closed the connection before"), "{err}");
    }
}

#[tokio::test]
async fn unreadable_answers_are_connection_lost() {
    for (reply, says) in [
        (
            &b"HTTP/1.1 202 Accepted\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            "conflicting",
        ),
        (
            b"HTTP/1.1 202 Accepted\r\nContent-Length: -1\r\n\r\n",
            "invalid Content-Length",
        ),
        (b"SMTP ready\r\n\r\n", "unreadable response"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
        (b"HTTP/1.1 202 Accepted\r\n", "within the response head"),
        (b"", "before answering"),
    ] {
        let up = upstream(vec![reply], true).await;
        let err = deliver(&pool(up.port)).await.unwrap_err();
        assert!(
            err.contains("connection lost") && err.contains(says),
            "{err}"
        );
    }
    let up = upstream(
        vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
        true,
    )
    .await;
    let err = deliver(&pool(up.port)).await.unwrap_err();
    assert!(err.contains("invalid chunk size"), "{err}");
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_not_used_again() {
    let up = upstream(
        vec![
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
        ],
        true,
    )
    .await;
    let pool = pool(up.port);
    assert_eq!(deliver(&pool).await.unwrap().0, StatusCode::ACCEPTED);
    assert_eq!(
        pool.idle().len(),
        1,
        "kept: the answer said nothing of closing"
    );
    // The upstream closed it after answering; the next delivery must not be lost to that.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(deliver(&pool).await.unwrap().0, StatusCode::ACCEPTED);
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
    assert_eq!(up.requests.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = deliver(&pool(port)).await.unwrap_err();
    assert!(err.starts_with("upstream unreachable"), "{err}");
}

#[test]
fn idle_connections_beyond_the_limit_are_closed() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let pool = pool(port);
        for _ in 0..6 {
            let conn = pool.connect().await.unwrap();
            pool.checkin(conn);
        }
        assert_eq!(pool.idle().len(), 4);
    });
}

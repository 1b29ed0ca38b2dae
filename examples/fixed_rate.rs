//! Open-loop load generator for `benches/load.sh` (not part of the inboxguard binary): replays
//! pre-signed raw requests at a fixed rate and reports latency the way a sender experiences
//! it.
//!
//! Usage: `fixed_rate <host:port> <requests-file> <rate per second> <seconds> <connections>`
//!
//! wrk (closed loop) sends the next request only when a connection's last one came back, so a
//! slow response delays the requests behind it and they are never counted as slow
//! ("coordinated omission"). Here request `i` is due at `start + i / rate` whatever happens;
//! its latency runs from that due time to the end of its response, so time spent waiting for
//! a free connection counts. With enough connections the offered rate is the one asked for.
//!
//! Prints one line in the format of `benches/load.lua`:
//! `RESULT requests=… rps=… p50_us=… p99_us=… p999_us=… max_us=… non2xx=… connect=… read=… write=… timeout=…`
//! (`rps` is the completed rate; `timeout` counts requests still unanswered 10 s after the
//! run, `read`/`write` failed exchanges, `connect` failed connects).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What became of one request.
enum Outcome {
    Done { latency: Duration, status: u16 },
    Connect,
    Read,
    Write,
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, file, rate, seconds, conns] = args.as_slice() else {
        return Err(
            "usage: fixed_rate <host:port> <requests-file> <rate> <seconds> <connections>".into(),
        );
    };
    let requests = Arc::new(read_requests(file)?);
    if requests.is_empty() {
        return Err(format!("{file}: no requests").into());
    }
    let rate: f64 = rate.parse()?;
    let seconds: f64 = seconds.parse()?;
    let conns: usize = conns.parse::<usize>()?.max(1);
    let total = (rate * seconds).round() as usize;
    if rate.is_nan() || rate <= 0.0 || total == 0 {
        return Err("rate and seconds must be positive".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcomes = runtime.block_on(run(addr.clone(), requests, rate, total, conns));
    report(&outcomes, total, seconds);
    Ok(())
}

/// The request file of `benches/load.lua`: per request, its byte length, `\n`, the raw bytes.
fn read_requests(path: &str) -> Result<Vec<Vec<u8>>, Error> {
    let data = std::fs::read(path)?;
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let nl = data[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("truncated request file")?;
        let len: usize = std::str::from_utf8(&data[pos..pos + nl])?.trim().parse()?;
        let start = pos + nl + 1;
        let end = start + len;
        out.push(data.get(start..end).ok_or("truncated request")?.to_vec());
        pos = end;
    }
    Ok(out)
}

async fn run(
    addr: String,
    requests: Arc<Vec<Vec<u8>>>,
    rate: f64,
    total: usize,
    conns: usize,
) -> Vec<Outcome> {
    // Due times go into one queue; each connection takes the next one when it is free.
    let (tx, rx) = mpsc::unbounded_channel::<Instant>();
    let rx = Arc::new(Mutex::new(rx));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Outcome>();
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..conns {
        let (rx, done, addr, requests, next) = (
            rx.clone(),
            done_tx.clone(),
            addr.clone(),
            requests.clone(),
            next.clone(),
        );
        tokio::spawn(async move {
            let mut stream: Option<TcpStream> = None;
            loop {
                let Some(due) = rx.lock().await.recv().await else {
                    return;
                };
                let request = &requests[next.fetch_add(1, Ordering::Relaxed) % requests.len()];
                let outcome = exchange(&mut stream, &addr, request, due).await;
                if !matches!(outcome, Outcome::Done { .. }) {
                    stream = None;
                }
                let _ = done.send(outcome);
            }
        });
    }
    drop(done_tx);
    let start = Instant::now() + Duration::from_millis(50);
    // The pacer is a thread of its own: tokio's timer wheel wakes in whole milliseconds, so
    // a pacer task released each millisecond's requests together, a burst the server under
    // test had to queue. `thread::sleep` is a high-resolution sleep (tens of microseconds).
    std::thread::spawn(move || {
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if tx.send(due).is_err() {
                return;
            }
        }
    });
    let deadline = start + Duration::from_secs_f64(total as f64 / rate) + Duration::from_secs(10);
    let mut outcomes = Vec::with_capacity(total);
    while outcomes.len() < total {
        match tokio::time::timeout_at(deadline.into(), done_rx.recv()).await {
            Ok(Some(o)) => outcomes.push(o),
            _ => break,
        }
    }
    outcomes
}

/// Sends one request on the connection (opening one if needed) and reads the response.
async fn exchange(
    stream: &mut Option<TcpStream>,
    addr: &str,
    request: &[u8],
    due: Instant,
) -> Outcome {
    if stream.is_none() {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                *stream = Some(s);
            }
            Err(_) => return Outcome::Connect,
        }
    }
    let Some(s) = stream.as_mut() else {
        return Outcome::Connect;
    };
    if s.write_all(request).await.is_err() {
        return Outcome::Write;
    }
    match read_response(s).await {
        Some(status) => Outcome::Done {
            latency: due.elapsed(),
            status,
        },
        None => Outcome::Read,
    }
}

/// Reads one HTTP/1.1 response (Content-Length or chunked body) and returns its status.
async fn read_response(s: &mut TcpStream) -> Option<u16> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .ok()?
        .to_ascii_lowercase();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head
        .lines()
        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    loop {
        let body = &buf[head_end..];
        let complete = match length {
            Some(len) => body.len() >= len,
            None if chunked => body.ends_with(b"0\r\n\r\n"),
            None => true,
        };
        if complete {
            return Some(status);
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn report(outcomes: &[Outcome], total: usize, seconds: f64) {
    let mut latencies: Vec<u64> = Vec::with_capacity(outcomes.len());
    let (mut non2xx, mut connect, mut read, mut write) = (0, 0, 0, 0);
    for o in outcomes {
        match o {
            Outcome::Done { latency, status } => {
                latencies.push(latency.as_micros() as u64);
                if !(200..300).contains(status) {
                    non2xx += 1;
                }
            }
            Outcome::Connect => connect += 1,
            Outcome::Read => read += 1,
            Outcome::Write => write += 1,
        }
    }
    latencies.sort_unstable();
    let pct = |p: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        let i = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies[i.clamp(1, latencies.len()) - 1]
    };
    println!(
        "RESULT requests={} rps={:.0} p50_us={} p99_us={} p999_us={} max_us={} non2xx={non2xx} connect={connect} read={read} write={write} timeout={}",
        latencies.len(),
        latencies.len() as f64 / seconds,
        pct(50.0),
        pct(99.0),
        pct(99.9),
        latencies.last().copied().unwrap_or(0),
        total - outcomes.len(),
    );
}

//! `ListServer`: a rule-list host on 127.0.0.1 that answers each GET with what the test's
//! handler returns and records every request, for subscriptions and the Mastodon admin API;
//! and a `Subscription` to it with fresh rules (`subscription`, `sub_config`).

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use inboxguard::config::SubscriptionConfig;
use inboxguard::metrics::Metrics;
use inboxguard::rules::Rules;
use inboxguard::subscriptions::{Getter, Shared, Subscription};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A request as the list server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub target: String,
    pub headers: HeaderMap,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync>;

pub struct ListServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    handler: Arc<Mutex<Handler>>,
    pub task: JoinHandle<()>,
}

impl Drop for ListServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ListServer {
    pub async fn start() -> ListServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Arc<Mutex<Handler>> =
            Arc::new(Mutex::new(Arc::new(|_: &Seen| reply(404, &[], ""))));
        let (s, h) = (seen.clone(), handler.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (s, h) = (s.clone(), h.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let seen = Seen {
                            target: req.uri().path_and_query().unwrap().to_string(),
                            headers: req.headers().clone(),
                        };
                        s.lock().unwrap().push(seen.clone());
                        let handler = h.lock().unwrap().clone();
                        async move { Ok::<_, Infallible>(handler(&seen)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ListServer {
            addr,
            seen,
            handler,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn answer(&self, f: impl Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync + 'static) {
        *self.handler.lock().unwrap() = Arc::new(f);
    }

    /// A list with validators; a matching `If-None-Match` gets 304.
    pub fn serve_list(&self, body: &'static str, etag: &'static str, last_modified: &'static str) {
        self.answer(move |seen| {
            if seen.header("if-none-match") == Some(etag) {
                return reply(304, &[("etag", etag)], "");
            }
            reply(
                200,
                &[("etag", etag), ("last-modified", last_modified)],
                body,
            )
        });
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.requests().pop().expect("a request")
    }
}

pub fn reply(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Full::new(body.into())).unwrap()
}

pub fn fresh_rules() -> (Arc<Rules>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new().unwrap());
    (
        Rules::new(Vec::new(), Default::default(), metrics.clone()).unwrap(),
        metrics,
    )
}

pub fn sub_config(url: &str) -> SubscriptionConfig {
    let text = format!(
        "url = {url:?}\nallow_http = true\nallow_private_addresses = true\ntimeout_secs = 5\n"
    );
    toml::from_str(&text).unwrap()
}

pub fn subscription(
    config: SubscriptionConfig,
    state: &Path,
) -> (Subscription, Arc<Rules>, Arc<Metrics>) {
    let (rules, metrics) = fresh_rules();
    let getter = Arc::new(Getter::new("inboxguard-test").unwrap());
    let s = Subscription::new(config, &shared(state, getter, &rules, &metrics)).unwrap();
    (s, rules, metrics)
}

/// What a remote source is built with, from the test's parts.
pub fn shared(
    state: &Path,
    getter: Arc<Getter>,
    rules: &Arc<Rules>,
    metrics: &Arc<Metrics>,
) -> Shared {
    Shared {
        state_dir: state.to_path_buf(),
        getter,
        rules: rules.clone(),
        metrics: metrics.clone(),
    }
}

pub fn suspended(rules: &Rules, domain: &str) -> bool {
    rules.current().load().is_suspended(domain).is_some()
}

pub fn fetches(metrics: &Metrics, source: &str, result: &str) -> u64 {
    metrics
        .subscription_fetches_total
        .with_label_values(&[source, result])
        .get()
}

//! The whole proxy, in process, on 127.0.0.1:0: config written to a tempdir and loaded through
//! `Config::load` (so tests exercise the same validation as `serve`), then
//! `inboxguard::run(config, Listeners { proxy, admin }, shutdown)` on a tokio task.
//!
//! Written against `inboxguard::run` / `inboxguard::Listeners` / `inboxguard::RunError`.

use super::{get_text, send, within, Actor, RemoteInstance, SignOptions};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use inboxguard::config::Config;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

type Configure = Box<dyn FnOnce(&mut Config) + Send>;

/// Collects what goes into the config file. Owns the tempdir from the start, so blocklist
/// files can be written into it before the proxy starts (and rewritten after, for reloads).
pub struct ProxyBuilder {
    dir: tempfile::TempDir,
    upstream: SocketAddr,
    resolve: Vec<(String, SocketAddr)>,
    blocklists: Vec<(PathBuf, Option<String>)>,
    extra_toml: String,
    configure: Vec<Configure>,
}

/// A running proxy. Dropping it without [`Proxy::shutdown`] signals shutdown too; the task
/// then ends with the test's runtime.
pub struct Proxy {
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub config_path: PathBuf,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), inboxguard::RunError>>>,
}

impl Proxy {
    /// Starts building a proxy in front of `upstream` (a `RecordingUpstream::addr()`).
    pub fn builder(upstream: SocketAddr) -> ProxyBuilder {
        ProxyBuilder {
            dir: tempfile::tempdir().unwrap(),
            upstream,
            resolve: Vec::new(),
            blocklists: Vec::new(),
            extra_toml: String::new(),
            configure: Vec::new(),
        }
    }
}

impl ProxyBuilder {
    /// The tempdir that will hold the config file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `<tempdir>/<name>` and returns the path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// `[key_fetch.resolve]` entry: `host` is fetched from `addr`.
    pub fn resolve(mut self, host: &str, addr: SocketAddr) -> Self {
        self.resolve.push((host.to_string(), addr));
        self
    }

    /// Resolve a [`RemoteInstance`]'s made-up host to where it listens.
    pub fn remote(self, remote: &RemoteInstance) -> Self {
        let (host, addr) = (remote.host().to_string(), remote.addr());
        self.resolve(&host, addr)
    }

    /// A `[[blocklists]]` entry with the default (`auto`) format.
    pub fn blocklist(mut self, path: impl Into<PathBuf>) -> Self {
        self.blocklists.push((path.into(), None));
        self
    }

    /// A `[[blocklists]]` entry with an explicit format (`mastodon-csv`, `plain`, `auto`).
    pub fn blocklist_with_format(mut self, path: impl Into<PathBuf>, format: &str) -> Self {
        self.blocklists
            .push((path.into(), Some(format.to_string())));
        self
    }

    /// Writes `contents` as `<tempdir>/<name>` and adds it as a blocklist (auto format).
    pub fn blocklist_file(self, name: &str, contents: &str) -> Self {
        let path = self.write_file(name, contents);
        self.blocklist(path)
    }

    /// Raw TOML appended to the file, for tables the builder does not write itself
    /// (`[signatures]`, `[logging]`). Do not repeat `[server]`, `[upstream]`, `[admin]` or
    /// `[key_fetch]`: change those with [`ProxyBuilder::configure`].
    pub fn toml(mut self, extra: &str) -> Self {
        self.extra_toml.push_str(extra);
        self.extra_toml.push('\n');
        self
    }

    /// Guards the admin listener with `contents` as the token file's text (written to
    /// `admin-token` in the proxy's directory; a trailing newline is not part of the token).
    pub fn admin_token(self, contents: &str) -> Self {
        let token_file = self.write_file("admin-token", contents);
        self.configure(move |c| c.admin.token_file = Some(token_file))
    }

    /// Edits the loaded, validated config before `run` (e.g. `c.upstream.timeout_secs = 1`).
    pub fn configure(mut self, f: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    /// Binds both listeners, writes and loads the config, and spawns `inboxguard::run`.
    /// Panics if the config does not load.
    pub async fn start(self) -> Proxy {
        let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = proxy_listener.local_addr().unwrap();
        let admin_addr = admin_listener.local_addr().unwrap();

        let text = self.render(proxy_addr, admin_addr);
        let config_path = self.dir.path().join("inboxguard.toml");
        std::fs::write(&config_path, &text).unwrap();
        let mut config = Config::load(&config_path)
            .unwrap_or_else(|e| panic!("test config does not load: {e}\n---\n{text}"));
        // State (the rule-change log, caches) in the tempdir unless the test chose a place.
        if config.state.dir == Path::new("/var/lib/inboxguard") {
            config.state.dir = self.dir.path().join("state");
        }
        for f in self.configure {
            f(&mut config);
        }
        // The listeners are what counts; keep the config telling the truth about them.
        config.server.listen = proxy_addr;
        config.admin.listen = admin_addr;

        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let listeners = inboxguard::Listeners {
            proxy: proxy_listener,
            admin: admin_listener,
        };
        let task = tokio::spawn(inboxguard::run(config, listeners, shutdown));
        Proxy {
            proxy_addr,
            admin_addr,
            config_path,
            dir: self.dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn render(&self, proxy_addr: SocketAddr, admin_addr: SocketAddr) -> String {
        let mut t = String::new();
        t.push_str(&format!(
            "[server]\nlisten = {}\n\n",
            quote(&proxy_addr.to_string())
        ));
        t.push_str(&format!(
            "[upstream]\nurl = {}\n\n",
            quote(&format!("http://{}", self.upstream))
        ));
        t.push_str(&format!(
            "[admin]\nlisten = {}\n\n",
            quote(&admin_addr.to_string())
        ));
        t.push_str("[key_fetch]\nallow_http = true\nallow_private_addresses = true\n\n");
        t.push_str("[key_fetch.resolve]\n");
        for (host, addr) in &self.resolve {
            t.push_str(&format!("{} = {}\n", quote(host), quote(&addr.to_string())));
        }
        t.push('\n');
        for (path, format) in &self.blocklists {
            t.push_str(&format!(
                "[[blocklists]]\npath = {}\n",
                quote(&path.to_string_lossy())
            ));
            if let Some(format) = format {
                t.push_str(&format!("format = {}\n", quote(format)));
            }
            t.push('\n');
        }
        t.push_str(&self.extra_toml);
        t
    }
}

/// A TOML basic string (escapes quotes, backslashes and control characters).
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Proxy {
    /// The tempdir holding the config (and any files written through the builder).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrites `<tempdir>/<name>` (e.g. a blocklist, to test reloads).
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Polls `/readyz` until it answers 200 (bounded by `HANG_GUARD`).
    pub async fn wait_ready(&self) {
        super::within("proxy readiness", async {
            loop {
                if super::try_send(
                    self.admin_addr,
                    Method::GET,
                    "/readyz",
                    HeaderMap::new(),
                    Vec::new(),
                )
                .await
                .map(|(status, _, _)| status == StatusCode::OK)
                .unwrap_or(false)
                {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let (status, text) = get_text(self.admin_addr, "/metrics").await;
        assert_eq!(status, StatusCode::OK, "/metrics answered {status}");
        text
    }

    /// A correctly signed POST of `body` by `actor` to `path` with `Host: host`.
    pub async fn post_signed(
        &self,
        actor: &Actor,
        path: &str,
        host: &str,
        body: &[u8],
    ) -> (StatusCode, HeaderMap, Bytes) {
        let headers = actor.sign_post(path, host, body);
        send(self.proxy_addr, Method::POST, path, headers, body.to_vec()).await
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn shutdown(mut self) -> Result<(), inboxguard::RunError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().unwrap();
        super::within("proxy shutdown", task).await.unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The inbox most tests deliver to (a per-user inbox), and the host Mastodon serves it on.
pub const INBOX: &str = "/users/alice/inbox";
pub const LOCAL: &str = "mastodon.local";

/// A POST of `body` signed by `actor` to [`INBOX`] on [`LOCAL`]: the proxy's status, headers
/// and body.
pub async fn deliver(proxy: &Proxy, actor: &Actor, body: &[u8]) -> (StatusCode, HeaderMap, Bytes) {
    within(
        "signed delivery",
        proxy.post_signed(actor, INBOX, LOCAL, body),
    )
    .await
}

/// A POST of `body` signed with `opts` by `actor` to [`INBOX`] on [`LOCAL`].
pub async fn deliver_with(
    proxy: &Proxy,
    actor: &Actor,
    body: &[u8],
    opts: SignOptions,
) -> (StatusCode, HeaderMap, Bytes) {
    let signed = actor.sign_post_with(INBOX, LOCAL, body, &opts);
    within(
        "signed delivery",
        send(
            proxy.proxy_addr,
            Method::POST,
            INBOX,
            signed.headers,
            signed.body,
        ),
    )
    .await
}

/// [`deliver`], the status only.
pub async fn deliver_status(proxy: &Proxy, actor: &Actor, body: &[u8]) -> StatusCode {
    deliver(proxy, actor, body).await.0
}

/// Waits (bounded) until the proxy's metric `name` satisfies `pred`.
pub async fn wait_metric(proxy: &Proxy, name: &str, pred: impl Fn(f64) -> bool) {
    within(name, async {
        loop {
            let m = proxy.metrics().await;
            if super::metric_value(&m, name).is_some_and(&pred) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// `POST /admin/reload`: the status and the answer's text.
pub async fn admin_reload(proxy: &Proxy) -> (StatusCode, String) {
    let (status, _, body) = within(
        "admin reload",
        send(
            proxy.admin_addr,
            Method::POST,
            "/admin/reload",
            HeaderMap::new(),
            Vec::new(),
        ),
    )
    .await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

//! The key cache: one moka cache keyed by keyId whose values are outcomes, keys and failures
//! alike, each with its own lifetime (`cache_ttl_secs` / `negative_ttl_secs`).
//!
//! Caching failures matters as much as caching keys: a deleted actor's server keeps
//! delivering with a key that now 404s, and each delivery would otherwise cost us a fetch.
//! Concurrent lookups of one keyId share one fetch (moka's per-key initialiser), and
//! refreshes join the same queue.

use super::document::{FetchedKey, KeyMaterial};
use super::fetch::Fetcher;
use super::parsed::ParsedKeys;
use super::{KeyError, KeyRecord, Source};
use crate::cluster::Cluster;
use crate::config::KeyFetchConfig;
use crate::metrics::Metrics;
use crate::signature::PublicKey;
use moka::future::Cache;
use prometheus::IntCounter;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A refresh finding an entry younger than this reuses it instead of fetching again.
///
/// When an actor rotates its key, every in-flight delivery signed with the new key fails
/// against the cached old one and asks for a refresh at about the same time. The first
/// refresh fetches; the others either wait for that fetch or, arriving just after it, find an
/// entry this young and take it. A key document rarely changes twice within seconds, so
/// nothing is lost, and a sender cannot turn bad signatures into a fetch per request.
const REFRESH_REUSE_WINDOW: Duration = Duration::from_secs(5);

/// How long a fetch the bulkhead declined is remembered.
const SHED_TTL: Duration = Duration::from_secs(1);

/// One cached outcome.
struct Cached<V> {
    result: Result<Arc<V>, KeyError>,
    fetched_at: Instant,
}

type Value<V> = Arc<Cached<V>>;

/// Per-entry lifetime: keys live `ttl`, failures `negative_ttl`. A refresh that replaces an
/// entry restarts its clock the same way.
struct OutcomeExpiry {
    ttl: Duration,
    negative_ttl: Duration,
}

impl OutcomeExpiry {
    fn lifetime<V>(&self, value: &Value<V>) -> Duration {
        match &value.result {
            Ok(_) => self.ttl,
            // Our own shedding says nothing about the remote: remember it just long enough
            // to absorb a burst, then try again.
            Err(e) if e.is_shed() => SHED_TTL.min(self.negative_ttl),
            Err(_) => self.negative_ttl,
        }
    }
}

impl<V> moka::Expiry<String, Value<V>> for OutcomeExpiry {
    fn expire_after_create(&self, _: &String, value: &Value<V>, _: Instant) -> Option<Duration> {
        Some(self.lifetime(value))
    }

    fn expire_after_update(
        &self,
        _: &String,
        value: &Value<V>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.lifetime(value))
    }
}

/// The cache around a fetcher, generic over what a fetched key becomes so the tests can
/// exercise it without parsing real keys. [`KeyStore`] is `Store<KeyRecord>`.
pub(crate) struct Store<V> {
    cache: Cache<String, Value<V>>,
    fetcher: Fetcher,
    /// Turns a fetched key into the cached value (parses the PEM for [`KeyRecord`]).
    build: fn(&str, FetchedKey) -> Result<V, KeyError>,
    metrics: Arc<Metrics>,
    refresh_reuse_window: Duration,
    /// Replicas' shared key documents: checked before a fetch, filled after one.
    shared: Option<Arc<Cluster>>,
    ttl: Duration,
}

impl<V: Send + Sync + 'static> Store<V> {
    pub(crate) fn new(
        cfg: &KeyFetchConfig,
        metrics: Arc<Metrics>,
        build: fn(&str, FetchedKey) -> Result<V, KeyError>,
    ) -> Result<Store<V>, String> {
        let cache = Cache::builder()
            .max_capacity(cfg.cache_capacity)
            .expire_after(OutcomeExpiry {
                ttl: Duration::from_secs(cfg.cache_ttl_secs),
                negative_ttl: Duration::from_secs(cfg.negative_ttl_secs),
            })
            .build();
        Ok(Store {
            cache,
            fetcher: Fetcher::new(cfg)?,
            build,
            metrics,
            refresh_reuse_window: REFRESH_REUSE_WINDOW,
            shared: None,
            ttl: Duration::from_secs(cfg.cache_ttl_secs),
        })
    }

    pub(crate) fn share(&mut self, cluster: Arc<Cluster>) {
        self.shared = Some(cluster);
    }

    pub(crate) async fn get(&self, key_id: &str) -> Result<(Arc<V>, Source), KeyError> {
        let counter = &self.metrics.key_cache_requests_total;
        if let Some(hit) = self.cache.get(key_id).await {
            counter.with_label_values(&["hit"]).inc();
            return hit.result.clone().map(|v| (v, Source::Cache));
        }
        counter.with_label_values(&["miss"]).inc();
        // Concurrent misses wait here for the one fetch that runs; whoever started it, the
        // key is as fresh as it gets.
        let entry = self
            .cache
            .entry_by_ref(key_id)
            .or_insert_with(self.lookup(key_id))
            .await;
        entry
            .into_value()
            .result
            .clone()
            .map(|v| (v, Source::Fetched))
    }

    pub(crate) async fn refresh(&self, key_id: &str) -> Result<Arc<V>, KeyError> {
        let window = self.refresh_reuse_window;
        let entry = self
            .cache
            .entry_by_ref(key_id)
            .or_insert_with_if(self.fetch(key_id), move |cached| {
                cached.fetched_at.elapsed() >= window
            })
            .await;
        entry.into_value().result.clone()
    }

    /// One network lookup, measured and logged; its outcome becomes the cache entry.
    /// A miss: another replica's copy when the shared cache has one, else a fetch.
    async fn lookup(&self, key_id: &str) -> Value<V> {
        if let Some(cluster) = &self.shared {
            let shared = cluster.key_document(key_id).await.flatten();
            let key = shared.and_then(|doc| serde_json::from_str::<FetchedKey>(&doc).ok());
            if let Some(Ok(record)) = key.map(|k| (self.build)(key_id, k)) {
                cluster.count_shared_key(true);
                return Arc::new(Cached {
                    result: Ok(Arc::new(record)),
                    fetched_at: Instant::now(),
                });
            }
            cluster.count_shared_key(false);
        }
        self.fetch(key_id).await
    }

    async fn fetch(&self, key_id: &str) -> Value<V> {
        let started = Instant::now();
        let fetched = self.fetcher.fetch_key(key_id).await;
        if let (Some(cluster), Ok(key)) = (&self.shared, &fetched) {
            if let Ok(doc) = serde_json::to_string(key) {
                cluster.store_key_document(key_id, doc, self.ttl);
            }
        }
        let result = fetched
            .and_then(|key| (self.build)(key_id, key))
            .map(Arc::new);
        self.metrics
            .key_fetch_duration_seconds
            .observe(started.elapsed().as_secs_f64());
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.reason(),
        };
        self.metrics
            .key_fetches_total
            .with_label_values(&[label])
            .inc();
        let host = crate::net::host_of(key_id).unwrap_or_default();
        match &result {
            Ok(_) => tracing::debug!(%host, "key fetched"),
            Err(e) if e.is_transient() => {
                tracing::info!(%host, reason = e.reason(), "key fetch failed (transient)")
            }
            Err(e) => tracing::debug!(%host, reason = e.reason(), error = %e, "key fetch failed"),
        }
        Arc::new(Cached {
            result,
            fetched_at: Instant::now(),
        })
    }
}

/// Public keys by keyId: cached, fetched on a miss, failures remembered for a while.
/// Shared by every request (`Arc<KeyStore>` in the app state).
///
/// The cache keeps each key compact (its DER); the parsed forms of the keys used most
/// recently (`key_fetch.parsed_cache_capacity`) live beside it, see `keys::parsed`.
pub struct KeyStore {
    inner: Store<KeyRecord>,
    parsed: ParsedKeys,
    /// `inboxguard_parsed_key_cache_requests_total`'s two counters, looked up once.
    parsed_hits: IntCounter,
    parsed_misses: IntCounter,
}

impl KeyStore {
    /// Builds the store and reads the instance actor's signing key, if configured. Errors
    /// name the file and the reason.
    pub fn new(cfg: &KeyFetchConfig, metrics: Arc<Metrics>) -> Result<KeyStore, String> {
        let parsed = usize::try_from(cfg.parsed_cache_capacity).unwrap_or(usize::MAX);
        let counters = &metrics.parsed_key_cache_requests_total;
        Ok(KeyStore {
            parsed_hits: counters.with_label_values(&["hit"]),
            parsed_misses: counters.with_label_values(&["miss"]),
            inner: Store::new(cfg, metrics, build_record)?,
            parsed: ParsedKeys::new(parsed),
        })
    }

    /// The verifying form of `record`, the key of `key_id`: from the parsed set when it is
    /// there, else parsed again from its DER and put there. The DER parsed when the key was
    /// fetched, so it parses again; were it not to, the key counts as unsupported.
    pub fn verifying_key(
        &self,
        key_id: &str,
        record: &KeyRecord,
    ) -> Result<Arc<PublicKey>, KeyError> {
        if let Some(key) = self.parsed.get(record.serial) {
            self.parsed_hits.inc();
            return Ok(key);
        }
        self.parsed_misses.inc();
        let key = Arc::new(record.key.parse().map_err(|e| KeyError::UnsupportedKey {
            key_id: key_id.to_string(),
            reason: e.to_string(),
        })?);
        self.parsed.insert(record.serial, key.clone());
        Ok(key)
    }

    /// The key for `key_id`, from the cache or fetched. Concurrent misses for one keyId share
    /// one fetch; a failure is remembered for `negative_ttl_secs` and returned from the cache
    /// until then.
    pub async fn get(&self, key_id: &str) -> Result<(Arc<KeyRecord>, Source), KeyError> {
        self.inner.get(key_id).await
    }

    /// Fetches the key again, replacing the cached entry (key rotation). Callers should ask
    /// at most once per request, after verification with a [`Source::Cache`] key failed.
    ///
    /// Concurrent refreshes of one keyId share one fetch, and an entry fetched less than
    /// 5 s ago is returned as is instead of fetching again (see `REFRESH_REUSE_WINDOW`).
    pub async fn refresh(&self, key_id: &str) -> Result<Arc<KeyRecord>, KeyError> {
        self.inner.refresh(key_id).await
    }

    /// Shares fetched keys with other replicas, and uses theirs (`[cluster] share_keys`).
    pub fn share(&mut self, cluster: Arc<Cluster>) {
        self.inner.share(cluster);
    }
}

/// The last step of a lookup: parse the key material into a verifying key.
fn build_record(key_id: &str, key: FetchedKey) -> Result<KeyRecord, KeyError> {
    let parsed = match &key.material {
        KeyMaterial::Pem(pem) => PublicKey::from_pem(pem),
        KeyMaterial::Multibase(multibase) => PublicKey::from_multibase(multibase),
    };
    let public = parsed.map_err(|e| KeyError::UnsupportedKey {
        key_id: key_id.to_string(),
        reason: e.to_string(),
    })?;
    // Serial numbers only need to be unique: a u64 does not wrap in the process's lifetime.
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    Ok(KeyRecord {
        key: public.compact(),
        serial: SERIAL.fetch_add(1, Ordering::Relaxed),
        owner: key.owner,
        actor: key.actor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::test_server::{cfg_for, json_reply, Reply, TestServer};
    use crate::signature::SigningKey;
    use moka::Expiry;

    const KEY_ID: &str = "http://remote.test/users/alice#main-key";
    const ACTOR: &str = "http://remote.test/users/alice";
    const PEM: &str = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";

    fn actor_doc(pem: &str) -> String {
        serde_json::json!({
            "id": ACTOR, "type": "Person",
            "publicKey": {"id": KEY_ID, "owner": ACTOR, "publicKeyPem": pem}
        })
        .to_string()
    }

    fn ok_reply(_: &crate::keys::test_server::Seen) -> Reply {
        json_reply(200, "application/activity+json", actor_doc(PEM))
    }

    /// A store that keeps the fetched PEM and owner as they are, so these tests do not
    /// depend on PEM parsing.
    fn raw_store(cfg: &KeyFetchConfig) -> (Store<FetchedKey>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let store = Store::new(cfg, metrics.clone(), |_, key| Ok(key)).expect("store");
        (store, metrics)
    }

    fn cache_count(m: &Metrics, result: &str) -> u64 {
        m.key_cache_requests_total
            .with_label_values(&[result])
            .get()
    }

    fn fetch_count(m: &Metrics, result: &str) -> u64 {
        m.key_fetches_total.with_label_values(&[result]).get()
    }

    #[tokio::test]
    async fn miss_then_hit() {
        let server = TestServer::start(ok_reply).await;
        let (store, metrics) = raw_store(&cfg_for(&server));
        let (first, source) = store.get(KEY_ID).await.expect("key");
        assert_eq!(source, Source::Fetched);
        assert_eq!(first.owner, ACTOR);
        assert_eq!(first.material, KeyMaterial::Pem(PEM.into()));
        let (second, source) = store.get(KEY_ID).await.expect("key");
        assert_eq!(source, Source::Cache);
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(server.requests().len(), 1);
        assert_eq!(
            (cache_count(&metrics, "miss"), cache_count(&metrics, "hit")),
            (1, 1)
        );
        assert_eq!(fetch_count(&metrics, "ok"), 1);
        assert_eq!(metrics.key_fetch_duration_seconds.get_sample_count(), 1);
    }

    #[tokio::test]
    async fn not_found_is_cached_negatively() {
        let server = TestServer::start(|_| json_reply(404, "text/plain", "gone".into())).await;
        let (store, metrics) = raw_store(&cfg_for(&server));
        for _ in 0..3 {
            let err = store.get(KEY_ID).await.expect_err("404");
            assert!(matches!(err, KeyError::NotFound { .. }), "{err:?}");
            assert!(err.is_gone());
        }
        assert_eq!(server.requests().len(), 1);
        assert_eq!(
            (cache_count(&metrics, "miss"), cache_count(&metrics, "hit")),
            (1, 2)
        );
        assert_eq!(fetch_count(&metrics, "not_found"), 1);
    }

    #[tokio::test]
    async fn gone_is_reported() {
        let server = TestServer::start(|_| json_reply(410, "application/json", "{}".into())).await;
        let (store, metrics) = raw_store(&cfg_for(&server));
        let err = store.get(KEY_ID).await.expect_err("410");
        assert!(matches!(err, KeyError::Gone { .. }), "{err:?}");
        assert!(err.is_gone() && !err.is_transient());
        assert_eq!(fetch_count(&metrics, "gone"), 1);
    }

    #[tokio::test]
    async fn negative_entries_expire_after_their_own_ttl() {
        let server = TestServer::start(|_| json_reply(503, "text/plain", String::new())).await;
        let cfg = KeyFetchConfig {
            negative_ttl_secs: 1,
            ..cfg_for(&server)
        };
        let (store, _) = raw_store(&cfg);
        let err = store.get(KEY_ID).await.expect_err("503");
        assert!(err.is_transient());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let _ = store.get(KEY_ID).await.expect_err("503");
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn lifetimes_follow_the_outcome() {
        let expiry = OutcomeExpiry {
            ttl: Duration::from_secs(86400),
            negative_ttl: Duration::from_secs(300),
        };
        let ok: Value<u8> = Arc::new(Cached {
            result: Ok(Arc::new(1)),
            fetched_at: Instant::now(),
        });
        let err: Value<u8> = Arc::new(Cached {
            result: Err(KeyError::TooManyRedirects {
                key_id: KEY_ID.into(),
            }),
            fetched_at: Instant::now(),
        });
        let key = KEY_ID.to_string();
        let now = Instant::now();
        assert_eq!(
            expiry.expire_after_create(&key, &ok, now),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(
            expiry.expire_after_create(&key, &err, now),
            Some(Duration::from_secs(300))
        );
        // A refresh that turns a key into a failure must not keep the key's long lifetime.
        assert_eq!(
            expiry.expire_after_update(&key, &err, now, Some(Duration::from_secs(80000))),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            expiry.expire_after_update(&key, &ok, now, Some(Duration::from_secs(10))),
            Some(Duration::from_secs(86400))
        );
    }

    /// `n` tasks at once, each running `call` on its own handle to a fresh store whose server
    /// holds its answers until opened: the server, the store's metrics and the tasks.
    async fn gated_calls<F, Fut>(
        n: usize,
        call: F,
    ) -> (
        TestServer,
        Arc<Metrics>,
        Vec<tokio::task::JoinHandle<Fut::Output>>,
    )
    where
        F: Fn(Arc<Store<FetchedKey>>) -> Fut,
        Fut: std::future::Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let server = TestServer::start_gated(ok_reply, 0).await;
        let (store, metrics) = raw_store(&cfg_for(&server));
        let store = Arc::new(store);
        let tasks = (0..n).map(|_| tokio::spawn(call(store.clone()))).collect();
        (server, metrics, tasks)
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch() {
        // The server holds its answer until every caller has missed, so all 100 really are
        // waiting at once.
        let (server, metrics, tasks) =
            gated_calls(100, |store| async move { store.get(KEY_ID).await }).await;
        while cache_count(&metrics, "miss") < 100 {
            tokio::task::yield_now().await;
        }
        server.open();
        for task in tasks {
            let (key, source) = task.await.expect("join").expect("key");
            assert_eq!(source, Source::Fetched);
            assert_eq!(key.owner, ACTOR);
        }
        assert_eq!(server.requests().len(), 1);
        assert_eq!(fetch_count(&metrics, "ok"), 1);
    }

    #[tokio::test]
    async fn refresh_fetches_again() {
        let server = TestServer::start(ok_reply).await;
        let (mut store, metrics) = raw_store(&cfg_for(&server));
        store.refresh_reuse_window = Duration::ZERO;
        let (before, _) = store.get(KEY_ID).await.expect("key");
        let after = store.refresh(KEY_ID).await.expect("key");
        assert!(!Arc::ptr_eq(&before, &after));
        assert_eq!(server.requests().len(), 2);
        // The refreshed entry is what later lookups see.
        let (cached, source) = store.get(KEY_ID).await.expect("key");
        assert_eq!(source, Source::Cache);
        assert!(Arc::ptr_eq(&cached, &after));
        assert_eq!(fetch_count(&metrics, "ok"), 2);
    }

    #[tokio::test]
    async fn refresh_replaces_a_negative_entry() {
        // The first answer is a 503, every later one the document.
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let server = TestServer::start(move |_| {
            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                json_reply(503, "text/plain", String::new())
            } else {
                json_reply(200, "application/activity+json", actor_doc(PEM))
            }
        })
        .await;
        let (mut store, _) = raw_store(&cfg_for(&server));
        store.refresh_reuse_window = Duration::ZERO;
        assert!(store.get(KEY_ID).await.expect_err("503").is_transient());
        assert!(store.get(KEY_ID).await.is_err(), "the failure is cached");
        let key = store.refresh(KEY_ID).await.expect("refreshed");
        assert_eq!(key.owner, ACTOR);
        let (cached, source) = store.get(KEY_ID).await.expect("key");
        assert_eq!(source, Source::Cache);
        assert!(Arc::ptr_eq(&cached, &key));
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn refresh_right_after_a_fetch_reuses_it() {
        let server = TestServer::start(ok_reply).await;
        let (store, _) = raw_store(&cfg_for(&server));
        let (before, _) = store.get(KEY_ID).await.expect("key");
        let after = store.refresh(KEY_ID).await.expect("key");
        assert!(Arc::ptr_eq(&before, &after));
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn concurrent_refreshes_share_one_fetch() {
        let (server, _, tasks) =
            gated_calls(20, |store| async move { store.refresh(KEY_ID).await }).await;
        while server.requests().is_empty() {
            tokio::task::yield_now().await;
        }
        server.open();
        for task in tasks {
            task.await.expect("join").expect("key");
        }
        assert_eq!(server.requests().len(), 1);
    }

    // The tests below build real `KeyRecord`s, so they need `signature::PublicKey::from_pem`
    // (the signature module); their names start with `needs_public_key_`.

    #[tokio::test]
    async fn needs_public_key_get_builds_a_record() {
        let key = SigningKey::generate_rsa_2048().expect("key");
        let pem = key.public_key_pem().expect("pem");
        let server = TestServer::start(move |_| {
            json_reply(200, "application/activity+json", actor_doc(&pem))
        })
        .await;
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let store = KeyStore::new(&cfg_for(&server), metrics.clone()).expect("store");
        let (record, source) = store.get(KEY_ID).await.expect("record");
        assert_eq!(source, Source::Fetched);
        assert_eq!(record.owner, ACTOR);
        let again = store.refresh(KEY_ID).await.expect("record");
        assert!(Arc::ptr_eq(&record, &again));
        assert_eq!(fetch_count(&metrics, "ok"), 1);
    }

    #[tokio::test]
    async fn needs_public_key_unparseable_pem_is_unsupported_key() {
        let server = TestServer::start(ok_reply).await;
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let store = KeyStore::new(&cfg_for(&server), metrics.clone()).expect("store");
        let err = store.get(KEY_ID).await.expect_err("bad pem");
        assert_eq!(err.reason(), "unsupported_key");
        assert!(!err.is_transient() && !err.is_gone());
        // Remembered like any other failure.
        assert!(store.get(KEY_ID).await.is_err());
        assert_eq!(server.requests().len(), 1);
        assert_eq!(fetch_count(&metrics, "unsupported_key"), 1);
    }
}

//! The shared-state operations: fair share, duplicate suppression, the key cache.

use super::Cluster;
use crate::shedding::rate::Share;
use std::sync::Arc;
use std::time::Duration;

/// One GCRA step on Redis's clock. KEYS[1]: the bucket; ARGV[1]: emission interval and
/// ARGV[2]: burst tolerance, both in microseconds. Returns 0 when the delivery is taken,
/// else the microseconds until it would be. The key expires once the bucket is full again.
pub(super) const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return allow_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.floor((new_tat - now) / 1000) + 1)
return 0
";

impl Cluster {
    /// Takes one delivery from the shared bucket `bucket` shaped by `share`: `Some(Ok)`
    /// taken, `Some(Err(wait))` over the share, `None` when Redis did not answer in time.
    pub async fn take(&self, bucket: &str, share: Share) -> Option<Result<(), Duration>> {
        if !self.config.share_rate_limits {
            return None;
        }
        let interval = 1_000_000 / u64::from(share.per_second.get()).max(1);
        let tolerance = interval * u64::from(share.burst.get() - 1);
        let key = self.key("rate", bucket);
        let script = &self.gcra;
        let wait: u64 = self
            .run("rate_limit", |mut c| async move {
                script
                    .key(key)
                    .arg(interval)
                    .arg(tolerance)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Some(if wait == 0 {
            Ok(())
        } else {
            Err(Duration::from_micros(wait))
        })
    }

    /// Whether another replica (or this one) delivered the activity with this id digest.
    pub async fn seen(&self, id_digest: &str) -> Option<bool> {
        if !self.config.share_dedupe {
            return None;
        }
        self.read("dedupe", "EXISTS", self.key("dedupe", id_digest))
            .await
    }

    /// Records a delivered id for `window`, off the request path.
    pub fn remember(self: &Arc<Self>, id_digest: &str, window: Duration) {
        if !self.config.share_dedupe || window.is_zero() {
            return;
        }
        let ttl_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self.spawn_set("dedupe", self.key("dedupe", id_digest), "1".into(), ttl_ms);
    }

    /// A key document another replica stored for `key_id`: `Some(None)` when Redis has none.
    pub async fn key_document(&self, key_id: &str) -> Option<Option<String>> {
        if !self.config.share_keys {
            return None;
        }
        self.read("key_get", "GET", self.key("key", key_id)).await
    }

    /// Stores what this replica fetched for `key_id` for `ttl`, off the request path.
    pub fn store_key_document(self: &Arc<Self>, key_id: &str, document: String, ttl: Duration) {
        if !self.config.share_keys || ttl.is_zero() {
            return;
        }
        let ttl_ms = ttl.as_secs().max(1).saturating_mul(1000);
        self.spawn_set("key_put", self.key("key", key_id), document, ttl_ms);
    }

    /// A one-key read (`EXISTS`, `GET`) as `op`.
    async fn read<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        command: &'static str,
        key: String,
    ) -> Option<T> {
        self.run(op, |mut c| async move {
            redis::cmd(command).arg(key).query_async(&mut c).await
        })
        .await
    }

    /// `SET key value PX ttl_ms`, off the request path.
    fn spawn_set(self: &Arc<Self>, op: &'static str, key: String, value: String, ttl_ms: u64) {
        let this = self.clone();
        tokio::spawn(async move {
            let _: Option<()> = this
                .run(op, |mut c| async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(value)
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut c)
                        .await
                })
                .await;
        });
    }
}

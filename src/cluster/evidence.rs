//! Friendly-federator and content-rule evidence and escalations shared by the replicas.
//!
//! Per-day counts are hashes (`<prefix>ev:<key>`, field = UTC day number, `HINCRBY`, expiring
//! after the longest window), listed in an index (`<prefix>ev:index`, a sorted set scored by
//! last update, trimmed to the newest `max_keys`); escalations and lifts are two hashes
//! (`<prefix>escalated`, `<prefix>lifted`: domain → JSON). The request path never waits on
//! this: each replica counts locally and exchanges its counts on the escalation tick, two
//! pipelined round trips under the cluster's deadline each.

use super::Cluster;
use std::collections::HashMap;

/// Days a shared day bucket lives: the longest escalation window.
const BUCKET_TTL_SECS: u64 = 90 * 86_400;

/// What one replica sends on a tick.
#[derive(Debug, Default)]
pub struct EvidencePush {
    /// `key → day → count` added since the last tick (`ff:<domain>`, `cr:<rule>:<domain>`).
    pub counts: HashMap<String, HashMap<u64, u64>>,
    /// Its escalations, `domain → JSON` (one replica's copy wins; a copy older than the
    /// domain's last lift is ignored by every replica).
    pub escalated: Vec<(String, String)>,
    /// Its lifts since the last tick, `domain → JSON`; their day buckets are deleted.
    pub lifted: Vec<(String, String)>,
    /// Index entries read at most.
    pub max_keys: usize,
    pub now: u64,
}

/// What the replicas know together, after the push.
#[derive(Debug, Default)]
pub struct EvidencePull {
    /// `key → [(day, count)]`, every replica's counts summed.
    pub days: Vec<(String, Vec<(u64, u64)>)>,
    pub escalated: Vec<(String, String)>,
    pub lifted: Vec<(String, String)>,
}

impl Cluster {
    /// Sends this replica's evidence and reads everyone's; `None` (nothing sent: the caller
    /// keeps its counts for the next try) when Redis does not answer in time.
    pub async fn exchange_evidence(&self, push: &EvidencePush) -> Option<EvidencePull> {
        let index = self.key("ev", "index");
        let escalated_key = self.key("escalated", "all");
        let lifted_key = self.key("lifted", "all");
        let (i, e, l) = (index.clone(), escalated_key.clone(), lifted_key.clone());
        let keys: Vec<String> = self
            .run("evidence_read", |mut c| async move {
                redis::cmd("ZREVRANGE")
                    .arg(i)
                    .arg(0)
                    .arg(push.max_keys.saturating_sub(1))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let (ek, lk) = (e.clone(), l.clone());
        let mut pipe = redis::pipe();
        for (domain, json) in &push.lifted {
            pipe.hset(&lk, domain, json).ignore();
            pipe.hdel(&ek, domain).ignore();
            let gone: Vec<&String> = keys
                .iter()
                .filter(|k| k.rsplit(':').next() == Some(domain.as_str()))
                .collect();
            for k in gone {
                pipe.del(self.key("ev", k)).ignore();
                pipe.zrem(&index, k).ignore();
            }
        }
        for (key, days) in &push.counts {
            let full = self.key("ev", key);
            for (day, n) in days {
                pipe.hincr(&full, day, *n).ignore();
            }
            pipe.expire(&full, BUCKET_TTL_SECS as i64).ignore();
            pipe.zadd(&index, key, push.now).ignore();
        }
        for (domain, json) in &push.escalated {
            pipe.hset(&ek, domain, json).ignore();
        }
        // Forget keys past the longest window, and past the bound.
        pipe.zrembyscore(&index, 0, push.now.saturating_sub(BUCKET_TTL_SECS))
            .ignore();
        let mut read: Vec<String> = keys.clone();
        read.extend(push.counts.keys().filter(|k| !keys.contains(k)).cloned());
        read.retain(|k| {
            !push
                .lifted
                .iter()
                .any(|(d, _)| k.rsplit(':').next() == Some(d.as_str()))
        });
        for k in &read {
            pipe.hgetall(self.key("ev", k));
        }
        pipe.hgetall(&ek).hgetall(&lk);
        let mut answers: Vec<redis::Value> = self
            .run("evidence_write", |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        let lifted: HashMap<String, String> = redis::from_redis_value(answers.pop()?).ok()?;
        let escalated: HashMap<String, String> = redis::from_redis_value(answers.pop()?).ok()?;
        let days = read
            .into_iter()
            .zip(answers)
            .map(|(k, v)| {
                let fields: HashMap<u64, u64> = redis::from_redis_value(v).unwrap_or_default();
                let mut days: Vec<(u64, u64)> = fields.into_iter().collect();
                days.sort_unstable();
                (k, days)
            })
            .collect();
        Some(EvidencePull {
            days,
            escalated: escalated.into_iter().collect(),
            lifted: lifted.into_iter().collect(),
        })
    }
}

//! Priority classes of inbound activities, and when each is shed under Sidekiq backlog.
//! What costs Mastodon most and matters least goes first: likes, boosts and profile
//! updates before posts, posts before follows, deletes and reports, which are never shed by
//! default (a lost Delete is content that should be gone; a lost Follow is a broken
//! relationship).

use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// A priority class, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Low,
    Middle,
    High,
}

impl Class {
    /// The `class` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Low => "low",
            Class::Middle => "middle",
            Class::High => "high",
        }
    }
}

/// `[backpressure]`: thresholds and the class of each activity type. A type is written as
/// it appears in `type`; `Update:actor` is an `Update` whose object is an actor (a profile
/// change), which may be classed apart from updates of posts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackpressureConfig {
    /// Shed the low class while Sidekiq's queue latency is above this.
    #[serde(default = "default_low_above")]
    pub low_above_secs: Option<u64>,
    #[serde(default = "default_middle_above")]
    pub middle_above_secs: Option<u64>,
    /// Unset: the high class is never shed.
    #[serde(default)]
    pub high_above_secs: Option<u64>,
    /// `Retry-After` on a shed delivery.
    #[serde(default = "default_retry_after")]
    pub retry_after_secs: u32,
    #[serde(default = "default_low")]
    pub low: Vec<String>,
    #[serde(default = "default_middle")]
    pub middle: Vec<String>,
    #[serde(default = "default_high")]
    pub high: Vec<String>,
    /// The class of a type in none of the lists (Mastodon ignores those types).
    #[serde(default = "default_unlisted")]
    pub unlisted: ClassName,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClassName {
    Low,
    Middle,
    High,
}

impl From<ClassName> for Class {
    fn from(c: ClassName) -> Class {
        match c {
            ClassName::Low => Class::Low,
            ClassName::Middle => Class::Middle,
            ClassName::High => Class::High,
        }
    }
}

fn default_low_above() -> Option<u64> {
    Some(30)
}
fn default_middle_above() -> Option<u64> {
    Some(120)
}
fn default_retry_after() -> u32 {
    60
}
fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}
fn default_low() -> Vec<String> {
    strings(&[
        "Like",
        "Announce",
        "Update:actor",
        "View",
        "EmojiReact",
        "Read",
    ])
}
fn default_middle() -> Vec<String> {
    strings(&[
        "Create",
        "Update",
        "Undo",
        "Add",
        "Remove",
        "QuoteRequest",
        "FeatureRequest",
    ])
}
fn default_high() -> Vec<String> {
    strings(&[
        "Follow", "Accept", "Reject", "Delete", "Flag", "Block", "Move",
    ])
}
fn default_unlisted() -> ClassName {
    ClassName::Low
}

impl Default for BackpressureConfig {
    fn default() -> Self {
        BackpressureConfig {
            low_above_secs: default_low_above(),
            middle_above_secs: default_middle_above(),
            high_above_secs: None,
            retry_after_secs: default_retry_after(),
            low: default_low(),
            middle: default_middle(),
            high: default_high(),
            unlisted: default_unlisted(),
        }
    }
}

/// Object types that make an `Update` a profile change.
const ACTOR_TYPES: [&str; 5] = ["Person", "Service", "Application", "Group", "Organization"];
const UPDATE_ACTOR: &str = "Update:actor";

/// The classes and thresholds, ready for the request path.
#[derive(Debug, Clone)]
pub struct Classes {
    by_type: HashMap<String, Class>,
    unlisted: Class,
    thresholds: [Option<Duration>; 3],
    pub retry_after_secs: u32,
}

impl Classes {
    /// Refuses a type listed in two classes, naming it.
    pub fn new(config: &BackpressureConfig) -> Result<Classes, String> {
        let mut by_type = HashMap::new();
        for (class, list) in [
            (Class::Low, &config.low),
            (Class::Middle, &config.middle),
            (Class::High, &config.high),
        ] {
            for t in list {
                if let Some(other) = by_type.insert(t.clone(), class) {
                    return Err(format!(
                        "backpressure: {t:?} is in both {} and {}",
                        other.as_str(),
                        class.as_str()
                    ));
                }
            }
        }
        let secs = |s: Option<u64>| s.map(Duration::from_secs);
        Ok(Classes {
            by_type,
            unlisted: config.unlisted.into(),
            thresholds: [
                secs(config.low_above_secs),
                secs(config.middle_above_secs),
                secs(config.high_above_secs),
            ],
            retry_after_secs: config.retry_after_secs,
        })
    }

    /// The class of an activity by its `type` and its object's `type`.
    pub fn classify(&self, kind: Option<&str>, object_kind: Option<&str>) -> Class {
        let Some(kind) = kind else {
            return self.unlisted;
        };
        if kind == "Update" && object_kind.is_some_and(|o| ACTOR_TYPES.contains(&o)) {
            if let Some(class) = self.by_type.get(UPDATE_ACTOR) {
                return *class;
            }
        }
        self.by_type.get(kind).copied().unwrap_or(self.unlisted)
    }

    /// Whether `class` is shed at this queue latency.
    pub fn sheds(&self, class: Class, latency: Duration) -> bool {
        let threshold = match class {
            Class::Low => self.thresholds[0],
            Class::Middle => self.thresholds[1],
            Class::High => self.thresholds[2],
        };
        threshold.is_some_and(|t| latency > t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_classes_follow_what_each_activity_costs_and_is_worth() {
        let c = Classes::new(&BackpressureConfig::default()).expect("valid");
        assert_eq!(c.classify(Some("Like"), None), Class::Low);
        assert_eq!(c.classify(Some("View"), None), Class::Low);
        assert_eq!(c.classify(Some("Update"), Some("Person")), Class::Low);
        assert_eq!(c.classify(Some("Update"), Some("Note")), Class::Middle);
        assert_eq!(c.classify(Some("Create"), Some("Note")), Class::Middle);
        assert_eq!(c.classify(Some("Delete"), None), Class::High);
        assert_eq!(c.classify(Some("Follow"), None), Class::High);
        assert_eq!(c.classify(Some("Bite"), None), Class::Low, "unlisted");
        assert_eq!(c.classify(None, None), Class::Low);

        let minute = Duration::from_secs(60);
        assert!(c.sheds(Class::Low, minute));
        assert!(!c.sheds(Class::Middle, minute));
        assert!(c.sheds(Class::Middle, Duration::from_secs(121)));
        assert!(!c.sheds(Class::High, Duration::from_secs(100_000)));
    }

    #[test]
    fn a_type_in_two_classes_is_refused() {
        let mut config = BackpressureConfig::default();
        config.high.push("Like".into());
        assert!(Classes::new(&config).unwrap_err().contains("\"Like\""));
    }
}

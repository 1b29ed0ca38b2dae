//! The activity types Mastodon acts on. Anything else is queued by Puma, costs a Sidekiq job,
//! and is then ignored (`ActivityPub::Activity.factory` has no class for it), so floods of
//! PeerTube `View`s or `EmojiReact`s are answered 202 here after verification, not forwarded.
//! An unsigned or forged request is still refused as before: the gate comes after the
//! signature is verified, so it never hides a forgery behind a 202.

use crate::activity::Facts;
use std::collections::HashSet;

/// `app/lib/activitypub/activity.rb` (main): the types with a handler.
const MASTODON_TYPES: [&str; 16] = [
    "Create",
    "Announce",
    "Delete",
    "Follow",
    "Like",
    "Block",
    "Update",
    "Undo",
    "Accept",
    "Reject",
    "Flag",
    "Add",
    "Remove",
    "Move",
    "QuoteRequest",
    "FeatureRequest",
];

/// `app/lib/activitypub/activity/create.rb`: the object types a `Create` is processed for.
const MASTODON_OBJECT_TYPES: [&str; 8] = [
    "Note", "Question", "Image", "Audio", "Video", "Article", "Page", "Event",
];

pub(super) fn default_types() -> Vec<String> {
    MASTODON_TYPES.iter().map(|t| (*t).to_owned()).collect()
}

pub(super) fn default_object_types() -> Vec<String> {
    MASTODON_OBJECT_TYPES
        .iter()
        .map(|t| (*t).to_owned())
        .collect()
}

/// The configured vocabulary; empty sets let everything through.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    types: HashSet<String>,
    object_types: HashSet<String>,
}

impl Vocabulary {
    pub fn new(config: &super::ActivitiesConfig) -> Vocabulary {
        Vocabulary {
            types: config.forward_types.iter().cloned().collect(),
            object_types: config.forward_object_types.iter().cloned().collect(),
        }
    }

    /// Whether Mastodon would act on this activity.
    pub fn handles(&self, facts: &Facts) -> bool {
        if self.types.is_empty() {
            return true;
        }
        let Some(kind) = facts.kind.as_deref() else {
            return false;
        };
        if !self.types.contains(kind) {
            return false;
        }
        if kind != "Create" || self.object_types.is_empty() {
            return true;
        }
        // A bare URI (no embedded type) is dereferenced by Mastodon (`dereference_object!`)
        // and judged then: forward it.
        match facts.object.as_ref().and_then(|o| o.kind.as_deref()) {
            Some(t) => self.object_types.contains(t),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::ActivitiesConfig;

    fn facts(body: &str) -> Facts {
        Facts::parse(body.as_bytes()).expect("json")
    }

    #[test]
    fn mastodons_types_pass_and_others_do_not() {
        let v = Vocabulary::new(&ActivitiesConfig::default());
        assert!(v.handles(&facts(r#"{"type":"Follow","object":"https://a/u"}"#)));
        assert!(v.handles(&facts(r#"{"type":"Create","object":{"type":"Note"}}"#)));
        assert!(!v.handles(&facts(r#"{"type":"View","object":"https://a/v"}"#)));
        assert!(!v.handles(&facts(r#"{"type":"EmojiReact"}"#)));
        assert!(!v.handles(&facts(r#"{"object":"https://a/v"}"#)), "no type");
        assert!(!v.handles(&facts(
            r#"{"type":"Create","object":{"type":"ChatMessage"}}"#
        )));
        assert!(
            v.handles(&facts(r#"{"type":"Create","object":"https://a/n/1"}"#)),
            "Mastodon dereferences a bare URI"
        );
        let open = Vocabulary::new(&ActivitiesConfig {
            forward_types: vec![],
            ..ActivitiesConfig::default()
        });
        assert!(open.handles(&facts(r#"{"type":"View"}"#)));
    }
}

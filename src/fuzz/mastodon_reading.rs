//! A second, deliberately naive reader of activity facts: it builds a `serde_json::Value`
//! (which, like Mastodon's Oj in strict mode, keeps the last of a repeated key) and applies
//! Mastodon's reading rules to it with plain pattern matching. The streaming reader in
//! `crate::activity` must agree with it on every body; the property test
//! (`tests/activity_reading.rs`) and the fuzz target hold them side by side.

use crate::activity::{Facts, ObjectFacts, MAX_MENTIONS};
use serde_json::{Map, Value};

/// `value_or_id` (`app/helpers/jsonld_helper.rb`): a string, or an object's `id`.
fn value_or_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// `first_of_value`: an array stands for its first element.
fn first_of_value(v: &Value) -> &Value {
    match v {
        Value::Array(a) => a.first().unwrap_or(&Value::Null),
        v => v,
    }
}

fn reference(v: &Value) -> Option<String> {
    value_or_id(first_of_value(v))
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_owned)
}

fn type_name(v: Option<&Value>) -> Option<String> {
    v.map(first_of_value)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// `equals_or_includes?(type, name)`.
fn has_type(v: Option<&Value>, name: &str) -> bool {
    match v {
        Some(Value::String(s)) => s == name,
        Some(Value::Array(a)) => a.iter().any(|t| t.as_str() == Some(name)),
        _ => false,
    }
}

/// `as_array(tag).each`, Hashtag tested before Mention, blank hrefs skipped.
fn mentions(tag: Option<&Value>) -> Vec<String> {
    let tags: Vec<&Value> = match tag {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
    };
    tags.into_iter()
        .filter_map(Value::as_object)
        .filter(|t| !has_type(t.get("type"), "Hashtag") && has_type(t.get("type"), "Mention"))
        .filter_map(|t| text(t.get("href")))
        .filter(|h| !h.trim().is_empty())
        .take(MAX_MENTIONS)
        .collect()
}

fn embedded(m: &Map<String, Value>) -> ObjectFacts {
    ObjectFacts {
        id: text(m.get("id")),
        kind: type_name(m.get("type")),
        attributed_to: m.get("attributedTo").and_then(reference),
        in_reply_to: m.get("inReplyTo").and_then(reference),
        quotes: ["quote", "quoteUrl", "quoteUri", "_misskey_quote"]
            .iter()
            .filter_map(|k| m.get(*k).and_then(reference))
            .collect(),
        mentions: mentions(m.get("tag")),
    }
}

/// The activity's `object`. Mastodon fails on an array or a number here; inboxguard reads an
/// array's first element (so rules still apply) and refuses a number or boolean.
fn object(v: &Value) -> Result<Option<ObjectFacts>, Refused> {
    match v {
        Value::String(s) => Ok(Some(ObjectFacts {
            id: Some(s.clone()),
            ..ObjectFacts::default()
        })),
        Value::Object(m) => Ok(Some(embedded(m))),
        Value::Array(a) => a.first().map_or(Ok(None), object),
        Value::Null => Ok(None),
        Value::Bool(_) | Value::Number(_) => Err(Refused),
    }
}

/// A body inboxguard refuses (400): not a JSON object, or an `object` Mastodon cannot act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// The facts Mastodon acts on, or `Refused` where inboxguard refuses the body.
pub fn read(body: &[u8]) -> Result<Facts, Refused> {
    let value: Value = serde_json::from_slice(body).map_err(|_| Refused)?;
    let Value::Object(m) = value else {
        return Err(Refused);
    };
    Ok(Facts {
        id: text(m.get("id")),
        kind: type_name(m.get("type")),
        actor: m.get("actor").and_then(reference),
        object: match m.get("object") {
            None => None,
            Some(o) => object(o)?,
        },
        content: None,
    })
}

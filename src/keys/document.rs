//! What a fetched key document must say before its key is trusted. Pure functions over
//! `serde_json::Value`; the fetcher does the I/O.
//!
//! Accepted shapes (as Mastodon's main branch accepts them):
//! * an actor document listing the key in `publicKey` (`publicKeyPem`) or in
//!   `assertionMethod` (a FEP-521a `Multikey` with `publicKeyMultibase`), each an object or
//!   an array; the entry whose `id` is the keyId is used, and its `owner` / `controller`
//!   (when present) must be the actor's `id`;
//! * a bare key object: `id` + `owner` + `publicKeyPem`, or `id` + `controller` +
//!   `type: Multikey` + `publicKeyMultibase`; the owner's document must then be fetched and
//!   list the keyId in `publicKey` or `assertionMethod` ([`check_owner_document`]).
//!
//! In every shape the owner must live on the keyId's host: a server may only publish keys of
//! its own actors.

use super::{clip, KeyError};
use crate::net::host_of;
use crate::policy::content::ActorFacts;
use serde_json::Value;

/// The published key material, not yet parsed. Also what replicas share (`cluster`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KeyMaterial {
    /// `publicKeyPem`.
    Pem(String),
    /// A `Multikey`'s `publicKeyMultibase`.
    Multibase(String),
}

/// A key that passed every document check, before its material is parsed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct FetchedKey {
    pub material: KeyMaterial,
    pub owner: String,
    /// What content rules read of the owner, when the key came in its actor document.
    #[serde(default)]
    pub actor: ActorFacts,
}

/// Longer names are cut: enough for any pattern a moderator writes, bounded per cached key.
const MAX_NAME_BYTES: usize = 128;

/// The content-rule facts of an actor document.
fn actor_facts(doc: &serde_json::Map<String, Value>) -> ActorFacts {
    let text = |key: &str| {
        doc.get(key)
            .and_then(Value::as_str)
            .map(|s| crate::clock::truncate(s, MAX_NAME_BYTES).to_string())
    };
    ActorFacts {
        published: doc
            .get("published")
            .and_then(Value::as_str)
            .and_then(crate::clock::parse_rfc3339),
        preferred_username: text("preferredUsername"),
        name: text("name"),
    }
}

/// The verdict on the document found at the keyId.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// An actor document listing the key: nothing more to fetch.
    Actor(FetchedKey),
    /// A bare key object: `owner` must still confirm the key ([`check_owner_document`]).
    KeyObject(FetchedKey),
}

/// Where an actor lists its keys, what names the owner in each entry, and what is wrong when
/// the list or the entry cannot be read.
struct KeyList {
    member: &'static str,
    owner: &'static str,
    not_a_list: &'static str,
    no_material: &'static str,
}

const KEY_LISTS: [KeyList; 2] = [
    KeyList {
        member: "publicKey",
        owner: "owner",
        not_a_list: "publicKey is neither an object nor an array",
        no_material: "the publicKey has no publicKeyPem",
    },
    KeyList {
        member: "assertionMethod",
        owner: "controller",
        not_a_list: "assertionMethod is neither an object nor an array",
        no_material: "the assertionMethod entry is not a Multikey with publicKeyMultibase",
    },
];

/// Checks the document found at `key_id` (fetched from the keyId without its fragment).
pub(crate) fn parse_key_document(key_id: &str, doc: &Value) -> Result<Parsed, KeyError> {
    let invalid = |problem| KeyError::InvalidDocument {
        key_id: key_id.to_string(),
        problem,
    };
    let obj = doc
        .as_object()
        .ok_or_else(|| invalid("the document is not a JSON object"))?;

    let is_actor = KEY_LISTS.iter().any(|list| obj.contains_key(list.member));
    if is_actor {
        let actor_id = obj
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("the actor document has no id"))?;
        let mut first_id = None;
        for list in KEY_LISTS {
            let Some(value) = obj.get(list.member) else {
                continue;
            };
            let entries = key_entries(value).ok_or_else(|| invalid(list.not_a_list))?;
            first_id = first_id.or_else(|| entries.iter().find_map(|e| entry_id(e)));
            let Some(key) = entries
                .iter()
                .filter_map(|entry| entry.as_object())
                .find(|entry| entry.get("id").and_then(Value::as_str) == Some(key_id))
            else {
                continue;
            };
            let material = key_material(key).ok_or_else(|| invalid(list.no_material))?;
            // An embedded key without an owner can only belong to the actor that embeds it.
            match key.get(list.owner) {
                None => {}
                Some(owner) if owner.as_str() == Some(actor_id) => {}
                Some(owner) => {
                    return Err(KeyError::OwnerMismatch {
                        key_id: key_id.to_string(),
                        owner: clip(owner.as_str().unwrap_or("")),
                    })
                }
            }
            require_same_host(key_id, actor_id)?;
            return Ok(Parsed::Actor(FetchedKey {
                material,
                owner: actor_id.to_string(),
                actor: actor_facts(obj),
            }));
        }
        return Err(KeyError::IdMismatch {
            key_id: key_id.to_string(),
            found: clip(first_id.unwrap_or("")),
        });
    }

    let owner_field = if obj.contains_key("publicKeyPem") {
        "owner"
    } else if obj.contains_key("publicKeyMultibase") {
        "controller"
    } else {
        return Err(invalid(
            "the document is neither an actor with a publicKey or assertionMethod nor a key object",
        ));
    };
    let material = key_material(obj).ok_or_else(|| {
        invalid(match owner_field {
            "owner" => "publicKeyPem is not a string",
            _ => "the key object is not a Multikey with a string publicKeyMultibase",
        })
    })?;
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the key object has no id"))?;
    if id != key_id {
        return Err(KeyError::IdMismatch {
            key_id: key_id.to_string(),
            found: clip(id),
        });
    }
    let owner = obj
        .get(owner_field)
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid(match owner_field {
                "owner" => "the key object has no owner",
                _ => "the Multikey has no controller",
            })
        })?;
    require_same_host(key_id, owner)?;
    Ok(Parsed::KeyObject(FetchedKey {
        material,
        owner: owner.to_string(),
        actor: ActorFacts::default(),
    }))
}

/// `publicKeyPem`, or a `Multikey`'s `publicKeyMultibase`.
fn key_material(key: &serde_json::Map<String, Value>) -> Option<KeyMaterial> {
    if let Some(pem) = key.get("publicKeyPem") {
        return pem.as_str().map(|p| KeyMaterial::Pem(p.to_string()));
    }
    if key.get("type").and_then(Value::as_str) != Some("Multikey") {
        return None;
    }
    key.get("publicKeyMultibase")
        .and_then(Value::as_str)
        .map(|m| KeyMaterial::Multibase(m.to_string()))
}

/// A key list entry's id: an object's `id`, or the entry itself when it is a reference.
fn entry_id(entry: &Value) -> Option<&str> {
    entry
        .as_str()
        .or_else(|| entry.get("id").and_then(Value::as_str))
}

/// Checks that the document fetched from `owner` is that actor and lists `key_id` among its
/// keys (`publicKey` or `assertionMethod`, embedded or by reference).
pub(crate) fn check_owner_document(key_id: &str, owner: &str, doc: &Value) -> Result<(), KeyError> {
    let mismatch = || KeyError::OwnerMismatch {
        key_id: key_id.to_string(),
        owner: clip(owner),
    };
    if doc.get("id").and_then(Value::as_str) != Some(owner) {
        return Err(mismatch());
    }
    let lists_key = KEY_LISTS
        .iter()
        .filter_map(|list| doc.get(list.member).and_then(key_entries))
        .flatten()
        .any(|entry| entry_id(entry) == Some(key_id));
    if lists_key {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// `publicKey` as a list: one object (or id) or an array of them.
fn key_entries(public_key: &Value) -> Option<Vec<&Value>> {
    match public_key {
        Value::Array(items) => Some(items.iter().collect()),
        Value::Object(_) | Value::String(_) => Some(vec![public_key]),
        _ => None,
    }
}

fn require_same_host(key_id: &str, owner: &str) -> Result<(), KeyError> {
    match (host_of(key_id), host_of(owner)) {
        (Some(a), Some(b)) if a == b => Ok(()),
        _ => Err(KeyError::HostMismatch {
            key_id: key_id.to_string(),
            owner: clip(owner),
        }),
    }
}

#[cfg(test)]
mod tests;

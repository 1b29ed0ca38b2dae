use super::*;
use serde_json::json;

const KEY_ID: &str = "https://remote.test/users/alice#main-key";
const ACTOR: &str = "https://remote.test/users/alice";
const PEM: &str = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";

fn actor(public_key: Value) -> Value {
    json!({"id": ACTOR, "type": "Person", "inbox": format!("{ACTOR}/inbox"), "publicKey": public_key})
}

/// The key the actor owns, as `material` says.
fn owned(material: KeyMaterial) -> FetchedKey {
    FetchedKey {
        material,
        owner: ACTOR.into(),
        actor: ActorFacts::default(),
    }
}

fn expected() -> FetchedKey {
    owned(KeyMaterial::Pem(PEM.into()))
}

#[test]
fn actor_with_one_key() {
    let doc = actor(json!({"id": KEY_ID, "owner": ACTOR, "publicKeyPem": PEM}));
    assert_eq!(
        parse_key_document(KEY_ID, &doc),
        Ok(Parsed::Actor(expected()))
    );
}

#[test]
fn actor_with_a_key_array_picks_the_key_id() {
    let doc = actor(json!([
        {"id": format!("{ACTOR}#other"), "owner": ACTOR, "publicKeyPem": "other"},
        {"id": KEY_ID, "owner": ACTOR, "publicKeyPem": PEM},
    ]));
    assert_eq!(
        parse_key_document(KEY_ID, &doc),
        Ok(Parsed::Actor(expected()))
    );
}

#[test]
fn embedded_key_without_owner_belongs_to_the_actor() {
    let doc = actor(json!({"id": KEY_ID, "publicKeyPem": PEM}));
    assert_eq!(
        parse_key_document(KEY_ID, &doc),
        Ok(Parsed::Actor(expected()))
    );
}

#[test]
fn key_id_must_match_exactly() {
    // Same actor, other fragment: not the key that signed.
    let doc = actor(json!({"id": format!("{ACTOR}#key2"), "owner": ACTOR, "publicKeyPem": PEM}));
    let err = parse_key_document(KEY_ID, &doc).expect_err("mismatch");
    assert_eq!(err.reason(), "id_mismatch");
    let bare = json!({"id": format!("{ACTOR}#key2"), "owner": ACTOR, "publicKeyPem": PEM});
    let err = parse_key_document(KEY_ID, &bare).expect_err("mismatch");
    assert_eq!(err.reason(), "id_mismatch");
}

#[test]
fn owner_must_be_the_actor() {
    let doc = actor(
        json!({"id": KEY_ID, "owner": "https://remote.test/users/mallory", "publicKeyPem": PEM}),
    );
    let err = parse_key_document(KEY_ID, &doc).expect_err("owner");
    assert_eq!(err.reason(), "owner_mismatch");
}

#[test]
fn actor_on_another_host_cannot_claim_the_key() {
    let doc = json!({"id": "https://evil.test/users/alice", "publicKey":
        {"id": KEY_ID, "owner": "https://evil.test/users/alice", "publicKeyPem": PEM}});
    let err = parse_key_document(KEY_ID, &doc).expect_err("host");
    assert_eq!(err.reason(), "host_mismatch");
    let bare = json!({"id": KEY_ID, "owner": "https://evil.test/users/alice", "publicKeyPem": PEM});
    let err = parse_key_document(KEY_ID, &bare).expect_err("host");
    assert_eq!(err.reason(), "host_mismatch");
}

#[test]
fn trailing_dot_and_case_do_not_make_another_host() {
    let doc = json!({"id": "https://REMOTE.test./users/alice", "publicKey":
        {"id": KEY_ID, "publicKeyPem": PEM}});
    assert!(parse_key_document(KEY_ID, &doc).is_ok());
}

#[test]
fn bare_key_object_names_its_owner() {
    let doc = json!({"id": KEY_ID, "owner": ACTOR, "publicKeyPem": PEM});
    assert_eq!(
        parse_key_document(KEY_ID, &doc),
        Ok(Parsed::KeyObject(expected()))
    );
}

#[test]
fn malformed_documents() {
    for doc in [
        json!([]),
        json!("text"),
        json!({"id": ACTOR}),
        json!({"publicKey": {"id": KEY_ID, "publicKeyPem": PEM}}),
        actor(json!(5)),
        actor(json!({"id": KEY_ID, "owner": ACTOR})),
        actor(json!({"id": KEY_ID, "owner": ACTOR, "publicKeyPem": 7})),
        json!({"id": KEY_ID, "publicKeyPem": PEM}),
        json!({"owner": ACTOR, "publicKeyPem": PEM}),
        json!({"id": KEY_ID, "owner": ACTOR, "publicKeyPem": ["x"]}),
    ] {
        let err = parse_key_document(KEY_ID, &doc).expect_err("malformed");
        assert_eq!(err.reason(), "invalid_document", "{doc}");
    }
}

#[test]
fn owner_document_must_list_the_key() {
    let embedded = actor(json!({"id": KEY_ID, "owner": ACTOR, "publicKeyPem": PEM}));
    assert_eq!(check_owner_document(KEY_ID, ACTOR, &embedded), Ok(()));
    let by_reference = actor(json!([format!("{ACTOR}#other"), KEY_ID]));
    assert_eq!(check_owner_document(KEY_ID, ACTOR, &by_reference), Ok(()));

    let other_key = actor(json!({"id": format!("{ACTOR}#other"), "publicKeyPem": PEM}));
    let no_keys = json!({"id": ACTOR, "type": "Person"});
    let other_actor = json!({"id": "https://remote.test/users/bob", "publicKey": {"id": KEY_ID}});
    for doc in [other_key, no_keys, other_actor] {
        let err = check_owner_document(KEY_ID, ACTOR, &doc).expect_err("not listed");
        assert_eq!(err.reason(), "owner_mismatch", "{doc}");
    }
}

const MULTIBASE: &str = "z6Mkh4LmfP1ev9MNPGr7JbEbtD6BD4fsu1duEj83PMCs3xHG";

fn multikey(id: &str, controller: &str) -> Value {
    json!({"id": id, "type": "Multikey", "controller": controller, "publicKeyMultibase": MULTIBASE})
}

fn multibase_key() -> FetchedKey {
    owned(KeyMaterial::Multibase(MULTIBASE.into()))
}

#[test]
fn actor_with_only_an_assertion_method_multikey() {
    let doc = json!({"id": ACTOR, "type": "Person", "assertionMethod": [multikey(KEY_ID, ACTOR)]});
    assert_eq!(
        parse_key_document(KEY_ID, &doc),
        Ok(Parsed::Actor(multibase_key()))
    );
    // Both lists: the entry with the keyId wins, wherever it is.
    let mk_id = format!("{ACTOR}#ed25519-key");
    let doc = json!({"id": ACTOR,
        "publicKey": {"id": KEY_ID, "owner": ACTOR, "publicKeyPem": PEM},
        "assertionMethod": multikey(&mk_id, ACTOR)});
    assert_eq!(
        parse_key_document(KEY_ID, &doc),
        Ok(Parsed::Actor(expected()))
    );
    assert_eq!(
        parse_key_document(&mk_id, &doc),
        Ok(Parsed::Actor(multibase_key()))
    );
}

#[test]
fn multikey_checks() {
    let evil = "https://remote.test/users/mallory";
    let doc = json!({"id": ACTOR, "assertionMethod": [multikey(KEY_ID, evil)]});
    let err = parse_key_document(KEY_ID, &doc).expect_err("controller");
    assert_eq!(err.reason(), "owner_mismatch");
    let mut not_multikey = multikey(KEY_ID, ACTOR);
    not_multikey["type"] = json!("Ed25519VerificationKey2020");
    let doc = json!({"id": ACTOR, "assertionMethod": not_multikey});
    let err = parse_key_document(KEY_ID, &doc).expect_err("type");
    assert_eq!(err.reason(), "invalid_document");
    let doc = json!({"id": ACTOR, "assertionMethod": [multikey(&format!("{ACTOR}#other"), ACTOR)]});
    let err = parse_key_document(KEY_ID, &doc).expect_err("id");
    assert_eq!(err.reason(), "id_mismatch");
    let doc = json!({"id": ACTOR, "assertionMethod": 3});
    let err = parse_key_document(KEY_ID, &doc).expect_err("shape");
    assert_eq!(err.reason(), "invalid_document");
}

#[test]
fn bare_multikey_names_its_controller() {
    assert_eq!(
        parse_key_document(KEY_ID, &multikey(KEY_ID, ACTOR)),
        Ok(Parsed::KeyObject(multibase_key()))
    );
    let err = parse_key_document(KEY_ID, &multikey(KEY_ID, "https://evil.test/users/a"))
        .expect_err("host");
    assert_eq!(err.reason(), "host_mismatch");
    let no_controller = json!({"id": KEY_ID, "type": "Multikey", "publicKeyMultibase": MULTIBASE});
    let err = parse_key_document(KEY_ID, &no_controller).expect_err("controller");
    assert_eq!(err.reason(), "invalid_document");
    // The owner document lists it under assertionMethod (embedded or by reference).
    let owner = json!({"id": ACTOR, "assertionMethod": [KEY_ID]});
    assert_eq!(check_owner_document(KEY_ID, ACTOR, &owner), Ok(()));
    let owner = json!({"id": ACTOR, "assertionMethod": multikey(KEY_ID, ACTOR)});
    assert_eq!(check_owner_document(KEY_ID, ACTOR, &owner), Ok(()));
}

#[test]
fn the_actor_facts_content_rules_read_come_with_the_key() {
    let mut doc = actor(json!({"id": KEY_ID, "owner": ACTOR, "publicKeyPem": PEM}));
    doc["published"] = json!("2026-12-01T00:00:00Z");
    doc["preferredUsername"] = json!("alice");
    doc["name"] = json!("é".repeat(100));
    let Ok(Parsed::Actor(key)) = parse_key_document(KEY_ID, &doc) else {
        panic!("actor document");
    };
    assert_eq!(key.actor.published, Some(1_796_083_200));
    assert_eq!(key.actor.preferred_username.as_deref(), Some("alice"));
    // Cut on a character boundary within the bound.
    assert_eq!(key.actor.name.as_deref(), Some("é".repeat(64).as_str()));
    // An unreadable `published` is unknown, not an error.
    doc["published"] = json!("yesterday");
    let Ok(Parsed::Actor(key)) = parse_key_document(KEY_ID, &doc) else {
        panic!("actor document");
    };
    assert_eq!(key.actor.published, None);
}

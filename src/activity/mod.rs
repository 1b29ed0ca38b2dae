//! Activity facts: the handful of fields of an inbox activity that policy needs, read in one
//! pass over the JSON. Everything else in the body is skipped without being built (no
//! `serde_json::Value` tree), because bodies are up to 1 MiB and most of them are forwarded
//! unchanged. Lists are capped (`MAX_MENTIONS`), so the work per body is bounded by its size.
//!
//! The facts are the values Mastodon will act on, read its way, because a rule applied to
//! anything else can be dodged by a body Mastodon reads differently:
//! - Oj (strict mode) keeps the **last** of a repeated key, at every level; so does every
//!   field here (each is assigned, never merged).
//! - A reference is `value_or_id(first_of_value(v))` (`app/helpers/jsonld_helper.rb`): a
//!   string, or an object's `id` (never `href`), or an array's first element.
//! - `id` and a tag's `href` are read as Mastodon indexes them: strings only.
//!
//! Where Mastodon would fail on a shape (an array `actor` or `object` raises in
//! `value_or_id`), the first element is read so rules still apply: stricter, never looser.
//! Members nobody reads are skipped without recursion, however deep; only arrays nested as
//! the `object` itself stop at serde_json's 128 levels (a 400; Mastodon cannot act on them).

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

mod content;
mod fields;
use content::{push_capped, RawText, MAX_CONTENT_ITEMS};
pub use content::{Content, MAX_CONTENT_MENTIONS};
use fields::{
    reader, seed_reader, skip_scalars, skip_seq, skip_str, FirstValue, KeyName, Public, Reference,
    Text, TypeName, TypeSet,
};

/// Mention `href`s kept per object; later ones are skipped. Enough for any real conversation,
/// and it bounds what a body stuffed with thousands of mentions costs the policy checks.
pub const MAX_MENTIONS: usize = 16;
/// Quote references kept per object: one per vocabulary (a repeated key adds nothing real).
pub const MAX_QUOTES: usize = 4;

/// What the pipeline and policy know about an activity.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Facts {
    pub id: Option<String>,
    /// `type`; for a JSON-LD array of types, the first one.
    pub kind: Option<String>,
    /// `actor` as a URI (a string, or the `id` of an embedded object, or of an array's first
    /// element).
    pub actor: Option<String>,
    pub object: Option<ObjectFacts>,
    /// What content rules read; only from `parse_with_content`.
    pub content: Option<Box<Content>>,
}

/// The activity's `object`: a bare URI, or an embedded object.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ObjectFacts {
    pub id: Option<String>,
    pub kind: Option<String>,
    pub attributed_to: Option<String>,
    pub in_reply_to: Option<String>,
    /// The quoted object of each quote property present, in body order, at most
    /// `MAX_QUOTES`: `quote` (FEP-044f, Mastodon 4.4+), `quoteUrl` (Misskey, Pleroma, Akkoma),
    /// `quoteUri` (Fedibird), `_misskey_quote` (Misskey). All are kept, not the first: servers
    /// read them in different orders, so each one could be the one that counts.
    pub quotes: Vec<String>,
    /// The `href` of each `tag` entry of type `Mention`, in order, at most `MAX_MENTIONS`.
    pub mentions: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// The body is not JSON, or not a JSON object.
    #[error("Invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Facts {
    pub fn parse(body: &[u8]) -> Result<Facts, FactsError> {
        Ok(serde_json::from_slice(body)?)
    }

    /// `parse`, and the content facts too (`Facts::content`), in the same single pass.
    pub fn parse_with_content(body: &[u8]) -> Result<Facts, FactsError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let facts = de::DeserializeSeed::deserialize(FactsSeed { content: true }, &mut de)?;
        de.end()?;
        Ok(facts)
    }

    /// A `Delete` or `Update` of the actor itself (`actor` == `object` or `object.id`): the
    /// shape of account-deletion floods, which Mastodon also accepts unverified for unknown
    /// actors.
    pub fn is_self_delete_or_update(&self) -> bool {
        matches!(self.kind.as_deref(), Some("Delete" | "Update"))
            && self.actor.is_some()
            && self.actor.as_deref() == self.object.as_ref().and_then(|o| o.id.as_deref())
    }
}

impl<'de> Deserialize<'de> for Facts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::DeserializeSeed::deserialize(FactsSeed { content: false }, d)
    }
}

/// Reads the facts, and the content facts too when `content` is set.
struct FactsSeed {
    content: bool,
}

seed_reader! {
    FactsSeed => Facts by deserialize_map, "an ActivityPub activity object";
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Facts, A::Error> {
        // Every field is assigned, never merged, so a repeated key leaves the last
        // occurrence in force, as in Oj.
        let mut facts = Facts::default();
        let mut object = ObjectSlot::Absent;
        let mut audience = Audience::default();
        while let Some(key) = map.next_key::<KeyName>()? {
            match key.0.as_str() {
                "id" => facts.id = map.next_value::<Text>()?.0,
                "type" => facts.kind = map.next_value::<TypeName>()?.0,
                "actor" => facts.actor = map.next_value::<Reference>()?.0,
                "object" => {
                    object = map.next_value_seed(ObjectSeed {
                        content: self.content,
                    })?
                }
                "to" if self.content => audience.to = Some(map.next_value::<Public>()?.0),
                "cc" if self.content => audience.cc = Some(map.next_value::<Public>()?.0),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let content;
        (facts.object, content) = match object {
            ObjectSlot::Absent => (None, None),
            ObjectSlot::Object(o, c) => (Some(o), c),
            ObjectSlot::Invalid => {
                return Err(de::Error::invalid_type(
                    de::Unexpected::Other("a number or boolean"),
                    &"an object URI or an embedded object",
                ))
            }
        };
        if self.content {
            let (mut c, object_audience) = content.map(|b| *b).unwrap_or_default();
            // Mastodon reads the object's audience, and the activity's where it has none
            // (`as_array(@object['to'] || @json['to'])`).
            let pick = |o: Option<bool>, a: Option<bool>| o.or(a).unwrap_or(false);
            c.public =
                pick(object_audience.to, audience.to) || pick(object_audience.cc, audience.cc);
            facts.content = Some(Box::new(c));
        }
        Ok(facts)
    }
}

/// Whether a `to`/`cc` value was given, and names the public collection.
#[derive(Debug, Default, Clone, Copy)]
struct Audience {
    to: Option<bool>,
    cc: Option<bool>,
}

/// The `object` member, read from its last occurrence: absent for `null`; a number or
/// boolean (`Invalid`) refuses the body, since Mastodon can act on no such object.
enum ObjectSlot {
    Absent,
    Invalid,
    Object(ObjectFacts, Option<Box<(Content, Audience)>>),
}

struct ObjectSeed {
    content: bool,
}

seed_reader! {
    ObjectSeed => ObjectSlot by deserialize_any, "an object URI or an embedded object";
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ObjectSlot, E> {
        let facts = ObjectFacts {
            id: Some(v.to_owned()),
            ..ObjectFacts::default()
        };
        Ok(ObjectSlot::Object(facts, None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectSlot, A::Error> {
        let mut o = ObjectFacts::default();
        // One slot per quote vocabulary, each last-wins like any other key.
        let mut quotes: [Option<String>; MAX_QUOTES] = Default::default();
        let mut text = RawText::default();
        let mut content = Content::default();
        let mut audience = Audience::default();
        while let Some(key) = map.next_key::<KeyName>()? {
            match key.0.as_str() {
                "id" => o.id = map.next_value::<Text>()?.0,
                "type" => o.kind = map.next_value::<TypeName>()?.0,
                "attributedTo" => o.attributed_to = map.next_value::<Reference>()?.0,
                "inReplyTo" => o.in_reply_to = map.next_value::<Reference>()?.0,
                "quote" => quotes[0] = map.next_value::<Reference>()?.0,
                "quoteUrl" => quotes[1] = map.next_value::<Reference>()?.0,
                "quoteUri" => quotes[2] = map.next_value::<Reference>()?.0,
                "_misskey_quote" => quotes[3] = map.next_value::<Reference>()?.0,
                "tag" => {
                    o.mentions.clear();
                    let tags = Tags {
                        mentions: &mut o.mentions,
                        content: self.content.then_some(&mut content),
                    };
                    map.next_value_seed(tags)?
                }
                "content" if self.content => text.content = map.next_value::<Text>()?.0,
                "contentMap" if self.content => {
                    text.content_map = map.next_value::<FirstValue>()?.0
                }
                "summary" if self.content => text.summary = map.next_value::<Text>()?.0,
                "name" if self.content => text.name = map.next_value::<Text>()?.0,
                "attachment" if self.content => map.next_value_seed(Attachments(&mut content))?,
                "to" if self.content => audience.to = Some(map.next_value::<Public>()?.0),
                "cc" if self.content => audience.cc = Some(map.next_value::<Public>()?.0),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        o.quotes = quotes.into_iter().flatten().collect();
        let content = self.content.then(|| {
            text.finish(&mut content);
            Box::new((content, audience))
        });
        Ok(ObjectSlot::Object(o, content))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ObjectSlot, A::Error> {
        // Mastodon's handlers index an array `object` like a hash and fail, so nothing in it
        // is acted on; the first element is read so that rules about it still apply
        // (stricter, never looser).
        let first = seq
            .next_element_seed(ObjectSeed {
                content: self.content,
            })?
            .unwrap_or(ObjectSlot::Absent);
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(first)
    }
    fn visit_unit<E: de::Error>(self) -> Result<ObjectSlot, E> {
        Ok(ObjectSlot::Absent)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<ObjectSlot, E> {
        Ok(ObjectSlot::Invalid)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<ObjectSlot, E> {
        Ok(ObjectSlot::Invalid)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<ObjectSlot, E> {
        Ok(ObjectSlot::Invalid)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<ObjectSlot, E> {
        Ok(ObjectSlot::Invalid)
    }
}

/// Reads a `tag` value the way Mastodon's `as_array(tag).each` does (an array of tag
/// objects, or one tag object): the `href` of each `Mention` goes to `mentions`, up to
/// `MAX_MENTIONS`, and, when content facts are read, every mention is counted and hashtag
/// names kept. Emoji and anything that is not a tag object are skipped without being built.
struct Tags<'v> {
    mentions: &'v mut Vec<String>,
    content: Option<&'v mut Content>,
}

impl Tags<'_> {
    fn keep(&mut self, tag: Tag) {
        match tag {
            Tag::Mention(href) => {
                if let Some(c) = self.content.as_deref_mut() {
                    c.mentions = c.mentions.saturating_add(1);
                    if let Some(href) = &href {
                        push_capped(&mut c.mention_hrefs, href.clone(), MAX_CONTENT_MENTIONS);
                    }
                }
                if let Some(href) = href {
                    if self.mentions.len() < MAX_MENTIONS {
                        self.mentions.push(href);
                    }
                }
            }
            Tag::Hashtag(Some(name)) => {
                if let Some(c) = self.content.as_deref_mut() {
                    let name = name.trim_start_matches('#').to_lowercase();
                    push_capped(&mut c.hashtags, name, MAX_CONTENT_ITEMS);
                }
            }
            Tag::Hashtag(None) | Tag::Other => {}
        }
    }
}

impl<'de> de::DeserializeSeed<'de> for Tags<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(mut self, d: D) -> Result<(), D::Error> {
        if let Some(c) = self.content.as_deref_mut() {
            // A repeated `tag` key replaces the earlier list, as Oj does.
            c.mentions = 0;
            c.mention_hrefs.clear();
            c.hashtags.clear();
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tags<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tag object or an array of them")
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(tag) = seq.next_element::<Tag>()? {
            self.keep(tag);
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, map: A) -> Result<(), A::Error> {
        let tag = Tag::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.keep(tag);
        Ok(())
    }
    skip_str!(());
    skip_scalars!(());
}

/// One `tag` entry as Mastodon's `process_tags` sorts it: `equals_or_includes?(type,
/// 'Hashtag')` is tested before `'Mention'`, so an entry typed as both is a hashtag. A
/// mention's blank `href` is skipped (`process_mention` returns on `href.blank?`), but the
/// mention still counts for content rules.
enum Tag {
    Mention(Option<String>),
    Hashtag(Option<String>),
    Other,
}

reader! {
    Tag, "a tag object";
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tag, A::Error> {
        let mut types = TypeSet::default();
        let mut href = None;
        let mut name = None;
        while let Some(key) = map.next_key::<KeyName>()? {
            match key.0.as_str() {
                "type" => types = map.next_value::<TypeSet>()?,
                "href" => href = map.next_value::<Text>()?.0,
                "name" => name = map.next_value::<Text>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(if types.hashtag {
            Tag::Hashtag(name)
        } else if types.mention {
            Tag::Mention(href.filter(|h| !h.trim().is_empty()))
        } else {
            Tag::Other
        })
    }
    skip_seq!(Tag::Other);
    skip_str!(Tag::Other);
    skip_scalars!(Tag::Other);
}

/// `attachment`: one object or an array of them; each object counts, its `blurhash` and
/// `digestMultibase` are kept.
struct Attachments<'c>(&'c mut Content);

impl<'de> de::DeserializeSeed<'de> for Attachments<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.0.attachments = 0;
        self.0.blurhashes.clear();
        self.0.digests.clear();
        d.deserialize_any(self)
    }
}

impl Attachments<'_> {
    fn keep(&mut self, entry: AttachmentEntry) {
        let Some((blurhash, digest)) = entry.0 else {
            return;
        };
        let c = &mut *self.0;
        c.attachments = c.attachments.saturating_add(1);
        if let Some(b) = blurhash {
            push_capped(&mut c.blurhashes, b, MAX_CONTENT_ITEMS);
        }
        if let Some(d) = digest {
            push_capped(&mut c.digests, d, MAX_CONTENT_ITEMS);
        }
    }
}

impl<'de> Visitor<'de> for Attachments<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an attachment object or an array of them")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, map: A) -> Result<(), A::Error> {
        let entry = AttachmentEntry::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.keep(entry);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(entry) = seq.next_element::<AttachmentEntry>()? {
            self.keep(entry);
        }
        Ok(())
    }
    skip_str!(());
    skip_scalars!(());
}

/// One element of an `attachment` array: an object's `(blurhash, digestMultibase)`, or
/// nothing for anything that is not an object.
struct AttachmentEntry(Option<(Option<String>, Option<String>)>);

reader! {
    AttachmentEntry, "an attachment object";
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttachmentEntry, A::Error> {
        let (mut blurhash, mut digest) = (None, None);
        while let Some(key) = map.next_key::<KeyName>()? {
            match key.0.as_str() {
                "blurhash" => blurhash = map.next_value::<Text>()?.0,
                "digestMultibase" => digest = map.next_value::<Text>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(AttachmentEntry(Some((blurhash, digest))))
    }
    skip_seq!(AttachmentEntry(None));
    skip_str!(AttachmentEntry(None));
    skip_scalars!(AttachmentEntry(None));
}

#[cfg(test)]
mod tests;

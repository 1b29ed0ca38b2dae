//! The field readers: how each member Mastodon reads is read, Mastodon's way (a reference,
//! a plain string, a type name, an audience, a language map), each skipping without building
//! whatever shape it does not expect. `Facts` assembly in the parent module only picks which
//! reader a key gets.

use super::content::is_public;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Scalars that carry no fact read as `$value` (numbers, booleans, null).
macro_rules! skip_scalars {
    ($value:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}
pub(super) use skip_scalars;

/// A string carries no fact and reads as `$value`.
macro_rules! skip_str {
    ($value:expr) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}
pub(super) use skip_str;

/// An array carries no fact and reads as `$value`; its elements are skipped unbuilt.
macro_rules! skip_seq {
    ($value:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($value)
        }
    };
}
pub(super) use skip_seq;

/// An object carries no fact and reads as `$value`; its members are skipped unbuilt.
macro_rules! skip_map {
    ($value:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($value)
        }
    };
}

/// `impl Deserialize for $reader`: whatever shape the value has picks one of the `visit_*`
/// methods given, as `expecting` says; a reader leaves out the shapes it never meets.
/// `by deserialize_str` (or another hint) where the reader expects one shape only.
macro_rules! reader {
    ($reader:ident, $expecting:literal; $($visit:tt)*) => {
        reader!($reader by deserialize_any, $expecting; $($visit)*);
    };
    ($reader:ident by $how:ident, $expecting:literal; $($visit:tt)*) => {
        impl<'de> Deserialize<'de> for $reader {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $reader;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    $($visit)*
                }
                d.$how(V)
            }
        }
    };
}
pub(super) use reader;

/// A reader with state: `$seed` is both the `DeserializeSeed` and its own visitor, read
/// through `$how` into a `$value`, with the `visit_*` methods given.
macro_rules! seed_reader {
    ($seed:ident => $value:ident by $how:ident, $expecting:literal; $($visit:tt)*) => {
        impl<'de> de::DeserializeSeed<'de> for $seed {
            type Value = $value;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<$value, D::Error> {
                d.$how(self)
            }
        }

        impl<'de> Visitor<'de> for $seed {
            type Value = $value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str($expecting)
            }
            $($visit)*
        }
    };
}
pub(super) use seed_reader;

/// A `to`/`cc` value (`as_array`): whether it names the public collection, as a string or
/// an object's `id`.
pub(super) struct Public(pub(super) bool);

reader! {
    Public, "an audience";
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Public, E> {
        Ok(Public(is_public(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Public, A::Error> {
        let r = Reference::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Public(r.0.as_deref().is_some_and(is_public)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Public, A::Error> {
        let mut any = false;
        while let Some(Public(p)) = seq.next_element::<Public>()? {
            any |= p;
        }
        Ok(Public(any))
    }
    skip_scalars!(Public(false));
}

/// `contentMap`: the first string value of the language map.
pub(super) struct FirstValue(pub(super) Option<String>);

reader! {
    FirstValue, "a language map";
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FirstValue, A::Error> {
        let mut first = None;
        while map.next_key::<IgnoredAny>()?.is_some() {
            let Text(v) = map.next_value::<Text>()?;
            if first.is_none() {
                first = v;
            }
        }
        Ok(FirstValue(first))
    }
    skip_seq!(FirstValue(None));
    skip_str!(FirstValue(None));
    skip_scalars!(FirstValue(None));
}

/// Which of the tag types that decide a mention `equals_or_includes?` finds in a `type`
/// value (a string, or an array of strings).
#[derive(Default)]
pub(super) struct TypeSet {
    pub(super) hashtag: bool,
    pub(super) mention: bool,
}

impl TypeSet {
    fn add(&mut self, v: &str) {
        self.hashtag |= v == "Hashtag";
        self.mention |= v == "Mention";
    }
}

reader! {
    TypeSet, "a type name or an array of them";
    fn visit_str<E: de::Error>(self, v: &str) -> Result<TypeSet, E> {
        let mut set = TypeSet::default();
        set.add(v);
        Ok(set)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TypeSet, A::Error> {
        let mut set = TypeSet::default();
        while let Some(Text(t)) = seq.next_element::<Text>()? {
            if let Some(t) = t {
                set.add(&t);
            }
        }
        Ok(set)
    }
    skip_map!(TypeSet::default());
    skip_scalars!(TypeSet::default());
}

/// A map key, kept only when it is short enough to be one we look for. Escapes are already
/// decoded here (`"act\u006fr"` is `actor`), as Oj decodes them.
pub(super) struct KeyName(pub(super) String);

reader! {
    KeyName by deserialize_str, "a key";
    fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName, E> {
        Ok(KeyName(if v.len() <= 16 {
            v.to_owned()
        } else {
            String::new()
        }))
    }
}

/// A member Mastodon reads as a plain string (`json['id']`, `tag['href']`): a string, or
/// absent for anything else (an object, array, number or null is no URI).
pub(super) struct Text(pub(super) Option<String>);

reader! {
    Text, "a string";
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
        Ok(Text(Some(v.to_owned())))
    }
    skip_seq!(Text(None));
    skip_map!(Text(None));
    skip_scalars!(Text(None));
}

/// An activity's or object's `type`. Mastodon dispatches on `case json['type']`, which only a
/// string matches; an LD-signed body is JSON-LD-compacted first, which turns a one-element
/// array into its element. The first element of an array is read, so type-based rules apply
/// in both cases (stricter, never looser).
pub(super) struct TypeName(pub(super) Option<String>);

reader! {
    TypeName, "a type name or an array of them";
    fn visit_str<E: de::Error>(self, v: &str) -> Result<TypeName, E> {
        Ok(TypeName(Some(v.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TypeName, A::Error> {
        let first = seq.next_element::<Text>()?.and_then(|t| t.0);
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TypeName(first))
    }
    skip_map!(TypeName(None));
    skip_scalars!(TypeName(None));
}

/// A JSON-LD reference read as Mastodon's `value_or_id(first_of_value(v))`: a string is the
/// URI; an object gives its `id` member (the last one, if repeated; `href` is not read, and a
/// non-string `id` is no URI); an array stands for its first element. Anything else (numbers,
/// null) reads as absent.
pub(super) struct Reference(pub(super) Option<String>);

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RefVisitor { in_array: false })
    }
}

/// `first_of_value` unwraps one array level only: an array inside the array is no reference.
struct RefVisitor {
    in_array: bool,
}

seed_reader! {
    RefVisitor => Reference by deserialize_any, "a string, an object with an id, or an array of those";
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Reference, E> {
        Ok(Reference(Some(v.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Reference, A::Error> {
        let first = if self.in_array {
            None
        } else {
            seq.next_element_seed(RefVisitor { in_array: true })?
                .and_then(|r| r.0)
        };
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Reference(first))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Reference, A::Error> {
        let mut id = None;
        while let Some(key) = map.next_key::<KeyName>()? {
            if key.0 == "id" {
                id = map.next_value::<Text>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Reference(id))
    }
    skip_scalars!(Reference(None));
}

//! Reading input strictly. serde's derived structs also accept a sequence of their fields, so
//! a struct whose fields all have defaults reads `[]` or `[null, null]` as "all defaults": an
//! API that says "an object" would then accept a body its schema forbids. Types that are read
//! from untrusted input and have only optional fields deserialize through [`object`].

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// Deserializes `T` from a map (a JSON object, a TOML table) and nothing else.
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    struct Only<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Only<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(Only(PhantomData))
}

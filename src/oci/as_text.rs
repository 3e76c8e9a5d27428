//! Values that travel as their text (`linux/amd64`, `docker.io/library/debian:13`): written
//! with `Display`, read back with `FromStr`, so a plan shows them as an operator writes them.

use serde::{de, Deserialize, Deserializer, Serializer};
use std::fmt::Display;
use std::str::FromStr;

/// Serialises `value` as its `Display` text.
pub(crate) fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Reads a value back from its text; a parse error becomes the deserialiser's error.
pub(crate) fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: FromStr,
    T::Err: Display,
    D: Deserializer<'de>,
{
    String::deserialize(d)?.parse().map_err(de::Error::custom)
}

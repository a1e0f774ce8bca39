//! Limits of one credential or one tenant. They belong to identity because a key carries its
//! own; the gateway's limiter enforces them.

use serde::{Deserialize, Serialize};

/// The largest limit that can be set (10^12 a minute or a day is no limit in practice, and keeps
/// sums of limits far from overflow).
pub const MAX_LIMIT: u64 = 1_000_000_000_000;

/// Limits of one key or one tenant; `None` means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_min: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_min: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
}

// Every field is optional, so the derived reader would take `[]` for "no limits": only an
// object is read (see `vocab::de`).
impl<'de> Deserialize<'de> for Limits {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields(Limits);
        impl<'de> Deserialize<'de> for Fields {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Limits::deserialize(d).map(Fields)
            }
        }
        vocab::de::object::<D, Fields>(d).map(|f| f.0)
    }
}

impl Serialize for Limits {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Limits::serialize(self, s)
    }
}

impl Limits {
    /// Checks the values, naming the first bad one.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        for (name, v) in
            [("requests_per_min", self.requests_per_min), ("tokens_per_min", self.tokens_per_min), ("tokens_per_day", self.tokens_per_day)]
        {
            if let Some(v) = v
                && !(1..=MAX_LIMIT).contains(&v)
            {
                return Err(format!("{prefix}{name}: must be 1..=10^12, or left out for no limit"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_read_from_an_object_only() {
        let l: Limits = serde_json::from_str(r#"{"requests_per_min": 5}"#).unwrap();
        assert_eq!(l.requests_per_min, Some(5));
        for bad in ["[]", "[null, null]", "7", r#"{"requests_per_min": 5, "x": 1}"#] {
            assert!(serde_json::from_str::<Limits>(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&l).unwrap(), r#"{"requests_per_min":5}"#);
    }
}

//! Limits of one credential or one tenant. They belong to identity because a key carries its
//! own; the gateway's limiter enforces them.

use serde::{Deserialize, Serialize};

/// Limits of one key or one tenant; `None` means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_min: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_min: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
}

impl Limits {
    /// Checks the values, naming the first bad one.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        for (name, v) in
            [("requests_per_min", self.requests_per_min), ("tokens_per_min", self.tokens_per_min), ("tokens_per_day", self.tokens_per_day)]
        {
            if let Some(v) = v
                && !(1..=1_000_000_000_000).contains(&v)
            {
                return Err(format!("{prefix}{name}: must be 1..=10^12, or left out for no limit"));
            }
        }
        Ok(())
    }
}

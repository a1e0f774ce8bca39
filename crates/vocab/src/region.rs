//! Residency: a region is a province (`province:Sichuan`) or a hub (`hub:gansu`) of the compute
//! network, and a tenant's or a job's list of regions says where its data and work may go.
//!
//! There is one matching rule, here, and every pillar calls it: a region contains a place when
//! it names the place's hub or its province, compared without regard to ASCII case (a tenant
//! who writes `province:sichuan` means Sichuan). An empty list allows every place; a place
//! outside the network (a model server with no cluster) is allowed only by an empty list,
//! because nobody can say where it is.

use serde::{Deserialize, Serialize};

/// Longest name a region may carry, in characters.
pub const MAX_NAME_CHARS: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Region {
    Province(String),
    Hub(String),
}

/// Where something runs: its hub's id and its province's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place<'a> {
    pub hub: &'a str,
    pub province: &'a str,
}

impl Region {
    /// Parses `province:<Name>` or `hub:<id>`; the error says what was expected.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a region: write province:<Name> or hub:<id>");
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(bad());
        }
        match kind {
            "province" => Ok(Region::Province(name.to_string())),
            "hub" => Ok(Region::Hub(name.to_string())),
            _ => Err(bad()),
        }
    }

    /// The one matching rule: this region names the place's hub or its province.
    pub fn contains(&self, place: Place<'_>) -> bool {
        match self {
            Region::Province(p) => p.eq_ignore_ascii_case(place.province),
            Region::Hub(h) => h.eq_ignore_ascii_case(place.hub),
        }
    }
}

/// Whether a list of regions allows a place (`None`: the place is not known).
pub fn allows(regions: &[Region], place: Option<Place<'_>>) -> bool {
    match place {
        _ if regions.is_empty() => true,
        None => false,
        Some(p) => regions.iter().any(|r| r.contains(p)),
    }
}

impl TryFrom<String> for Region {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Region::parse(&s)
    }
}

impl From<Region> for String {
    fn from(r: Region) -> String {
        r.to_string()
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Region::Province(p) => write!(f, "province:{p}"),
            Region::Hub(h) => write!(f, "hub:{h}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use proptest::prelude::*;

    use super::*;

    const CHENGDU: Place<'static> = Place { hub: "chengyu", province: "Sichuan" };

    #[test]
    fn provinces_and_hubs_match_without_regard_to_case() {
        assert!(Region::parse("province:Sichuan").unwrap().contains(CHENGDU));
        assert!(Region::parse("province:sichuan").unwrap().contains(CHENGDU), "the gateway's old rule");
        assert!(Region::parse("hub:chengyu").unwrap().contains(CHENGDU), "compute's old rule");
        assert!(!Region::parse("hub:gansu").unwrap().contains(CHENGDU));
        assert!(!Region::parse("province:Sichuanese").unwrap().contains(CHENGDU), "whole names only");
        assert!(allows(&[], None), "no regions: anywhere, even outside the network");
        assert!(!allows(&[Region::Hub("chengyu".into())], None), "a place nobody can locate is never inside a region");
        for bad in ["moon", "planet:Mars", "hub:", "province: ", "hub"] {
            assert!(Region::parse(bad).is_err(), "{bad}");
        }
        let r: Vec<Region> = serde_json::from_str(r#"["hub:gansu", "province:Hebei"]"#).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"["hub:gansu","province:Hebei"]"#);
        assert!(serde_json::from_str::<Vec<Region>>(r#"["moon:base"]"#).is_err());
    }

    proptest! {
        /// Writing a region and reading it back gives the same region, and a region always
        /// contains the place it names, whatever the case it is written in.
        #[test]
        fn regions_round_trip_and_contain_what_they_name(name in "[A-Za-z][A-Za-z -]{0,30}", hub in any::<bool>()) {
            let r = if hub { Region::Hub(name.trim().to_string()) } else { Region::Province(name.trim().to_string()) };
            prop_assert_eq!(Region::parse(&r.to_string()).unwrap(), r.clone());
            let upper = name.trim().to_ascii_uppercase();
            let place = if hub { Place { hub: &upper, province: "" } } else { Place { hub: "", province: &upper } };
            prop_assert!(r.contains(place));
        }
    }
}

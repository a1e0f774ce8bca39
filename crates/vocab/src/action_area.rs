//! The six action areas of the State Council's Opinions on the "AI+" Action (国发〔2025〕11号,
//! 2025-08-26, part 二): work and models may be tagged with the one they serve, so the platform
//! can say how its GPU-hours divide among them.

use serde::{Deserialize, Serialize};

/// One of the Action's six areas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionArea {
    /// 人工智能+科学技术: AI for science and technology.
    Science,
    /// 人工智能+产业发展: AI in industry.
    Industry,
    /// 人工智能+消费提质: AI for better consumption.
    Consumption,
    /// 人工智能+民生福祉: AI for people's livelihood.
    Livelihood,
    /// 人工智能+治理能力: AI in governance.
    Governance,
    /// 人工智能+全球合作: AI in global cooperation.
    GlobalCooperation,
}

impl ActionArea {
    pub const ALL: [ActionArea; 6] = [
        ActionArea::Science,
        ActionArea::Industry,
        ActionArea::Consumption,
        ActionArea::Livelihood,
        ActionArea::Governance,
        ActionArea::GlobalCooperation,
    ];

    /// The name used on the wire and in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionArea::Science => "science",
            ActionArea::Industry => "industry",
            ActionArea::Consumption => "consumption",
            ActionArea::Livelihood => "livelihood",
            ActionArea::Governance => "governance",
            ActionArea::GlobalCooperation => "global_cooperation",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The area's name in the Opinions (Chinese) and in English.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            ActionArea::Science => ("科学技术", "Science and technology"),
            ActionArea::Industry => ("产业发展", "Industry"),
            ActionArea::Consumption => ("消费提质", "Consumption"),
            ActionArea::Livelihood => ("民生福祉", "Livelihood"),
            ActionArea::Governance => ("治理能力", "Governance"),
            ActionArea::GlobalCooperation => ("全球合作", "Global cooperation"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_area_reads_back_from_its_wire_name() {
        for a in ActionArea::ALL {
            assert_eq!(ActionArea::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).ok(), Some(serde_json::Value::String(a.as_str().into())));
        }
        assert_eq!(ActionArea::parse("defence"), None);
    }
}

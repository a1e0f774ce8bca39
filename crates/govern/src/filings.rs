//! Filings (备案): the records an operator keeps of the algorithm filings and the generative-AI
//! service filings it makes with the Cyberspace Administration of China (CAC), with the fields
//! the CAC's forms ask for.
//!
//! A draft may be incomplete, as a form being filled in is; [`Content::complete`] says what a
//! submission still lacks, naming the field. The lifecycle and its deadlines are in
//! [`crate::lifecycle`]; the service that logs and stores each change in
//! [`crate::filing_service`].

use serde::{Deserialize, Serialize};
use time::Date;

use crate::GovernError;

/// The JSON size a filing's content may reach: it is recorded whole in the transparency log's
/// record of each change, which holds at most 64 KiB with the attachments' list (up to about
/// 25 KiB) and the envelope.
pub const MAX_CONTENT_BYTES: usize = 32 * 1024;
pub const MAX_TEXT_CHARS: usize = 200;
pub const MAX_ITEMS: usize = 32;
pub const MAX_ATTACHMENTS: usize = 32;
/// The largest corpus a filing may state, in tokens (10^16: far beyond any corpus trained on).
pub const MAX_SCALE_TOKENS: u64 = 10_000_000_000_000_000;
/// The largest attachment (a report, a keyword list, a test set, an agreement).
pub const MAX_ATTACHMENT_BYTES: usize = 16 * 1024 * 1024;

/// Which filing: the algorithm filing of the 2022 algorithm-recommendation provisions (算法备案)
/// or the generative-AI service filing of the 2023 interim measures (生成式人工智能服务备案).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    #[default]
    Algorithm,
    GenerativeService,
}

/// The algorithm's type, as the algorithm filing form lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlgorithmType {
    /// 生成合成类 (deep synthesis and generation).
    GenerativeSynthesis,
    /// 个性化推送类.
    PersonalisedPush,
    /// 排序精选类.
    RankingSelection,
    /// 检索过滤类.
    RetrievalFiltering,
    /// 调度决策类.
    DispatchDecision,
}

/// The filer's role for the algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 服务提供者: offers the service to the public.
    ServiceProvider,
    /// 技术支持者: supplies the technology to providers.
    TechnicalSupporter,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    /// The legal entity's registered name.
    #[serde(default)]
    pub name: String,
    /// The unified social credit code (统一社会信用代码), 18 characters.
    #[serde(default)]
    pub credit_code: String,
    #[serde(default)]
    pub address: String,
}

/// The person responsible for the algorithm's safety (算法安全责任人).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Person {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub email: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Algorithm {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<AlgorithmType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// A product or service the algorithm runs in (an app, a website, a mini program, an API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub name: String,
    pub form: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
}

/// The model a generative service is built on, with its own filing number when it has one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseModel {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filing_number: String,
}

/// Where the training corpus came from, as the service filing's form groups sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// 开源语料.
    Open,
    /// 自采语料.
    SelfCollected,
    /// 商业语料.
    Commercial,
    /// 使用者输入 (users' input).
    User,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    pub kind: SourceKind,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub licence: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Corpus {
    #[serde(default)]
    pub sources: Vec<Source>,
    /// The corpus's scale, in tokens.
    #[serde(default)]
    pub scale_tokens: u64,
}

/// What an applicant writes in a filing; a draft may leave any of it empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Content {
    #[serde(default)]
    pub kind: Kind,
    #[serde(default)]
    pub entity: Entity,
    #[serde(default)]
    pub responsible: Person,
    #[serde(default)]
    pub algorithm: Algorithm,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub products: Vec<Product>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model: Option<BaseModel>,
    #[serde(default)]
    pub corpus: Corpus,
    /// The model versions aiplus serves under this filing (`chat@2`): with
    /// `govern.require_filing`, only these are routable, and a suspended version's traffic
    /// falls back only to a filed one.
    #[serde(default)]
    pub models: Vec<String>,
    /// The day the service started or starts: the rules give 10 working days from it to file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_started_on: Option<Date>,
}

/// The kinds of attachment the forms ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// 安全自评估报告.
    SelfAssessment,
    /// 拦截关键词列表.
    KeywordList,
    /// 评估测试题集.
    TestSet,
    /// 服务协议.
    ServiceAgreement,
}

impl AttachmentKind {
    pub const ALL: [AttachmentKind; 4] = [Self::SelfAssessment, Self::KeywordList, Self::TestSet, Self::ServiceAgreement];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SelfAssessment => "self_assessment",
            Self::KeywordList => "keyword_list",
            Self::TestSet => "test_set",
            Self::ServiceAgreement => "service_agreement",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether a submission of `kind` must carry this attachment: a service filing all four, an
    /// algorithm filing its self-assessment.
    fn required_for(self, kind: Kind) -> bool {
        kind == Kind::GenerativeService || self == Self::SelfAssessment
    }
}

/// A stored file, referenced by the SHA-256 of its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: AttachmentKind,
    pub name: String,
    pub sha256: String,
    pub size_bytes: u64,
}

fn invalid<T>(field: &'static str, reason: impl Into<String>) -> Result<T, GovernError> {
    Err(GovernError::Invalid { field, reason: reason.into() })
}

/// A short text: at most [`MAX_TEXT_CHARS`], no control characters.
pub fn check_text(field: &'static str, s: &str) -> Result<(), GovernError> {
    if s.chars().count() > MAX_TEXT_CHARS || s.chars().any(char::is_control) {
        return invalid(field, format!("at most {MAX_TEXT_CHARS} characters, without control characters"));
    }
    Ok(())
}

fn check_list<T>(field: &'static str, items: &[T]) -> Result<(), GovernError> {
    if items.len() > MAX_ITEMS {
        return invalid(field, format!("at most {MAX_ITEMS} items"));
    }
    Ok(())
}

fn required(field: &'static str, s: &str) -> Result<(), GovernError> {
    if s.trim().is_empty() {
        return invalid(field, "required before the filing is submitted");
    }
    Ok(())
}

impl Content {
    /// The shape every saved version must have, complete or not.
    pub fn check(&self) -> Result<(), GovernError> {
        let texts = [
            ("entity.name", &self.entity.name),
            ("entity.credit_code", &self.entity.credit_code),
            ("entity.address", &self.entity.address),
            ("responsible.name", &self.responsible.name),
            ("responsible.title", &self.responsible.title),
            ("responsible.phone", &self.responsible.phone),
            ("responsible.email", &self.responsible.email),
            ("algorithm.name", &self.algorithm.name),
        ];
        for (field, s) in texts {
            check_text(field, s)?;
        }
        let c = &self.entity.credit_code;
        if !c.is_empty() && (c.len() != 18 || !c.chars().all(|ch| ch.is_ascii_digit() || ch.is_ascii_uppercase())) {
            return invalid("entity.credit_code", "a unified social credit code is 18 digits and capital letters");
        }
        check_list("domains", &self.domains)?;
        self.domains.iter().try_for_each(|d| check_text("domains", d))?;
        check_list("products", &self.products)?;
        for p in &self.products {
            check_text("products.name", &p.name)?;
            check_text("products.form", &p.form)?;
            check_text("products.url", &p.url)?;
        }
        if let Some(b) = &self.base_model {
            check_text("base_model.name", &b.name)?;
            check_text("base_model.filing_number", &b.filing_number)?;
        }
        check_list("corpus.sources", &self.corpus.sources)?;
        for s in &self.corpus.sources {
            check_text("corpus.sources.name", &s.name)?;
            check_text("corpus.sources.licence", &s.licence)?;
        }
        if self.corpus.scale_tokens > MAX_SCALE_TOKENS {
            return invalid("corpus.scale_tokens", format!("at most {MAX_SCALE_TOKENS}"));
        }
        check_list("models", &self.models)?;
        for m in &self.models {
            if m.is_empty() || m.len() > crate::states::MAX_NAME_BYTES || m.chars().any(char::is_control) {
                return invalid("models", "model names of 1 to 256 bytes without control characters");
            }
        }
        let size = serde_json::to_vec(self).map(|v| v.len()).unwrap_or(usize::MAX);
        if size > MAX_CONTENT_BYTES {
            return invalid("content", format!("{size} bytes as JSON; at most {MAX_CONTENT_BYTES}"));
        }
        Ok(())
    }

    /// What a submission needs: the form's required fields and attachments, by kind.
    pub fn complete(&self, attachments: &[Attachment]) -> Result<(), GovernError> {
        required("entity.name", &self.entity.name)?;
        required("entity.credit_code", &self.entity.credit_code)?;
        required("responsible.name", &self.responsible.name)?;
        required("responsible.phone", &self.responsible.phone)?;
        required("algorithm.name", &self.algorithm.name)?;
        if self.algorithm.kind.is_none() {
            return invalid("algorithm.type", "required before the filing is submitted");
        }
        if self.algorithm.role.is_none() {
            return invalid("algorithm.role", "required before the filing is submitted");
        }
        if self.domains.is_empty() {
            return invalid("domains", "name at least one domain the service is used in");
        }
        if self.products.is_empty() {
            return invalid("products", "name at least one product the algorithm runs in");
        }
        if self.kind == Kind::GenerativeService {
            match &self.base_model {
                Some(b) if !b.name.trim().is_empty() => {}
                _ => return invalid("base_model.name", "a generative service names the model it is built on"),
            }
            if self.corpus.sources.is_empty() {
                return invalid("corpus.sources", "a generative service lists its corpus sources");
            }
            if self.corpus.scale_tokens == 0 {
                return invalid("corpus.scale_tokens", "a generative service states its corpus's scale");
            }
        }
        if self.service_started_on.is_none() {
            return invalid("service_started_on", "required before the filing is submitted");
        }
        for k in AttachmentKind::ALL {
            if k.required_for(self.kind) && !attachments.iter().any(|a| a.kind == k) {
                return invalid("attachments", format!("a {} attachment is required", k.as_str()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// A complete generative-service filing, as a test fixture.
    pub fn complete_service() -> Content {
        serde_json::from_value(serde_json::json!({
            "kind": "generative_service",
            "entity": {"name": "示例智能科技有限公司", "credit_code": "91110108MA01ABCDE0", "address": "北京市海淀区"},
            "responsible": {"name": "张三", "title": "安全负责人", "phone": "010-12345678", "email": "safety@example.cn"},
            "algorithm": {"name": "示例对话生成算法", "type": "generative_synthesis", "role": "service_provider"},
            "domains": ["政务咨询"],
            "products": [{"name": "示例助手", "form": "api"}],
            "base_model": {"name": "Qwen2.5", "filing_number": "Beijing-Qwen-20230831S0001"},
            "corpus": {"sources": [{"name": "公开网页", "kind": "open", "licence": "CC-BY-4.0"}], "scale_tokens": 18000000000u64},
            "models": ["chat@1"],
            "service_started_on": "2026-12-01"
        }))
        .unwrap()
    }

    pub fn all_attachments() -> Vec<Attachment> {
        AttachmentKind::ALL
            .into_iter()
            .map(|kind| Attachment { kind, name: format!("{}.pdf", kind.as_str()), sha256: "0".repeat(64), size_bytes: 1 })
            .collect()
    }

    fn refusal(r: Result<(), GovernError>) -> String {
        match r {
            Err(GovernError::Invalid { field, .. }) => field.to_string(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn a_submission_names_the_first_missing_field_or_attachment() {
        let full = complete_service();
        assert!(full.check().is_ok());
        assert!(full.complete(&all_attachments()).is_ok());
        assert_eq!(refusal(full.complete(&all_attachments()[..3])), "attachments");
        let mut c = full.clone();
        c.base_model = None;
        assert_eq!(refusal(c.complete(&all_attachments())), "base_model.name");
        let mut c = full.clone();
        c.entity.name.clear();
        assert_eq!(refusal(c.complete(&all_attachments())), "entity.name");
        // An algorithm filing needs only its self-assessment, and no base model or corpus.
        let mut c = full;
        c.kind = Kind::Algorithm;
        c.base_model = None;
        c.corpus = Corpus::default();
        assert!(c.complete(&all_attachments()[..1]).is_ok());
    }

    #[test]
    fn the_shape_is_checked_even_in_a_draft() {
        assert!(Content::default().check().is_ok(), "an empty draft is a draft");
        let mut c = Content::default();
        c.entity.credit_code = "123".into();
        assert_eq!(refusal(c.check()), "entity.credit_code");
        let c = Content { domains: vec!["x".into(); MAX_ITEMS + 1], ..Default::default() };
        assert_eq!(refusal(c.check()), "domains");
        let mut c = Content::default();
        c.responsible.name = "a\u{7}".into();
        assert_eq!(refusal(c.check()), "responsible.name");
    }
}

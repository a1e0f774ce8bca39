//! The console's one error type and its one mapping to an HTTP status and an HTML page.
//! Pages are for people, so errors are pages (in both languages, since an error may come
//! before the viewer's language is known), not problem+json.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Unknown, or not the viewer's to see: the two look the same, so a tenant cannot probe
    /// for other tenants' ids.
    #[error("not found")]
    NotFound,
    #[error("operators only")]
    OperatorsOnly,
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("the form's CSRF token does not match this session")]
    Csrf,
    #[error("a request from another site was refused")]
    CrossOrigin,
    #[error("wrong username or password")]
    LoginFailed,
    #[error("too many failed logins")]
    /// Too many failed logins from this address (or of this account): wait this long.
    Locked { retry_after_s: u64 },
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Internal(String),
}

impl From<govern::GovernError> for ConsoleError {
    fn from(e: govern::GovernError) -> Self {
        use govern::GovernError as G;
        match e {
            G::Invalid { field, reason } => ConsoleError::Invalid { field: field.into(), reason },
            G::NotFound { .. } => ConsoleError::NotFound,
            G::Conflict(why) => ConsoleError::Busy(why),
            e @ (G::Store(_) | G::Log(_) | G::Corrupt(_)) => ConsoleError::Internal(e.to_string()),
        }
    }
}

impl From<store::StoreError> for ConsoleError {
    fn from(e: store::StoreError) -> Self {
        ConsoleError::Internal(format!("store: {e}"))
    }
}

impl From<jobs::JobsError> for ConsoleError {
    fn from(e: jobs::JobsError) -> Self {
        use jobs::JobsError as A;
        match e {
            A::NotFound { .. } => ConsoleError::NotFound,
            A::Invalid { field, reason } => ConsoleError::Invalid { field, reason },
            // The sentence names the binding constraint with numbers; the per-cluster reasons
            // are on the API for programs, and would only bury it here.
            A::Unplaceable { summary, .. } => ConsoleError::Invalid { field: "job".into(), reason: summary },
            A::Conflict(why) | A::Busy(why) | A::Limit(why) => ConsoleError::Busy(why),
            A::Store(e) => ConsoleError::Internal(format!("store: {e}")),
            A::Internal(why) => ConsoleError::Internal(why),
        }
    }
}

impl From<identity::IdentityError> for ConsoleError {
    fn from(e: identity::IdentityError) -> Self {
        use identity::IdentityError as I;
        match e {
            I::Invalid { field, reason } => ConsoleError::Invalid { field, reason },
            I::NotFound { .. } => ConsoleError::NotFound,
            I::Conflict { what, id } => ConsoleError::Invalid { field: "id".into(), reason: format!("{what} {id:?} already exists") },
            I::Limit { reason, .. } => ConsoleError::Busy(reason),
            I::Store(e) => ConsoleError::Internal(format!("store: {e}")),
            I::File { path, source } => ConsoleError::Internal(format!("{path}: {source}")),
        }
    }
}

impl From<gateway::admin::AdminError> for ConsoleError {
    fn from(e: gateway::admin::AdminError) -> Self {
        use gateway::admin::AdminError as A;
        match e {
            A::Invalid { field, reason } => ConsoleError::Invalid { field, reason },
            A::NotFound { .. } => ConsoleError::NotFound,
            A::Store(why) => ConsoleError::Internal(why.into()),
        }
    }
}

impl ConsoleError {
    pub fn status(&self) -> StatusCode {
        match self {
            ConsoleError::NotFound => StatusCode::NOT_FOUND,
            ConsoleError::OperatorsOnly | ConsoleError::Csrf | ConsoleError::CrossOrigin => StatusCode::FORBIDDEN,
            ConsoleError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ConsoleError::LoginFailed => StatusCode::UNAUTHORIZED,
            ConsoleError::Locked { .. } | ConsoleError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            ConsoleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// (Chinese, English) headline.
    fn headline(&self) -> (&'static str, &'static str) {
        match self {
            ConsoleError::NotFound => ("未找到", "Not found"),
            ConsoleError::OperatorsOnly => ("仅限运维人员", "Operators only"),
            ConsoleError::Invalid { .. } => ("输入有误", "Check the input"),
            ConsoleError::Csrf => ("表单已过期，请刷新后重试", "The form has expired; reload and try again"),
            ConsoleError::CrossOrigin => ("拒绝跨站请求", "Cross-site request refused"),
            ConsoleError::LoginFailed => ("用户名或密码错误", "Wrong username or password"),
            ConsoleError::Locked { .. } => ("失败次数过多，请稍后再试", "Too many failed attempts; try again shortly"),
            ConsoleError::Busy(_) => ("繁忙，请稍后再试", "Busy; try again shortly"),
            ConsoleError::Internal(_) => ("服务器出错", "Something went wrong on the server"),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        if let ConsoleError::Internal(why) = &self {
            tracing::error!(error = %why, "console");
        }
        let (zh, en) = self.headline();
        let detail = match &self {
            ConsoleError::Invalid { .. } | ConsoleError::Busy(_) => Some(self.to_string()),
            _ => None,
        };
        let page = html! {
            (maud::DOCTYPE)
            html lang="zh-CN" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (zh) " / " (en) }
                    link rel="stylesheet" href=(crate::assets::CSS_URL);
                    link rel="icon" href="/favicon.ico" type="image/svg+xml";
                }
                body {
                    main id="main" class="error-page" {
                        h1 { (zh) " / " span lang="en" { (en) } }
                        @if let Some(d) = detail { p class="error-detail" role="alert" { (d) } }
                        p { a href="/" { "返回首页 / " span lang="en" { "Back to the console" } } }
                    }
                }
            }
        };
        let mut r = (self.status(), page).into_response();
        crate::assets::secure_headers(r.headers_mut());
        r
    }
}

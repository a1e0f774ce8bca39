//! Small text rules that more than one edge needs, written once: percent-encoding a path for a
//! `next=` parameter, and finding a cookie in `Cookie` header values.

/// Percent-encodes everything but unreserved characters and `/` (RFC 3986).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value of cookie `name` in a request's `Cookie` header values.
pub fn cookie<'a>(header_values: impl IntoIterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    header_values.into_iter().flat_map(|v| v.split(';')).find_map(|kv| kv.trim().strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_and_cookies_are_found_by_exact_name() {
        assert_eq!(percent_encode("/jobs?x=1 2"), "/jobs%3Fx%3D1%202");
        assert_eq!(cookie(["aiplus_lang=en; aiplus_session=abc"], "aiplus_session"), Some("abc"));
        assert_eq!(cookie(["aiplus_lang=en", "aiplus_session=abc"], "aiplus_session"), Some("abc"));
        assert_eq!(cookie(["aiplus_lang=en; aiplus_session=abc"], "aiplus"), None);
    }
}

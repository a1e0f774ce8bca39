//! Outbound HTTP to peers aiplus does not control: model upstreams, engines' REST APIs, and next
//! agents' MCP servers and datasets' URLs. The rules live here once:
//! - no redirect is followed: a redirect would carry the request, and the key it holds,
//!   somewhere its configuration never named;
//! - a body is read up to a cap ([`read_capped`]), never whole on trust;
//! - addresses of this host (loopback, and the unspecified address, which reaches it) and
//!   link-local ones (where clouds serve instance metadata and credentials, 169.254.169.254)
//!   are refused unless the operator allows them: in URLs ([`check_url`]) and in what names
//!   resolve to, checked at every connection ([`client`]), so a name cannot be re-pointed at them
//!   later.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

/// Whether an address is one a peer must not be reached at unless the operator allows it.
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_local(IpAddr::V4(v4)),
            None => v6.is_loopback() || v6.is_unicast_link_local() || v6.is_unspecified(),
        },
    }
}

/// Checks an http(s) URL: its scheme, and, unless `allow_local`, that its host is not a local
/// address or `localhost`. Names are checked again when they resolve.
pub fn check_url(url: &str, allow_local: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?} is not an http(s) URL"));
    }
    if allow_local {
        return Ok(());
    }
    let local = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => is_local(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_local(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost"),
        None => return Err(format!("{url:?} has no host")),
    };
    if local {
        return Err(format!("{url:?} points at this host or a link-local address; an operator may allow that in the config"));
    }
    Ok(())
}

/// A resolver that drops local addresses from every answer (unless allowed).
struct Resolver {
    allow_local: bool,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_local = self.allow_local;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found.into_iter().filter(|a| allow_local || !is_local(a.ip())).collect();
            if kept.is_empty() {
                let msg = format!("{host} resolves only to this host or link-local addresses, which are not allowed");
                return Err(Box::new(std::io::Error::new(std::io::ErrorKind::PermissionDenied, msg)) as Box<_>);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A client builder with the rules above; callers add their own timeouts and pools.
pub fn client(allow_local: bool, connect_timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(Resolver { allow_local }))
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
}

/// Reads a body of at most `max` bytes; `None` when it is longer (reading stops there).
pub async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<Option<Bytes>, reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Ok(None);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_are_known() {
        for ip in
            ["127.0.0.1", "127.9.9.9", "0.0.0.0", "169.254.169.254", "::1", "::", "fe80::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254"]
        {
            assert!(is_local(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.1", "192.168.1.1", "8.8.8.8", "2001:db8::1", "::ffff:10.0.0.1"] {
            assert!(!is_local(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_naming_this_host_are_refused_unless_allowed() {
        for url in ["http://127.0.0.1:8080/v1", "http://localhost/v1", "http://[::1]/", "http://169.254.169.254/latest", "http://0.0.0.0:1"]
        {
            assert!(check_url(url, false).is_err(), "{url}");
            assert!(check_url(url, true).is_ok(), "{url}");
        }
        assert!(check_url("https://api.example.com/v1", false).is_ok());
        assert!(check_url("http://10.1.2.3:8000/v1", false).is_ok(), "private networks hold model servers");
        assert!(check_url("file:///etc/passwd", true).is_err());
        assert!(check_url("not a url", true).is_err());
    }

    async fn serve(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_bodies_are_capped() {
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/moved", get(|| async { axum::response::Redirect::temporary("/secret") }))
            .route("/big", get(|| async { "x".repeat(2048) }));
        let base = serve(app).await;
        let http = client(true, Duration::from_secs(2)).build().unwrap();
        let r = http.get(format!("{base}/moved")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 307, "the redirect is the answer");
        let r = http.get(format!("{base}/big")).send().await.unwrap();
        assert!(read_capped(r, 1024).await.unwrap().is_none());
        let r = http.get(format!("{base}/big")).send().await.unwrap();
        assert_eq!(read_capped(r, 4096).await.unwrap().unwrap().len(), 2048);
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_this_host_is_refused_at_connect() {
        let base = serve(axum::Router::new().route("/", axum::routing::get(|| async { "hi" }))).await;
        let port = base.rsplit(':').next().unwrap();
        let strict = client(false, Duration::from_secs(2)).build().unwrap();
        let err = strict.get(format!("http://localhost:{port}/")).send().await.unwrap_err();
        assert!(format!("{err:?}").contains("not allowed"), "{err:?}");
        let open = client(true, Duration::from_secs(2)).build().unwrap();
        assert_eq!(open.get(format!("http://localhost:{port}/")).send().await.unwrap().text().await.unwrap(), "hi");
    }
}

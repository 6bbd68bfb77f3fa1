//! The process's egress proxy, as every client of it reads the standard variables
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, in either case, credentials in the URL): the AWS SDK's
//! connector, reqwest (Azure, GCP, token endpoints) and the Kubernetes client all decide with
//! hyper-util's matcher, so a request goes through the proxy here exactly when it does there.
//! Used to say which proxy a failed connection went through, and to route the Kubernetes client.

use std::sync::OnceLock;

use base64::Engine as _;
use hyper_util::client::proxy::matcher::Matcher;

fn matcher() -> &'static Matcher {
    static MATCHER: OnceLock<Matcher> = OnceLock::new();
    MATCHER.get_or_init(Matcher::from_env)
}

/// The proxy a request to `url` goes through, without its credentials; `None` when it goes
/// direct (no proxy set for its scheme, or `NO_PROXY` names its host).
pub fn proxy_for(url: &str) -> Option<http::Uri> {
    let uri: http::Uri = url.parse().ok()?;
    matcher().intercept(&uri).map(|intercept| without_credentials(intercept.uri()))
}

/// The proxy for `url` with its credentials (`http://user:password@proxy:3128`), for a client
/// that takes them in the URL (the Kubernetes client); never for messages.
pub fn proxy_with_credentials(url: &str) -> Option<http::Uri> {
    let uri: http::Uri = url.parse().ok()?;
    let intercept = matcher().intercept(&uri)?;
    let plain = without_credentials(intercept.uri());
    // An HTTP proxy's credentials come back as the `Basic` header value they make.
    let userinfo = intercept.raw_auth().map(|(user, password)| format!("{user}:{password}")).or_else(|| {
        let value = intercept.basic_auth()?.to_str().ok()?.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(value).ok()?;
        String::from_utf8(decoded).ok()
    });
    match (userinfo, plain.authority()) {
        (Some(userinfo), Some(authority)) => {
            let scheme = plain.scheme_str().unwrap_or("http");
            format!("{scheme}://{userinfo}@{authority}").parse().ok().or(Some(plain))
        }
        _ => Some(plain),
    }
}

/// ` (through the proxy http://proxy:3128)` for a request to `url` that goes through one, for
/// messages about a failed connection; empty otherwise.
pub fn through(url: &str) -> String {
    proxy_for(url)
        .map(|proxy| format!(" (through the proxy {})", proxy.to_string().trim_end_matches('/')))
        .unwrap_or_default()
}

/// `message` (a client's error, which names the URL it asked) with the proxy that request went
/// through, if any: a refusing proxy is named where it broke the call.
pub fn name_proxy(message: String) -> String {
    let url = ["https://", "http://"].iter().find_map(|scheme| {
        let start = message.find(scheme)?;
        let rest = &message[start..];
        let end =
            rest.find(|c: char| c.is_whitespace() || c == ')' || c == '"' || c == '\'').unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    });
    match url.map(|url| through(&url)) {
        Some(proxy) if !proxy.is_empty() && !message.contains(proxy.trim()) => format!("{message}{proxy}"),
        _ => message,
    }
}

fn without_credentials(uri: &http::Uri) -> http::Uri {
    let Some(authority) = uri.authority() else { return uri.clone() };
    let host_port = authority.as_str().rsplit('@').next().unwrap_or(authority.as_str());
    let scheme = uri.scheme_str().unwrap_or("http");
    format!("{scheme}://{host_port}").parse().unwrap_or_else(|_| uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_leave_the_proxy_url() {
        let uri: http::Uri = "http://user:secret@proxy.internal:3128".parse().unwrap_or_default();
        assert_eq!(without_credentials(&uri).to_string(), "http://proxy.internal:3128/");
    }
}

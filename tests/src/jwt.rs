//! Service account tokens as kubelet issues them (unsigned: the test peers check issuer,
//! subject, audience and expiry, as the real token services do, not the signature), and reading
//! their claims back on the peers' side.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The issuer the test peers trust (a cluster's OIDC issuer URL).
pub const ISSUER: &str = "https://oidc.cluster.test";

/// Far in the future (2100-01-01): a token that is valid for the whole test.
pub const VALID_UNTIL: u64 = 4_102_444_800;

/// Unix time 1,000,000,000 (2001): a token that expired long ago.
pub const EXPIRED_AT: u64 = 1_000_000_000;

/// A projected service account token of `namespace/service_account` for `audience`.
pub fn service_account_token(namespace: &str, service_account: &str, audience: &str, expires: u64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"test"}"#);
    let claims = serde_json::json!({
        "aud": [audience], "iss": ISSUER, "exp": expires,
        "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
    });
    format!("{header}.{}.c2lnbmF0dXJl", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// The claims of a JWT, or `None` when `token` is not one (three dot-separated parts, the
/// middle one base64url JSON).
pub fn claims(token: &str) -> Option<serde_json::Value> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok().filter(serde_json::Value::is_object)
}

/// Whether the token's `aud` (a string or a list, as OIDC allows) names `audience`.
pub fn has_audience(claims: &serde_json::Value, audience: &str) -> bool {
    match &claims["aud"] {
        serde_json::Value::String(aud) => aud == audience,
        serde_json::Value::Array(auds) => auds.iter().any(|a| a == audience),
        _ => false,
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_read_back() -> Result<(), &'static str> {
        let token = service_account_token("shop", "web", "sts.amazonaws.com", VALID_UNTIL);
        let claims = claims(&token).ok_or("not read back as a JWT")?;
        assert!(has_audience(&claims, "sts.amazonaws.com"));
        assert!(!has_audience(&claims, "api://AzureADTokenExchange"));
        assert_eq!(claims["sub"], "system:serviceaccount:shop:web");
        assert_eq!(claims["exp"], VALID_UNTIL);
        assert!(super::claims("jwt-for-web").is_none());
        assert!(super::claims("a.b.c.d").is_none());
        assert!(super::claims("e30.bm90IGpzb24.c2ln").is_none());
        Ok(())
    }
}

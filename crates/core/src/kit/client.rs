//! How every backend's HTTP clients are built: one options type for all of them (as
//! object_store's `ClientOptions`), made once at start, so a bad setting refuses the start
//! instead of failing every mount or being dropped by one backend and kept by another.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{Error, Result};

/// PEM certificates trusted beside the system's (`serve --extra-ca-file`, the chart's
/// `extraCaCertificates`): read and checked once, every certificate of it parsed.
#[derive(Clone)]
pub struct ExtraCa {
    pem: Arc<Vec<u8>>,
    count: usize,
}

impl std::fmt::Debug for ExtraCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtraCa").field("certificates", &self.count).finish()
    }
}

impl ExtraCa {
    /// `pem` (named `source` in errors) as certificates: at least one, every `BEGIN` block a
    /// certificate whose base64 decodes. A file with a key in it, cut short, or with no
    /// certificate at all is refused, naming the source.
    pub fn from_pem(source: &str, pem: Vec<u8>) -> Result<Self> {
        let refuse = |why: String| Error::invalid_config(format!("the extra CA file {source} {why}"));
        let mut count = 0;
        // Each one taken as a trust anchor, as rustls (every client's TLS here) will take it.
        let mut anchors = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            let certificate = certificate.map_err(|e| refuse(format!("is not PEM certificates: {e}")))?;
            count += 1;
            anchors
                .add(certificate)
                .map_err(|e| refuse(format!("holds a certificate (number {count}) that is not one: {e}")))?;
        }
        let blocks = pem.windows(11).filter(|window| *window == b"-----BEGIN ").count();
        if count == 0 {
            return Err(refuse("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned()));
        }
        if blocks != count {
            return Err(refuse(format!(
                "holds {} PEM blocks that are not certificates (a key?); give certificates only",
                blocks - count
            )));
        }
        Ok(Self { pem: Arc::new(pem), count })
    }

    /// Reads and checks the file at `path`.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let pem = std::fs::read(path).map_err(|e| {
            Error::invalid_config(format!("cannot read the extra CA file {}: {e}", path.display()))
        })?;
        Self::from_pem(&path.display().to_string(), pem)
    }

    /// The PEM text, for a client builder.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// How many certificates it holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Never: an `ExtraCa` holds at least one certificate.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// What every backend's HTTP client is built from. The proxy comes from the standard variables
/// (`HTTPS_PROXY`, `NO_PROXY`, see [`crate::egress`]) for every client alike.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Certificates trusted beside the system's.
    pub extra_ca: Option<ExtraCa>,
    /// How long a connection may take to open.
    pub connect_timeout: Duration,
    /// How long one request may take, answer included (each mount's deadline bounds it too).
    pub request_timeout: Duration,
    /// The product token every client of the provider sends first in its User-Agent
    /// (`csi-secrets-provider/<version>`); the pod a call is made for is added after it.
    pub user_agent: String,
}

impl ClientOptions {
    /// The User-Agent of a call made for `pod` (`csi-<namespace>.<pod>`), when known.
    pub fn user_agent_for(&self, pod: Option<&str>) -> String {
        match pod {
            Some(pod) => format!("{} {pod}", self.user_agent),
            None => self.user_agent.clone(),
        }
    }

    /// The HTTP client of the calls a backend makes itself (token exchanges, metadata, NMI):
    /// these options' timeouts, extra CA and User-Agent, the proxy from the standard variables.
    /// Built once at start: `backend` names it in the error that refuses the start.
    #[cfg(feature = "http-client")]
    pub fn http_client(
        &self,
        backend: &str,
        customize: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> crate::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .user_agent(&self.user_agent);
        if let Some(ca) = &self.extra_ca {
            let certificates = reqwest::Certificate::from_pem_bundle(ca.pem()).map_err(|e| {
                crate::Error::invalid_config(format!("{backend}: cannot use the extra CA certificates: {e}"))
            })?;
            builder = builder.tls_certs_merge(certificates);
        }
        customize(builder).build().map_err(|e| {
            crate::Error::invalid_config(format!("{backend}: cannot build the HTTP client: {e}"))
        })
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            extra_ca: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            user_agent: format!("csi-secrets-provider/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate block whose base64 decodes (its DER is the TLS stacks' to check, at start).
    const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----\nMIIBeTCCAR+gAwIBAgIUFB4hXbDUJmHvIdrphYdHkjGQqXUwCgYIKoZIzj0EAwIw\nEjEQMA4GA1UEAwwHdGVzdC1jYTAeFw0yNjAxMDEwMDAwMDBaFw0zNjAxMDEwMDAw\nMDBaMBIxEDAOBgNVBAMMB3Rlc3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\nAAR7dM7lqy7c6MoB2BqdI8dJh1bTXW7zdmZ0MmmRYy4gFk2DgLpDqW4DkSNrv3nY\nLQlxsAuDdyGXyUWHvJgNkhJQo1MwUTAdBgNVHQ4EFgQUOzLzQ1fzUXf6QbQkVd1w\nTlg9T1YwHwYDVR0jBBgwFoAUOzLzQ1fzUXf6QbQkVd1wTlg9T1YwDwYDVR0TAQH/\nBAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEA3gq0eO4Sxu7Cn0lG6b1M6vP8mX8R\nkLx2mNFfF3aTt4ACICr0MNLgz0dlq0nNTgMsqz7m3ZzYH5pSBY1m4B0h0oAa\n-----END CERTIFICATE-----\n";

    #[test]
    fn certificates_only_and_at_least_one() {
        assert_eq!(
            ExtraCa::from_pem("ca.crt", CERTIFICATE.as_bytes().to_vec()).map(|ca| ca.len()).ok(),
            Some(1)
        );
        let two = format!("{CERTIFICATE}{CERTIFICATE}");
        assert_eq!(ExtraCa::from_pem("ca.crt", two.into_bytes()).map(|ca| ca.len()).ok(), Some(2));
        for (bad, says) in [
            ("not a certificate at all".to_owned(), "holds no PEM certificate"),
            (
                "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n".to_owned(),
                "is not PEM certificates",
            ),
            (
                format!("{CERTIFICATE}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
                "not certificates",
            ),
            (CERTIFICATE[..200].to_owned(), "ca.crt"),
            ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_owned(), "that is not one"),
        ] {
            let refused = ExtraCa::from_pem("ca.crt", bad.clone().into_bytes());
            assert!(refused.as_ref().is_err_and(|e| e.message().contains(says)), "{bad:?}: {refused:?}");
        }
    }
}

//! The AWS SDK's HTTP client: the SDK's own hyper/rustls connector, with what the default one
//! leaves out — the standard proxy variables (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, either
//! case; CONNECT for HTTPS, credentials in the URL), and CA certificates trusted beside the
//! system's (`serve --extra-ca-file`).

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, Connector};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use csi_secrets_provider_core::Error;

/// The client every AWS call of the backend uses; `extra_ca` is PEM (one or more certificates).
pub(crate) fn client(extra_ca: Option<&[u8]>) -> Result<SharedHttpClient, Error> {
    let mut trust = TrustStore::default();
    if let Some(pem) = extra_ca {
        trust = trust.with_pem_certificate(pem.to_vec());
    }
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| Error::invalid_config(format!("cannot use the extra CA certificates: {e}")))?;
    let proxy = ProxyConfig::from_env();
    Ok(Builder::new().build_with_connector_fn(move |settings, components| {
        let mut builder = Connector::builder();
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder
            .proxy_config(proxy.clone())
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context.clone())
            .build()
    }))
}

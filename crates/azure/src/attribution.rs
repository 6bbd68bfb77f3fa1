//! Names the mounting pod in every Key Vault request's User-Agent, so Key Vault's diagnostic
//! logs (`clientInfo`) say which pod read what. Clients are shared by every pod of an identity,
//! so the pod travels with each call, in the SDK's per-call [`Context`], and a per-call policy
//! appends it to the User-Agent the SDK set.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::headers::{HeaderName, USER_AGENT};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use csi_secrets_provider_core::MountRequest;

/// The pod a call is made for, as the User-Agent names it: `csi-<namespace>.<pod>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallerPod(String);

impl CallerPod {
    /// The mounting pod of `request`; `None` without pod attributes.
    pub(crate) fn of(request: &MountRequest) -> Option<Self> {
        // 253 + 63 characters at most; Key Vault keeps the header whole.
        request.pod.caller_name().map(Self)
    }
}

/// The per-call context of a mount's Key Vault calls.
pub(crate) fn call_context(caller: Option<&CallerPod>) -> Context<'static> {
    match caller {
        Some(caller) => Context::new().with_value(caller.clone()),
        None => Context::new(),
    }
}

/// Appends the [`CallerPod`] of the call's context to the User-Agent.
#[derive(Debug, Default)]
pub(crate) struct PodUserAgent;

impl PodUserAgent {
    pub(crate) fn policy() -> Arc<dyn Policy> {
        Arc::new(Self)
    }
}

#[async_trait]
impl Policy for PodUserAgent {
    async fn send(&self, ctx: &Context, request: &mut Request, next: &[Arc<dyn Policy>]) -> PolicyResult {
        if let Some(caller) = ctx.value::<CallerPod>() {
            let header: HeaderName = USER_AGENT;
            let agent = match request.headers().get_optional_str(&header) {
                Some(agent) => format!("{agent} {}", caller.0),
                None => caller.0.clone(),
            };
            request.insert_header(header, agent);
        }
        next[0].send(ctx, request, &next[1..]).await
    }
}

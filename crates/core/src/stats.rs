//! What a backend reports for `/metrics`: the calls it made to its cloud and the lookups around
//! them, and what sharing saved. Labels are bounded (API names and outcomes written in code),
//! never object names, pods or values.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{ErrorKind, Result};
use crate::sharing::SharingStats;

/// How a call to the cloud ended: the `outcome` label of `cloud_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallOutcome {
    Ok,
    /// Key Vault's 401 that asks a new client for a token (part of every first request to a
    /// vault), not a failure.
    Challenge,
    Failed(ErrorKind),
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Challenge => "challenge",
            Self::Failed(kind) => kind.as_str(),
        }
    }
}

/// One row of [`CloudCalls::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudCallCount {
    /// `secretsmanager:GetSecretValue`, `keyvault:GetSecret`, `kubernetes:GetServiceAccount`, ...
    pub api: &'static str,
    pub outcome: CallOutcome,
    pub count: u64,
}

/// Calls by API and outcome.
#[derive(Debug, Default)]
pub struct CloudCalls {
    counts: Mutex<BTreeMap<(&'static str, CallOutcome), u64>>,
}

impl CloudCalls {
    /// Counts one call of `api` that ended with `result`.
    pub fn record<T>(&self, api: &'static str, result: &Result<T>) {
        self.record_kind(api, result.as_ref().err().map(crate::Error::kind));
    }

    /// Counts one call of `api` that ended with an outcome known by kind.
    pub fn record_kind(&self, api: &'static str, outcome: Option<ErrorKind>) {
        self.record_outcome(api, outcome.map_or(CallOutcome::Ok, CallOutcome::Failed));
    }

    /// Counts one call of `api` that ended with `outcome`.
    pub fn record_outcome(&self, api: &'static str, outcome: CallOutcome) {
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner).entry((api, outcome)).or_default() += 1;
    }

    pub fn snapshot(&self) -> Vec<CloudCallCount> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(&(api, outcome), &count)| CloudCallCount { api, outcome, count })
            .collect()
    }

    /// Calls of `api`, whatever their outcome.
    pub fn count(&self, api: &str) -> u64 {
        self.snapshot().iter().filter(|c| c.api == api).map(|c| c.count).sum()
    }
}

/// Everything a backend counts; the server reads it on each scrape.
#[derive(Debug, Default)]
pub struct BackendStats {
    /// Shared with whatever counts the calls (an HTTP client wrapper, say).
    pub cloud_calls: Arc<CloudCalls>,
    pub sharing: Arc<SharingStats>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn counts_by_api_and_outcome() {
        let calls = CloudCalls::default();
        calls.record("keyvault:GetSecret", &Ok(()));
        calls.record("keyvault:GetSecret", &Ok(()));
        calls.record::<()>("keyvault:GetSecret", &Err(Error::throttled("slow down", None)));
        calls.record_kind("aad:Token", Some(ErrorKind::PermissionDenied));
        assert_eq!(
            calls.snapshot(),
            [
                CloudCallCount {
                    api: "aad:Token",
                    outcome: CallOutcome::Failed(ErrorKind::PermissionDenied),
                    count: 1
                },
                CloudCallCount { api: "keyvault:GetSecret", outcome: CallOutcome::Ok, count: 2 },
                CloudCallCount {
                    api: "keyvault:GetSecret",
                    outcome: CallOutcome::Failed(ErrorKind::Throttled),
                    count: 1
                },
            ]
        );
        assert_eq!(calls.count("keyvault:GetSecret"), 3);
    }
}

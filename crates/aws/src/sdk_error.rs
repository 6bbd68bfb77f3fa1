//! AWS SDK errors, classified by meaning. The SDK's own retry layer has already retried what
//! is retryable (throttling, 5xx, timeouts) with backoff by the time an error reaches here.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use csi_secrets_provider_core::{CloudCalls, ErrorKind};

/// What an AWS call failure means, with the service's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsFailure {
    pub kind: ErrorKind,
    /// The service's error code, e.g. `ResourceNotFoundException`; or a transport description.
    pub code: String,
    pub message: String,
    /// A client fault (modeled 4xx such as not found or invalid request): the request itself is
    /// wrong, so another region will not help.
    pub client_fault: bool,
}

impl std::fmt::Display for AwsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The result of one AWS call, counted as `api` in `calls`, its error classified (once).
pub fn counted<T, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    api: &'static str,
    calls: &CloudCalls,
) -> Result<T, AwsFailure>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let result = result.map_err(|e| classify(&e));
    calls.record_kind(api, result.as_ref().err().map(|failure| failure.kind));
    result
}

pub fn classify<E>(error: &SdkError<E, HttpResponse>) -> AwsFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        // A success status whose body the SDK could not read as the API's answer: not JSON, or
        // cut off (a proxy or gateway in the way).
        SdkError::ServiceError(service) if service.raw().status().is_success() => AwsFailure {
            kind: ErrorKind::Unavailable,
            code: "InvalidResponse".to_owned(),
            message: format!(
                "HTTP {} with a body that is not an answer the API gives (not JSON, or cut off)",
                service.raw().status().as_u16()
            ),
            client_fault: false,
        },
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("UnknownError").to_owned();
            let message = service.err().message().unwrap_or_default().to_owned();
            let (kind, client_fault) = kind_for(&code, status);
            AwsFailure { kind, code, message, client_fault }
        }
        SdkError::TimeoutError(_) => AwsFailure {
            kind: ErrorKind::Unavailable,
            code: "Timeout".to_owned(),
            message: DisplayErrorContext(error).to_string(),
            client_fault: false,
        },
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => AwsFailure {
            kind: ErrorKind::Unavailable,
            code: "NetworkError".to_owned(),
            // The connector does not say which proxy it used: the one AWS's hosts go through.
            message: format!(
                "{}{}",
                DisplayErrorContext(error),
                csi_secrets_provider_core::egress::through("https://sts.amazonaws.com")
            ),
            client_fault: false,
        },
        _ => AwsFailure {
            kind: ErrorKind::Internal,
            code: "SdkError".to_owned(),
            message: DisplayErrorContext(error).to_string(),
            client_fault: false,
        },
    }
}

/// Kind and client-fault flag from an error code and HTTP status.
pub fn kind_for(code: &str, status: u16) -> (ErrorKind, bool) {
    match code {
        "ResourceNotFoundException"
        | "ParameterNotFound"
        | "ParameterVersionNotFound"
        | "ParameterVersionLabelNotFound" => (ErrorKind::NotFound, true),
        "InvalidParameterException"
        | "InvalidRequestException"
        | "ValidationException"
        | "InvalidKeyId"
        | "DecryptionFailure" => (ErrorKind::InvalidConfig, true),
        // Access problems may be regional (a key policy, an SCP): upstream tries the other region.
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "InvalidIdentityToken"
        | "IncompleteSignature" => (ErrorKind::PermissionDenied, false),
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "ThrottledException" => (ErrorKind::Throttled, false),
        _ if status == 429 => (ErrorKind::Throttled, false),
        _ if status >= 500 => (ErrorKind::Unavailable, false),
        _ if status == 403 || status == 401 => (ErrorKind::PermissionDenied, false),
        _ if status == 404 => (ErrorKind::NotFound, true),
        _ => (ErrorKind::InvalidConfig, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_meanings() {
        assert_eq!(kind_for("ResourceNotFoundException", 400), (ErrorKind::NotFound, true));
        assert_eq!(kind_for("AccessDeniedException", 400), (ErrorKind::PermissionDenied, false));
        assert_eq!(kind_for("ThrottlingException", 400), (ErrorKind::Throttled, false));
        assert_eq!(kind_for("InternalServiceError", 500), (ErrorKind::Unavailable, false));
        assert_eq!(kind_for("Whatever", 429), (ErrorKind::Throttled, false));
        assert_eq!(kind_for("DecryptionFailure", 400), (ErrorKind::InvalidConfig, true));
    }
}

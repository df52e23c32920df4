//! One error type for every handler, classified by whether a retry could fix it.
//!
//! The classification drives the invocation result: retryable failures fail the invocation so
//! EventBridge/Lambda retry and the DLQ catches what never succeeds; everything else is logged.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::config::ConfigError;
use crate::events::EventError;
use crate::tags::TagError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The event cannot be understood. Never retryable: the same bytes fail the same way.
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] EventError),

    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),

    /// An opt-in tag on a resource is malformed; the resource is left alone.
    #[error("{resource}: {source}")]
    Tag {
        resource: String,
        #[source]
        source: TagError,
    },

    /// An AWS call failed. `retryable` follows the SDK's classification (throttling, 5xx,
    /// timeouts and I/O are retryable; validation and access errors are not).
    #[error("{service}:{operation} failed ({code}): {message}")]
    Aws {
        service: &'static str,
        operation: &'static str,
        code: String,
        message: String,
        retryable: bool,
    },

    /// We decided not to act because acting would lose data or break a rule.
    #[error("refused: {0}")]
    Refused(String),

    /// A conditional write lost a race; re-reading and retrying converges.
    #[error("concurrent update of {0}")]
    Conflict(String),

    /// Some of the independent actions of one invocation failed.
    #[error("{failed} of {total} actions failed: {summary}")]
    Partial {
        failed: usize,
        total: usize,
        summary: String,
        retryable: bool,
    },
}

impl Error {
    pub fn retryable(&self) -> bool {
        match self {
            Error::Aws { retryable, .. } => *retryable,
            Error::Partial { retryable, .. } => *retryable,
            Error::Conflict(_) => true,
            Error::InvalidEvent(_) | Error::Config(_) | Error::Tag { .. } | Error::Refused(_) => false,
        }
    }

    /// Short machine-readable class, used as the Lambda `errorType` and in logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidEvent(_) => "InvalidEvent",
            Error::Config(_) => "InvalidConfiguration",
            Error::Tag { .. } => "InvalidTag",
            Error::Aws { retryable: true, .. } => "AwsRetryable",
            Error::Aws { retryable: false, .. } => "AwsFatal",
            Error::Refused(_) => "Refused",
            Error::Conflict(_) => "Conflict",
            Error::Partial { .. } => "PartialFailure",
        }
    }

    pub fn tag(resource: impl Into<String>, source: TagError) -> Self {
        Error::Tag { resource: resource.into(), source }
    }

    /// Convert any SDK error, keeping the service error code and the retry classification.
    pub fn aws<E>(service: &'static str, operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (code, message, retryable) = match &err {
            SdkError::ServiceError(context) => {
                let e = context.err();
                let status = context.raw().status().as_u16();
                let code = e.code().unwrap_or("Unknown").to_string();
                let retryable = is_retryable_code(&code) || status >= 500;
                (code, e.message().unwrap_or_default().to_string(), retryable)
            }
            SdkError::TimeoutError(_) => ("Timeout".into(), "the call timed out".into(), true),
            SdkError::DispatchFailure(d) => ("DispatchFailure".into(), format!("{d:?}"), true),
            SdkError::ResponseError(r) => ("ResponseError".into(), format!("{r:?}"), true),
            SdkError::ConstructionFailure(c) => ("ConstructionFailure".into(), format!("{c:?}"), false),
            _ => ("Unknown".into(), format!("{err}"), true),
        };
        Error::Aws { service, operation, code, message, retryable }
    }
}

fn is_retryable_code(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "ProvisionedThroughputExceededException"
            | "RequestThrottled"
            | "ServerException"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "InternalFailure"
            | "InternalServerError"
            | "InternalError"
            | "LimitExceededException"
            | "TransactionConflictException"
    )
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(error: Error) -> Self {
        lambda_runtime::Diagnostic { error_type: error.kind().to_string(), error_message: error.to_string() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

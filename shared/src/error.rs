//! One error type for every handler, classified by whether a retry could fix it.
//!
//! The classification drives the invocation result: retryable failures fail the invocation so
//! EventBridge/Lambda retry and the DLQ catches what never succeeds; everything else is logged.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
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

    /// The handler panicked: a defect of ours. Its message is not kept (it may quote data); the
    /// log line of the panic hook says where. Retryable: the claim is released, and the DLQ
    /// catches an event that panics every time.
    #[error("the handler panicked (a defect; the log names where)")]
    Panic,

    /// Organization mode: the function cannot act in a member account, since its role there
    /// could not be assumed (missing, trust refused, STS unreachable). That account's work fails;
    /// the others proceed.
    #[error("account {account}: cannot assume {role}: {message}")]
    Account {
        account: String,
        role: String,
        message: String,
        retryable: bool,
    },

    /// Work left undone because the invocation's deadline was near (issue 17, item 2): Lambda's
    /// retry does it, and finds what was done before (claims and records) instead of redoing it.
    #[error("left for the retry: {0}")]
    Deadline(String),

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
            Error::Account { retryable, .. } => *retryable,
            Error::Conflict(_) | Error::Panic | Error::Deadline(_) => true,
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
            Error::Panic => "Panic",
            Error::Partial { .. } => "PartialFailure",
            Error::Account { .. } => "AccountUnreachable",
            Error::Deadline(_) => "DeadlineNear",
        }
    }

    /// A copy, for one failure reported against several things (every service of a family, an
    /// account's remembered refusal). `Error` is not `Clone` (it holds parse errors); the kinds no
    /// caller copies today (parse errors, a panic, a partial failure) become a refusal with their
    /// message.
    pub fn duplicate(&self) -> Error {
        match self {
            Error::Refused(m) => Error::Refused(m.clone()),
            Error::Deadline(m) => Error::Deadline(m.clone()),
            Error::Conflict(m) => Error::Conflict(m.clone()),
            Error::Aws { service, operation, code, message, retryable } => {
                Error::Aws { service, operation, code: code.clone(), message: message.clone(), retryable: *retryable }
            }
            Error::Account { account, role, message, retryable } => Error::Account { account: account.clone(), role: role.clone(), message: message.clone(), retryable: *retryable },
            other => Error::Refused(other.to_string()),
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
            // The connector's error (I/O, TLS, timeout): it names no request or answer content.
            SdkError::DispatchFailure(d) => ("DispatchFailure".into(), d.as_connector_error().map_or_else(|| "the call could not be sent".into(), |c| DisplayErrorContext(c).to_string()), true),
            // An answer that could not be read. Its Debug form holds the raw HTTP response, body
            // and all (a task definition's environment, say): only its status is kept.
            SdkError::ResponseError(r) => ("ResponseError".into(), format!("the answer (HTTP {}) could not be read", r.raw().status().as_u16()), true),
            SdkError::ConstructionFailure(_) => ("ConstructionFailure".into(), "the request could not be built".into(), false),
            _ => ("Unknown".into(), "the call failed".into(), true),
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs as ecs;
    use aws_smithy_runtime_api::http::StatusCode;

    /// A copy keeps the kind, the message and whether a retry could help.
    #[test]
    fn a_duplicate_keeps_kind_message_and_retryability() {
        let aws = |retryable| Error::Aws { service: "ecs", operation: "UpdateService", code: "X".into(), message: "m".into(), retryable };
        let account = Error::Account { account: "111122223333".into(), role: "r".into(), message: "AccessDenied".into(), retryable: false };
        for e in [Error::Refused("r".into()), Error::Deadline("d".into()), Error::Conflict("c".into()), aws(true), aws(false), account] {
            let d = e.duplicate();
            assert_eq!((d.kind(), d.retryable(), d.to_string()), (e.kind(), e.retryable(), e.to_string()));
        }
        let panic = Error::Panic.duplicate();
        assert!(matches!(panic, Error::Refused(_)) && panic.to_string().contains("panicked"), "others keep their message");
    }
    use aws_smithy_types::body::SdkBody;

    const SECRET: &str = "s3cr3t-env-value-from-a-task-definition";

    fn ecs_answering(status: u16, body: &'static str) -> ecs::Client {
        let rule = aws_smithy_mocks::mock!(ecs::Client::describe_task_definition)
            .then_http_response(move || HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body)));
        let conf = ecs::Config::builder()
            .behavior_version(ecs::config::BehaviorVersion::latest())
            .region(ecs::config::Region::new("us-east-1"))
            .credentials_provider(ecs::config::Credentials::new("test", "test", None, None, "test"))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(aws_smithy_mocks::MockResponseInterceptor::new().with_rule(&rule))
            .retry_config(ecs::config::retry::RetryConfig::disabled())
            .build();
        ecs::Client::from_conf(conf)
    }

    /// Issue 14, item 5: an answer the SDK cannot read (here a DescribeTaskDefinition whose
    /// environment value is not the string the model says) becomes an error that keeps the HTTP
    /// status, never the raw response: its Debug form holds the whole body.
    #[tokio::test]
    async fn an_unreadable_answer_is_not_quoted_in_the_error() {
        let body = r#"{"taskDefinition": {"family": "auth", "containerDefinitions": [{"name": "app", "environment": [{"name": "DB_PASSWORD", "value": {"s3cr3t-env-value-from-a-task-definition": 1}}]}]}}"#;
        let e = ecs_answering(200, body).describe_task_definition().task_definition("auth").send().await.unwrap_err();
        assert!(matches!(e, SdkError::ResponseError(_)), "the answer must fail to parse for this test to mean something: {e:?}");
        assert!(format!("{e:?}").contains(SECRET), "the SDK's own error does carry the raw answer");
        let ours = Error::aws("ecs", "DescribeTaskDefinition", e);
        for text in [ours.to_string(), format!("{ours:?}"), lambda_runtime::Diagnostic::from(ours).error_message] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(text.contains("ResponseError") || text.contains("HTTP 200"), "{text}");
        }
    }

    /// A service error keeps AWS's code and message (they name the problem, not the payload).
    #[tokio::test]
    async fn a_service_error_keeps_code_and_message() {
        let body = r#"{"__type": "ClientException", "message": "Unable to describe task definition."}"#;
        let e = ecs_answering(400, body).describe_task_definition().task_definition("auth").send().await.unwrap_err();
        let ours = Error::aws("ecs", "DescribeTaskDefinition", e);
        assert_eq!(ours.to_string(), "ecs:DescribeTaskDefinition failed (ClientException): Unable to describe task definition.");
        assert!(!ours.retryable());
    }
}

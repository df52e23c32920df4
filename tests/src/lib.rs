//! Test harness: every integration test provisions the seed world in its own moto account
//! (TESTBED.md: an IAM user and key created with `x-moto-account-id` lives in that account), so
//! tests run in parallel against one moto server without seeing each other.
//!
//! `scripts/test` starts moto and exports `AUTOPILOT_TEST_ENDPOINT` and `AUTOPILOT_TEST_PYTHON`.
//!
//! AWS's model is the second oracle: under `scripts/test` the endpoint is `tests/proxy/aws_proxy.py
//! --validate refuse` in front of moto, which answers a request AWS would refuse (a pattern, a
//! length, an enum, a required member, a documented limit) with AWS's `ValidationException` and
//! records it under the caller's access key. Each [`World`] checks, when it is dropped, that no
//! request signed with its key was refused that way, so the test that sent it fails, naming the
//! operation, member and value (`AUTOPILOT_TEST_VALIDATING=1` turns the check on).
//!
//! What several test files set up or read the same way lives here once: [`ecr`] (pushing
//! images, push events), [`ecs`] (the standalone job and its STOPPED events, service revisions,
//! tags and state), [`cloudwatch`] (alarm transitions), [`proxy`] (a test's own fault-injecting
//! proxy) and [`lambda`] (a function binary under a local Runtime API).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use autopilot::config::Config;
use autopilot::runtime::Env;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use serde_json::Value;

pub use autopilot;

pub mod cloudwatch;
pub mod ecr;
pub mod ecs;
pub mod lambda;
pub mod proxy;
pub mod runtime_api;

/// Root of the repository (the workspace).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

pub fn moto_endpoint() -> String {
    std::env::var("AUTOPILOT_TEST_ENDPOINT").expect(
        "AUTOPILOT_TEST_ENDPOINT is not set: run the integration tests through scripts/test, which starts moto's server",
    )
}

/// moto's own endpoint, past the validating proxy: only for a test that must put into moto a
/// state AWS would refuse (a tag value ECS rejects, say) to show what the product does with it.
/// Every use says why. Without scripts/test's proxy it is the same as [`moto_endpoint`].
pub fn raw_moto_endpoint() -> String {
    std::env::var("AUTOPILOT_TEST_MOTO_ENDPOINT").unwrap_or_else(|_| moto_endpoint())
}

/// Whether the endpoint checks requests against AWS's model (scripts/test sets this).
pub fn validating() -> bool {
    std::env::var("AUTOPILOT_TEST_VALIDATING").is_ok_and(|v| v == "1")
}

/// The requests the validating proxy refused for one access key: `{"count": N, "violations": [..]}`.
pub fn model_violations(access_key_id: &str) -> Value {
    let endpoint = moto_endpoint();
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let (status, body) = proxy::http_get(addr, &format!("/__proxy/violations?account={access_key_id}"));
    assert_eq!(status, 200, "the validating proxy at {endpoint} did not answer /__proxy/violations: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/__proxy/violations is not JSON ({e}): {body}"))
}

/// The virtualenv's python (with boto3): `AUTOPILOT_TEST_PYTHON`, else `.venv/bin/python`. A
/// relative path is taken from the repository root, since cargo runs each test binary in its
/// own package directory.
pub fn python() -> PathBuf {
    match std::env::var("AUTOPILOT_TEST_PYTHON") {
        Ok(p) if p.contains('/') => repo_root().join(p),
        Ok(p) => PathBuf::from(p),
        Err(_) => repo_root().join(".venv/bin/python"),
    }
}

/// A 12-digit account id unique to this test (process id and a counter), never moto's default.
pub fn unique_account() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id() % 100_000;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() % 1000;
    format!("{}{:05}{:03}{:03}", 9, pid, nanos, n % 1000)
}

/// The seed world of DESIGN.md, provisioned by tests/seed_world.py in a fresh account.
pub struct World {
    pub account: String,
    pub region: String,
    pub endpoint: String,
    /// Everything seed_world.py printed (ARNs, names, digests).
    pub raw: Value,
    pub sdk: SdkConfig,
}

impl World {
    pub async fn seed() -> World {
        Self::seed_with(&[]).await
    }

    /// Provision with extra arguments to seed_world.py (e.g. `["--scenario", "push"]`).
    pub async fn seed_with(args: &[&str]) -> World {
        Self::seed_in(&unique_account(), args).await
    }

    /// The seed world in a given account (one an Organization created, say).
    pub async fn seed_in(account: &str, args: &[&str]) -> World {
        let account = account.to_string();
        let endpoint = moto_endpoint();
        let out = tokio::process::Command::new(python())
            .arg(repo_root().join("tests/seed_world.py"))
            .args(["--endpoint", &endpoint, "--account", &account])
            .args(args)
            .output()
            .await
            .expect("run tests/seed_world.py");
        assert!(
            out.status.success(),
            "seed_world.py failed for account {account}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let raw: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("seed_world.py printed no JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout))
        });
        let region = raw["region"].as_str().unwrap_or("us-east-1").to_string();
        let creds = Credentials::new(
            raw["access_key_id"].as_str().expect("access_key_id"),
            raw["secret_access_key"].as_str().expect("secret_access_key"),
            None,
            None,
            "seed-world",
        );
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .endpoint_url(&endpoint)
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(creds))
            .retry_config(autopilot::aws::retry_config().with_initial_backoff(Duration::from_millis(20)))
            .timeout_config(autopilot::aws::timeout_config())
            .build();
        World { account, region, endpoint, raw, sdk }
    }

    pub fn str(&self, pointer: &str) -> String {
        self.raw
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("seed world has no string at {pointer}: {}", self.raw))
            .to_string()
    }

    pub fn table(&self) -> String {
        self.str("/table_name")
    }

    pub fn topic(&self) -> String {
        self.str("/topic_arn")
    }

    pub fn queue_url(&self) -> String {
        self.str("/queue_url")
    }

    pub fn cluster_arn(&self) -> String {
        self.str("/cluster/arn")
    }

    /// Configuration as the deployed stack sets it, with the world's table and topic.
    pub fn config(&self) -> Config {
        Config {
            clusters: vec!["stage01".into()],
            state_table: Some(self.table()),
            topic_arn: Some(self.topic()),
            ..Config::default()
        }
    }

    pub fn env(&self) -> Env {
        self.env_with(self.config())
    }

    pub fn env_with(&self, config: Config) -> Env {
        Env::new(config, self.sdk.clone())
    }

    /// The functions' environment with `config` and every AWS call (state table and SNS
    /// included) through a test's own `proxy`, so that its faults hit exactly what the
    /// functions do.
    pub fn env_via(&self, proxy: &proxy::AwsProxy, config: Config) -> Env {
        Env::new(config, proxy.sdk(&self.sdk))
    }

    /// The secret-looking values seed_world.py put in the world's task definitions: no log
    /// line, outcome or notification may contain one.
    pub fn secret_values(&self) -> Vec<String> {
        let values = self.raw["secret_values"].as_array().unwrap_or_else(|| panic!("seed world has no secret_values: {}", self.raw));
        values.iter().map(|v| v.as_str().expect("a secret value is a string").to_string()).collect()
    }

    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.sdk)
    }

    /// This world's SDK configuration pointed at moto itself, past the validating proxy: see
    /// [`raw_moto_endpoint`]. Only to set up states AWS would refuse.
    pub fn raw_moto_sdk(&self) -> SdkConfig {
        self.sdk.to_builder().endpoint_url(raw_moto_endpoint()).build()
    }

    /// Environment variables to run a function binary against this world.
    pub fn lambda_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_REGION".into(), self.region.clone()),
            ("AWS_ACCESS_KEY_ID".into(), self.str("/access_key_id")),
            ("AWS_SECRET_ACCESS_KEY".into(), self.str("/secret_access_key")),
            ("AUTOPILOT_STATE_TABLE".into(), self.table()),
            ("AUTOPILOT_TOPIC_ARN".into(), self.topic()),
            ("AUTOPILOT_CLUSTERS".into(), "stage01".into()),
        ]
    }

    /// Notifications that reached the SQS inbox since the last call: (subject, chatbot body).
    pub async fn notifications(&self) -> Vec<(String, Value)> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let mut found = Vec::new();
        loop {
            let out = sqs
                .receive_message()
                .queue_url(self.queue_url())
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive notifications");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let envelope: Value = serde_json::from_str(m.body().unwrap_or("{}")).expect("SNS envelope JSON");
                let subject = envelope["Subject"].as_str().unwrap_or_default().to_string();
                let body: Value = serde_json::from_str(envelope["Message"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
                found.push((subject, body));
                if let Some(handle) = m.receipt_handle() {
                    let _ = sqs.delete_message().queue_url(self.queue_url()).receipt_handle(handle).send().await;
                }
            }
        }
        found
    }
}

impl Drop for World {
    /// A test whose requests AWS would have refused fails here, naming each one, unless it is
    /// already failing for another reason.
    fn drop(&mut self) {
        if !validating() || std::thread::panicking() {
            return;
        }
        let Some(key) = self.raw["access_key_id"].as_str() else { return };
        let found = model_violations(key);
        let count = found["count"].as_u64().unwrap_or(0);
        if count > 0 {
            let lines: Vec<String> = found["violations"]
                .as_array()
                .map(|v| v.iter().map(|x| x["message"].as_str().unwrap_or_default().to_string()).collect())
                .unwrap_or_default();
            panic!("{count} request(s) of this test would be refused by AWS (its API model):\n  {}", lines.join("\n  "));
        }
    }
}

/// A sample event from events/, with its `id` replaced so each test's deliveries are its own.
/// A FIFO queue `name` (ending `.fifo`) in `sdk`'s account, like the work queues of
/// template.yaml; its URL.
pub async fn fifo_queue(sdk: &SdkConfig, name: &str) -> String {
    aws_sdk_sqs::Client::new(sdk)
        .create_queue()
        .queue_name(name)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create the work queue")
        .queue_url
        .expect("a queue URL")
}

pub fn sample_event(file: &str) -> Value {
    let path = repo_root().join("events").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Give an event a fresh id and point its account/region at the world.
pub fn for_world(mut event: Value, world: &World) -> Value {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    event["id"] = Value::String(format!("test-{}-{}-{n}", world.account, std::process::id()));
    event["account"] = Value::String(world.account.clone());
    event["region"] = Value::String(world.region.clone());
    // Sample files name account 123456789012: rewrite ARNs and registry hosts to the world's.
    let text = event.to_string().replace("123456789012", &world.account);
    serde_json::from_str(&text).expect("rewritten event is JSON")
}

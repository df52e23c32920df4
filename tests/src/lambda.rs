//! Run a function binary under a local Lambda Runtime API: `cargo lambda watch
//! --only-lambda-apis` emulates the Runtime API, the test starts the real binary against it and
//! sends events with `cargo lambda invoke`. This is the path a deployed function takes, minus AWS.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::repo_root;

fn cargo_lambda() -> PathBuf {
    std::env::var("AUTOPILOT_TEST_CARGO_LAMBDA").map(PathBuf::from).unwrap_or_else(|_| repo_root().join(".venv/bin/cargo-lambda"))
}

/// The debug binary built by `cargo test --workspace --all-targets`.
pub fn function_binary(name: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| repo_root().join("target"));
    target.join("debug").join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A Runtime API emulator with one function process attached. Both stop on drop.
pub struct LocalLambda {
    port: u16,
    watch: Child,
    function: Child,
}

impl LocalLambda {
    pub fn start(function: &str, env: &[(String, String)]) -> LocalLambda {
        Self::start_with(function, env, None)
    }

    /// The same, with the function's stdout and stderr (its log lines) written to `log`.
    pub fn start_logging(function: &str, env: &[(String, String)], log: &Path) -> LocalLambda {
        Self::start_with(function, env, Some(log))
    }

    fn start_with(function: &str, env: &[(String, String)], log: Option<&Path>) -> LocalLambda {
        let port = free_port();
        let watch = Command::new(cargo_lambda())
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(repo_root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cargo lambda watch (is .venv/bin/cargo-lambda installed? run scripts/test)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "cargo lambda watch did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let binary = function_binary(function);
        assert!(binary.exists(), "{} is not built: run cargo test --workspace --all-targets", binary.display());
        // Named "_" unless logging: `cargo lambda invoke _` then reaches it as the default function.
        let name = if log.is_some() { function } else { "_" };
        let function = crate::runtime_api::spawn_function(&binary, &format!("http://127.0.0.1:{port}/.rt"), name, env, log);
        LocalLambda { port, watch, function }
    }

    /// Invoke once; `Ok(response)` or `Err(error payload)` as the Runtime API reported it.
    pub fn invoke(&self, event: &Value) -> Result<Value, String> {
        let file = std::env::temp_dir().join(format!("autopilot-event-{}-{}.json", std::process::id(), self.port));
        std::fs::write(&file, event.to_string()).expect("write event file");
        let out = Command::new(cargo_lambda())
            .args(["lambda", "invoke", "-A", "127.0.0.1", "-P", &self.port.to_string(), "--output-format", "json", "_", "--data-file"])
            .arg(&file)
            .current_dir(repo_root())
            .output()
            .expect("run cargo lambda invoke");
        let _ = std::fs::remove_file(&file);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() {
            serde_json::from_str(stdout.trim()).map_err(|e| format!("invoke printed no JSON ({e}): {stdout}"))
        } else {
            Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
        }
    }
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        let _ = self.function.kill();
        let _ = self.watch.kill();
        let _ = self.function.wait();
        let _ = self.watch.wait();
    }
}

//! `invoke FUNCTION EVENT.json` — run one function's handler in-process on one event, with the
//! configuration and AWS endpoint from the environment (the playground's `.playground/env`).
//! The same code path as the Lambda, minus the Runtime API; `cargo lambda watch` covers that.

use autopilot::runtime::{Env, Function};
use autopilot::Config;
use serde_json::Value;

async fn run<F: Function>(env: Env, event: Value) -> Result<Value, autopilot::Error> {
    F::new(env).handle(event).await
}

#[tokio::main(flavor = "current_thread")] // as the functions run it
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(function), Some(path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: invoke deployer|recovery|scaler EVENT.json|-");
        std::process::exit(2);
    };
    let text = if path == "-" { std::io::read_to_string(std::io::stdin()) } else { std::fs::read_to_string(path) };
    let event: Value = match text.map_err(|e| e.to_string()).and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string())) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("cannot read event {path}: {e}");
            std::process::exit(2);
        }
    };
    let config = Config::from_env().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    autopilot::runtime::init_logging();
    let env = Env::load(config).await;
    let result = match function.as_str() {
        "deployer" => run::<autopilot_deployer::Deployer>(env, event).await,
        "recovery" => run::<autopilot_recovery::Recovery>(env, event).await,
        "scaler" => run::<autopilot_scaler::Scaler>(env, event).await,
        other => {
            eprintln!("unknown function {other:?}: expected deployer, recovery or scaler");
            std::process::exit(2);
        }
    };
    match result {
        Ok(outcome) => println!("{}", serde_json::to_string_pretty(&outcome).unwrap_or_default()),
        Err(e) => {
            eprintln!("{} ({}): {e}", function, e.kind());
            std::process::exit(1);
        }
    }
}

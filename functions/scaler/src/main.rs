#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    autopilot::runtime::serve::<autopilot_scaler::Scaler>().await
}

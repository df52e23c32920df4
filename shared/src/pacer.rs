//! In-process copies of ECS's per-account token buckets ("Request throttling for the Amazon ECS
//! API", https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html), so
//! that a fan-out or a discovery waits for tokens instead of being throttled and retried against
//! the same bucket.

use std::time::{Duration, Instant};

/// An in-process copy of one of ECS's per-account token buckets, so that calls past the burst
/// wait for a token instead of being throttled, retried and counted against the bucket again.
/// Other callers in the account share the real bucket: the SDK still retries a throttle.
pub struct Pacer {
    burst: f64,
    per_second: f64,
    state: tokio::sync::Mutex<(f64, Instant)>,
}

impl Pacer {
    pub fn new(burst: u32, per_second: u32) -> Self {
        Pacer { burst: burst.into(), per_second: per_second.into(), state: tokio::sync::Mutex::new((burst.into(), Instant::now())) }
    }

    /// RegisterTaskDefinition: burst 20, refill 1/s.
    pub fn register() -> Self {
        Self::new(20, 1)
    }

    /// UpdateService: burst 50, refill 5/s.
    pub fn update() -> Self {
        Self::new(50, 5)
    }

    /// DescribeServices and ListServices (one bucket): burst 100, refill 20/s. A discovery of
    /// 10,000 services (1,000 DescribeServices) takes ~45 s at this pace, and is throttled to a
    /// failure without it (scripts/bench, big-account row).
    pub fn service_read() -> Self {
        Self::new(100, 20)
    }

    /// DescribeTaskDefinition: burst 50, refill 20/s.
    pub fn task_definition_read() -> Self {
        Self::new(50, 20)
    }

    pub async fn acquire(&self) {
        let mut s = self.state.lock().await;
        let now = Instant::now();
        s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.per_second).min(self.burst);
        s.1 = now;
        if s.0 < 1.0 {
            // Waiting with the lock held keeps the waiters in order.
            tokio::time::sleep(Duration::from_secs_f64((1.0 - s.0) / self.per_second)).await;
            s.0 = 1.0;
            s.1 = Instant::now();
        }
        s.0 -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pacer_spends_the_burst_then_waits_for_the_refill() {
        let pacer = Pacer::new(2, 20); // a token every 50 ms
        let start = Instant::now();
        pacer.acquire().await;
        pacer.acquire().await;
        let burst = start.elapsed();
        pacer.acquire().await;
        let third = start.elapsed();
        assert!(burst < Duration::from_millis(45), "the burst is free: {burst:?}");
        assert!(third >= Duration::from_millis(45), "past the burst a call waits for a token: {third:?}");
    }
}

//! A small per-container memory of values that go stale: what a Lambda container may reuse
//! across invocations for a while (an alarm's tags, a service's opt-in, a refused role).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Values by key, each trusted for `ttl` after it was put.
pub struct Expiring<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> Expiring<V> {
    pub fn new(ttl: Duration) -> Self {
        Expiring { ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// The value put under `key` less than `ttl` ago.
    pub fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    pub fn put(&self, key: &str, value: V) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_string(), (Instant::now(), value));
    }

    pub fn remove(&self, key: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_trusted_for_its_ttl_only() {
        let fresh = Expiring::new(Duration::from_secs(60));
        fresh.put("a", 1);
        assert_eq!((fresh.get("a"), fresh.get("b")), (Some(1), None));
        fresh.remove("a");
        assert_eq!(fresh.get("a"), None);
        let stale = Expiring::new(Duration::ZERO);
        stale.put("a", 1);
        assert_eq!(stale.get("a"), None, "past its ttl");
    }
}

//! A tenant's token quota: one token bucket per window (a second's tokens refilled every second,
//! a minute's every minute). A request is let in while every bucket is above zero and is then
//! charged its real tokens, which may take a bucket below zero: the debt is what the next request
//! waits for, and its `Retry-After`. Enforced per replica (the README shows how to split a total).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The quota as configured, tokens per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSpec {
    pub per_second: Option<u64>,
    pub per_minute: Option<u64>,
}

/// The tenant is over its quota: retry after this long (429).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("over the token quota")]
pub struct OverQuota {
    pub retry_after: Duration,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens per second refilled, and the most it holds.
    rate: f64,
    capacity: f64,
    level: f64,
}

/// The live buckets of one tenant.
#[derive(Debug)]
pub struct Quota {
    spec: QuotaSpec,
    state: Mutex<(Vec<Bucket>, Instant)>,
}

impl Quota {
    /// Full buckets for `spec`.
    pub fn new(spec: QuotaSpec) -> Self {
        let mut buckets = Vec::new();
        if let Some(n) = spec.per_second {
            buckets.push(Bucket { rate: n as f64, capacity: n as f64, level: n as f64 });
        }
        if let Some(n) = spec.per_minute {
            buckets.push(Bucket { rate: n as f64 / 60.0, capacity: n as f64, level: n as f64 });
        }
        Self { spec, state: Mutex::new((buckets, Instant::now())) }
    }

    pub fn spec(&self) -> QuotaSpec {
        self.spec
    }

    /// Ok while every bucket holds tokens; else how long until the emptiest is above zero.
    pub fn check(&self) -> Result<(), OverQuota> {
        self.check_at(Instant::now())
    }

    /// Takes `tokens` from every bucket (possibly below zero).
    pub fn charge(&self, tokens: usize) {
        self.charge_at(tokens, Instant::now());
    }

    fn refill(state: &mut (Vec<Bucket>, Instant), now: Instant) {
        let elapsed = now.saturating_duration_since(state.1).as_secs_f64();
        for b in &mut state.0 {
            b.level = (b.level + elapsed * b.rate).min(b.capacity);
        }
        state.1 = state.1.max(now);
    }

    fn check_at(&self, now: Instant) -> Result<(), OverQuota> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Self::refill(&mut state, now);
        let wait = state.0.iter().filter(|b| b.level <= 0.0).map(|b| (-b.level + 1.0) / b.rate).fold(0.0, f64::max);
        if wait > 0.0 {
            return Err(OverQuota { retry_after: Duration::from_secs(wait.ceil().max(1.0) as u64) });
        }
        Ok(())
    }

    fn charge_at(&self, tokens: usize, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Self::refill(&mut state, now);
        for b in &mut state.0 {
            b.level -= tokens as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_in_while_positive_and_advises_the_refill_time() {
        let t0 = Instant::now();
        let q = Quota::new(QuotaSpec { per_second: Some(100), per_minute: None });
        assert!(q.check_at(t0).is_ok());
        q.charge_at(350, t0);
        // 250 tokens of debt at 100/s: about 2.5 s, rounded up.
        assert_eq!(q.check_at(t0), Err(OverQuota { retry_after: Duration::from_secs(3) }));
        assert!(q.check_at(t0 + Duration::from_millis(2600)).is_ok());
        // Refills stop at the capacity: a quiet tenant cannot bank more than a window's tokens.
        let later = t0 + Duration::from_secs(100);
        q.charge_at(100, later);
        assert!(q.check_at(later).is_err());
    }

    #[test]
    fn every_window_must_have_tokens() {
        let t0 = Instant::now();
        let q = Quota::new(QuotaSpec { per_second: Some(1000), per_minute: Some(600) });
        q.charge_at(700, t0);
        // The second's bucket has 300 left; the minute's is 100 in debt at 10/s: about 10 s.
        let after = q.check_at(t0 + Duration::from_millis(10)).unwrap_err().retry_after;
        assert!((Duration::from_secs(10)..=Duration::from_secs(11)).contains(&after), "{after:?}");
    }
}

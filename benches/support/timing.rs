//! What every bench repeats: reading its settings from the environment and timing a call over
//! about N seconds (`#[path]` module; each bench uses part of it).
#![allow(dead_code)]

use std::str::FromStr;
use std::time::{Duration, Instant};

/// Seconds per call of `f`, run for about `seconds` (and at least 3 times) after one warm-up call.
pub fn per_call(seconds: f64, mut f: impl FnMut()) -> f64 {
    f();
    let started = Instant::now();
    let mut runs = 0u32;
    while started.elapsed() < Duration::from_secs_f64(seconds) || runs < 3 {
        f();
        runs += 1;
    }
    started.elapsed().as_secs_f64() / f64::from(runs)
}

/// The environment variable `name` parsed, or `default` where it is unset or does not parse.
pub fn env<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The comma-separated numbers of the environment variable `name`, or of `default` where it is unset.
pub fn list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name).unwrap_or_else(|_| default.into()).split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

//! Counters for one app's traffic since the host started: responses by status class,
//! refusals by quota, time to the response head, and requests in flight.

use crate::quotas::Refusal;
use http::StatusCode;
use serde::Serialize;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Default)]
pub struct AppStats {
    /// Responses with status 1xx..5xx, indexed by the first digit minus one.
    by_class: [AtomicU64; 5],
    refused_rate: AtomicU64,
    refused_concurrency: AtomicU64,
    /// Sum of times to the response head, in microseconds.
    head_micros: AtomicU64,
    /// Times to the response head, counted in the first bucket of [`LATENCY_BUCKETS`]
    /// they fit (the last one counts the rest).
    head_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Requests admitted whose response has not been sent yet.
    in_flight: AtomicI64,
}

/// Upper bounds of the latency histogram's buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A snapshot, as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub responses_1xx: u64,
    pub responses_2xx: u64,
    pub responses_3xx: u64,
    pub responses_4xx: u64,
    pub responses_5xx: u64,
    pub refused_over_rate: u64,
    pub refused_over_concurrency: u64,
    /// Mean time from the request to the response head, in microseconds.
    pub mean_head_micros: u64,
    /// Requests admitted whose response is still being sent.
    pub in_flight: i64,
}

impl AppStats {
    pub fn count_response(&self, status: StatusCode, elapsed: Duration) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.head_micros.fetch_add(micros, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.head_buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// A request is in flight from `enter` to `leave`.
    pub fn enter(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The latency histogram: the sum in seconds, and the count in each bucket by its
    /// upper bound (the last one's is `f64::MAX`, for everything longer).
    pub fn latency_histogram(&self) -> (f64, Vec<(f64, u64)>) {
        let buckets = self
            .head_buckets
            .iter()
            .enumerate()
            .map(|(i, count)| {
                let bound = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::MAX);
                (bound, count.load(Ordering::Relaxed))
            })
            .collect();
        let sum = self.head_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (sum, buckets)
    }

    /// Responses by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub fn by_class(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.by_class[i].load(Ordering::Relaxed))
    }

    /// Refusals: `(over the rate, over the concurrency)`.
    pub fn refusals_by_quota(&self) -> (u64, u64) {
        (
            self.refused_rate.load(Ordering::Relaxed),
            self.refused_concurrency.load(Ordering::Relaxed),
        )
    }

    pub fn count_refusal(&self, refusal: Refusal) {
        match refusal {
            Refusal::Rate => &self.refused_rate,
            Refusal::Concurrency => &self.refused_concurrency,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered so far, by the app or by a refusal.
    pub fn answered(&self) -> u64 {
        self.by_class().iter().sum::<u64>() + self.refusals()
    }

    /// Requests refused by a quota so far.
    pub fn refusals(&self) -> u64 {
        self.refused_rate.load(Ordering::Relaxed) + self.refused_concurrency.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let class = |i: usize| self.by_class[i].load(Ordering::Relaxed);
        let served: u64 = (0..5).map(class).sum();
        let refused_rate = self.refused_rate.load(Ordering::Relaxed);
        let refused_concurrency = self.refused_concurrency.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: served + refused_rate + refused_concurrency,
            responses_1xx: class(0),
            responses_2xx: class(1),
            responses_3xx: class(2),
            responses_4xx: class(3),
            responses_5xx: class(4),
            refused_over_rate: refused_rate,
            refused_over_concurrency: refused_concurrency,
            mean_head_micros: self
                .head_micros
                .load(Ordering::Relaxed)
                .checked_div(served)
                .unwrap_or(0),
            in_flight: self.in_flight(),
        }
    }
}

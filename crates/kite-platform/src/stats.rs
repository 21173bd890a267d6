//! Counters for one app's traffic since the host started: responses by status class,
//! refusals by quota, and time to the response head.

use crate::quotas::Refusal;
use http::StatusCode;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Default)]
pub struct AppStats {
    /// Responses with status 1xx..5xx, indexed by the first digit minus one.
    by_class: [AtomicU64; 5],
    refused_rate: AtomicU64,
    refused_concurrency: AtomicU64,
    /// Sum of times to the response head, in microseconds.
    head_micros: AtomicU64,
}

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
}

impl AppStats {
    pub fn count_response(&self, status: StatusCode, elapsed: Duration) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.head_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn count_refusal(&self, refusal: Refusal) {
        match refusal {
            Refusal::Rate => &self.refused_rate,
            Refusal::Concurrency => &self.refused_concurrency,
        }
        .fetch_add(1, Ordering::Relaxed);
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
        }
    }
}

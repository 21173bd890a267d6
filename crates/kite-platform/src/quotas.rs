//! Per-app quotas the operator sets, and their enforcement on the request path: a token
//! bucket for requests per second and a cap on concurrent requests, both refused at once.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Quotas as set for one app; an unset field takes the host's default.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Requests of this app being served at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Linear memory per instance, in bytes; never above the host's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// Sustained requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    /// Requests allowed at once above the sustained rate (default: one second's worth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Bytes of file content in one bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_size: Option<u64>,
    /// Bytes each of the app's stores and databases may grow to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_size: Option<u64>,
}

impl Quotas {
    /// `self`, with unset fields taken from `defaults`, and memory capped at `max_memory`.
    pub fn effective(&self, defaults: &Quotas, max_memory: u64) -> Quotas {
        Quotas {
            max_concurrency: self.max_concurrency.or(defaults.max_concurrency),
            memory: Some(
                self.memory
                    .or(defaults.memory)
                    .unwrap_or(max_memory)
                    .min(max_memory),
            ),
            requests_per_second: self.requests_per_second.or(defaults.requests_per_second),
            burst: self.burst.or(defaults.burst),
            bundle_size: self.bundle_size.or(defaults.bundle_size),
            store_size: self.store_size.or(defaults.store_size),
        }
    }

    /// Applies a JSON object of changes: a number sets a quota, `null` unsets it (the
    /// host's default applies again); fields not named stay as they are.
    pub fn apply(
        &mut self,
        changes: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), String> {
        for (field, value) in changes {
            let number = match value {
                serde_json::Value::Null => None,
                serde_json::Value::Number(n) => Some(n.as_u64().ok_or_else(|| {
                    format!("quota `{field}`: expected a whole number of at least 0, got {n}")
                })?),
                other => {
                    return Err(format!(
                        "quota `{field}`: expected a number or null, got {other}"
                    ))
                }
            };
            let small = |n: Option<u64>| {
                n.map(u32::try_from)
                    .transpose()
                    .map_err(|_| format!("quota `{field}`: at most {}", u32::MAX))
            };
            match field.as_str() {
                "max_concurrency" => self.max_concurrency = small(number)?,
                "requests_per_second" => self.requests_per_second = small(number)?,
                "burst" => self.burst = small(number)?,
                "memory" => self.memory = number,
                "bundle_size" => self.bundle_size = number,
                "store_size" => self.store_size = number,
                _ => return Err(format!(
                    "unknown quota `{field}`: the quotas are max_concurrency, requests_per_second, burst, memory, bundle_size and store_size"
                )),
            }
        }
        Ok(())
    }
}

/// Why a request was refused before it reached the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over `requests_per_second` (429).
    Rate,
    /// At `max_concurrency` (503).
    Concurrency,
}

impl Refusal {
    /// The status to answer with, and the one-line reason, naming `app` and its quota.
    pub fn describe(self, app: &str, quotas: &Quotas) -> (http::StatusCode, String) {
        match self {
            Refusal::Rate => (
                http::StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "app `{app}` is over its quota of {} requests per second",
                    quotas.requests_per_second.unwrap_or(0)
                ),
            ),
            Refusal::Concurrency => (
                http::StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "app `{app}` is at its quota of {} concurrent requests",
                    quotas.max_concurrency.unwrap_or(0)
                ),
            ),
        }
    }
}

/// The request-path side of one app's effective quotas.
pub struct QuotaGate {
    rate: Option<Mutex<TokenBucket>>,
    concurrency: Option<Arc<Semaphore>>,
    pub quotas: Quotas,
}

/// Held while a request is served; its place goes back when dropped.
pub struct Admission(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl QuotaGate {
    pub fn new(quotas: Quotas) -> Self {
        QuotaGate {
            rate: quotas.requests_per_second.map(|rate| {
                let burst = quotas.burst.unwrap_or(rate).max(1);
                Mutex::new(TokenBucket::new(rate, burst))
            }),
            concurrency: quotas
                .max_concurrency
                .map(|n| Arc::new(Semaphore::new(n as usize))),
            quotas,
        }
    }

    /// Admits one request, or says which quota refuses it.
    pub fn admit(&self) -> Result<Admission, Refusal> {
        if let Some(bucket) = &self.rate {
            let mut bucket = bucket.lock().unwrap_or_else(|p| p.into_inner());
            if !bucket.take(Instant::now()) {
                return Err(Refusal::Rate);
            }
        }
        match &self.concurrency {
            None => Ok(Admission(None)),
            Some(places) => places
                .clone()
                .try_acquire_owned()
                .map(|permit| Admission(Some(permit)))
                .map_err(|_| Refusal::Concurrency),
        }
    }
}

/// `rate` tokens a second, holding at most `burst`.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32) -> Self {
        TokenBucket {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            updated: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 3);
        bucket.updated = start;
        assert!((0..3).all(|_| bucket.take(start)));
        assert!(!bucket.take(start));
        // A tenth of a second buys one more request.
        assert!(bucket.take(start + Duration::from_millis(100)));
        assert!(!bucket.take(start + Duration::from_millis(100)));
    }

    #[test]
    fn effective_quotas_fill_from_defaults_and_cap_memory() {
        let defaults = Quotas {
            memory: Some(64 << 20),
            requests_per_second: Some(100),
            ..Quotas::default()
        };
        let set = Quotas {
            memory: Some(1 << 30),
            ..Quotas::default()
        };
        let effective = set.effective(&defaults, 128 << 20);
        assert_eq!(effective.memory, Some(128 << 20));
        assert_eq!(effective.requests_per_second, Some(100));
        assert_eq!(
            Quotas::default().effective(&defaults, 128 << 20).memory,
            Some(64 << 20)
        );
    }
}

//! `/metrics`: the host's and every app's counters in Prometheus text format, read from
//! the atomics the request path keeps (nothing on that path knows about Prometheus).

use crate::platform::Platform;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The metrics as Prometheus text.
pub fn render(platform: &Arc<Platform>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(HostCollector(platform.clone())));
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::error!("encoding metrics: {e}");
    }
    text
}

struct HostCollector(Arc<Platform>);

impl std::fmt::Debug for HostCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostCollector")
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Vec<(&str, &str)>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Vec<(&str, &str)>, i64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

/// One host-wide value, without labels.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl Into<Single>,
) -> Result<(), std::fmt::Error> {
    match value.into() {
        Single::Counter(v) => ConstCounter::new(v).encode(encoder.encode_descriptor(
            name,
            help,
            None,
            MetricType::Counter,
        )?),
        Single::Gauge(v) => ConstGauge::new(v).encode(encoder.encode_descriptor(
            name,
            help,
            None,
            MetricType::Gauge,
        )?),
    }
}

enum Single {
    Counter(u64),
    Gauge(i64),
}

impl From<u64> for Single {
    fn from(v: u64) -> Self {
        Single::Counter(v)
    }
}

impl From<i64> for Single {
    fn from(v: i64) -> Self {
        Single::Gauge(v)
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl Collector for HostCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let platform = &self.0;
        let apps = platform.host.apps();
        let names: Vec<Arc<str>> = apps.iter().map(|(app, _)| app.name.clone()).collect();
        let per_app = |value: &dyn Fn(usize) -> u64| -> Vec<(Vec<(&str, &str)>, u64)> {
            names
                .iter()
                .enumerate()
                .map(|(i, name)| (vec![("app", name.as_ref())], value(i)))
                .collect()
        };

        let mut responses = Vec::new();
        for (app, _) in &apps {
            let by_class = app.stats.by_class();
            for (class, count) in CLASSES.iter().zip(by_class) {
                responses.push((vec![("app", app.name.as_ref()), ("class", *class)], count));
            }
        }
        counter(
            &mut encoder,
            "kite_app_responses",
            "Responses an app's components gave, by status class.",
            &responses,
        )?;
        let mut refused = Vec::new();
        for (app, _) in &apps {
            let (rate, concurrency) = app.stats.refusals_by_quota();
            refused.push((vec![("app", app.name.as_ref()), ("quota", "rate")], rate));
            refused.push((
                vec![("app", app.name.as_ref()), ("quota", "concurrency")],
                concurrency,
            ));
        }
        counter(
            &mut encoder,
            "kite_app_quota_refusals",
            "Requests refused before reaching the app, by the quota that refused them.",
            &refused,
        )?;
        counter(
            &mut encoder,
            "kite_app_traps",
            "Requests whose guest trapped or exited with an error.",
            &per_app(&|i| apps[i].0.failures.traps.load(Ordering::Relaxed)),
        )?;
        counter(
            &mut encoder,
            "kite_app_timeouts",
            "Requests whose guest ran past its deadline.",
            &per_app(&|i| apps[i].0.failures.timeouts.load(Ordering::Relaxed)),
        )?;
        counter(
            &mut encoder,
            "kite_app_no_instance_slot",
            "Requests refused because every instance slot of the host was in use.",
            &per_app(&|i| apps[i].0.failures.overloaded.load(Ordering::Relaxed)),
        )?;
        let in_flight: Vec<_> = names
            .iter()
            .zip(&apps)
            .map(|(name, (app, _))| (vec![("app", name.as_ref())], app.stats.in_flight()))
            .collect();
        gauge(
            &mut encoder,
            "kite_app_in_flight",
            "Requests an app is serving now (each in an instance of its own).",
            &in_flight,
        )?;
        {
            let mut metric = encoder.encode_descriptor(
                "kite_app_response_head_seconds",
                "Time from a request's arrival to its response head.",
                None,
                MetricType::Histogram,
            )?;
            for (app, _) in &apps {
                let (sum, buckets) = app.stats.latency_histogram();
                let count = buckets.iter().map(|(_, c)| c).sum();
                let labels = [("app", app.name.as_ref())];
                metric
                    .encode_family(&labels)?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        sum, count, &buckets, None,
                    )?;
            }
        }

        let engine = platform.engine();
        if let Some(pool) = engine.engine().pooling_allocator_metrics() {
            single(
                &mut encoder,
                "kite_instance_slots_in_use",
                "Instance slots of the shared pool in use (instances running or built ahead).",
                pool.component_instances() as i64,
            )?;
        }
        single(
            &mut encoder,
            "kite_instances_ahead",
            "Instances built ahead of requests, across all apps (bounded to a quarter of the slots).",
            platform.instances_ahead() as i64,
        )?;
        let (hits, misses) = engine.compile_hits_and_misses();
        single(
            &mut encoder,
            "kite_compile_cache_hits",
            "Component loads that found a compilation: shared with another app or version, or in the compile cache.",
            hits,
        )?;
        single(
            &mut encoder,
            "kite_compile_cache_misses",
            "Component loads that compiled.",
            misses,
        )?;
        single(
            &mut encoder,
            "kite_apps_deployed",
            "Apps serving traffic.",
            apps.len() as i64,
        )?;
        Ok(())
    }
}

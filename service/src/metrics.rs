//! Metrics for `/metrics`, the same way in every service: one `prometheus-client` registry
//! per service, rendered in Prometheus' text format (0.0.4).
//!
//! A service lists its metrics once, with [`service_metrics!`](crate::service_metrics):
//! the field, its type, its exported name and its help line. Counters are exported with
//! `_total` appended, so a counter listed as `"connections"` reads
//! `isoplane_signaling_connections_total`. The metrics are atomics: the packet and
//! message paths bump them without locks, and a scrape reads whatever values they hold.
//!
//! A core that keeps plain numbers (TURN's sans-IO core) copies a snapshot into a fresh
//! [`Registry`] at scrape time instead.

pub use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
pub use prometheus_client::metrics::family::Family;

/// A counter: only grows.
pub type Counter = prometheus_client::metrics::counter::Counter<u64>;
/// A gauge: a value that goes up and down.
pub type Gauge = prometheus_client::metrics::gauge::Gauge<i64, std::sync::atomic::AtomicI64>;

/// The `Content-Type` of [`Registry::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A service's metrics, under a name prefix (`isoplane_sfu`), or none.
#[derive(Debug, Default)]
pub struct Registry {
    inner: prometheus_client::registry::Registry,
}

impl Registry {
    /// Metrics named `{prefix}_{name}`.
    pub fn with_prefix(prefix: &str) -> Registry {
        Registry { inner: prometheus_client::registry::Registry::with_prefix(prefix) }
    }

    /// Adds `metric` (a [`Counter`], [`Gauge`] or [`Family`]) under `name`, and hands it
    /// back for the caller to keep.
    pub fn register<M>(&mut self, name: &str, help: &str, metric: M) -> M
    where
        M: prometheus_client::registry::Metric + Clone,
    {
        // The encoder ends every help line with a full stop of its own.
        self.inner.register(name, help.trim_end_matches('.'), metric.clone());
        metric
    }

    /// A new counter holding `value` (for snapshots).
    pub fn counter_at(&mut self, name: &str, help: &str, value: u64) {
        self.register(name, help, Counter::default()).inc_by(value);
    }

    /// A new gauge holding `value` (for snapshots).
    pub fn gauge_at(&mut self, name: &str, help: &str, value: i64) {
        self.register(name, help, Gauge::default()).set(value);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.inner);
        text
    }
}

/// Declares a service's metrics struct: each field with its type, exported name and help.
/// The struct gets `new()` (and `Default`), which registers every field, and `render()`.
///
/// The field types are named in the caller's scope:
///
/// ```
/// use isoplane_service::metrics::{Counter, Gauge};
///
/// isoplane_service::service_metrics! {
///     /// What this example exports.
///     pub struct ExampleMetrics("isoplane_example") {
///         /// Requests answered.
///         pub requests: Counter = "requests", "Requests answered";
///         pub open: Gauge = "connections", "Connections open";
///     }
/// }
/// let metrics = ExampleMetrics::new();
/// metrics.requests.inc();
/// assert!(metrics.render().contains("isoplane_example_requests_total 1\n"));
/// ```
#[macro_export]
macro_rules! service_metrics {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident ($prefix:literal) {
            $( $(#[$field_meta:meta])* $field_vis:vis $field:ident : $type:ty = $metric:literal, $help:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug)]
        $vis struct $name {
            registry: $crate::metrics::Registry,
            $( $(#[$field_meta])* $field_vis $field: $type, )*
        }

        impl $name {
            /// Every metric, registered and at zero.
            pub fn new() -> Self {
                let mut registry = $crate::metrics::Registry::with_prefix($prefix);
                $( let $field = registry.register($metric, $help, <$type>::default()); )*
                Self { registry, $( $field, )* }
            }

            /// The Prometheus text exposition of every metric.
            pub fn render(&self) -> String {
                self.registry.render()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
    struct Route {
        route: &'static str,
    }

    crate::service_metrics! {
        struct Example("isoplane_example") {
            sent: Counter = "sent", "Things sent";
            open: Gauge = "open", "Things open";
            by_route: Family<Route, Counter> = "requests", "Requests by route";
        }
    }

    #[test]
    fn counters_gauges_and_families_render_in_prometheus_text() {
        let metrics = Example::new();
        metrics.sent.inc_by(3);
        metrics.open.inc();
        metrics.open.inc();
        metrics.open.dec();
        metrics.by_route.get_or_create(&Route { route: "/healthz" }).inc();
        let text = metrics.render();
        assert!(text.contains("# TYPE isoplane_example_sent_total counter\nisoplane_example_sent_total 3\n"), "{text}");
        assert!(text.contains("# TYPE isoplane_example_open gauge\nisoplane_example_open 1\n"), "{text}");
        assert!(text.contains("isoplane_example_requests_total{route=\"/healthz\"} 1\n"), "{text}");
        assert!(!text.contains("# EOF"), "Prometheus text, not OpenMetrics: {text}");
    }

    #[test]
    fn a_snapshot_renders_without_a_prefix() {
        let mut registry = Registry::default();
        registry.counter_at("turn_allocations_created", "Allocations created.", 5);
        registry.gauge_at("turn_allocations", "Allocations alive now.", 2);
        let text = registry.render();
        assert!(text.contains("turn_allocations_created_total 5\n"), "{text}");
        assert!(text.contains("turn_allocations 2\n"), "{text}");
    }
}

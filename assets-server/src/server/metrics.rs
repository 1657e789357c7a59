//! Counters for `/metrics`, in Prometheus' text format.
//!
//! Plain atomics, bumped by handlers without locks; a scrape reads whatever values they
//! have at that moment. Requests are counted by route template (a fixed list, so the
//! label set stays bounded) and status class.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Route templates, as registered in the router; anything else counts as `unmatched`.
pub const ROUTES: [&str; 10] = [
    "/assets/{id}",
    "/v1/assets",
    "/v1/workspaces/{workspace}/worlds",
    "/v1/workspaces/{workspace}/worlds/{name}",
    "/v1/workspaces/{workspace}/worlds/{name}/versions",
    "/v1/workspaces/{workspace}/worlds/{name}/current",
    "/healthz",
    "/readyz",
    "/metrics",
    "unmatched",
];

/// Every metric the asset server exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// `[route][status class 1xx..5xx]`.
    requests: [[AtomicU64; 5]; ROUTES.len()],
    pub bytes_served: AtomicU64,
    pub not_modified: AtomicU64,
    pub partial_responses: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub uploads_created: AtomicU64,
    pub uploads_duplicate: AtomicU64,
    pub upload_bytes: AtomicU64,
    pub rejected_too_large: AtomicU64,
    pub rejected_media_type: AtomicU64,
    pub rejected_interrupted: AtomicU64,
    pub auth_failures: AtomicU64,
    pub world_publishes: AtomicU64,
    pub world_conflicts: AtomicU64,
    pub world_rejections: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    /// Counts one answered request.
    pub fn request(&self, route: Option<&str>, status: u16) {
        let index = route.and_then(|r| ROUTES.iter().position(|known| *known == r)).unwrap_or(ROUTES.len() - 1);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[index][class].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP isoplane_assets_http_requests_total HTTP requests answered, by route and status class\n");
        out.push_str("# TYPE isoplane_assets_http_requests_total counter\n");
        for (route, classes) in ROUTES.iter().zip(&self.requests) {
            for (class, counter) in classes.iter().enumerate() {
                let value = counter.load(Ordering::Relaxed);
                if value > 0 {
                    let _ = writeln!(
                        out,
                        "isoplane_assets_http_requests_total{{route=\"{route}\",status=\"{}xx\"}} {value}",
                        class + 1
                    );
                }
            }
        }
        let counters: [(&str, &str, &AtomicU64); 15] = [
            ("bytes_served_total", "asset body bytes sent", &self.bytes_served),
            ("not_modified_total", "asset requests answered 304 Not Modified", &self.not_modified),
            ("partial_responses_total", "asset requests answered 206 with a range", &self.partial_responses),
            ("cache_hits_total", "asset requests answered from memory", &self.cache_hits),
            ("cache_misses_total", "asset requests that read the database or the store", &self.cache_misses),
            ("uploads_created_total", "uploads that stored a new asset", &self.uploads_created),
            ("uploads_duplicate_total", "uploads of bytes already stored (no-ops)", &self.uploads_duplicate),
            ("upload_bytes_total", "bytes received in accepted uploads", &self.upload_bytes),
            ("upload_rejected_too_large_total", "uploads refused for their size (413)", &self.rejected_too_large),
            (
                "upload_rejected_media_type_total",
                "uploads refused for their media type (415)",
                &self.rejected_media_type,
            ),
            ("upload_interrupted_total", "uploads whose client stopped mid-body", &self.rejected_interrupted),
            ("auth_failures_total", "write requests refused for their token (401/403)", &self.auth_failures),
            ("world_publishes_total", "world versions published", &self.world_publishes),
            ("world_conflicts_total", "publishes or pointer moves refused as stale (409)", &self.world_conflicts),
            ("world_rejections_total", "world files refused as invalid (422)", &self.world_rejections),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(out, "# HELP isoplane_assets_{name} {help}");
            let _ = writeln!(out, "# TYPE isoplane_assets_{name} counter");
            let _ = writeln!(out, "isoplane_assets_{name} {}", counter.load(Ordering::Relaxed));
        }
        out
    }
}

//! Metrics for `/metrics` (isoplane-service's registry): atomics bumped by handlers
//! without locks; a scrape reads whatever values they have at that moment. Requests are
//! counted by route template (a fixed list, so the label set stays bounded) and status
//! class.

use isoplane_service::metrics::{Counter, EncodeLabelSet, Family, Gauge};

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

/// The labels of `http_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    route: &'static str,
    status: &'static str,
}

isoplane_service::service_metrics! {
    /// Every metric the asset server exports.
    pub struct Metrics("isoplane_assets") {
        requests: Family<RequestLabels, Counter> = "http_requests", "HTTP requests answered, by route and status class";
        pub bytes_served: Counter = "bytes_served", "asset body bytes sent";
        pub not_modified: Counter = "not_modified", "asset requests answered 304 Not Modified";
        pub partial_responses: Counter = "partial_responses", "asset requests answered 206 with a range";
        pub cache_hits: Counter = "cache_hits", "asset requests answered from memory";
        pub cache_misses: Counter = "cache_misses", "asset requests that read the database or the store";
        pub cache_bytes: Gauge = "cache_bytes", "asset bytes held in memory";
        pub uploads_created: Counter = "uploads_created", "uploads that stored a new asset";
        pub uploads_duplicate: Counter = "uploads_duplicate", "uploads of bytes already stored (no-ops)";
        pub upload_bytes: Counter = "upload_bytes", "bytes received in accepted uploads";
        pub rejected_too_large: Counter = "upload_rejected_too_large", "uploads refused for their size (413)";
        pub rejected_media_type: Counter = "upload_rejected_media_type", "uploads refused for their media type (415)";
        pub rejected_interrupted: Counter = "upload_interrupted", "uploads whose client stopped mid-body";
        pub auth_failures: Counter = "auth_failures", "write requests refused for their token (401/403)";
        pub world_publishes: Counter = "world_publishes", "world versions published";
        pub world_conflicts: Counter = "world_conflicts", "publishes or pointer moves refused as stale (409)";
        pub world_rejections: Counter = "world_rejections", "world files refused as invalid (422)";
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, route: Option<&str>, status: u16) {
        const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
        let route = route.and_then(|r| ROUTES.iter().find(|known| **known == r)).unwrap_or(&ROUTES[ROUTES.len() - 1]);
        let class = CLASSES[usize::from(status / 100).clamp(1, 5) - 1];
        self.requests.get_or_create(&RequestLabels { route, status: class }).inc();
    }
}

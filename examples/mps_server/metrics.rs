//! `GET /metrics`: the publisher's figures in the Prometheus text format, through the
//! `metrics` facade and `metrics-exporter-prometheus` (with the crate's `metrics` feature:
//! `cargo run --example mps_server --features metrics`). Outside the event layer: a scrape
//! publishes no event.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;

/// Installs the Prometheus recorder (before the publisher starts, so that it exports to it)
/// and serves what it renders.
#[cfg(feature = "metrics")]
pub(crate) fn router() -> Router {
    use metrics_exporter_prometheus::PrometheusBuilder;
    match PrometheusBuilder::new().install_recorder() {
        Ok(prometheus) => Router::new().route(
            "/metrics",
            get(move || {
                let text = prometheus.render();
                async move {
                    let format = "text/plain; version=0.0.4; charset=utf-8";
                    (StatusCode::OK, [(header::CONTENT_TYPE, format)], text)
                }
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "no Prometheus metrics: a recorder was already installed");
            Router::new()
        }
    }
}

/// Says how to get metrics.
#[cfg(not(feature = "metrics"))]
pub(crate) fn router() -> Router {
    Router::new().route(
        "/metrics",
        get(|| async {
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "metrics need the crate's `metrics` feature: \
                 cargo run --example mps_server --features metrics\n",
            )
        }),
    )
}

//! The operations routes every service serves, the same way:
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /healthz` | 200 `{"status": "ok", ...}` while the process runs |
//! | `GET /readyz` | 200 `{"status": "ready", ...}` when the log answers and the service's own check passes; else 503 in the error shape |
//! | `GET /metrics` | OpenMetrics text: the shared metrics, the log's, and the service's own |

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bookkeeper_core::metrics::{self, GaugeValue};
use bookkeeper_core::Store;
use serde_json::{Map, Value};

use crate::ApiError;

type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Map<String, Value>, String>> + Send>> + Send + Sync>;
type MetricsExtra = Arc<dyn Fn() -> Vec<GaugeValue> + Send + Sync>;

/// A service's operations routes.
#[derive(Clone)]
pub struct Ops {
    store: Store,
    health: Map<String, Value>,
    ready: Option<ReadyCheck>,
    metrics: Option<MetricsExtra>,
}

impl Ops {
    /// Routes that probe `store`.
    pub fn new(store: Store) -> Ops {
        Ops { store, health: Map::new(), ready: None, metrics: None }
    }

    /// Adds a field to both the health and the readiness answer (the Accounting
    /// API says whether it runs against the sandbox).
    pub fn field(mut self, name: &str, value: impl Into<Value>) -> Ops {
        self.health.insert(name.to_string(), value.into());
        self
    }

    /// The service's own readiness check, after the log's: `Ok` with fields to
    /// add to the answer, `Err` with why it is not ready.
    pub fn ready_when<F, Fut>(mut self, check: F) -> Ops
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Map<String, Value>, String>> + Send + 'static,
    {
        self.ready = Some(Arc::new(move || Box::pin(check())));
        self
    }

    /// Gauges the service adds to the shared metrics, read at each scrape.
    pub fn metrics_with(mut self, extra: impl Fn() -> Vec<GaugeValue> + Send + Sync + 'static) -> Ops {
        self.metrics = Some(Arc::new(extra));
        self
    }

    /// The routes, for any router state.
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let ops = Arc::new(self);
        let (health, ready, metrics) = (ops.clone(), ops.clone(), ops);
        Router::new()
            .route("/healthz", get(move || async move { health.healthz() }))
            .route("/readyz", get(move || async move { ready.readyz().await }))
            .route("/metrics", get(move || async move { metrics.metrics().await }))
    }

    fn healthz(&self) -> Json<Value> {
        let mut body = self.health.clone();
        body.insert("status".into(), "ok".into());
        Json(Value::Object(body))
    }

    async fn readyz(&self) -> Result<Json<Value>, ApiError> {
        self.store.ping().await.map_err(|e| {
            tracing::warn!(error = %e, "not ready: the log does not answer");
            ApiError::unavailable("not ready: the log does not answer")
        })?;
        let mut body = self.health.clone();
        if let Some(check) = &self.ready {
            let fields = check().await.map_err(|why| ApiError::unavailable(format!("not ready: {why}")))?;
            body.extend(fields);
        }
        body.insert("status".into(), "ready".into());
        Ok(Json(Value::Object(body)))
    }

    async fn metrics(&self) -> Response {
        let extra = self.metrics.as_ref().map(|f| f()).unwrap_or_default();
        let text = metrics::render(Some(&self.store), &extra).await;
        ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
    }
}

//! One request to a node's HTTP API, through its router in process (no socket).

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use tandem_node::state::NodeState;
use tower::ServiceExt;

/// Sends `method path` with bearer `token` and the JSON text `body` (empty for none) to the
/// router of `state`; returns the status and the JSON body (`Null` if the body is not JSON).
/// Bodies are read up to 16 MiB.
pub async fn api_call(
    state: &Arc<NodeState>,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let (status, bytes) = api_call_bytes(state, method, path, token, body).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// As [`api_call`], with the body's bytes as they came (CSV exports, model files).
pub async fn api_call_bytes(
    state: &Arc<NodeState>,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (StatusCode, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .expect("request");
    let resp = tandem_node::server::router(state.clone())
        .oneshot(req)
        .await
        .expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .expect("body");
    (status, bytes.to_vec())
}

//! What every HTTP handler of a serving node shares: its state, how it runs synchronous work,
//! and how a [`NodeError`] becomes an HTTP response.

use std::path::PathBuf;

use axum::response::{IntoResponse, Response};

use crate::error::{Code, NodeError, Result};
use crate::home::Home;

/// PSI runs a node answers at the same time; further requests wait for a slot.
pub const MAX_CONCURRENT_RUNS: usize = 2;

/// What every handler needs.
pub struct NodeState {
    /// This node's party name.
    pub name: String,
    /// Path of the store (opened per request, in a blocking task).
    pub store_path: PathBuf,
    /// The node (keys, configuration).
    pub home: Home,
    /// Bounds the PSI runs answered at once (each holds its messages in memory and keeps the
    /// cores busy), so that concurrent large requests cannot exhaust memory.
    pub run_slots: tokio::sync::Semaphore,
}

impl NodeState {
    /// State for serving `home`.
    pub fn new(home: &Home) -> NodeState {
        NodeState {
            name: home.config.name.clone(),
            store_path: home.store_path(),
            home: home.clone(),
            run_slots: tokio::sync::Semaphore::new(MAX_CONCURRENT_RUNS),
        }
    }
}

/// Runs `f` on the blocking pool (the store and opendp are synchronous).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NodeError::new(Code::Internal, format!("task failed: {e}")))?
}

/// A handler's result: the response, or a [`NodeError`] answered as its JSON body.
pub type Answer = std::result::Result<Response, HttpError>;

/// A [`NodeError`] on its way out as an HTTP response (status from its code, JSON body).
#[derive(Debug)]
pub struct HttpError(pub NodeError);

impl From<NodeError> for HttpError {
    fn from(e: NodeError) -> Self {
        HttpError(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let e = self.0;
        if e.code().status().is_server_error() {
            tracing::error!(code = e.code_str(), error = %e, "request failed");
        } else if e.code() == Code::ClockSkew {
            // The operator must fix the clocks: say so in this node's log too.
            tracing::warn!(code = e.code_str(), error = %e, "refused a peer message");
        }
        (e.status(), axum::Json(e.body())).into_response()
    }
}

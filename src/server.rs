//! `tandem serve`: the node's HTTPS server. Peer endpoints accept only messages signed by the
//! other party of an active agreement; every request is handled off the async runtime because
//! the store and opendp are synchronous.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tandem_agreement::Agreement;
use tandem_store::{Store, StoreError};
use tokio::net::TcpListener;

use crate::home::Home;

/// Path of the PSI run endpoint.
pub const PSI_PATH: &str = "/v1/psi/run";
/// Signature kind of a PSI request.
pub const PSI_REQUEST: &str = "request POST /v1/psi/run";
/// Signature kind of a PSI response.
pub const PSI_RESPONSE: &str = "response POST /v1/psi/run";
/// PSI runs a node answers at the same time; further requests wait for a slot.
pub const MAX_CONCURRENT_RUNS: usize = 2;
/// Path where a peer delivers a proposed agreement.
pub const PROPOSE_PATH: &str = "/v1/agreements/propose";
/// Path where a peer delivers a countersigned agreement.
pub const COUNTERSIGN_PATH: &str = "/v1/agreements/countersign";

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

/// An error answered over HTTP: status plus a JSON `{"error", "code"}` body.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    /// The reason, as the caller sees it.
    pub message: String,
}

impl ApiError {
    /// An error with its status, machine-readable code and reason.
    pub fn new(status: StatusCode, code: &'static str, message: impl ToString) -> Self {
        ApiError {
            status,
            code,
            message: message.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.message, "code": self.code});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BudgetExceeded { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "budget_exceeded", e)
            }
            StoreError::Replay { .. } => ApiError::new(StatusCode::CONFLICT, "replay", e),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", other),
        }
    }
}

/// The router of a node.
pub fn router(state: Arc<NodeState>) -> Router {
    let limit = state.home.config.max_message_bytes;
    Router::new()
        .merge(crate::api::routes())
        .merge(tandem_console::router())
        .route("/v1/health", get(|| async { "ok" }))
        .route(PSI_PATH, post(psi_run))
        .route(PROPOSE_PATH, post(receive_proposal))
        .route(COUNTERSIGN_PATH, post(receive_countersigned))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serves the node on `listener` until `shutdown` resolves.
pub async fn serve(
    home: &Home,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(crate::tls::server_config(
        &home.tls_cert,
        &home.tls_key,
    )?));
    let app = router(Arc::new(NodeState::new(home)));
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted.context("accepting a connection")?,
        };
        let tls = tls.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let stream = match tls.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let service = TowerToHyperService::new(app);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%remote, error = %e, "connection closed with an error");
            }
        });
    }
    Ok(())
}

/// Binds the node's listen address.
pub async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Runs `f` on the blocking pool (store and opendp are synchronous).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?
}

pub(crate) fn bad_request(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", format!("{e:#}"))
}

pub(crate) fn forbidden(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "refused", format!("{e:#}"))
}

async fn psi_run(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    // Cheap checks on the headers before a possibly large body is read: a request that cannot
    // be from the peer of an active agreement is turned away without reading it.
    let (st, h) = (state.clone(), headers.clone());
    blocking(move || precheck(&st, &h)).await?;
    let _slot = state
        .run_slots
        .acquire()
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", e))?;
    let limit = state.home.config.max_message_bytes;
    let body = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("request body rejected (limit {limit} bytes): {e}"),
            )
        })?
        .to_bytes();
    let st = state.clone();
    let (env, payload) = blocking(move || crate::responder::respond(&st, &headers, &body)).await?;
    let sig_headers = env.sign(PSI_RESPONSE, &payload, &state.home.key);
    let mut resp = payload.into_response();
    for (k, v) in sig_headers {
        if let Ok(v) = v.parse() {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}

/// The header-only part of the responder's checks: well-formed envelope, fresh timestamp, an
/// active agreement naming the sender as this node's peer. Everything is checked again, with the
/// signature over the body, once the body is read.
fn precheck(state: &NodeState, headers: &HeaderMap) -> Result<(), ApiError> {
    let (env, _) = crate::wire::Envelope::from_headers(headers).map_err(bad_request)?;
    if (crate::wire::now_ms() - env.timestamp_ms).abs() > crate::wire::MAX_SKEW_MS {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "stale or future timestamp",
        ));
    }
    let store = Store::open(&state.store_path)?;
    let (_, peer) = crate::overlap::active_agreement(&store, &env.agreement_id, &state.name)
        .map_err(forbidden)?;
    if env.sender != peer {
        return Err(forbidden(format!(
            "{} is not the peer in this agreement",
            env.sender
        )));
    }
    Ok(())
}

async fn receive_proposal(
    State(state): State<Arc<NodeState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    blocking(move || {
        let agreement: Agreement = serde_json::from_slice(&body).map_err(bad_request)?;
        let mut store = Store::open(&state.store_path)?;
        crate::agreements::receive_proposal(&mut store, &state.name, &state.home.key, &agreement)
            .map_err(forbidden)?;
        Ok((
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({"id": agreement.id().to_string()})),
        )
            .into_response())
    })
    .await
}

async fn receive_countersigned(
    State(state): State<Arc<NodeState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    blocking(move || {
        let agreement: Agreement = serde_json::from_slice(&body).map_err(bad_request)?;
        let mut store = Store::open(&state.store_path)?;
        crate::agreements::receive_countersigned(&mut store, &state.name, &agreement)
            .map_err(forbidden)?;
        Ok((
            StatusCode::OK,
            axum::Json(serde_json::json!({"id": agreement.id().to_string(), "status": "active"})),
        )
            .into_response())
    })
    .await
}

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
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tandem_agreement::Agreement;
use tandem_dp::OpenDpNoise;
use tandem_psi::Limits;
use tandem_store::{AuditEvent, Store, StoreError};
use tokio::net::TcpListener;

use crate::home::Home;
use crate::overlap::{Receipt, RunRequest};
use crate::wire::{self, Envelope};

/// Path of the PSI run endpoint.
pub const PSI_PATH: &str = "/v1/psi/run";
/// Signature kind of a PSI request.
pub const PSI_REQUEST: &str = "request POST /v1/psi/run";
/// Signature kind of a PSI response.
pub const PSI_RESPONSE: &str = "response POST /v1/psi/run";
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
}

impl NodeState {
    /// State for serving `home`.
    pub fn new(home: &Home) -> NodeState {
        NodeState {
            name: home.config.name.clone(),
            store_path: home.store_path(),
            home: home.clone(),
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

fn bad_request(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", format!("{e:#}"))
}

fn forbidden(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "refused", format!("{e:#}"))
}

async fn psi_run(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let st = state.clone();
    let (env, payload) = blocking(move || respond(&st, &headers, &body)).await?;
    let sig_headers = env.sign(PSI_RESPONSE, &payload, &state.home.key);
    let mut resp = payload.into_response();
    for (k, v) in sig_headers {
        if let Ok(v) = v.parse() {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}

/// A run the responder has authenticated and checked against the agreement, not yet charged.
struct CheckedRun {
    agreement: Agreement,
    peer: String,
    request: RunRequest,
    params: tandem_psi::RunParams,
    loss: tandem_dp::PrivacyLoss,
    querier_head: crate::overlap::SignedHead,
}

/// Authenticates the caller and checks the run against the agreement and the caps.
fn check_run(
    state: &NodeState,
    store: &Store,
    env: &Envelope,
    sig: &ed25519_dalek::Signature,
    body: &[u8],
) -> Result<(CheckedRun, usize), ApiError> {
    let (agreement, peer) = crate::overlap::active_agreement(store, &env.agreement_id, &state.name)
        .map_err(forbidden)?;
    if env.sender != peer {
        return Err(forbidden(format!(
            "{} is not the peer in this agreement",
            env.sender
        )));
    }
    let peer_key = agreement
        .terms
        .party(&peer)
        .ok_or_else(|| forbidden("peer missing"))?
        .verifying_key()
        .map_err(forbidden)?;
    env.verify(PSI_REQUEST, body, sig, &peer_key, wire::now_ms())
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", e))?;
    let (opening, query) = wire::unframe(body, 1 << 20).map_err(bad_request)?;
    let opening: crate::overlap::RunOpening =
        serde_json::from_value(opening).map_err(bad_request)?;
    opening
        .querier_head
        .verify(&env.agreement_id, &env.run_id, &peer_key)
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", e))?;
    let request = opening.request;
    crate::overlap::check_columns(&agreement, &peer, &state.name, &request).map_err(forbidden)?;
    let run_id = crate::overlap::parse_run_id(&env.run_id).map_err(bad_request)?;
    let params = request
        .params(&agreement, run_id, &peer, &state.name)
        .map_err(bad_request)?;
    let loss = tandem_psi::accounting::responder_loss(&params).map_err(bad_request)?;
    let query_offset = body.len() - query.len();
    Ok((
        CheckedRun {
            agreement,
            peer,
            request,
            params,
            loss,
            querier_head: opening.querier_head,
        },
        query_offset,
    ))
}

/// The responder's side of a run.
fn respond(
    state: &NodeState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Envelope, Vec<u8>), ApiError> {
    let mut store = Store::open(&state.store_path)?;
    let (env, sig) = Envelope::from_headers(headers).map_err(bad_request)?;
    let (run, query_offset) = match check_run(state, &store, &env, &sig, body) {
        Ok(checked) => checked,
        Err(e) => {
            // Refusals before any charge are recorded too (the store records its own).
            let event = AuditEvent::now(
                format!("peer:{}", env.sender),
                "query.refused",
                serde_json::json!({"run_id": env.run_id, "role": "responder", "reason": e.message}),
            )
            .with_agreement(&env.agreement_id);
            store.append_audit(event)?;
            tracing::warn!(run = %env.run_id, sender = %env.sender, reason = %e.message, "refused a run");
            return Err(e);
        }
    };
    let query = &body[query_offset..];
    let actor = format!("peer:{}", run.peer);
    let new_run = crate::overlap::new_run(
        &run.agreement,
        &state.name,
        "responder",
        &env.run_id,
        &actor,
        &run.request,
        run.loss,
    )
    .map_err(forbidden)?;
    store.begin_run(&new_run)?;
    store.append_audit(
        AuditEvent::now(
            &actor,
            "peer.ledger",
            serde_json::to_value(&run.querier_head).map_err(bad_request)?,
        )
        .with_agreement(&env.agreement_id),
    )?;
    let answer = (|| -> anyhow::Result<Vec<u8>> {
        let items = crate::overlap::load_buckets(
            &store,
            &run.agreement,
            &state.name,
            &run.request.join_key,
            run.request.responder_column.as_deref(),
        )?;
        let limits = Limits {
            max_points: state.home.config.max_message_bytes / 32,
        };
        Ok(tandem_psi::respond(
            &run.params,
            &items,
            query,
            &limits,
            &mut OpenDpNoise,
        )?)
    })();
    let reply = match answer {
        Ok(r) => r,
        Err(e) => {
            // Nothing computed from our data left the node: release the reservation.
            store.fail_run(&env.run_id, &format!("{e:#}"), false)?;
            return Err(bad_request(e));
        }
    };
    let budget = crate::overlap::budget_view(&store, &run.agreement, &state.name, run.loss)
        .map_err(bad_request)?;
    let receipt = Receipt {
        charged: run.loss,
        head: crate::overlap::SignedHead::sign(
            budget,
            &env.agreement_id,
            &env.run_id,
            &state.home.key,
        ),
    };
    let payload = wire::frame(
        &serde_json::to_value(&receipt).map_err(bad_request)?,
        &reply,
    );
    let receipt_json = serde_json::to_string(&receipt).map_err(bad_request)?;
    store.finish_run(
        &env.run_id,
        &receipt_json,
        &crate::home::sha256_hex(&payload),
    )?;
    tracing::info!(
        run = %env.run_id,
        peer = %run.peer,
        epsilon = run.loss.epsilon,
        cells = run.params.querier_buckets * run.params.responder_buckets,
        "answered a run"
    );
    let out = Envelope {
        agreement_id: env.agreement_id,
        run_id: env.run_id,
        sender: state.name.clone(),
        timestamp_ms: wire::now_ms(),
    };
    Ok((out, payload))
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

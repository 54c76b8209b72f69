//! `tandem serve`: the node's HTTPS server. Peer endpoints accept only messages signed by the
//! other party of an active agreement; every request is handled off the async runtime because
//! the store and opendp are synchronous.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tandem_agreement::Agreement;
use tokio::net::TcpListener;

use crate::error::{Code, NodeError, OrCode, Result};
use crate::home::Home;
use crate::state::{Answer, NodeState, Source, blocking};
use crate::wire::{COUNTERSIGN_PATH, Envelope, HEALTH_PATH, PROPOSE_PATH, PSI_PATH, PSI_RESPONSE};

/// The router of a node.
pub fn router(state: Arc<NodeState>) -> Router {
    let limit = state.home.config.max_message_bytes;
    Router::new()
        .merge(
            crate::api::routes().route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::api::throttle,
            )),
        )
        .merge(tandem_console::router())
        .route(HEALTH_PATH, get(|| async { "ok" }))
        .route(PSI_PATH, post(psi_run))
        .route(crate::sums::SUM_PATH, post(crate::sums::decrypt_handler))
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
            accepted = listener.accept() => accepted.or_code(Code::Internal, || "accepting a connection".into())?,
        };
        let tls = tls.clone();
        // Handlers see the connection's source (for throttling failed authentications).
        let app = app.clone().layer(axum::Extension(Source(remote.ip())));
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
        .or_code(Code::Internal, || format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

async fn psi_run(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Answer {
    // Cheap checks on the headers before a possibly large body is read: a request that cannot
    // be from the peer of an active agreement is turned away without reading it.
    let (env, sig) = Envelope::from_headers(&headers)?;
    let (st, e) = (state.clone(), env.clone());
    blocking(move || crate::responder::precheck(&st.home, &e)).await?;
    let _slot = state
        .run_slots
        .acquire()
        .await
        .map_err(|e| NodeError::new(Code::Unavailable, format!("shutting down: {e}")))?;
    let limit = state.home.config.max_message_bytes;
    let body = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            NodeError::new(
                Code::TooLarge,
                format!("request body rejected (limit {limit} bytes): {e}"),
            )
        })?
        .to_bytes();
    let st = state.clone();
    let (env, payload) =
        blocking(move || crate::responder::respond(&st.home, env, &sig, &body)).await?;
    let sig_headers = env.sign(PSI_RESPONSE, &payload, &state.home.key);
    let mut resp = payload.into_response();
    for (k, v) in sig_headers {
        if let Ok(v) = v.parse() {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}

/// Parses an agreement a peer delivered (400 `bad_request` if it does not parse).
fn delivered(body: &[u8]) -> crate::error::Result<Agreement> {
    serde_json::from_slice(body)
        .map_err(|e| NodeError::bad_request(format!("the agreement does not parse: {e}")))
}

async fn receive_proposal(State(state): State<Arc<NodeState>>, body: Bytes) -> Answer {
    let id = blocking(move || {
        let agreement = delivered(&body)?;
        let mut store = state.home.store()?;
        crate::agreements::receive_proposal(&mut store, &state.name, &state.home.key, &agreement)?;
        Ok(agreement.id().to_string())
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "id": id })),
    )
        .into_response())
}

async fn receive_countersigned(State(state): State<Arc<NodeState>>, body: Bytes) -> Answer {
    let id = blocking(move || {
        let agreement = delivered(&body)?;
        let mut store = state.home.store()?;
        crate::agreements::receive_countersigned(&mut store, &state.name, &agreement)?;
        Ok(agreement.id().to_string())
    })
    .await?;
    Ok((
        StatusCode::OK,
        axum::Json(serde_json::json!({"id": id, "status": "active"})),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::home::Config;
    use crate::state::MAX_AUTH_FAILURES_PER_MINUTE;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_flood_of_bogus_tokens_is_throttled_with_retry_after_and_audited_boundedly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = Config {
            name: "acme".into(),
            listen: "127.0.0.1:0".into(),
            public_url: "https://127.0.0.1:7401".into(),
            region: "CN".into(),
            default_region: None,
            default_country_code: Some(86),
            max_message_bytes: 1 << 20,
        };
        Home::init(dir.path(), cfg).expect("init");
        let home = Home::open(dir.path()).expect("open");
        let app = router(Arc::new(NodeState::new(&home)))
            .layer(axum::Extension(Source([192, 0, 2, 7].into())));
        let call = |auth: &str| {
            axum::http::Request::get("/api/v1/runs")
                .header("authorization", auth)
                .body(axum::body::Body::empty())
                .expect("request")
        };
        let audited = |action: &str| {
            home.store()
                .expect("store")
                .audit_entries(None, None)
                .expect("audit")
                .iter()
                .filter(|e| e.event.action == action)
                .count()
        };
        let flood = 3 * MAX_AUTH_FAILURES_PER_MINUTE;
        let (mut unauthenticated, mut throttled) = (0, 0);
        for i in 0..flood {
            let r = app
                .clone()
                .oneshot(call(&format!("Bearer tdm_bogus{i}")))
                .await
                .expect("answer");
            match r.status() {
                StatusCode::UNAUTHORIZED => unauthenticated += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    throttled += 1;
                    let retry: u64 = r.headers()["retry-after"]
                        .to_str()
                        .expect("ascii")
                        .parse()
                        .expect("seconds");
                    assert!((1..=60).contains(&retry), "{retry}");
                }
                other => panic!("unexpected {other}"),
            }
        }
        // Calls straddling a minute boundary may get a fresh allowance: at most twice.
        assert!(unauthenticated >= MAX_AUTH_FAILURES_PER_MINUTE);
        assert!(unauthenticated <= 2 * MAX_AUTH_FAILURES_PER_MINUTE);
        assert_eq!(unauthenticated + throttled, flood);
        assert_eq!(audited("api.refused"), unauthenticated as usize);
        assert!((1..=2).contains(&audited("api.throttled")));
    }
}

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
use crate::home::{Home, Limits};
use crate::state::{Answer, NodeState, Source, blocking};
use crate::wire::{
    AUDIENCE_VERSION_PATH, AUDIENCE_VERSION_RESPONSE, BUDGET_CHECK_PATH, BUDGET_CHECK_RESPONSE,
    COUNTERSIGN_PATH, Envelope, HEALTH_PATH, PROPOSE_PATH, PSI_PATH, PSI_RESPONSE,
    PSI_V2_FINISH_PATH, PSI_V2_FINISH_RESPONSE,
};

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
        .route(crate::openapi::PATH, get(crate::openapi::serve))
        .route(HEALTH_PATH, get(|| async { "ok" }))
        .route(PSI_PATH, post(psi_run))
        .route(PSI_V2_FINISH_PATH, post(psi_v2_finish))
        .route(AUDIENCE_VERSION_PATH, post(audience_version))
        .route(BUDGET_CHECK_PATH, post(budget_check))
        .route(crate::stream::OPEN_PATH, post(crate::stream::open_handler))
        .route(
            crate::stream::CHUNK_PATH,
            post(crate::stream::chunk_handler),
        )
        .route(
            crate::stream::REPLY_CHUNK_PATH,
            post(crate::stream::reply_chunk_handler),
        )
        .route(crate::sums::SUM_PATH, post(crate::sums::decrypt_handler))
        .route(PROPOSE_PATH, post(receive_proposal))
        .route(COUNTERSIGN_PATH, post(receive_countersigned))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body_idle_timeout,
        ))
        .layer(axum::middleware::from_fn(crate::state::json_errors))
        .with_state(state)
}

/// Fails a request body that sends no byte for `limits.request_body_idle_s` (a client that
/// announces a body and trickles or stalls it): the handler sees a body error and answers 400,
/// and the connection closes, instead of a task waiting forever.
async fn body_idle_timeout(
    State(state): State<Arc<NodeState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let idle = Limits::secs(state.home.config.limits.request_body_idle_s);
    next.run(req.map(|b| axum::body::Body::new(IdleTimeout::new(b, idle))))
        .await
}

/// The body stalled: no byte for the idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled: no byte for {0} s (limits.request_body_idle_s)")]
struct BodyStalled(u64);

/// A body that fails with [`BodyStalled`] when no frame arrives for `idle`.
struct IdleTimeout<B> {
    inner: B,
    idle: std::time::Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<B> IdleTimeout<B> {
    fn new(inner: B, idle: std::time::Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl<B> http_body::Body for IdleTimeout<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::future::Future;
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + this.idle;
                this.sleep.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyStalled(this.idle.as_secs()).into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
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
    let state = Arc::new(NodeState::new(home));
    let app = router(state.clone());
    let header_timeout = Limits::secs(home.config.limits.request_header_timeout_s);
    // Counted API accesses are written once their minute is over (and all at shutdown).
    let flusher = tokio::spawn(flush_access_every(state.clone(), ACCESS_FLUSH_EVERY));
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
            // A client that stalls the handshake or trickles its headers (slowloris) is
            // disconnected after limits.request_header_timeout_s.
            let stream = match tokio::time::timeout(header_timeout, tls.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::warn!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::warn!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let service = TowerToHyperService::new(app);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%remote, error = %e, "connection closed with an error");
            }
        });
    }
    flusher.abort();
    let st = state.clone();
    if let Err(e) = blocking(move || st.flush_access(true)).await {
        tracing::warn!(error = %e, "could not write the last API access counts to the audit log");
    }
    Ok(())
}

/// How often finished minutes of API access counts are written to the audit log.
const ACCESS_FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

async fn flush_access_every(state: Arc<NodeState>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let st = state.clone();
        if let Err(e) = blocking(move || st.flush_access(false)).await {
            // Kept in memory and retried at the next tick.
            tracing::warn!(error = %e, "could not write API access counts to the audit log yet");
        }
    }
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
    peer_run(state, headers, body, false).await
}

/// psi-ca-v2's second round trip (Msg3 → Msg4): the same header checks, throttle, run slot and
/// body limit as a run's first message.
async fn psi_v2_finish(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Answer {
    peer_run(state, headers, body, true).await
}

/// A run message from the peer: the first (`v2_finish` false: [`crate::responder::respond`])
/// or psi-ca-v2's Msg3 ([`crate::v2::responder::finish`]).
async fn peer_run(
    state: Arc<NodeState>,
    headers: HeaderMap,
    body: axum::body::Body,
    v2_finish: bool,
) -> Answer {
    // Cheap checks on the headers before a possibly large body is read: a request that cannot
    // be from the peer of an active agreement is turned away without reading it.
    let (env, sig) = Envelope::from_headers(&headers)?;
    let (st, e) = (state.clone(), env.clone());
    blocking(move || crate::responder::precheck(&st.home, &e)).await?;
    let throttled = state
        .failed_runs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .check(&env.sender, crate::wire::now_ms());
    if let Some(retry_after_s) = throttled {
        tracing::warn!(peer = %env.sender, retry_after_s, "throttled a peer's run requests after repeated failed runs");
        let err = NodeError::new(
            Code::TooManyRequests,
            format!(
                "too many failed runs from {} in the last hour; retry in {retry_after_s} s",
                env.sender
            ),
        )
        .with_details(serde_json::json!({"retry_after_s": retry_after_s}));
        let mut resp = crate::state::HttpError(err).into_response();
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(retry_after_s),
        );
        return Ok(resp);
    }
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
            if e.is::<http_body_util::LengthLimitError>() {
                NodeError::new(
                    Code::TooLarge,
                    format!("request body rejected (limit {limit} bytes): {e}"),
                )
            } else {
                NodeError::bad_request(format!("reading the request body failed: {e}"))
            }
        })?
        .to_bytes();
    let st = state.clone();
    let (env, payload) = blocking(move || {
        if v2_finish {
            crate::v2::responder::finish(&st.home, env, &sig, &body, &st.failed_runs)
        } else {
            crate::responder::respond(&st.home, env, &sig, &body, &st.failed_runs)
        }
    })
    .await?;
    let kind = if v2_finish {
        PSI_V2_FINISH_RESPONSE
    } else {
        PSI_RESPONSE
    };
    let sig_headers = env.sign(kind, &payload, &state.home.key);
    let mut resp = payload.into_response();
    for (k, v) in sig_headers {
        if let Ok(v) = v.parse() {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}

/// Refuses a peer's uncharged check over its hourly allowance in `tally` (`what` names the
/// checks in the refusal and the log): 429 `too_many_requests` with `retry_after_s`.
fn throttle(
    tally: &std::sync::Mutex<crate::state::FailedRuns>,
    sender: &str,
    what: &str,
) -> std::result::Result<(), NodeError> {
    let throttled = tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .check(sender, crate::wire::now_ms());
    match throttled {
        None => Ok(()),
        Some(retry_after_s) => {
            tracing::warn!(peer = %sender, retry_after_s, "throttled a peer's {what}");
            Err(NodeError::new(
                Code::TooManyRequests,
                format!(
                    "too many {what} from {sender} in the last hour; retry in {retry_after_s} s"
                ),
            )
            .with_details(serde_json::json!({"retry_after_s": retry_after_s})))
        }
    }
}

/// The audience-version check: signed both ways, uncharged, throttled per peer
/// ([`crate::state::MAX_AUDIENCE_CHECKS_PER_HOUR`], counted once the signature verified) and
/// tallied in the audit log (`api.access`, `what`: `psi.audience_version`, actor `peer:NAME`).
async fn audience_version(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let (env, sig) = Envelope::from_headers(&headers)?;
    throttle(
        &state.audience_checks,
        &env.sender,
        "audience-version checks",
    )?;
    let st = state.clone();
    let answer = blocking(move || {
        let payload = crate::responder::audience_version_check(&st.home, &env, &sig, &body)?;
        // Signed by the peer: counted against it, and tallied for the audit log.
        let now = crate::wire::now_ms();
        st.audience_checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(&env.sender, now);
        st.access
            .record(&format!("peer:{}", env.sender), "psi.audience_version", now);
        let out = Envelope {
            agreement_id: env.agreement_id,
            run_id: env.run_id,
            sender: st.name.clone(),
            timestamp_ms: crate::wire::now_ms(),
        };
        Ok((out, payload))
    })
    .await?;
    let (env, payload) = answer;
    let sig_headers = env.sign(AUDIENCE_VERSION_RESPONSE, &payload, &state.home.key);
    let mut resp = (StatusCode::OK, payload).into_response();
    for (k, v) in sig_headers {
        if let Ok(v) = v.parse() {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}

/// The budget pre-check: signed both ways, uncharged, nothing reserved; throttled per peer
/// ([`crate::state::MAX_BUDGET_CHECKS_PER_HOUR`], counted once the signature verified) and
/// tallied in the audit log (`api.access`, `what`: `psi.budget_check`, actor `peer:NAME`).
async fn budget_check(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let (env, sig) = Envelope::from_headers(&headers)?;
    throttle(&state.budget_checks, &env.sender, "budget pre-checks")?;
    let st = state.clone();
    let (env, payload) = blocking(move || {
        let payload = crate::responder::budget_check(&st.home, &env, &sig, &body)?;
        let now = crate::wire::now_ms();
        st.budget_checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(&env.sender, now);
        st.access
            .record(&format!("peer:{}", env.sender), "psi.budget_check", now);
        let out = Envelope {
            agreement_id: env.agreement_id,
            run_id: env.run_id,
            sender: st.name.clone(),
            timestamp_ms: now,
        };
        Ok((out, payload))
    })
    .await?;
    let sig_headers = env.sign(BUDGET_CHECK_RESPONSE, &payload, &state.home.key);
    let mut resp = (StatusCode::OK, payload).into_response();
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

    fn test_home(dir: &std::path::Path) -> Home {
        let cfg = Config {
            name: "acme".into(),
            listen: "127.0.0.1:0".into(),
            public_url: "https://127.0.0.1:7401".into(),
            region: "CN".into(),
            default_region: None,
            default_country_code: Some(86),
            max_message_bytes: 1 << 20,
            limits: Default::default(),
        };
        Home::init(dir, cfg).expect("init");
        Home::open(dir).expect("open")
    }

    fn token(home: &Home, name: &str, role: &str) -> String {
        home.store()
            .expect("store")
            .create_token(name, role, "test")
            .expect("token")
    }

    fn retry_after(r: &axum::response::Response) -> u64 {
        r.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds")
    }

    async fn body_json(r: axum::response::Response) -> serde_json::Value {
        let bytes = r.into_body().collect().await.expect("body").to_bytes();
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn reads_write_no_audit_entry_each_and_the_counts_are_flushed_per_token_and_minute() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = test_home(dir.path());
        let ana = token(&home, "ana", "analyst");
        let state = Arc::new(NodeState::new(&home));
        let app = router(state.clone()).layer(axum::Extension(Source([192, 0, 2, 7].into())));
        let entries = || {
            home.store()
                .expect("store")
                .audit_entries(None, None)
                .expect("audit")
        };
        let before = entries().len();
        for _ in 0..30 {
            let r = app
                .clone()
                .oneshot(
                    axum::http::Request::get("/api/v1/runs")
                        .header("authorization", format!("Bearer {ana}"))
                        .body(axum::body::Body::empty())
                        .expect("request"),
                )
                .await
                .expect("answer");
            assert_eq!(r.status(), StatusCode::OK);
        }
        assert_eq!(entries().len(), before, "no entry per read");
        assert_eq!(state.flush_access(true).expect("flush"), 1);
        let all = entries();
        let last = all.last().expect("entry");
        assert_eq!(all.len(), before + 1);
        assert_eq!(last.event.action, "api.access");
        assert_eq!(last.event.actor, "token:ana(analyst)");
        assert_eq!(last.event.details["count"], 30);
        assert_eq!(last.event.details["what"], "list runs");
        assert_eq!(state.flush_access(true).expect("flush"), 0);
    }

    #[tokio::test]
    async fn a_locked_database_is_503_busy_with_retry_after_never_database_is_locked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = test_home(dir.path());
        let admin = token(&home, "root", "admin");
        let app = router(Arc::new(NodeState::new(&home)))
            .layer(axum::Extension(Source([192, 0, 2, 7].into())));
        // Another writer holds the write lock for longer than the busy timeout (5 s).
        let other = rusqlite::Connection::open(home.store_path()).expect("open");
        other.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let r = app
            .oneshot(
                axum::http::Request::post("/api/v1/tokens")
                    .header("authorization", format!("Bearer {admin}"))
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(r#"{"name":"ana","role":"analyst"}"#))
                    .expect("request"),
            )
            .await
            .expect("answer");
        other.execute_batch("ROLLBACK").expect("unlock");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&r), crate::error::BUSY_RETRY_AFTER_S);
        let body = body_json(r).await;
        assert_eq!(body["code"], "busy");
        assert!(!body.to_string().contains("locked"), "{body}");
        // Nothing was done: the token does not exist.
        assert!(
            home.store()
                .expect("store")
                .tokens()
                .expect("tokens")
                .iter()
                .all(|t| t.name != "ana")
        );
    }

    #[tokio::test]
    async fn a_query_over_the_configured_concurrency_is_429_with_retry_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = test_home(dir.path());
        let ana = token(&home, "ana", "analyst");
        let state = Arc::new(NodeState::new(&home));
        let app = router(state.clone()).layer(axum::Extension(Source([192, 0, 2, 7].into())));
        // Every slot taken, as by queries in flight.
        let limit = home.config.limits.max_concurrent_queries;
        let _held = state
            .query_slots
            .acquire_many(u32::try_from(limit).expect("small"))
            .await
            .expect("slots");
        let r = app
            .oneshot(
                axum::http::Request::post("/api/v1/queries/overlap")
                    .header("authorization", format!("Bearer {ana}"))
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(
                        r#"{"agreement_id":"ag","group_by":"tier","epsilon":0.5}"#,
                    ))
                    .expect("request"),
            )
            .await
            .expect("answer");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(retry_after(&r) >= 1);
        let body = body_json(r).await;
        assert_eq!(body["code"], "too_many_requests");
        assert_eq!(body["details"]["max_concurrent_queries"], limit);
    }

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
            limits: Default::default(),
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

//! The node's HTTP API for people: analysts run queries, auditors read the ledger and the audit
//! log, admins manage agreements and tokens. Every call needs a bearer token; tokens are stored
//! hashed, carry one role, can be revoked, and every use is written to the audit log.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use tandem_store::{AuditEvent, Principal, Store};

use crate::overlap::OverlapQuery;
use crate::server::{ApiError, NodeState};

/// Roles, from least to most trusted for writing (an auditor reads, it never writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Agreements and tokens.
    Admin,
    /// Queries and their results.
    Analyst,
    /// Ledger and audit log, read-only.
    Auditor,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Auditor => "auditor",
        }
    }
}

/// The API routes (merged into the node's router).
pub fn routes() -> Router<Arc<NodeState>> {
    Router::new()
        .route("/api/v1/queries/overlap", post(query_overlap))
        .route("/api/v1/queries/overlap/preview", post(preview_overlap))
        .route("/api/v1/runs", get(runs))
        .route("/api/v1/budget", get(budget))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/agreements", get(agreements))
        .route("/api/v1/tokens", post(create_token))
        .route("/api/v1/tokens/{name}", delete(revoke_token))
        .route("/api/v1/suppressions", post(suppress))
}

/// Authenticates the bearer token and checks that its role is one of `allowed`; the use (or the
/// refusal) is recorded in the audit log by the store.
fn authorize(
    store: &mut Store,
    headers: &HeaderMap,
    what: &str,
    allowed: &[Role],
) -> Result<Principal, ApiError> {
    let secret = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "a bearer token is required",
            )
        })?;
    let Some(principal) = store.authenticate(secret)? else {
        store.append_audit(AuditEvent::now(
            "api:unknown-token",
            "api.refused",
            json!({"what": what, "reason": "unknown or revoked token"}),
        ))?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "unknown or revoked token",
        ));
    };
    let allowed_here = allowed.iter().any(|r| r.name() == principal.role);
    let action = if allowed_here {
        "api.access"
    } else {
        "api.refused"
    };
    store.append_audit(AuditEvent::now(
        principal.actor(),
        action,
        json!({"what": what}),
    ))?;
    if !allowed_here {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("role {} may not {what}", principal.role),
        ));
    }
    Ok(principal)
}

/// Roles that may read the ledger and run history.
const READERS: &[Role] = &[Role::Analyst, Role::Auditor, Role::Admin];

/// Opens the store on the blocking pool, authorizes the caller for `what`, and runs `f` with the
/// node, the store and the caller.
async fn authorized<T: Send + 'static>(
    state: Arc<NodeState>,
    headers: HeaderMap,
    what: &'static str,
    allowed: &'static [Role],
    f: impl FnOnce(&NodeState, &mut Store, Principal) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    crate::server::blocking(move || {
        let mut store = Store::open(&state.store_path)?;
        let principal = authorize(&mut store, &headers, what, allowed)?;
        f(&state, &mut store, principal)
    })
    .await
}

fn unprocessable(code: &'static str, e: anyhow::Error) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, format!("{e:#}"))
}

async fn query_overlap(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Json(q): Json<OverlapQuery>,
) -> Result<Response, ApiError> {
    let principal = authorized(
        state.clone(),
        headers,
        "run a query",
        &[Role::Analyst],
        |_, _, p| Ok(p),
    )
    .await?;
    let report = crate::querier::run_query(&state.home, &q, &principal.actor())
        .await
        .map_err(|e| unprocessable("query_failed", e))?;
    Ok(Json(report).into_response())
}

async fn preview_overlap(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Json(q): Json<OverlapQuery>,
) -> Result<Response, ApiError> {
    authorized(
        state,
        headers,
        "preview a query",
        &[Role::Analyst],
        move |node, store, _| {
            let p = crate::querier::preview(store, &node.name, &q)
                .map_err(|e| unprocessable("preview_failed", e))?;
            Ok(Json(p).into_response())
        },
    )
    .await
}

#[derive(Deserialize)]
struct AgreementFilter {
    agreement: Option<String>,
}

async fn runs(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Query(f): Query<AgreementFilter>,
) -> Result<Response, ApiError> {
    authorized(state, headers, "list runs", READERS, move |_, store, _| {
        Ok(Json(store.runs(f.agreement.as_deref())?).into_response())
    })
    .await
}

async fn budget(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Query(f): Query<AgreementFilter>,
) -> Result<Response, ApiError> {
    authorized(
        state,
        headers,
        "read the budget",
        READERS,
        move |node, store, _| {
            let views = crate::compliance::budgets(store, &node.name, f.agreement.as_deref())
                .map_err(|e| unprocessable("budget", e))?;
            Ok(Json(views).into_response())
        },
    )
    .await
}

#[derive(Deserialize)]
struct Range {
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

async fn audit(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Query(r): Query<Range>,
) -> Result<Response, ApiError> {
    authorized(
        state,
        headers,
        "read the audit log",
        &[Role::Auditor],
        move |_, store, _| {
            let mut out = Vec::new();
            store.export_audit(
                &mut out,
                tandem_audit::ExportFormat::JsonLines,
                r.from_ms,
                r.to_ms,
            )?;
            Ok((
                [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
                out,
            )
                .into_response())
        },
    )
    .await
}

async fn agreements(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorized(state, headers, "list agreements", READERS, |_, store, _| {
        let list: Vec<_> = store
            .agreements()?
            .into_iter()
            .map(|a| {
                json!({
                    "id": a.id,
                    "status": a.status,
                    "agreement": serde_json::from_str::<serde_json::Value>(&a.doc_json).ok(),
                })
            })
            .collect();
        Ok(Json(list).into_response())
    })
    .await
}

#[derive(Deserialize)]
struct NewToken {
    name: String,
    role: String,
}

async fn create_token(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Json(t): Json<NewToken>,
) -> Result<Response, ApiError> {
    authorized(
        state,
        headers,
        "create a token",
        &[Role::Admin],
        move |_, store, admin| {
            let secret = store.create_token(&t.name, &t.role, &admin.actor())?;
            Ok((
                StatusCode::CREATED,
                Json(json!({"name": t.name, "role": t.role, "token": secret})),
            )
                .into_response())
        },
    )
    .await
}

async fn revoke_token(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    authorized(
        state,
        headers,
        "revoke a token",
        &[Role::Admin],
        move |_, store, admin| {
            store.revoke_token(&name, &admin.actor())?;
            Ok(StatusCode::NO_CONTENT.into_response())
        },
    )
    .await
}

#[derive(Deserialize)]
struct Suppression {
    id_kind: String,
    /// `raw` (default) or `sha256` (hex or Base64 of the normalised identifier).
    #[serde(default)]
    id_encoding: Option<String>,
    identifiers: Vec<String>,
}

/// Opt-out / deletion (PIPL Arts. 15, 24, 47; GDPR Arts. 17, 21): identifiers are normalised and
/// hashed on arrival, removed from every audience and suppressed from future imports.
async fn suppress(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Json(req): Json<Suppression>,
) -> Result<Response, ApiError> {
    authorized(
        state,
        headers,
        "suppress people",
        &[Role::Admin],
        move |node, store, admin| {
            let bad =
                |e: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_identifier", e);
            let kind: tandem_identity::IdKind =
                req.id_kind.parse().map_err(|e| bad(format!("{e}")))?;
            let encoding: tandem_identity::IdEncoding = req
                .id_encoding
                .as_deref()
                .unwrap_or("raw")
                .parse()
                .map_err(|e| bad(format!("{e}")))?;
            let normaliser = node.home.normaliser();
            let digests = req
                .identifiers
                .iter()
                .enumerate()
                .map(|(i, raw)| {
                    normaliser
                        .digest_encoded(kind, encoding, raw)
                        .map_err(|e| bad(format!("identifier #{}: {e}", i + 1)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let removed = store.delete_digests(&digests, &admin.actor())?;
            Ok(
                Json(json!({"requested": digests.len(), "deleted_members": removed}))
                    .into_response(),
            )
        },
    )
    .await
}

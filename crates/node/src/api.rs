//! The node's HTTP API for people: analysts run queries, auditors read the ledger and the audit
//! log, admins manage agreements and tokens. Every call needs a bearer token; tokens are stored
//! hashed, carry one role, can be revoked, and every use is written to the audit log.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use tandem_store::{AuditEvent, Principal, Store};

use crate::analysis::{self, Analysis};
use crate::error::{Code, NodeError, Result};
use crate::state::{Answer, HttpError, NodeState, blocking};

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

/// The API routes (merged into the node's router): one query and one preview route per
/// registered analysis (`/api/v1/query/<analysis>`), plus the original overlap routes.
pub fn routes() -> Router<Arc<NodeState>> {
    Router::new()
        .route("/api/v1/query/{analysis}", post(query))
        .route("/api/v1/query/{analysis}/preview", post(preview))
        .route("/api/v1/queries/overlap", post(query_overlap))
        .route("/api/v1/queries/overlap/preview", post(preview_overlap))
        .route("/api/v1/runs", get(runs))
        .route("/api/v1/budget", get(budget))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/agreements", get(agreements))
        .route("/api/v1/tokens", post(create_token))
        .route("/api/v1/tokens/{name}", delete(revoke_token))
        .route("/api/v1/suppressions", post(suppress))
        .route("/api/v1/whoami", get(whoami))
}

/// Authenticates the bearer token and checks that its role is one of `allowed`; the use (or the
/// refusal) is recorded in the audit log by the store.
fn authorize(
    store: &mut Store,
    headers: &HeaderMap,
    what: &str,
    allowed: &[Role],
) -> Result<Principal> {
    let secret = match bearer_token(headers) {
        Ok(secret) => secret,
        Err(reason) => {
            store.append_audit(AuditEvent::now(
                "api:no-token",
                "api.refused",
                json!({"what": what, "reason": reason}),
            ))?;
            return Err(NodeError::new(
                Code::Unauthenticated,
                format!("a bearer token is required ({reason})"),
            ));
        }
    };
    let Some(principal) = store.authenticate(secret)? else {
        store.append_audit(AuditEvent::now(
            "api:unknown-token",
            "api.refused",
            json!({"what": what, "reason": "unknown or revoked token"}),
        ))?;
        return Err(NodeError::new(
            Code::Unauthenticated,
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
        return Err(NodeError::new(
            Code::Forbidden,
            format!("role {} may not {what}", principal.role),
        ));
    }
    Ok(principal)
}

/// The token of an `Authorization: Bearer <token>` header. The scheme name is case-insensitive
/// (RFC 9110 §11.1, RFC 6750 §2.1), so `bearer` and `BEARER` are accepted. Errors: why there is
/// no token (no header, another scheme, an empty token), for the audit log.
fn bearer_token(headers: &HeaderMap) -> std::result::Result<&str, &'static str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or("no Authorization header")?
        .to_str()
        .map_err(|_| "the Authorization header is not visible ASCII")?;
    let (scheme, token) = value.trim().split_once(' ').ok_or("no bearer token")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("the Authorization scheme is not Bearer");
    }
    match token.trim() {
        "" => Err("no bearer token"),
        token => Ok(token),
    }
}

/// Throttles the API per source: a source over
/// [`crate::state::MAX_AUTH_FAILURES_PER_MINUTE`] failed authentications this minute gets 429
/// `too_many_requests` with `Retry-After` (the first such answer per minute is audited as
/// `api.throttled` with the count); every 401 answered is counted against its source.
pub async fn throttle(
    axum::extract::State(state): axum::extract::State<Arc<NodeState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let Some(crate::state::Source(source)) = req.extensions().get().copied() else {
        return next.run(req).await;
    };
    let now = crate::wire::now_ms();
    let failures = || {
        state
            .auth_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let throttled = failures().check(source, now);
    if let Some(t) = throttled {
        if t.first {
            let st = state.clone();
            let audited = blocking(move || {
                st.home.store()?.append_audit(AuditEvent::now(
                    format!("api:{source}"),
                    "api.throttled",
                    json!({"source": source.to_string(), "count": t.count,
                           "minute_start_ms": now - now.rem_euclid(60_000)}),
                ))?;
                Ok(())
            })
            .await;
            if let Err(e) = audited {
                return HttpError(e).into_response();
            }
        }
        let e = NodeError::new(
            Code::TooManyRequests,
            format!(
                "too many failed authentications from {source} this minute; retry in {} s",
                t.retry_after_s
            ),
        )
        .with_details(json!({"retry_after_s": t.retry_after_s}));
        let mut response = HttpError(e).into_response();
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(t.retry_after_s),
        );
        return response;
    }
    let response = next.run(req).await;
    if response.status() == axum::http::StatusCode::UNAUTHORIZED {
        failures().record(source, now);
    }
    response
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
    f: impl FnOnce(&NodeState, &mut Store, Principal) -> Result<T> + Send + 'static,
) -> Result<T> {
    blocking(move || {
        let mut store = state.home.store()?;
        let principal = authorize(&mut store, &headers, what, allowed)?;
        f(&state, &mut store, principal)
    })
    .await
}

/// A JSON request body (400 `bad_request`, in the node's error body, if it does not parse).
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| NodeError::bad_request(format!("{what} does not parse: {e}")))
}

/// The body of a query or preview request.
fn query_body(body: &[u8]) -> Result<analysis::Query> {
    json_body(body, "the query")
}

async fn run(
    state: Arc<NodeState>,
    headers: HeaderMap,
    analysis: &'static dyn Analysis,
    body: &[u8],
) -> Answer {
    let principal = authorized(
        state.clone(),
        headers,
        "run a query",
        &[Role::Analyst],
        |_, _, p| Ok(p),
    )
    .await?;
    let q = query_body(body)?;
    let report = crate::querier::run_query(&state.home, analysis, &q, &principal.actor()).await?;
    Ok(Json(report).into_response())
}

async fn run_preview(
    state: Arc<NodeState>,
    headers: HeaderMap,
    analysis: &'static dyn Analysis,
    body: axum::body::Bytes,
) -> Answer {
    let p = authorized(
        state,
        headers,
        "preview a query",
        &[Role::Analyst],
        move |node, store, _| {
            crate::querier::preview(store, &node.name, analysis, &query_body(&body)?)
        },
    )
    .await?;
    Ok(Json(p).into_response())
}

async fn query(
    State(state): State<Arc<NodeState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    run(state, headers, analysis::find(&name)?, &body).await
}

async fn preview(
    State(state): State<Arc<NodeState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    run_preview(state, headers, analysis::find(&name)?, body).await
}

async fn query_overlap(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    run(state, headers, &analysis::overlap::Overlap, &body).await
}

async fn preview_overlap(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    run_preview(state, headers, &analysis::overlap::Overlap, body).await
}

/// `{name, role, node}`: the caller's token name and role and this node's party name (the web
/// console shows the pages of the role).
async fn whoami(State(state): State<Arc<NodeState>>, headers: HeaderMap) -> Answer {
    let me = authorized(state, headers, "identify itself", READERS, |node, _, p| {
        Ok(json!({"name": p.name, "role": p.role, "node": node.name}))
    })
    .await?;
    Ok(Json(me).into_response())
}

#[derive(Deserialize)]
struct AgreementFilter {
    agreement: Option<String>,
}

async fn runs(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Query(f): Query<AgreementFilter>,
) -> Answer {
    let runs = authorized(state, headers, "list runs", READERS, move |_, store, _| {
        Ok(store.runs(f.agreement.as_deref())?)
    })
    .await?;
    Ok(Json(runs).into_response())
}

async fn budget(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Query(f): Query<AgreementFilter>,
) -> Answer {
    let views = authorized(
        state,
        headers,
        "read the budget",
        READERS,
        move |node, store, _| crate::compliance::budgets(store, &node.name, f.agreement.as_deref()),
    )
    .await?;
    Ok(Json(views).into_response())
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
) -> Answer {
    let out = authorized(
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
            Ok(out)
        },
    )
    .await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        out,
    )
        .into_response())
}

async fn agreements(State(state): State<Arc<NodeState>>, headers: HeaderMap) -> Answer {
    let list = authorized(state, headers, "list agreements", READERS, |_, store, _| {
        let list: Vec<_> = store
            .agreements()?
            .into_iter()
            .map(|a| {
                json!({
                    "id": a.id,
                    "status": a.status,
                    "agreement": serde_json::from_str::<serde_json::Value>(&a.doc_json).ok(),
                    "protocol": crate::v2::protocol_summary(&a.doc_json),
                })
            })
            .collect();
        Ok(list)
    })
    .await?;
    Ok(Json(list).into_response())
}

#[derive(Deserialize)]
struct NewToken {
    name: String,
    role: String,
}

async fn create_token(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let created = authorized(
        state,
        headers,
        "create a token",
        &[Role::Admin],
        move |_, store, admin| {
            let t: NewToken = json_body(&body, "the token request")?;
            let secret = store.create_token(&t.name, &t.role, &admin.actor())?;
            Ok(json!({"name": t.name, "role": t.role, "token": secret}))
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn revoke_token(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    authorized(
        state,
        headers,
        "revoke a token",
        &[Role::Admin],
        move |_, store, admin| Ok(store.revoke_token(&name, &admin.actor())?),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
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
    body: axum::body::Bytes,
) -> Answer {
    let done = authorized(
        state,
        headers,
        "suppress people",
        &[Role::Admin],
        move |node, store, admin| {
            let req: Suppression = json_body(&body, "the suppression request")?;
            let bad = |e: String| NodeError::new(Code::Invalid, e);
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
            Ok(json!({"requested": digests.len(), "deleted_members": removed}))
        },
    )
    .await?;
    Ok(Json(done).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::AUTHORIZATION,
            value.parse().expect("header value"),
        );
        headers
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for value in ["Bearer tok", "bearer tok", "BEARER tok", "bEaReR  tok "] {
            assert_eq!(bearer_token(&with_auth(value)), Ok("tok"), "{value}");
        }
    }

    #[test]
    fn other_schemes_and_missing_tokens_are_refused_with_a_reason() {
        assert_eq!(
            bearer_token(&HeaderMap::new()),
            Err("no Authorization header")
        );
        assert_eq!(
            bearer_token(&with_auth("Basic YWxhZGRpbjpvcGVuc2VzYW1l")),
            Err("the Authorization scheme is not Bearer")
        );
        assert_eq!(bearer_token(&with_auth("Bearer")), Err("no bearer token"));
        assert_eq!(
            bearer_token(&with_auth("Bearer   ")),
            Err("no bearer token")
        );
    }

    #[test]
    fn every_refusal_is_audited_and_any_case_of_bearer_is_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(dir.path().join("store.db")).expect("store");
        let secret = store
            .create_token("ana", Role::Analyst.name(), "test")
            .expect("token");
        let refusals = |store: &Store| {
            store
                .audit_entries(None, None)
                .expect("audit")
                .iter()
                .filter(|e| e.event.action == "api.refused")
                .count()
        };
        for headers in [
            HeaderMap::new(),
            with_auth("Basic YWxhZGRpbjpvcGVuc2VzYW1l"),
        ] {
            let before = refusals(&store);
            let e = authorize(&mut store, &headers, "read runs", READERS).expect_err("refused");
            assert_eq!(e.code(), Code::Unauthenticated);
            assert_eq!(refusals(&store), before + 1);
        }
        for scheme in ["bearer", "BEARER", "Bearer"] {
            let headers = with_auth(&format!("{scheme} {secret}"));
            let p = authorize(&mut store, &headers, "read runs", READERS).expect("accepted");
            assert_eq!(p.role, Role::Analyst.name());
        }
    }
}

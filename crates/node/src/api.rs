//! The node's HTTP API for people: analysts run queries, auditors read the ledger and the audit
//! log, admins manage agreements and tokens. Every call needs a bearer token; tokens are stored
//! hashed, carry one role, can be revoked, every refusal is written to the audit log and every use is counted
//! there per token, operation and minute ([`crate::state::AccessTally`]).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tandem_store::{AuditEvent, Principal, RunRecord, Store};
use utoipa::{IntoParams, ToSchema};

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

/// Declares the people's API in one place: each line is `method "path" => handler;`. It
/// expands to [`routes`] (the router serving exactly these) and [`ROUTES`] (their methods and
/// paths, which `crate::openapi`'s tests compare with the OpenAPI document; a route added here
/// without its `#[utoipa::path]` and its line in `crate::openapi::ApiDoc` fails them).
macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:ident;)*) => {
        /// `(method, path)` of every route [`routes`] serves (methods in lower case, paths in
        /// axum's `{param}` form, which is also OpenAPI's).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        /// The API routes (merged into the node's router): one query and one preview route per
        /// registered analysis (`/api/v1/query/<analysis>`), plus the original overlap routes.
        pub fn routes() -> Router<Arc<NodeState>> {
            Router::new()$(.route($path, $method($handler)))*
        }

        /// The routes' operations for the OpenAPI document ([`crate::openapi::document`]).
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($handler),*))]
        pub struct ApiPaths;
    };
}

api_routes! {
    get "/api/v1/analyses" => analyses;
    post "/api/v1/query/{analysis}" => query;
    post "/api/v1/query/{analysis}/preview" => preview;
    post "/api/v1/queries/overlap" => query_overlap;
    post "/api/v1/queries/overlap/preview" => preview_overlap;
    post "/api/v1/models" => fit_model;
    get "/api/v1/models" => list_models;
    post "/api/v1/models/preview" => preview_model;
    get "/api/v1/models/{id}" => show_model;
    get "/api/v1/models/{id}/score-table" => model_score_table;
    get "/api/v1/runs" => runs;
    get "/api/v1/runs/{id}" => run_status;
    get "/api/v1/results" => results;
    get "/api/v1/results/{id}" => result;
    get "/api/v1/results/{id}/export" => export_result;
    post "/api/v1/results/{id}/partner-export" => partner_export_result;
    get "/api/v1/budget" => budget;
    get "/api/v1/audit" => audit;
    post "/api/v1/audit/verify" => verify_audit;
    get "/api/v1/agreements" => agreements;
    post "/api/v1/tokens" => create_token;
    delete "/api/v1/tokens/{name}" => revoke_token;
    post "/api/v1/suppressions" => suppress;
    get "/api/v1/whoami" => whoami;
}

/// Authenticates the bearer token and checks that its role is one of `allowed`. A refusal is
/// written to the audit log at once; a permitted use is counted in `access` and written as one
/// `api.access` entry per (token, operation, minute) (see [`crate::state::AccessTally`]).
fn authorize(
    store: &mut Store,
    access: &crate::state::AccessTally,
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
    if !allowed.iter().any(|r| r.name() == principal.role) {
        store.append_audit(AuditEvent::now(
            principal.actor(),
            "api.refused",
            json!({"what": what}),
        ))?;
        return Err(NodeError::new(
            Code::Forbidden,
            format!("role {} may not {what}", principal.role),
        ));
    }
    access.record(&principal.actor(), what, crate::wire::now_ms());
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
        return HttpError(e).into_response();
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
        let principal = authorize(&mut store, &state.access, &headers, what, allowed)?;
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

/// Seconds an analyst refused for the query concurrency bound is asked to wait.
const QUERY_RETRY_AFTER_S: u64 = 2;

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
    // Over the configured concurrency: refuse at once (the analyst retries), never queue a
    // request that may wait for many minutes.
    let _slot = state.query_slots.try_acquire().map_err(|_| {
        let limit = state.home.config.limits.max_concurrent_queries;
        NodeError::new(
            Code::TooManyRequests,
            format!("this node already runs {limit} queries (limits.max_concurrent_queries); retry in {QUERY_RETRY_AFTER_S} s"),
        )
        .with_details(json!({"retry_after_s": QUERY_RETRY_AFTER_S, "max_concurrent_queries": limit}))
    })?;
    let report = crate::querier::run_query(&state.home, analysis, &q, &principal.actor()).await?;
    Ok(Json(report).into_response())
}

async fn run_preview(
    state: Arc<NodeState>,
    headers: HeaderMap,
    analysis: &'static dyn Analysis,
    body: axum::body::Bytes,
) -> Answer {
    authorized(
        state.clone(),
        headers,
        "preview a query",
        &[Role::Analyst],
        |_, _, _| Ok(()),
    )
    .await?;
    // With the peer's budget (a signed, uncharged pre-check), so the preview warns of a run the
    // peer would refuse.
    let p = crate::querier::preview_with_peer(&state.home, analysis, &query_body(&body)?).await?;
    Ok(Json(p).into_response())
}

/// The analyses this node runs, with the inputs each takes (the console's Ask page draws its
/// forms from this list, so a new analysis of the registry appears there with no console change).
#[utoipa::path(get, path = "/api/v1/analyses", tag = "queries",
    responses((status = 200, description = "The registry", body = Vec<analysis::AnalysisInfo>)))]
async fn analyses(State(state): State<Arc<NodeState>>, headers: HeaderMap) -> Answer {
    authorized(state, headers, "list analyses", READERS, |_, _, _| Ok(())).await?;
    Ok(Json(analysis::catalogue()).into_response())
}

/// Runs a query of `analysis` (spends budget unless a stored answer is returned).
#[utoipa::path(post, path = "/api/v1/query/{analysis}", tag = "queries", params(("analysis" = String, Path, description = "A name of the analysis registry (`GET /api/v1/analyses`)")),
    request_body = analysis::Query,
    responses((status = 200, description = "The report", body = analysis::Report)))]
async fn query(
    State(state): State<Arc<NodeState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    run(state, headers, analysis::find(&name)?, &body).await
}

/// What a query of `analysis` would cost and how precise it would be (free).
#[utoipa::path(post, path = "/api/v1/query/{analysis}/preview", tag = "queries", params(("analysis" = String, Path, description = "A name of the analysis registry (`GET /api/v1/analyses`)")),
    request_body = analysis::Query,
    responses((status = 200, description = "The preview", body = crate::querier::Preview)))]
async fn preview(
    State(state): State<Arc<NodeState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    run_preview(state, headers, analysis::find(&name)?, body).await
}

/// Runs an overlap query (same as `POST /api/v1/query/overlap`).
#[utoipa::path(post, path = "/api/v1/queries/overlap", tag = "queries",
    request_body = analysis::Query,
    responses((status = 200, description = "The report", body = analysis::Report)))]
async fn query_overlap(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    run(state, headers, &analysis::overlap::Overlap, &body).await
}

/// Previews an overlap query (same as `POST /api/v1/query/overlap/preview`).
#[utoipa::path(post, path = "/api/v1/queries/overlap/preview", tag = "queries",
    request_body = analysis::Query,
    responses((status = 200, description = "The preview", body = crate::querier::Preview)))]
async fn preview_overlap(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    run_preview(state, headers, &analysis::overlap::Overlap, body).await
}

/// `{name, role, node}`: the caller's token name and role and this node's party name (the web
/// console shows the pages of the role).
fn model_body(body: &[u8]) -> Result<crate::model::ModelRequest> {
    json_body(body, "the model request")
}

/// `POST /api/v1/models`: fits a model (its marginals are charged run by run, as queries).
#[utoipa::path(post, path = "/api/v1/models", tag = "models", request_body(content = Object, description = "`{agreement_id, features, peer_label, epsilon, pairs?, feature_joint?}` (`model-v1.md` §7)"),
    responses((status = 201, description = "The fitted, stored model", body = Object)))]
async fn fit_model(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let principal = authorized(
        state.clone(),
        headers,
        "fit a model",
        &[Role::Analyst],
        |_, _, p| Ok(p),
    )
    .await?;
    let req = model_body(&body)?;
    let record = crate::model::fit(&state.home, &req, &principal.actor()).await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// `POST /api/v1/models/preview`: the marginals, the ε split and the batch's cost (free).
#[utoipa::path(post, path = "/api/v1/models/preview", tag = "models", request_body(content = Object, description = "As `POST /api/v1/models`"),
    responses((status = 200, description = "The planned marginals and their cost per party", body = Object)))]
async fn preview_model(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let p = authorized(
        state,
        headers,
        "preview a model",
        &[Role::Analyst],
        move |node, store, _| crate::model::preview(store, &node.name, &model_body(&body)?),
    )
    .await?;
    Ok(Json(p).into_response())
}

/// `GET /api/v1/models`: stored models, newest first.
#[utoipa::path(get, path = "/api/v1/models", tag = "models", params(AgreementFilter),
    responses((status = 200, description = "Stored models", body = Vec<Object>)))]
async fn list_models(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Query(f): Query<AgreementFilter>,
) -> Answer {
    let list = authorized(
        state,
        headers,
        "list models",
        &[Role::Analyst],
        move |_, store, _| crate::model::list(store, f.resolve(store)?.as_deref()),
    )
    .await?;
    Ok(Json(list).into_response())
}

/// `GET /api/v1/models/{id}`: a stored model (free).
#[utoipa::path(get, path = "/api/v1/models/{id}", tag = "models", params(("id" = String, Path, description = "A stored model's id")),
    responses((status = 200, description = "The model with coefficients, intervals, segments and cross-tabs", body = Object)))]
async fn show_model(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let record = authorized(
        state,
        headers,
        "read a model",
        &[Role::Analyst],
        move |_, store, _| crate::model::load(store, &id),
    )
    .await?;
    Ok(Json(record).into_response())
}

#[derive(Deserialize)]
struct ScoreTableQuery {
    method: Option<crate::model::Which>,
    format: Option<String>,
}

/// `GET /api/v1/models/{id}/score-table`: feature combination → score (free).
#[utoipa::path(get, path = "/api/v1/models/{id}/score-table", tag = "models", params(("id" = String, Path, description = "A stored model's id"), ("method" = Option<String>, Query, description = "`logistic` (default) or `naive_bayes`"), ("format" = Option<String>, Query, description = "`json` (default) or `csv`")),
    responses((status = 200, description = "The score table", content((Object = "application/json"), (String = "text/csv")))))]
async fn model_score_table(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ScoreTableQuery>,
) -> Answer {
    let which = q.method.unwrap_or(crate::model::Which::Logistic);
    let record = authorized(
        state,
        headers,
        "read a model",
        &[Role::Analyst],
        move |_, store, _| crate::model::load(store, &id),
    )
    .await?;
    match q.format.as_deref() {
        Some("csv") => Ok((
            [(axum::http::header::CONTENT_TYPE, "text/csv")],
            record.score_table_csv(which)?,
        )
            .into_response()),
        None | Some("json") => Ok(Json(record.score_table(which)?).into_response()),
        Some(other) => {
            Err(NodeError::bad_request(format!("format {other:?}: expected json or csv")).into())
        }
    }
}

#[utoipa::path(get, path = "/api/v1/whoami", tag = "session",
    responses((status = 200, description = "The caller", body = WhoAmI)))]
async fn whoami(State(state): State<Arc<NodeState>>, headers: HeaderMap) -> Answer {
    let me = authorized(state, headers, "identify itself", READERS, |node, _, p| {
        Ok(WhoAmI {
            name: p.name,
            role: p.role,
            node: node.name.clone(),
        })
    })
    .await?;
    Ok(Json(me).into_response())
}

/// The caller (`GET /api/v1/whoami`).
#[derive(Serialize, ToSchema)]
struct WhoAmI {
    /// The token's name.
    name: String,
    /// Its role: `analyst`, `auditor` or `admin`.
    role: String,
    /// This node's party name.
    node: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AgreementFilter {
    /// Only this agreement: its hex id or a unique prefix of at least 8 hex characters (404
    /// `not_found` if none, 400 `bad_request` listing the candidates if several, match).
    agreement: Option<String>,
}

impl AgreementFilter {
    /// The whole id of the agreement filtered on ([`crate::agreements::resolve_filter`]).
    fn resolve(&self, store: &Store) -> Result<Option<String>> {
        crate::agreements::resolve_filter(store, self.agreement.as_deref())
    }
}

/// One run of the history (`GET /api/v1/runs`): the store's record, less what the caller's role
/// does not need.
#[derive(Serialize, ToSchema)]
struct RunView {
    /// Run id (hex).
    run_id: String,
    /// Agreement id (hex).
    agreement_id: String,
    /// `querier` or `responder`.
    role: String,
    /// Who asked (`token:<name>(<role>)`, `peer:<party>`).
    actor: String,
    /// The run's parameters (JSON text: protocol, columns, join key, ε).
    params_json: String,
    /// `started`, `finished`, `failed` or `refused`.
    status: String,
    /// ε charged.
    epsilon: f64,
    /// δ charged.
    delta: f64,
    /// ρ charged.
    rho: f64,
    /// Budget charge: `reserved`, `spent`, `released`, or none (refused runs charge nothing).
    charge: Option<String>,
    /// Ledger route that admitted the charge: `basic` or `zcdp`.
    route: Option<String>,
    /// Start (or refusal) time, ms since the epoch.
    started_at_ms: i64,
    /// End time, ms since the epoch.
    ended_at_ms: Option<i64>,
    /// The report (JSON text), until purged.
    result_json: Option<String>,
    /// Failure or refusal reason.
    error: Option<String>,
    /// Query fingerprint (hex; auditors and admins only: it ties runs of the same question
    /// together in the audit log).
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    /// SHA-256 (hex) of the output (auditors and admins only: it matches the audit log's entry).
    #[serde(skip_serializing_if = "Option::is_none")]
    output_sha256: Option<String>,
}

impl RunView {
    /// The record as `role` sees it.
    fn new(r: RunRecord, role: &str) -> RunView {
        let digests = role != Role::Analyst.name();
        RunView {
            run_id: r.run_id,
            agreement_id: r.agreement_id,
            role: r.role,
            actor: r.actor,
            params_json: r.params_json,
            status: r.status,
            epsilon: r.epsilon,
            delta: r.delta,
            rho: r.rho,
            charge: r.charge,
            route: r.route,
            started_at_ms: r.started_at_ms,
            ended_at_ms: r.ended_at_ms,
            result_json: r.result_json,
            error: r.error,
            fingerprint: r.fingerprint.filter(|_| digests),
            output_sha256: r.output_sha256.filter(|_| digests),
        }
    }
}

/// The run history (analysts do not get the query fingerprints and output digests: those are
/// for auditors).
#[utoipa::path(get, path = "/api/v1/runs", tag = "compliance", params(AgreementFilter),
    responses((status = 200, description = "Runs, oldest first", body = Vec<RunView>)))]
async fn runs(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Query(f): Query<AgreementFilter>,
) -> Answer {
    let runs = authorized(state, headers, "list runs", READERS, move |_, store, p| {
        let runs = store.runs(f.resolve(store)?.as_deref())?;
        Ok(runs
            .into_iter()
            .map(|r| RunView::new(r, &p.role))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(runs).into_response())
}

/// One run and, while this node streams it (psi-ca-v1 §10) or since, its progress.
#[derive(Serialize, ToSchema)]
struct RunStatus {
    /// The run's record.
    run: RunView,
    /// Records done, total, rate and ETA of a streamed run this process took part in (absent
    /// for a whole-message run, or after a restart).
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<crate::stream::Progress>,
}

/// One run's status: its record and a streamed run's progress (items done / total, rate, ETA).
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "compliance", params(("id" = String, Path, description = "The run id (hex)")),
    responses((status = 200, description = "The run and its progress", body = RunStatus)))]
async fn run_status(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let status = authorized(state, headers, "show a run", READERS, move |_, store, p| {
        let run = store
            .runs(None)?
            .into_iter()
            .find(|r| r.run_id == id)
            .ok_or_else(|| {
                NodeError::not_found(format!(
                    "no run {id}: give its whole id as `tandem runs` prints it"
                ))
            })?;
        Ok(RunStatus {
            run: RunView::new(run, &p.role),
            progress: crate::stream::progress(&id),
        })
    })
    .await?;
    Ok(Json(status).into_response())
}

/// Stored results, newest first (no report bodies): analysts, admins and auditors.
#[utoipa::path(get, path = "/api/v1/results", tag = "results", params(AgreementFilter),
    responses((status = 200, description = "Stored results, newest first", body = Vec<crate::results::ResultSummary>)))]
async fn results(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Query(f): Query<AgreementFilter>,
) -> Answer {
    let list = authorized(
        state,
        headers,
        "list results",
        READERS,
        move |_, store, _| crate::results::list(store, f.resolve(store)?.as_deref()),
    )
    .await?;
    Ok(Json(list).into_response())
}

/// Roles that may read a stored result's numbers.
const RESULT_READERS: &[Role] = &[Role::Analyst, Role::Admin];

/// One stored result with its report (free: no budget, no peer).
#[utoipa::path(get, path = "/api/v1/results/{id}", tag = "results", params(("id" = String, Path, description = "A stored result's id")),
    responses((status = 200, description = "The stored result with its report", body = crate::results::StoredReport)))]
async fn result(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let r = authorized(
        state,
        headers,
        "read a result",
        RESULT_READERS,
        move |_, store, p| crate::results::show(store, &id, &p.actor()),
    )
    .await?;
    Ok(Json(r).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ExportFormat {
    /// `csv` (the cells) or `json` (the report whole; default).
    format: Option<String>,
}

/// A stored result as CSV (the analysis's cells) or JSON (the report whole).
#[utoipa::path(get, path = "/api/v1/results/{id}/export", tag = "results", params(("id" = String, Path, description = "A stored result's id"), ExportFormat),
    responses((status = 200, description = "The result as CSV or JSON", content((String = "text/csv"), (Object = "application/json")))))]
async fn export_result(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(f): Query<ExportFormat>,
) -> Answer {
    let (format, content_type) = match f.format.as_deref().unwrap_or("json") {
        "json" => (analysis::Format::Json, "application/json"),
        "csv" => (analysis::Format::Csv, "text/csv; charset=utf-8"),
        other => {
            return Err(
                NodeError::bad_request(format!("format {other:?}: expected csv or json")).into(),
            );
        }
    };
    let text = authorized(
        state,
        headers,
        "export a result",
        RESULT_READERS,
        move |_, store, p| crate::results::render(store, &id, format, &p.actor()),
    )
    .await?;
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], text).into_response())
}

/// The body of a partner export request.
#[derive(Deserialize, ToSchema)]
struct PartnerExportRequest {
    /// ε of the noise added to every cell (default: the report's ε), charged to this node.
    #[serde(default)]
    epsilon: Option<f64>,
    /// `json` (default) or `csv`.
    #[serde(default)]
    format: Option<String>,
}

/// A stored result re-noised for the partner: this node's own fresh noise on every cell,
/// charged to its budget before anything is output (403 `budget_exceeded` says which cap and
/// what is left). Safe to share with the responder, unlike `/export` (querier-internal).
#[utoipa::path(post, path = "/api/v1/results/{id}/partner-export", tag = "results",
    params(("id" = String, Path, description = "A stored result's id")),
    request_body = PartnerExportRequest,
    responses((status = 200, description = "The partner export as JSON or CSV", content((crate::results::PartnerExport = "application/json"), (String = "text/csv")))))]
async fn partner_export_result(
    State(state): State<Arc<NodeState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let req: PartnerExportRequest = if body.is_empty() {
        PartnerExportRequest {
            epsilon: None,
            format: None,
        }
    } else {
        json_body(&body, "the partner export request")?
    };
    let (format, content_type) = match req.format.as_deref().unwrap_or("json") {
        "json" => (analysis::Format::Json, "application/json"),
        "csv" => (analysis::Format::Csv, "text/csv; charset=utf-8"),
        other => {
            return Err(
                NodeError::bad_request(format!("format {other:?}: expected csv or json")).into(),
            );
        }
    };
    let epsilon = req.epsilon;
    let text = authorized(
        state,
        headers,
        "export a result for the partner",
        &[Role::Analyst],
        move |node, store, p| {
            let export =
                crate::results::partner_export(store, &node.name, &id, epsilon, &p.actor())?;
            crate::results::render_partner_export(&export, format)
        },
    )
    .await?;
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], text).into_response())
}

/// Budgets of every agreement (or one).
#[utoipa::path(get, path = "/api/v1/budget", tag = "compliance", params(AgreementFilter),
    responses((status = 200, description = "One view per agreement", body = Vec<crate::compliance::BudgetReport>)))]
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
        move |node, store, _| {
            crate::compliance::budgets(store, &node.name, f.resolve(store)?.as_deref())
        },
    )
    .await?;
    Ok(Json(views).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Range {
    /// Entries at or after this time (ms since the epoch).
    from_ms: Option<i64>,
    /// Entries before this time (ms since the epoch).
    to_ms: Option<i64>,
}

/// The audit log (auditor), JSON lines: entries and the signed checkpoints covering them.
#[utoipa::path(get, path = "/api/v1/audit", tag = "compliance", params(Range),
    responses((status = 200, description = "JSON lines (`tandem audit verify --file` checks them)",
        content_type = "application/x-ndjson", body = String)))]
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

/// Verifies the audit log as `tandem audit verify --dir` does (auditor, admin): the hash chain
/// from genesis and every signed checkpoint against this node's key. A log that does not verify
/// is a 200 with `ok: false`, the first bad entry and the problem.
#[utoipa::path(post, path = "/api/v1/audit/verify", tag = "compliance",
    responses((status = 200, description = "The verification", body = crate::compliance::AuditVerification)))]
async fn verify_audit(State(state): State<Arc<NodeState>>, headers: HeaderMap) -> Answer {
    let v = authorized(
        state,
        headers,
        "verify the audit log",
        &[Role::Auditor, Role::Admin],
        |node, _, _| crate::compliance::verify_audit(&node.home),
    )
    .await?;
    Ok(Json(v).into_response())
}

/// The agreements this node holds, with their status.
#[utoipa::path(get, path = "/api/v1/agreements", tag = "agreements",
    responses((status = 200, description = "Agreements", body = Vec<AgreementSummary>)))]
async fn agreements(State(state): State<Arc<NodeState>>, headers: HeaderMap) -> Answer {
    let list = authorized(state, headers, "list agreements", READERS, |_, store, p| {
        let analyst = p.role == Role::Analyst.name();
        let list: Vec<_> = store
            .agreements()?
            .into_iter()
            .map(|a| AgreementSummary {
                agreement: serde_json::from_str(&a.doc_json)
                    .ok()
                    .map(|doc| if analyst { without_keys(doc) } else { doc }),
                protocol: crate::v2::protocol_summary(&a.doc_json),
                id: a.id,
                status: a.status,
            })
            .collect();
        Ok(list)
    })
    .await?;
    Ok(Json(list).into_response())
}

/// An agreement this node holds (`GET /api/v1/agreements`).
#[derive(Serialize, ToSchema)]
struct AgreementSummary {
    /// Agreement id (hex).
    id: String,
    /// `proposed`, `active`, `expired`, …
    status: String,
    /// The signed agreement document (`protocols/agreement-v1.md`; for analysts without the
    /// parties' keys, and each signature `true`); null if it does not parse.
    agreement: Option<serde_json::Value>,
    /// The agreement's protocol and what it guarantees each side (`{"protocol", "threat_model":
    /// {"responder", "querier"}}`).
    #[schema(value_type = Object)]
    protocol: serde_json::Value,
}

/// An agreement document without what only nodes and auditors use (the parties' signing keys
/// and TLS certificate digests; each signature becomes `true`): analysts read its terms. The ids stay: they are
/// how the API names agreements and runs.
fn without_keys(mut doc: serde_json::Value) -> serde_json::Value {
    // Which parties signed stays (the Agreements page says so); the signatures do not.
    if let Some(signatures) = doc.get_mut("signatures").and_then(|s| s.as_object_mut()) {
        for signed in signatures.values_mut() {
            *signed = serde_json::Value::Bool(true);
        }
    }
    if let Some(parties) = doc
        .pointer_mut("/terms/parties")
        .and_then(|p| p.as_array_mut())
    {
        for party in parties.iter_mut().filter_map(|p| p.as_object_mut()) {
            party.remove("signing_key");
            party.remove("tls_cert_sha256");
        }
    }
    doc
}

/// The body of `POST /api/v1/tokens`.
#[derive(Deserialize, ToSchema)]
struct NewToken {
    /// Token name (unique among active tokens).
    name: String,
    /// `analyst`, `auditor` or `admin`.
    role: String,
}

/// A new token: its secret is shown once.
#[derive(Serialize, ToSchema)]
struct CreatedToken {
    /// Token name.
    name: String,
    /// Its role.
    role: String,
    /// The bearer secret (`tdm_…`).
    token: String,
}

/// Creates a token (admin); its secret is shown once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "admin", request_body = NewToken,
    responses((status = 201, description = "The token", body = CreatedToken)))]
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
            Ok(CreatedToken {
                name: t.name,
                role: t.role,
                token: secret,
            })
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Revokes a token (admin).
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "admin",
    params(("name" = String, Path, description = "The token's name")),
    responses((status = 204, description = "Revoked")))]
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

/// The body of `POST /api/v1/suppressions`.
#[derive(Deserialize, ToSchema)]
struct Suppression {
    /// Identifier kind (`email`, `phone`, …).
    id_kind: String,
    /// `raw` (default) or `sha256` (hex or Base64 of the normalised identifier).
    #[serde(default)]
    id_encoding: Option<String>,
    /// The identifiers.
    identifiers: Vec<String>,
}

/// What a suppression removed.
#[derive(Serialize, ToSchema)]
struct Suppressed {
    /// Identifiers received.
    requested: usize,
    /// Members deleted from the audiences.
    deleted_members: u64,
}

/// Opt-out / deletion (PIPL Arts. 15, 24, 47; GDPR Arts. 17, 21): identifiers are normalised and
/// hashed on arrival, removed from every audience and suppressed from future imports.
#[utoipa::path(post, path = "/api/v1/suppressions", tag = "admin", request_body = Suppression,
    responses((status = 200, description = "What was removed", body = Suppressed)))]
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
            Ok(Suppressed {
                requested: digests.len(),
                deleted_members: removed,
            })
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
        let access = crate::state::AccessTally::default();
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
            let e = authorize(&mut store, &access, &headers, "read runs", READERS)
                .expect_err("refused");
            assert_eq!(e.code(), Code::Unauthenticated);
            assert_eq!(refusals(&store), before + 1);
        }
        for scheme in ["bearer", "BEARER", "Bearer"] {
            let headers = with_auth(&format!("{scheme} {secret}"));
            let p =
                authorize(&mut store, &access, &headers, "read runs", READERS).expect("accepted");
            assert_eq!(p.role, Role::Analyst.name());
        }
        // The three uses are one count, written as one entry once the minute is over.
        let before = store.audit_entries(None, None).expect("audit").len();
        let later = crate::wire::now_ms() + 60_000;
        let events = access.take(later, false);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, "api.access");
        assert_eq!(events[0].details["count"], 3);
        assert_eq!(events[0].details["what"], "read runs");
        assert_eq!(store.append_audit_batch(events).expect("batch"), 1);
        assert_eq!(
            store.audit_entries(None, None).expect("audit").len(),
            before + 1
        );
        assert!(access.take(later, true).is_empty());
    }
}

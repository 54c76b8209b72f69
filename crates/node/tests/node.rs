//! Node-level tests with real HTTPS servers on loopback, in process, so that a test can replay
//! or tamper with exactly the bytes a node sent.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use tandem_node::analysis::Analysis;
use tandem_node::analysis::overlap::Overlap;
use tandem_node::client::{CallError, Peer};
use tandem_node::querier::{Prepared, prepare_query, run_query};
use tandem_node::state::NodeState;
use tandem_node::wire::{
    Envelope, MAX_FRAME_JSON, MAX_SKEW_MS, PSI_PATH, PSI_REQUEST, RunOpening, SignedHead, frame,
    parse_fingerprint, unframe,
};
use tandem_testkit::NodePair as Fixture;
use tower::ServiceExt;

fn query(f: &Fixture) -> tandem_node::analysis::Query {
    f.query()
}

async fn fixture() -> Fixture {
    Fixture::start().await
}

/// Builds acme's signed first message of a fresh run.
fn signed_request(f: &Fixture) -> (Envelope, Vec<u8>, Vec<(&'static str, String)>) {
    let prepared = prepare_query(
        &f.acme.store_path(),
        &f.acme.key,
        "acme",
        &Overlap,
        &query(f),
        "test",
    )
    .expect("prepare");
    let Prepared::Fresh(p) = prepared else {
        panic!("fresh run expected")
    };
    let (body, headers) = p.signed_request(&f.acme.key);
    let env = Envelope::from_headers(&header_map(&headers))
        .expect("envelope")
        .0;
    (env, body, headers)
}

fn header_map(pairs: &[(&'static str, String)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, v.parse().expect("header value"));
    }
    h
}

fn peer(f: &Fixture) -> Peer {
    Peer {
        url: f.shopx.config.public_url.clone(),
        cert_sha256: parse_fingerprint(&f.shopx.tls_fingerprint()).expect("fp"),
    }
}

async fn post(
    f: &Fixture,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> (StatusCode, String) {
    let r = peer(f)
        .post(PSI_PATH, headers, body, Duration::from_secs(60), 1 << 26)
        .await
        .expect("call");
    let text = if r.status.is_success() {
        String::new()
    } else {
        String::from_utf8_lossy(&r.body).into_owned()
    };
    (r.status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_runs_over_https() {
    let f = fixture().await;
    let report = run_query(&f.acme, &Overlap, &query(&f), "test")
        .await
        .expect("query");
    assert_eq!(report.cells.len(), 3 * 3);
    // Truth: p150..p299 are shared; x = even, y = odd; gold = multiple of 3.
    let truth = |seg: usize, gold: bool| {
        (150..300)
            .filter(|i| i % 2 == seg && (i % 3 == 0) == gold)
            .count() as i64
    };
    for c in &report.cells {
        let t = match (c.querier_group.as_str(), c.responder_group.as_str()) {
            ("x", "gold") => truth(0, true),
            ("x", "silver") => truth(0, false),
            ("y", "gold") => truth(1, true),
            ("y", "silver") => truth(1, false),
            _ => 0,
        };
        assert!((c.estimate - t).abs() <= 25, "{c:?} vs {t}");
    }
    // Overlap rates: acme's sizes exact (x, y: 150 each; other: 0), shopx's noised; 150 shared
    // of 300 and of 350. Checked within twice the interval's width (the 95% interval itself
    // misses 5% of runs).
    let rates = report.overlap_rates.as_ref().expect("overlap rates");
    let sizes: Vec<u64> = rates.rows.iter().map(|r| r.size).collect();
    assert_eq!(sizes, [150, 150, 0]);
    let near = |e: &tandem_analytics::Estimate, truth: f64| {
        let w = e.ci_high - e.ci_low;
        assert!(
            w > 0.0 && e.ci_low <= e.estimate && e.estimate <= e.ci_high,
            "{e:?}"
        );
        assert!(
            (e.ci_low - w..=e.ci_high + w).contains(&truth),
            "{e:?} vs {truth}"
        );
    };
    near(rates.rate_of_mine.as_ref().expect("mine"), 0.5);
    near(rates.rate_of_peer.as_ref().expect("peer"), 150.0 / 350.0);
    let table = Overlap
        .render(&report, tandem_node::analysis::Format::Table)
        .expect("table");
    assert!(table.contains("Overlap rate (95% intervals): "), "{table}");
}

/// Two columns a side (`age_band,region` × `tier,channel`): 9 × 9 cells labelled by the cross
/// product, each near its true count. The 95% intervals are checked as a whole: at most 12 of
/// the 81 cells may miss (expected 4; P(more than 12) < 10⁻³), and none may be more than four
/// half-widths from its estimate (P ≈ 0.05⁴ < 10⁻⁵ a cell for discrete Laplace noise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_column_overlap_matches_the_truth_within_intervals() {
    let f = Fixture::multi_column().await;
    let mut q = f.query();
    q.group_by = vec!["age_band".into(), "region".into()];
    q.peer_group_by = vec!["tier".into(), "channel".into()];
    let report = run_query(&f.acme, &Overlap, &q, "test")
        .await
        .expect("query");
    assert_eq!(report.cells.len(), 81);
    assert_eq!(report.querier_columns, ["age_band", "region"]);
    assert_eq!(report.responder_columns, ["tier", "channel"]);
    assert_eq!(report.querier_column.as_deref(), Some("age_band,region"));
    // `east` is outside acme's public regions: multiples of 7 but not of 3 in 0..300.
    let east = (0..300).filter(|i| i % 7 == 0 && i % 3 != 0).count() as u64;
    assert_eq!(
        report.querier_outside_value_set,
        Some(("age_band,region".into(), east))
    );
    let labels: Vec<(&str, &str)> = report
        .cells
        .iter()
        .map(|c| (c.querier_group.as_str(), c.responder_group.as_str()))
        .collect();
    assert_eq!(labels[0], ("young|north", "silver|web"));
    assert_eq!(labels[80], ("other|other", "other|other"));
    let mut misses = 0;
    let mut total = 0;
    for c in &report.cells {
        let truth = Fixture::multi_column_truth(&c.querier_group, &c.responder_group) as i64;
        total += truth;
        // The interval is clipped below at 0; its upper end is the estimate plus the half-width.
        let half = c.ci_high - c.estimate;
        if truth < c.ci_low || truth > c.ci_high {
            misses += 1;
        }
        assert!(
            (truth - c.estimate).abs() <= 4 * half,
            "{c:?} vs truth {truth}"
        );
    }
    assert_eq!(total, 150, "the truth covers the 150 shared people");
    assert!(misses <= 12, "{misses} of 81 cells miss their 95% interval");
    let table = Overlap
        .render(&report, tandem_node::analysis::Format::Table)
        .expect("table");
    assert!(
        table.contains("acme age_band|region") && table.contains("young|north"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_message_is_rejected() {
    let f = fixture().await;
    let (_, body, headers) = signed_request(&f);
    let (status, _) = post(&f, &headers, body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, text) = post(&f, &headers, body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    assert!(text.contains("replay"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_foreign_messages_are_rejected() {
    let f = fixture().await;
    // Tampered body, original signature.
    let (_, mut body, headers) = signed_request(&f);
    let last = body.len() - 1;
    body[last] ^= 1;
    let (status, text) = post(&f, &headers, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    // Signed by a key that is not acme's.
    let (env, body, _) = signed_request(&f);
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let (status, text) = post(&f, &env.sign(PSI_REQUEST, &body, &stranger), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    // A run's message re-sent under another run id, every signature valid: the ledger head and
    // the PSI header inside still name the first run.
    let (mut env, body, _) = signed_request(&f);
    env.run_id = hex::encode([0xAB; 16]);
    let (status, text) = post(&f, &env.sign(PSI_REQUEST, &body, &f.acme.key), body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    let (opening, message) = unframe(&body, MAX_FRAME_JSON).expect("frame");
    let mut opening: RunOpening = serde_json::from_value(opening).expect("opening");
    opening.querier_head = SignedHead::sign(
        opening.querier_head.budget,
        &env.agreement_id,
        &env.run_id,
        &f.acme.key,
    )
    .expect("sign");
    let body = frame(&serde_json::to_value(&opening).expect("json"), message);
    let (status, text) = post(&f, &env.sign(PSI_REQUEST, &body, &f.acme.key), body).await;
    // The PSI header still names the first run: an opaque `malformed` (the reason stays in
    // shopx's log).
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("\"malformed\""), "{text}");
    // A querier on other identifier rules is refused with the reason.
    let (env, body, _) = signed_request(&f);
    let (opening, message) = unframe(&body, MAX_FRAME_JSON).expect("frame");
    let mut opening: RunOpening = serde_json::from_value(opening).expect("opening");
    opening.request.identity_rules = "tandem-id-v0".into();
    let body = frame(&serde_json::to_value(&opening).expect("json"), message);
    let (status, text) = post(&f, &env.sign(PSI_REQUEST, &body, &f.acme.key), body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("tandem-id-v0"), "{text}");
    assert!(text.contains("re-import"), "{text}");
    // A querier naming a δ other than the agreement's is refused (a larger δ would mean a
    // smaller offset T and more clamping than the responder agreed to).
    let (env, body, _) = signed_request(&f);
    let (opening, message) = unframe(&body, MAX_FRAME_JSON).expect("frame");
    let mut opening: RunOpening = serde_json::from_value(opening).expect("opening");
    opening.request.delta = 0.01;
    let body = frame(&serde_json::to_value(&opening).expect("json"), message);
    let (status, text) = post(&f, &env.sign(PSI_REQUEST, &body, &f.acme.key), body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("δ"), "{text}");
    // A stale timestamp.
    let (mut env, body, _) = signed_request(&f);
    env.timestamp_ms -= MAX_SKEW_MS + 1000;
    let (status, text) = post(&f, &env.sign(PSI_REQUEST, &body, &f.acme.key), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    // The sender claims to be shopx itself.
    let (mut env, body, _) = signed_request(&f);
    env.sender = "shopx".into();
    let (status, text) = post(&f, &env.sign(PSI_REQUEST, &body, &f.shopx.key), body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinning_refuses_another_certificate() {
    let f = fixture().await;
    let wrong = Peer {
        url: f.shopx.config.public_url.clone(),
        cert_sha256: [0; 32],
    };
    let err = wrong
        .post("/v1/health", &[], vec![], Duration::from_secs(5), 1024)
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, CallError::Unreachable { .. }), "{err}");
}

async fn api(
    state: &Arc<NodeState>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> StatusCode {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(Body::from(body.to_string())).expect("request");
    tandem_node::server::router(state.clone())
        .oneshot(req)
        .await
        .expect("response")
        .status()
}

/// Every report (fresh and cached) is stored whole; listing, showing and exporting it from the
/// library and the API spend nothing and contact no peer: both ledgers are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_results_are_reread_at_no_cost() {
    use tandem_node::analysis::Format;
    let f = fixture().await;
    let fresh = run_query(&f.acme, &Overlap, &query(&f), "test")
        .await
        .expect("query");
    let mut again = query(&f);
    again.fresh = false;
    let cached = run_query(&f.acme, &Overlap, &again, "test")
        .await
        .expect("cached");
    assert!(cached.cached);
    let ledgers = || {
        let runs = |h: &tandem_node::home::Home| {
            serde_json::to_string(&h.store().expect("store").runs(None).expect("runs"))
                .expect("json")
        };
        let budget =
            tandem_node::compliance::budgets(&f.acme.store().expect("store"), "acme", None)
                .expect("budget");
        (
            runs(&f.acme),
            runs(&f.shopx),
            serde_json::to_string(&budget).expect("json"),
        )
    };
    let before = ledgers();

    let mut store = f.acme.store().expect("store");
    let list = tandem_node::results::list(&store, None).expect("list");
    assert_eq!(list.len(), 2);
    assert!(list[0].cached && list[0].epsilon_spent == 0.0, "{list:?}");
    assert!(!list[1].cached && list[1].epsilon_spent > 0.0, "{list:?}");
    assert_eq!(list[1].params["group_by"], "seg");
    let shown = tandem_node::results::show(&mut store, &list[1].result_id, "test").expect("show");
    assert_eq!(shown.report, serde_json::to_value(&fresh).expect("json"));
    let csv = tandem_node::results::render(&mut store, &list[1].result_id, Format::Csv, "test")
        .expect("csv");
    assert_eq!(csv, Overlap.render(&fresh, Format::Csv).expect("csv"));
    let missing = tandem_node::results::show(&mut store, "00", "test").expect_err("unknown");
    assert_eq!(missing.code_str(), "not_found");

    let state = Arc::new(NodeState::new(&f.acme));
    let analyst = store
        .create_token("alice", "analyst", "test")
        .expect("token");
    let auditor = store
        .create_token("carol", "auditor", "test")
        .expect("token");
    let none = serde_json::Value::Null;
    let id = &list[0].result_id;
    for (path, token, status) in [
        ("/api/v1/results".to_string(), &auditor, StatusCode::OK),
        ("/api/v1/results".to_string(), &analyst, StatusCode::OK),
        (format!("/api/v1/results/{id}"), &analyst, StatusCode::OK),
        (
            format!("/api/v1/results/{id}"),
            &auditor,
            StatusCode::FORBIDDEN,
        ),
        (
            format!("/api/v1/results/{id}/export?format=csv"),
            &analyst,
            StatusCode::OK,
        ),
        (
            format!("/api/v1/results/{id}/export?format=json"),
            &analyst,
            StatusCode::OK,
        ),
        (
            format!("/api/v1/results/{id}/export?format=xml"),
            &analyst,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/results/00".to_string(),
            &analyst,
            StatusCode::NOT_FOUND,
        ),
        // The agreement filters take the short id; a mistyped one is 404, not an empty list.
        (
            format!("/api/v1/results?agreement={}", &f.agreement_id[..12]),
            &analyst,
            StatusCode::OK,
        ),
        (
            format!("/api/v1/runs?agreement={}", &f.agreement_id[..8]),
            &auditor,
            StatusCode::OK,
        ),
        (
            "/api/v1/budget?agreement=0123".to_string(),
            &auditor,
            StatusCode::NOT_FOUND,
        ),
    ] {
        assert_eq!(
            api(&state, "GET", &path, Some(token), none.clone()).await,
            status,
            "{path}"
        );
    }
    assert_eq!(ledgers(), before, "reading results changed a ledger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_enforced() {
    let f = fixture().await;
    let state = Arc::new(NodeState::new(&f.acme));
    let mut store = f.acme.store().expect("store");
    let admin = store.create_token("root", "admin", "test").expect("token");
    let analyst = store
        .create_token("alice", "analyst", "test")
        .expect("token");
    let auditor = store
        .create_token("carol", "auditor", "test")
        .expect("token");
    let q = serde_json::to_value(query(&f)).expect("json");
    let none = serde_json::Value::Null;

    assert_eq!(
        api(&state, "GET", "/api/v1/budget", None, none.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api(&state, "GET", "/api/v1/budget", Some("bogus"), none.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    // Analysts query and preview (naming the agreement by its short id will do); they may not
    // read the audit log or manage tokens.
    let mut by_short_id = q.clone();
    by_short_id["agreement_id"] = f.agreement_id[..12].into();
    assert_eq!(
        api(
            &state,
            "POST",
            "/api/v1/queries/overlap/preview",
            Some(&analyst),
            by_short_id
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        api(
            &state,
            "POST",
            "/api/v1/queries/overlap",
            Some(&analyst),
            q.clone()
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        api(&state, "GET", "/api/v1/audit", Some(&analyst), none.clone()).await,
        StatusCode::FORBIDDEN
    );
    let new_token = serde_json::json!({"name": "mallory", "role": "admin"});
    assert_eq!(
        api(
            &state,
            "POST",
            "/api/v1/tokens",
            Some(&analyst),
            new_token.clone()
        )
        .await,
        StatusCode::FORBIDDEN
    );
    // Auditors read the ledger and the log; they may not query.
    assert_eq!(
        api(&state, "GET", "/api/v1/audit", Some(&auditor), none.clone()).await,
        StatusCode::OK
    );
    assert_eq!(
        api(
            &state,
            "GET",
            "/api/v1/budget",
            Some(&auditor),
            none.clone()
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        api(
            &state,
            "POST",
            "/api/v1/queries/overlap",
            Some(&auditor),
            q.clone()
        )
        .await,
        StatusCode::FORBIDDEN
    );
    // Admins manage tokens, but do not query.
    assert_eq!(
        api(
            &state,
            "POST",
            "/api/v1/queries/overlap",
            Some(&admin),
            q.clone()
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api(&state, "POST", "/api/v1/tokens", Some(&admin), new_token).await,
        StatusCode::CREATED
    );
    assert_eq!(
        api(
            &state,
            "DELETE",
            "/api/v1/tokens/alice",
            Some(&admin),
            none.clone()
        )
        .await,
        StatusCode::NO_CONTENT
    );
    // Opt-out through the API: admins only; the person leaves the audience.
    let gone = serde_json::json!({"id_kind": "email", "identifiers": ["P0@Example.com"]});
    assert_eq!(
        api(
            &state,
            "POST",
            "/api/v1/suppressions",
            Some(&auditor),
            gone.clone()
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api(&state, "POST", "/api/v1/suppressions", Some(&admin), gone).await,
        StatusCode::OK
    );
    let members = store
        .members("default", tandem_identity::IdKind::Email, None)
        .expect("members");
    assert_eq!(members.len(), 299);
    // A revoked token is refused.
    assert_eq!(
        api(
            &state,
            "POST",
            "/api/v1/queries/overlap/preview",
            Some(&analyst),
            q
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    // Every use and refusal is in the audit log, which still verifies.
    let report = store
        .verify_audit(Some(&f.acme.key.verifying_key()))
        .expect("verifies");
    assert!(report.entries > 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_or_unauthenticated_bodies_are_refused_before_reading() {
    let f = fixture().await;
    let mut small = f.shopx.clone();
    small.config.max_message_bytes = 4096;
    let state = Arc::new(NodeState::new(&small));
    let send = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let state = state.clone();
        async move {
            let mut req = Request::builder().method("POST").uri(PSI_PATH);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let req = req.body(Body::from(body)).expect("request");
            tandem_node::server::router(state)
                .oneshot(req)
                .await
                .expect("response")
                .status()
        }
    };
    // No envelope at all: refused on the headers.
    assert_eq!(
        send(vec![], vec![0; 1 << 20]).await,
        StatusCode::BAD_REQUEST
    );
    // A well-formed request from the peer, but over this node's limit.
    let (_, body, headers) = signed_request(&f);
    assert!(body.len() > 4096);
    assert_eq!(send(headers, body).await, StatusCode::PAYLOAD_TOO_LARGE);
}

/// Issue 9 item 1: failed runs are throttled per peer. After
/// `MAX_FAILED_RUNS_PER_HOUR` malformed queries (each answered `malformed`, charged), the
/// peer's next run — even a valid one — is answered 429 `too_many_requests` with `Retry-After`,
/// before anything is read or charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_runs_are_throttled_per_peer_with_retry_after() {
    let f = fixture().await;
    for _ in 0..tandem_node::state::MAX_FAILED_RUNS_PER_HOUR {
        let (env, mut body, _) = signed_request(&f);
        let n = body.len();
        body[n - 32..].fill(0xff);
        let headers = env.sign(PSI_REQUEST, &body, &f.acme.key);
        let (status, text) = post(&f, &headers, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(text.contains("\"malformed\""), "{text}");
    }
    let (_, body, headers) = signed_request(&f);
    let r = peer(&f)
        .post(PSI_PATH, &headers, body, Duration::from_secs(60), 1 << 26)
        .await
        .expect("call");
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=3600).contains(&retry), "{retry}");
}

/// The hash cache (`[limits] hash_cache`, on by default): the first run reads digests and both
/// nodes fill their caches; a second run reads the cached points on both sides (the tables hold
/// every member once) and counts the same members (within the noise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_reads_the_hash_cache() {
    let f = fixture().await;
    let mut q = query(&f);
    q.fresh = true;
    let first = run_query(&f.acme, &Overlap, &q, "test")
        .await
        .expect("first query");
    // Both nodes run in this process: their fills are this process's threads.
    tandem_node::run::wait_for_hash_fills();
    let points = |home: &tandem_node::Home| -> (i64, i64) {
        let conn = rusqlite::Connection::open(home.store_path()).expect("open");
        let complete = conn
            .query_row(
                "SELECT COUNT(*) FROM hash_fills WHERE complete_at_ms IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .expect("fills");
        let rows = conn
            .query_row("SELECT COUNT(*) FROM hash_points", [], |r| r.get(0))
            .expect("points");
        (complete, rows)
    };
    assert_eq!(points(&f.acme), (1, 300));
    assert_eq!(points(&f.shopx), (1, 350));
    let second = run_query(&f.acme, &Overlap, &q, "test")
        .await
        .expect("second query");
    tandem_node::run::wait_for_hash_fills();
    // Read from the cache: nothing new was filled.
    assert_eq!(points(&f.acme), (1, 300));
    assert_eq!(points(&f.shopx), (1, 350));
    for (a, b) in first.cells.iter().zip(&second.cells) {
        assert_eq!(
            (&a.querier_group, &a.responder_group),
            (&b.querier_group, &b.responder_group)
        );
        assert!((a.estimate - b.estimate).abs() <= 50, "{a:?} vs {b:?}");
    }
    let total: i64 = second.cells.iter().map(|c| c.estimate).sum();
    assert!((total - 150).abs() <= 100, "{total}");
    // The runs do read the cache: a corrupt point fails the next one (a typed error, no panic).
    rusqlite::Connection::open(f.acme.store_path())
        .expect("open")
        .execute(
            "UPDATE hash_points SET point = ?1 WHERE digest = (SELECT MIN(digest) FROM hash_points)",
            [&[0xffu8; 32][..]],
        )
        .expect("corrupt");
    let err = run_query(&f.acme, &Overlap, &q, "test")
        .await
        .expect_err("a corrupt cache fails the run");
    assert!(err.message().contains("corrupt"), "{}", err.message());
}

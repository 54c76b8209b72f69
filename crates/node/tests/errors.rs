//! Each class of API error over HTTP (router in process, the peer over loopback HTTPS): what a
//! caller did wrong is a 4xx with a stable code, a peer's refusal passes its code through, data
//! the node holds is named as such, and nothing a client did wrong is a 500.

use std::sync::Arc;

use http::StatusCode;
use tandem_node::state::NodeState;
use tandem_testkit::{NodePair, api_call as call};

struct Api {
    state: Arc<NodeState>,
    admin: String,
    analyst: String,
}

fn api(pair: &NodePair) -> Api {
    let mut store = pair.acme.store().expect("store");
    Api {
        state: Arc::new(NodeState::new(&pair.acme)),
        admin: store.create_token("root", "admin", "test").expect("token"),
        analyst: store
            .create_token("alice", "analyst", "test")
            .expect("token"),
    }
}

fn query(pair: &NodePair) -> String {
    serde_json::to_string(&pair.query()).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_errors_are_4xx_with_stable_codes() {
    let pair = NodePair::start().await;
    let a = api(&pair);
    let cases = [
        (
            "POST",
            "/api/v1/tokens",
            r#"{"name": "bob", "role": "root"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/tokens",
            r#"{"name": "alice", "role": "analyst"}"#,
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            "POST",
            "/api/v1/tokens",
            "{bad",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "DELETE",
            "/api/v1/tokens/nobody",
            "",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/suppressions",
            r#"{"id_kind": "fax", "identifiers": []}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (s, v) = call(&a.state, method, path, &a.admin, body).await;
        assert_eq!((s, v["code"].as_str()), (status, Some(code)), "{path}: {v}");
        assert_eq!(v["fault"], "caller", "{v}");
    }
    let q = query(&pair);
    let unknown = q.replace(&pair.agreement_id, &"cd".repeat(32));
    let other_column = q.replace("\"seg\"", "\"income\"");
    // A preview prices what the run would do: over a per-query cap it refuses as the run would.
    let mut over_cap: serde_json::Value = serde_json::from_str(&q).expect("query json");
    over_cap["epsilon"] = serde_json::json!(1000.0);
    let over_cap = over_cap.to_string();
    let cases = [
        (
            "/api/v1/query/uplift",
            q.as_str(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/v1/query/overlap",
            "{not json",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/v1/query/overlap",
            &unknown,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/v1/query/overlap/preview",
            &other_column,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
        ),
        (
            "/api/v1/query/overlap/preview",
            &over_cap,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
        ),
    ];
    for (path, body, status, code) in cases {
        let (s, v) = call(&a.state, "POST", path, &a.analyst, body).await;
        assert_eq!((s, v["code"].as_str()), (status, Some(code)), "{path}: {v}");
    }
    // A role that may not: 403 forbidden.
    let (s, v) = call(&a.state, "POST", "/api/v1/query/overlap", &a.admin, &q).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    // The registry's route and the original overlap route answer alike.
    for path in [
        "/api/v1/query/overlap/preview",
        "/api/v1/queries/overlap/preview",
    ] {
        let (s, v) = call(&a.state, "POST", path, &a.analyst, &q).await;
        assert_eq!((s, v["cells"].as_u64()), (StatusCode::OK, Some(9)), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_budget_exhausted_is_403_naming_cap_and_what_is_left() {
    // acme spends ε/4 = 0.25 a query out of 0.3.
    let pair = NodePair::with_budgets(0.3, 50.0).await;
    let a = api(&pair);
    let q = query(&pair);
    let (s, _) = call(&a.state, "POST", "/api/v1/query/overlap", &a.analyst, &q).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(&a.state, "POST", "/api/v1/query/overlap", &a.analyst, &q).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("budget_exceeded")),
        "{v}"
    );
    assert_eq!(
        (v["fault"].as_str(), v["details"]["party"].as_str()),
        (Some("caller"), Some("acme"))
    );
    assert_eq!(v["details"]["cap"].as_f64(), Some(0.3));
    let left = v["details"]["left"].as_f64().expect("left");
    assert!((left - 0.05).abs() < 1e-9, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("acme") && e.contains("0.3") && e.contains("left 0.05")),
        "{v}"
    );
    assert_eq!(v["details"]["period"], "lifetime", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_refusal_passes_its_code_through() {
    // shopx spends ε = 1 a query out of 1.5: the second run is refused by shopx.
    let pair = NodePair::with_budgets(50.0, 1.5).await;
    let a = api(&pair);
    let q = query(&pair);
    let (s, _) = call(&a.state, "POST", "/api/v1/query/overlap", &a.analyst, &q).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(&a.state, "POST", "/api/v1/query/overlap", &a.analyst, &q).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("budget_exceeded")),
        "{v}"
    );
    assert_eq!(
        (v["fault"].as_str(), v["peer"]["name"].as_str()),
        (Some("peer"), Some("shopx"))
    );
    // The peer's refusal says which cap, what is left and that a lifetime cap never refreshes.
    assert_eq!(v["details"]["period"], "lifetime", "{v}");
    assert!(
        (v["details"]["left"].as_f64().expect("left") - 0.5).abs() < 1e-9,
        "{v}"
    );
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("does not refresh")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_faults_are_named_and_an_unreachable_peer_is_a_502() {
    let mut pair = NodePair::start().await;
    let a = api(&pair);
    // An agreement stored on this node that does not parse is the data's fault, not the caller's.
    let broken = "ef".repeat(32);
    pair.acme
        .store()
        .expect("store")
        .put_agreement(&broken, "{}", "active", "test")
        .expect("put");
    let q = query(&pair).replace(&pair.agreement_id, &broken);
    let (s, v) = call(
        &a.state,
        "POST",
        "/api/v1/query/overlap/preview",
        &a.analyst,
        &q,
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str(), v["fault"].as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("corrupt_data"),
            Some("data")
        ),
        "{v}"
    );
    // The peer's node is gone: 502, and since nothing left this node, its charge is released.
    pair.stop_responder().await;
    let (s, v) = call(
        &a.state,
        "POST",
        "/api/v1/query/overlap",
        &a.analyst,
        &query(&pair),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str(), v["fault"].as_str()),
        (
            StatusCode::BAD_GATEWAY,
            Some("peer_unreachable"),
            Some("peer")
        ),
        "{v}"
    );
    let store = pair.acme.store().expect("store");
    let views = tandem_node::compliance::budgets(&store, "acme", Some(&pair.agreement_id))
        .expect("budgets");
    assert_eq!(views[0].epsilon_spent, 0.0);
    let runs = store.runs(Some(&pair.agreement_id)).expect("runs");
    assert_eq!(
        runs.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(),
        ["failed"]
    );
}

/// A failure after the responder read its audience tells the querier nothing of that audience
/// (here: which columns it imported) and keeps the responder's charge (psi-ca-v1 §4.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_reading_the_audience_is_opaque_and_charged() {
    let pair = NodePair::start().await;
    let a = api(&pair);
    // shopx re-imports its buyers without the `tier` column the agreement offers.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plain.csv");
    std::fs::write(&file, "email,region\nbuyer1@example.com,north\n").expect("write");
    let mut opts = tandem_store::ImportOptions::new("email", tandem_identity::IdKind::Email);
    opts.attributes = vec!["region".into()];
    pair.shopx
        .store()
        .expect("store")
        .import_csv(&file, &opts, None)
        .expect("import");
    let (s, v) = call(
        &a.state,
        "POST",
        "/api/v1/query/overlap",
        &a.analyst,
        &query(&pair),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let text = v.to_string();
    assert!(
        !text.contains("region") && !text.contains("available"),
        "{text}"
    );
    let shopx = pair.shopx.store().expect("store");
    let views = tandem_node::compliance::budgets(&shopx, "shopx", Some(&pair.agreement_id))
        .expect("budgets");
    assert!(views[0].epsilon_spent > 0.0, "{:?}", views[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_no_handler_wrote_have_the_error_body_too() {
    let pair = NodePair::start().await;
    let a = api(&pair);
    let cases = [
        (
            "GET",
            "/api/v1/tokens",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "GET",
            "/api/v1/no-such-route",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        ("GET", "/nowhere", StatusCode::NOT_FOUND, "not_found"),
        (
            "GET",
            "/api/v1/audit?to_ms=9223372036854775808",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (method, path, status, code) in cases {
        let (s, v) = call(&a.state, method, path, &a.admin, "").await;
        assert_eq!((s, v["code"].as_str()), (status, Some(code)), "{path}: {v}");
        assert_eq!(v["fault"], "caller", "{path}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
    // The OpenAPI document needs no token; the audit verification does (auditor or admin).
    let (s, doc) = call(&a.state, "GET", "/api/openapi.json", "", "").await;
    assert_eq!(
        (s, doc["openapi"].as_str()),
        (StatusCode::OK, Some("3.1.0"))
    );
    assert!(doc["paths"]["/api/v1/audit/verify"]["post"].is_object());
    let (s, v) = call(&a.state, "POST", "/api/v1/audit/verify", &a.analyst, "").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (s, v) = call(&a.state, "POST", "/api/v1/audit/verify", &a.admin, "").await;
    assert_eq!((s, v["ok"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
    assert!(v["entries"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert!(v["uncovered_entries"].as_u64().is_some(), "{v}");
}

//! The modelling analysis end to end on two real nodes: a planted logistic model (features at
//! acme, the label at shopx), fitted from noised marginals; the free preview's cost equals the
//! charge, and showing, scoring and listing the stored model charge nothing.

use std::sync::Arc;

use http::StatusCode;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tandem_agreement::Agreement;
use tandem_node::budget::epsilon_left;
use tandem_node::model::{self, ModelRequest, Which};
use tandem_node::state::NodeState;
use tandem_testkit::NodePair;

const AGES: [&str; 4] = ["a0", "a1", "a2", "a3"];
const REGIONS: [&str; 3] = ["r0", "r1", "r2"];
const CHANNELS: [&str; 2] = ["web", "app"];
/// Planted log-odds: intercept, per value of each feature (first = reference).
const INTERCEPT: f64 = -1.5;
const B_AGE: [f64; 4] = [0.0, 0.6, 1.2, 1.8];
const B_REGION: [f64; 3] = [0.0, -1.0, 0.4];
const B_CHANNEL: [f64; 2] = [0.0, 1.0];

struct Person {
    values: [usize; 3],
    gold: bool,
}

fn planted() -> (String, String, Vec<Person>) {
    let mut rng = StdRng::seed_from_u64(14);
    let (n_acme, n_overlap, n_only_shopx) = (3000, 2500, 500);
    let mut acme = String::from("email,age_band,region,channel\n");
    let mut shopx = String::from("email,tier\n");
    let mut overlap = Vec::new();
    for i in 0..n_acme + n_only_shopx {
        let values = [
            rng.random_range(0..4),
            rng.random_range(0..3),
            rng.random_range(0..2),
        ];
        let z = INTERCEPT + B_AGE[values[0]] + B_REGION[values[1]] + B_CHANNEL[values[2]];
        let gold = rng.random::<f64>() < 1.0 / (1.0 + (-z).exp());
        if i < n_acme {
            acme += &format!(
                "p{i}@example.com,{},{},{}\n",
                AGES[values[0]], REGIONS[values[1]], CHANNELS[values[2]]
            );
        }
        if i < n_overlap || i >= n_acme {
            let tier = if gold { "gold" } else { "silver" };
            shopx += &format!("p{i}@example.com,{tier}\n");
        }
        if i < n_overlap {
            overlap.push(Person { values, gold });
        }
    }
    (acme, shopx, overlap)
}

/// Area under the ROC curve of `scores` for `labels` (Mann–Whitney, ties count ½).
fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let (mut pairs, mut wins) = (0.0, 0.0);
    for (s1, _) in scores.iter().zip(labels).filter(|(_, l)| **l) {
        for (s0, _) in scores.iter().zip(labels).filter(|(_, l)| !**l) {
            pairs += 1.0;
            wins += if s1 > s0 {
                1.0
            } else if s1 == s0 {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / pairs
}

fn agreement(pair: &NodePair) -> Agreement {
    let stored = pair
        .acme
        .store()
        .expect("store")
        .agreement(&pair.agreement_id)
        .expect("read")
        .expect("stored");
    serde_json::from_str(&stored.doc_json).expect("parses")
}

fn left(pair: &NodePair) -> (f64, f64) {
    let a = agreement(pair);
    (
        epsilon_left(&pair.acme.store().expect("store"), &a, "acme").expect("left"),
        epsilon_left(&pair.shopx.store().expect("store"), &a, "shopx").expect("left"),
    )
}

async fn get(state: &Arc<NodeState>, path: &str, token: &str) -> (StatusCode, Vec<u8>) {
    call(state, "GET", path, token, String::new()).await
}

async fn call(
    state: &Arc<NodeState>,
    method: &str,
    path: &str,
    token: &str,
    body: String,
) -> (StatusCode, Vec<u8>) {
    tandem_testkit::api_call_bytes(state, method, path, token, &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_fitted_from_noised_marginals_recovers_the_planted_signs() {
    let (acme_rows, shopx_rows, overlap) = planted();
    let pair = NodePair::with_audiences(
        (
            &acme_rows,
            &[
                ("age_band", &AGES),
                ("region", &REGIONS),
                ("channel", &CHANNELS),
            ],
        ),
        (&shopx_rows, &[("tier", &["silver", "gold"])]),
        20.0,
        20.0,
    )
    .await;
    let req = ModelRequest {
        agreement_id: pair.agreement_id.clone(),
        join_key: None,
        features: vec!["age_band".into(), "region".into(), "channel".into()],
        peer_label: "tier=gold".into(),
        pairs: vec![("region".into(), "age_band".into())],
        feature_joint: None,
        epsilon: 5.0,
        fresh: false,
    };
    let before = left(&pair);
    let preview =
        model::preview(&pair.acme.store().expect("store"), "acme", &req).expect("preview");
    assert_eq!(preview.marginals.len(), 5);
    assert_eq!(preview.marginals[3].name, "age_band × region × tier=gold");
    assert_eq!(preview.marginals[3].cells, 5 * 4 * 3);
    assert_eq!(
        preview.marginals[4].name,
        "age_band × region × channel × overlap"
    );
    assert_eq!(preview.marginals[4].cells, 5 * 4 * 3);
    assert!(
        preview
            .marginals
            .iter()
            .all(|m| (m.epsilon - 1.0).abs() < 1e-12)
    );
    assert_eq!(preview.marginals[0].name, "age_band × tier=gold");
    assert_eq!(preview.marginals[0].cells, 5 * 3);
    // The preview is free.
    assert_eq!(left(&pair), before);

    let record = model::fit(&pair.acme, &req, "test").await.expect("fit");
    let after = left(&pair);
    // What the preview said is what each side was charged.
    assert!(
        ((before.0 - after.0) - preview.querier_cost.epsilon).abs() < 1e-9,
        "{before:?} {after:?} {preview:?}"
    );
    assert!(
        ((before.1 - after.1) - preview.responder_cost.epsilon).abs() < 1e-9,
        "{before:?} {after:?} {preview:?}"
    );
    assert!((preview.responder_cost.epsilon - 5.0).abs() < 1e-9);
    assert_eq!(record.runs.len(), 5);

    // Planted signs: each coefficient with a clear planted effect has that sign, with its
    // interval away from 0 (coverage of the planted values is the benchmark's matter).
    let lr = &record.fit.logistic;
    let coef = |feature: usize, value: usize| lr.coefficients[feature].values[value].log_odds;
    for (feature, value, planted) in [(0, 3, 1.8), (0, 2, 1.2), (1, 1, -1.0), (2, 1, 1.0)] {
        let c = coef(feature, value);
        eprintln!("feature {feature} value {value}: {c:?} (planted {planted})");
        assert!(
            c.estimate * planted > 0.0 && !c.contains(0.0),
            "feature {feature} value {value}: {c:?} vs planted {planted}"
        );
    }
    // The score beats chance clearly on the overlap's true labels.
    let scores: Vec<f64> = overlap
        .iter()
        .map(|p| {
            lr.score(&[
                AGES[p.values[0]],
                REGIONS[p.values[1]],
                CHANNELS[p.values[2]],
            ])
            .expect("score")
        })
        .collect();
    let labels: Vec<bool> = overlap.iter().map(|p| p.gold).collect();
    let auc = auc(&scores, &labels);
    eprintln!("AUC of the DP logistic model on the overlap's true labels: {auc:.4}");
    assert!(auc > 0.65, "AUC {auc}");

    // Re-showing, scoring and listing are free.
    let store = pair.acme.store().expect("store");
    let loaded = model::load(&store, &record.model_id).expect("load");
    assert_eq!(loaded.runs.len(), 5);
    let table = loaded.score_table(Which::Logistic).expect("table");
    // No member of acme falls in `other`: those buckets are left out.
    assert_eq!(table.len(), 4 * 3 * 2);
    assert_eq!(table[0].values, ["a3", "r2", "app"]);
    assert!(
        loaded
            .score_table_csv(Which::NaiveBayes)
            .expect("csv")
            .starts_with("age_band,region,channel,log_odds,score\n")
    );
    assert_eq!(model::list(&store, None).expect("list").len(), 1);
    assert!(loaded.render().contains("age_band=a3"));

    let state = Arc::new(NodeState::new(&pair.acme));
    let analyst = pair
        .acme
        .store()
        .expect("store")
        .create_token("alice", "analyst", "test")
        .expect("token");
    let id = &record.model_id;
    for path in [
        "/api/v1/models".to_string(),
        format!("/api/v1/models/{id}"),
        format!("/api/v1/models/{id}/score-table"),
        format!("/api/v1/models/{id}/score-table?method=naive_bayes&format=csv"),
    ] {
        let (status, _) = get(&state, &path, &analyst).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, _) = get(&state, "/api/v1/models/nope", &analyst).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The API's preview of the same request: every marginal is now a stored answer.
    let (status, body) = call(
        &state,
        "POST",
        "/api/v1/models/preview",
        &analyst,
        serde_json::to_string(&req).expect("json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let p: serde_json::Value = serde_json::from_slice(&body).expect("preview json");
    assert_eq!(p["marginals"].as_array().map(Vec::len), Some(5));
    assert_eq!(p["responder_cost"]["epsilon"], 0.0);
    // Roles as for queries: an auditor may not read models.
    let auditor = pair
        .acme
        .store()
        .expect("store")
        .create_token("carol", "auditor", "test")
        .expect("token");
    let (status, _) = get(&state, "/api/v1/models", &auditor).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = get(
        &state,
        &format!("/api/v1/models/{id}/score-table?format=csv"),
        &analyst,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).starts_with("age_band,region,channel,log_odds,score\n"));
    assert_eq!(left(&pair), after);

    // Fitting again reuses the stored marginals: nothing is charged.
    let again = model::preview(&pair.acme.store().expect("store"), "acme", &req).expect("preview");
    assert!(again.marginals.iter().all(|m| m.cached));
    assert_eq!(again.responder_cost.epsilon, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_either_budget_is_refused_before_any_charge() {
    let (acme_rows, shopx_rows, _) = planted();
    let pair = NodePair::with_audiences(
        (&acme_rows, &[("age_band", &AGES), ("region", &REGIONS)]),
        (&shopx_rows, &[("tier", &["silver", "gold"])]),
        20.0,
        3.0,
    )
    .await;
    let req = ModelRequest {
        agreement_id: pair.agreement_id.clone(),
        join_key: None,
        features: vec!["age_band".into(), "region".into()],
        peer_label: "tier=gold".into(),
        pairs: Vec::new(),
        feature_joint: Some(false),
        epsilon: 4.0,
        fresh: false,
    };
    let before = left(&pair);
    let err = model::fit(&pair.acme, &req, "test")
        .await
        .expect_err("over");
    assert_eq!(err.code_str(), "budget_exceeded", "{err}");
    assert!(
        err.message().contains("shopx") && err.message().contains("cap of 3"),
        "{err}"
    );
    assert_eq!(left(&pair), before);
    let bad = ModelRequest {
        peer_label: "tier=platinum".into(),
        ..req
    };
    let err = model::preview(&pair.acme.store().expect("store"), "acme", &bad).expect_err("bad");
    assert_eq!(err.code_str(), "invalid_query");
}

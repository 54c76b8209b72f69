//! Issue 12's analyses end to end on the test kit's in-memory pair (real HTTPS, in process):
//! for each analysis of the registry, the free preview prices exactly what the run charges, a
//! repeated identical query on unchanged data is answered from the cache at no cost, and every
//! derived figure's interval is checked against the figure computed from the planted data.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use rand::{RngExt, SeedableRng};
use tandem_node::analysis::{self, CellGrid, NoisedCells, Query, Report};
use tandem_node::querier::{preview, run_query};
use tandem_node::state::NodeState;
use tandem_testkit::{NodePair, Side};

const ACME: std::ops::Range<usize> = 0..1200;
const SHOPX: std::ops::Range<usize> = 400..1600;

/// acme's columns of person `i`.
fn acme_row(i: usize) -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        (
            "arm",
            if i.is_multiple_of(2) {
                "test"
            } else {
                "control"
            },
        ),
        (
            "stage",
            ["visit", "visit", "visit", "cart", "checkout"][i % 5],
        ),
        ("exposures", ["1", "2", "3+"][i % 3]),
        ("cohort", ["2026-01", "2026-02", "2026-03"][(i / 7) % 3]),
        (
            "touch",
            ["none", "search", "social", "search+social"][(i / 11) % 4],
        ),
    ])
}

/// Planted data (seeded): shopx's conversion depends on acme's arm (+10 points), touch
/// (search +5, social +10) and stage.
fn data() -> (String, String, BTreeMap<usize, [&'static str; 2]>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let mut acme = String::from("email,arm,stage,exposures,cohort,touch\n");
    for i in ACME {
        let r = acme_row(i);
        acme += &format!(
            "p{i}@example.com,{},{},{},{},{}\n",
            r["arm"], r["stage"], r["exposures"], r["cohort"], r["touch"]
        );
    }
    let mut shopx_cols = BTreeMap::new();
    let mut shopx = String::from("email,converted,tier\n");
    for i in SHOPX {
        let mut p = 0.1;
        if ACME.contains(&i) {
            let r = acme_row(i);
            p += if r["arm"] == "test" { 0.1 } else { 0.0 };
            p += match r["touch"] {
                "search" => 0.05,
                "social" => 0.1,
                "search+social" => 0.15,
                _ => 0.0,
            };
            p += if r["stage"] == "checkout" { 0.2 } else { 0.0 };
        }
        let converted = if rng.random::<f64>() < p { "1" } else { "0" };
        let tier = if i.is_multiple_of(3) {
            "gold"
        } else {
            "silver"
        };
        shopx += &format!("p{i}@example.com,{converted},{tier}\n");
        shopx_cols.insert(i, [converted, tier]);
    }
    (acme, shopx, shopx_cols)
}

async fn pair() -> (NodePair, BTreeMap<usize, [&'static str; 2]>) {
    let (acme, shopx, cols) = data();
    let f = NodePair::with_data(
        Side::new(&acme)
            .column("arm", &["test", "control"])
            .column("stage", &["visit", "cart", "checkout"])
            .column("exposures", &["1", "2", "3+"])
            .column("cohort", &["2026-01", "2026-02", "2026-03"])
            .column("touch", &["none", "search", "social", "search+social"]),
        Side::new(&shopx)
            .column("converted", &["0", "1"])
            .column("tier", &["silver", "gold"]),
    )
    .await;
    (f, cols)
}

/// The derived figures of the planted truth: the analysis's own post-processing of the exact
/// cells and sizes (the labels from the report's cells).
fn truth(
    report: &Report,
    shopx: &BTreeMap<usize, [&'static str; 2]>,
    q: &Query,
) -> serde_json::Value {
    let mut mine: Vec<String> = Vec::new();
    let mut peer: Vec<String> = Vec::new();
    for c in &report.cells {
        if !mine.contains(&c.querier_group) {
            mine.push(c.querier_group.clone());
        }
        if !peer.contains(&c.responder_group) {
            peer.push(c.responder_group.clone());
        }
    }
    let qcol = q.group_by.first().map(String::as_str);
    let pcol = q.peer_group_by.first().map(String::as_str);
    let my_label = |i: usize| qcol.map_or("all", |c| acme_row(i)[c]);
    let peer_label = |i: usize| match pcol {
        None => "all",
        Some("converted") => shopx[&i][0],
        Some(_) => shopx[&i][1],
    };
    let row = |l: &str| mine.iter().position(|m| m == l).expect("my label");
    let col = |l: &str| peer.iter().position(|m| m == l).expect("peer label");
    let mut cells = vec![0i64; mine.len() * peer.len()];
    let mut my_sizes = vec![0u64; mine.len()];
    let mut peer_sizes = vec![0u64; peer.len()];
    for i in ACME {
        my_sizes[row(my_label(i))] += 1;
        if SHOPX.contains(&i) {
            cells[row(my_label(i)) * peer.len() + col(peer_label(i))] += 1;
        }
    }
    for i in SHOPX {
        peer_sizes[col(peer_label(i))] += 1;
    }
    let params = tandem_psi::RunParams::for_epsilon(
        [0; 32],
        "email",
        [0; 16],
        mine.len() as u32,
        peer.len() as u32,
        0.25,
        1.0,
        1e-9,
    )
    .expect("params");
    let counts = tandem_psi::CellCounts {
        querier_buckets: mine.len() as u32,
        responder_buckets: peer.len() as u32,
        noised: cells,
        // As the querier sees them: with the junk's offset in (psi-ca-v1 §4.4).
        responder_bucket_sizes_noised: peer_sizes
            .iter()
            .map(|s| s + u64::from(params.responder_bucket_noise.offset))
            .collect(),
    };
    let grid = CellGrid {
        querier: mine,
        responder: peer,
    };
    let noised = NoisedCells {
        grid: &grid,
        params: &params,
        counts: &counts,
        threshold: 0,
        my_sizes: &my_sizes,
        sums: None,
    };
    analysis::find(&report.analysis)
        .expect("analysis")
        .derived(&noised, &q.options)
        .expect("truth")
        .expect("figures")
}

/// Walks the reported figures beside the true ones: every `{estimate, ci_low, ci_high}` is an
/// interval to check. Returns (covered by the 95% interval, covered by the interval widened to
/// three times its width, figures).
fn coverage(reported: &serde_json::Value, truth: &serde_json::Value, out: &mut [usize; 3]) {
    use serde_json::Value;
    match (reported, truth) {
        (Value::Object(r), Value::Object(t)) => {
            if let (Some(lo), Some(hi), Some(tv)) = (
                r.get("ci_low").and_then(Value::as_f64),
                r.get("ci_high").and_then(Value::as_f64),
                t.get("estimate")
                    .and_then(Value::as_f64)
                    .or_else(|| t.get("rate").and_then(Value::as_f64)),
            ) {
                let w = hi - lo;
                let eps = 1e-9;
                out[0] += usize::from(lo - eps <= tv && tv <= hi + eps);
                out[1] += usize::from(lo - w - eps <= tv && tv <= hi + w + eps);
                out[2] += 1;
            }
            for (k, v) in r {
                if let Some(tv) = t.get(k) {
                    coverage(v, tv, out);
                }
            }
        }
        (Value::Array(r), Value::Array(t)) => {
            for (a, b) in r.iter().zip(t) {
                coverage(a, b, out);
            }
        }
        _ => {}
    }
}

fn query(f: &NodePair, mine: &str, peer: Option<&str>, options: &[(&str, &str)]) -> Query {
    Query {
        agreement_id: f.agreement_id.clone(),
        join_key: None,
        group_by: vec![mine.into()],
        peer_group_by: peer.map(str::to_string).into_iter().collect(),
        peer_value: None,
        epsilon: 1.0,
        fresh: false,
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_analysis_prices_charges_caches_and_covers_the_planted_truth() {
    let (f, shopx) = pair().await;
    let cases = [
        ("overlap", query(&f, "arm", Some("tier"), &[])),
        (
            "affinity",
            query(&f, "cohort", Some("tier"), &[("peer_segment", "gold")]),
        ),
        ("lift", query(&f, "arm", Some("converted"), &[])),
        ("reach", query(&f, "cohort", Some("tier"), &[])),
        ("funnel", query(&f, "stage", Some("converted"), &[])),
        ("frequency", query(&f, "exposures", Some("converted"), &[])),
        ("cohorts", query(&f, "cohort", Some("converted"), &[])),
        ("attribution", query(&f, "touch", Some("converted"), &[])),
    ];
    // The value analyses also run psi-sum-v1: tests/sums.rs covers them.
    let count_analyses = analysis::REGISTRY
        .iter()
        .filter(|a| {
            !matches!(
                a.name(),
                "revenue" | "average_value" | "roas" | "value_lift" | "ltv"
            )
        })
        .count();
    assert_eq!(cases.len(), count_analyses);
    let mut all = [0usize; 3];
    for (name, q) in cases {
        let a = analysis::find(name).expect("registered");
        let store = f.acme.store().expect("store");
        let p = preview(&store, "acme", a, &q).expect("preview");
        assert!(!p.cached, "{name}");
        let r = run_query(&f.acme, a, &q, "test").await.expect("run");
        assert!(!r.cached, "{name}");
        // The preview priced exactly what both ledgers charged.
        assert_eq!(
            r.querier_budget.epsilon_spent, p.querier_cost.epsilon,
            "{name}"
        );
        assert_eq!(
            r.responder_budget.epsilon_spent, p.responder_cost.epsilon,
            "{name}"
        );
        // The same query again on unchanged data: the stored answer, nothing spent.
        let left = preview(&store, "acme", a, &q).expect("preview");
        assert!(left.cached, "{name}");
        let again = run_query(&f.acme, a, &q, "test").await.expect("repeat");
        assert!(again.cached, "{name}");
        assert_eq!(again.querier_budget.epsilon_spent, 0.0, "{name}");
        assert_eq!(again.details, r.details, "{name}");
        let after = preview(&store, "acme", a, &q).expect("preview");
        assert_eq!(
            after.querier_epsilon_left, left.querier_epsilon_left,
            "{name}: a cached answer must not charge"
        );
        // "About N more queries like this" is one computation: the preview, the run's signed
        // budget view and `tandem budget` give the same N for the same ledger.
        let budget = tandem_node::compliance::budgets(&store, "acme", Some(&q.agreement_id))
            .expect("budgets");
        assert_eq!(
            after.querier_queries_left, r.querier_budget.queries_left_like_this,
            "{name}"
        );
        assert_eq!(
            after.querier_queries_left, budget[0].queries_left_like_last,
            "{name}"
        );
        if name == "overlap" {
            assert!(r.details.is_none());
            continue;
        }
        let details = r.details.clone().expect("derived figures");
        assert!(details["noise_share"]["cells"].as_u64().is_some(), "{name}");
        let mut c = [0usize; 3];
        coverage(&details, &truth(&r, &shopx, &q), &mut c);
        println!(
            "{name}: {} of {} figures covered at 95%, {} within 3 widths",
            c[0], c[2], c[1]
        );
        assert!(c[2] > 0, "{name}: no interval");
        assert_eq!(c[1], c[2], "{name}: a figure far outside its interval");
        // Every table renders from the stored figures.
        let table = a.render(&r, analysis::Format::Table).expect("table");
        assert!(table.contains("noise share"), "{table}");
        for (k, v) in all.iter_mut().zip(c) {
            *k += v;
        }
    }
    println!(
        "all analyses: {} of {} figures covered at 95%",
        all[0], all[2]
    );
    // A wrong option is refused before anything is spent.
    let bad = query(&f, "arm", Some("converted"), &[("test_arm", "treated")]);
    let e = run_query(&f.acme, analysis::find("lift").expect("lift"), &bad, "test")
        .await
        .expect_err("refused");
    assert_eq!(e.code_str(), "invalid_query", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lift_runs_through_the_api_with_issue_12_json() {
    let (f, _) = pair().await;
    let state = Arc::new(NodeState::new(&f.acme));
    let token = f
        .acme
        .store()
        .expect("store")
        .create_token("alice", "analyst", "test")
        .expect("token");
    let q = serde_json::to_value(query(&f, "arm", Some("converted"), &[("converted", "1")]))
        .expect("json");
    let call = |path: &'static str| {
        let (state, token, q) = (state.clone(), token.clone(), q.to_string());
        async move { tandem_testkit::api_call(&state, "POST", path, &token, &q).await }
    };
    let (status, p) = call("/api/v1/query/lift/preview").await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let (status, r) = call("/api/v1/query/lift").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        r["querier_budget"]["epsilon_spent"],
        p["querier_cost"]["epsilon"]
    );
    let d = &r["details"];
    for arm in d["arms"].as_array().expect("arms") {
        for k in ["name", "size", "conversions", "rate", "ci_low", "ci_high"] {
            assert!(!arm[k].is_null(), "{k} in {arm}");
        }
    }
    for k in ["lift_abs", "lift_rel"] {
        for e in ["estimate", "ci_low", "ci_high"] {
            assert!(d[k][e].is_number(), "{k}.{e} in {d}");
        }
    }
    assert!(d["p_value"].is_number());
}

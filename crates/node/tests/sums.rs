//! psi-sum-v1 end to end (issue 13): a value analysis over HTTPS between two in-process nodes.

use std::collections::HashMap;
use std::time::Duration;

use tandem_node::analysis::{self, Query};
use tandem_node::client::Peer;
use tandem_node::querier::run_query;
use tandem_node::sums::{SUM_PATH, SUM_REQUEST};
use tandem_node::wire::{Envelope, now_ms, parse_fingerprint};
use tandem_testkit::NodePair;
use tandem_testkit::{REVENUE_BOUND, revenue_cents};

fn revenue_query(f: &NodePair, analysis: &str) -> Query {
    let _ = analysis;
    Query {
        peer_value: Some("revenue_cents".into()),
        epsilon: 2.0,
        ..f.query()
    }
}

/// The planted truth per (seg, tier) cell: acme holds p0…p299 (even `x`, odd `y`), shopx
/// p150…p499 (multiples of 3 `gold`, else `silver`) with `revenue_cents(i)` clamped to
/// `[0, U]`.
fn truth() -> HashMap<(String, String), (i64, i64)> {
    let mut t: HashMap<(String, String), (i64, i64)> = HashMap::new();
    for i in 150..300usize {
        let seg = if i % 2 == 0 { "x" } else { "y" };
        let tier = if i % 3 == 0 { "gold" } else { "silver" };
        let v = revenue_cents(i).clamp(0, i64::from(REVENUE_BOUND));
        let e = t.entry((seg.into(), tier.into())).or_default();
        e.0 += v;
        e.1 += 1;
    }
    t
}

/// The sums' noise offset `T` of these runs (ε 2 → 1 for the sums, half of it for the sums
/// with squares; δ 1e-9): every released sum is within `T` of the truth, surely (the error is
/// `clamp(Z, −T, T)`).
fn offset() -> i64 {
    let p = tandem_sum::SumParams::for_epsilon(
        [0; 32],
        [0; 16],
        [0; 32],
        "revenue_cents",
        9,
        REVENUE_BOUND,
        true,
        1.0,
        1e-9,
    )
    .expect("params");
    i64::from(p.sum_noise.offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revenue_per_cell_over_https_is_charged_audited_and_decrypted_once() {
    let f = NodePair::start().await;
    let revenue = analysis::find("revenue").expect("registered");
    let report = run_query(&f.acme, revenue, &revenue_query(&f, "revenue"), "test")
        .await
        .expect("revenue run");
    let truth = truth();
    let t = offset();
    assert_eq!(report.cells.len(), 9);
    for c in &report.cells {
        let (sum, _) = truth
            .get(&(c.querier_group.clone(), c.responder_group.clone()))
            .copied()
            .unwrap_or_default();
        assert!(
            (c.estimate - sum).abs() <= t,
            "{}/{}: {} vs {sum} (T {t})",
            c.querier_group,
            c.responder_group,
            c.estimate
        );
        assert!(
            c.ci_low <= c.estimate.max(0) && c.estimate <= c.ci_high,
            "{c:?}"
        );
    }

    // The holder charged its sums in a second ledger entry and audited the release.
    let shopx = f.shopx.store().expect("store");
    let sum_run = shopx
        .run(&format!("{}-sum", report.run_id))
        .expect("ledger")
        .expect("sum entry");
    assert!((sum_run.epsilon - 1.0).abs() < 1e-9, "{}", sum_run.epsilon);
    let released = shopx
        .audit_entries(None, None)
        .expect("audit")
        .into_iter()
        .filter(|e| {
            e.event.action == "result.released" && e.event.details["role"] == "value_holder"
        })
        .count();
    assert_eq!(released, 1);

    // At most one decryption per run: a second request for it is refused, opaquely.
    let env = Envelope {
        agreement_id: f.agreement_id.clone(),
        run_id: report.run_id.clone(),
        sender: "acme".into(),
        timestamp_ms: now_ms(),
    };
    let body = vec![0u8; 64];
    let headers = env.sign(SUM_REQUEST, &body, &f.acme.key);
    let peer = Peer {
        url: f.shopx.config.public_url.clone(),
        cert_sha256: parse_fingerprint(&f.shopx.tls_fingerprint()).expect("fp"),
    };
    let r = peer
        .post(SUM_PATH, &headers, body, Duration::from_secs(60), 1 << 20)
        .await
        .expect("call");
    assert_eq!(r.status.as_u16(), 403);
    let text = String::from_utf8_lossy(&r.body);
    assert!(
        text.contains("refused") && !text.contains("expired"),
        "{text}"
    );

    // The average per overlapping customer: a ratio of two noised figures.
    let average = analysis::find("average_value").expect("registered");
    let report = run_query(
        &f.acme,
        average,
        &revenue_query(&f, "average_value"),
        "test",
    )
    .await
    .expect("average run");
    for c in &report.cells {
        assert!(c.ci_low <= c.estimate && c.estimate <= c.ci_high, "{c:?}");
        assert!(c.ci_high <= i64::from(REVENUE_BOUND));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_analysis_needs_a_value_column_the_agreement_lists() {
    let f = NodePair::start().await;
    let revenue = analysis::find("revenue").expect("registered");
    let none = Query {
        peer_value: None,
        ..f.query()
    };
    let e = run_query(&f.acme, revenue, &none, "test")
        .await
        .expect_err("no column");
    assert!(e.message().contains("--peer-value"), "{e}");
    let unknown = Query {
        peer_value: Some("tier".into()),
        ..f.query()
    };
    let e = run_query(&f.acme, revenue, &unknown, "test")
        .await
        .expect_err("not a value column");
    assert_eq!(e.code_str(), "invalid_query", "{e}");
}

/// A partner export re-noises counts (sensitivity 1): a stored value analysis, whose cells are
/// sums one customer moves by up to `U`, is refused before anything is charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_analysis_is_not_exported_for_the_partner() {
    let f = NodePair::start().await;
    let revenue = analysis::find("revenue").expect("registered");
    run_query(&f.acme, revenue, &revenue_query(&f, "revenue"), "test")
        .await
        .expect("revenue run");
    let mut store = f.acme.store().expect("store");
    let id = tandem_node::results::list(&store, None).expect("list")[0]
        .result_id
        .clone();
    let runs_before = store.runs(None).expect("runs").len();
    let e = tandem_node::results::partner_export(&mut store, "acme", &id, Some(0.5), "test")
        .expect_err("sums are not re-noised as counts");
    assert_eq!(e.code_str(), "invalid_query", "{e}");
    assert!(e.message().contains("value analysis"), "{e}");
    assert_eq!(
        store.runs(None).expect("runs").len(),
        runs_before,
        "nothing charged"
    );
}

/// acme's arm of `p{i}`: even `test`, odd `control`.
fn arm(i: usize) -> &'static str {
    if i.is_multiple_of(2) {
        "test"
    } else {
        "control"
    }
}

/// shopx's value of `p{i}` in the value-lift pair: the test arm's customers spend more.
fn lift_value(i: usize) -> i64 {
    if i.is_multiple_of(2) {
        600 + (i as i64 * 37) % 400
    } else {
        (i as i64 * 37) % 300
    }
}

/// Value lift over HTTPS on the test kit's pair: acme holds `p0…p599` in two arms of 300,
/// shopx `p100…p699` with a value column (bound 1000, squares released). The run releases the
/// per-arm sums and squares; the figures' estimates are within `T/n` of the exact values per
/// member (the sums' error never exceeds `T`), the planted difference is found (p < 0.01: its z
/// is about 10), the holder's signed ledger head after the sums' charge comes back and is
/// audited, and the report shows the holder's spend on counts and sums together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_lift_over_https_per_arm_with_the_holders_sum_head() {
    let mut acme = String::from("email,arm\n");
    for i in 0..600 {
        acme += &format!("p{i}@example.com,{}\n", arm(i));
    }
    let mut shopx = String::from("email,revenue_cents\n");
    for i in 100..700 {
        shopx += &format!("p{i}@example.com,{}\n", lift_value(i));
    }
    let f = NodePair::with_data(
        tandem_testkit::Side::new(&acme).column("arm", &["test", "control"]),
        tandem_testkit::Side::new(&shopx).value("revenue_cents", REVENUE_BOUND),
    )
    .await;
    let q = Query {
        agreement_id: f.agreement_id.clone(),
        join_key: None,
        group_by: vec!["arm".into()],
        peer_group_by: Vec::new(),
        peer_value: Some("revenue_cents".into()),
        epsilon: 2.0,
        fresh: true,
        options: Default::default(),
    };
    let value_lift = analysis::find("value_lift").expect("registered");
    let store = f.acme.store().expect("store");
    let preview = tandem_node::querier::preview(&store, "acme", value_lift, &q).expect("preview");
    let report = run_query(&f.acme, value_lift, &q, "test")
        .await
        .expect("value lift run");
    let l: tandem_analytics::ValueLiftResult =
        analysis::details_as(&report).expect("value lift figures");
    let per_member = |a: &str| {
        (100..600)
            .filter(|&i| arm(i) == a)
            .map(lift_value)
            .sum::<i64>() as f64
            / 300.0
    };
    let t = offset() as f64 / 300.0;
    let (mt, mc) = (per_member("test"), per_member("control"));
    assert_eq!(
        (l.arms[0].name.as_str(), l.arms[1].name.as_str()),
        ("test", "control")
    );
    assert_eq!((l.arms[0].size, l.arms[1].size), (300, 300));
    assert!((l.arms[0].per_member.estimate - mt).abs() <= t, "{l:?}");
    assert!((l.arms[1].per_member.estimate - mc).abs() <= t, "{l:?}");
    assert!(
        (l.difference.estimate - (mt - mc)).abs() <= 2.0 * t,
        "{l:?}"
    );
    assert!(l.p_value < 0.01, "{l:?}");
    assert!(l.ratio.expect("ratio").estimate > 1.0, "{l:?}");
    let text = value_lift
        .render(&report, analysis::Format::Table)
        .expect("table");
    assert!(text.contains("difference per member"), "{text}");
    // The preview gave the sums' own precision (not the counts'), as the report's cells have it.
    let h = preview.value_half_width_95.expect("a value preview");
    assert!(
        preview.value_unit.is_some() && h > preview.half_width_95,
        "{preview:?}"
    );
    for c in &report.cells {
        assert_eq!(c.ci_high - c.estimate, h as i64, "{c:?}");
    }

    // The holder's ledger after the sums' charge came back signed and was audited; the report
    // shows what the holder spent on the run in all (counts and sums), as the preview said.
    let heads: Vec<serde_json::Value> = store
        .audit_entries(None, None)
        .expect("audit")
        .into_iter()
        .filter(|e| e.event.action == "peer.ledger")
        .map(|e| e.event.details)
        .collect();
    assert_eq!(heads.len(), 2, "{heads:?}");
    let total = |h: &serde_json::Value| h["budget"]["epsilon_total_spent"].as_f64().expect("ε");
    assert!(total(&heads[1]) > total(&heads[0]), "{heads:?}");
    let shopx_store = f.shopx.store().expect("store");
    let sum_entry = shopx_store
        .run(&tandem_node::sums::sum_run_id(&report.run_id))
        .expect("ledger")
        .expect("sum entry");
    assert!(
        (heads[1]["budget"]["epsilon_spent"].as_f64().expect("ε") - sum_entry.epsilon).abs() < 1e-9
    );
    let b = &report.responder_budget;
    assert!(
        (b.epsilon_spent - preview.responder_cost.epsilon).abs() < 1e-9,
        "{b:?} vs {:?}",
        preview.responder_cost
    );
    assert!(
        (b.epsilon_total_spent
            - heads[1]["budget"]["epsilon_total_spent"]
                .as_f64()
                .expect("ε"))
        .abs()
            < 1e-12
    );
}

/// ROAS with another spend is the stored run's revenue over the new spend: the spend is the
/// analyst's public figure, not released data, so the second query is answered from the first
/// run (same run id, cached, nothing charged on either side, no second decryption) with its
/// figures derived anew; a spend by group reads the same stored sums.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roas_with_another_spend_reuses_the_stored_run() {
    let f = NodePair::start().await;
    let roas = analysis::find("roas").expect("registered");
    let with_spend = |spend: &str| Query {
        fresh: false,
        options: [("spend".to_string(), spend.to_string())].into(),
        ..revenue_query(&f, "roas")
    };
    let first = run_query(&f.acme, roas, &with_spend("100000"), "test")
        .await
        .expect("first roas run");
    assert!(!first.cached);
    let shopx = f.shopx.store().expect("store");
    let ledger = |s: &tandem_store::Store| s.runs(None).expect("runs").len();
    let (acme_runs, shopx_runs) = (ledger(&f.acme.store().expect("store")), ledger(&shopx));

    let preview = tandem_node::querier::preview(
        &f.acme.store().expect("store"),
        "acme",
        roas,
        &with_spend("50000"),
    )
    .expect("preview");
    assert!(preview.cached, "{preview:?}");
    let second = run_query(&f.acme, roas, &with_spend("50000"), "test")
        .await
        .expect("second roas");
    assert!(second.cached && second.run_id == first.run_id, "{second:?}");
    assert_eq!(second.querier_budget.epsilon_spent, 0.0);
    assert_eq!(second.options["spend"], "50000");
    let figures = |r: &analysis::Report| -> tandem_analytics::RoasResult {
        analysis::details_as(r).expect("roas figures")
    };
    let (a, b) = (figures(&first), figures(&second));
    assert_eq!(a.rows[0].revenue, b.rows[0].revenue);
    assert!((b.rows[0].roas.estimate - 2.0 * a.rows[0].roas.estimate).abs() < 1e-9);
    assert!((b.rows[0].roas.ci_high - 2.0 * a.rows[0].roas.ci_high).abs() < 1e-9);
    let by_group = run_query(&f.acme, roas, &with_spend("x:1000"), "test")
        .await
        .expect("roas by group");
    assert!(by_group.cached && by_group.run_id == first.run_id);
    assert_eq!(figures(&by_group).rows[0].group, "x");
    let table = roas
        .render(&second, analysis::Format::Table)
        .expect("table");
    assert!(
        table.contains(&format!(
            "cached answer of run {}",
            analysis::short(&first.run_id)
        )),
        "{table}"
    );
    assert_eq!(
        (ledger(&f.acme.store().expect("store")), ledger(&shopx)),
        (acme_runs, shopx_runs),
        "nothing charged again"
    );
}

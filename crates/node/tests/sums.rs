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

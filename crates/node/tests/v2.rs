//! psi-ca-v2 end to end on two real nodes over HTTPS (issue 17): a query under an agreement
//! that selects psi-ca-v2 runs v2's two signed round trips (Msg1 → Msg2 on `/v1/psi/run`,
//! Msg3 → Msg4 on `/v1/psi/v2/finish`), both ledgers are charged as `psi-ca-v2.md` §7 says, the
//! responder takes one Msg3 per run and none after its state's time to live, and a v2 agreement
//! never runs as v1.

use std::time::Duration;

use http::StatusCode;
use tandem_node::Code;
use tandem_node::analysis::overlap::Overlap;
use tandem_node::client::Peer;
use tandem_node::home::Home;
use tandem_node::querier::{PendingQuery, Prepared, prepare_query, run_query};
use tandem_node::run::{active_agreement, derive};
use tandem_node::wire::{
    Envelope, MAX_FRAME_JSON, PSI_PATH, PSI_REQUEST, PSI_V2_FINISH_PATH, PSI_V2_FINISH_REQUEST,
    RunOpening, RunRequest, frame, now_ms, parse_fingerprint, unframe,
};
use tandem_testkit::NodePair;

fn peer(f: &NodePair) -> Peer {
    Peer {
        url: f.shopx.config.public_url.clone(),
        cert_sha256: parse_fingerprint(&f.shopx.tls_fingerprint()).expect("fp"),
    }
}

/// POSTs `body` to shopx; (status, body).
async fn post(
    f: &NodePair,
    path: &str,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let r = peer(f)
        .post(path, headers, body, Duration::from_secs(300), 1 << 26)
        .await
        .expect("call");
    (r.status, r.body.to_vec())
}

/// acme's charged run, its Msg1 sent by hand and shopx's Msg2 read from the answer.
async fn first_round_trip(f: &NodePair) -> (Box<PendingQuery>, Vec<u8>) {
    let prepared = prepare_query(
        &f.acme.store_path(),
        &f.acme.key,
        "acme",
        &Overlap,
        &f.query(),
        "test",
    )
    .expect("prepare");
    let Prepared::Fresh(p) = prepared else {
        panic!("fresh run expected")
    };
    let (body, headers) = p.signed_request(&f.acme.key);
    let (status, answer) = post(f, PSI_PATH, &headers, body).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let (_, msg2) = unframe(&answer, MAX_FRAME_JSON).expect("frame");
    (p, msg2.to_vec())
}

/// acme's Msg3 for `msg2`, signed for `p`'s run.
fn signed_msg3(
    f: &NodePair,
    p: &mut PendingQuery,
    msg2: &[u8],
) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let msg3 = p
        .v2_querier()
        .expect("a psi-ca-v2 run")
        .evaluate(msg2, &tandem_psi_v2::Limits::default(), &mut rand::rng())
        .expect("Msg3");
    let env = Envelope {
        agreement_id: f.agreement_id.clone(),
        run_id: hex::encode(p.run_id()),
        sender: "acme".into(),
        timestamp_ms: now_ms(),
    };
    (env.sign(PSI_V2_FINISH_REQUEST, &msg3, &f.acme.key), msg3)
}

fn runs(home: &Home) -> Vec<tandem_store::RunRecord> {
    home.store().expect("store").runs(None).expect("runs")
}

fn audit_actions(home: &Home) -> Vec<(String, serde_json::Value)> {
    home.store()
        .expect("store")
        .audit_entries(None, None)
        .expect("audit")
        .into_iter()
        .map(|e| (e.event.action, e.event.details))
        .collect()
}

/// The run's v2 charges as both nodes derive them from the stored request.
fn expected_charges(
    f: &NodePair,
    params_json: &str,
) -> (tandem_node::v2::Charge, tandem_node::v2::Charge) {
    let req: RunRequest = serde_json::from_str(params_json).expect("request");
    assert_eq!(req.protocol, "psi-ca-v2");
    let store = f.acme.store().expect("store");
    let (agreement, _) =
        active_agreement(&store, &f.agreement_id, "acme", Code::InvalidQuery).expect("agreement");
    let d = derive(
        &agreement,
        "acme",
        "shopx",
        &req,
        [0; 16],
        Code::InvalidQuery,
    )
    .expect("derive");
    let p = d.v2.expect("v2 parameters");
    (
        tandem_node::v2::querier_charge(&p).expect("querier"),
        tandem_node::v2::responder_charge(&p).expect("responder"),
    )
}

fn assert_charged(r: &tandem_store::RunRecord, c: &tandem_node::v2::Charge) {
    assert!((r.epsilon - c.loss.epsilon).abs() < 1e-12, "{r:?} vs {c:?}");
    assert_eq!(r.delta, c.loss.delta, "{r:?}");
    assert!((r.rho - c.rho).abs() < 1e-12, "{r:?} vs {c:?}");
    assert_eq!(r.charge.as_deref(), Some("spent"), "{r:?}");
}

/// The default pair's true overlap of `seg` label `x`/`y` with `tier` label `silver`/`gold`.
fn truth(seg: &str, tier: &str) -> i64 {
    (150..300)
        .filter(|i| (if i % 2 == 0 { "x" } else { "y" }) == seg)
        .filter(|i| (if i % 3 == 0 { "gold" } else { "silver" }) == tier)
        .count() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_runs_as_v2_within_its_intervals_and_both_ledgers_are_charged_as_spec_7() {
    let f = NodePair::with_protocol("psi-ca-v2").await;
    let preview = tandem_node::querier::preview(
        &f.acme.store().expect("store"),
        "acme",
        &Overlap,
        &f.query(),
    )
    .expect("preview");
    let report = run_query(&f.acme, &Overlap, &f.query(), "test")
        .await
        .expect("v2 run");
    assert_eq!(report.protocol, "psi-ca-v2");
    assert!(!report.cached);

    // Both ledgers: one finished run each, charged exactly as §7 (A: ε_QB + ε_QC with both
    // clamped δs; B: ε_C + ε_RB with only δ_RB), spent.
    let (a, b) = (runs(&f.acme), runs(&f.shopx));
    assert_eq!((a.len(), b.len()), (1, 1), "{a:?} {b:?}");
    assert_eq!(
        (a[0].role.as_str(), b[0].role.as_str()),
        ("querier", "responder")
    );
    assert_eq!(a[0].run_id, b[0].run_id);
    assert_eq!(
        (a[0].status.as_str(), b[0].status.as_str()),
        ("finished", "finished")
    );
    let (qc, rc) = expected_charges(&f, &a[0].params_json);
    assert_charged(&a[0], &qc);
    assert_charged(&b[0], &rc);
    // The free preview priced exactly what both ledgers charged.
    assert_eq!(preview.querier_cost.epsilon, a[0].epsilon);
    assert_eq!(preview.responder_cost.epsilon, b[0].epsilon);
    assert_eq!(report.querier_budget.epsilon_spent, a[0].epsilon);
    assert_eq!(report.responder_budget.epsilon_spent, b[0].epsilon);
    // And a preview now counts runs left with v2's own ρ, as the report did (not v1's).
    let again = tandem_node::querier::preview(
        &f.acme.store().expect("store"),
        "acme",
        &Overlap,
        &f.query(),
    )
    .expect("preview");
    assert_eq!(
        again.querier_queries_left,
        report.querier_budget.queries_left_like_this
    );

    // Every cell's interval is the central discrete Laplace's at s_C (unclamped), and the truth
    // lies within five of its half-widths: P(|Z| > 5h) < 0.05⁵·2 per cell, under 10⁻⁵ for the
    // run (the noise is opendp's, unseeded: a sound bound, not a 95% one).
    let store = f.acme.store().expect("store");
    let req: RunRequest = serde_json::from_str(&a[0].params_json).expect("request");
    let (agreement, _) =
        active_agreement(&store, &f.agreement_id, "acme", Code::InvalidQuery).expect("agreement");
    let d = derive(
        &agreement,
        "acme",
        "shopx",
        &req,
        [0; 16],
        Code::InvalidQuery,
    )
    .expect("derive");
    let scale = d.v2.as_ref().expect("v2").cell_scale;
    let h = tandem_dp::ShiftedLaplace {
        scale,
        offset: tandem_dp::ShiftedLaplace::MAX_OFFSET,
    }
    .half_width(1.0 - tandem_node::analysis::CONFIDENCE)
    .expect("half width") as i64;
    assert!(h > 0);
    let mut checked = 0;
    for c in &report.cells {
        let interval = ((c.estimate - h).max(0), (c.estimate + h).max(0));
        assert_eq!((c.ci_low, c.ci_high), interval, "{c:?}");
        let t = match (c.querier_group.as_str(), c.responder_group.as_str()) {
            (s @ ("x" | "y"), t @ ("silver" | "gold")) => truth(s, t),
            _ => 0,
        };
        assert!(
            (c.estimate - t).abs() <= 5 * h,
            "{c:?}: truth {t}, half-width {h}"
        );
        checked += 1;
    }
    assert_eq!(checked, 9, "3 × 3 cells (with `other`)");

    // Another count analysis over the same cells runs v2 too; a value analysis is refused
    // before any charge (psi-sum-v1 needs v1's reply).
    let reach = tandem_node::analysis::find("reach").expect("reach");
    let r = run_query(&f.acme, reach, &f.query(), "test")
        .await
        .expect("reach under v2");
    assert_eq!(r.protocol, "psi-ca-v2");
    assert!(r.details.is_some());
    let revenue = tandem_node::analysis::find("revenue").expect("revenue");
    let mut q = f.query();
    q.peer_value = Some("revenue_cents".into());
    let e = run_query(&f.acme, revenue, &q, "test")
        .await
        .expect_err("no sums under v2");
    assert_eq!(e.code(), Code::InvalidQuery, "{e}");
    assert!(e.message().contains("psi-ca-v2"), "{e}");
    assert_eq!(runs(&f.shopx).len(), 2, "reach charged, revenue not");

    // The responder's audit trail: the charge, Msg2 leaving, the release to the querier.
    let actions: Vec<String> = audit_actions(&f.shopx)
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    for expected in [
        "budget.charged",
        "message.sent",
        "run.finished",
        "result.released",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected}: {actions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_msg3_is_refused_opaquely_and_audited() {
    let f = NodePair::with_protocol("psi-ca-v2").await;
    let (mut p, msg2) = first_round_trip(&f).await;
    let (headers, msg3) = signed_msg3(&f, &mut p, &msg2);
    let (status, msg4) = post(&f, PSI_V2_FINISH_PATH, &headers, msg3.clone()).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&msg4));
    assert_eq!(&msg4[..4], b"TPS2");
    // The same Msg3 again (its signature still fresh): the state is gone, at most one Msg3.
    let (status, body) = post(&f, PSI_V2_FINISH_PATH, &headers, msg3).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("\"refused\""), "{text}");
    assert!(
        !text.contains("Msg3 (unknown"),
        "the reason stays local: {text}"
    );
    let refused: Vec<_> = audit_actions(&f.shopx)
        .into_iter()
        .filter(|(a, d)| a == "query.refused" && d["protocol"] == "psi-ca-v2")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    // The run itself was answered once and released.
    let b = runs(&f.shopx);
    assert_eq!((b.len(), b[0].status.as_str()), (1, "finished"), "{b:?}");
}

/// acme's signed Msg1 of a fresh run, posted to shopx: (status, body).
async fn post_msg1(f: &NodePair) -> (StatusCode, String) {
    let Prepared::Fresh(p) = prepare_query(
        &f.acme.store_path(),
        &f.acme.key,
        "acme",
        &Overlap,
        &f.query(),
        "test",
    )
    .expect("prepare") else {
        panic!("fresh run expected")
    };
    let (body, headers) = p.signed_request(&f.acme.key);
    let (status, answer) = post(f, PSI_PATH, &headers, body).await;
    (status, String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_msg3_after_the_ttl_is_refused_and_pending_runs_are_bounded() {
    // A TTL long enough that a loaded machine still sends the second Msg1 within it.
    let limits = tandem_node::home::Limits {
        v2_state_ttl_s: 5,
        v2_pending_per_peer: 1,
        ..Default::default()
    };
    let f = NodePair::with_protocol_limits("psi-ca-v2", limits).await;
    let (mut p, msg2) = first_round_trip(&f).await;
    // One run of acme waits for its Msg3: a second Msg1 is turned away before any charge.
    let (status, text) = post_msg1(&f).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{text}");
    assert_eq!(runs(&f.shopx).len(), 1, "the second run charged nothing");
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let (headers, msg3) = signed_msg3(&f, &mut p, &msg2);
    let (status, body) = post(&f, PSI_V2_FINISH_PATH, &headers, msg3).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("\"refused\""), "{text}");
    // shopx's run failed with its charge kept: Msg2 (its noised bucket sizes) had left.
    let b = runs(&f.shopx);
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].status, "failed", "{b:?}");
    assert_eq!(b[0].charge.as_deref(), Some("spent"), "{b:?}");
    // The expired run no longer holds the peer's slot.
    let (status, text) = post_msg1(&f).await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_agreement_never_runs_as_v1() {
    let f = NodePair::with_protocol("psi-ca-v2").await;
    // acme's own request names psi-ca-v2.
    let prepared = prepare_query(
        &f.acme.store_path(),
        &f.acme.key,
        "acme",
        &Overlap,
        &f.query(),
        "test",
    )
    .expect("prepare");
    let Prepared::Fresh(p) = prepared else {
        panic!("fresh run expected")
    };
    let (body, _) = p.signed_request(&f.acme.key);
    let (opening, msg1) = unframe(&body, MAX_FRAME_JSON).expect("frame");
    let mut opening: RunOpening = serde_json::from_value(opening).expect("opening");
    assert_eq!(opening.request.protocol, "psi-ca-v2");
    // The same run asked as psi-ca-v1, correctly signed: refused before any charge.
    opening.request.protocol = "psi-ca-v1".into();
    let body = frame(&serde_json::to_value(&opening).expect("json"), msg1);
    let env = Envelope {
        agreement_id: f.agreement_id.clone(),
        run_id: hex::encode(p.run_id()),
        sender: "acme".into(),
        timestamp_ms: now_ms(),
    };
    let headers = env.sign(PSI_REQUEST, &body, &f.acme.key);
    let (status, answer) = post(&f, PSI_PATH, &headers, body).await;
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("psi-ca-v2"), "{text}");
    assert!(runs(&f.shopx).is_empty(), "nothing charged on shopx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_agreement_keeps_its_id_and_runs_v1() {
    let f = NodePair::start().await;
    let store = f.acme.store().expect("store");
    let (agreement, _) =
        active_agreement(&store, &f.agreement_id, "acme", Code::InvalidQuery).expect("agreement");
    // psi-ca-v1 is left out of the canonical bytes: the id of an agreement written before the
    // `protocol` field is unchanged, and choosing v2 makes another agreement.
    let terms = serde_json::to_value(&agreement.terms).expect("json");
    assert!(terms.get("protocol").is_none(), "{terms}");
    let mut v2 = agreement.terms.clone();
    v2.protocol = tandem_agreement::Protocol::PsiCaV2;
    assert_ne!(v2.id(), agreement.terms.id());
    assert_eq!(agreement.id().to_string(), f.agreement_id);
    let report = run_query(&f.acme, &Overlap, &f.query(), "test")
        .await
        .expect("v1 run");
    assert_eq!(report.protocol, "psi-ca-v1");
}

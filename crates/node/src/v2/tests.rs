//! Ledger charges of a psi-ca-v2 run (spec §7) against v1's, on the same request.

use tandem_testkit::{AgreementBuilder, PartySpec};

use super::{entry, params, selected};
use crate::budget::{EntryFor, run_delta};
use crate::error::Code;
use crate::run::derive;
use crate::wire::{PROTOCOL, RunRequest};

fn request(agreement: &tandem_agreement::Agreement) -> RunRequest {
    RunRequest {
        protocol: agreement.terms.protocol.as_str().into(),
        analysis: "overlap".into(),
        join_key: "email".into(),
        querier_columns: Vec::new(),
        responder_columns: vec!["tier".into()],
        responder_value: None,
        epsilon: 1.0,
        delta: run_delta(agreement),
        identity_rules: tandem_identity::RULES_VERSION.to_string(),
    }
}

fn entry_for<'a>(role: &'a str, party: &'a str) -> EntryFor<'a> {
    EntryFor {
        party,
        role,
        run_id: "00",
        actor: "test",
        params_json: "{}".into(),
        join_key: "email",
        rho: 0.0,
    }
}

#[test]
fn v2_charges_the_responders_cells_pure_and_the_queriers_seed_matches() {
    let agreement = AgreementBuilder::new()
        .protocol("psi-ca-v2")
        .party(PartySpec::seeded("acme", 1))
        .party(PartySpec::seeded("shopx", 2).column("tier", &["bronze", "silver", "gold"]))
        .agreement();
    assert!(selected(&agreement));
    let req = request(&agreement);
    let derived = derive(
        &agreement,
        "acme",
        "shopx",
        &req,
        [7; 16],
        Code::InvalidQuery,
    )
    .expect("derive");
    let p = params(&derived, &req, Code::InvalidQuery).expect("v2 params");
    assert_eq!((p.querier_buckets, p.responder_buckets), (1, 4));
    let split = derived.analysis.epsilon_split();

    let b = entry(&agreement, &p, entry_for("responder", "shopx")).expect("responder entry");
    // δ: only the clamped bucket-size noise (δ/2); the cells' central noise has δ = 0.
    assert_eq!(b.delta, p.responder_bucket_noise.clamp_delta());
    assert!(b.delta > 0.0 && b.delta <= req.delta / 2.0, "{}", b.delta);
    // ε: the responder's whole share, cells and bucket sizes.
    let share = req.epsilon * split.responder;
    assert!(
        b.epsilon <= share + 1e-9 && b.epsilon > 0.9 * share,
        "{} of {share}",
        b.epsilon
    );
    let cell = tandem_psi_v2::cell_loss(&p).expect("cell loss");
    assert_eq!(cell.delta, 0.0);
    let bucket_eps = b.epsilon - cell.epsilon;
    assert!((b.rho - (cell.epsilon.powi(2) + bucket_eps.powi(2)) / 2.0).abs() < 1e-9);

    let a = entry(&agreement, &p, entry_for("querier", "acme")).expect("querier entry");
    // Bucket sizes and the seed matches B sees: two clamped mechanisms, δ/2 each.
    let seeds_delta = p.querier_cell_noise.clamp_delta();
    assert!(seeds_delta > 0.0);
    assert_eq!(a.delta, p.querier_bucket_noise.clamp_delta() + seeds_delta);
    assert!(a.delta <= req.delta, "{}", a.delta);
    let share = req.epsilon * split.querier;
    assert!(
        a.epsilon <= share + 1e-9 && a.epsilon > 0.9 * share,
        "{} of {share}",
        a.epsilon
    );
    let qb = p.querier_bucket_noise.epsilon(1).expect("ε_QB");
    let qc = p.querier_cell_noise.epsilon(1).expect("ε_QC");
    assert!((a.epsilon - (qb + qc)).abs() < 1e-9);
    assert!((a.rho - (qb * qb + qc * qc) / 2.0).abs() < 1e-9);

    // v1 on the same request charges the querier only its bucket sizes.
    let v1 = tandem_psi::accounting::querier_loss(&derived.params).expect("v1 loss");
    assert!(v1.delta < a.delta);
}

#[test]
fn an_unknown_role_is_refused() {
    let agreement = AgreementBuilder::new()
        .protocol("psi-ca-v2")
        .party(PartySpec::seeded("acme", 1))
        .party(PartySpec::seeded("shopx", 2))
        .agreement();
    let req = request(&agreement);
    let mut req = req;
    req.responder_columns = Vec::new();
    let derived = derive(
        &agreement,
        "acme",
        "shopx",
        &req,
        [7; 16],
        Code::InvalidQuery,
    )
    .expect("derive");
    let p = params(&derived, &req, Code::InvalidQuery).expect("v2 params");
    assert!(entry(&agreement, &p, entry_for("auditor", "acme")).is_err());
    assert!(!selected(
        &AgreementBuilder::new()
            .party(PartySpec::seeded("acme", 1))
            .party(PartySpec::seeded("shopx", 2))
            .agreement()
    ));
}

#[test]
fn no_run_falls_back_to_the_other_protocol() {
    let builder = AgreementBuilder::new()
        .party(PartySpec::seeded("acme", 1))
        .party(PartySpec::seeded("shopx", 2));
    let v2 = builder.clone().protocol("psi-ca-v2").agreement();
    let v1 = builder.agreement();
    let mut req = request(&v2);
    req.responder_columns = Vec::new();
    req.protocol = PROTOCOL.into();
    let err = derive(&v2, "acme", "shopx", &req, [7; 16], Code::Refused)
        .err()
        .expect("a v1 run under a v2 agreement is refused");
    assert_eq!(err.code(), Code::Refused);
    assert!(err.message().contains("psi-ca-v2"), "{}", err.message());
    req.protocol = "psi-ca-v2".into();
    assert!(derive(&v1, "acme", "shopx", &req, [7; 16], Code::Refused).is_err());
}

#[test]
fn the_summary_names_the_protocol_and_each_sides_guarantee() {
    let builder = AgreementBuilder::new()
        .party(PartySpec::seeded("acme", 1))
        .party(PartySpec::seeded("shopx", 2));
    let v2 =
        serde_json::to_string(&builder.clone().protocol("psi-ca-v2").agreement()).expect("json");
    let s = super::protocol_summary(&v2);
    assert_eq!(s["protocol"], "psi-ca-v2");
    let responder = s["threat_model"]["responder"].as_str().expect("responder");
    assert!(responder.contains("against any querier"), "{responder}");
    let querier = s["threat_model"]["querier"].as_str().expect("querier");
    assert!(querier.contains("semi-honest responder only"), "{querier}");
    let v1 = serde_json::to_string(&builder.agreement()).expect("json");
    assert_eq!(super::protocol_summary(&v1)["protocol"], "psi-ca-v1");
    assert!(
        super::protocol_summary("{").is_null()
            || super::protocol_summary("{")["protocol"].is_null()
    );
}

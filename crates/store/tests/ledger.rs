//! Budget ledger: reservation, refusal, release, replay, concurrency, cache, budget periods.

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use tandem_store::{Store, StoreError};

#[test]
fn refusal_charges_nothing_and_is_audited() {
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag");
    let b = store.begin_run(&run("r1", "ag", 0.6, 1.0)).unwrap();
    assert_eq!(
        (b.spent_epsilon, b.left_epsilon, b.reserved_epsilon, b.runs),
        (0.6, 0.4, 0.6, 1)
    );
    let err = store.begin_run(&run("r2", "ag", 0.5, 1.0)).unwrap_err();
    match err {
        StoreError::BudgetExceeded {
            spent,
            cost,
            cap,
            what,
            zcdp,
            account,
        } => {
            assert_eq!((spent, cost, cap, what), (0.6, 0.5, 1.0, "epsilon"));
            assert_eq!(account, None, "not a two-party document: no account");
            assert_eq!(zcdp, None, "no ρ cap given, so no zCDP route");
        }
        other => panic!("{other}"),
    }
    let b = store.budget("ag", 1.0, 1e-6, 0).unwrap();
    assert_eq!(
        (b.spent_epsilon, b.runs),
        (0.6, 1),
        "refusal consumed budget"
    );
    let r2 = store.run("r2").unwrap().unwrap();
    assert_eq!(
        (r2.status.as_str(), r2.charge.as_deref()),
        ("refused", None)
    );
    let refused = store
        .audit_entries(None, None)
        .unwrap()
        .into_iter()
        .rfind(|e| e.event.action == "query.refused")
        .unwrap();
    assert_eq!(refused.event.details["reason"], "budget_exceeded");
    assert_eq!(refused.event.details["what"], "epsilon");
    assert_eq!(refused.event.agreement_id.as_deref(), Some("ag"));
    // A smaller query still fits.
    store.begin_run(&run("r3", "ag", 0.4, 1.0)).unwrap();
    assert_eq!(store.budget("ag", 1.0, 1e-6, 0).unwrap().left_epsilon, 0.0);
}

#[test]
fn delta_cap_is_enforced_too() {
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag");
    let mut r = run("r1", "ag", 0.1, 10.0);
    r.delta = 3e-7;
    store.begin_run(&r).unwrap();
    r.run_id = "r2".into();
    let err = store.begin_run(&r).unwrap_err();
    // The runs' δ may use half the δ cap (5e-7); the other half is the zCDP route's.
    assert!(
        matches!(err, StoreError::BudgetExceeded { what: "delta", cap, .. } if cap == 5e-7),
        "{err}"
    );
    assert!(
        err.to_string().contains("> half the delta cap 0.0000005"),
        "{err}"
    );
}

#[test]
fn fail_releases_only_when_no_data_left() {
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag");
    store.begin_run(&run("early", "ag", 0.5, 1.0)).unwrap();
    store.fail_run("early", "peer unreachable", false).unwrap();
    let b = store.budget("ag", 1.0, 1e-6, 0).unwrap();
    assert_eq!((b.spent_epsilon, b.runs), (0.0, 0));
    assert_eq!(
        store.run("early").unwrap().unwrap().charge.as_deref(),
        Some("released")
    );

    store.begin_run(&run("late", "ag", 0.5, 1.0)).unwrap();
    store
        .fail_run(
            "late",
            "connection lost after sending the noised count",
            true,
        )
        .unwrap();
    let b = store.budget("ag", 1.0, 1e-6, 0).unwrap();
    assert_eq!((b.spent_epsilon, b.reserved_epsilon, b.runs), (0.5, 0.0, 1));
    let late = store.run("late").unwrap().unwrap();
    assert_eq!(
        (late.status.as_str(), late.charge.as_deref()),
        ("failed", Some("spent"))
    );

    // Ended runs cannot end again.
    assert!(matches!(
        store.fail_run("late", "again", false),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.finish_run("late", "{}", &"0".repeat(64)),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.fail_run("nope", "x", false),
        Err(StoreError::NotFound(_))
    ));

    let actions: Vec<String> = store
        .audit_entries(None, None)
        .unwrap()
        .into_iter()
        .map(|e| e.event.action)
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "budget.released").count(),
        1
    );
    assert_eq!(actions.iter().filter(|a| *a == "run.failed").count(), 2);
}

#[test]
fn finish_consumes_and_caches() {
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag");
    let mut r = run("r1", "ag", 0.25, 1.0);
    r.fingerprint = Some(format!("ag|overlap|v{}", store.audience_version().unwrap()));
    store.begin_run(&r).unwrap();
    assert_eq!(
        store
            .cached_result(r.fingerprint.as_deref().unwrap())
            .unwrap(),
        None
    );
    let sha = "AB".repeat(32);
    store.finish_run("r1", r#"{"overlap":1234}"#, &sha).unwrap();
    let cached = store
        .cached_result(r.fingerprint.as_deref().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        (cached.run_id.as_str(), cached.result_json.as_str()),
        ("r1", r#"{"overlap":1234}"#)
    );
    assert_eq!(cached.output_sha256, "ab".repeat(32));
    let rec = store.run("r1").unwrap().unwrap();
    assert_eq!(
        (rec.status.as_str(), rec.charge.as_deref()),
        ("finished", Some("spent"))
    );
    assert_eq!(
        store.budget("ag", 1.0, 1e-6, 0).unwrap().spent_epsilon,
        0.25
    );
    assert!(matches!(
        store.finish_run("r1", "not json", &sha),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn replayed_run_id_is_refused() {
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag");
    active_agreement(&mut store, "other");
    store.begin_run(&run("r1", "ag", 0.1, 1.0)).unwrap();
    let err = store.begin_run(&run("r1", "ag", 0.1, 1.0)).unwrap_err();
    assert!(
        matches!(&err, StoreError::Replay { run_id } if run_id == "r1"),
        "{err}"
    );
    let mut responder = run("r1", "other", 0.1, 1.0);
    responder.role = "responder".into();
    assert!(matches!(
        store.begin_run(&responder),
        Err(StoreError::Replay { .. })
    ));
    // Replays charge nothing; refusals are audited.
    assert_eq!(store.budget("ag", 1.0, 1e-6, 0).unwrap().runs, 1);
    let n = store
        .audit_entries(None, None)
        .unwrap()
        .iter()
        .filter(|e| e.event.details["reason"] == "replay")
        .count();
    assert_eq!(n, 2);
}

#[test]
fn budget_is_shared_by_both_roles_and_separate_per_agreement() {
    let (_dir, mut store) = store();
    active_agreement(&mut store, "a");
    active_agreement(&mut store, "b");
    store.begin_run(&run("q1", "a", 0.5, 1.0)).unwrap();
    let mut resp = run("p1", "a", 0.5, 1.0);
    resp.role = "responder".into();
    store.begin_run(&resp).unwrap();
    assert!(matches!(
        store.begin_run(&run("q2", "a", 0.1, 1.0)),
        Err(StoreError::BudgetExceeded { .. })
    ));
    store.begin_run(&run("q3", "b", 0.1, 1.0)).unwrap();
    assert_eq!(store.runs(Some("a")).unwrap().len(), 3);
    assert_eq!(store.runs(None).unwrap().len(), 4);
}

#[test]
fn runs_need_an_active_agreement() {
    let (_dir, mut store) = store();
    let err = store
        .begin_run(&run("r1", "missing", 0.1, 1.0))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::AgreementNotActive { status: None, .. }),
        "{err}"
    );
    store
        .put_agreement("ag", "{}", "proposed", "cli:admin")
        .unwrap();
    assert!(matches!(
        store.begin_run(&run("r2", "ag", 0.1, 1.0)),
        Err(StoreError::AgreementNotActive { .. })
    ));
    store
        .put_agreement("ag", "{}", "active", "cli:admin")
        .unwrap();
    store.begin_run(&run("r3", "ag", 0.1, 1.0)).unwrap();
    store
        .put_agreement("ag", "{}", "revoked", "cli:admin")
        .unwrap();
    assert!(matches!(
        store.begin_run(&run("r4", "ag", 0.1, 1.0)),
        Err(StoreError::AgreementNotActive { .. })
    ));
}

#[test]
fn bad_arguments_are_rejected_before_anything_is_written() {
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag");
    let head = store.audit_head().unwrap();
    for bad in [f64::NAN, -0.1, f64::INFINITY] {
        assert!(matches!(
            store.begin_run(&run("r", "ag", bad, 1.0)),
            Err(StoreError::Invalid(_))
        ));
    }
    let mut r = run("r", "ag", 0.1, 1.0);
    r.role = "observer".into();
    assert!(matches!(store.begin_run(&r), Err(StoreError::Invalid(_))));
    r = run("r", "ag", 0.1, 1.0);
    r.params_json = "{".into();
    assert!(matches!(store.begin_run(&r), Err(StoreError::Invalid(_))));
    assert_eq!(store.audit_head().unwrap(), head);
}

#[test]
fn interrupted_runs_keep_their_charge() {
    let (dir, mut store) = store();
    active_agreement(&mut store, "ag");
    store.begin_run(&run("r1", "ag", 0.3, 1.0)).unwrap();
    drop(store);
    let mut store = Store::open(dir.path()).unwrap();
    assert_eq!(store.fail_interrupted_runs().unwrap(), 1);
    let r = store.run("r1").unwrap().unwrap();
    assert_eq!(
        (r.status.as_str(), r.charge.as_deref()),
        ("failed", Some("spent"))
    );
    assert_eq!(store.budget("ag", 1.0, 1e-6, 0).unwrap().spent_epsilon, 0.3);
}

/// 16 threads, each with its own connection, race to reserve: exactly ⌊cap/cost⌋ win.
fn race(threads: usize, attempts: usize, cost: f64, cap: f64) -> usize {
    race_with(threads, attempts, cost, cap, None)
}

/// [`race`] with runs costing ρ = ε²/2 and offering the zCDP route with `cap_rho`.
fn race_with(threads: usize, attempts: usize, cost: f64, cap: f64, cap_rho: Option<f64>) -> usize {
    let (dir, mut store) = store();
    active_agreement(&mut store, "ag");
    let path = store.path().to_path_buf();
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut s = Store::open(&path).unwrap();
                barrier.wait();
                let mut ok = 0;
                for a in 0..attempts {
                    let mut r = run(&format!("t{t}-{a}"), "ag", cost, cap);
                    if cap_rho.is_some() {
                        r.rho = cost * cost / 2.0;
                        r.cap_rho = cap_rho;
                    }
                    match s.begin_run(&r) {
                        Ok(_) => ok += 1,
                        Err(StoreError::BudgetExceeded { .. }) => {}
                        Err(e) => panic!("thread {t}: {e}"),
                    }
                }
                ok
            })
        })
        .collect();
    let ok: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let b = store
        .budget_with_rho_cap("ag", cap, 1e-6, cap_rho, 0)
        .unwrap();
    match cap_rho {
        None => assert!(b.spent_epsilon <= cap, "overspent: {b:?}"),
        Some(cap_rho) => assert!(
            b.spent_epsilon <= cap || (b.spent_rho <= cap_rho && b.spent_delta <= 0.5e-6),
            "overspent on both routes: {b:?}"
        ),
    }
    assert_eq!(b.runs as usize, ok);
    store.verify_audit(None).unwrap();
    drop(dir);
    ok
}

#[test]
fn parallel_reservations_never_overspend() {
    assert_eq!(race(16, 1, 0.1, 1.0), 10);
    assert_eq!(race(16, 4, 0.07, 2.0), 28);
    assert_eq!(race(16, 1, 0.3, 0.9), 3);
}

/// ρ cap of an agreement with ε cap 10 and δ cap 1e-6: `tandem_dp::rho_for_epsilon(10.0, 5e-7)`
/// (1.478441918095…), rounded down.
const RHO_CAP_EPS10: f64 = 1.478_441_918;

/// ρ cap for ε cap 1 and δ cap 1e-6: `tandem_dp::rho_for_epsilon(1.0, 5e-7)` (0.0229374466…),
/// rounded down.
const RHO_CAP_EPS1: f64 = 0.022_937_446;

/// A run of ε-DP with ρ = ε²/2 that offers the zCDP route.
fn zcdp_run(id: &str, epsilon: f64, cap: f64, cap_rho: f64) -> tandem_store::NewRun {
    let mut r = run(id, "ag", epsilon, cap);
    r.rho = epsilon * epsilon / 2.0;
    r.cap_rho = Some(cap_rho);
    r
}

/// `route` of every `budget.charged` entry, in order.
fn routes(store: &Store) -> Vec<String> {
    store
        .audit_entries(None, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.event.action == "budget.charged")
        .map(|e| e.event.details["route"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
fn many_small_runs_fit_by_zcdp_after_basic_composition_is_spent() {
    // Runs of ε = 0.1 (ρ = 0.005, δ = 1e-9) under caps ε = 10, δ = 1e-6: basic composition
    // admits 100, zCDP ⌊1.478441918 / 0.005⌋ = 295 (their δ, 2.95e-7, is below half the cap).
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag");
    let mut admitted = 0;
    let err = loop {
        match store.begin_run(&zcdp_run(&format!("r{admitted}"), 0.1, 10.0, RHO_CAP_EPS10)) {
            Ok(b) => {
                admitted += 1;
                assert_eq!(b.cap_rho, Some(RHO_CAP_EPS10));
                assert!(b.spent_rho <= RHO_CAP_EPS10);
            }
            Err(e) => break e,
        }
        assert!(admitted <= 1000, "no cap enforced");
    };
    assert_eq!(admitted, 295);
    match &err {
        StoreError::BudgetExceeded {
            what, cap, zcdp, ..
        } => {
            assert_eq!((*what, *cap), ("epsilon", 10.0), "basic numbers: {err}");
            let note = zcdp.as_deref().unwrap_or_default();
            assert!(note.starts_with("rho spent 1.475"), "{note}");
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string().contains("zCDP route is exhausted too"),
        "{err}"
    );
    let routes = routes(&store);
    assert_eq!(routes.len(), 295);
    assert!(routes[..100].iter().all(|r| r == "basic"), "{routes:?}");
    assert!(routes[100..].iter().all(|r| r == "zcdp"), "{routes:?}");
    let b = store
        .budget_with_rho_cap("ag", 10.0, 1e-6, Some(RHO_CAP_EPS10), 0)
        .unwrap();
    assert_eq!((b.runs, b.left_epsilon), (295, 0.0));
    assert!((b.spent_epsilon - 29.5).abs() < 1e-9, "{b:?}");
    // 0.1²/2 is a hair above 0.005 in floating point, and ρ costs round up: ≤ 1e-9 per run.
    assert!(
        b.spent_rho >= 1.475 && b.spent_rho <= 1.475 + 295e-9,
        "{b:?}"
    );
    let refused = store
        .audit_entries(None, None)
        .unwrap()
        .into_iter()
        .rfind(|e| e.event.action == "query.refused")
        .unwrap();
    assert_eq!(refused.event.details["what"], "epsilon");
    assert_eq!(refused.event.details["zcdp"]["what"], "rho");
    assert_eq!(refused.event.details["zcdp"]["cap"], RHO_CAP_EPS10);
    store.verify_audit(None).unwrap();

    // The same sequence without a ρ cap stops at basic composition's 100.
    let (_dir2, mut basic_only) = common::store();
    active_agreement(&mut basic_only, "ag");
    let mut admitted = 0;
    while basic_only
        .begin_run(&run(&format!("r{admitted}"), "ag", 0.1, 10.0))
        .is_ok()
    {
        admitted += 1;
    }
    assert_eq!(admitted, 100);
}

#[test]
fn few_large_runs_fit_by_basic_composition() {
    // ε = 0.5 (ρ = 0.125) under caps ε = 1, δ = 1e-6: the zCDP route (ρ cap 0.0229) would not
    // admit even one, basic composition admits two.
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag");
    store
        .begin_run(&zcdp_run("r1", 0.5, 1.0, RHO_CAP_EPS1))
        .unwrap();
    let b = store
        .begin_run(&zcdp_run("r2", 0.5, 1.0, RHO_CAP_EPS1))
        .unwrap();
    assert_eq!(
        (b.spent_epsilon, b.left_epsilon, b.spent_rho),
        (1.0, 0.0, 0.25)
    );
    let err = store
        .begin_run(&zcdp_run("r3", 0.5, 1.0, RHO_CAP_EPS1))
        .unwrap_err();
    match &err {
        StoreError::BudgetExceeded {
            spent,
            cost,
            cap,
            what,
            zcdp,
            ..
        } => {
            assert_eq!((*spent, *cost, *cap, *what), (1.0, 0.5, 1.0, "epsilon"));
            assert_eq!(
                zcdp.as_deref(),
                Some("rho spent 0.25 + this query 0.125 > cap 0.022937446")
            );
        }
        other => panic!("{other}"),
    }
    assert_eq!(routes(&store), ["basic", "basic"]);
    // A run that costs ρ = 0 cannot use the zCDP route.
    let mut free_rho = zcdp_run("r4", 0.1, 1.0, RHO_CAP_EPS1);
    free_rho.rho = 0.0;
    assert!(matches!(
        store.begin_run(&free_rho),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn zcdp_route_keeps_half_the_delta_cap_for_the_conversion() {
    // ε = 1 runs with δ = 2.5e-7 under caps ε = 1, δ = 1e-6 and a generous ρ cap: the first
    // is basic; the second only fits by zCDP, which allows Σδ up to 5e-7 (reached exactly); the
    // third would bring Σδ to 7.5e-7 — within the δ cap, but not within its half.
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag");
    let big = |id: &str| {
        let mut r = zcdp_run(id, 1.0, 1.0, 10.0);
        r.delta = 2.5e-7;
        r
    };
    store.begin_run(&big("r1")).unwrap();
    let b = store.begin_run(&big("r2")).unwrap();
    assert_eq!(
        (b.spent_epsilon, b.spent_delta, b.spent_rho),
        (2.0, 5e-7, 1.0)
    );
    let err = store.begin_run(&big("r3")).unwrap_err();
    match &err {
        StoreError::BudgetExceeded { what, zcdp, .. } => {
            assert_eq!(*what, "delta");
            assert_eq!(*zcdp, None);
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string().contains(
            "delta spent 0.0000005 + this query 0.00000025 > half the delta cap 0.0000005"
        ),
        "{err}"
    );
    assert_eq!(routes(&store), ["basic", "zcdp"]);
    // A run of no δ still fits by zCDP.
    let mut small = zcdp_run("r4", 1.0, 1.0, 10.0);
    small.delta = 0.0;
    store.begin_run(&small).unwrap();
}

/// Issue 9 item 3: the basic route used to allow Σδ up to the full δ cap while the zCDP route
/// kept half of it, so a ledger that switched routes could reach 1.5 × the δ cap. One rule now:
/// `Σδ ≤ cap_δ/2` whichever route admits the run.
#[test]
fn the_basic_route_keeps_half_the_delta_cap_too() {
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag");
    for i in 0..2 {
        let mut r = run(&format!("d{i}"), "ag", 0.1, 10.0);
        r.delta = 2.5e-7;
        store.begin_run(&r).unwrap();
    }
    let mut third = run("d2", "ag", 0.1, 10.0);
    third.delta = 2.5e-7;
    let err = store.begin_run(&third).unwrap_err();
    assert!(
        matches!(err, StoreError::BudgetExceeded { what: "delta", spent, cap, .. }
            if spent == 5e-7 && cap == 5e-7),
        "{err}"
    );
    assert_eq!(store.budget("ag", 10.0, 1e-6, 0).unwrap().left_delta, 0.0);
    // The route that admitted each charge is kept with it.
    let d0 = store.run("d0").unwrap().unwrap();
    assert_eq!(d0.route.as_deref(), Some("basic"));
    assert_eq!(store.run("d2").unwrap().unwrap().route, None);
}

#[test]
fn parallel_reservations_never_overspend_on_either_route() {
    // 16 threads × 20 attempts at ε = 0.1 under ε cap 10: basic 100, zCDP 295.
    assert_eq!(race_with(16, 20, 0.1, 10.0, Some(RHO_CAP_EPS10)), 295);
    assert_eq!(race_with(16, 8, 0.1, 10.0, None), 100);
}

/// A Unix-ms instant strictly after every run begun so far (the ledger stamps runs in ms).
fn a_moment_later() -> i64 {
    std::thread::sleep(std::time::Duration::from_millis(3));
    tandem_audit::now_unix_ms()
}

#[test]
fn charges_before_the_period_start_do_not_count() {
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag");
    store
        .begin_run(&zcdp_run("old", 0.6, 1.0, RHO_CAP_EPS1))
        .unwrap();
    let since = a_moment_later();
    let mut r = zcdp_run("new", 0.3, 1.0, RHO_CAP_EPS1);
    r.budget_since_ms = since;
    let b = store.begin_run(&r).unwrap();
    // Only the run of this period counts, in ε, δ and ρ alike.
    assert_eq!(
        (b.spent_epsilon, b.spent_delta, b.runs),
        (0.3, 1e-9, 1),
        "{b:?}"
    );
    assert!((b.spent_rho - 0.045).abs() <= 1e-9, "{b:?}");
    let b = store
        .budget_with_rho_cap("ag", 1.0, 1e-6, Some(RHO_CAP_EPS1), since)
        .unwrap();
    assert_eq!((b.spent_epsilon, b.left_epsilon, b.runs), (0.3, 0.7, 1));
    // Over the whole life both count.
    let b = store
        .budget_with_rho_cap("ag", 1.0, 1e-6, Some(RHO_CAP_EPS1), 0)
        .unwrap();
    assert_eq!((b.spent_epsilon, b.spent_delta, b.runs), (0.9, 2e-9, 2));
    // The period starts at, not after, its first instant.
    let started = store.run("new").unwrap().unwrap().started_at_ms;
    assert_eq!(store.budget("ag", 1.0, 1e-6, started).unwrap().runs, 1);
    assert_eq!(store.budget("ag", 1.0, 1e-6, started + 1).unwrap().runs, 0);
    // Admission follows the period given: the same run is refused over the whole life.
    let mut whole_life = run("whole", "ag", 0.3, 1.0);
    whole_life.budget_since_ms = 0;
    assert!(matches!(
        store.begin_run(&whole_life),
        Err(StoreError::BudgetExceeded { spent, .. }) if spent == 0.9
    ));
    let mut this_period = run("period", "ag", 0.3, 1.0);
    this_period.budget_since_ms = since;
    assert_eq!(store.begin_run(&this_period).unwrap().spent_epsilon, 0.6);
    store.verify_audit(None).unwrap();
}

#[test]
fn a_refused_run_is_admitted_after_the_period_rolls_over() {
    // ε = 0.1 under caps ε = 1, δ = 1e-6, ρ = 0.0229: basic admits 10, zCDP only 4.
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag");
    let first = tandem_audit::now_unix_ms();
    let in_period = |id: String, since: i64| {
        let mut r = zcdp_run(&id, 0.1, 1.0, RHO_CAP_EPS1);
        r.budget_since_ms = since;
        r
    };
    let mut admitted = 0;
    let err = loop {
        match store.begin_run(&in_period(format!("a{admitted}"), first)) {
            Ok(_) => admitted += 1,
            Err(e) => break e,
        }
        assert!(admitted <= 100, "no cap enforced");
    };
    assert_eq!(admitted, 10);
    assert!(
        matches!(err, StoreError::BudgetExceeded { zcdp: Some(_), .. }),
        "{err}"
    );
    // Still refused while the period lasts, however often asked.
    assert!(
        store
            .begin_run(&in_period("a-again".into(), first))
            .is_err()
    );

    let second = a_moment_later();
    let b = store.begin_run(&in_period("b0".into(), second)).unwrap();
    assert_eq!((b.spent_epsilon, b.runs), (0.1, 1));
    let mut admitted = 1;
    while store
        .begin_run(&in_period(format!("b{admitted}"), second))
        .is_ok()
    {
        admitted += 1;
        assert!(admitted <= 100, "no cap enforced");
    }
    assert_eq!(admitted, 10, "the new period has the whole budget again");
    // The earlier period's charges stay on record.
    let all = store.budget("ag", 1.0, 1e-6, 0).unwrap();
    assert_eq!(all.runs, 20);
    let refused = store
        .runs(Some("ag"))
        .unwrap()
        .into_iter()
        .filter(|r| r.status == "refused")
        .count();
    assert_eq!(refused, 3);
    store.verify_audit(None).unwrap();
}

const ACME: &str = "aaaa000000000000000000000000000000000000000000000000000000000001";
const SHOPX: &str = "bbbb000000000000000000000000000000000000000000000000000000000002";
const OTHER: &str = "cccc000000000000000000000000000000000000000000000000000000000003";

/// A run on `join_key` under agreement `ag` costing ε = 0.5 against caps ε = 1, δ = 1e-6.
fn keyed_run(id: &str, ag: &str, join_key: &str) -> tandem_store::NewRun {
    let mut r = run(id, ag, 0.5, 1.0);
    r.join_key = Some(join_key.into());
    r
}

/// Issue 9 item 2: re-signing an agreement with only `expires_at` moved gave a fresh budget over
/// the same customers. The budget is now kept per counterparty key and join key, across
/// agreements.
#[test]
fn a_re_signed_agreement_shares_the_budget() {
    let (_dir, mut store) = store();
    let old = agreement_doc(ACME, SHOPX, r#"["email"]"#, "2027-01-01T00:00:00Z");
    let resigned = agreement_doc(SHOPX, ACME, r#"["email"]"#, "2027-01-02T00:00:00Z");
    active_agreement_doc(&mut store, "old", &old);
    store.begin_run(&keyed_run("o1", "old", "email")).unwrap();
    store.begin_run(&keyed_run("o2", "old", "email")).unwrap();
    active_agreement_doc(&mut store, "resigned", &resigned);
    let err = store
        .begin_run(&keyed_run("n1", "resigned", "email"))
        .unwrap_err();
    let account = format!("pair:{ACME}:{SHOPX}/email");
    match &err {
        StoreError::BudgetExceeded {
            what,
            spent,
            account: refused_in,
            ..
        } => {
            assert_eq!((*what, *spent), ("epsilon", 1.0));
            assert_eq!(refused_in.as_deref(), Some(account.as_str()));
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string().contains("shared by every agreement"),
        "{err}"
    );
    // The new agreement's view shows the shared spend; the stored agreement is named as sharing.
    let b = store.budget("resigned", 1.0, 1e-6, 0).unwrap();
    assert_eq!((b.spent_epsilon, b.left_epsilon, b.runs), (1.0, 0.0, 0));
    assert_eq!(b.accounts, [account]);
    let shared = store
        .agreements_sharing_budget(&resigned, "resigned")
        .unwrap();
    assert_eq!(shared.len(), 1);
    assert_eq!(
        (shared[0].agreement_id.as_str(), shared[0].status.as_str()),
        ("old", "active")
    );
    assert_eq!(shared[0].join_keys, ["email"]);
    // Revoking the old agreement does not give its charges back.
    store
        .put_agreement("old", &old, "revoked", "cli:admin")
        .unwrap();
    assert!(
        store
            .begin_run(&keyed_run("n2", "resigned", "email"))
            .is_err()
    );
}

/// Issue 9 item 2: two agreements with the same partner doubled the budget. They share it per
/// join key; other join keys and other partners have their own.
#[test]
fn a_second_agreement_with_the_same_partner_shares_the_budget() {
    let (_dir, mut store) = store();
    let first = agreement_doc(ACME, SHOPX, r#"["email"]"#, "2027-01-01T00:00:00Z");
    let second = agreement_doc(ACME, SHOPX, r#"["phone","email"]"#, "2028-01-01T00:00:00Z");
    let elsewhere = agreement_doc(ACME, OTHER, r#"["email"]"#, "2027-01-01T00:00:00Z");
    active_agreement_doc(&mut store, "first", &first);
    active_agreement_doc(&mut store, "second", &second);
    active_agreement_doc(&mut store, "elsewhere", &elsewhere);
    store.begin_run(&keyed_run("f1", "first", "email")).unwrap();
    store
        .begin_run(&keyed_run("s1", "second", "email"))
        .unwrap();
    assert!(matches!(
        store.begin_run(&keyed_run("s2", "second", "email")),
        Err(StoreError::BudgetExceeded {
            account: Some(_),
            ..
        })
    ));
    // Another identifier space of the same partner: its own account, but the second
    // agreement's own caps still count its email run.
    let b = store
        .begin_run(&keyed_run("s3", "second", "phone"))
        .unwrap();
    assert_eq!(b.accounts, [format!("pair:{ACME}:{SHOPX}/phone")]);
    assert_eq!((b.spent_epsilon, b.left_epsilon), (1.0, 0.0));
    // Another partner: its own budget.
    store
        .begin_run(&keyed_run("e1", "elsewhere", "email"))
        .unwrap();
    store
        .begin_run(&keyed_run("e2", "elsewhere", "email"))
        .unwrap();
    // A run that names no join key is charged to every join key of its agreement.
    let third = agreement_doc(ACME, OTHER, r#"["phone","email"]"#, "2029-01-01T00:00:00Z");
    active_agreement_doc(&mut store, "third", &third);
    assert!(matches!(
        store.begin_run(&run("t1", "third", 0.1, 1.0)),
        Err(StoreError::BudgetExceeded { account: Some(a), .. }) if a.ends_with("/email")
    ));
    // A join key the agreement does not list is refused before anything is written.
    assert!(matches!(
        store.begin_run(&keyed_run("x1", "first", "phone")),
        Err(StoreError::Invalid(_))
    ));
    assert!(store.run("x1").unwrap().is_none());
    let sharing = store.agreements_sharing_budget(&second, "second").unwrap();
    let ids: Vec<&str> = sharing.iter().map(|s| s.agreement_id.as_str()).collect();
    assert_eq!(ids, ["first"]);
    assert!(
        store
            .agreements_sharing_budget(r#"{"purpose":"x"}"#, "")
            .unwrap()
            .is_empty()
    );
    store.verify_audit(None).unwrap();
}

/// Issue 9 item 2 (node-wide cap): a cap over all of the node's charges, every agreement and
/// counterparty: two agreements with their own ample caps are refused together once the node's
/// total would pass its cap, naming the `node` account and what is left; removing the cap
/// admits again. `would_admit` gives the same answer without charging.
#[test]
fn a_node_wide_cap_covers_every_agreement() {
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag1");
    active_agreement(&mut store, "ag2");
    let cap = tandem_store::NodeCap {
        epsilon: 1.0,
        delta: Some(1e-6),
        rho: None,
        window_ms: None,
    };
    assert!(store.set_node_cap(Some(&cap), "test").unwrap());
    assert!(
        !store.set_node_cap(Some(&cap), "test").unwrap(),
        "unchanged"
    );
    store.begin_run(&run("r1", "ag1", 0.6, 10.0)).unwrap();
    assert!(store.would_admit(&run("r2", "ag2", 0.4, 10.0)).is_ok());
    let would = store.would_admit(&run("r2", "ag2", 0.5, 10.0)).unwrap_err();
    let err = store.begin_run(&run("r2", "ag2", 0.5, 10.0)).unwrap_err();
    assert_eq!(would.to_string(), err.to_string());
    match &err {
        StoreError::BudgetExceeded {
            spent,
            cap,
            account,
            ..
        } => {
            assert_eq!((*spent, *cap), (0.6, 1.0));
            assert_eq!(account.as_deref(), Some(tandem_store::NODE_ACCOUNT));
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("node-wide cap"), "{err}");
    let (_, status) = store.node_cap_status().unwrap().expect("a cap");
    assert!((status.left_epsilon - 0.4).abs() < 1e-9);
    // would_admit recorded nothing; the refusal recorded only itself.
    assert!(
        store
            .run("r2")
            .unwrap()
            .is_some_and(|r| r.status == "refused")
    );
    store.set_node_cap(None, "test").unwrap();
    store.begin_run(&run("r3", "ag2", 0.5, 10.0)).unwrap();
}

/// A node-wide cap without a δ cap bounds ε only: runs with δ > 0 are admitted while the node's
/// Σε fits (a δ cap of 0 would refuse them all), and refused once it would not; the cap reads
/// back as set. A ρ cap needs a δ cap.
#[test]
fn a_node_wide_cap_without_delta_bounds_epsilon_only() {
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag1");
    active_agreement(&mut store, "ag2");
    let cap = tandem_store::NodeCap {
        epsilon: 1.0,
        delta: None,
        rho: None,
        window_ms: None,
    };
    store.set_node_cap(Some(&cap), "test").unwrap();
    assert_eq!(store.node_cap().unwrap(), Some(cap.clone()));
    store.begin_run(&run("r1", "ag1", 0.6, 10.0)).unwrap();
    store.begin_run(&run("r2", "ag2", 0.4, 10.0)).unwrap();
    let err = store.begin_run(&run("r3", "ag2", 0.1, 10.0)).unwrap_err();
    match &err {
        StoreError::BudgetExceeded { what, account, .. } => {
            assert_eq!(*what, "epsilon");
            assert_eq!(account.as_deref(), Some(tandem_store::NODE_ACCOUNT));
        }
        other => panic!("{other}"),
    }
    let (_, status) = store.node_cap_status().unwrap().expect("a cap");
    assert!((status.spent_delta - 2e-9).abs() < 1e-18, "{status:?}");
    assert!(status.cap_delta.is_infinite() && status.left_delta.is_infinite());

    let with_rho = tandem_store::NodeCap {
        rho: Some(0.1),
        ..cap
    };
    assert!(matches!(
        store.set_node_cap(Some(&with_rho), "test"),
        Err(StoreError::Invalid(_))
    ));
}

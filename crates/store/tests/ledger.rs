//! Budget ledger: reservation, refusal, release, replay, concurrency, cache.

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
        } => {
            assert_eq!((spent, cost, cap, what), (0.6, 0.5, 1.0, "epsilon"));
        }
        other => panic!("{other}"),
    }
    let b = store.budget("ag", 1.0, 1e-6).unwrap();
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
    assert_eq!(store.budget("ag", 1.0, 1e-6).unwrap().left_epsilon, 0.0);
}

#[test]
fn delta_cap_is_enforced_too() {
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag");
    let mut r = run("r1", "ag", 0.1, 10.0);
    r.delta = 6e-7;
    store.begin_run(&r).unwrap();
    r.run_id = "r2".into();
    let err = store.begin_run(&r).unwrap_err();
    assert!(
        matches!(err, StoreError::BudgetExceeded { what: "delta", .. }),
        "{err}"
    );
}

#[test]
fn fail_releases_only_when_no_data_left() {
    let (_dir, mut store) = store();
    active_agreement(&mut store, "ag");
    store.begin_run(&run("early", "ag", 0.5, 1.0)).unwrap();
    store.fail_run("early", "peer unreachable", false).unwrap();
    let b = store.budget("ag", 1.0, 1e-6).unwrap();
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
    let b = store.budget("ag", 1.0, 1e-6).unwrap();
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
    assert_eq!(store.budget("ag", 1.0, 1e-6).unwrap().spent_epsilon, 0.25);
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
    assert_eq!(store.budget("ag", 1.0, 1e-6).unwrap().runs, 1);
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
    assert_eq!(store.budget("ag", 1.0, 1e-6).unwrap().spent_epsilon, 0.3);
}

/// 16 threads, each with its own connection, race to reserve: exactly ⌊cap/cost⌋ win.
fn race(threads: usize, attempts: usize, cost: f64, cap: f64) -> usize {
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
                    match s.begin_run(&run(&format!("t{t}-{a}"), "ag", cost, cap)) {
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
    let b = store.budget("ag", cap, 1e-6).unwrap();
    assert!(b.spent_epsilon <= cap, "overspent: {b:?}");
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

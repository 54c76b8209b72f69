//! Opening, agreements, tokens and retention purges.

mod common;

use common::*;
use tandem_identity::IdKind;
use tandem_store::{ImportOptions, SCHEMA_VERSION, Store, StoreError, TOKEN_PREFIX};

#[test]
fn open_accepts_a_directory_or_a_file_and_reopens_cheaply() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(dir.path()).unwrap();
    assert_eq!(a.path(), dir.path().join("tandem.sqlite"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(a.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "database readable by others: {mode:o}");
    }
    let t = std::time::Instant::now();
    for _ in 0..50 {
        Store::open(a.path()).unwrap();
    }
    println!("open: {:.2} ms", t.elapsed().as_secs_f64() * 1000.0 / 50.0);
    // Exactly one genesis entry however often it is opened.
    assert_eq!(a.audit_entries(None, None).unwrap().len(), 1);
    let conn = rusqlite::Connection::open(a.path()).unwrap();
    let v: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn store_moves_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Store>();
}

#[test]
fn a_newer_schema_is_refused() {
    let (_dir, store) = store();
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = Store::open(store.path()).err().unwrap();
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn agreement_lifecycle_is_audited_and_final_states_hold() {
    let (_dir, mut store) = store();
    let doc = r#"{"purpose":"overlap"}"#;
    let a = store
        .put_agreement("ag", doc, "proposed", "cli:admin")
        .unwrap();
    assert_eq!(
        (a.status.as_str(), a.created_at_ms),
        ("proposed", a.updated_at_ms)
    );
    // Same content again: no-op.
    assert_eq!(
        store
            .put_agreement("ag", doc, "proposed", "cli:admin")
            .unwrap(),
        a
    );
    let signed = r#"{"purpose":"overlap","signatures":["a","b"]}"#;
    store
        .put_agreement("ag", signed, "active", "peer:shopx")
        .unwrap();
    for (doc, status) in [(doc, "proposed"), (doc, "active")] {
        assert!(matches!(
            store.put_agreement("ag", doc, status, "x"),
            Err(StoreError::Conflict(_))
        ));
    }
    store
        .put_agreement("ag", signed, "revoked", "cli:admin")
        .unwrap();
    assert!(matches!(
        store.put_agreement("ag", signed, "active", "x"),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.put_agreement("ag2", "{", "active", "x"),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.put_agreement("ag2", "{}", "signed", "x"),
        Err(StoreError::Invalid(_))
    ));

    assert_eq!(store.agreement("ag").unwrap().unwrap().status, "revoked");
    assert_eq!(store.agreement("none").unwrap(), None);
    assert_eq!(store.agreements().unwrap().len(), 1);
    let events: Vec<_> = store
        .audit_entries(None, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.event.agreement_id.as_deref() == Some("ag"))
        .map(|e| {
            (
                e.event.action,
                e.event.actor,
                e.event.details["previous_status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            (
                "agreement.stored".into(),
                "cli:admin".into(),
                serde_json::Value::Null
            ),
            (
                "agreement.signed".into(),
                "peer:shopx".into(),
                "proposed".into()
            ),
            (
                "agreement.revoked".into(),
                "cli:admin".into(),
                "active".into()
            ),
        ]
    );
}

#[test]
fn tokens_are_hashed_scoped_and_revocable() {
    let (_dir, mut store) = store();
    let secret = store.create_token("alice", "analyst", "cli:admin").unwrap();
    assert!(secret.starts_with(TOKEN_PREFIX) && secret.len() == TOKEN_PREFIX.len() + 64);
    let p = store.authenticate(&secret).unwrap().unwrap();
    assert_eq!(
        (p.name.as_str(), p.role.as_str(), p.actor()),
        ("alice", "analyst", "token:alice(analyst)".into())
    );
    assert_eq!(store.authenticate("tdm_wrong").unwrap(), None);
    assert!(
        !contains(&all_db_bytes(&store), secret.as_bytes()),
        "secret stored in clear"
    );

    assert!(matches!(
        store.create_token("alice", "admin", "cli:admin"),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_token("bad name", "admin", "x"),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.create_token("bob", "root", "x"),
        Err(StoreError::Invalid(_))
    ));

    store.revoke_token("alice", "cli:admin").unwrap();
    assert_eq!(store.authenticate(&secret).unwrap(), None);
    assert!(matches!(
        store.revoke_token("alice", "cli:admin"),
        Err(StoreError::NotFound(_))
    ));
    let again = store.create_token("alice", "auditor", "cli:admin").unwrap();
    assert_ne!(again, secret);
    assert_eq!(store.authenticate(&again).unwrap().unwrap().role, "auditor");
    let list = store.tokens().unwrap();
    assert_eq!((list.len(), list[0].revoked_at_ms), (1, None));
    let actions: Vec<String> = store
        .audit_entries(None, None)
        .unwrap()
        .into_iter()
        .map(|e| e.event.action)
        .collect();
    assert_eq!(
        actions[1..],
        ["token.created", "token.revoked", "token.created"]
    );
}

#[test]
fn purge_removes_payloads_and_old_audiences_but_keeps_evidence() {
    let (dir, mut store) = store();
    let path = csv_file(dir.path(), "c.csv", "email\nold.one@example.com\n");
    store
        .import_csv(&path, &ImportOptions::new("email", IdKind::Email), None)
        .unwrap();
    active_agreement(&mut store, "ag");
    let mut r = run("r1", "ag", 0.5, 1.0);
    r.fingerprint = Some("fp".into());
    store.begin_run(&r).unwrap();
    store
        .finish_run("r1", r#"{"overlap":1}"#, &"a".repeat(64))
        .unwrap();
    let version = store.audience_version().unwrap();

    // Nothing is old enough yet.
    assert_eq!(store.purge(0, "node").unwrap(), Default::default());

    let report = store.purge(i64::MAX, "node").unwrap();
    assert_eq!((report.results_cleared, report.members_deleted), (1, 1));
    assert_eq!(report.audiences_deleted, ["default/email"]);
    assert!(store.audience_summary().unwrap().is_empty());
    assert!(store.audience_version().unwrap() > version);
    assert_eq!(store.cached_result("fp").unwrap(), None);
    let run = store.run("r1").unwrap().unwrap();
    assert_eq!((run.result_json, run.output_sha256.is_some()), (None, true));
    // The budget stays spent and the log stays whole.
    assert_eq!(store.budget("ag", 1.0, 1e-6, 0).unwrap().spent_epsilon, 0.5);
    let purge = store.audit_entries(None, None).unwrap().pop().unwrap();
    assert_eq!(
        (
            purge.event.action.as_str(),
            purge.event.details["members_deleted"].as_u64()
        ),
        ("purge", Some(1))
    );
    store.verify_audit(None).unwrap();
    // The deleted digest is gone from the files too (secure_delete + WAL truncation).
    let digest = tandem_identity::Normaliser::default()
        .digest(IdKind::Email, "old.one@example.com")
        .unwrap();
    assert!(!contains(&all_db_bytes(&store), &digest));
}

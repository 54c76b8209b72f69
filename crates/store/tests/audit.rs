//! The stored audit log: chain, tampering by raw SQL, checkpoints, export round trips.

mod common;

use common::*;
use rusqlite::Connection;
use serde_json::json;
use tandem_audit::{SigningKey, verify_jsonl};
use tandem_identity::IdKind;
use tandem_store::{AuditEvent, ExportFormat, ImportOptions, Store, StoreError, VerifyError};

fn busy_store() -> (tempfile::TempDir, Store) {
    let (dir, mut store) = store();
    let path = csv_file(
        dir.path(),
        "c.csv",
        "email\na@example.com\nb@example.com\na@example.com\n",
    );
    store
        .import_csv(&path, &ImportOptions::new("email", IdKind::Email), None)
        .unwrap();
    active_agreement(&mut store, "ag");
    store.begin_run(&run("r1", "ag", 0.2, 1.0)).unwrap();
    store
        .finish_run("r1", r#"{"overlap":10}"#, &"0".repeat(64))
        .unwrap();
    store.create_token("alice", "analyst", "cli:admin").unwrap();
    store
        .append_audit(
            AuditEvent::now(
                "token:alice(analyst)",
                "result.read",
                json!({"run_id": "r1"}),
            )
            .with_agreement("ag"),
        )
        .unwrap();
    (dir, store)
}

fn raw(store: &Store) -> Connection {
    Connection::open(store.path()).unwrap()
}

fn seq_of(store: &Store, action: &str) -> u64 {
    store
        .audit_entries(None, None)
        .unwrap()
        .into_iter()
        .find(|e| e.event.action == action)
        .unwrap()
        .seq
}

#[test]
fn chain_covers_every_change_and_verifies() {
    let (_dir, store) = busy_store();
    let actions: Vec<String> = store
        .audit_entries(None, None)
        .unwrap()
        .into_iter()
        .map(|e| e.event.action)
        .collect();
    assert_eq!(
        actions,
        [
            "store.created",
            "import.done",
            "agreement.signed",
            "run.started",
            "budget.charged",
            "run.finished",
            "token.created",
            "result.read"
        ]
    );
    let rep = store.verify_audit(None).unwrap();
    assert_eq!(
        (rep.entries, rep.first_seq, rep.last_seq),
        (8, Some(0), Some(7))
    );
}

#[test]
fn the_log_is_append_only_through_sql() {
    let (_dir, store) = busy_store();
    let conn = raw(&store);
    let err = conn
        .execute("UPDATE audit_log SET actor = 'x' WHERE seq = 1", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert!(
        conn.execute("DELETE FROM audit_log WHERE seq = 1", [])
            .is_err()
    );
}

#[test]
fn one_changed_byte_is_found_at_its_seq() {
    let (_dir, store) = busy_store();
    let seq = seq_of(&store, "import.done");
    let conn = raw(&store);
    conn.execute_batch("DROP TRIGGER audit_log_no_update")
        .unwrap();
    let details: String = conn
        .query_row(
            "SELECT details_json FROM audit_log WHERE seq = ?1",
            [seq as i64],
            |r| r.get(0),
        )
        .unwrap();
    assert!(details.contains("\"rows\":3"), "{details}");
    let n = conn
        .execute(
            "UPDATE audit_log SET details_json = replace(details_json, '\"rows\":3', '\"rows\":2') WHERE seq = ?1",
            [seq as i64],
        )
        .unwrap();
    assert_eq!(n, 1);
    let err = store.verify_audit(None).unwrap_err();
    assert!(
        matches!(err, VerifyError::BadHash { seq: s } if s == seq),
        "{err}"
    );
    assert_eq!(err.seq(), Some(seq));
    assert!(err.to_string().contains(&format!("entry {seq}")), "{err}");

    // Bytes that no longer parse are reported against the same seq.
    conn.execute(
        "UPDATE audit_log SET details_json = '{\"rows\":' WHERE seq = ?1",
        [seq as i64],
    )
    .unwrap();
    let err = store.verify_audit(None).unwrap_err();
    assert!(
        matches!(err, VerifyError::Malformed { seq: s, .. } if s == seq),
        "{err}"
    );
}

#[test]
fn other_columns_are_covered_too() {
    for (column, value) in [
        ("actor", "'cli:root'"),
        ("at_ms", "at_ms + 1"),
        ("agreement_id", "NULL"),
        ("action", "'x'"),
    ] {
        let (_dir, store) = busy_store();
        let seq = seq_of(&store, "run.started");
        let conn = raw(&store);
        conn.execute_batch("DROP TRIGGER audit_log_no_update")
            .unwrap();
        conn.execute(
            &format!("UPDATE audit_log SET {column} = {value} WHERE seq = ?1"),
            [seq as i64],
        )
        .unwrap();
        assert_eq!(
            store.verify_audit(None).unwrap_err().seq(),
            Some(seq),
            "{column}"
        );
    }
}

#[test]
fn deleted_rows_are_found() {
    let (_dir, store) = busy_store();
    let seq = seq_of(&store, "budget.charged");
    let conn = raw(&store);
    conn.execute_batch("DROP TRIGGER audit_log_no_delete")
        .unwrap();
    conn.execute("DELETE FROM audit_log WHERE seq = ?1", [seq as i64])
        .unwrap();
    let err = store.verify_audit(None).unwrap_err();
    assert!(
        matches!(err, VerifyError::Missing { expected, .. } if expected == seq),
        "{err}"
    );

    // Deleting the genesis entry is found too.
    conn.execute("DELETE FROM audit_log WHERE seq = 0", [])
        .unwrap();
    assert_eq!(store.verify_audit(None).unwrap_err().seq(), Some(0));
}

#[test]
fn checkpoints_catch_truncation_and_check_the_key() {
    let (_dir, mut store) = busy_store();
    let key = SigningKey::from_bytes(&[7; 32]);
    let cp = store.checkpoint(&key).unwrap();
    assert_eq!(cp.seq, 7);
    assert_eq!(
        store.checkpoint(&key).unwrap(),
        cp,
        "same head, same checkpoint"
    );
    let rep = store.verify_audit(Some(&key.verifying_key())).unwrap();
    assert_eq!((rep.checkpoints, rep.last_checkpoint_seq), (1, Some(7)));

    let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
    let err = store.verify_audit(Some(&other)).unwrap_err();
    assert!(
        matches!(err, VerifyError::CheckpointSignature { seq: 7, .. }),
        "{err}"
    );

    // Cutting the tail off is visible through the checkpoint.
    let conn = raw(&store);
    conn.execute_batch("DROP TRIGGER audit_log_no_delete")
        .unwrap();
    conn.execute("DELETE FROM audit_log WHERE seq >= 6", [])
        .unwrap();
    let err = store.verify_audit(None).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Truncated {
                missing_from: 6,
                checkpoint_seq: 7
            }
        ),
        "{err}"
    );
}

#[test]
fn checkpoint_refuses_to_sign_a_tampered_log() {
    let (_dir, mut store) = busy_store();
    let key = SigningKey::from_bytes(&[7; 32]);
    store.checkpoint(&key).unwrap();
    store.create_token("bob", "auditor", "cli:admin").unwrap();
    let seq = store.audit_head().unwrap().unwrap().seq;
    let conn = raw(&store);
    conn.execute_batch("DROP TRIGGER audit_log_no_update")
        .unwrap();
    conn.execute(
        "UPDATE audit_log SET actor = 'cli:nobody' WHERE seq = ?1",
        [seq as i64],
    )
    .unwrap();
    let err = store.checkpoint(&key).unwrap_err();
    assert!(
        matches!(&err, StoreError::Audit(VerifyError::BadHash { seq: s }) if *s == seq),
        "{err}"
    );
    assert_eq!(store.checkpoints().unwrap().len(), 1);
}

#[test]
fn jsonl_export_verifies_offline_and_csv_reads() {
    let (dir, mut store) = busy_store();
    let key = SigningKey::from_bytes(&[7; 32]);
    store.checkpoint(&key).unwrap();
    let path = dir.path().join("audit.jsonl");
    let file = std::fs::File::create(&path).unwrap();
    let s = store
        .export_audit(file, ExportFormat::JsonLines, None, None)
        .unwrap();
    assert_eq!((s.entries, s.checkpoints), (8, 1));
    let reader = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let rep = verify_jsonl(reader, Some(&key.verifying_key())).unwrap();
    assert_eq!(rep.head_hash, store.audit_head().unwrap().unwrap().hash);

    // An edited export fails at the edited entry.
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen("\"overlap\"", "\"overlaq\"", 1).replacen(
        "token:alice(analyst)",
        "token:mallory(admin)",
        1,
    );
    assert!(
        verify_jsonl(edited.as_bytes(), None)
            .unwrap_err()
            .seq()
            .is_some()
    );

    let mut csv_out = Vec::new();
    store
        .export_audit(&mut csv_out, ExportFormat::Csv, None, None)
        .unwrap();
    let mut r = csv::Reader::from_reader(&csv_out[..]);
    assert_eq!(r.records().count(), 9);
}

#[test]
fn time_range_export_is_contiguous_and_anchored() {
    let (_dir, mut store) = store();
    for i in 0..10 {
        let mut e = AuditEvent::now("node", "tick", json!({"i": i}));
        e.at_unix_ms = 1_000 * i;
        store.append_audit(e).unwrap();
    }
    // Timestamps never go back: the events above were clamped to the genesis entry's time.
    let entries = store.audit_entries(None, None).unwrap();
    assert!(
        entries
            .windows(2)
            .all(|w| w[0].event.at_unix_ms <= w[1].event.at_unix_ms)
    );

    let mut late = AuditEvent::now("node", "late", json!({}));
    late.at_unix_ms = i64::MAX / 2;
    let e = store.append_audit(late).unwrap();
    let key = SigningKey::from_bytes(&[1; 32]);
    store.checkpoint(&key).unwrap();
    let mut out = Vec::new();
    let s = store
        .export_audit(&mut out, ExportFormat::JsonLines, Some(i64::MAX / 2), None)
        .unwrap();
    assert_eq!((s.entries, s.checkpoints), (1, 1));
    let rep = verify_jsonl(&out[..], Some(&key.verifying_key())).unwrap();
    assert_eq!((rep.first_seq, rep.checkpoints), (Some(e.seq), 1));
    assert_eq!(
        store.audit_entries(Some(i64::MAX / 2), None).unwrap(),
        vec![e]
    );
}

/// `cargo test --release -p tandem-store --test audit -- --ignored --nocapture audit_rates`
#[test]
#[ignore]
fn audit_rates_100k() {
    let (_dir, mut store) = store();
    let n = 100_000;
    let t = std::time::Instant::now();
    for i in 0..2_000 {
        store
            .append_audit(AuditEvent::now(
                "node",
                "query.asked",
                json!({"i": i, "epsilon": 0.1}),
            ))
            .unwrap();
    }
    let single = 2_000.0 / t.elapsed().as_secs_f64();
    println!("append_audit, one transaction (fsync) each: {single:.0} entries/s");
    let t = std::time::Instant::now();
    let mut i = 2_000;
    while i < n {
        store
            .append_audit(AuditEvent::now(
                "node",
                "query.asked",
                json!({"i": i, "epsilon": 0.1, "template": "overlap"}),
            ))
            .unwrap();
        i += 1;
    }
    println!(
        "appended {} more in {:.2} s",
        n - 2_000,
        t.elapsed().as_secs_f64()
    );
    let t = std::time::Instant::now();
    let rep = store.verify_audit(None).unwrap();
    println!(
        "verify_audit of {} entries: {:.3} s",
        rep.entries,
        t.elapsed().as_secs_f64()
    );
    let key = SigningKey::from_bytes(&[7; 32]);
    let t = std::time::Instant::now();
    store.checkpoint(&key).unwrap();
    println!(
        "first checkpoint (verifies all): {:.3} s",
        t.elapsed().as_secs_f64()
    );
    let mut out = Vec::new();
    let t = std::time::Instant::now();
    store
        .export_audit(&mut out, ExportFormat::JsonLines, None, None)
        .unwrap();
    println!(
        "export jsonl: {:.3} s, {} bytes",
        t.elapsed().as_secs_f64(),
        out.len()
    );
    let t = std::time::Instant::now();
    verify_jsonl(&out[..], Some(&key.verifying_key())).unwrap();
    println!("verify_jsonl: {:.3} s", t.elapsed().as_secs_f64());
}

#[test]
fn a_batch_of_entries_commits_at_once_and_a_held_lock_is_reported_as_busy() {
    let (dir, mut store) = store();
    let before = store.audit_entries(None, None).unwrap().len();
    let events = (0..3)
        .map(|i| AuditEvent::now("token:a(analyst)", "api.access", json!({"count": i})))
        .collect();
    assert_eq!(store.append_audit_batch(events).unwrap(), 3);
    assert_eq!(store.append_audit_batch(Vec::new()).unwrap(), 0);
    assert_eq!(store.audit_entries(None, None).unwrap().len(), before + 3);
    store.verify_audit(None).unwrap();

    // Another connection holds the write lock: the append fails as busy after the (short) busy
    // timeout, appends nothing, and says it may be retried.
    let other = Connection::open(store.path()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    store
        .set_busy_timeout(std::time::Duration::from_millis(50))
        .unwrap();
    let e = store
        .append_audit_batch(vec![AuditEvent::now("node", "x", json!({}))])
        .unwrap_err();
    assert!(e.is_busy(), "{e}");
    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(store.audit_entries(None, None).unwrap().len(), before + 3);
    assert!(!StoreError::NotFound("x".into()).is_busy());
    drop(dir);
}

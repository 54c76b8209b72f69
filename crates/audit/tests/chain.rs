//! Chain verification, tamper detection, checkpoints and export round trips.

use serde_json::json;
use tandem_audit::*;

fn key(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}

fn event(i: u64) -> AuditEvent {
    AuditEvent {
        at_unix_ms: 1_767_225_600_000 + i as i64,
        actor: if i.is_multiple_of(2) {
            "node".into()
        } else {
            "token:alice(analyst)".into()
        },
        action: "query.asked".into(),
        agreement_id: Some("ag-1".into()),
        details: json!({"i": i, "epsilon": 0.1, "note": "=1+1"}),
    }
}

fn chain(n: u64) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for i in 0..n {
        let e = next_entry(out.last(), event(i));
        out.push(e);
    }
    out
}

fn seq_of(r: Result<VerifyReport, VerifyError>) -> Option<u64> {
    match r {
        Ok(rep) => panic!("expected failure, got {rep:?}"),
        Err(e) => e.seq(),
    }
}

#[test]
fn intact_chain_with_checkpoints_verifies() {
    let entries = chain(10);
    let k = key(1);
    let cps = [
        sign_checkpoint(&k, 4, entries[4].hash, 1),
        sign_checkpoint(&k, 9, entries[9].hash, 2),
    ];
    let rep = verify(entries.clone(), &cps, Some(&k.verifying_key())).unwrap();
    assert_eq!(rep.entries, 10);
    assert_eq!(rep.checkpoints, 2);
    assert_eq!(rep.last_seq, Some(9));
    assert_eq!(rep.first_seq, Some(0));
    assert_eq!(rep.head_hash, entries[9].hash);
    assert_eq!(rep.last_checkpoint_seq, Some(9));
    assert_eq!(
        rep.checkpoint_keys,
        vec![hex::encode(k.verifying_key().as_bytes())]
    );
}

#[test]
fn empty_log_verifies() {
    let rep = verify(Vec::new(), &[], None).unwrap();
    assert_eq!(
        (rep.entries, rep.last_seq, rep.head_hash),
        (0, None, GENESIS_PREV_HASH)
    );
}

#[test]
fn altered_entry_is_named() {
    let mut entries = chain(10);
    entries[6].event.details["i"] = json!(7);
    let err = verify(entries, &[], None).unwrap_err();
    assert!(matches!(err, VerifyError::BadHash { seq: 6 }), "{err}");
    assert!(err.to_string().starts_with("entry 6:"), "{err}");
}

#[test]
fn altered_and_rehashed_entry_breaks_the_next_link() {
    let mut entries = chain(10);
    entries[6].event.actor = "cli:admin".into();
    entries[6].hash = entry_hash(6, &entries[6].prev_hash, &entries[6].event);
    assert!(matches!(
        verify(entries.clone(), &[], None),
        Err(VerifyError::BrokenLink { seq: 7 })
    ));
    // Re-hashing the whole tail is caught by a checkpoint signed before the rewrite.
    let cp = sign_checkpoint(&key(1), 9, chain(10)[9].hash, 1);
    for i in 7..10 {
        let prev = entries[i - 1].clone();
        entries[i] = next_entry(Some(&prev), entries[i].event.clone());
    }
    assert!(verify(entries.clone(), &[], None).is_ok());
    assert!(matches!(
        verify(entries, &[cp], None),
        Err(VerifyError::CheckpointMismatch { seq: 9 })
    ));
}

#[test]
fn deleted_duplicated_and_truncated_entries_are_named() {
    let mut entries = chain(10);
    entries.remove(4);
    let err = verify(entries, &[], None).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Missing {
                expected: 4,
                found: 5
            }
        ),
        "{err}"
    );
    assert_eq!(err.seq(), Some(4));

    let mut entries = chain(10);
    entries.insert(5, entries[4].clone());
    assert!(matches!(
        verify(entries, &[], None),
        Err(VerifyError::OutOfOrder {
            expected: 5,
            found: 4
        })
    ));

    let entries = chain(10);
    let cp = sign_checkpoint(&key(1), 9, entries[9].hash, 1);
    let err = verify(entries[..7].to_vec(), &[cp], None).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Truncated {
                missing_from: 7,
                checkpoint_seq: 9
            }
        ),
        "{err}"
    );
}

#[test]
fn genesis_must_have_zero_prev_hash() {
    let mut entries = chain(2);
    entries[0].prev_hash[0] = 1;
    entries[0].hash = entry_hash(0, &entries[0].prev_hash, &entries[0].event);
    assert_eq!(seq_of(verify(entries, &[], None)), Some(0));
}

#[test]
fn checkpoint_signature_and_key_are_checked() {
    let entries = chain(5);
    let mut forged = sign_checkpoint(&key(1), 3, entries[3].hash, 1);
    forged.at_unix_ms += 1;
    let err = verify(entries.clone(), &[forged], None).unwrap_err();
    assert!(
        matches!(err, VerifyError::CheckpointSignature { seq: 3, .. }),
        "{err}"
    );

    let other = sign_checkpoint(&key(2), 3, entries[3].hash, 1);
    assert!(verify(entries.clone(), std::slice::from_ref(&other), None).is_ok());
    let err = verify(entries, &[other], Some(&key(1).verifying_key())).unwrap_err();
    assert!(
        matches!(
            &err,
            VerifyError::CheckpointSignature {
                reason: CheckpointError::WrongKey { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn earliest_failure_wins() {
    let mut entries = chain(10);
    let bad_cp = sign_checkpoint(&key(1), 8, [0; 32], 1);
    entries[2].event.action = "x".into();
    entries[5].event.action = "y".into();
    assert_eq!(seq_of(verify(entries, &[bad_cp], None)), Some(2));
}

#[test]
fn jsonl_export_round_trips_through_offline_verify() {
    let entries = chain(20);
    let k = key(3);
    let cps = [
        sign_checkpoint(&k, 9, entries[9].hash, 1),
        sign_checkpoint(&k, 19, entries[19].hash, 2),
    ];
    let mut out = Vec::new();
    let summary = export(&mut out, ExportFormat::JsonLines, entries.clone(), &cps).unwrap();
    assert_eq!((summary.entries, summary.checkpoints), (20, 2));
    let text = String::from_utf8(out.clone()).unwrap();
    assert_eq!(text.lines().count(), 22);
    assert!(
        text.lines()
            .nth(10)
            .unwrap()
            .contains("\"type\":\"checkpoint\"")
    );
    let rep = verify_jsonl(&out[..], Some(&k.verifying_key())).unwrap();
    assert_eq!(
        (rep.entries, rep.checkpoints, rep.head_hash),
        (20, 2, entries[19].hash)
    );

    // One byte changed in line 13 (entry 11) is caught and named.
    let tampered = text.replacen("\"i\":11", "\"i\":12", 1);
    let err = verify_jsonl(tampered.as_bytes(), None).unwrap_err();
    assert!(matches!(err, VerifyError::BadHash { seq: 11 }), "{err}");

    // A dropped line (entry 4) is caught.
    let dropped: String = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 4)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    assert_eq!(seq_of(verify_jsonl(dropped.as_bytes(), None)), Some(4));

    // Removing the tail after the last checkpoint's entry is caught via the checkpoint.
    let cut: String = text
        .lines()
        .filter(|l| !l.contains("\"seq\":19,\"type\":\"entry\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(matches!(
        verify_jsonl(cut.as_bytes(), None),
        Err(VerifyError::Truncated {
            missing_from: 19,
            ..
        })
    ));

    // Garbage is a parse error with its line number.
    let garbage = format!("{}\nnot json\n", text.lines().next().unwrap());
    assert!(matches!(
        verify_jsonl(garbage.as_bytes(), None),
        Err(VerifyError::Parse { line: 2, .. })
    ));
}

#[test]
fn partial_export_verifies_from_its_anchor() {
    let entries = chain(20);
    let k = key(3);
    let cps = [
        sign_checkpoint(&k, 3, entries[3].hash, 1),
        sign_checkpoint(&k, 12, entries[12].hash, 2),
    ];
    let mut out = Vec::new();
    let s = export(
        &mut out,
        ExportFormat::JsonLines,
        entries[10..15].to_vec(),
        &cps,
    )
    .unwrap();
    assert_eq!((s.entries, s.checkpoints), (5, 1));
    let rep = verify_jsonl(&out[..], Some(&k.verifying_key())).unwrap();
    assert_eq!(
        (rep.first_seq, rep.last_seq, rep.checkpoints),
        (Some(10), Some(14), 1)
    );
}

#[test]
fn checkpoint_line_after_a_later_entry_is_rejected() {
    let entries = chain(3);
    let cp = sign_checkpoint(&key(1), 0, entries[0].hash, 1);
    let mut v = Verifier::new(None);
    v.entry(&entries[0]).unwrap();
    v.entry(&entries[1]).unwrap();
    assert!(matches!(
        v.checkpoint(cp),
        Err(VerifyError::CheckpointOutOfOrder {
            seq: 0,
            last_seq: 1
        })
    ));
}

#[test]
fn csv_export_is_flat_and_defused() {
    let entries = chain(3);
    let cps = [sign_checkpoint(
        &key(1),
        2,
        entries[2].hash,
        1_767_225_600_000,
    )];
    let mut out = Vec::new();
    export(&mut out, ExportFormat::Csv, entries, &cps).unwrap();
    let mut r = csv::Reader::from_reader(&out[..]);
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        CSV_HEADER.to_vec()
    );
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(&rows[1][0], "entry");
    assert_eq!(&rows[1][3], "2026-01-01T00:00:00.001Z");
    assert_eq!(&rows[1][4], "token:alice(analyst)");
    assert_eq!(&rows[1][7], r#"{"epsilon":0.1,"i":1,"note":"=1+1"}"#);
    assert_eq!(&rows[3][0], "checkpoint");
    assert_eq!(rows[3][11].len(), 128);
}

#[test]
fn export_format_parses() {
    assert_eq!("jsonl".parse(), Ok(ExportFormat::JsonLines));
    assert_eq!("csv".parse(), Ok(ExportFormat::Csv));
    assert!("xml".parse::<ExportFormat>().is_err());
}

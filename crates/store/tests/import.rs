//! CSV import: happy path, dedupe, atomic failure, no raw identifiers, opt-out.

mod common;

use std::cell::Cell;

use common::*;
use sha2::{Digest, Sha256};
use tandem_identity::{IdKind, Normaliser};
use tandem_store::{ImportOptions, StoreError};

const CUSTOMERS: &str = "\
email,segment,region
Alice.Secret@Example.com,vip,north
bob.hidden@example.org,,south
 alice.secret@example.com ,regular,west
carol.private@gmail.com,vip,east
c.a.r.o.l.private+promo@gmail.com,vip,east
";

fn email_opts() -> ImportOptions {
    let mut o = ImportOptions::new("email", IdKind::Email);
    o.attributes = vec!["segment".into()];
    o
}

fn digest(raw: &str) -> [u8; 32] {
    Normaliser::default().digest(IdKind::Email, raw).unwrap()
}

#[test]
fn import_counts_dedupes_and_keeps_the_first_row() {
    let (dir, mut store) = store();
    let path = csv_file(dir.path(), "customers.csv", CUSTOMERS);
    let calls = Cell::new(0u64);
    let progress = |n: u64| calls.set(n);
    let report = store
        .import_csv(&path, &email_opts(), Some(&progress))
        .unwrap();
    assert_eq!(
        (
            report.rows,
            report.imported,
            report.duplicates,
            report.suppressed
        ),
        (5, 3, 2, 0)
    );
    assert_eq!(
        (report.audience.as_str(), report.id_kind, report.members),
        ("default", IdKind::Email, 3)
    );
    assert_eq!(calls.get(), 5);

    let members = store
        .members("default", IdKind::Email, Some("segment"))
        .unwrap();
    assert_eq!(members.len(), 3);
    let alice = members
        .iter()
        .find(|(d, _)| *d == digest("alice.secret@example.com"))
        .unwrap();
    assert_eq!(alice.1.as_deref(), Some("vip"), "first row wins");
    let bob = members
        .iter()
        .find(|(d, _)| *d == digest("bob.hidden@example.org"))
        .unwrap();
    assert_eq!(bob.1, None, "empty attribute cell is None");
    assert!(
        members.windows(2).all(|w| w[0].0 < w[1].0),
        "sorted by digest"
    );

    let summary = store.audience_summary().unwrap();
    assert_eq!(summary.len(), 1);
    assert_eq!(
        (summary[0].members, summary[0].attributes.clone()),
        (3, vec!["segment".to_string()])
    );
    assert!(matches!(
        store.members("default", IdKind::Email, Some("region")),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.members("other", IdKind::Email, None),
        Err(StoreError::NotFound(_))
    ));

    let entries = store.audit_entries(None, None).unwrap();
    let last = entries.last().unwrap();
    assert_eq!(last.event.action, "import.done");
    assert_eq!(last.event.details["rows"], 5);
    assert_eq!(last.event.details["duplicates"], 2);
}

#[test]
fn replace_and_append() {
    let (dir, mut store) = store();
    let first = csv_file(dir.path(), "a.csv", "email\na@example.com\nb@example.com\n");
    let second = csv_file(dir.path(), "b.csv", "email\nb@example.com\nc@example.com\n");
    let mut opts = ImportOptions::new("email", IdKind::Email);
    store.import_csv(&first, &opts, None).unwrap();
    let v1 = store.audience_version().unwrap();
    opts.replace = false;
    let r = store.import_csv(&second, &opts, None).unwrap();
    assert_eq!((r.imported, r.duplicates, r.members), (1, 1, 3));
    opts.replace = true;
    let r = store.import_csv(&second, &opts, None).unwrap();
    assert_eq!((r.imported, r.duplicates, r.members), (2, 0, 2));
    assert!(store.audience_version().unwrap() > v1);

    // Another kind in the same audience is left alone by a replace.
    let phones = csv_file(dir.path(), "p.csv", "tel\n+44 20 7946 0958\n");
    store
        .import_csv(&phones, &ImportOptions::new("tel", IdKind::Phone), None)
        .unwrap();
    store.import_csv(&second, &opts, None).unwrap();
    assert_eq!(
        store.members("default", IdKind::Phone, None).unwrap().len(),
        1
    );
}

/// Imports a good file into "default", then each bad file must fail naming line/column and
/// leave the store byte-for-byte equivalent (counts, members, audit head, version).
#[test]
fn a_bad_row_aborts_the_whole_import_and_changes_nothing() {
    let (dir, mut store) = store();
    let good = csv_file(dir.path(), "good.csv", CUSTOMERS);
    store.import_csv(&good, &email_opts(), None).unwrap();
    let before = (
        store.audience_summary().unwrap(),
        store
            .members("default", IdKind::Email, Some("segment"))
            .unwrap(),
        store.audit_head().unwrap(),
        store.audience_version().unwrap(),
    );

    let header = "email,segment,region\n";
    let ok_rows = "new1@example.com,vip,n\nnew2@example.com,vip,n\n";
    let cases: Vec<(&str, String, u64, Option<&str>, &str)> = vec![
        (
            "bad identifier",
            format!("{header}{ok_rows}not-an-email,vip,n\n"),
            4,
            Some("email"),
            "email",
        ),
        (
            "too few fields",
            format!("{header}{ok_rows}new3@example.com,vip\n"),
            4,
            None,
            "expected 3 fields",
        ),
        (
            "too many fields",
            format!("{header}new3@example.com,vip,n,extra\n"),
            2,
            None,
            "found 4",
        ),
        (
            "empty identifier",
            format!("{header}{ok_rows}{ok_rows}  ,vip,n\n"),
            6,
            Some("email"),
            "empty identifier",
        ),
        (
            "missing column",
            "mail,segment,region\nx@example.com,a,b\n".to_string(),
            1,
            Some("email"),
            "no such column",
        ),
    ];
    for (what, content, line, column, reason) in cases {
        let path = csv_file(dir.path(), "bad.csv", &content);
        let mut opts = email_opts();
        opts.audience = "default".into();
        let err = store.import_csv(&path, &opts, None).unwrap_err();
        match &err {
            StoreError::Import {
                file,
                line: l,
                column: c,
                reason: r,
            } => {
                assert_eq!(file, &path, "{what}");
                assert_eq!(*l, line, "{what}: {err}");
                assert_eq!(c.as_deref(), column, "{what}: {err}");
                assert!(r.contains(reason), "{what}: {err}");
            }
            other => panic!("{what}: unexpected {other}"),
        }
        assert!(
            !err.to_string().contains("not-an-email"),
            "reason must not echo the identifier: {err}"
        );
        let after = (
            store.audience_summary().unwrap(),
            store
                .members("default", IdKind::Email, Some("segment"))
                .unwrap(),
            store.audit_head().unwrap(),
            store.audience_version().unwrap(),
        );
        assert_eq!(before, after, "{what}: store changed");
    }

    // A missing file is an Import error at line 0.
    let err = store
        .import_csv(&dir.path().join("nope.csv"), &email_opts(), None)
        .unwrap_err();
    assert!(matches!(err, StoreError::Import { line: 0, .. }), "{err}");
    // Invalid UTF-8.
    let path = dir.path().join("latin1.csv");
    std::fs::write(&path, b"email,segment,region\nx@example.com,caf\xe9,n\n").unwrap();
    let err = store.import_csv(&path, &email_opts(), None).unwrap_err();
    assert!(
        matches!(&err, StoreError::Import { line: 2, reason, .. } if reason.contains("UTF-8")),
        "{err}"
    );
    store.verify_audit(None).unwrap();
}

#[test]
fn raw_identifiers_never_reach_the_database() {
    let (dir, mut store) = store();
    let path = csv_file(dir.path(), "customers.csv", CUSTOMERS);
    store.import_csv(&path, &email_opts(), None).unwrap();
    // A failed import must not leak either.
    let bad = csv_file(
        dir.path(),
        "bad.csv",
        "email,segment,region\nzed.unique@leak.test,a,b\nbroken,a,b\n",
    );
    assert!(store.import_csv(&bad, &email_opts(), None).is_err());
    let bytes = all_db_bytes(&store);
    assert!(bytes.len() > 4096);
    for needle in [
        "alice.secret",
        "Alice.Secret",
        "bob.hidden",
        "carol.private",
        "example.org",
        "zed.unique",
        "leak.test",
    ] {
        assert!(
            !contains(&bytes, needle.as_bytes()),
            "{needle} found in the database files"
        );
    }
    // The digest is there, as SHA-256 of the normalised form.
    let expected: [u8; 32] = Sha256::digest(b"alice.secret@example.com").into();
    assert!(contains(&bytes, &expected));
}

#[test]
fn opt_out_deletes_and_suppresses_future_imports() {
    let (dir, mut store) = store();
    let path = csv_file(dir.path(), "customers.csv", CUSTOMERS);
    store.import_csv(&path, &email_opts(), None).unwrap();
    let v = store.audience_version().unwrap();
    let gone = digest("bob.hidden@example.org");
    let never_imported = digest("nobody@example.net");
    assert_eq!(
        store
            .delete_digests(&[gone, never_imported], "cli:dpo")
            .unwrap(),
        1
    );
    assert!(store.audience_version().unwrap() > v);
    let members = store.members("default", IdKind::Email, None).unwrap();
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|(d, _)| *d != gone));

    let r = store.import_csv(&path, &email_opts(), None).unwrap();
    assert_eq!(
        (r.rows, r.imported, r.duplicates, r.suppressed, r.members),
        (5, 2, 2, 1, 2)
    );
    let last = store.audit_entries(None, None).unwrap();
    let optout = last
        .iter()
        .find(|e| e.event.action == "optout.applied")
        .unwrap();
    assert_eq!(optout.event.details["deleted_members"], 1);
    assert_eq!(optout.event.actor, "cli:dpo");
}

/// 1M rows, release build recommended:
/// `cargo test --release -p tandem-store --test import -- --ignored --nocapture import_rate`
#[test]
#[ignore]
fn import_rate_one_million_rows() {
    use std::io::Write;
    let (dir, mut store) = store();
    let path = dir.path().join("big.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(w, "email,segment").unwrap();
        for i in 0..1_000_000u32 {
            writeln!(w, "user{i}@example.com,s{}", i % 7).unwrap();
        }
    }
    let mut opts = ImportOptions::new("email", IdKind::Email);
    opts.attributes = vec!["segment".into()];
    let t = std::time::Instant::now();
    let r = store.import_csv(&path, &opts, None).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.imported, 1_000_000);
    println!(
        "imported {} rows in {secs:.2} s = {:.0} rows/s",
        r.rows,
        r.rows as f64 / secs
    );
    let t = std::time::Instant::now();
    let m = store
        .members("default", IdKind::Email, Some("segment"))
        .unwrap();
    println!(
        "members() of {} rows with attribute in {:.2} s",
        m.len(),
        t.elapsed().as_secs_f64()
    );
    let t = std::time::Instant::now();
    let r = store.import_csv(&path, &opts, None).unwrap();
    println!(
        "re-import (replace) of {} rows in {:.2} s",
        r.rows,
        t.elapsed().as_secs_f64()
    );
}

/// Issue 9 item 6: each join key's audience has its own version, bumped by every import of its
/// kind (a counter, never reset) and left alone by imports of another kind; every opt-out
/// request bumps every kind, whether or not it matched a member.
#[test]
fn members_version_counts_changes_per_identifier_kind() {
    let (dir, mut store) = store();
    assert_eq!(store.members_version("default", IdKind::Email).unwrap(), 0);
    let emails = csv_file(dir.path(), "a.csv", "email\na@example.com\nb@example.com\n");
    store
        .import_csv(&emails, &ImportOptions::new("email", IdKind::Email), None)
        .unwrap();
    let v1 = store.members_version("default", IdKind::Email).unwrap();
    assert!(v1 > 0);
    let phones = csv_file(dir.path(), "p.csv", "tel\n+44 20 7946 0958\n");
    store
        .import_csv(&phones, &ImportOptions::new("tel", IdKind::Phone), None)
        .unwrap();
    assert_eq!(store.members_version("default", IdKind::Email).unwrap(), v1);
    // An opt-out of someone not in the audience bumps as one of a member does (else the
    // version would tell a peer who is a member), for every kind.
    let phone = store.members_version("default", IdKind::Phone).unwrap();
    store.delete_digests(&[[7; 32]], "test").unwrap();
    let v1 = {
        let v = store.members_version("default", IdKind::Email).unwrap();
        assert!(v > v1, "an opt-out that matched nobody must still bump");
        assert!(store.members_version("default", IdKind::Phone).unwrap() > phone);
        v
    };
    let member = store.members("default", IdKind::Email, None).unwrap()[0].0;
    store.delete_digests(&[member], "test").unwrap();
    let v2 = store.members_version("default", IdKind::Email).unwrap();
    assert!(v2 > v1);
    store
        .import_csv(&emails, &ImportOptions::new("email", IdKind::Email), None)
        .unwrap();
    assert!(store.members_version("default", IdKind::Email).unwrap() > v2);
}

/// Issue 13: a value column is stored per identifier in `[0, U]` (negatives and empty cells as
/// 0); a value above `U` or a non-integer fails the import naming line, column and reason, and
/// nothing is imported.
#[test]
fn value_columns_are_clamped_below_and_refused_above_the_bound() {
    let (dir, mut store) = store();
    let mut opts = email_opts();
    opts.values = vec![tandem_store::ValueSpec {
        column: "revenue_cents".into(),
        bound: 1000,
    }];
    let good = csv_file(
        dir.path(),
        "values.csv",
        "email,segment,revenue_cents\na@example.com,vip,250\nb@example.com,vip,-40\nc@example.com,,\nd@example.com,x, 1000 \n",
    );
    let report = store.import_csv(&good, &opts, None).unwrap();
    // The summary names the bound used and the cells read as 0.
    assert_eq!(
        report.value_columns,
        [tandem_store::ValueColumnReport {
            column: "revenue_cents".into(),
            bound: 1000,
            clamped_to_zero: 1,
            empty: 1,
        }]
    );
    assert!(
        report.details().contains(
            "value column revenue_cents: bound U = 1000; 1 negative cell (refunds) clamped to 0, 1 empty cell read as 0"
        ),
        "{}",
        report.details()
    );
    let v = store
        .member_values("default", IdKind::Email, "revenue_cents")
        .unwrap();
    assert_eq!(v.bound, 1000);
    let got = |e: &str| v.values[&digest(e)];
    assert_eq!(
        [
            got("a@example.com"),
            got("b@example.com"),
            got("c@example.com"),
            got("d@example.com")
        ],
        [250, 0, 0, 1000]
    );
    // The attribute is still there, and the value column is not an attribute.
    assert_eq!(
        store
            .members("default", IdKind::Email, Some("segment"))
            .unwrap()
            .len(),
        4
    );
    assert!(
        store
            .members("default", IdKind::Email, Some("revenue_cents"))
            .is_err()
    );
    let missing = store
        .member_values("default", IdKind::Email, "orders")
        .unwrap_err();
    assert!(missing.to_string().contains("--value orders"), "{missing}");

    let version = store.audience_version().unwrap();
    for (body, line, why) in [
        (
            "e@example.com,vip,1001\n",
            3,
            "1001 is above the bound U = 1000",
        ),
        ("e@example.com,vip,1001\n", 3, "Fix the row"),
        (
            "e@example.com,vip,1001\n",
            3,
            "raise U for this column in the agreement",
        ),
        ("e@example.com,vip,12.50\n", 3, "not an integer"),
        ("e@example.com,vip,lots\n", 3, "not an integer"),
    ] {
        let file = csv_file(
            dir.path(),
            "bad.csv",
            &format!("email,segment,revenue_cents\nz@example.com,vip,1\n{body}"),
        );
        match store.import_csv(&file, &opts, None) {
            Err(StoreError::Import {
                line: l,
                column,
                reason,
                ..
            }) => {
                assert_eq!((l, column.as_deref()), (line, Some("revenue_cents")));
                assert!(reason.contains(why), "{reason}");
            }
            other => panic!("{body}: {other:?}"),
        }
    }
    assert_eq!(store.audience_version().unwrap(), version);
    assert_eq!(
        store
            .member_values("default", IdKind::Email, "revenue_cents")
            .unwrap(),
        v
    );
}

/// Rows whose identifier repeats an earlier row's are dropped, counted, and said so.
#[test]
fn rows_repeating_an_earlier_identifier_are_counted_as_dropped() {
    let (dir, mut store) = store();
    let file = csv_file(
        dir.path(),
        "repeats.csv",
        "email,segment\na@example.com,vip\nA@Example.com ,vip\nb@example.com,x\na@example.com,other\n",
    );
    let report = store.import_csv(&file, &email_opts(), None).unwrap();
    assert_eq!((report.rows, report.imported, report.duplicates), (4, 2, 2));
    assert!(
        report
            .details()
            .contains("2 rows dropped as repeats of an earlier row's identifier"),
        "{}",
        report.details()
    );
}

//! Real-world import files (issue 10): encodings, delimiters, line endings, empty rows,
//! attribute values outside the public sets, conflicting repeats, hashed columns, and that a
//! failed import changes nothing.

mod common;

use common::*;
use proptest::prelude::*;
use tandem_identity::{IdEncoding, IdKind, Normaliser};
use tandem_store::{ImportOptions, Store, StoreError, TextEncoding};

fn opts(attributes: &[&str]) -> ImportOptions {
    let mut o = ImportOptions::new("email", IdKind::Email);
    o.attributes = attributes.iter().map(|s| s.to_string()).collect();
    o
}

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// (line, column, reason) of an import error.
fn import_error(err: StoreError) -> (u64, Option<String>, String) {
    match err {
        StoreError::Import {
            line,
            column,
            reason,
            ..
        } => (line, column, reason),
        other => panic!("unexpected {other}"),
    }
}

fn digests(store: &Store, audience: &str) -> Vec<[u8; 32]> {
    let mut d: Vec<_> = store
        .members(audience, IdKind::Email, None)
        .unwrap()
        .into_iter()
        .map(|m| m.0)
        .collect();
    d.sort();
    d
}

/// Issue 10: a GB18030 export fails with the line of the first bad bytes, says what the file
/// looks like and which flag to use, and imports with that flag.
#[test]
fn gb18030_file_is_recognised_and_imports_with_encoding_flag() {
    let (dir, mut store) = store();
    let text = "email,tier\r\nli@example.com,普通\r\n张三@example.com,金卡\r\n";
    let (bytes, _, _) = encoding_rs::GB18030.encode(text);
    let path = write(dir.path(), "gbk.csv", &bytes);
    let (line, _, reason) =
        import_error(store.import_csv(&path, &opts(&["tier"]), None).unwrap_err());
    assert_eq!(line, 2, "{reason}");
    assert_eq!(
        reason,
        "not valid UTF-8; the file looks like gb18030: use --encoding gb18030"
    );
    assert!(store.audience_summary().unwrap().is_empty());

    let mut o = opts(&["tier"]);
    o.encoding = TextEncoding::for_label("gb18030").unwrap();
    let report = store.import_csv(&path, &o, None).unwrap();
    assert_eq!(
        (report.rows, report.imported, report.encoding),
        (2, 2, "gb18030")
    );
    let members = store
        .members("default", IdKind::Email, Some("tier"))
        .unwrap();
    let zhang = Normaliser::default()
        .digest(IdKind::Email, "张三@example.com")
        .unwrap();
    let m = members.iter().find(|m| m.0 == zhang).unwrap();
    assert_eq!(m.1.as_deref(), Some("金卡"));
}

/// Issue 10: UTF-16 with a BOM imports without any flag.
#[test]
fn utf16_with_bom_imports() {
    let (dir, mut store) = store();
    for (name, bom, le) in [
        ("le.csv", [0xFF, 0xFE], true),
        ("be.csv", [0xFE, 0xFF], false),
    ] {
        let mut bytes = bom.to_vec();
        for u in "email,tier\r\njürgen@example.de,gold\r\n".encode_utf16() {
            bytes.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        let path = write(dir.path(), name, &bytes);
        let report = store.import_csv(&path, &opts(&["tier"]), None).unwrap();
        assert_eq!(report.imported, 1, "{name}");
        assert!(report.encoding.starts_with("UTF-16"), "{name}");
    }
    // UTF-16 without a BOM is recognised by its NUL bytes.
    let mut bytes = Vec::new();
    for u in "email,tier\njane@example.com,gold\n".encode_utf16() {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    let path = write(dir.path(), "nobom.csv", &bytes);
    let (_, _, reason) = import_error(store.import_csv(&path, &opts(&[]), None).unwrap_err());
    assert!(reason.contains("--encoding utf-16le"), "{reason}");
}

/// Issue 10: a semicolon-separated file gets a hint, and imports with `--delimiter ';'`.
#[test]
fn semicolon_file_gets_a_delimiter_hint() {
    let (dir, mut store) = store();
    let path = csv_file(
        dir.path(),
        "semi.csv",
        "email;region\njane@example.com;north\n",
    );
    let (line, column, reason) = import_error(
        store
            .import_csv(&path, &opts(&["region"]), None)
            .unwrap_err(),
    );
    assert_eq!((line, column.as_deref()), (1, Some("email")));
    assert_eq!(
        reason,
        "no such column in the header; the header is one column containing ';': is the file separated by ';'? use --delimiter ';'"
    );
    let mut o = opts(&["region"]);
    o.delimiter = tandem_store::parse_delimiter(";").unwrap();
    assert_eq!(store.import_csv(&path, &o, None).unwrap().imported, 1);
}

/// Issue 10: with CR-only line endings errors are reported at their real line.
#[test]
fn cr_only_line_endings_report_the_real_line() {
    let (dir, mut store) = store();
    let path = csv_file(
        dir.path(),
        "mac.csv",
        "email,tier\ra@example.com,gold\rb@example.com,gold\rnot-an-email,gold\r",
    );
    let (line, column, reason) =
        import_error(store.import_csv(&path, &opts(&["tier"]), None).unwrap_err());
    assert_eq!((line, column.as_deref()), (4, Some("email")), "{reason}");
    let path = csv_file(
        dir.path(),
        "mixed.csv",
        "email,tier\r\na@example.com,gold\rb@example.com\n",
    );
    let (line, _, reason) =
        import_error(store.import_csv(&path, &opts(&["tier"]), None).unwrap_err());
    assert_eq!(line, 3, "{reason}");
}

/// Issue 10: a row whose cells are all empty is skipped and counted, not "empty identifier".
#[test]
fn all_empty_rows_are_skipped_and_counted() {
    let (dir, mut store) = store();
    let path = csv_file(
        dir.path(),
        "gaps.csv",
        "email,tier\na@example.com,gold\n,\n  , \nb@example.com,silver\n",
    );
    let report = store.import_csv(&path, &opts(&["tier"]), None).unwrap();
    assert_eq!((report.rows, report.empty_rows, report.imported), (2, 2, 2));
    assert!(
        report.details().contains("2 empty rows skipped"),
        "{}",
        report.details()
    );
}

/// Issue 10: the import counts each attribute column's values, so 100 rows of `Gold` against
/// the public set `bronze, silver, gold` are visible (and countable) before any query.
#[test]
fn attribute_values_are_counted_and_values_outside_a_public_set_found() {
    let (dir, mut store) = store();
    let mut text = String::from("email,tier\n");
    for i in 0..100 {
        text.push_str(&format!("gold{i}@example.com,Gold\n"));
    }
    for i in 0..30 {
        text.push_str(&format!("silver{i}@example.com,silver\n"));
    }
    text.push_str("none@example.com,\n");
    let path = csv_file(dir.path(), "tiers.csv", &text);
    let report = store.import_csv(&path, &opts(&["tier"]), None).unwrap();
    let tier = &report.attribute_values[0];
    assert_eq!(tier.column, "tier");
    assert_eq!(
        tier.counts,
        vec![
            (Some("Gold".to_string()), 100),
            (Some("silver".to_string()), 30),
            (None, 1)
        ]
    );
    let public: Vec<String> = ["bronze", "silver", "gold"].map(String::from).to_vec();
    assert_eq!(tier.outside(&public), Some(101));
    assert!(
        report
            .details()
            .contains("tier: 3 distinct values: \"Gold\" 100, \"silver\" 30, (empty) 1"),
        "{}",
        report.details()
    );
}

/// Issue 10: the same person as `gold` and `silver` is counted as a conflict; the first row
/// wins.
#[test]
fn conflicting_repeats_are_counted_and_the_first_row_wins() {
    let (dir, mut store) = store();
    let path = csv_file(
        dir.path(),
        "dupes.csv",
        "email,tier\njane@example.com,gold\nbob@example.com,silver\nJANE@example.com,silver\nbob@example.com,silver\n",
    );
    let report = store.import_csv(&path, &opts(&["tier"]), None).unwrap();
    assert_eq!(
        (
            report.duplicates,
            report.conflicting_duplicates,
            report.first_conflict_line
        ),
        (2, 1, Some(4))
    );
    assert!(
        report
            .details()
            .contains("the first row of each identifier wins")
    );
    let jane = Normaliser::default()
        .digest(IdKind::Email, "jane@example.com")
        .unwrap();
    let members = store
        .members("default", IdKind::Email, Some("tier"))
        .unwrap();
    let m = members.iter().find(|m| m.0 == jane).unwrap();
    assert_eq!(m.1.as_deref(), Some("gold"));
}

/// Issue 10: a partner's SHA-256 column imported as `--id-kind email --id-encoding sha256`
/// holds the same digests as the raw emails, under join key `email`.
#[test]
fn hashed_and_raw_email_columns_join() {
    let (dir, mut store) = store();
    let raw = [
        "User@Example.com",
        "jane.doe+x@gmail.com",
        "jürgen@bücher.de",
    ];
    let n = Normaliser::default();
    let mut raw_csv = String::from("email\n");
    let mut hex_csv = String::from("email_sha256\n");
    for r in raw {
        raw_csv.push_str(&format!("{r}\n"));
        hex_csv.push_str(&format!(
            "{}\n",
            hex::encode(n.digest(IdKind::Email, r).unwrap())
        ));
    }
    let raw_path = csv_file(dir.path(), "raw.csv", &raw_csv);
    let hex_path = csv_file(dir.path(), "hashed.csv", &hex_csv);
    let mut o = opts(&[]);
    o.audience = "raw".into();
    store.import_csv(&raw_path, &o, None).unwrap();
    let mut o = ImportOptions::new("email_sha256", IdKind::Email);
    o.id_encoding = IdEncoding::Sha256;
    o.audience = "hashed".into();
    let report = store.import_csv(&hex_path, &o, None).unwrap();
    assert_eq!((report.id_kind, report.imported), (IdKind::Email, 3));
    assert_eq!(digests(&store, "raw"), digests(&store, "hashed"));
    // A raw email in a hashed column is an error that says what was expected.
    let (line, _, reason) = import_error(store.import_csv(&raw_path, &o, None).unwrap_err());
    assert_eq!(line, 1);
    assert!(reason.contains("no such column"), "{reason}");
    let bad = csv_file(dir.path(), "bad.csv", "email_sha256\nuser@example.com\n");
    let (line, _, reason) = import_error(store.import_csv(&bad, &o, None).unwrap_err());
    assert_eq!(line, 2);
    assert!(
        reason.contains("SHA-256 of the normalised email"),
        "{reason}"
    );
}

/// Line endings a generated file uses.
fn line_ending() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["\n", "\r\n", "\r"])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Issue 10: every failed import leaves the store unchanged, and names the bad row's line,
    /// whatever the line endings, encoding and position of the bad row.
    #[test]
    fn a_failed_import_leaves_the_store_unchanged(
        good in prop::collection::vec("[a-z]{1,8}", 1..20),
        bad_at in any::<prop::sample::Index>(),
        bad in prop::sample::select(vec!["not-an-email", "a@b@example.com", "x@localhost", " ", "ja ne@example.com"]),
        eol in line_ending(),
        utf16 in any::<bool>(),
    ) {
        let (dir, mut store) = store();
        let first = csv_file(dir.path(), "first.csv", "email,tier\nkeep@example.com,gold\n");
        store.import_csv(&first, &opts(&["tier"]), None).unwrap();
        let before = (
            store.audience_summary().unwrap(),
            store.members("default", IdKind::Email, Some("tier")).unwrap(),
            store.audit_head().unwrap(),
            store.audience_version().unwrap(),
        );
        let mut rows: Vec<String> = good.iter().enumerate().map(|(i, l)| format!("{l}{i}@example.com,silver")).collect();
        let at = bad_at.index(rows.len() + 1);
        rows.insert(at, format!("{bad},silver"));
        let text = format!("email,tier{eol}{}{eol}", rows.join(eol));
        let bytes = if utf16 {
            let mut b = vec![0xFF, 0xFE];
            for u in text.encode_utf16() {
                b.extend_from_slice(&u.to_le_bytes());
            }
            b
        } else {
            text.into_bytes()
        };
        let path = write(dir.path(), "bad.csv", &bytes);
        let (line, _, reason) = import_error(store.import_csv(&path, &opts(&["tier"]), None).unwrap_err());
        prop_assert_eq!(line, at as u64 + 2, "{}", reason);
        let after = (
            store.audience_summary().unwrap(),
            store.members("default", IdKind::Email, Some("tier")).unwrap(),
            store.audit_head().unwrap(),
            store.audience_version().unwrap(),
        );
        prop_assert_eq!(before, after);
    }
}

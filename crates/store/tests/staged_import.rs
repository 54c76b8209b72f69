//! A long import never makes readers or the node's short writes wait, and a failed or killed
//! import leaves nothing behind (issue 11, defect 1).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tandem_identity::IdKind;
use tandem_store::{AuditEvent, ImportOptions, Store, StoreError};

/// `email,segment` rows `user{from}..user{to}`; optionally a last row that does not normalise.
fn numbered_csv(dir: &Path, name: &str, from: u32, to: u32, bad_last_row: bool) -> PathBuf {
    let path = dir.join(name);
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(w, "email,segment").unwrap();
    for i in from..to {
        writeln!(w, "user{i}@example.com,s{}", i % 7).unwrap();
    }
    if bad_last_row {
        writeln!(w, "not-an-email,s0").unwrap();
    }
    w.flush().unwrap();
    path
}

fn opts() -> ImportOptions {
    let mut o = ImportOptions::new("email", IdKind::Email);
    o.attributes = vec!["segment".into()];
    o
}

/// Rows of the store's internal tables, read with a separate connection.
fn count(store: &Store, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Issue 11, defect 1: during a 2M-row import the node answered "database is locked" after the
/// busy timeout. Here one thread imports 200k rows while another appends audit entries, starts
/// runs and reads the audience with a 1 s busy timeout: none may fail, and every read sees
/// the old audience or the new one, never a mix.
#[test]
fn writers_and_readers_never_wait_on_a_long_import() {
    const ROWS: u32 = 200_000;
    let (dir, mut store) = store();
    active_agreement(&mut store, "ag");
    let small = numbered_csv(dir.path(), "small.csv", 0, 10, false);
    store.import_csv(&small, &opts(), None).unwrap();
    let big = numbered_csv(dir.path(), "big.csv", 0, ROWS, false);

    let db = store.path().to_owned();
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let importer = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let r = store.import_csv(&big, &opts(), None);
            done.store(true, Ordering::SeqCst);
            r
        })
    };

    let mut node = Store::open(&db).unwrap();
    node.set_busy_timeout(Duration::from_secs(1)).unwrap();
    let (mut i, mut slowest) = (0u32, Duration::ZERO);
    let mut seen_sizes = std::collections::BTreeSet::new();
    while !done.load(Ordering::SeqCst) {
        let t = Instant::now();
        node.append_audit(AuditEvent::now("test", "test.ping", json!({ "i": i })))
            .unwrap_or_else(|e| panic!("audit append {i} during the import: {e}"));
        let mut r = run(&format!("run-{i}"), "ag", 1e-6, 1000.0);
        r.cap_delta = 1e-3;
        node.begin_run(&r)
            .unwrap_or_else(|e| panic!("begin_run {i} during the import: {e}"));
        // Two reads, not one snapshot: the swap may fall between them, so each is checked on
        // its own (old or new audience, never a mix).
        let summary = node.audience_summary().unwrap();
        let members = node.members("default", IdKind::Email, None).unwrap();
        seen_sizes.insert(summary[0].members as usize);
        seen_sizes.insert(members.len());
        slowest = slowest.max(t.elapsed());
        i += 1;
    }
    let report = importer.join().unwrap().unwrap();
    let import_time = started.elapsed();
    assert_eq!((report.rows, report.members), (ROWS as u64, ROWS as u64));
    assert!(
        i >= 2,
        "the import ended before the writer got going ({i} rounds)"
    );
    assert!(
        seen_sizes.iter().all(|&n| n == 10 || n == ROWS as usize),
        "a reader saw a half import: {seen_sizes:?}"
    );
    println!(
        "{i} rounds of audit append + begin_run + reads during a {import_time:.1?} import; slowest {slowest:.1?}"
    );
    node.verify_audit(None).unwrap();
    assert_eq!(
        count(
            &node,
            "SELECT COUNT(*) FROM member_sets WHERE state != 'live'"
        ),
        0,
        "the replaced set was deleted"
    );
}

/// A long import that fails on its last row (after several chunks were written) changes
/// nothing a reader can see, writes no audit entry and leaves no staging rows; a multi-chunk
/// append keeps the existing members.
#[test]
fn a_long_import_failing_at_its_last_row_changes_nothing() {
    let (dir, mut store) = store();
    let first = numbered_csv(dir.path(), "first.csv", 0, 12_000, false);
    store.import_csv(&first, &opts(), None).unwrap();
    let snapshot = |s: &Store| {
        (
            s.audience_summary().unwrap(),
            s.members("default", IdKind::Email, Some("segment"))
                .unwrap(),
            s.audit_head().unwrap(),
            s.audience_version().unwrap(),
        )
    };
    let before = snapshot(&store);

    for replace in [true, false] {
        let bad = numbered_csv(dir.path(), "bad.csv", 5_000, 30_000, true);
        let mut o = opts();
        o.replace = replace;
        let err = store.import_csv(&bad, &o, None).unwrap_err();
        assert!(
            matches!(&err, StoreError::Import { line: 25_002, .. }),
            "replace={replace}: {err}"
        );
        assert_eq!(before, snapshot(&store), "replace={replace}: store changed");
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM audience_members"),
            12_000,
            "replace={replace}: staging rows left behind"
        );
        assert_eq!(count(&store, "SELECT COUNT(*) FROM member_sets"), 1);
    }

    // Appending 12k rows, 6k of them already members, over several chunks.
    let more = numbered_csv(dir.path(), "more.csv", 6_000, 18_000, false);
    let mut o = opts();
    o.replace = false;
    let r = store.import_csv(&more, &o, None).unwrap();
    assert_eq!(
        (r.imported, r.duplicates, r.members),
        (6_000, 6_000, 18_000)
    );
    let members = store
        .members("default", IdKind::Email, Some("segment"))
        .unwrap();
    assert_eq!(members.len(), 18_000);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM audience_members"),
        18_000
    );
    store.verify_audit(None).unwrap();
}

/// A killed import leaves a staging set: invisible to readers, kept while any import holds the
/// lock file, deleted by the next open once none does.
#[test]
fn the_next_open_deletes_a_killed_imports_staging_rows() {
    let (dir, mut store) = store();
    let path = numbered_csv(dir.path(), "a.csv", 0, 100, false);
    store.import_csv(&path, &opts(), None).unwrap();
    // What a SIGKILL between two chunks leaves.
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.execute_batch(
        "INSERT INTO member_sets (set_id, audience, id_kind, state, created_at_ms, members)
             VALUES (99, 'default', 'email', 'staging', 0, 2);
         INSERT INTO audience_members (set_id, digest, attrs)
             VALUES (99, zeroblob(32), NULL), (99, randomblob(32), NULL);",
    )
    .unwrap();
    drop(conn);
    assert_eq!(
        store.members("default", IdKind::Email, None).unwrap().len(),
        100
    );
    assert_eq!(store.audience_summary().unwrap()[0].members, 100);

    let mut lock_path = store.path().as_os_str().to_owned();
    lock_path.push("-import.lock");
    let running = std::fs::File::open(&lock_path).unwrap();
    running.lock_shared().unwrap();
    let other = Store::open(store.path()).unwrap();
    assert_eq!(
        count(
            &other,
            "SELECT COUNT(*) FROM audience_members WHERE set_id = 99"
        ),
        2,
        "an import is running: its staging rows are kept"
    );
    drop(running);
    let reopened = Store::open(store.path()).unwrap();
    assert_eq!(count(&reopened, "SELECT COUNT(*) FROM member_sets"), 1);
    assert_eq!(
        count(&reopened, "SELECT COUNT(*) FROM audience_members"),
        100
    );
}

/// An opt-out applied while an import runs reaches the imported audience.
#[test]
fn an_opt_out_during_an_import_is_not_undone_by_it() {
    let (dir, mut store) = store();
    let path = numbered_csv(dir.path(), "a.csv", 0, 40_000, false);
    let db = store.path().to_owned();
    let importer = std::thread::spawn(move || store.import_csv(&path, &opts(), None));
    let mut dpo = Store::open(&db).unwrap();
    let gone: Vec<[u8; 32]> = [1u32, 39_999]
        .iter()
        .map(|i| {
            tandem_identity::Normaliser::default()
                .digest(IdKind::Email, &format!("user{i}@example.com"))
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    dpo.delete_digests(&gone, "cli:dpo").unwrap();
    let r = importer.join().unwrap().unwrap();
    let members = dpo.members("default", IdKind::Email, None).unwrap();
    assert!(members.iter().all(|(d, _)| !gone.contains(d)));
    assert_eq!(members.len() as u64, r.members);
    assert_eq!(r.members, 40_000 - 2);
    assert_eq!(dpo.audience_summary().unwrap()[0].members, 40_000 - 2);
}

/// An import that finishes deletes the set it replaced, never another running import's staging
/// set (nor does any open while that import holds the lock file).
#[test]
fn a_finished_import_leaves_a_running_imports_staging_set_alone() {
    let (dir, mut store) = store();
    let path = numbered_csv(dir.path(), "a.csv", 0, 100, false);
    store.import_csv(&path, &opts(), None).unwrap();
    let mut lock_path = store.path().as_os_str().to_owned();
    lock_path.push("-import.lock");
    let running = std::fs::File::open(&lock_path).unwrap();
    running.lock_shared().unwrap();
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.execute_batch(
        "INSERT INTO member_sets (set_id, audience, id_kind, state, created_at_ms, members)
             VALUES (99, 'other', 'email', 'staging', 0, 1);
         INSERT INTO audience_members (set_id, digest, attrs) VALUES (99, zeroblob(32), NULL);",
    )
    .unwrap();
    store.import_csv(&path, &opts(), None).unwrap();
    Store::open(store.path()).unwrap();
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM member_sets WHERE set_id = 99"),
        1
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM member_sets WHERE state = 'retired'"
        ),
        0,
        "the replaced set was deleted"
    );
    drop(running);
}

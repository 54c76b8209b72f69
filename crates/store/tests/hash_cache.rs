//! The hash cache (migration V9): filled in chunks and used only once complete; rows go with
//! their member set (import swap, purge) and with an opted-out digest.

mod common;

use common::*;
use rusqlite::Connection;
use tandem_identity::IdKind;
use tandem_store::{HashFill, ImportOptions, Store, StoreError};

const DOMAIN: [u8; 32] = [7; 32];

/// A stand-in for `hash_to_points`: the digest with its bytes reversed.
fn fake_hash(digests: &[[u8; 32]]) -> Result<Vec<[u8; 32]>, StoreError> {
    Ok(digests
        .iter()
        .map(|d| {
            let mut p = *d;
            p.reverse();
            p
        })
        .collect())
}

/// Imports `n` emails with a `tier` column.
fn import(dir: &std::path::Path, store: &mut Store, name: &str, n: usize) {
    let mut csv = String::from("email,tier\n");
    for i in 0..n {
        csv.push_str(&format!("u{i}@example.com,t{}\n", i % 3));
    }
    let path = csv_file(dir, name, &csv);
    let mut opts = ImportOptions::new("email", IdKind::Email);
    opts.attributes = vec!["tier".into()];
    store.import_csv(&path, &opts, None).unwrap();
}

/// Digest, cached point and tier of a member.
type Row = ([u8; 32], [u8; 32], Option<String>);

/// The cached walk: `None` if not used, else every member's row.
fn cached(store: &Store, domain: &[u8; 32]) -> Option<Vec<Row>> {
    let mut out = Vec::new();
    let used = store
        .for_each_cached_member("default", IdKind::Email, &["tier"], domain, |d, p, v| {
            out.push((*d, *p, v[0].clone()));
            Ok::<_, StoreError>(())
        })
        .unwrap();
    used.then_some(out)
}

fn points_rows(store: &Store) -> i64 {
    Connection::open(store.path())
        .unwrap()
        .query_row("SELECT COUNT(*) FROM hash_points", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_complete_fill_gives_every_member_its_point() {
    let (dir, mut store) = store();
    import(dir.path(), &mut store, "a.csv", 50);
    assert!(cached(&store, &DOMAIN).is_none(), "used before any fill");
    let fill = store
        .fill_hash_cache("default", IdKind::Email, &DOMAIN, fake_hash)
        .unwrap();
    assert_eq!(
        fill,
        HashFill {
            points: 50,
            complete: true
        }
    );
    let rows = cached(&store, &DOMAIN).expect("complete cache used");
    let members = store
        .members("default", IdKind::Email, Some("tier"))
        .unwrap();
    assert_eq!(rows.len(), members.len());
    for ((d, p, v), (md, mv)) in rows.iter().zip(&members) {
        assert_eq!((d, v), (md, mv));
        assert_eq!(fake_hash(&[*d]).unwrap()[0], *p);
    }
    // Complete: a second fill hashes nothing; another domain is not filled.
    let again = store
        .fill_hash_cache(
            "default",
            IdKind::Email,
            &DOMAIN,
            |_| -> Result<Vec<[u8; 32]>, StoreError> { panic!("hashed again") },
        )
        .unwrap();
    assert_eq!(
        again,
        HashFill {
            points: 0,
            complete: true
        }
    );
    assert!(cached(&store, &[8; 32]).is_none());
}

#[test]
fn an_interrupted_fill_is_not_used_and_is_redone() {
    let (dir, mut store) = store();
    // Two chunks of 10 000: the fill fails in the second, after the first was written.
    import(dir.path(), &mut store, "a.csv", 10_050);
    let mut calls = 0;
    let err = store.fill_hash_cache("default", IdKind::Email, &DOMAIN, |d| {
        calls += 1;
        if calls == 2 {
            return Err(StoreError::Invalid("crash".into()));
        }
        fake_hash(d)
    });
    assert!(err.is_err());
    assert_eq!(points_rows(&store), 10_000, "the first chunk was written");
    assert!(
        cached(&store, &DOMAIN).is_none(),
        "a partial fill is not used"
    );
    let fill = store
        .fill_hash_cache("default", IdKind::Email, &DOMAIN, fake_hash)
        .unwrap();
    assert!(fill.complete);
    assert_eq!(cached(&store, &DOMAIN).unwrap().len(), 10_050);
}

#[test]
fn cached_points_go_with_opt_outs_import_swaps_and_purges() {
    let (dir, mut store) = store();
    import(dir.path(), &mut store, "a.csv", 30);
    store
        .fill_hash_cache("default", IdKind::Email, &DOMAIN, fake_hash)
        .unwrap();
    store
        .fill_hash_cache("default", IdKind::Email, &[8; 32], fake_hash)
        .unwrap();
    assert_eq!(points_rows(&store), 60);

    // Opt-out: the digest's points go in every domain; the walk skips it.
    let gone = store.members("default", IdKind::Email, None).unwrap()[4].0;
    store.delete_digests(&[gone], "test").unwrap();
    assert_eq!(points_rows(&store), 58);
    let rows = cached(&store, &DOMAIN).unwrap();
    assert_eq!(rows.len(), 29);
    assert!(rows.iter().all(|(d, _, _)| *d != gone));

    // A new import swaps a new set in: no cache for it; the old set's points are deleted.
    import(dir.path(), &mut store, "b.csv", 20);
    assert!(cached(&store, &DOMAIN).is_none());
    assert_eq!(points_rows(&store), 0);
    store
        .fill_hash_cache("default", IdKind::Email, &DOMAIN, fake_hash)
        .unwrap();
    assert_eq!(cached(&store, &DOMAIN).unwrap().len(), 20);

    // Purge retires and deletes the set with its cache.
    store.purge(i64::MAX, "test").unwrap();
    assert_eq!(points_rows(&store), 0);
    let fills: i64 = Connection::open(store.path())
        .unwrap()
        .query_row("SELECT COUNT(*) FROM hash_fills", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fills, 0);
}

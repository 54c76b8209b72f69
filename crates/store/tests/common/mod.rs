//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use tandem_store::{NewRun, Store};

/// A fresh store in a temporary directory (kept alive by the returned guard).
pub fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

/// Writes `content` to `dir/name` and returns the path.
pub fn csv_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(content.as_bytes())
        .unwrap();
    path
}

/// Stores an active agreement `id`.
pub fn active_agreement(store: &mut Store, id: &str) {
    store
        .put_agreement(
            id,
            r#"{"purpose":"overlap","caps":{"epsilon":1.0}}"#,
            "active",
            "cli:admin",
        )
        .unwrap();
}

/// A signed-agreement document between the parties with signing keys `k1` and `k2` on
/// `join_keys` (JSON array text), expiring at `expires_at`: what the account derivation reads.
pub fn agreement_doc(k1: &str, k2: &str, join_keys: &str, expires_at: &str) -> String {
    format!(
        r#"{{"terms":{{"version":1,"expires_at":"{expires_at}","join_keys":{join_keys},
            "parties":[{{"name":"acme","signing_key":"{k1}"}},{{"name":"shopx","signing_key":"{k2}"}}]}},
            "signatures":{{}}}}"#
    )
}

/// Stores `doc` as active agreement `id`.
pub fn active_agreement_doc(store: &mut Store, id: &str, doc: &str) {
    store.put_agreement(id, doc, "active", "cli:admin").unwrap();
}

/// A run costing `epsilon` (δ 1e-9) under agreement `ag` with caps `cap` / 1e-6.
pub fn run(id: &str, ag: &str, epsilon: f64, cap: f64) -> NewRun {
    NewRun {
        run_id: id.into(),
        agreement_id: ag.into(),
        role: "querier".into(),
        join_key: None,
        actor: "token:alice(analyst)".into(),
        params_json: r#"{"template":"overlap","min_count":50}"#.into(),
        epsilon,
        delta: 1e-9,
        rho: 0.0,
        cap_epsilon: cap,
        cap_delta: 1e-6,
        cap_rho: None,
        fingerprint: None,
        budget_since_ms: 0,
    }
}

/// Every byte of the database and its WAL/SHM files.
pub fn all_db_bytes(store: &Store) -> Vec<u8> {
    let mut out = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = store.path().as_os_str().to_owned();
        p.push(suffix);
        if let Ok(bytes) = std::fs::read(&p) {
            out.extend(bytes);
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

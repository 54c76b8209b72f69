//! Connection settings and schema migrations (`PRAGMA user_version`).

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use serde_json::json;
use tandem_audit::AuditEvent;

use crate::StoreError;
use crate::audit_log;

/// How long a connection waits for another writer before failing with "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrations in order; migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    V1,
    V2_BUDGET_ACCOUNTS,
    V3_STAGED_IMPORTS,
    V4_AUDIENCE_VERSIONS,
    V5_RESULTS,
    V6_VALUES,
    V7_MODELS,
    V8_NODE_CAP,
    crate::hash_cache::V9_HASH_CACHE,
];

/// Schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

const V1: &str = r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO meta (key, value) VALUES ('audience_version', 0);

-- One row per (audience, identifier kind) that holds members.
CREATE TABLE audiences (
    audience        TEXT NOT NULL,
    id_kind         TEXT NOT NULL,
    imported_at_ms  INTEGER NOT NULL,
    attributes_json TEXT NOT NULL,
    PRIMARY KEY (audience, id_kind)
) STRICT;

-- Only SHA-256 digests of normalised identifiers; raw identifiers are never stored.
CREATE TABLE audience_members (
    audience TEXT NOT NULL,
    id_kind  TEXT NOT NULL,
    digest   BLOB NOT NULL CHECK (length(digest) = 32),
    attrs    TEXT,
    PRIMARY KEY (audience, id_kind, digest)
) WITHOUT ROWID, STRICT;

-- Opt-outs (PIPL Art. 24, GDPR Art. 21): never imported again, never returned.
CREATE TABLE suppressed (
    digest      BLOB PRIMARY KEY CHECK (length(digest) = 32),
    added_at_ms INTEGER NOT NULL
) WITHOUT ROWID, STRICT;

CREATE TABLE agreements (
    id            TEXT PRIMARY KEY,
    doc_json      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('proposed', 'active', 'revoked')),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE runs (
    run_id              TEXT PRIMARY KEY,
    agreement_id        TEXT NOT NULL REFERENCES agreements (id),
    role                TEXT NOT NULL CHECK (role IN ('querier', 'responder')),
    actor               TEXT NOT NULL,
    params_json         TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('started', 'finished', 'failed', 'refused')),
    epsilon             REAL NOT NULL,
    delta               REAL NOT NULL,
    rho                 REAL NOT NULL,
    fingerprint         TEXT,
    started_at_ms       INTEGER NOT NULL,
    ended_at_ms         INTEGER,
    result_json         TEXT,
    output_sha256       TEXT,
    error               TEXT,
    result_purged_at_ms INTEGER
) STRICT;
CREATE INDEX runs_by_agreement ON runs (agreement_id, started_at_ms);
CREATE INDEX runs_by_fingerprint ON runs (fingerprint) WHERE fingerprint IS NOT NULL;

-- Budget in integer units (epsilon and rho in 1e-9, delta in 1e-18) so that sums are exact.
CREATE TABLE budget_ledger (
    id             INTEGER PRIMARY KEY,
    agreement_id   TEXT NOT NULL REFERENCES agreements (id),
    run_id         TEXT NOT NULL UNIQUE REFERENCES runs (run_id),
    at_ms          INTEGER NOT NULL,
    epsilon_units  INTEGER NOT NULL CHECK (epsilon_units >= 0),
    delta_units    INTEGER NOT NULL CHECK (delta_units >= 0),
    rho_units      INTEGER NOT NULL CHECK (rho_units >= 0),
    state          TEXT NOT NULL CHECK (state IN ('reserved', 'spent', 'released')),
    released_at_ms INTEGER
) STRICT;
CREATE INDEX ledger_by_agreement ON budget_ledger (agreement_id, state);

CREATE TABLE tokens (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'analyst', 'auditor')),
    secret_sha256 BLOB NOT NULL UNIQUE CHECK (length(secret_sha256) = 32),
    created_at_ms INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    revoked_at_ms INTEGER
) STRICT;

-- protocols/audit-log-v1.md; details_json holds the canonical JSON text.
CREATE TABLE audit_log (
    seq          INTEGER PRIMARY KEY CHECK (seq >= 0),
    at_ms        INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    agreement_id TEXT,
    details_json TEXT NOT NULL,
    prev_hash    BLOB NOT NULL,
    hash         BLOB NOT NULL
) STRICT;
CREATE INDEX audit_by_time ON audit_log (at_ms);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE checkpoints (
    id         INTEGER PRIMARY KEY,
    seq        INTEGER NOT NULL,
    head_hash  BLOB NOT NULL,
    at_ms      INTEGER NOT NULL,
    node_key   TEXT NOT NULL,
    signature  TEXT NOT NULL
) STRICT;
"#;

/// Budget accounts (issue 9): a charge also counts against the account of the agreement's pair
/// of signing keys and its run's join key, shared by every agreement between the same two keys
/// (`account.rs`). Existing charges are assigned to the account of their run's join key (from
/// its `params_json`), or to every join key of the agreement when the run does not name one;
/// documents that are not two-party agreements get no account. The admitting route of each
/// charge is recorded from now on (`NULL` for older charges).
const V2_BUDGET_ACCOUNTS: &str = r#"
CREATE TABLE budget_accounts (
    account TEXT NOT NULL,
    run_id  TEXT NOT NULL REFERENCES budget_ledger (run_id),
    PRIMARY KEY (account, run_id)
) WITHOUT ROWID, STRICT;
CREATE INDEX budget_accounts_by_run ON budget_accounts (run_id);
ALTER TABLE budget_ledger ADD COLUMN route TEXT CHECK (route IN ('basic', 'zcdp'));

WITH docs AS (
    SELECT id, CASE WHEN json_valid(doc_json) THEN doc_json ELSE '{}' END AS doc FROM agreements
), pairs AS (
    SELECT id, doc,
           json_extract(doc, '$.terms.parties[0].signing_key') AS k0,
           json_extract(doc, '$.terms.parties[1].signing_key') AS k1
    FROM docs
    WHERE json_array_length(doc, '$.terms.parties') = 2
      AND json_type(doc, '$.terms.parties[0].signing_key') = 'text'
      AND json_type(doc, '$.terms.parties[1].signing_key') = 'text'
), charges AS (
    SELECT l.run_id, l.agreement_id,
           json_extract(CASE WHEN json_valid(r.params_json) THEN r.params_json ELSE '{}' END,
                        '$.join_key') AS join_key
    FROM budget_ledger l JOIN runs r ON r.run_id = l.run_id
)
INSERT OR IGNORE INTO budget_accounts (account, run_id)
SELECT 'pair:' || min(p.k0, p.k1) || ':' || max(p.k0, p.k1) || '/' || k.value, c.run_id
FROM charges c
JOIN pairs p ON p.id = c.agreement_id
JOIN json_each(p.doc, '$.terms.join_keys') k
WHERE k.type = 'text' AND (c.join_key IS NULL OR c.join_key = k.value);
"#;

// ---- Migration: staged imports (issue 11, defect 1) --------------------------------------------
// Members live in *member sets*. An import fills a `staging` set in short chunked transactions
// (readers and other writers never wait on the whole import), then swaps it in with one short
// transaction: the set becomes `live` and the previous live set `retired`. Retired sets and the
// staging sets of failed or killed imports are deleted in chunks afterwards (see `import.rs`).
// `members` counts the set's rows, maintained with every insert and delete.
const V3_STAGED_IMPORTS: &str = r#"
CREATE TABLE member_sets (
    set_id        INTEGER PRIMARY KEY,
    audience      TEXT NOT NULL,
    id_kind       TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('staging', 'live', 'retired')),
    created_at_ms INTEGER NOT NULL,
    members       INTEGER NOT NULL DEFAULT 0 CHECK (members >= 0)
) STRICT;
CREATE UNIQUE INDEX member_sets_one_live ON member_sets (audience, id_kind) WHERE state = 'live';

INSERT INTO member_sets (audience, id_kind, state, created_at_ms, members)
    SELECT a.audience, a.id_kind, 'live', a.imported_at_ms,
           (SELECT COUNT(*) FROM audience_members m WHERE m.audience = a.audience AND m.id_kind = a.id_kind)
    FROM audiences a ORDER BY a.audience, a.id_kind;

CREATE TABLE set_members (
    set_id INTEGER NOT NULL REFERENCES member_sets (set_id),
    digest BLOB NOT NULL CHECK (length(digest) = 32),
    attrs  TEXT,
    PRIMARY KEY (set_id, digest)
) WITHOUT ROWID, STRICT;
INSERT INTO set_members (set_id, digest, attrs)
    SELECT s.set_id, m.digest, m.attrs FROM audience_members m
    JOIN member_sets s ON s.audience = m.audience AND s.id_kind = m.id_kind;
DROP TABLE audience_members;
ALTER TABLE set_members RENAME TO audience_members;
"#;
// ---- end of migration: staged imports ------------------------------------------------------------

// ---- migration: stored results (issue 12) --------------------------------------------------------
// Every report a query produced, whole, with its parameters and this node's cost, re-read at no
// cost (`results.rs`); purged with the node's retention.
const V5_RESULTS: &str = r#"
CREATE TABLE results (
    result_id     TEXT PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    agreement_id  TEXT NOT NULL,
    analysis      TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    cached        INTEGER NOT NULL CHECK (cached IN (0, 1)),
    actor         TEXT NOT NULL,
    params_json   TEXT NOT NULL,
    epsilon_spent REAL NOT NULL,
    delta_spent   REAL NOT NULL,
    report_json   TEXT NOT NULL
) STRICT;
CREATE INDEX results_by_time ON results (created_at_ms);
"#;
// ---- end of migration: stored results ------------------------------------------------------------
// ---- Migration: models (issue 14) ---------------------------------------------------------------
// A model fitted from noised marginals (`protocols/model-v1.md`): the whole fit as JSON (schema,
// plan, both models with intervals, segments, cross-tabs) and the ids of the runs whose released
// cells it used (JSON array). Post-processing only: re-reading and re-scoring spend nothing.
const V7_MODELS: &str = r#"
CREATE TABLE models (
    model_id      TEXT PRIMARY KEY,
    agreement_id  TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    run_ids       TEXT NOT NULL,
    model_json    TEXT NOT NULL
) STRICT;
CREATE INDEX models_by_agreement ON models (agreement_id, created_at_ms);
"#;
// ---- end of migration: models -------------------------------------------------------------------
// ---- migration: value columns (issue 13, psi-sum-v1) ----------------------------------------------
// Values are stored as JSON integers beside the attributes in `audience_members.attrs`, already
// clamped to `[0, U]`; this records, per audience and kind, each value column and the bound `U`
// its values were imported under (a run refuses an agreement whose `U` is smaller).
const V6_VALUES: &str = r#"
ALTER TABLE audiences ADD COLUMN value_bounds_json TEXT NOT NULL DEFAULT '{}';
"#;
// ---- end of migration: value columns ----------------------------------------------------------------

/// Applies per-connection settings: busy timeout, WAL, foreign keys, full sync, secure delete.
pub(crate) fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "could not switch to WAL (journal_mode is {mode})"
            )));
        }
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // FULL: a committed budget charge survives power loss, not only a crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Deleted audience rows are overwritten, not left in free pages.
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(())
}

// ---- Migration: audience versions per join key (issue 9, item 6) -------------------------------
// A counter per audience and identifier kind, bumped by every import, opt-out deletion and purge
// that changes it. A responder signs the version its answer used; a querier asks whether it is
// still current before reusing a cached answer. A counter, not a hash of data, and never reset:
// rows outlive a purge, and existing rows start from the store-wide counter.
const V4_AUDIENCE_VERSIONS: &str = r#"
CREATE TABLE audience_versions (
    audience TEXT NOT NULL,
    id_kind  TEXT NOT NULL,
    version  INTEGER NOT NULL CHECK (version >= 0),
    PRIMARY KEY (audience, id_kind)
) WITHOUT ROWID, STRICT;
INSERT INTO audience_versions (audience, id_kind, version)
    SELECT audience, id_kind, (SELECT value FROM meta WHERE key = 'audience_version')
    FROM audiences;
"#;

// ---- Migration: a node-wide budget cap (issue 9, item 2) ---------------------------------------
// The node's own cap over all its charges (every agreement, counterparty and role), mirrored from
// its configuration so that the ledger's one admission transaction sees it. At most one row.
const V8_NODE_CAP: &str = r#"
CREATE TABLE node_cap (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    epsilon    REAL NOT NULL CHECK (epsilon >= 0),
    delta      REAL NOT NULL CHECK (delta >= 0),
    rho        REAL,
    window_ms  INTEGER,
    set_at_ms  INTEGER NOT NULL
) STRICT;
"#;

/// Brings the schema to [`SCHEMA_VERSION`]; the first migration also writes the genesis audit entry.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version =
        |c: &Connection| c.pragma_query_value(None, "user_version", |r| r.get::<_, u32>(0));
    if version(conn)? == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let from = version(&tx)?;
    if from > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "database schema version {from} is newer than this build supports ({SCHEMA_VERSION})"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
    }
    let event = AuditEvent::now(
        "node",
        if from == 0 {
            "store.created"
        } else {
            "store.migrated"
        },
        json!({"from_schema_version": from, "schema_version": SCHEMA_VERSION}),
    );
    audit_log::append(&tx, event)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, params};

    use super::{MIGRATIONS, migrate};

    /// A version-1 ledger (charges per agreement only) is migrated: each charge joins the budget
    /// account of its run's join key, or every join key's when the run named none; documents
    /// that are not two-party agreements get no account.
    #[test]
    fn the_stored_ledger_is_migrated_to_budget_accounts() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        let doc = r#"{"terms":{"join_keys":["email","phone"],
            "parties":[{"signing_key":"bb"},{"signing_key":"aa"}]},"signatures":{}}"#;
        for (id, doc) in [("ag", doc), ("other", r#"{"purpose":"x"}"#)] {
            conn.execute(
                "INSERT INTO agreements VALUES (?1, ?2, 'active', 0, 0)",
                params![id, doc],
            )
            .unwrap();
        }
        for (run, agreement, params_json) in [
            ("r-email", "ag", r#"{"join_key":"email","epsilon":1}"#),
            ("r-any", "ag", r#"{"template":"overlap"}"#),
            ("r-other", "other", r#"{"join_key":"email"}"#),
        ] {
            conn.execute(
                "INSERT INTO runs (run_id, agreement_id, role, actor, params_json, status, epsilon,
                                   delta, rho, started_at_ms)
                 VALUES (?1, ?2, 'querier', 'x', ?3, 'finished', 1, 0, 0.5, 0)",
                params![run, agreement, params_json],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO budget_ledger (agreement_id, run_id, at_ms, epsilon_units, delta_units,
                                            rho_units, state)
                 VALUES (?1, ?2, 0, 1000000000, 0, 500000000, 'spent')",
                params![agreement, run],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        let rows: Vec<(String, String)> = conn
            .prepare("SELECT run_id, account FROM budget_accounts ORDER BY run_id, account")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected = [
            ("r-any", "pair:aa:bb/email"),
            ("r-any", "pair:aa:bb/phone"),
            ("r-email", "pair:aa:bb/email"),
        ];
        assert_eq!(
            rows,
            expected.map(|(r, a)| (r.to_owned(), a.to_owned())),
            "the SQL must name accounts as account.rs does"
        );
        let keys = crate::account::AccountKeys::of(doc).unwrap();
        assert_eq!(keys.account("phone"), "pair:aa:bb/phone");
    }
}

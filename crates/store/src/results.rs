//! Stored results: every report a query produced (fresh or cached), whole, with its parameters
//! and what it cost this node, so that analysts re-read and export it without spending budget
//! or contacting the peer. Retained and purged with the node's retention (`Store::purge`).

use rusqlite::{OptionalExtension, params};
use serde_json::json;
use tandem_audit::AuditEvent;

use crate::{Store, StoreError, audit_log, now_ms};

/// A report to store.
#[derive(Clone, Debug)]
pub struct NewResult<'a> {
    /// Agreement id (hex).
    pub agreement_id: &'a str,
    /// The analysis that produced it.
    pub analysis: &'a str,
    /// The run whose noised numbers it shows (hex).
    pub run_id: &'a str,
    /// Answered from the cache (no budget spent now).
    pub cached: bool,
    /// Who asked.
    pub actor: &'a str,
    /// The query's parameters, JSON.
    pub params_json: &'a str,
    /// ε this node spent on this report (0 when cached).
    pub epsilon_spent: f64,
    /// δ this node spent on this report.
    pub delta_spent: f64,
    /// The report, JSON, whole (its intervals included).
    pub report_json: &'a str,
}

/// A stored result.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredResult {
    /// Result id (hex, 16 bytes).
    pub result_id: String,
    /// When it was stored, Unix ms.
    pub created_at_ms: i64,
    /// Agreement id (hex).
    pub agreement_id: String,
    /// The analysis.
    pub analysis: String,
    /// The run whose numbers it shows.
    pub run_id: String,
    /// Answered from the cache.
    pub cached: bool,
    /// Who asked.
    pub actor: String,
    /// The query's parameters, JSON.
    pub params_json: String,
    /// ε this node spent on it.
    pub epsilon_spent: f64,
    /// δ this node spent on it.
    pub delta_spent: f64,
    /// The report, JSON.
    pub report_json: String,
}

const COLUMNS: &str = "result_id, created_at_ms, agreement_id, analysis, run_id, cached, actor, \
                       params_json, epsilon_spent, delta_spent, report_json";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredResult> {
    Ok(StoredResult {
        result_id: r.get(0)?,
        created_at_ms: r.get(1)?,
        agreement_id: r.get(2)?,
        analysis: r.get(3)?,
        run_id: r.get(4)?,
        cached: r.get(5)?,
        actor: r.get(6)?,
        params_json: r.get(7)?,
        epsilon_spent: r.get(8)?,
        delta_spent: r.get(9)?,
        report_json: r.get(10)?,
    })
}

impl Store {
    /// Stores a report under a fresh random id (returned), audited as `result.stored` with the
    /// id and run in the same transaction.
    pub fn save_result(&mut self, result: &NewResult<'_>) -> Result<String, StoreError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| {
            StoreError::io(
                "reading OS randomness",
                std::io::Error::other(e.to_string()),
            )
        })?;
        let id = hex::encode(bytes);
        let tx = self.write_tx()?;
        tx.execute(
            &format!(
                "INSERT INTO results ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ),
            params![
                id,
                now_ms(),
                result.agreement_id,
                result.analysis,
                result.run_id,
                result.cached,
                result.actor,
                result.params_json,
                result.epsilon_spent,
                result.delta_spent,
                result.report_json
            ],
        )?;
        audit_log::append(
            &tx,
            AuditEvent::now(
                result.actor,
                "result.stored",
                json!({"result_id": id, "run_id": result.run_id, "analysis": result.analysis, "cached": result.cached}),
            )
            .with_agreement(result.agreement_id),
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Stored results, newest first (of one agreement when `agreement` is given).
    pub fn results(&self, agreement: Option<&str>) -> Result<Vec<StoredResult>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM results WHERE ?1 IS NULL OR agreement_id = ?1
             ORDER BY created_at_ms DESC, rowid DESC"
        ))?;
        let rows = stmt.query_map([agreement], read_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stored result with this id (`None` when unknown or purged).
    pub fn result(&self, result_id: &str) -> Result<Option<StoredResult>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM results WHERE result_id = ?1"),
                [result_id],
                read_row,
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_results_are_listed_read_and_purged() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("store");
        let new = NewResult {
            agreement_id: "ab",
            analysis: "overlap",
            run_id: "01",
            cached: false,
            actor: "cli:analyst",
            params_json: r#"{"epsilon":1.0}"#,
            epsilon_spent: 0.25,
            delta_spent: 5e-10,
            report_json: r#"{"cells":[],"extra":{"kept":true}}"#,
        };
        let first = store.save_result(&new).expect("save");
        let second = store
            .save_result(&NewResult {
                cached: true,
                epsilon_spent: 0.0,
                agreement_id: "cd",
                ..new.clone()
            })
            .expect("save");
        assert_ne!(first, second);
        let all = store.results(None).expect("list");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].result_id, second, "newest first");
        assert_eq!(store.results(Some("ab")).expect("list").len(), 1);
        let got = store.result(&first).expect("read").expect("found");
        assert_eq!(got.report_json, new.report_json);
        assert_eq!((got.epsilon_spent, got.cached), (0.25, false));
        assert!(store.result("ff").expect("read").is_none());
        let purged = store.purge(now_ms() + 1, "test").expect("purge");
        assert_eq!(purged.results_cleared, 2);
        assert!(store.results(None).expect("list").is_empty());
    }
}

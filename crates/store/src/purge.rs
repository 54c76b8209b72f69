//! Retention: delete result payloads and audiences past their retention (GDPR Art. 5(1)(e)).

use rusqlite::params;
use serde_json::json;
use tandem_audit::AuditEvent;

use crate::{Store, StoreError, audience, audit_log, now_ms};

/// What a purge removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Run results whose payload was deleted (the run row, its output hash and its budget
    /// charge are kept as evidence).
    pub results_cleared: u64,
    /// Audiences deleted, as `audience/id_kind`.
    pub audiences_deleted: Vec<String>,
    /// Member rows deleted with them.
    pub members_deleted: u64,
}

impl Store {
    /// Deletes result payloads of runs that ended before `older_than_ms` and audiences last
    /// imported before it. Keeps the audit log, runs, budget ledger, agreements and opt-outs.
    /// Audited as `purge` with the counts; deleted pages are overwritten (`secure_delete`) and
    /// the WAL is truncated afterwards.
    pub fn purge(&mut self, older_than_ms: i64, actor: &str) -> Result<PurgeReport, StoreError> {
        let now = now_ms();
        let tx = self.write_tx()?;
        let results_cleared = tx.execute(
            "UPDATE runs SET result_json = NULL, result_purged_at_ms = ?2
             WHERE ended_at_ms < ?1 AND result_json IS NOT NULL",
            params![older_than_ms, now],
        )? as u64;
        let old: Vec<(String, String)> = {
            let mut stmt = tx.prepare(
                "SELECT audience, id_kind FROM audiences WHERE imported_at_ms < ?1 ORDER BY audience, id_kind",
            )?;
            stmt.query_map([older_than_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        let mut members_deleted = 0u64;
        for (a, k) in &old {
            members_deleted += tx.execute(
                "DELETE FROM audience_members WHERE audience = ?1 AND id_kind = ?2",
                params![a, k],
            )? as u64;
            tx.execute(
                "DELETE FROM audiences WHERE audience = ?1 AND id_kind = ?2",
                params![a, k],
            )?;
        }
        if !old.is_empty() {
            audience::bump_version(&tx)?;
        }
        let report = PurgeReport {
            results_cleared,
            audiences_deleted: old.iter().map(|(a, k)| format!("{a}/{k}")).collect(),
            members_deleted,
        };
        audit_log::append(
            &tx,
            AuditEvent::now(
                actor,
                "purge",
                json!({
                    "older_than_ms": older_than_ms,
                    "results_cleared": report.results_cleared,
                    "audiences_deleted": report.audiences_deleted,
                    "members_deleted": report.members_deleted,
                }),
            ),
        )?;
        tx.commit()?;
        self.truncate_wal();
        Ok(report)
    }
}

//! Retention: delete result payloads and audiences past their retention (GDPR Art. 5(1)(e)).

use rusqlite::params;
use serde_json::json;
use tandem_audit::AuditEvent;

use crate::{Store, StoreError, audience, audit_log, now_ms};

/// What a purge removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Run results whose payload was deleted (the run row, its output hash and its budget
    /// charge are kept as evidence), plus stored results (`tandem results`) deleted.
    pub results_cleared: u64,
    /// Audiences deleted, as `audience/id_kind`.
    pub audiences_deleted: Vec<String>,
    /// Member rows deleted with them.
    pub members_deleted: u64,
}

impl Store {
    /// Deletes result payloads of runs that ended before `older_than_ms`, stored results made
    /// before it and audiences last imported before it. Keeps the audit log, runs, budget ledger, agreements and opt-outs.
    /// Bumps every audience's version. Audited as `purge` with the counts; deleted pages are overwritten (`secure_delete`) and
    /// the WAL is truncated afterwards.
    pub fn purge(&mut self, older_than_ms: i64, actor: &str) -> Result<PurgeReport, StoreError> {
        let now = now_ms();
        let tx = self.write_tx()?;
        let results_cleared = tx.execute(
            "UPDATE runs SET result_json = NULL, result_purged_at_ms = ?2
             WHERE ended_at_ms < ?1 AND result_json IS NOT NULL",
            params![older_than_ms, now],
        )? as u64
            + tx.execute(
                "DELETE FROM results WHERE created_at_ms < ?1",
                [older_than_ms],
            )? as u64;
        // Retire the live sets here (one short transaction); their rows are deleted in chunks
        // after the commit, or by the next open's cleanup if this process dies first.
        let old: Vec<(String, String, Option<i64>)> = {
            let mut stmt = tx.prepare(
                "SELECT a.audience, a.id_kind, s.members FROM audiences a
                 LEFT JOIN member_sets s ON s.audience = a.audience AND s.id_kind = a.id_kind AND s.state = 'live'
                 WHERE a.imported_at_ms < ?1 ORDER BY a.audience, a.id_kind",
            )?;
            stmt.query_map([older_than_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?
        };
        let mut members_deleted = 0u64;
        for (a, k, members) in &old {
            members_deleted += members.unwrap_or(0) as u64;
            tx.execute(
                "UPDATE member_sets SET state = 'retired' WHERE audience = ?1 AND id_kind = ?2 AND state = 'live'",
                params![a, k],
            )?;
            tx.execute(
                "DELETE FROM audiences WHERE audience = ?1 AND id_kind = ?2",
                params![a, k],
            )?;
        }
        for (a, k, _) in &old {
            audience::bump_version(&tx, a, k)?;
        }
        // The audiences kept move too: every purge request bumps every version, so a version
        // never tells a peer what a request removed.
        audience::bump_all_versions(&tx)?;
        let report = PurgeReport {
            results_cleared,
            audiences_deleted: old.iter().map(|(a, k, _)| format!("{a}/{k}")).collect(),
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
        if !old.is_empty() {
            // Best effort: what is left is deleted by the next open's cleanup.
            if let Ok(_lock) = self.sets_lock_shared() {
                let _ = self.delete_retired_sets();
            }
        }
        self.truncate_wal();
        Ok(report)
    }
}

//! Data-sharing agreements as stored documents with a status.

use rusqlite::{OptionalExtension, Row, params};
use serde_json::json;
use sha2::{Digest, Sha256};
use tandem_audit::AuditEvent;

use crate::{Store, StoreError, audit_log, now_ms};

/// Allowed agreement statuses.
const STATUSES: [&str; 3] = ["proposed", "active", "revoked"];

/// An agreement as stored on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAgreement {
    /// Agreement id.
    pub id: String,
    /// The agreement document (JSON text, as given).
    pub doc_json: String,
    /// `proposed`, `active` or `revoked`.
    pub status: String,
    /// First stored.
    pub created_at_ms: i64,
    /// Last changed.
    pub updated_at_ms: i64,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<StoredAgreement> {
    Ok(StoredAgreement {
        id: r.get(0)?,
        doc_json: r.get(1)?,
        status: r.get(2)?,
        created_at_ms: r.get(3)?,
        updated_at_ms: r.get(4)?,
    })
}

const COLUMNS: &str = "id, doc_json, status, created_at_ms, updated_at_ms";

impl Store {
    /// Stores or updates an agreement. Rules: `revoked` is final; an `active` agreement's
    /// document cannot change and it cannot go back to `proposed` (store a new version under a
    /// new id instead); re-storing the same document and status is a no-op. Audited as
    /// `agreement.signed` (becoming active), `agreement.revoked`, or `agreement.stored`, with
    /// the SHA-256 of the document.
    pub fn put_agreement(
        &mut self,
        id: &str,
        doc_json: &str,
        status: &str,
        actor: &str,
    ) -> Result<StoredAgreement, StoreError> {
        if id.is_empty() {
            return Err(StoreError::Invalid("agreement id is empty".into()));
        }
        if !STATUSES.contains(&status) {
            return Err(StoreError::Invalid(format!(
                "agreement status {status:?}; expected proposed, active or revoked"
            )));
        }
        serde_json::from_str::<serde_json::Value>(doc_json)
            .map_err(|e| StoreError::Invalid(format!("agreement document is not JSON: {e}")))?;
        let now = now_ms();
        let tx = self.write_tx()?;
        let old = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM agreements WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?;
        if let Some(old) = &old {
            if old.doc_json == doc_json && old.status == status {
                return Ok(old.clone());
            }
            let conflict = |why: &str| {
                Err(StoreError::Conflict(format!(
                    "agreement {id:?} is {}: {why}",
                    old.status
                )))
            };
            match (old.status.as_str(), status) {
                ("revoked", _) => return conflict("revocation is final"),
                ("active", "proposed") => {
                    return conflict("a signed agreement cannot go back to proposed");
                }
                ("active", "active") => {
                    return conflict(
                        "a signed agreement's document cannot change; store a new version under a new id",
                    );
                }
                _ => {}
            }
        }
        tx.execute(
            "INSERT INTO agreements (id, doc_json, status, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (id) DO UPDATE SET doc_json = excluded.doc_json, status = excluded.status,
                                            updated_at_ms = excluded.updated_at_ms",
            params![id, doc_json, status, now],
        )?;
        let previous = old.as_ref().map(|o| o.status.as_str());
        let action = match status {
            "active" if previous != Some("active") => "agreement.signed",
            "revoked" => "agreement.revoked",
            _ => "agreement.stored",
        };
        let doc_sha256 = hex::encode(Sha256::digest(doc_json.as_bytes()));
        audit_log::append(
            &tx,
            AuditEvent::now(
                actor,
                action,
                json!({"status": status, "previous_status": previous, "doc_sha256": doc_sha256}),
            )
            .with_agreement(id),
        )?;
        let stored = tx.query_row(
            &format!("SELECT {COLUMNS} FROM agreements WHERE id = ?1"),
            [id],
            from_row,
        )?;
        tx.commit()?;
        Ok(stored)
    }

    /// The agreement with this id, if stored.
    pub fn agreement(&self, id: &str) -> Result<Option<StoredAgreement>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM agreements WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// All agreements, oldest first.
    pub fn agreements(&self) -> Result<Vec<StoredAgreement>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM agreements ORDER BY created_at_ms, id"
        ))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

//! Models fitted from released marginals (`protocols/model-v1.md`), stored with the runs they
//! used. Storing and reading a model is post-processing: no budget is touched.

use rusqlite::{OptionalExtension, Row, params};
use serde_json::json;
use sha2::{Digest, Sha256};
use tandem_audit::AuditEvent;

use crate::{Store, StoreError, audit_log, now_ms};

/// A model to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewModel {
    /// Model id (e.g. 32 hex characters), unique.
    pub model_id: String,
    /// The agreement whose runs it used.
    pub agreement_id: String,
    /// Ids of the runs whose released cells it was fitted from, in plan order.
    pub run_ids: Vec<String>,
    /// The fit (JSON text).
    pub model_json: String,
}

/// A stored model.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredModel {
    /// Model id.
    pub model_id: String,
    /// Agreement id.
    pub agreement_id: String,
    /// When it was stored (Unix ms).
    pub created_at_ms: i64,
    /// Who fitted it.
    pub actor: String,
    /// Ids of the runs it used.
    pub run_ids: Vec<String>,
    /// The fit (JSON text).
    pub model_json: String,
}

const COLUMNS: &str = "model_id, agreement_id, created_at_ms, actor, run_ids, model_json";

fn from_row(r: &Row<'_>) -> rusqlite::Result<(StoredModel, String)> {
    Ok((
        StoredModel {
            model_id: r.get(0)?,
            agreement_id: r.get(1)?,
            created_at_ms: r.get(2)?,
            actor: r.get(3)?,
            run_ids: Vec::new(),
            model_json: r.get(5)?,
        },
        r.get(4)?,
    ))
}

fn with_runs((mut m, runs): (StoredModel, String)) -> Result<StoredModel, StoreError> {
    m.run_ids = serde_json::from_str(&runs).map_err(|e| {
        StoreError::Corrupt(format!("model {}: run ids do not parse: {e}", m.model_id))
    })?;
    Ok(m)
}

impl Store {
    /// Stores a fitted model. Audited as `model.stored` with the run ids and the SHA-256 of the
    /// model JSON. Errors: [`StoreError::Invalid`] for an empty id or a body that is not JSON,
    /// [`StoreError::Conflict`] if the id exists.
    pub fn put_model(&mut self, model: &NewModel, actor: &str) -> Result<StoredModel, StoreError> {
        if model.model_id.is_empty() {
            return Err(StoreError::Invalid("model id is empty".into()));
        }
        serde_json::from_str::<serde_json::Value>(&model.model_json)
            .map_err(|e| StoreError::Invalid(format!("model is not JSON: {e}")))?;
        let runs = serde_json::to_string(&model.run_ids)
            .map_err(|e| StoreError::Invalid(format!("run ids: {e}")))?;
        let now = now_ms();
        let tx = self.write_tx()?;
        let exists = tx
            .query_row(
                "SELECT 1 FROM models WHERE model_id = ?1",
                [&model.model_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if exists {
            return Err(StoreError::Conflict(format!(
                "model {:?} already exists",
                model.model_id
            )));
        }
        tx.execute(
            "INSERT INTO models (model_id, agreement_id, created_at_ms, actor, run_ids, model_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                model.model_id,
                model.agreement_id,
                now,
                actor,
                runs,
                model.model_json
            ],
        )?;
        let sha = hex::encode(Sha256::digest(model.model_json.as_bytes()));
        audit_log::append(
            &tx,
            AuditEvent::now(
                actor,
                "model.stored",
                json!({"model_id": model.model_id, "run_ids": model.run_ids, "model_sha256": sha}),
            )
            .with_agreement(&model.agreement_id),
        )?;
        tx.commit()?;
        Ok(StoredModel {
            model_id: model.model_id.clone(),
            agreement_id: model.agreement_id.clone(),
            created_at_ms: now,
            actor: actor.to_string(),
            run_ids: model.run_ids.clone(),
            model_json: model.model_json.clone(),
        })
    }

    /// The model with this id, if stored.
    pub fn model(&self, model_id: &str) -> Result<Option<StoredModel>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM models WHERE model_id = ?1"),
                [model_id],
                from_row,
            )
            .optional()?
            .map(with_runs)
            .transpose()
    }

    /// Stored models, oldest first, optionally of one agreement.
    pub fn models(&self, agreement: Option<&str>) -> Result<Vec<StoredModel>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM models WHERE ?1 IS NULL OR agreement_id = ?1
             ORDER BY created_at_ms, model_id"
        ))?;
        let rows = stmt
            .query_map([agreement], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(with_runs).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_stored_listed_read_and_audited() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let model = NewModel {
            model_id: "m1".into(),
            agreement_id: "ag".into(),
            run_ids: vec!["r1".into(), "r2".into()],
            model_json: r#"{"method":"naive_bayes"}"#.into(),
        };
        store.put_model(&model, "cli:analyst").unwrap();
        let read = store.model("m1").unwrap().unwrap();
        assert_eq!(read.run_ids, ["r1", "r2"]);
        assert_eq!(read.model_json, model.model_json);
        assert!(store.model("m2").unwrap().is_none());
        assert_eq!(store.models(Some("ag")).unwrap().len(), 1);
        assert!(store.models(Some("other")).unwrap().is_empty());
        assert!(matches!(
            store.put_model(&model, "x"),
            Err(StoreError::Conflict(_))
        ));
        let bad = NewModel {
            model_id: "m3".into(),
            model_json: "not json".into(),
            ..model
        };
        assert!(matches!(
            store.put_model(&bad, "x"),
            Err(StoreError::Invalid(_))
        ));
        let mut log = Vec::new();
        store
            .export_audit(&mut log, tandem_audit::ExportFormat::JsonLines, None, None)
            .unwrap();
        assert!(String::from_utf8(log).unwrap().contains("model.stored"));
    }
}

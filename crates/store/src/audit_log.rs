//! The audit table: append inside the caller's transaction, read back, checkpoint, verify, export.

use std::collections::BTreeMap;
use std::io::Write;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;
use tandem_audit::{
    AuditEvent, Checkpoint, Entry, ExportFormat, ExportSummary, Exporter, GENESIS_PREV_HASH,
    SigningKey, Verifier, VerifyError, VerifyReport, VerifyingKey, canonical_json, entry_hash,
    sign_checkpoint,
};

use crate::{Store, StoreError, now_ms};

/// Appends `event` after the current head, on `conn` (normally an open write transaction, so the
/// entry commits or rolls back with the state change it records). The timestamp is clamped to
/// be no earlier than the previous entry's, keeping time ranges contiguous.
pub(crate) fn append(conn: &Connection, mut event: AuditEvent) -> Result<Entry, StoreError> {
    let head: Option<(i64, i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, at_ms, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (seq, prev_hash) = match head {
        None => (0u64, GENESIS_PREV_HASH),
        Some((seq, at_ms, hash)) => {
            event.at_unix_ms = event.at_unix_ms.max(at_ms);
            let prev: [u8; 32] = hash.try_into().map_err(|_| {
                StoreError::Corrupt(format!("audit entry {seq}: hash is not 32 bytes"))
            })?;
            (to_u64(seq)? + 1, prev)
        }
    };
    let hash = entry_hash(seq, &prev_hash, &event);
    conn.prepare_cached(
        "INSERT INTO audit_log (seq, at_ms, actor, action, agreement_id, details_json, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        to_i64(seq)?,
        event.at_unix_ms,
        event.actor,
        event.action,
        event.agreement_id,
        canonical_json(&event.details),
        prev_hash,
        hash
    ])?;
    Ok(Entry {
        seq,
        prev_hash,
        event,
        hash,
    })
}

fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative seq {v}")))
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("seq {v} out of range")))
}

const ENTRY_COLUMNS: &str =
    "seq, at_ms, actor, action, agreement_id, details_json, prev_hash, hash";

/// Decodes a row selected with [`ENTRY_COLUMNS`]; undecodable content is reported against its seq.
fn entry_from_row(r: &Row<'_>) -> Result<Result<Entry, VerifyError>, rusqlite::Error> {
    let seq: i64 = r.get(0)?;
    let details: String = r.get(5)?;
    let prev: Vec<u8> = r.get(6)?;
    let hash: Vec<u8> = r.get(7)?;
    let event = AuditEvent {
        at_unix_ms: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        agreement_id: r.get(4)?,
        details: Value::Null,
    };
    let malformed = |reason: String| VerifyError::Malformed {
        seq: seq.max(0) as u64,
        reason,
    };
    Ok((|| {
        let seq = u64::try_from(seq).map_err(|_| malformed("negative seq".into()))?;
        let details: Value = serde_json::from_str(&details)
            .map_err(|e| malformed(format!("details_json is not JSON: {e}")))?;
        Ok(Entry {
            seq,
            prev_hash: prev
                .try_into()
                .map_err(|_| malformed("prev_hash is not 32 bytes".into()))?,
            hash: hash
                .try_into()
                .map_err(|_| malformed("hash is not 32 bytes".into()))?,
            event: AuditEvent { details, ..event },
        })
    })())
}

fn checkpoint_from_row(r: &Row<'_>) -> Result<Checkpoint, rusqlite::Error> {
    let seq: i64 = r.get(0)?;
    let head: Vec<u8> = r.get(1)?;
    let bad = |what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            format!("checkpoint at seq {seq}: {what}").into(),
        )
    };
    Ok(Checkpoint {
        seq: u64::try_from(seq).map_err(|_| bad("negative seq"))?,
        head_hash: head
            .try_into()
            .map_err(|_| bad("head_hash is not 32 bytes"))?,
        at_unix_ms: r.get(2)?,
        node_key: r.get(3)?,
        signature: r.get(4)?,
    })
}

fn read_err(e: rusqlite::Error) -> VerifyError {
    VerifyError::Read(e.to_string())
}

/// Feeds `SELECT … WHERE seq >= from_seq` to the verifier, entry by entry.
fn verify_from(conn: &Connection, v: &mut Verifier<'_>, from_seq: i64) -> Result<(), VerifyError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {ENTRY_COLUMNS} FROM audit_log WHERE seq >= ?1 ORDER BY seq"
        ))
        .map_err(read_err)?;
    let mut rows = stmt.query([from_seq]).map_err(read_err)?;
    while let Some(row) = rows.next().map_err(read_err)? {
        v.entry(&entry_from_row(row).map_err(read_err)??)?;
    }
    Ok(())
}

impl Store {
    /// Appends an event to the audit log in its own transaction (for events that change no
    /// stored state: `query.asked`, `result.read`, …). Returns the chained entry.
    pub fn append_audit(&mut self, event: AuditEvent) -> Result<Entry, StoreError> {
        let tx = self.write_tx()?;
        let entry = append(&tx, event)?;
        tx.commit()?;
        Ok(entry)
    }

    /// Appends `events` in order in one transaction (one commit, one fsync: for aggregated
    /// entries such as `api.access` counts). Returns how many were appended; none are when it
    /// fails.
    pub fn append_audit_batch(&mut self, events: Vec<AuditEvent>) -> Result<usize, StoreError> {
        let n = events.len();
        if n == 0 {
            return Ok(0);
        }
        let tx = self.write_tx()?;
        for event in events {
            append(&tx, event)?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Entries with `from_ms <= at_ms < to_ms` (either bound optional), in seq order.
    pub fn audit_entries(
        &self,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {ENTRY_COLUMNS} FROM audit_log WHERE at_ms >= ?1 AND at_ms < ?2 ORDER BY seq"
        ))?;
        let rows = stmt.query_map(
            [from_ms.unwrap_or(i64::MIN), to_ms.unwrap_or(i64::MAX)],
            entry_from_row,
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    /// The last entry, if any.
    pub fn audit_head(&self) -> Result<Option<Entry>, StoreError> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {ENTRY_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1"),
                [],
                entry_from_row,
            )
            .optional()?;
        Ok(row.transpose()?)
    }

    /// All stored checkpoints, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, head_hash, at_ms, node_key, signature FROM checkpoints ORDER BY id",
        )?;
        let rows = stmt.query_map([], checkpoint_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Signs the current head with the node key and stores the checkpoint. Before signing it
    /// verifies the entries since the previous checkpoint (anchored at that checkpoint), and
    /// refuses with [`StoreError::Audit`] if they do not verify. If the newest checkpoint already
    /// covers the head with this key, that one is returned.
    pub fn checkpoint(&mut self, key: &SigningKey) -> Result<Checkpoint, StoreError> {
        let node_key = hex::encode(key.verifying_key().as_bytes());
        let tx = self.write_tx()?;
        let last: Option<Checkpoint> = tx
            .query_row(
                "SELECT seq, head_hash, at_ms, node_key, signature FROM checkpoints ORDER BY id DESC LIMIT 1",
                [],
                checkpoint_from_row,
            )
            .optional()?;
        let mut v = Verifier::new(None);
        let from_seq = match &last {
            Some(cp) => {
                v.checkpoint(cp.clone())?;
                to_i64(cp.seq)?
            }
            None => 0,
        };
        verify_from(&tx, &mut v, from_seq)?;
        let report = v.finish()?;
        let head_seq = report
            .last_seq
            .ok_or_else(|| StoreError::NotFound("audit log is empty".into()))?;
        if let Some(cp) = last
            && cp.seq == head_seq
            && cp.node_key == node_key
        {
            return Ok(cp);
        }
        let cp = sign_checkpoint(key, head_seq, report.head_hash, now_ms());
        tx.execute(
            "INSERT INTO checkpoints (seq, head_hash, at_ms, node_key, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![to_i64(cp.seq)?, cp.head_hash, cp.at_unix_ms, cp.node_key, cp.signature],
        )?;
        tx.commit()?;
        Ok(cp)
    }

    /// Verifies the whole log and every stored checkpoint (signed by `node_key` when given)
    /// from a consistent snapshot. The error names the first entry that does not verify.
    pub fn verify_audit(
        &self,
        node_key: Option<&VerifyingKey>,
    ) -> Result<VerifyReport, VerifyError> {
        let tx = self.conn.unchecked_transaction().map_err(read_err)?;
        let mut v = Verifier::new(node_key).require_genesis();
        for cp in self
            .checkpoints()
            .map_err(|e| VerifyError::Read(e.to_string()))?
        {
            v.checkpoint(cp)?;
        }
        verify_from(&tx, &mut v, 0)?;
        v.finish()
    }

    /// Streams the entries with `from_ms <= at_ms < to_ms` and the checkpoints covering them to
    /// `writer`. Call [`Store::checkpoint`] first so the export ends with a signed head.
    pub fn export_audit<W: Write>(
        &self,
        writer: W,
        format: ExportFormat,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> Result<ExportSummary, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let mut cps: BTreeMap<u64, Vec<Checkpoint>> = BTreeMap::new();
        for cp in self.checkpoints()? {
            cps.entry(cp.seq).or_default().push(cp);
        }
        let io = |e| StoreError::io("writing the audit export", e);
        let mut ex = Exporter::new(writer, format).map_err(io)?;
        let mut stmt = tx.prepare(&format!(
            "SELECT {ENTRY_COLUMNS} FROM audit_log WHERE at_ms >= ?1 AND at_ms < ?2 ORDER BY seq"
        ))?;
        let mut rows = stmt.query([from_ms.unwrap_or(i64::MIN), to_ms.unwrap_or(i64::MAX)])?;
        while let Some(row) = rows.next()? {
            let entry = entry_from_row(row)??;
            ex.entry(&entry).map_err(io)?;
            for cp in cps.get(&entry.seq).into_iter().flatten() {
                ex.checkpoint(cp).map_err(io)?;
            }
        }
        ex.finish().map_err(io)
    }
}

//! Member sets: how an import fills, swaps in and deletes audiences without holding the
//! database write lock for longer than one short chunk (issue 11, defect 1).
//!
//! Each `(audience, id_kind)` has at most one `live` set (`member_sets.state`). An import first
//! collects its rows in a connection-private temporary table (no lock on the database), moves
//! them in digest order into a new `staging` set in transactions of [`CHUNK_ROWS`] rows, then
//! makes it `live` (and the old one `retired`) in one short transaction, so readers see the old
//! audience or the new one, never a mix. Retired sets and the staging sets of failed or killed imports are deleted in
//! chunks. Whoever fills or deletes sets holds a shared `flock` on `<db>-import.lock`; the
//! cleanup at [`crate::Store::open`] runs only when it can take that lock exclusively, i.e. when
//! no import or deletion is running in any process.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};

use crate::{Store, StoreError};

/// Rows moved or deleted per transaction: some milliseconds of write lock each.
pub(crate) const CHUNK_ROWS: usize = 10_000;

/// Least pause between two chunks of a move. A pause at least as long as the chunk held the
/// lock, and at least 25 ms, lets other writers in: SQLite's busy handler polls at intervals of
/// at most 25 ms during its first 128 ms, so it finds a free window that long.
const MIN_GAP: Duration = Duration::from_millis(25);

/// The set currently `live` for this audience and kind.
pub(crate) fn live_set(
    conn: &Connection,
    audience: &str,
    kind: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT set_id FROM member_sets WHERE audience = ?1 AND id_kind = ?2 AND state = 'live'",
            params![audience, kind],
            |r| r.get(0),
        )
        .optional()?)
}

fn lock_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-import.lock");
    PathBuf::from(p)
}

fn open_lock_file(db: &Path) -> Result<File, StoreError> {
    let path = lock_path(db);
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&path)
        .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))
}

impl Store {
    /// A chunk's write transaction (`BEGIN IMMEDIATE`), polling for the lock every millisecond
    /// up to the busy timeout. SQLite's own busy handler backs off to 100 ms sleeps, so a
    /// stream of the node's short writes would starve an import that waited with it.
    pub(crate) fn eager_write_tx(&self) -> Result<Transaction<'_>, StoreError> {
        let deadline = Instant::now() + self.busy_timeout;
        self.conn.busy_timeout(Duration::ZERO)?;
        let tx = loop {
            match Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate) {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == ErrorCode::DatabaseBusy && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                other => break other,
            }
        };
        self.conn.busy_timeout(self.busy_timeout)?;
        Ok(tx?)
    }

    /// Shared lock held while this connection fills or deletes member sets; released on drop.
    pub(crate) fn sets_lock_shared(&self) -> Result<File, StoreError> {
        let file = open_lock_file(&self.path)?;
        file.lock_shared()
            .map_err(|e| StoreError::io("locking the import lock file", e))?;
        Ok(file)
    }

    /// At open, best effort: deletes retired sets and staging sets left by a failed or killed
    /// import, if no import or deletion is running (the exclusive lock is free). Errors are
    /// ignored: the data is invisible to readers and the next open tries again.
    pub(crate) fn clean_dead_sets(&mut self) {
        let dead = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM member_sets WHERE state != 'live')",
            [],
            |r| r.get::<_, bool>(0),
        );
        if !matches!(dead, Ok(true)) {
            return;
        }
        let Ok(file) = open_lock_file(&self.path) else {
            return;
        };
        if file.try_lock().is_err() {
            return;
        }
        let _ = self.delete_dead_sets();
        self.truncate_wal();
    }

    /// Deletes every set that is not `live`, chunk by chunk. Only for the holder of the
    /// exclusive lock: otherwise a running import's staging set would go too.
    fn delete_dead_sets(&mut self) -> Result<(), StoreError> {
        self.delete_sets_where("state != 'live'")
    }

    /// Deletes the `retired` sets (replaced or purged audiences), chunk by chunk. Caller holds
    /// the shared lock, so that no open's cleanup does the same work meanwhile.
    pub(crate) fn delete_retired_sets(&mut self) -> Result<(), StoreError> {
        self.delete_sets_where("state = 'retired'")
    }

    fn delete_sets_where(&mut self, condition: &str) -> Result<(), StoreError> {
        let ids: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare(&format!("SELECT set_id FROM member_sets WHERE {condition}"))?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for id in ids {
            self.delete_set(id)?;
        }
        Ok(())
    }

    /// Registers a new, empty `staging` set (one short transaction).
    pub(crate) fn create_staging_set(
        &mut self,
        audience: &str,
        kind: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let tx = self.eager_write_tx()?;
        tx.execute(
            "INSERT INTO member_sets (audience, id_kind, state, created_at_ms) VALUES (?1, ?2, 'staging', ?3)",
            params![audience, kind, now_ms],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }

    /// Adds `count` to a staging set's member count; fails if the set is no longer staging.
    fn add_to_staging(conn: &Connection, set_id: i64, count: i64) -> Result<(), StoreError> {
        let n = conn.execute(
            "UPDATE member_sets SET members = members + ?2 WHERE set_id = ?1 AND state = 'staging'",
            params![set_id, count],
        )?;
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!(
                "the import's staging set {set_id} was removed while it ran"
            )))
        }
    }

    /// Moves the rows staged in `temp.import_rows` (see `import.rs`) into staging set `set_id`
    /// in digest order, [`CHUNK_ROWS`] per transaction. Sorted, each chunk appends at the end of
    /// the set's key range and writes only new pages (random order would rewrite most of the
    /// set's pages at every commit). Opted-out digests are skipped, checked inside each chunk's
    /// transaction, so an opt-out during the import is never undone by it. Returns the rows of
    /// the file (not `old`, copied members) moved and skipped: `(imported, suppressed)`.
    pub(crate) fn move_staged_rows(&mut self, set_id: i64) -> Result<(u64, u64), StoreError> {
        // Staging chunks need no fsync: the swap's FULL commit syncs the WAL, earlier frames
        // included, and an import lost to a power cut was never reported done.
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let result = self.move_chunks(set_id);
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        result
    }

    fn move_chunks(&mut self, set_id: i64) -> Result<(u64, u64), StoreError> {
        let mut last: Vec<u8> = Vec::new(); // sorts before every digest
        let (mut imported, mut suppressed) = (0u64, 0u64);
        loop {
            let tx = self.eager_write_tx()?;
            let held = Instant::now();
            let rows: Vec<(Vec<u8>, Option<String>, bool)> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT digest, attrs, old FROM temp.import_rows WHERE digest > ?1
                     ORDER BY digest LIMIT ?2",
                )?;
                stmt.query_map(params![last, CHUNK_ROWS as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?
            };
            let mut moved = 0i64;
            {
                let mut opted_out =
                    tx.prepare_cached("SELECT 1 FROM main.suppressed WHERE digest = ?1")?;
                let mut ins = tx.prepare_cached(
                    "INSERT INTO main.audience_members (set_id, digest, attrs) VALUES (?1, ?2, ?3)",
                )?;
                for (digest, attrs, old) in &rows {
                    if opted_out.exists([digest])? {
                        suppressed += u64::from(!old);
                    } else {
                        ins.execute(params![set_id, digest, attrs])?;
                        moved += 1;
                        imported += u64::from(!old);
                    }
                }
            }
            Self::add_to_staging(&tx, set_id, moved)?;
            tx.commit()?;
            let full = rows.len() == CHUNK_ROWS;
            match rows.into_iter().last() {
                Some((digest, _, _)) if full => last = digest,
                _ => return Ok((imported, suppressed)),
            }
            std::thread::sleep(held.elapsed().max(MIN_GAP));
        }
    }

    /// Deletes a set that is not `live`, [`CHUNK_ROWS`] rows per transaction, then its
    /// `member_sets` row. Refuses (with [`StoreError::Conflict`]) to touch a live set.
    pub(crate) fn delete_set(&mut self, set_id: i64) -> Result<(), StoreError> {
        loop {
            let tx = self.eager_write_tx()?;
            let state: Option<String> = tx
                .query_row(
                    "SELECT state FROM member_sets WHERE set_id = ?1",
                    [set_id],
                    |r| r.get(0),
                )
                .optional()?;
            match state.as_deref() {
                None => return Ok(()),
                Some("live") => {
                    return Err(StoreError::Conflict(format!(
                        "member set {set_id} is live; not deleted"
                    )));
                }
                Some(_) => {}
            }
            let boundary: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT digest FROM audience_members WHERE set_id = ?1 ORDER BY digest LIMIT 1 OFFSET ?2",
                    params![set_id, CHUNK_ROWS as i64 - 1],
                    |r| r.get(0),
                )
                .optional()?;
            match boundary {
                Some(b) => {
                    let n = tx.execute(
                        "DELETE FROM audience_members WHERE set_id = ?1 AND digest <= ?2",
                        params![set_id, b],
                    )?;
                    tx.execute(
                        "UPDATE member_sets SET members = max(members - ?2, 0) WHERE set_id = ?1",
                        params![set_id, n as i64],
                    )?;
                    tx.commit()?;
                }
                None => {
                    // The set's hash cache goes first (its fills reference the set).
                    let cached: bool = tx.query_row(
                        "SELECT EXISTS (SELECT 1 FROM hash_fills WHERE set_id = ?1)",
                        [set_id],
                        |r| r.get(0),
                    )?;
                    if cached {
                        drop(tx);
                        self.delete_hash_fills(set_id)?;
                        continue;
                    }
                    tx.execute("DELETE FROM audience_members WHERE set_id = ?1", [set_id])?;
                    tx.execute("DELETE FROM member_sets WHERE set_id = ?1", [set_id])?;
                    tx.commit()?;
                    return Ok(());
                }
            }
        }
    }
}

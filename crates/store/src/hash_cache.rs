//! The hash cache: each live member's `enc(H(x))` (`protocols/psi-ca-v1.md` §3.1), per member
//! set and hash domain, so runs decompress a stored point instead of hashing to the curve.
//!
//! A fill is a row of `hash_fills` (set, domain, complete flag) and its points in
//! `hash_points`. Points are written in chunks and the fill is marked complete only after a whole
//! pass over the set's members, so a fill cut short by a crash or an error is never read (it is
//! redone, rewriting the same points). Points go with their set ([`Store::delete_set`]) and with
//! an opted-out digest ([`Store::delete_digests`]); a point is only written while its member is
//! in the set, in the same transaction, so an opt-out during a fill leaves no point behind. The
//! points are public functions of digests the store already holds: nothing secret is cached.

use rusqlite::{OptionalExtension, Transaction, params};
use tandem_identity::IdKind;

use crate::member_sets::CHUNK_ROWS;
use crate::{Store, StoreError, now_ms};

/// Migration V9: the hash cache (issue 16, cached hashing). `hash_fills` names a (member set,
/// hash domain = SHA-256 of the protocol's `dst`) pair once, so the points, keyed by (fill,
/// digest), do not repeat the 32-byte domain.
pub(crate) const V9_HASH_CACHE: &str = r#"
CREATE TABLE hash_fills (
    fill_id         INTEGER PRIMARY KEY,
    set_id          INTEGER NOT NULL REFERENCES member_sets (set_id),
    domain          BLOB NOT NULL CHECK (length(domain) = 32),
    complete_at_ms  INTEGER,
    UNIQUE (set_id, domain)
) STRICT;
CREATE TABLE hash_points (
    fill_id INTEGER NOT NULL REFERENCES hash_fills (fill_id),
    digest  BLOB NOT NULL CHECK (length(digest) = 32),
    point   BLOB NOT NULL CHECK (length(point) = 32),
    PRIMARY KEY (fill_id, digest)
) WITHOUT ROWID, STRICT;
"#;

/// The complete fill of `set_id` for `domain`, if any.
pub(crate) fn complete_fill(
    tx: &Transaction<'_>,
    set_id: i64,
    domain: &[u8; 32],
) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .query_row(
            "SELECT fill_id FROM hash_fills
             WHERE set_id = ?1 AND domain = ?2 AND complete_at_ms IS NOT NULL",
            params![set_id, &domain[..]],
            |r| r.get(0),
        )
        .optional()?)
}

/// What [`Store::fill_hash_cache`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashFill {
    /// Members hashed and written by this call (0 if the cache was already complete).
    pub points: u64,
    /// True if the cache is complete for the set that was live when the call started.
    pub complete: bool,
}

impl Store {
    /// Fills the hash cache of an audience's live `id_kind` members for hash domain `domain`
    /// (`SHA-256(dst)`, `tandem_psi::hash_domain_id`), unless it is complete already: reads the
    /// members (opted-out digests skipped) in chunks of 10 000 in digest order, passes each
    /// chunk's digests to `hash` (which returns their `enc(H(x))` in order,
    /// `tandem_psi::hash_to_points`), writes the points in one short transaction per chunk, and
    /// marks the cache complete after the last. A fill cut short leaves it incomplete (ignored by
    /// [`Store::for_each_cached_member`]); the next call starts again. `complete` is false if
    /// the set was replaced meanwhile. Cost: one hash, compression and row (about 70 bytes on
    /// disk) per member. Errors: [`StoreError::NotFound`] without such members, [`StoreError::Invalid`]
    /// if `hash` returns the wrong number of points, and whatever `hash` returns.
    pub fn fill_hash_cache<E, H>(
        &mut self,
        audience: &str,
        id_kind: IdKind,
        domain: &[u8; 32],
        mut hash: H,
    ) -> Result<HashFill, E>
    where
        E: From<StoreError>,
        H: FnMut(&[[u8; 32]]) -> Result<Vec<[u8; 32]>, E>,
    {
        let kind = id_kind.as_str();
        let fill_id = {
            let tx = self.eager_write_tx()?;
            let set_id: i64 = tx
                .query_row(
                    "SELECT set_id FROM member_sets
                     WHERE audience = ?1 AND id_kind = ?2 AND state = 'live'",
                    params![audience, kind],
                    |r| r.get(0),
                )
                .optional()
                .map_err(StoreError::from)?
                .ok_or_else(|| {
                    StoreError::NotFound(format!("audience {audience:?} has no {kind} members"))
                })?;
            if complete_fill(&tx, set_id, domain)?.is_some() {
                return Ok(HashFill {
                    points: 0,
                    complete: true,
                });
            }
            tx.execute(
                "INSERT OR IGNORE INTO hash_fills (set_id, domain) VALUES (?1, ?2)",
                params![set_id, &domain[..]],
            )
            .map_err(StoreError::from)?;
            let fill_id: i64 = tx
                .query_row(
                    "SELECT fill_id FROM hash_fills WHERE set_id = ?1 AND domain = ?2",
                    params![set_id, &domain[..]],
                    |r| r.get(0),
                )
                .map_err(StoreError::from)?;
            tx.commit().map_err(StoreError::from)?;
            (fill_id, set_id)
        };
        let (fill_id, set_id) = fill_id;
        let mut after: Vec<u8> = Vec::new();
        let mut written = 0u64;
        loop {
            let digests: Vec<[u8; 32]> = {
                let mut stmt = self
                    .conn
                    .prepare_cached(
                        "SELECT m.digest FROM audience_members m
                         WHERE m.set_id = ?1 AND m.digest > ?2
                           AND NOT EXISTS (SELECT 1 FROM suppressed s WHERE s.digest = m.digest)
                         ORDER BY m.digest LIMIT ?3",
                    )
                    .map_err(StoreError::from)?;
                stmt.query_map(params![set_id, after, CHUNK_ROWS as i64], |r| r.get(0))
                    .map_err(StoreError::from)?
                    .collect::<Result<_, _>>()
                    .map_err(StoreError::from)?
            };
            let Some(last) = digests.last() else {
                break;
            };
            after = last.to_vec();
            let points = hash(&digests)?;
            if points.len() != digests.len() {
                return Err(StoreError::Invalid(format!(
                    "the hash gave {} points for {} digests",
                    points.len(),
                    digests.len()
                ))
                .into());
            }
            let tx = self.eager_write_tx()?;
            {
                // Only for a member still in the set, and a fill still there (an opt-out or the
                // set's deletion may have run since the chunk was read).
                let mut insert = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO hash_points (fill_id, digest, point)
                         SELECT ?1, ?2, ?3
                         WHERE EXISTS (SELECT 1 FROM hash_fills WHERE fill_id = ?1)
                           AND EXISTS (SELECT 1 FROM audience_members WHERE set_id = ?4 AND digest = ?2)",
                    )
                    .map_err(StoreError::from)?;
                for (d, p) in digests.iter().zip(&points) {
                    written += insert
                        .execute(params![fill_id, &d[..], &p[..], set_id])
                        .map_err(StoreError::from)? as u64;
                }
            }
            tx.commit().map_err(StoreError::from)?;
        }
        let tx = self.eager_write_tx()?;
        let complete = tx
            .execute(
                "UPDATE hash_fills SET complete_at_ms = ?2
                 WHERE fill_id = ?1
                   AND EXISTS (SELECT 1 FROM member_sets WHERE set_id = ?3 AND state = 'live')",
                params![fill_id, now_ms(), set_id],
            )
            .map_err(StoreError::from)?
            == 1;
        tx.commit().map_err(StoreError::from)?;
        Ok(HashFill {
            points: written,
            complete,
        })
    }

    /// Deletes the hash cache of `set_id` (every domain), [`CHUNK_ROWS`] points per
    /// transaction, then its fills.
    pub(crate) fn delete_hash_fills(&self, set_id: i64) -> Result<(), StoreError> {
        let fills: Vec<i64> = self
            .conn
            .prepare("SELECT fill_id FROM hash_fills WHERE set_id = ?1")?
            .query_map([set_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for fill_id in fills {
            loop {
                let tx = self.eager_write_tx()?;
                let boundary: Option<Vec<u8>> = tx
                    .query_row(
                        "SELECT digest FROM hash_points WHERE fill_id = ?1
                         ORDER BY digest LIMIT 1 OFFSET ?2",
                        params![fill_id, CHUNK_ROWS as i64 - 1],
                        |r| r.get(0),
                    )
                    .optional()?;
                let done = match boundary {
                    Some(b) => {
                        tx.execute(
                            "DELETE FROM hash_points WHERE fill_id = ?1 AND digest <= ?2",
                            params![fill_id, b],
                        )?;
                        false
                    }
                    None => {
                        tx.execute("DELETE FROM hash_points WHERE fill_id = ?1", [fill_id])?;
                        tx.execute("DELETE FROM hash_fills WHERE fill_id = ?1", [fill_id])?;
                        true
                    }
                };
                tx.commit()?;
                if done {
                    break;
                }
            }
        }
        Ok(())
    }
}

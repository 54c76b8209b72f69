//! Reading audiences, opt-out deletion and the audience version counter.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use tandem_audit::AuditEvent;
use tandem_identity::IdKind;

use crate::{Store, StoreError, audit_log, now_ms};

/// One member: identifier digest and the requested attribute value.
pub type Member = ([u8; 32], Option<String>);

/// Members per audience and identifier kind, for `tandem status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudienceSummary {
    /// Audience name.
    pub audience: String,
    /// Identifier kind.
    pub id_kind: IdKind,
    /// Current members (opted-out identifiers excluded).
    pub members: u64,
    /// Attribute columns available to [`Store::members`].
    pub attributes: Vec<String>,
    /// Time of the last import into this audience and kind.
    pub imported_at_ms: i64,
}

pub(crate) fn parse_attributes(json_text: &str) -> Result<BTreeSet<String>, StoreError> {
    serde_json::from_str(json_text)
        .map_err(|e| StoreError::Corrupt(format!("audiences.attributes_json: {e}")))
}

pub(crate) fn parse_value_bounds(
    json_text: &str,
) -> Result<std::collections::BTreeMap<String, u32>, StoreError> {
    serde_json::from_str(json_text)
        .map_err(|e| StoreError::Corrupt(format!("audiences.value_bounds_json: {e}")))
}

/// The members' values of one value column: the bound `U` they were imported under and each
/// member's value in `[0, U]` (0 for a member imported without the column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberValues {
    /// The bound the values were clamped to at import.
    pub bound: u32,
    /// Digest → value, opted-out digests excluded.
    pub values: std::collections::HashMap<[u8; 32], u32>,
}

/// Bumps the store-wide audience counter and the version of `audience`'s `id_kind` members
/// (kept as text, as in `audiences.id_kind`).
pub(crate) fn bump_version(
    conn: &Connection,
    audience: &str,
    id_kind: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'audience_version'",
        [],
    )?;
    conn.execute(
        "INSERT INTO audience_versions (audience, id_kind, version) VALUES (?1, ?2, 1)
         ON CONFLICT (audience, id_kind) DO UPDATE SET version = version + 1",
        params![audience, id_kind],
    )?;
    Ok(())
}

/// Bumps the version of every audience and identifier kind this store holds (see
/// [`bump_version`]): for requests whose effect on the members must not show in the versions
/// (an opt-out that may or may not match, a purge).
pub(crate) fn bump_all_versions(conn: &Connection) -> Result<(), StoreError> {
    let all: Vec<(String, String)> = conn
        .prepare("SELECT audience, id_kind FROM audiences ORDER BY audience, id_kind")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (audience, kind) in &all {
        bump_version(conn, audience, kind)?;
    }
    Ok(())
}

impl Store {
    /// Digests of an audience's members of `id_kind`, sorted, with the value of attribute
    /// `column` when asked for (`None` where the cell was empty). Opted-out digests are never
    /// returned. Fails with [`StoreError::NotFound`] if the audience has no such members or the
    /// column was not imported.
    pub fn members(
        &self,
        audience: &str,
        id_kind: IdKind,
        column: Option<&str>,
    ) -> Result<Vec<Member>, StoreError> {
        let columns: Vec<&str> = column.into_iter().collect();
        let mut out = Vec::new();
        self.for_each_member(audience, id_kind, &columns, |digest, values| {
            out.push((*digest, values.first().cloned().flatten()));
            Ok::<_, StoreError>(())
        })?;
        Ok(out)
    }

    /// Calls `f(digest, values)` for every member of an audience's `id_kind`, in digest order,
    /// with the values of attribute `columns` (in the order asked; `None` where a cell was
    /// empty), without holding the members in memory: a run at ten million members buckets them
    /// as they are read. Opted-out digests are skipped. One read transaction, so the rows come
    /// from one snapshot even if an import swaps a new set in meanwhile. Errors:
    /// [`StoreError::NotFound`] if the audience has no such members or a column was not imported,
    /// [`StoreError::Corrupt`] for a row whose attributes are not a JSON object, and whatever `f`
    /// returns (the walk stops at the first error).
    pub fn for_each_member<E, F>(
        &self,
        audience: &str,
        id_kind: IdKind,
        columns: &[&str],
        mut f: F,
    ) -> Result<(), E>
    where
        E: From<StoreError>,
        F: FnMut(&[u8; 32], &[Option<String>]) -> Result<(), E>,
    {
        self.walk_members(audience, id_kind, columns, None, |digest, _, values| {
            f(digest, values)
        })
        .map(|_| ())
    }

    /// [`Store::for_each_member`] with each member's cached hash to the curve in hash domain
    /// `domain` (`SHA-256(dst)`, see [`Store::fill_hash_cache`]): calls `f(digest, point,
    /// values)` for every member, in digest order, opted-out digests skipped exactly as there.
    /// Returns `Ok(false)` without calling `f` when the live set has no complete cache for
    /// `domain` (never filled, or a fill interrupted by a crash or an error), so the caller
    /// hashes from digests instead. Errors: those of [`Store::for_each_member`];
    /// [`StoreError::Corrupt`] for a member missing from a complete cache.
    pub fn for_each_cached_member<E, F>(
        &self,
        audience: &str,
        id_kind: IdKind,
        columns: &[&str],
        domain: &[u8; 32],
        mut f: F,
    ) -> Result<bool, E>
    where
        E: From<StoreError>,
        F: FnMut(&[u8; 32], &[u8; 32], &[Option<String>]) -> Result<(), E>,
    {
        self.walk_members(
            audience,
            id_kind,
            columns,
            Some(domain),
            |digest, point, values| match point {
                Some(point) => f(digest, point, values),
                None => Err(StoreError::Corrupt(
                    "the hash cache marked complete misses a member".into(),
                )
                .into()),
            },
        )
    }

    /// The walk of [`Store::for_each_member`], joined with the complete hash cache of `domain`
    /// when one is given (`Ok(false)` if there is none).
    fn walk_members<E, F>(
        &self,
        audience: &str,
        id_kind: IdKind,
        columns: &[&str],
        domain: Option<&[u8; 32]>,
        mut f: F,
    ) -> Result<bool, E>
    where
        E: From<StoreError>,
        F: FnMut(&[u8; 32], Option<&[u8; 32]>, &[Option<String>]) -> Result<(), E>,
    {
        let kind = id_kind.as_str();
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::from)?;
        let (attributes, set_id) = tx
            .query_row(
                "SELECT a.attributes_json, s.set_id FROM audiences a
                 JOIN member_sets s ON s.audience = a.audience AND s.id_kind = a.id_kind AND s.state = 'live'
                 WHERE a.audience = ?1 AND a.id_kind = ?2",
                params![audience, kind],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()
            .map_err(StoreError::from)?
            .ok_or_else(|| {
                StoreError::NotFound(format!("audience {audience:?} has no {kind} members"))
            })?;
        if !columns.is_empty() {
            let attributes = parse_attributes(&attributes)?;
            for c in columns {
                if !attributes.contains(*c) {
                    let have = attributes.into_iter().collect::<Vec<_>>().join(", ");
                    return Err(StoreError::NotFound(format!(
                        "attribute column {c:?} was not imported into audience {audience:?} (available: {have})"
                    ))
                    .into());
                }
            }
        }
        let fill_id = match domain {
            Some(domain) => match crate::hash_cache::complete_fill(&tx, set_id, domain)? {
                Some(id) => Some(id),
                None => return Ok(false),
            },
            None => None,
        };
        // Without a cache, no join (and a NULL point column).
        let sql = if fill_id.is_some() {
            "SELECT m.digest, m.attrs, p.point FROM audience_members m
             LEFT JOIN hash_points p ON p.fill_id = ?2 AND p.digest = m.digest
             WHERE m.set_id = ?1
               AND NOT EXISTS (SELECT 1 FROM suppressed s WHERE s.digest = m.digest)
             ORDER BY m.digest"
        } else {
            "SELECT m.digest, m.attrs, NULL FROM audience_members m
             WHERE m.set_id = ?1 AND ?2 IS NULL
               AND NOT EXISTS (SELECT 1 FROM suppressed s WHERE s.digest = m.digest)
             ORDER BY m.digest"
        };
        let mut stmt = tx.prepare(sql).map_err(StoreError::from)?;
        let mut rows = stmt
            .query(rusqlite::params![set_id, fill_id])
            .map_err(StoreError::from)?;
        let mut values = vec![None; columns.len()];
        while let Some(row) = rows.next().map_err(StoreError::from)? {
            let digest: [u8; 32] = row.get(0).map_err(StoreError::from)?;
            let point: Option<[u8; 32]> = row.get(2).map_err(StoreError::from)?;
            values.iter_mut().for_each(|v| *v = None);
            if !columns.is_empty()
                && let Some(text) = row.get::<_, Option<String>>(1).map_err(StoreError::from)?
            {
                let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(&text) else {
                    return Err(StoreError::Corrupt(
                        "audience_members.attrs is not a JSON object".into(),
                    )
                    .into());
                };
                for (value, c) in values.iter_mut().zip(columns) {
                    if let Some(Value::String(s)) = map.remove(*c) {
                        *value = Some(s);
                    }
                }
            }
            f(&digest, point.as_ref(), &values)?;
        }
        Ok(true)
    }

    /// The values of value column `column` of an audience's members of `id_kind`
    /// (`protocols/psi-sum-v1.md` §4.1). Fails with [`StoreError::NotFound`] if the audience has
    /// no such members or the column was not imported as a value column.
    pub fn member_values(
        &self,
        audience: &str,
        id_kind: IdKind,
        column: &str,
    ) -> Result<MemberValues, StoreError> {
        let kind = id_kind.as_str();
        let tx = self.conn.unchecked_transaction()?;
        let (bounds, set_id) = tx
            .query_row(
                "SELECT a.value_bounds_json, s.set_id FROM audiences a
                 JOIN member_sets s ON s.audience = a.audience AND s.id_kind = a.id_kind AND s.state = 'live'
                 WHERE a.audience = ?1 AND a.id_kind = ?2",
                params![audience, kind],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()?
            .ok_or_else(|| {
                StoreError::NotFound(format!("audience {audience:?} has no {kind} members"))
            })?;
        let bounds = parse_value_bounds(&bounds)?;
        let bound = *bounds.get(column).ok_or_else(|| {
            let have = bounds.keys().cloned().collect::<Vec<_>>().join(", ");
            StoreError::NotFound(format!(
                "value column {column:?} was not imported into audience {audience:?} \
                 (value columns: {have}); import it with --value {column}"
            ))
        })?;
        let mut stmt = tx.prepare(
            "SELECT m.digest, m.attrs FROM audience_members m
             WHERE m.set_id = ?1
               AND NOT EXISTS (SELECT 1 FROM suppressed s WHERE s.digest = m.digest)",
        )?;
        let mut rows = stmt.query([set_id])?;
        let mut values = std::collections::HashMap::new();
        while let Some(row) = rows.next()? {
            let digest: [u8; 32] = row.get(0)?;
            let value = match row.get::<_, Option<String>>(1)? {
                None => 0,
                Some(text) => match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(map)) => match map.get(column) {
                        None | Some(Value::Null) => 0,
                        Some(v) => v
                            .as_u64()
                            .and_then(|v| u32::try_from(v).ok())
                            .filter(|&v| v <= bound)
                            .ok_or_else(|| {
                                StoreError::Corrupt(format!(
                                    "audience_members.attrs: value {v} of {column:?} is not in [0, {bound}]"
                                ))
                            })?,
                    },
                    _ => {
                        return Err(StoreError::Corrupt(
                            "audience_members.attrs is not a JSON object".into(),
                        ));
                    }
                },
            };
            values.insert(digest, value);
        }
        Ok(MemberValues { bound, values })
    }

    /// Member counts per audience and identifier kind.
    pub fn audience_summary(&self) -> Result<Vec<AudienceSummary>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT a.audience, a.id_kind, a.attributes_json, a.imported_at_ms, coalesce(s.members, 0)
             FROM audiences a
             LEFT JOIN member_sets s ON s.audience = a.audience AND s.id_kind = a.id_kind AND s.state = 'live'
             ORDER BY a.audience, a.id_kind",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let kind: String = r.get(1)?;
            out.push(AudienceSummary {
                audience: r.get(0)?,
                id_kind: kind
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("audiences.id_kind: {e}")))?,
                attributes: parse_attributes(&r.get::<_, String>(2)?)?
                    .into_iter()
                    .collect(),
                imported_at_ms: r.get(3)?,
                members: r.get::<_, i64>(4)? as u64,
            });
        }
        Ok(out)
    }

    /// Opt-out: deletes these digests from every audience and adds them to the suppression
    /// list, so later imports drop them too. Returns the number of member rows deleted.
    /// Bumps every audience's version whether or not a digest matched (a version bumped only
    /// on a match would reveal membership to a peer). Audited as `optout.applied` (counts
    /// only).
    pub fn delete_digests(&mut self, digests: &[[u8; 32]], actor: &str) -> Result<u64, StoreError> {
        let now = now_ms();
        let tx = self.write_tx()?;
        let (mut deleted, mut newly_suppressed) = (0u64, 0u64);
        {
            // Live sets and the staging sets of running imports (whose chunks skip suppressed
            // digests from now on): the opt-out reaches whichever set wins.
            let mut sets = tx.prepare(
                "SELECT set_id, state = 'live' FROM member_sets WHERE state IN ('live', 'staging')",
            )?;
            let sets: Vec<(i64, bool)> = sets
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let mut del =
                tx.prepare("DELETE FROM audience_members WHERE set_id = ?1 AND digest = ?2")?;
            // The digest's cached hash to the curve goes with it (every fill of the set).
            let mut uncache = tx.prepare(
                "DELETE FROM hash_points WHERE digest = ?2
                 AND fill_id IN (SELECT fill_id FROM hash_fills WHERE set_id = ?1)",
            )?;
            let mut count = tx.prepare(
                "UPDATE member_sets SET members = max(members - 1, 0) WHERE set_id = ?1",
            )?;
            let mut sup = tx.prepare(
                "INSERT OR IGNORE INTO suppressed (digest, added_at_ms) VALUES (?1, ?2)",
            )?;
            for d in digests {
                for &(set_id, live) in &sets {
                    uncache.execute(params![set_id, d])?;
                    if del.execute(params![set_id, d])? > 0 {
                        count.execute([set_id])?;
                        deleted += u64::from(live);
                    }
                }
                newly_suppressed += sup.execute(params![d, now])? as u64;
            }
        }
        // Every audience's version moves on every opt-out request, whether or not a digest
        // matched: a version that moved only on a match would tell a peer (through the signed,
        // uncharged audience-version check) whether the identifier was a member.
        bump_all_versions(&tx)?;
        audit_log::append(
            &tx,
            AuditEvent::now(
                actor,
                "optout.applied",
                json!({"requested": digests.len(), "deleted_members": deleted, "newly_suppressed": newly_suppressed}),
            ),
        )?;
        tx.commit()?;
        self.truncate_wal();
        Ok(deleted)
    }

    /// Version of `audience`'s `id_kind` members: a counter bumped by every import of that
    /// kind and by every opt-out request and purge, whether or not it removed a member (0 if
    /// never imported), so it tells a peer when data may have changed, never who changed. A responder signs it into
    /// its answer; a querier's cached answer is reused only while it is unchanged.
    pub fn members_version(&self, audience: &str, id_kind: IdKind) -> Result<u64, StoreError> {
        let v: Option<i64> = self
            .conn
            .query_row(
                "SELECT version FROM audience_versions WHERE audience = ?1 AND id_kind = ?2",
                params![audience, id_kind.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(v.unwrap_or(0) as u64)
    }

    /// Counter bumped by every import, opt-out deletion and purge that changes audience data;
    /// include it in query fingerprints so cached results are reused only on unchanged data.
    pub fn audience_version(&self) -> Result<u64, StoreError> {
        let v: i64 = self.conn.query_row(
            "SELECT value FROM meta WHERE key = 'audience_version'",
            [],
            |r| r.get(0),
        )?;
        Ok(v as u64)
    }
}

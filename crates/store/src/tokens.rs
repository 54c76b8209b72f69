//! API tokens with roles; only the SHA-256 of each secret is stored.

use rusqlite::{OptionalExtension, params};
use serde_json::json;
use sha2::{Digest, Sha256};
use tandem_audit::AuditEvent;

use crate::{Store, StoreError, audit_log, now_ms};

const ROLES: [&str; 3] = ["admin", "analyst", "auditor"];

/// Prefix of every token secret (helps secret scanners and humans recognise one).
pub const TOKEN_PREFIX: &str = "tdm_";

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Token name.
    pub name: String,
    /// `admin`, `analyst` or `auditor`.
    pub role: String,
}

impl Principal {
    /// The actor string for audit entries: `token:<name>(<role>)`.
    pub fn actor(&self) -> String {
        format!("token:{}({})", self.name, self.role)
    }
}

/// A token as listed (never the secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// Token name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Creation time.
    pub created_at_ms: i64,
    /// Who created it.
    pub created_by: String,
    /// Revocation time, if revoked.
    pub revoked_at_ms: Option<i64>,
}

fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl Store {
    /// Creates a token and returns its secret — the only time it is available. Names are
    /// 1–64 characters of `A–Z a–z 0–9 . _ -`; a name can be reused only after revocation.
    /// Audited as `token.created`.
    pub fn create_token(
        &mut self,
        name: &str,
        role: &str,
        actor: &str,
    ) -> Result<String, StoreError> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(StoreError::Invalid(format!(
                "token name {name:?}: use 1-64 characters of A-Z a-z 0-9 . _ -"
            )));
        }
        if !ROLES.contains(&role) {
            return Err(StoreError::Invalid(format!(
                "role {role:?}; expected admin, analyst or auditor"
            )));
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| {
            StoreError::io(
                "reading OS randomness",
                std::io::Error::other(e.to_string()),
            )
        })?;
        let secret = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
        let tx = self.write_tx()?;
        let active = tx
            .query_row(
                "SELECT 1 FROM tokens WHERE name = ?1 AND revoked_at_ms IS NULL",
                [name],
                |_| Ok(()),
            )
            .optional()?;
        if active.is_some() {
            return Err(StoreError::Conflict(format!(
                "token {name:?} exists; revoke it first"
            )));
        }
        tx.execute(
            "INSERT INTO tokens (name, role, secret_sha256, created_at_ms, created_by) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, secret_sha256 = excluded.secret_sha256,
                created_at_ms = excluded.created_at_ms, created_by = excluded.created_by, revoked_at_ms = NULL",
            params![name, role, secret_hash(&secret), now_ms(), actor],
        )?;
        audit_log::append(
            &tx,
            AuditEvent::now(actor, "token.created", json!({"name": name, "role": role})),
        )?;
        tx.commit()?;
        Ok(secret)
    }

    /// The principal holding this secret, unless unknown or revoked.
    pub fn authenticate(&self, secret: &str) -> Result<Option<Principal>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT name, role FROM tokens WHERE secret_sha256 = ?1 AND revoked_at_ms IS NULL",
            )?
            .query_row([secret_hash(secret)], |r| {
                Ok(Principal {
                    name: r.get(0)?,
                    role: r.get(1)?,
                })
            })
            .optional()?)
    }

    /// Revokes an active token. Audited as `token.revoked`.
    pub fn revoke_token(&mut self, name: &str, actor: &str) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        let n = tx.execute(
            "UPDATE tokens SET revoked_at_ms = ?2 WHERE name = ?1 AND revoked_at_ms IS NULL",
            params![name, now_ms()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("active token {name:?}")));
        }
        audit_log::append(
            &tx,
            AuditEvent::now(actor, "token.revoked", json!({"name": name})),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// All tokens, revoked ones included, by name.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT name, role, created_at_ms, created_by, revoked_at_ms FROM tokens ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(TokenInfo {
                name: r.get(0)?,
                role: r.get(1)?,
                created_at_ms: r.get(2)?,
                created_by: r.get(3)?,
                revoked_at_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

//! The store's error type.

use std::path::PathBuf;

use tandem_audit::VerifyError;

/// Everything a [`crate::Store`] call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A CSV import was rejected; nothing was imported.
    #[error("{}: line {line}{}: {reason} (nothing was imported)", file.display(), column.as_ref().map(|c| format!(", column {c:?}")).unwrap_or_default())]
    Import {
        /// File being imported.
        file: PathBuf,
        /// 1-based line of the offending record (the header is line 1; 0 if the file could not be read at all).
        line: u64,
        /// Column concerned, when the problem is in one column.
        column: Option<String>,
        /// What is wrong; never contains the identifier itself.
        reason: String,
    },
    /// The run would break the ledger's admission rule (`Σδ ≤ cap_δ/2` and `Σε ≤ cap_ε` or
    /// `Σρ ≤ cap_ρ`) in its agreement or in a budget account it shares with other agreements;
    /// nothing was charged.
    #[error("privacy budget exceeded{}: {what} spent {spent} + this query {cost} > {}{cap}{}",
        account.as_ref().map(|a| if a == crate::NODE_ACCOUNT { " under this node's node-wide cap (all agreements and counterparties; config `[limits.node_budget]`)".to_owned() } else { format!(" in the budget account {a} (shared by every agreement with this partner on this join key)") }).unwrap_or_default(),
        if *what == "delta" { "half the delta cap " } else { "cap " },
        zcdp.as_ref().map(|z| format!("; the zCDP route is exhausted too: {z}")).unwrap_or_default())]
    BudgetExceeded {
        /// Already spent (reserved or consumed) in the scope that refused.
        spent: f64,
        /// Cost of the refused run.
        cost: f64,
        /// The cap passed: the ε cap, or for `"delta"` half the δ cap (the runs' share).
        cap: f64,
        /// `"epsilon"` or `"delta"`.
        what: &'static str,
        /// With `"epsilon"`, when the run offered a ρ cap: how the zCDP route refuses as well
        /// (e.g. `rho spent 1.2 + this query 0.5 > cap 1.47`).
        zcdp: Option<String>,
        /// The budget account that refused (`pair:<key>:<key>/<join key>`), or `None` when the
        /// agreement's own charges did.
        account: Option<String>,
    },
    /// The run id was used before (by any role, under any agreement).
    #[error("run id {run_id:?} was already used; replay refused")]
    Replay {
        /// The replayed id.
        run_id: String,
    },
    /// Runs need an agreement stored with status `active`.
    #[error("agreement {id:?} is not active ({})", status.as_deref().unwrap_or("not stored on this node"))]
    AgreementNotActive {
        /// Agreement named by the run.
        id: String,
        /// Its status, if stored.
        status: Option<String>,
    },
    /// The named object does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The change conflicts with the current state (e.g. finishing a run that already ended).
    #[error("{0}")]
    Conflict(String),
    /// An argument is malformed.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// Stored data does not have the expected shape.
    #[error("database content is inconsistent: {0}")]
    Corrupt(String),
    /// The audit log does not verify.
    #[error("audit log does not verify: {0}")]
    Audit(#[from] VerifyError),
    /// SQLite failed (after waiting up to the busy timeout for locks).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file or writer failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// True when SQLite gave up waiting for a lock (`SQLITE_BUSY` / `SQLITE_LOCKED`) after the
    /// connection's busy timeout: the operation did nothing and may be retried.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }
}

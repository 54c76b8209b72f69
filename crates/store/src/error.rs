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
    /// The run would take the agreement's privacy budget past its cap under basic composition
    /// and, if the zCDP route was available, under that too; nothing was charged. The numbers
    /// are the basic route's.
    #[error("privacy budget exceeded: {what} spent {spent} + this query {cost} > cap {cap}{}", zcdp.as_ref().map(|z| format!("; the zCDP route is exhausted too: {z}")).unwrap_or_default())]
    BudgetExceeded {
        /// Already spent (reserved or consumed) under the agreement.
        spent: f64,
        /// Cost of the refused run.
        cost: f64,
        /// The agreement's cap.
        cap: f64,
        /// `"epsilon"` or `"delta"`.
        what: &'static str,
        /// When the run offered a ρ cap: why the zCDP route refuses as well (e.g.
        /// `rho spent 1.2 + this query 0.5 > cap 1.47`, or δ over half the δ cap).
        zcdp: Option<String>,
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
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }
}

//! `tandem-store`: the node's state in one SQLite file (`<dir>/tandem.sqlite`).
//!
//! Audiences hold only SHA-256 digests of normalised identifiers (see `tandem-identity`);
//! agreements, runs, the write-ahead privacy-budget ledger, API tokens and the hash-chained audit
//! log (`tandem-audit`, `protocols/audit-log-v1.md`) live beside them. Every state change is
//! written together with its audit entry in one `BEGIN IMMEDIATE` transaction, so a crash leaves
//! state and log consistent and concurrent writers (threads or processes) are serialised.
//! Long work never holds the write lock for long: an import is staged and moved in chunks and
//! swapped in by one short transaction (`member_sets.rs`), so readers (WAL) and the node's
//! short writes never wait on it.
//!
//! A [`Store`] is one SQLite connection: cheap to open, `Send` but not `Sync`. Open one per
//! blocking task.

#![forbid(unsafe_code)]

mod account;
mod agreements;
mod audience;
mod audit_log;
mod csv_source;
mod derive;
mod error;
mod hash_cache;
mod import;
mod ledger;
mod member_sets;
mod models;
mod purge;
mod results;
mod schema;
mod tokens;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, Transaction, TransactionBehavior};

pub use account::SharedBudget;
pub use agreements::StoredAgreement;
pub use audience::{AudienceSummary, Member, MemberValues};
pub use csv_source::{TextEncoding, parse_delimiter};
pub use derive::Derive;
pub use error::StoreError;
pub use hash_cache::HashFill;
pub use import::{
    AttributeValues, ImportOptions, ImportReport, ValueColumnReport, ValueSpec, parse_value,
};
pub use ledger::{BudgetStatus, CachedResult, NODE_ACCOUNT, NewRun, NodeCap, RunRecord};
pub use models::{NewModel, StoredModel};
pub use purge::PurgeReport;
pub use results::{NewResult, StoredResult};
pub use schema::{BUSY_TIMEOUT, SCHEMA_VERSION};
pub use tandem_audit::{
    AuditEvent, Checkpoint, Entry, ExportFormat, ExportSummary, VerifyError, VerifyReport,
};
pub use tokens::{Principal, TOKEN_PREFIX, TokenInfo};

/// File name of the database inside a node directory.
pub const DB_FILE_NAME: &str = "tandem.sqlite";

/// The node's store: one SQLite connection.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The connection's busy timeout (see [`Store::set_busy_timeout`]).
    busy_timeout: std::time::Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating and migrating if needed) the store at `path`. If `path` is an existing
    /// directory, the database is `path/tandem.sqlite`. A new file is created with mode 0600.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let mut path = path.as_ref().to_path_buf();
        if path.is_dir() {
            path.push(DB_FILE_NAME);
        }
        create_private(&path)?;
        let mut conn = Connection::open(&path)?;
        schema::configure(&conn)?;
        schema::migrate(&mut conn)?;
        let mut store = Store {
            conn,
            path,
            busy_timeout: BUSY_TIMEOUT,
        };
        store.clean_dead_sets();
        Ok(store)
    }

    /// How long this connection waits for another writer before failing with "database is
    /// locked" (default [`BUSY_TIMEOUT`]). Imports hold the write lock only per chunk of a few
    /// thousand rows, so a short timeout suffices for the node's own writes.
    pub fn set_busy_timeout(&mut self, timeout: std::time::Duration) -> Result<(), StoreError> {
        self.conn.busy_timeout(timeout)?;
        self.busy_timeout = timeout;
        Ok(())
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts a write transaction holding the database write lock (`BEGIN IMMEDIATE`).
    fn write_tx(&mut self) -> Result<Transaction<'_>, StoreError> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// Best effort: moves the WAL into the database and truncates it, so that overwritten
    /// (deleted) pages do not linger in the WAL file. Does not wait: a truncating checkpoint
    /// holds the write lock until every reader is done, which would stall the node's writers.
    fn truncate_wal(&self) {
        if self.conn.busy_timeout(std::time::Duration::ZERO).is_ok() {
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        let _ = self.conn.busy_timeout(self.busy_timeout);
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::io(format!("creating {}", path.display()), e)),
    }
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    tandem_audit::now_unix_ms()
}

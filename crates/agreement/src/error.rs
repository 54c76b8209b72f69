//! Errors of agreement parsing, validation, signing and use.

/// Why an agreement cannot be parsed, signed, or acted under.
#[derive(Debug, thiserror::Error)]
pub enum AgreementError {
    /// The terms break one or more rules; the text lists every problem found.
    #[error("invalid agreement: {0}")]
    Invalid(String),
    /// A signature does not verify under the party's `signing_key`.
    #[error("the signature of {party} does not verify")]
    BadSignature {
        /// The party whose signature failed.
        party: String,
    },
    /// A party has not signed.
    #[error("{party} has not signed the agreement")]
    NotSigned {
        /// The party whose signature is missing.
        party: String,
    },
    /// The agreement is past its `expires_at`.
    #[error("the agreement expired at {expires_at}")]
    Expired {
        /// The `expires_at` of the terms, as written.
        expires_at: String,
    },
    /// No party of that name.
    #[error("{0} is not a party to the agreement")]
    UnknownParty(String),
    /// The party has no such group-by (or value) column in the agreement. The message lists
    /// the columns the agreement does give the party (public: they are in the signed terms).
    #[error(
        "party {party} has no column {column:?} in the agreement; {}",
        known_columns(known)
    )]
    UnknownColumn {
        /// The party.
        party: String,
        /// The column asked for.
        column: String,
        /// The party's columns of that kind in the agreement, in order.
        known: Vec<String>,
    },
    /// The text (TOML, hex, timestamp) does not parse.
    #[error("agreement does not parse: {0}")]
    Parse(String),
}

/// "its columns are: a, b" or "it lists none", for [`AgreementError::UnknownColumn`].
fn known_columns(known: &[String]) -> String {
    if known.is_empty() {
        "the agreement lists none for it".to_owned()
    } else {
        format!("its columns are: {}", known.join(", "))
    }
}

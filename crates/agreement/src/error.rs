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
    /// The party has no such group-by column in the agreement.
    #[error("party {party} has no column {column:?} in the agreement")]
    UnknownColumn {
        /// The party.
        party: String,
        /// The column asked for.
        column: String,
    },
    /// The text (TOML, hex, timestamp) does not parse.
    #[error("agreement does not parse: {0}")]
    Parse(String),
}

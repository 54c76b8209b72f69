//! Typed errors of the protocol.

use tandem_dp::DpError;

/// Which part of a message a faulty point was in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointRole {
    /// The holder's public key `K` (or `K₂` for squares).
    Key,
    /// Ciphertext `index` of the values message.
    Ciphertext(usize),
    /// The ciphertext of cell `c` in a decryption request.
    Request(usize),
    /// The point of cell `c` in a decryption reply.
    Reply(usize),
}

/// Everything that can go wrong in `psi-sum-v1`: bad local inputs, malformed or hostile
/// messages, messages bound to another session, noise failures and out-of-range decryptions.
#[derive(Debug, thiserror::Error)]
pub enum SumError {
    /// The run parameters are unusable (the text says which one and why).
    #[error("invalid run parameters: {0}")]
    InvalidParams(String),
    /// A local value exceeds the bound `U` (values must be clamped at import).
    #[error("value at index {index} is {value}, above the bound {bound}")]
    ValueAboveBound {
        /// Position of the value (flat index of the responder point).
        index: usize,
        /// The value.
        value: u32,
        /// `U`.
        bound: u32,
    },
    /// The querier's cell lists are not `cells` lists of distinct indices below the number of
    /// ciphertexts.
    #[error("invalid cell lists: {0}")]
    InvalidCells(String),
    /// The message ends before the data it declares.
    #[error("message truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the next field (or the declared contents) needs.
        needed: u64,
        /// Bytes left in the message.
        available: usize,
    },
    /// Bytes follow the declared contents.
    #[error("{extra} unexpected trailing bytes after the declared contents")]
    TrailingBytes {
        /// Number of extra bytes.
        extra: usize,
    },
    /// The message declares more ciphertexts than the receiver accepts.
    #[error("message declares {declared} ciphertexts, limit is {limit}")]
    TooLarge {
        /// Declared number.
        declared: u64,
        /// The receiver's [`crate::Limits::max_points`].
        limit: usize,
    },
    /// The values message does not hold one ciphertext per responder point of the PSI reply.
    #[error("expected {expected} ciphertexts, got {found}")]
    WrongCount {
        /// Number of responder points in the PSI reply.
        expected: u64,
        /// Declared number.
        found: u64,
    },
    /// The message does not start with the `psi-sum-v1` magic bytes.
    #[error("not a psi-sum message (bad magic)")]
    BadMagic,
    /// The message uses a protocol version this implementation does not speak.
    #[error("unsupported psi-sum version {0}")]
    UnsupportedVersion(u8),
    /// The message-type byte is not a known type.
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    /// The message is of the wrong type for this step.
    #[error("expected a {expected:?} message, got {found:?}")]
    WrongMessageType {
        /// Type this step expects.
        expected: crate::MessageType,
        /// Type found in the header.
        found: crate::MessageType,
    },
    /// The header is malformed in a way not covered by the other variants.
    #[error("malformed header: {0}")]
    MalformedHeader(&'static str),
    /// The header (or the digest of the previous message) belongs to another agreement, run,
    /// PSI reply or parameter set.
    #[error("message is bound to a different session: {field} differs")]
    WrongBinding {
        /// The first field that differs.
        field: &'static str,
    },
    /// A point does not decode as a canonical Ristretto255 encoding.
    #[error("invalid point encoding in {role:?}")]
    InvalidPoint {
        /// Where the point is.
        role: PointRole,
    },
    /// A point is the identity element.
    #[error("identity point in {role:?}")]
    IdentityPoint {
        /// Where the point is.
        role: PointRole,
    },
    /// A decrypted cell is not in `[0, bound]`: the holder deviated, or an honest noised sum
    /// exceeds the querier's [`crate::Limits::max_plaintext`]. Found after at most
    /// `bound / 2^baby_bits + 1` giant steps.
    #[error("cell {cell}: decryption is not in [0, {bound}]")]
    OutOfRange {
        /// The cell.
        cell: usize,
        /// Its bound.
        bound: u64,
    },
    /// The noise source broke its contract (wrong number of draws or a draw above `2T`).
    #[error("noise source returned {found} draws (wanted {wanted}) or a draw above {max}")]
    BadNoiseDraws {
        /// Number of draws requested.
        wanted: usize,
        /// Number of draws returned.
        found: usize,
        /// Largest allowed draw, `2T`.
        max: u64,
    },
    /// The DP layer failed.
    #[error("noise: {0}")]
    Noise(#[from] DpError),
}

//! Typed errors of `psi-ca-v2` (spec §9). A peer is told only an opaque code; the variant is
//! for the local log.

use tandem_dp::DpError;

/// Everything that can go wrong in `psi-ca-v2`.
#[derive(Debug, thiserror::Error)]
pub enum PsiV2Error {
    /// The run parameters are unusable (the text says which one and why).
    #[error("invalid run parameters: {0}")]
    InvalidParams(String),
    /// The number of local item buckets differs from the agreed number of buckets.
    #[error("expected {expected} buckets of items, got {found}")]
    WrongBucketCount {
        /// Agreed number of buckets.
        expected: u32,
        /// Number of buckets supplied.
        found: usize,
    },
    /// A local digest occurs twice (in any bucket).
    #[error("duplicate item digest at bucket {bucket}, index {index}")]
    DuplicateItem {
        /// Bucket of the second occurrence.
        bucket: u32,
        /// Index inside that bucket.
        index: usize,
    },
    /// The message ends before the data it declares.
    #[error("message truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the next field needs.
        needed: u64,
        /// Bytes left.
        available: usize,
    },
    /// Bytes follow the declared contents.
    #[error("{extra} unexpected trailing bytes")]
    TrailingBytes {
        /// Number of extra bytes.
        extra: usize,
    },
    /// The message declares more points than the receiver accepts.
    #[error("message declares {declared} points, limit is {limit}")]
    TooLarge {
        /// Declared number of points.
        declared: u64,
        /// The receiver's [`crate::Limits::max_points`].
        limit: usize,
    },
    /// Not a `psi-ca-v2` message (magic or version).
    #[error("not a psi-ca-v2 message (bad magic or version)")]
    BadMagic,
    /// The message is of the wrong type for this step.
    #[error("expected message type {expected}, got {found}")]
    WrongMessageType {
        /// Type byte this step expects.
        expected: u8,
        /// Type byte found.
        found: u8,
    },
    /// The header is malformed (not UTF-8 join key).
    #[error("malformed header: {0}")]
    MalformedHeader(&'static str),
    /// The header or a message digest belongs to another session.
    #[error("message is bound to a different session: {field} differs")]
    WrongBinding {
        /// The first field that differs.
        field: &'static str,
    },
    /// A bucket is too small to hold the public number of seed slots it must hold.
    #[error("bucket {bucket}: at least {minimum} points expected, got {found}")]
    TooFewPoints {
        /// Bucket.
        bucket: u32,
        /// Public minimum.
        minimum: u64,
        /// Declared count.
        found: u64,
    },
    /// A point does not decode as a canonical Ristretto255 encoding.
    #[error("invalid point encoding at bucket {bucket}, index {index}")]
    InvalidPoint {
        /// Bucket of the point.
        bucket: u32,
        /// Index inside the bucket (for a proof: the byte offset of the field).
        index: usize,
    },
    /// A point is the identity element.
    #[error("identity point at bucket {bucket}, index {index}")]
    IdentityPoint {
        /// Bucket of the point.
        bucket: u32,
        /// Index inside the bucket.
        index: usize,
    },
    /// A point (or its truncated re-blinding) occurs twice in the message.
    #[error("duplicate point at bucket {bucket}, index {index}")]
    DuplicatePoint {
        /// Bucket of the later occurrence.
        bucket: u32,
        /// Index inside the bucket.
        index: usize,
    },
    /// A scalar of a proof is not canonical (not below ℓ).
    #[error("non-canonical scalar in the proof of bucket {bucket}")]
    InvalidScalar {
        /// Responder bucket of the proof.
        bucket: u32,
    },
    /// A shuffle-exponentiation proof does not verify.
    #[error("the shuffle proof of responder bucket {bucket} does not verify")]
    BadProof {
        /// Responder bucket of the proof.
        bucket: u32,
    },
    /// A noise source broke its contract (wrong number of draws or a draw out of range).
    #[error("noise source returned a wrong number of draws or a draw out of range")]
    BadNoiseDraws,
    /// The DP layer failed.
    #[error("noise: {0}")]
    Noise(#[from] DpError),
}

impl PsiV2Error {
    /// The opaque code a peer may be told (spec §9): the same for every failure that could
    /// depend on the sender's data or on the receiver's secrets.
    pub fn peer_code(&self) -> &'static str {
        match self {
            PsiV2Error::Truncated { .. }
            | PsiV2Error::TrailingBytes { .. }
            | PsiV2Error::TooLarge { .. }
            | PsiV2Error::BadMagic
            | PsiV2Error::WrongMessageType { .. }
            | PsiV2Error::MalformedHeader(_)
            | PsiV2Error::WrongBinding { .. }
            | PsiV2Error::TooFewPoints { .. } => "malformed",
            _ => "refused",
        }
    }
}

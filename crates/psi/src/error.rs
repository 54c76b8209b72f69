//! Typed errors of the protocol.

use tandem_dp::DpError;

/// Everything that can go wrong in `psi-ca-v1`: bad local inputs, malformed or hostile messages,
/// messages bound to another session, and noise failures.
#[derive(Debug, thiserror::Error)]
pub enum PsiError {
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
    /// A local digest occurs twice (in any bucket); each customer may be counted once.
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
    /// The message declares more points than the receiver accepts.
    #[error("message declares {declared} points, limit is {limit}")]
    TooLarge {
        /// Declared number of points (and values).
        declared: u64,
        /// The receiver's [`crate::Limits::max_points`].
        limit: usize,
    },
    /// The reply to a valid query would exceed the responder's [`crate::Limits::max_points`]
    /// because of the responder's own data. Carries no number: the reply's size depends on the
    /// responder's audience (a node reports it only after charging the run).
    #[error("the reply would exceed the responder's message limit")]
    ReplyTooLarge,
    /// The message does not start with the `psi-ca-v1` magic bytes.
    #[error("not a psi-ca message (bad magic)")]
    BadMagic,
    /// The message uses a protocol version this implementation does not speak.
    #[error("unsupported psi-ca version {0}")]
    UnsupportedVersion(u8),
    /// The message-type byte is not a known type.
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    /// The message is of the wrong type for this step (e.g. a reply where a query was expected).
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
    /// The header (or the query digest of a reply) belongs to another agreement, run or
    /// parameter set.
    #[error("message is bound to a different session: {field} differs")]
    WrongBinding {
        /// The first field that differs.
        field: &'static str,
    },
    /// A bucket label is not the bucket's position.
    #[error("bucket at position {position} is labelled {found}")]
    WrongBucketLabel {
        /// Position in the bucket table.
        position: u32,
        /// Label found there.
        found: u32,
    },
    /// A bucket of returned values does not hold exactly what the querier sent plus the
    /// responder's `2T·nB` injected slots.
    #[error("bucket {bucket}: expected {expected} values, got {found}")]
    WrongCount {
        /// Querier bucket.
        bucket: u32,
        /// Expected count.
        expected: u64,
        /// Declared count.
        found: u64,
    },
    /// A responder bucket holds fewer points than its `2T·nA` injected slots.
    #[error("responder bucket {bucket}: at least {minimum} points expected, got {found}")]
    TooFewPoints {
        /// Responder bucket.
        bucket: u32,
        /// Minimum count (`2T·nA`).
        minimum: u64,
        /// Declared count.
        found: u64,
    },
    /// A point does not decode as a canonical Ristretto255 encoding.
    #[error("invalid point encoding at bucket {bucket}, index {index}")]
    InvalidPoint {
        /// Bucket of the point.
        bucket: u32,
        /// Index inside the bucket.
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
    /// A local precomputed `enc(H(x))` ([`crate::Items::hashed`]) does not decompress: the
    /// caller's cache of hashed items is corrupt (local, never caused by the peer).
    #[error("corrupt precomputed item point at bucket {bucket}, index {index}")]
    CorruptHashedItem {
        /// Bucket of the entry.
        bucket: u32,
        /// Index inside the bucket.
        index: usize,
    },
    /// A point occurs twice in the message (or equals the dummy commitment `Q`).
    #[error("duplicate point at bucket {bucket}, index {index}")]
    DuplicatePoint {
        /// Bucket of the later occurrence.
        bucket: u32,
        /// Index inside the bucket.
        index: usize,
    },
    /// A returned (truncated) value occurs twice in a reply.
    #[error("duplicate returned value at querier bucket {bucket}, index {index}")]
    DuplicateValue {
        /// Querier bucket of the later occurrence.
        bucket: u32,
        /// Index inside the bucket.
        index: usize,
    },
    /// The dummy commitment `Q` is not a valid non-identity point.
    #[error("invalid dummy commitment Q")]
    InvalidDummyCommitment,
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
    /// A chunk frame is malformed (spec §10.1): bad magic, a `chunk_records` out of range or
    /// unlike the head's, or a payload of the wrong length for its index.
    #[error("malformed chunk: {0}")]
    MalformedChunk(&'static str),
    /// A chunk arrived (or was asked for) out of order: past the next index or the last.
    #[error("chunk {found} out of order: expected {expected}")]
    ChunkOutOfOrder {
        /// The next index the receiver expects (or the last index there is).
        expected: u32,
        /// The index of the frame.
        found: u32,
    },
    /// A chunk index already accepted came again with different bytes (spec §10.2).
    #[error("chunk {index} was already accepted with different bytes")]
    ChunkConflict {
        /// The index of the frame.
        index: u32,
    },
    /// The streamed message is not complete yet (a step that needs all of it was asked for).
    #[error("the streamed message is not complete")]
    StreamIncomplete,
    /// A query chunk was asked for after the reply's head arrived: the reply binds the whole
    /// query, so the querier no longer holds the query's items (spec §10.2).
    #[error("the query was answered; its chunks are no longer held")]
    QueryAnswered,
    /// An earlier chunk failed its checks; the streamed run is over.
    #[error("the streamed run failed at an earlier chunk")]
    StreamFailed,
    /// The DP layer failed.
    #[error("noise: {0}")]
    Noise(#[from] DpError),
}

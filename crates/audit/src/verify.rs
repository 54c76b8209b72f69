//! Verification of a chain and its checkpoints (spec §6).

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::VerifyingKey;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::entry::{Entry, GENESIS_PREV_HASH};

/// What a successful verification covered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of entries checked.
    pub entries: u64,
    /// Number of checkpoints checked.
    pub checkpoints: u64,
    /// Hash of the last entry (32 zero bytes for an empty log).
    pub head_hash: [u8; 32],
    /// Seq of the first entry; `Some(0)` means the chain was checked from genesis, anything
    /// else is a partial export whose first `prev_hash` had to be taken on trust.
    pub first_seq: Option<u64>,
    /// Seq of the last entry.
    pub last_seq: Option<u64>,
    /// Highest seq covered by a verified checkpoint: entries after it are protected against
    /// alteration by the chain but not against being cut off the end.
    pub last_checkpoint_seq: Option<u64>,
    /// Distinct keys (hex) that signed the verified checkpoints.
    pub checkpoint_keys: Vec<String>,
}

/// The first problem found; entry-level variants name the seq that does not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The entry's stored hash is not the hash of its contents.
    #[error("entry {seq}: stored hash does not match the entry's contents (the entry was altered)")]
    BadHash {
        /// Entry that does not verify.
        seq: u64,
    },
    /// The entry's `prev_hash` is not the hash of the entry before it.
    #[error("entry {seq}: prev_hash does not match the hash of entry {} (one of the two was altered or replaced)", seq.saturating_sub(1))]
    BrokenLink {
        /// Entry that does not verify.
        seq: u64,
    },
    /// The genesis entry's `prev_hash` is not zero.
    #[error("entry 0: prev_hash of the genesis entry must be 32 zero bytes")]
    BadGenesis,
    /// A seq is missing: entries were deleted.
    #[error(
        "entry {expected} is missing: the next entry present is {found} (entries were deleted)"
    )]
    Missing {
        /// First missing seq.
        expected: u64,
        /// Seq actually found next.
        found: u64,
    },
    /// A seq repeats or goes backwards.
    #[error(
        "entry {found}: out of order, expected entry {expected} (entries were duplicated or reordered)"
    )]
    OutOfOrder {
        /// Seq expected next.
        expected: u64,
        /// Seq found.
        found: u64,
    },
    /// A checkpoint's signature or key is wrong.
    #[error("checkpoint at entry {seq}: {reason}")]
    CheckpointSignature {
        /// Seq the checkpoint covers.
        seq: u64,
        /// What is wrong with it.
        reason: CheckpointError,
    },
    /// A correctly signed checkpoint names another head hash than the log has at its seq.
    #[error(
        "entry {seq}: hash differs from the signed checkpoint at that seq (entry {seq} or an earlier one was rewritten)"
    )]
    CheckpointMismatch {
        /// Entry that does not verify.
        seq: u64,
    },
    /// A checkpoint covers an entry past the end of the log.
    #[error(
        "entries {missing_from}..={checkpoint_seq} are missing: a signed checkpoint covers entry {checkpoint_seq} but the log ends before it (entries were removed from the end)"
    )]
    Truncated {
        /// First missing seq (the one after the last entry present).
        missing_from: u64,
        /// Seq covered by the checkpoint.
        checkpoint_seq: u64,
    },
    /// A checkpoint covers an entry before the first one supplied.
    #[error(
        "checkpoint at entry {seq} covers an entry before the first one supplied ({first_seq})"
    )]
    CheckpointNotCovered {
        /// Seq covered by the checkpoint.
        seq: u64,
        /// First seq supplied.
        first_seq: u64,
    },
    /// In a stream, a checkpoint came after entries later than the one it covers.
    #[error(
        "checkpoint at entry {seq} appears after entry {last_seq}: a checkpoint must come before the next entry"
    )]
    CheckpointOutOfOrder {
        /// Seq covered by the checkpoint.
        seq: u64,
        /// Last entry already read.
        last_seq: u64,
    },
    /// A stored or exported entry could not be decoded.
    #[error("entry {seq}: malformed: {reason}")]
    Malformed {
        /// Entry that does not decode.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// A line of an exported file could not be parsed.
    #[error("line {line}: {reason}")]
    Parse {
        /// 1-based line number.
        line: u64,
        /// Why.
        reason: String,
    },
    /// The log could not be read.
    #[error("could not read the log: {0}")]
    Read(String),
}

impl VerifyError {
    /// The entry seq the error is about, when it is about one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            VerifyError::BadHash { seq }
            | VerifyError::BrokenLink { seq }
            | VerifyError::CheckpointMismatch { seq }
            | VerifyError::Malformed { seq, .. } => Some(*seq),
            VerifyError::BadGenesis => Some(0),
            VerifyError::Truncated { missing_from, .. } => Some(*missing_from),
            VerifyError::Missing { expected, .. } => Some(*expected),
            VerifyError::OutOfOrder { found, .. } => Some(*found),
            VerifyError::CheckpointSignature { .. }
            | VerifyError::CheckpointNotCovered { .. }
            | VerifyError::CheckpointOutOfOrder { .. }
            | VerifyError::Parse { .. }
            | VerifyError::Read(_) => None,
        }
    }
}

/// Incremental verifier: feed entries in order (and checkpoints at or before the entry they
/// cover), then call [`Verifier::finish`]. Memory is bounded by the pending checkpoints.
pub struct Verifier<'k> {
    node_key: Option<&'k VerifyingKey>,
    pending: BTreeMap<u64, Vec<Checkpoint>>,
    first_seq: Option<u64>,
    last: Option<(u64, [u8; 32])>,
    entries: u64,
    checkpoints: u64,
    last_checkpoint_seq: Option<u64>,
    keys: BTreeSet<String>,
    require_genesis: bool,
}

impl<'k> Verifier<'k> {
    /// A verifier that, when `node_key` is given, requires every checkpoint to be signed by it.
    pub fn new(node_key: Option<&'k VerifyingKey>) -> Self {
        Verifier {
            node_key,
            pending: BTreeMap::new(),
            first_seq: None,
            last: None,
            entries: 0,
            checkpoints: 0,
            last_checkpoint_seq: None,
            keys: BTreeSet::new(),
            require_genesis: false,
        }
    }

    /// Requires the log to start at seq 0 (a whole log, not a partial export): a first entry
    /// with a higher seq fails with [`VerifyError::Missing`] for entry 0.
    pub fn require_genesis(mut self) -> Self {
        self.require_genesis = true;
        self
    }

    /// Checks the next entry: seq continuity, link to the previous entry, own hash, and any
    /// checkpoint waiting for this seq.
    pub fn entry(&mut self, e: &Entry) -> Result<(), VerifyError> {
        let link = match self.last {
            None => {
                if self.require_genesis && e.seq != 0 {
                    return Err(VerifyError::Missing {
                        expected: 0,
                        found: e.seq,
                    });
                }
                if e.seq == 0 && e.prev_hash != GENESIS_PREV_HASH {
                    return Err(VerifyError::BadGenesis);
                }
                None
            }
            Some((last_seq, last_hash)) => {
                let expected = last_seq.saturating_add(1);
                if e.seq > expected {
                    return Err(VerifyError::Missing {
                        expected,
                        found: e.seq,
                    });
                }
                if e.seq < expected {
                    return Err(VerifyError::OutOfOrder {
                        expected,
                        found: e.seq,
                    });
                }
                Some(last_hash)
            }
        };
        if !e.hash_is_valid() {
            return Err(VerifyError::BadHash { seq: e.seq });
        }
        if link.is_some_and(|h| h != e.prev_hash) {
            return Err(VerifyError::BrokenLink { seq: e.seq });
        }
        self.first_seq.get_or_insert(e.seq);
        self.entries += 1;
        self.last = Some((e.seq, e.hash));
        if let Some(cps) = self.pending.remove(&e.seq) {
            for cp in cps {
                self.check_checkpoint(&cp, &e.hash)?;
            }
        }
        Ok(())
    }

    /// Adds a checkpoint; it is checked when the entry it covers is (or was just) seen.
    pub fn checkpoint(&mut self, cp: Checkpoint) -> Result<(), VerifyError> {
        match self.last {
            Some((last_seq, head)) if cp.seq == last_seq => self.check_checkpoint(&cp, &head),
            Some((last_seq, _)) if cp.seq < last_seq => match self.first_seq {
                Some(first_seq) if cp.seq < first_seq => Err(VerifyError::CheckpointNotCovered {
                    seq: cp.seq,
                    first_seq,
                }),
                _ => Err(VerifyError::CheckpointOutOfOrder {
                    seq: cp.seq,
                    last_seq,
                }),
            },
            _ => {
                self.pending.entry(cp.seq).or_default().push(cp);
                Ok(())
            }
        }
    }

    fn check_checkpoint(
        &mut self,
        cp: &Checkpoint,
        entry_hash: &[u8; 32],
    ) -> Result<(), VerifyError> {
        cp.verify_signature(self.node_key)
            .map_err(|reason| VerifyError::CheckpointSignature {
                seq: cp.seq,
                reason,
            })?;
        if &cp.head_hash != entry_hash {
            return Err(VerifyError::CheckpointMismatch { seq: cp.seq });
        }
        self.checkpoints += 1;
        self.last_checkpoint_seq = self.last_checkpoint_seq.max(Some(cp.seq));
        self.keys.insert(cp.node_key.clone());
        Ok(())
    }

    /// Fails if a checkpoint was left unmatched (entries cut off the end, or before the start).
    pub fn finish(self) -> Result<VerifyReport, VerifyError> {
        // Checkpoints within [first_seq, last_seq] were matched (or failed) as entries passed,
        // so whatever is left lies before the first entry or after the last.
        if let Some(&seq) = self.pending.keys().next() {
            return Err(match self.first_seq {
                Some(first_seq) if seq < first_seq => {
                    VerifyError::CheckpointNotCovered { seq, first_seq }
                }
                _ => VerifyError::Truncated {
                    missing_from: self.last.map_or(0, |(s, _)| s.saturating_add(1)),
                    checkpoint_seq: seq,
                },
            });
        }
        Ok(VerifyReport {
            entries: self.entries,
            checkpoints: self.checkpoints,
            head_hash: self.last.map_or(GENESIS_PREV_HASH, |(_, h)| h),
            first_seq: self.first_seq,
            last_seq: self.last.map(|(s, _)| s),
            last_checkpoint_seq: self.last_checkpoint_seq,
            checkpoint_keys: self.keys.into_iter().collect(),
        })
    }
}

/// Verifies a whole chain: recomputes every hash and link, checks seq continuity, every
/// checkpoint's signature (and key, when `node_key` is given) and that its head hash equals
/// the hash of the entry at its seq. The error names the first entry that does not verify.
///
/// The first entry need not be seq 0 (a partial export); its `prev_hash` is then the anchor
/// and [`VerifyReport::first_seq`] says so.
pub fn verify(
    entries: impl IntoIterator<Item = Entry>,
    checkpoints: &[Checkpoint],
    node_key: Option<&VerifyingKey>,
) -> Result<VerifyReport, VerifyError> {
    let mut v = Verifier::new(node_key);
    for cp in checkpoints {
        v.pending.entry(cp.seq).or_default().push(cp.clone());
    }
    for e in entries {
        v.entry(&e)?;
    }
    v.finish()
}

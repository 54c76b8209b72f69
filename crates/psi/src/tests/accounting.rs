//! Accounting: the split of [`RunParams::for_epsilon`], losses and intervals.

use super::*;
use crate::accounting::{interval, querier_loss, responder_loss};

#[test]
fn for_epsilon_splits_and_losses_compose() {
    let p =
        RunParams::for_epsilon([1; 32], "email_sha256_v1", [2; 16], 3, 4, 0.5, 1.0, 1e-9).unwrap();
    assert_eq!((p.querier_buckets, p.responder_buckets), (3, 4));
    let r = responder_loss(&p).unwrap();
    let q = querier_loss(&p).unwrap();
    let cell = p.cell_noise.epsilon(1).unwrap();
    let rb = p.responder_bucket_noise.epsilon(1).unwrap();
    assert!((r.epsilon - (cell + rb)).abs() < 1e-12);
    assert!(
        r.epsilon <= 1.0 + 1e-9 && cell <= 0.75 + 1e-9 && rb <= 0.25 + 1e-9,
        "{r:?}"
    );
    assert!(q.epsilon <= 0.5 + 1e-9, "{q:?}");
    assert!(r.delta <= 1e-9 && q.delta <= 0.5e-9, "{r:?} {q:?}");
    assert!(
        (r.delta - (p.cell_noise.clamp_delta() + p.responder_bucket_noise.clamp_delta())).abs()
            < 1e-18
    );
}

#[test]
fn interval_is_symmetric_and_clipped_at_zero() {
    let p = RunParams::for_epsilon([1; 32], "k", [2; 16], 1, 1, 1.0, 1.0, 1e-9).unwrap();
    let h = p.cell_noise.half_width(0.05).unwrap() as i64;
    assert_eq!(interval(&p, 1_000, 0.05).unwrap(), (1_000 - h, 1_000 + h));
    assert_eq!(interval(&p, -3, 0.05).unwrap().0, 0);
}

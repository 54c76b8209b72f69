//! The bounded discrete logarithm.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;

use super::*;

fn point(x: u64) -> RistrettoPoint {
    RistrettoPoint::mul_base(&Scalar::from(x))
}

#[test]
fn solves_every_boundary_of_the_table() {
    let t = DiscreteLog::new(8).unwrap();
    let m = 256u64;
    for x in [0, 1, m - 1, m, m + 1, 2 * m - 1, 5 * m + 17, 100 * m] {
        assert_eq!(t.solve(&point(x), 100 * m), Some(x), "{x}");
        assert_eq!(t.solve(&point(x), x), Some(x), "{x} at its own bound");
    }
    assert_eq!(t.giant_steps(100 * m), 101);
    assert_eq!(t.giant_steps(0), 1);
}

#[test]
fn out_of_range_fails_in_bounded_steps() {
    let t = DiscreteLog::new(8).unwrap();
    // Just above the bound, inside the last giant step: refused by the bound check.
    assert_eq!(t.solve(&point(1001), 1000), None);
    // Far above, negative (ℓ − 5), and a random point: the search ends after giant_steps.
    assert_eq!(t.solve(&point(1 << 40), 1000), None);
    assert_eq!(t.solve(&-point(5), 1000), None);
    let mut bytes = [0u8; 64];
    fill(4, &mut bytes);
    assert_eq!(
        t.solve(&RistrettoPoint::from_uniform_bytes(&bytes), 1 << 20),
        None
    );
}

#[test]
fn default_table_solves_random_32_bit_values() {
    let t = dlog_table();
    assert_eq!(t.baby_bits(), 16);
    let mut r = rng(5);
    for _ in 0..4 {
        let x = u64::from(r.random::<u32>());
        assert_eq!(t.solve(&point(x), u64::from(u32::MAX)), Some(x));
    }
    // The cache hands out the same table.
    assert!(std::sync::Arc::ptr_eq(&t, &dlog_table()));
}

#[test]
fn table_sizes_are_bounded() {
    assert!(matches!(
        DiscreteLog::new(3),
        Err(SumError::InvalidParams(_))
    ));
    assert!(matches!(
        DiscreteLog::new(25),
        Err(SumError::InvalidParams(_))
    ));
}

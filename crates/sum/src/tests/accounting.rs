//! Clamping, privacy losses and intervals.

use super::*;
use crate::accounting::{clamp_value, holder_loss, interval, noise_variance};

#[test]
fn clamp_is_a_clamp() {
    assert_eq!(clamp_value(-5, 100), 0);
    assert_eq!(clamp_value(0, 100), 0);
    assert_eq!(clamp_value(57, 100), 57);
    assert_eq!(clamp_value(100, 100), 100);
    assert_eq!(clamp_value(i64::MAX, 100), 100);
    assert_eq!(clamp_value(i64::MIN, u32::MAX), 0);
    assert_eq!(clamp_value(i64::MAX, u32::MAX), u32::MAX);
}

#[test]
fn holder_loss_is_the_requested_budget() {
    for (squares, epsilon, delta) in [(false, 1.0, 1e-9), (true, 0.5, 1e-6), (true, 3.0, 1e-12)] {
        let p = SumParams::for_epsilon(
            [0; 32], [0; 16], [0; 32], "v", 12, 250, squares, epsilon, delta,
        )
        .unwrap();
        let loss = holder_loss(&p).unwrap();
        assert!(loss.epsilon <= epsilon && loss.epsilon >= epsilon * (1.0 - 1e-9));
        assert!(loss.delta <= delta);
        // Scale U/ε_sum: the noise is in the column's unit.
        let share = if squares { 0.5 } else { 1.0 };
        assert!((p.sum_noise.scale * epsilon * share / 250.0 - 1.0).abs() < 1e-12);
        if let Some(q) = p.square_noise {
            assert!((q.scale * epsilon * 0.5 / 62_500.0 - 1.0).abs() < 1e-12);
        }
    }
    // The hand-computed case: scale 20 at U = 10 is ε = 1/2.
    let p = params(3, 10, 400, None);
    let p = SumParams {
        sum_noise: ShiftedLaplace {
            scale: 20.0,
            offset: 400,
        },
        ..p
    };
    let loss = holder_loss(&p).unwrap();
    assert_eq!(loss.epsilon, 0.5);
    assert_eq!(loss.delta, p.sum_noise.clamp_delta_for(10));
}

#[test]
fn intervals_and_variance() {
    let dist = ShiftedLaplace {
        scale: 50.0,
        offset: 1000,
    };
    let h = dist.half_width(0.05).unwrap() as i64;
    assert_eq!(interval(&dist, 5000, 0.05).unwrap(), (5000 - h, 5000 + h));
    assert_eq!(interval(&dist, 3, 0.05).unwrap(), (0, 3 + h));
    // 2q/(1 − q)² ≈ 2·scale² for large scales.
    assert!((noise_variance(&dist) / (2.0 * 50.0 * 50.0) - 1.0).abs() < 1e-3);
}

#[test]
fn invalid_parameters_are_refused() {
    let good = params(4, 100, 10, Some(10));
    good.validate().unwrap();
    let bad = [
        SumParams {
            cells: 0,
            ..good.clone()
        },
        SumParams {
            cells: crate::MAX_CELLS + 1,
            ..good.clone()
        },
        SumParams {
            value_bound: 0,
            ..good.clone()
        },
        SumParams {
            value_bound: 65_536,
            ..good.clone()
        },
        SumParams {
            column: "x".repeat(256),
            ..good.clone()
        },
        SumParams {
            sum_noise: ShiftedLaplace {
                scale: f64::NAN,
                offset: 1,
            },
            ..good.clone()
        },
        SumParams {
            square_noise: Some(ShiftedLaplace {
                scale: 0.0,
                offset: 1,
            }),
            ..good.clone()
        },
        SumParams {
            sum_noise: ShiftedLaplace {
                scale: 1.0,
                offset: u32::MAX,
            },
            ..good.clone()
        },
    ];
    for p in bad {
        assert!(
            matches!(p.validate(), Err(SumError::InvalidParams(_))),
            "{p:?}"
        );
        assert!(holder_loss(&p).is_err());
    }
    // U above 65535 is fine without squares.
    SumParams {
        value_bound: 1 << 20,
        square_noise: None,
        ..good
    }
    .validate()
    .unwrap();
}

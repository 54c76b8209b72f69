//! Statistics of the released sums under seeded discrete-Laplace noise, and the production
//! noise path.

use tandem_dp::OpenDpNoise;

use super::*;
use crate::accounting::noise_variance;

/// Variance and fourth central moment of DiscreteLaplace(scale), summed from its pmf
/// `P(Z = k) = (1 − q)/(1 + q)·q^|k|`; the variance is checked against `noise_variance`.
fn moments(dist: &ShiftedLaplace) -> (f64, f64) {
    let q = (-1.0 / dist.scale).exp();
    let mass = (1.0 - q) / (1.0 + q);
    let (mut m2, mut m4) = (0.0, 0.0);
    for k in 1..(60.0 * dist.scale) as i64 {
        let p = 2.0 * mass * q.powi(k as i32);
        let k2 = (k * k) as f64;
        m2 += p * k2;
        m4 += p * k2 * k2;
    }
    let variance = noise_variance(dist);
    assert!((m2 / variance - 1.0).abs() < 1e-9, "pmf {m2} vs {variance}");
    (variance, m4)
}

/// 2,000 cells of a seeded run with noise on (sums and squares): the errors `released − true`
/// have mean 0 (unbiased) and the discrete Laplace's variance. The offsets make clamping
/// happen with probability below 1e-12 per cell, so the errors are the discrete Laplace's up to
/// that. Bounds: the mean within 6 standard errors, the sample variance within 7 standard errors
/// (from the finite fourth moment); by the CLT each fails falsely with probability below 1e-8,
/// and the seed is fixed, so the test is deterministic.
#[test]
fn noised_sums_are_unbiased_with_the_laplace_variance() {
    const CELLS: u32 = 2000;
    let p = SumParams::for_epsilon(
        [1; 32],
        [2; 16],
        [3; 32],
        "revenue_cents",
        CELLS,
        100,
        true,
        1.0,
        2e-12,
    )
    .unwrap();
    let v = values(11, 6000, 100);
    let cells = cells_of(12, v.len(), CELLS);
    let got = run(&p, &v, &cells, &mut SeededLaplace::new(0x5eed), 13).unwrap();
    let (sums, squares) = plain(&v, &cells);
    let square_noise = p.square_noise.unwrap();
    for (released, truth, dist) in [
        (&got.sums, &sums, &p.sum_noise),
        (got.squares.as_ref().unwrap(), &squares, &square_noise),
    ] {
        let errors: Vec<f64> = released
            .iter()
            .zip(truth)
            .map(|(x, t)| (x - t) as f64)
            .collect();
        let t = f64::from(dist.offset);
        assert!(errors.iter().all(|e| e.abs() <= t));
        let n = errors.len() as f64;
        let mean = errors.iter().sum::<f64>() / n;
        let var = errors.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let (variance, m4) = moments(dist);
        let mean_bound = 6.0 * (variance / n).sqrt();
        assert!(mean.abs() <= mean_bound, "mean {mean}, bound {mean_bound}");
        let var_bound = 7.0 * ((m4 - variance * variance) / n).sqrt();
        assert!(
            (var - variance).abs() <= var_bound,
            "variance {var} vs {variance}, bound {var_bound}"
        );
    }
}

/// The production sampler (opendp, OpenSSL randomness) goes through the same path: every error
/// lies in `[−T, T]`, and the 95 % intervals hold the truth in most cells (≥ 80 of 100; a
/// false failure needs 21 misses where 5 are expected, probability below 1e-6).
#[test]
fn opendp_noise_goes_through() {
    let p = SumParams::for_epsilon(
        [1; 32],
        [2; 16],
        [3; 32],
        "revenue_cents",
        100,
        500,
        false,
        1.0,
        1e-9,
    )
    .unwrap();
    let v = values(21, 800, 500);
    let cells = cells_of(22, v.len(), 100);
    // A test stands in for the ledger: this release is "charged" by construction.
    struct TestRelease;
    impl tandem_dp::Charged for TestRelease {
        fn charged_loss(&self) -> tandem_dp::PrivacyLoss {
            tandem_dp::PrivacyLoss {
                epsilon: 1.0,
                delta: 1e-9,
            }
        }
    }
    let mut noise = OpenDpNoise::for_release(&TestRelease);
    let got = run(&p, &v, &cells, &mut noise, 23).unwrap();
    let (sums, _) = plain(&v, &cells);
    let t = i64::from(p.sum_noise.offset);
    let mut covered = 0;
    for (x, truth) in got.sums.iter().zip(&sums) {
        assert!((x - truth).abs() <= t);
        let (lo, hi) = crate::accounting::interval(&p.sum_noise, *x, 0.05).unwrap();
        covered += usize::from(lo <= *truth && *truth <= hi);
    }
    assert!(covered >= 80, "{covered} of 100 intervals cover");
    assert_eq!(got.squares, None);
}

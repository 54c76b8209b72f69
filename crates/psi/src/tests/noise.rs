//! Statistics of the released estimates under seeded discrete-Laplace noise.

use super::*;

/// Variance of the discrete Laplace with this scale: `2q / (1 − q)²`, `q = e^{−1/scale}`.
fn variance(scale: f64) -> f64 {
    let q = (-1.0 / scale).exp();
    2.0 * q / ((1.0 - q) * (1.0 - q))
}

/// 300 runs of a 2×2 set (1,200 cell errors, 600 bucket-size errors): errors have mean ≈ 0
/// and the discrete-Laplace variance. Bounds: the mean within 5 standard errors, the variance
/// ratio within ±35 % (the sample variance's standard error is ≈ √(5/n) ≈ 6.5 % here for a
/// Laplace-tailed variable); the seed is fixed, so the test is deterministic.
#[test]
fn errors_have_discrete_laplace_moments() {
    let all = digests(20, 30);
    let mut p = params(2, 2, 6, 12, 25);
    p.cell_noise.scale = 2.0;
    p.responder_bucket_noise.scale = 3.0;
    let a = split(&all[..18], 2, |i| (i % 2) as u32);
    let b = split(&all[8..], 2, |i| (i / 3 % 2) as u32);
    let truth = plain(&a, &b);
    let mut noise = SeededLaplace::new(0x5eed);
    let (mut cells, mut sizes) = (Vec::new(), Vec::new());
    for _ in 0..300 {
        let counts = run(&p, &a, &b, &mut noise).unwrap();
        cells.extend(
            counts
                .noised
                .iter()
                .zip(&truth)
                .map(|(x, t)| (x - t) as f64),
        );
        sizes.extend(
            counts
                .responder_bucket_sizes_noised
                .iter()
                .zip(&b)
                .map(|(s, bucket)| *s as f64 - bucket.len() as f64 - 12.0),
        );
    }
    for (errors, scale) in [(&cells, 2.0), (&sizes, 3.0)] {
        let n = errors.len() as f64;
        let mean = errors.iter().sum::<f64>() / n;
        let var = errors.iter().map(|e| (e - mean) * (e - mean)).sum::<f64>() / (n - 1.0);
        let expected = variance(scale);
        assert!(
            mean.abs() < 5.0 * (expected / n).sqrt(),
            "mean {mean}, n {n}"
        );
        assert!(
            (var / expected - 1.0).abs() < 0.35,
            "variance {var}, expected {expected}"
        );
    }
}

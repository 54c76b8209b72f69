//! The cell noise: unclamped discrete Laplace, added by B after counting.

use tandem_dp::test_noise::{NoNoise, SeededLaplace};
use tandem_dp::{CentralNoise, Charged, OpenDpNoise, PrivacyLoss};

use super::*;

/// The frequencies `P(Z = 0)`, `P(|Z| ≤ 2)` and `P(Z > 0)` of `draws` lie within the Hoeffding
/// bound `t = √(ln(2/10⁻⁹)/(2n))` of discrete Laplace at `scale` (`q = e^(−1/scale)`:
/// `P(0) = (1−q)/(1+q)`, `P(|Z| ≤ k) = 1 − 2q^(k+1)/(1+q)`, `P(Z > 0) = q/(1+q)`); a correct
/// sampler fails one check with probability below 3·10⁻⁹.
fn assert_discrete_laplace(draws: &[i64], scale: f64) {
    let n = draws.len() as f64;
    let q = (-1.0 / scale).exp();
    let t = ((2.0f64 / 1e-9).ln() / (2.0 * n)).sqrt();
    let freq = |f: &dyn Fn(i64) -> bool| draws.iter().filter(|&&z| f(z)).count() as f64 / n;
    let checks = [
        (freq(&|z| z == 0), (1.0 - q) / (1.0 + q)),
        (freq(&|z| z.abs() <= 2), 1.0 - 2.0 * q.powi(3) / (1.0 + q)),
        (freq(&|z| z > 0), q / (1.0 + q)),
    ];
    for (seen, expected) in checks {
        assert!((seen - expected).abs() <= t, "{seen} vs {expected} ± {t}");
    }
}

/// The noise in B's Msg4 over 32 × 32 cells is the central draw itself, unclamped: the
/// estimates minus the true counts equal the seeded draws, which pass the test above, and
/// exceed any offset a clamp would have used.
#[test]
fn cell_noise_is_unclamped_discrete_laplace() {
    let p = params(32, 32, 0);
    let (a, b, truth) = data(&p, 400, 400, 300);
    let (mut q, r, msg2) = setup(&p, &a, &b, 90);
    let msg3 = q
        .evaluate(&msg2, &Limits::default(), &mut rng(91))
        .expect("msg3");
    let msg4 = r
        .finish(&msg3, &mut rng(92), &mut SeededLaplace::new(93))
        .expect("msg4");
    let est = q.finish(&msg4).expect("counts").estimates;
    let noise: Vec<i64> = est.iter().zip(&truth).map(|(e, c)| e - c).collect();
    let expected = SeededLaplace::new(93)
        .laplace(p.cell_scale, p.cells())
        .expect("draws");
    assert_eq!(noise, expected);
    assert_discrete_laplace(&noise, p.cell_scale);
    assert!(noise.iter().any(|z| z.abs() > 8), "unclamped tails");
}

struct TestCharge;

impl Charged for TestCharge {
    fn charged_loss(&self) -> PrivacyLoss {
        PrivacyLoss::default()
    }
}

/// The production source (opendp's exact sampler) through [`CentralNoise`]: 20 000 draws pass
/// the same test (OpenSSL randomness: the bound holds with probability ≥ 1 − 3·10⁻⁹).
#[test]
fn opendp_central_noise_is_discrete_laplace() {
    let mut noise = OpenDpNoise::for_release(&TestCharge);
    let draws = noise.laplace(2.0, 20_000).expect("draws");
    assert_eq!(draws.len(), 20_000);
    assert_discrete_laplace(&draws, 2.0);
    assert_eq!(NoNoise.laplace(2.0, 3).expect("zeros"), [0, 0, 0]);
}

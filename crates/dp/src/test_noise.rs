//! Noise sources for tests of the protocol state machines (feature `test-noise`, enabled only by
//! dev-dependencies). Production noise is [`crate::OpenDpNoise`], which only a charged release
//! obtains; nothing here can be used to release a number from a node.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::{CentralNoise, DpError, NoiseSource, ShiftedLaplace};

/// Every draw is exactly the offset `T`: no noise (exact counts through the protocols).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoNoise;

impl NoiseSource for NoNoise {
    fn shifted(&mut self, dist: &ShiftedLaplace, count: usize) -> Result<Vec<u32>, DpError> {
        Ok(vec![dist.offset; count])
    }
}

impl CentralNoise for NoNoise {
    fn laplace(&mut self, _scale: f64, count: usize) -> Result<Vec<i64>, DpError> {
        Ok(vec![0; count])
    }
}

/// Seeded discrete Laplace: `Z = G1 − G2` with `G ~ Geometric(1 − e^{−1/scale})` (the
/// difference of two geometric variables is discrete Laplace; Inusah & Kozubowski 2006), clamped
/// to `[0, 2T]` after adding `T` — reproducible, for statistical tests with fixed seeds.
pub struct SeededLaplace(StdRng);

impl SeededLaplace {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SeededLaplace(StdRng::seed_from_u64(seed))
    }

    fn geometric(&mut self, q: f64) -> i64 {
        let u = 1.0 - self.0.random::<f64>(); // (0, 1]
        (u.ln() / q.ln()).floor() as i64
    }
}

impl NoiseSource for SeededLaplace {
    fn shifted(&mut self, dist: &ShiftedLaplace, count: usize) -> Result<Vec<u32>, DpError> {
        let q = (-1.0 / dist.scale).exp();
        let t = i64::from(dist.offset);
        Ok((0..count)
            .map(|_| {
                let z = self.geometric(q) - self.geometric(q);
                (t + z).clamp(0, 2 * t) as u32
            })
            .collect())
    }
}

impl CentralNoise for SeededLaplace {
    fn laplace(&mut self, scale: f64, count: usize) -> Result<Vec<i64>, DpError> {
        let q = (-1.0 / scale).exp();
        Ok((0..count)
            .map(|_| self.geometric(q) - self.geometric(q))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_noise_is_the_offset_and_seeded_noise_repeats() {
        let dist = ShiftedLaplace {
            scale: 2.0,
            offset: 40,
        };
        assert_eq!(NoNoise.shifted(&dist, 3).expect("draws"), [40, 40, 40]);
        let a = SeededLaplace::new(7).shifted(&dist, 1000).expect("draws");
        let b = SeededLaplace::new(7).shifted(&dist, 1000).expect("draws");
        assert_eq!(a, b);
    }
}

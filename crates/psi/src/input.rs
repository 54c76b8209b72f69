//! Checks of local inputs and of noise draws.

use tandem_dp::{NoiseSource, ShiftedLaplace};
use zeroize::Zeroizing;

use crate::PsiError;
use crate::ec::find_duplicate;
use crate::message::Offsets;

/// Checks that `items` has `buckets` buckets and no digest twice; returns the bucket sizes.
pub(crate) fn check_items(buckets: u32, items: &[Vec<[u8; 32]>]) -> Result<Vec<u64>, PsiError> {
    if items.len() != buckets as usize {
        return Err(PsiError::WrongBucketCount {
            expected: buckets,
            found: items.len(),
        });
    }
    let sizes: Vec<u64> = items.iter().map(|b| b.len() as u64).collect();
    let flat = items.concat();
    if let Some(i) = find_duplicate(&flat, None) {
        let (bucket, index) = Offsets::new(&sizes).locate(i);
        return Err(PsiError::DuplicateItem { bucket, index });
    }
    Ok(sizes)
}

/// `count` draws from `dist`, checked to be `count` values in `[0, 2T]`. The draws are the
/// noise itself (junk counts, `K_c`): wiped when dropped.
pub(crate) fn draw(
    noise: &mut dyn NoiseSource,
    dist: &ShiftedLaplace,
    count: usize,
) -> Result<Zeroizing<Vec<u32>>, PsiError> {
    let draws = Zeroizing::new(noise.shifted(dist, count)?);
    let max = 2 * u64::from(dist.offset);
    if draws.len() != count || draws.iter().any(|&k| u64::from(k) > max) {
        return Err(PsiError::BadNoiseDraws {
            wanted: count,
            found: draws.len(),
            max,
        });
    }
    Ok(draws)
}

//! Checks of local inputs and of noise draws.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rayon::prelude::*;
use tandem_dp::{NoiseSource, ShiftedLaplace};
use zeroize::Zeroizing;

use crate::PsiError;

/// Checks that `items` has `buckets` buckets and no digest twice; returns the bucket sizes.
/// A repeat is reported at its second place in bucket order (bucket by bucket, then index).
///
/// Memory: buckets already in strictly increasing order, as a node's store gives them, are
/// checked by merging them, with no copy; other inputs by sorting the items' positions (8 bytes
/// an item, not a copy of the 32-byte digests).
pub(crate) fn check_items(buckets: u32, items: &[Vec<[u8; 32]>]) -> Result<Vec<u64>, PsiError> {
    if items.len() != buckets as usize {
        return Err(PsiError::WrongBucketCount {
            expected: buckets,
            found: items.len(),
        });
    }
    let sizes: Vec<u64> = items.iter().map(|b| b.len() as u64).collect();
    let sorted = items
        .par_iter()
        .all(|b| b.par_windows(2).all(|w| w[0] < w[1]));
    let repeat = if sorted {
        merged_repeat(items)
    } else {
        sorted_repeat(items)
    };
    if let Some((bucket, index)) = repeat {
        return Err(PsiError::DuplicateItem {
            bucket: bucket as u32,
            index,
        });
    }
    Ok(sizes)
}

/// The smallest digest that occurs twice in strictly increasing buckets, at its second place:
/// a k-way merge (ties popped in bucket order).
fn merged_repeat(items: &[Vec<[u8; 32]>]) -> Option<(usize, usize)> {
    let mut heads: BinaryHeap<Reverse<(&[u8; 32], usize, usize)>> = items
        .iter()
        .enumerate()
        .filter_map(|(g, b)| b.first().map(|d| Reverse((d, g, 0))))
        .collect();
    let mut last: Option<&[u8; 32]> = None;
    while let Some(Reverse((digest, g, i))) = heads.pop() {
        if last == Some(digest) {
            return Some((g, i));
        }
        last = Some(digest);
        if let Some(next) = items[g].get(i + 1) {
            heads.push(Reverse((next, g, i + 1)));
        }
    }
    None
}

/// As [`merged_repeat`] for buckets in any order: sorts the positions `(bucket, index)` by
/// digest, then position.
fn sorted_repeat(items: &[Vec<[u8; 32]>]) -> Option<(usize, usize)> {
    let mut positions: Vec<(u32, u32)> = items
        .iter()
        .enumerate()
        .flat_map(|(g, b)| (0..b.len()).map(move |i| (g as u32, i as u32)))
        .collect();
    let at = |&(g, i): &(u32, u32)| &items[g as usize][i as usize];
    positions.par_sort_unstable_by(|x, y| at(x).cmp(at(y)).then(x.cmp(y)));
    positions
        .par_windows(2)
        .find_first(|w| at(&w[0]) == at(&w[1]))
        .map(|w| (w[1].0 as usize, w[1].1 as usize))
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The repeat `check_items` must report, by its definition: the smallest digest that occurs
    /// twice, at its second place in bucket order.
    fn reference(items: &[Vec<[u8; 32]>]) -> Option<(u32, usize)> {
        let flat: Vec<(&[u8; 32], u32, usize)> = items
            .iter()
            .enumerate()
            .flat_map(|(g, b)| b.iter().enumerate().map(move |(i, d)| (d, g as u32, i)))
            .collect();
        let smallest = flat
            .iter()
            .filter(|(d, ..)| flat.iter().filter(|(e, ..)| e == d).count() > 1)
            .map(|(d, ..)| *d)
            .min()?;
        flat.iter()
            .filter(|(d, ..)| *d == smallest)
            .nth(1)
            .map(|&(_, g, i)| (g, i))
    }

    proptest! {
        /// Sorted buckets (the merge) and shuffled ones (the position sort) report the same
        /// repeat as the definition; a digest from a small alphabet repeats often.
        #[test]
        fn repeats_are_found_where_the_definition_puts_them(
            buckets in prop::collection::vec(prop::collection::vec(0u8..24, 0..12), 1..5),
            sort in any::<bool>(),
        ) {
            let mut items: Vec<Vec<[u8; 32]>> = buckets
                .iter()
                .map(|b| b.iter().map(|&x| [x; 32]).collect())
                .collect();
            if sort {
                items.iter_mut().for_each(|b| {
                    b.sort_unstable();
                    b.dedup();
                });
            }
            let got = match check_items(items.len() as u32, &items) {
                Ok(sizes) => {
                    prop_assert!(sizes.iter().zip(&items).all(|(&n, b)| n == b.len() as u64));
                    None
                }
                Err(PsiError::DuplicateItem { bucket, index }) => Some((bucket, index)),
                Err(e) => return Err(TestCaseError::fail(format!("{e:?}"))),
            };
            prop_assert_eq!(got, reference(&items));
        }
    }
}

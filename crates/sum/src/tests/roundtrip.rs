//! Exact sums through the no-noise path, and property tests of the whole protocol.

use proptest::prelude::*;

use super::*;

#[test]
fn exact_sums_without_noise() {
    for (t, square_t) in [(0, None), (7, None), (0, Some(0)), (40, Some(3))] {
        let p = params(6, 1000, t, square_t);
        let v = values(1, 500, 1000);
        let cells = cells_of(2, v.len(), 6);
        let got = run(&p, &v, &cells, &mut NoNoise, 3).unwrap();
        let (sums, squares) = plain(&v, &cells);
        assert_eq!(got.sums, sums, "T {t}");
        assert_eq!(got.squares, square_t.map(|_| squares), "T {t}");
    }
}

#[test]
fn empty_cells_and_extreme_values() {
    // A cell with no match, a cell of one value at U, a cell of zeros, and every value at U.
    let p = params(4, 65_535, 0, Some(0));
    let v = vec![0, 65_535, 0, 0, 65_535, 65_535];
    let cells = vec![vec![], vec![1], vec![0, 2, 3], vec![4, 5]];
    let got = run(&p, &v, &cells, &mut NoNoise, 9).unwrap();
    assert_eq!(got.sums, vec![0, 65_535, 0, 131_070]);
    assert_eq!(
        got.squares,
        Some(vec![0, 65_535 * 65_535, 0, 2 * 65_535 * 65_535])
    );
}

#[test]
fn values_above_the_bound_are_refused() {
    let p = params(1, 10, 0, None);
    let err = ValueHolder::start(p, &[3, 11, 2], &Limits::default(), &mut rng(1)).unwrap_err();
    assert!(matches!(
        err,
        SumError::ValueAboveBound {
            index: 1,
            value: 11,
            bound: 10
        }
    ));
}

#[test]
fn ciphertexts_are_fresh_per_run() {
    // Same values, different randomness: no ciphertext repeats (semantic security needs it).
    let p = params(1, 10, 0, None);
    let v = vec![5; 8];
    let (_, a) = ValueHolder::start(p.clone(), &v, &Limits::default(), &mut rng(1)).unwrap();
    let (_, b) = ValueHolder::start(p.clone(), &v, &Limits::default(), &mut rng(2)).unwrap();
    let h = header_len(&p) + 32 + 4;
    let mut all: Vec<&[u8]> = a[h..].chunks(32).chain(b[h..].chunks(32)).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 2 * 2 * v.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any values in `[0, U]`, any partition of the points into cells (some unmatched), any
    /// offset, with or without squares: the no-noise sums are exact, and each message has its
    /// specified size.
    #[test]
    fn sums_are_exact(
        u in 1u32..=2000,
        t in 0u32..50,
        squares in any::<bool>(),
        cells in 1u32..6,
        assignment in prop::collection::vec((any::<u32>(), 0u32..7), 0..60),
        seed in any::<u64>(),
    ) {
        let p = params(cells, u, t, squares.then_some(t / 2));
        let v: Vec<u32> = assignment.iter().map(|&(x, _)| x % (u + 1)).collect();
        let mut lists = vec![Vec::new(); cells as usize];
        for (i, &(_, c)) in assignment.iter().enumerate() {
            if c < cells {
                lists[c as usize].push(i);
            }
        }
        let limits = Limits::default();
        let mut r = rng(seed);
        let s = usize::from(squares);
        let (holder, msg) = ValueHolder::start(p.clone(), &v, &limits, &mut r).unwrap();
        prop_assert_eq!(msg.len(), header_len(&p) + 32 * (1 + s) + 4 + 32 * (2 + s) * v.len());
        let (querier, request) =
            SumQuerier::request(p.clone(), &msg, v.len(), &lists, &limits, &mut r).unwrap();
        prop_assert_eq!(request.len(), header_len(&p) + 32 + 32 * (2 + s) * cells as usize);
        let reply = holder.decrypt(&request, &mut NoNoise).unwrap();
        prop_assert_eq!(reply.len(), header_len(&p) + 32 + 32 * (1 + s) * cells as usize);
        let got = querier.finish(&reply, &dlog_table()).unwrap();
        let (sums, sq) = plain(&v, &lists);
        prop_assert_eq!(got.sums, sums);
        prop_assert_eq!(got.squares, squares.then_some(sq));
    }
}

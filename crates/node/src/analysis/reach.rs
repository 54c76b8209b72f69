//! Reach (issue 12 item 3, `analyses-v1` §2.3): union reach `|A ∪ B|` and incremental reach
//! `|B \ A|` (the partner's customers a campaign on my audience does not reach), overall, by my
//! segment and by the partner's. One run, my group-by column × the peer's; sensitivity 1; the
//! default split; linear forms over cells and the peer's noised sizes (Cornish–Fisher), shares by
//! the delta method. No options.

use std::collections::BTreeMap;

use tandem_analytics::ReachResult;

use super::{
    Analysis, Format, NoisedCells, Report, analytics_error, analytics_grid, check_option_keys,
    details_as, fmt_estimate, fmt_percent, fmt_rows, render_with, table_footer, table_header,
    to_details,
};
use crate::error::Result;

/// The reach analysis.
pub struct Reach;

impl Analysis for Reach {
    fn name(&self) -> &'static str {
        "reach"
    }

    fn about(&self) -> &'static str {
        "Union reach |A ∪ B| and incremental reach |B \\ A|, by segment"
    }

    fn render(&self, report: &Report, format: Format) -> Result<String> {
        render_with(report, format, table)
    }

    fn derived(
        &self,
        noised: &NoisedCells<'_>,
        options: &BTreeMap<String, String>,
    ) -> Result<Option<serde_json::Value>> {
        check_option_keys(options, &[])?;
        let grid = analytics_grid(noised)?;
        let result =
            tandem_analytics::reach(&grid, 1.0 - super::CONFIDENCE).map_err(analytics_error)?;
        to_details(&result)
    }
}

fn table(r: &Report) -> Result<String> {
    let x: ReachResult = details_as(r)?;
    let mut s = table_header(r, "Reach");
    let (me, peer) = (&r.querier, &r.responder);
    s += &format!(
        "\n{me} (exact)            {}\n{peer} (noised)          {}\noverlap |A ∩ B|        {}\nunion reach |A ∪ B|    {}\nincremental |B \\ A|    {}  ({} of {peer})\n",
        x.my_size,
        fmt_estimate(Some(&x.peer_size), 0),
        fmt_estimate(Some(&x.overlap), 0),
        fmt_estimate(Some(&x.union), 0),
        fmt_estimate(Some(&x.incremental), 0),
        fmt_percent(x.incremental_share.as_ref()),
    );
    let rows: Vec<Vec<String>> = x
        .by_mine
        .iter()
        .map(|m| {
            vec![
                m.mine.clone(),
                m.size.to_string(),
                fmt_estimate(Some(&m.overlap), 0),
                fmt_estimate(Some(&m.union), 0),
                fmt_estimate(Some(&m.incremental), 0),
            ]
        })
        .collect();
    s += &fmt_rows(
        &[
            me,
            "size",
            "overlap [95%]",
            "union [95%]",
            "incremental [95%]",
        ],
        &rows,
    );
    let rows: Vec<Vec<String>> = x
        .by_peer
        .iter()
        .map(|p| {
            vec![
                p.peer.clone(),
                format!(
                    "{} [{}, {}]",
                    p.size.estimate, p.size.ci_low, p.size.ci_high
                ),
                fmt_estimate(Some(&p.overlap), 0),
                fmt_estimate(Some(&p.incremental), 0),
                fmt_percent(p.incremental_share.as_ref()),
            ]
        })
        .collect();
    s += &fmt_rows(
        &[
            peer,
            "size [95%]",
            "overlap [95%]",
            "incremental [95%]",
            "share [95%]",
        ],
        &rows,
    );
    s += &table_footer(r, &x.noise_share);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::testing::{Planted, options};

    /// 100 seeded runs at ε 0.5: union and incremental reach (overall and per bucket) cover the
    /// planted truth in ≥ 88% of runs each.
    #[test]
    fn reach_covers_the_planted_truth() {
        let p = Planted::new(
            &["a", "b", "other"],
            &["silver", "gold"],
            &[300, 100, 150, 150, 40, 60],
            &[900, 700, 300],
        );
        let t = tandem_analytics::reach(&p.truth_grid(), 0.05).expect("truth");
        let runs = 100;
        let mut hits = [0usize; 4];
        for seed in 0..runs {
            let v = p.derive(&Reach, &options(&[]), 0.5, seed).expect("derived");
            let x: ReachResult = serde_json::from_value(v).expect("shape");
            hits[0] += usize::from(x.union.covers(t.union.estimate));
            hits[1] += usize::from(x.incremental.covers(t.incremental.estimate));
            hits[2] += usize::from(x.by_mine[0].union.covers(t.by_mine[0].union.estimate));
            hits[3] += usize::from(
                x.by_peer[1]
                    .incremental_share
                    .expect("share")
                    .covers(t.by_peer[1].incremental_share.expect("share").estimate),
            );
        }
        println!("reach coverage of {runs}: {hits:?}");
        assert!(
            hits.iter().all(|&h| h * 100 >= 88 * runs as usize),
            "{hits:?}"
        );
    }

    #[test]
    fn reach_takes_no_options() {
        let p = Planted::new(&["all"], &["all"], &[10], &[20]);
        let e = p
            .derive(&Reach, &options(&[("x", "1")]), 1.0, 0)
            .expect_err("refused");
        assert_eq!(e.code_str(), "invalid_query");
    }
}

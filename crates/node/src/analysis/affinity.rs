//! Affinity / TGI index (issue 12 item 2, `analyses-v1` §2.2): for each of my segments, the
//! share of the partner's segment (option `peer_segment`, e.g. `gold`) among my customers in the
//! overlap against its share in the whole overlap, as an index (100 = average). One run, my
//! group-by column × the peer's; sensitivity 1; the default split; intervals by the delta method
//! on `log index` over every cell.

use std::collections::BTreeMap;

use tandem_analytics::AffinityResult;

use super::{
    Analysis, Format, InputKind, InputSpec, NoisedCells, Report, analytics_error, analytics_grid,
    check_option_keys, details_as, fmt_estimate, fmt_percent, fmt_ratio, fmt_rows, render_with,
    table_footer, table_header, to_details, with_options,
};
use crate::error::{NodeError, Result};

/// The affinity analysis.
pub struct Affinity;

impl Analysis for Affinity {
    fn name(&self) -> &'static str {
        "affinity"
    }

    fn about(&self) -> &'static str {
        "Affinity index of a peer segment across my segments (100 = as in the whole overlap)"
    }

    fn render(&self, report: &Report, format: Format) -> Result<String> {
        render_with(report, format, table)
    }

    /// Option `peer_segment` (required): the peer's bucket whose affinity is measured.
    fn form(&self) -> Vec<InputSpec> {
        with_options(vec![
            InputSpec::option("peer_segment", InputKind::Text, "Partner's segment", "The partner's group-by value whose share among each of our segments is indexed (e.g. gold)")
                .required(),
        ])
    }

    fn derived(
        &self,
        noised: &NoisedCells<'_>,
        options: &BTreeMap<String, String>,
    ) -> Result<Option<serde_json::Value>> {
        check_option_keys(options, &["peer_segment"])?;
        let segment = options.get("peer_segment").ok_or_else(|| {
            NodeError::invalid_query(format!(
                "affinity needs option peer_segment=VALUE (the peer's values: {})",
                noised.grid.responder.join(", ")
            ))
        })?;
        let grid = analytics_grid(noised)?;
        let result = tandem_analytics::affinity(&grid, segment, 1.0 - super::CONFIDENCE)
            .map_err(analytics_error)?;
        to_details(&result)
    }
}

fn table(r: &Report) -> Result<String> {
    let a: AffinityResult = details_as(r)?;
    let mut s = table_header(r, "Affinity");
    s += &format!(
        "Peer segment {} = {}: share of the whole overlap {}\n",
        r.responder_column.as_deref().unwrap_or("all"),
        a.peer_segment,
        fmt_percent(a.overall_share.as_ref())
    );
    let rows: Vec<Vec<String>> = a
        .rows
        .iter()
        .map(|row| {
            vec![
                row.mine.clone(),
                fmt_estimate(Some(&row.overlap), 0),
                fmt_percent(row.share.as_ref()),
                fmt_ratio(row.index.as_ref(), 0),
            ]
        })
        .collect();
    s += &fmt_rows(
        &[&r.querier, "overlap [95%]", "share [95%]", "index [95%]"],
        &rows,
    );
    s += &table_footer(r, &a.noise_share);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::testing::{Planted, options};

    /// Planted 3 × 2 overlap, 100 seeded runs at ε 1: the 95% intervals of every index cover
    /// the true index in ≥ 88% of runs, and all figures together in ≥ 93%.
    #[test]
    fn affinity_index_covers_the_planted_truth() {
        let p = Planted::new(
            &["a", "b", "other"],
            &["silver", "gold"],
            &[300, 100, 150, 150, 40, 60],
            &[900, 700, 300],
        );
        let opts = options(&[("peer_segment", "gold")]);
        let truth = tandem_analytics::affinity(&p.truth_grid(), "gold", 0.05).expect("truth");
        let (mut hit, mut all) = (vec![0; 3], 0);
        let runs = 100;
        for seed in 0..runs {
            let v = p.derive(&Affinity, &opts, 1.0, seed).expect("derived");
            let a: AffinityResult = serde_json::from_value(v).expect("shape");
            for (k, (row, t)) in a.rows.iter().zip(&truth.rows).enumerate() {
                let (e, t) = (row.index.expect("index"), t.index.expect("index").estimate);
                hit[k] += usize::from(e.covers(t));
            }
            all += 1;
        }
        for (k, h) in hit.iter().enumerate() {
            println!("affinity index row {k}: {h}/{all}");
            assert!(*h * 100 >= 88 * all, "row {k}: {h}/{all}");
        }
        assert!(hit.iter().sum::<usize>() * 100 >= 93 * 3 * all);
    }

    #[test]
    fn affinity_needs_a_known_peer_segment() {
        let p = Planted::new(&["a", "other"], &["silver", "gold"], &[1, 2, 3, 4], &[9, 9]);
        for o in [
            vec![],
            vec![("peer_segment", "bronze")],
            vec![("tier", "gold")],
        ] {
            let e = p
                .derive(&Affinity, &options(&o), 1.0, 0)
                .expect_err("refused");
            assert_eq!(e.code_str(), "invalid_query", "{e}");
        }
    }
}

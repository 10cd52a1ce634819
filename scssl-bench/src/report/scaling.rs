//! Totals the way the paper's tables aggregate them: every metric min–max scaled across the
//! rows of a dataset's table before Bio, Batch and Total are recomputed.

use std::collections::BTreeMap;

use super::{GroupRow, SCIB_COLUMNS};

/// The scaled aggregates [`add_scaled_totals`] adds: (key, header).
pub const SCALED_COLUMNS: &[(&str, &str)] = &[
    ("bio_scaled", "Bio (scaled)"),
    ("batch_scaled", "Batch (scaled)"),
    ("total_scaled", "Total (scaled)"),
];

/// Adds `bio_scaled`, `batch_scaled` and `total_scaled` to every group with scIB metrics: each
/// metric is min–max scaled across the rows of its dataset's table, then Bio, Batch and Total
/// are recomputed (`scssl_metrics::report::min_max_scale`: scib-metrics' `min_max_scale=True`,
/// the aggregation of the paper's tables, methods.md §5.13). They are computed from the
/// groups' seed means, so they carry no spread (std 0), and they depend on which rows share
/// the table; the unscaled `bio`/`batch`/`total` are scib-metrics' default.
pub fn add_scaled_totals(groups: &mut [GroupRow]) {
    let mut by_dataset: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, g) in groups.iter().enumerate() {
        if SCIB_COLUMNS.iter().any(|(k, _)| g.values.contains_key(*k)) {
            by_dataset.entry(g.key.dataset.clone()).or_default().push(i);
        }
    }
    for rows in by_dataset.values() {
        let mut reports: Vec<scssl_metrics::report::Report> = rows
            .iter()
            .map(|&i| scssl_metrics::report::Report {
                metrics: SCIB_COLUMNS
                    .iter()
                    .map(|(k, _)| (k.to_string(), groups[i].values.get(*k).map(|v| v.0)))
                    .collect(),
                ..Default::default()
            })
            .collect();
        scssl_metrics::report::min_max_scale(&mut reports);
        for (&i, r) in rows.iter().zip(&reports) {
            for (key, v) in [
                ("bio_scaled", r.bio_conservation),
                ("batch_scaled", r.batch_correction),
                ("total_scaled", r.total),
            ] {
                if let Some(v) = v {
                    groups[i].values.insert(key.into(), (v, 0.0));
                }
            }
        }
    }
}

//! Each method's mean rank per task over the datasets it ran on.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::GroupRow;

/// The tasks of the cross-dataset ranking: (name, the score ranked, higher is better).
pub const RANKED_TASKS: &[(&str, &str)] = &[
    ("Batch correction (Total)", "total"),
    ("Annotation (Macro-F1)", "annotation_f1_shared"),
    (
        "Modality prediction (mean Pearson)",
        "modality_pearson_mean",
    ),
];

/// One method's place in the ranking across datasets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankRow {
    /// The method as a row of every dataset's table: method · augmentation · h · settings.
    pub method: String,
    /// Per task of [`RANKED_TASKS`] (by name): (mean rank over datasets, 1 = best; datasets).
    pub ranks: BTreeMap<String, (f64, usize)>,
}

/// Ranks the rows of each dataset's table by each task's score (1 = best; ties share the mean
/// of their ranks, as pandas' `rank(method="average")`), then averages each method's rank
/// over the datasets it ran on, as the paper summarises its results. A method is a row key
/// without its dataset; rows are ordered by their batch-correction rank, then by name.
pub fn rank_across_datasets(groups: &[GroupRow]) -> Vec<RankRow> {
    let method_of = |g: &GroupRow| {
        let k = &g.key;
        let mut l = if g.is_baseline() {
            format!("{} · h{}", g.method_label(), k.hidden_dim)
        } else {
            format!("{} · {} · h{}", k.method, k.augmentation, k.hidden_dim)
        };
        if !k.settings.is_empty() {
            let _ = write!(l, " · {}", k.settings);
        }
        l
    };
    let mut sums: BTreeMap<String, BTreeMap<String, (f64, usize)>> = BTreeMap::new();
    for (task, key) in RANKED_TASKS {
        let mut by_dataset: BTreeMap<&str, Vec<(String, f64)>> = BTreeMap::new();
        for g in groups {
            if let Some((v, _)) = g.values.get(*key).filter(|v| v.0.is_finite()) {
                by_dataset
                    .entry(g.key.dataset.as_str())
                    .or_default()
                    .push((method_of(g), *v));
            }
        }
        for rows in by_dataset.values() {
            for (m, v) in rows {
                // average rank: 1 + the rows strictly better + half the other rows tied
                let better = rows.iter().filter(|(_, w)| w > v).count() as f64;
                let tied = rows.iter().filter(|(_, w)| w == v).count() as f64 - 1.0;
                let rank = 1.0 + better + tied / 2.0;
                let e = sums
                    .entry(m.clone())
                    .or_default()
                    .entry(task.to_string())
                    .or_insert((0.0, 0));
                e.0 += rank;
                e.1 += 1;
            }
        }
    }
    let mut out: Vec<RankRow> = sums
        .into_iter()
        .map(|(method, ranks)| RankRow {
            method,
            ranks: ranks
                .into_iter()
                .map(|(t, (sum, n))| (t, (sum / n as f64, n)))
                .collect(),
        })
        .collect();
    let first = RANKED_TASKS[0].0;
    let rank_of = |r: &RankRow| r.ranks.get(first).map_or(f64::INFINITY, |v| v.0);
    out.sort_by(|a, b| {
        rank_of(a)
            .total_cmp(&rank_of(b))
            .then(a.method.cmp(&b.method))
    });
    out
}

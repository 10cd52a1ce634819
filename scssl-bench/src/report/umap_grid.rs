//! The report's UMAP grid: the layouts runs stored (`umap.json`) drawn as small multiples.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::{GroupRow, RunRow};
use crate::store::read_json;

/// A UMAP layout stored by a run (`umap.json`), with its colourings.
struct StoredUmap {
    layout: ndarray::Array2<f32>,
    colourings: Vec<(String, scssl_data::Column)>,
}

fn read_umap(path: &Path) -> Option<StoredUmap> {
    let v: Value = read_json(path).ok()?;
    let n = v["n_cells"].as_u64()? as usize;
    let flat: Vec<f32> = v["layout"]
        .as_array()?
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
        .collect();
    let layout = ndarray::Array2::from_shape_vec((n, 2), flat).ok()?;
    let mut colourings = Vec::new();
    for (key, c) in v["colourings"].as_object()? {
        let codes: Vec<i32> = serde_json::from_value(c["codes"].clone()).ok()?;
        let names: Vec<String> = serde_json::from_value(c["names"].clone()).ok()?;
        if codes.len() != n {
            return None;
        }
        colourings.push((
            key.clone(),
            scssl_data::Column::Categorical {
                codes,
                categories: names,
                ordered: false,
                category_kind: scssl_data::CategoryKind::Text,
            },
        ));
    }
    Some(StoredUmap { layout, colourings })
}

/// The small-multiples UMAP grid of one dataset: a row per group (its lowest-seed run with a
/// layout), ranked as the scIB table is (by Total), a column per colouring.
pub(super) fn umap_grid(rows: &[RunRow], groups: &[GroupRow], dataset: &str) -> Option<String> {
    let mut in_table: Vec<&GroupRow> = groups
        .iter()
        .filter(|g| g.key.dataset == dataset && g.has_scib())
        .collect();
    let total = |g: &GroupRow| g.values.get("total").map_or(f64::NEG_INFINITY, |v| v.0);
    in_table.sort_by(|a, b| total(b).total_cmp(&total(a)));
    let mut loaded = Vec::new();
    for g in in_table {
        let Some(run) = rows
            .iter()
            .filter(|r| r.group == g.group && r.umap.is_some())
            .min_by_key(|r| r.seed)
        else {
            continue;
        };
        let Some(stored) = run.umap.as_deref().and_then(read_umap) else {
            tracing::warn!(
                "{}: its umap.json is unreadable; left out of the UMAP grid",
                run.id
            );
            continue;
        };
        let k = &g.key;
        let mut label = if g.is_baseline() {
            format!(
                "{} · h{} (seed {})",
                g.method_label(),
                k.hidden_dim,
                run.seed
            )
        } else {
            format!(
                "{} · {} · h{} (seed {})",
                k.method, k.augmentation, k.hidden_dim, run.seed
            )
        };
        if !k.settings.is_empty() {
            let _ = write!(label, " · {}", k.settings);
        }
        loaded.push((label, stored));
    }
    if loaded.is_empty() {
        return None;
    }
    let rows: Vec<crate::scatter::LayoutRow<'_>> = loaded
        .iter()
        .map(|(label, stored)| crate::scatter::LayoutRow {
            label: label.clone(),
            layout: stored.layout.view(),
            colourings: stored.colourings.clone(),
        })
        .collect();
    Some(crate::scatter::small_multiples_svg(
        &rows,
        &format!("{dataset}: UMAP of every method's embedding (ranked by Total)"),
    ))
}

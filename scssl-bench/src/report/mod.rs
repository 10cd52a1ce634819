//! `scssl report RESULTS`: every run of a result store in one place — per-run and per-group
//! (mean ± std over seeds) CSV and JSON, a Markdown and a self-contained HTML report with the
//! scIB-style table, annotation and modality tables, and SVG plots (Total per method with the
//! seed spread, a metric heatmap, training time and peak memory per method).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

mod ranking;
pub(crate) mod render;
mod scaling;
mod umap_grid;

pub use ranking::{RANKED_TASKS, RankRow, rank_across_datasets};
pub(crate) use render::csv_field;
pub use scaling::{SCALED_COLUMNS, add_scaled_totals};
pub(crate) mod svg;

use crate::config::RunConfig;
use crate::store::{RunState, list_runs, read_json, write_atomic, write_json};

/// The scIB columns, in table order: (key in metrics.json, header), read off scssl-metrics'
/// registry (scSSL-Bench's metric set).
pub static SCIB_COLUMNS: std::sync::LazyLock<Vec<(&'static str, &'static str)>> =
    std::sync::LazyLock::new(|| {
        scssl_metrics::registry::REGISTRY
            .iter()
            .filter(|s| s.default)
            .flat_map(|s| s.results.iter().map(|r| (r.key, r.display)))
            .collect()
    });

/// What a row of the report shows of a run's config (serialised flat, beside the values).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RowKey {
    /// Dataset.
    pub dataset: String,
    /// Method.
    pub method: String,
    /// Augmentation label.
    pub augmentation: String,
    /// Embedding width.
    pub hidden_dim: usize,
    /// The other settings that tell this row apart from rows with the same dataset, method,
    /// augmentation and width (`training.lr=0.01; model.temperature=0.1`); empty when nothing
    /// else differs.
    pub settings: String,
}

/// One run's row.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    /// Run id.
    pub id: String,
    /// Group (everything but the seed).
    pub group: String,
    /// What the run's row shows of its config.
    #[serde(flatten)]
    pub key: RowKey,
    /// Seed.
    pub seed: u64,
    /// done / failed / pending / running.
    pub state: String,
    /// Error of a failed run.
    pub error: Option<String>,
    /// Flat metrics (`bio`, `batch`, `total`, scIB keys, `annotation_*`, `modality_*`).
    pub values: BTreeMap<String, f64>,
    /// Training seconds.
    pub train_seconds: Option<f64>,
    /// Peak memory in MB.
    pub peak_rss_mb: Option<f64>,
    /// The run's UMAP (`umap.json`), when it has one.
    #[serde(skip)]
    pub umap: Option<PathBuf>,
}

/// A group's aggregate over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRow {
    /// Group label.
    pub group: String,
    /// What the group's row shows of its config (that of its runs).
    #[serde(flatten)]
    pub key: RowKey,
    /// Finished runs (seeds) aggregated.
    pub n_done: usize,
    /// Failed runs.
    pub n_failed: usize,
    /// Metric → (mean, std over seeds; std 0 for one seed).
    pub values: BTreeMap<String, (f64, f64)>,
}

fn flatten(metrics: &Value, out: &mut BTreeMap<String, f64>) {
    if let Some(bc) = metrics.get("batch_correction") {
        for (k, v) in bc
            .get("metrics")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if let Some(x) = v.as_f64() {
                out.insert(k.clone(), x);
            }
        }
        for (k, name) in [
            ("bio_conservation", "bio"),
            ("batch_correction", "batch"),
            ("total", "total"),
        ] {
            if let Some(x) = bc.get(k).and_then(Value::as_f64) {
                out.insert(name.into(), x);
            }
        }
    }
    if let Some(a) = metrics.get("annotation") {
        for (variant, key) in [("all", "in"), ("shared_types", "shared")] {
            for (m, short) in [("macro_f1", "f1"), ("accuracy", "acc")] {
                if let Some(x) = a["joint"][variant][m].as_f64() {
                    out.insert(format!("annotation_{short}_{key}"), x);
                }
                if let Some(x) = a["rna_only"][variant][m].as_f64() {
                    out.insert(format!("annotation_rna_{short}_{key}"), x);
                }
            }
        }
    }
    if let Some(m) = metrics.get("modality_prediction_own")
        && let Some(x) = m["pearson"]["pearson_mean"].as_f64()
    {
        out.insert("modality_own_pearson_mean".into(), x);
    }
    if let Some(m) = metrics.get("modality_prediction") {
        for k in ["pearson_mean", "pearson_min", "pearson_max"] {
            if let Some(x) = m["pearson"][k].as_f64() {
                out.insert(format!("modality_{k}"), x);
            }
        }
        if let Some(x) = m["annotation_with_predicted_protein"]["all"]["macro_f1"].as_f64() {
            out.insert("modality_f1_predicted".into(), x);
        }
    }
}

fn group_of(run: &RunConfig) -> String {
    let mut c = run.clone();
    c.training.seed = 0;
    let id = c.id();
    let hash = id.rsplit('-').next().unwrap_or("");
    format!(
        "{}/{}/{}/h{}/{}",
        run.data.display_name(),
        run.model.method,
        run.augmentation.label(),
        run.model.hidden_dim,
        hash
    )
}

/// A run's config as `dotted.key → value`, without what a row shows anyway (dataset, method,
/// augmentation, width) and without the seed and grid name.
fn flat_config(run: &RunConfig) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, x, out);
                }
            }
            Value::String(x) => {
                out.insert(prefix.to_string(), x.clone());
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(v) = serde_json::to_value(run) {
        walk("", &v, &mut out);
    }
    out.retain(|k, _| {
        !matches!(
            k.as_str(),
            "name"
                | "training.seed"
                | "data.name"
                | "data.path"
                | "model.method"
                | "model.hidden_dim"
        ) && !k.starts_with("augmentation")
    });
    out
}

/// For runs whose rows would look the same (same dataset, method, augmentation and width),
/// the config keys whose values differ among them, written `key=value; …` per run.
fn distinguishing_settings(rows: &[RunRow], configs: &[BTreeMap<String, String>]) -> Vec<String> {
    let mut classes: BTreeMap<RowKey, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let shown = RowKey {
            settings: String::new(),
            ..r.key.clone()
        };
        classes.entry(shown).or_default().push(i);
    }
    let mut out = vec![String::new(); rows.len()];
    for members in classes.values() {
        let keys: std::collections::BTreeSet<&String> =
            members.iter().flat_map(|&i| configs[i].keys()).collect();
        let varying: Vec<&String> = keys
            .into_iter()
            .filter(|k| {
                let first = configs[members[0]].get(*k);
                members.iter().any(|&i| configs[i].get(*k) != first)
            })
            .collect();
        for &i in members {
            out[i] = varying
                .iter()
                .map(|k| {
                    format!(
                        "{k}={}",
                        configs[i].get(*k).map(String::as_str).unwrap_or("–")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
        }
    }
    out
}

/// Reads every run of a result store.
pub fn collect(results: &Path) -> Result<Vec<RunRow>> {
    let mut rows = Vec::new();
    let mut configs = Vec::new();
    for dir in list_runs(results) {
        // one unreadable run directory (hand-edited, or from another version) must not hide
        // the others: it is left out with a warning naming it
        let run = match dir.config() {
            Ok(run) => run,
            Err(e) => {
                tracing::warn!("left out of the report: {e:#}");
                continue;
            }
        };
        configs.push(flat_config(&run));
        let st = dir.status();
        let mut values = BTreeMap::new();
        let (mut train_seconds, mut peak) = (None, None);
        if st.state == RunState::Done {
            if let Ok(m) = read_json::<Value>(&dir.path.join("metrics.json")) {
                flatten(&m, &mut values);
            }
            if let Ok(r) = read_json::<Value>(&dir.path.join("run.json")) {
                train_seconds = r["timing"]["train_seconds"].as_f64();
                peak = r["timing"]["peak_rss_mb"].as_f64();
            }
        }
        rows.push(RunRow {
            id: run.id(),
            group: group_of(&run),
            key: RowKey {
                dataset: run.data.display_name(),
                method: run.model.method.name().to_string(),
                augmentation: run.augmentation.label(),
                hidden_dim: run.model.hidden_dim,
                settings: String::new(),
            },
            seed: run.seed(),
            state: format!("{:?}", st.state).to_lowercase(),
            error: st.error,
            values,
            train_seconds,
            peak_rss_mb: peak,
            umap: Some(dir.path.join("umap.json"))
                .filter(|p| st.state == RunState::Done && p.exists()),
        });
    }
    let settings = distinguishing_settings(&rows, &configs);
    for (r, settings) in rows.iter_mut().zip(settings) {
        r.key.settings = settings;
    }
    Ok(rows)
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

impl GroupRow {
    /// Whether the group has any batch-correction value (Total itself may be undefined: one
    /// batch or one label leaves a whole aggregate undefined, and such a row still belongs in
    /// the scIB table).
    pub fn has_scib(&self) -> bool {
        ["bio", "batch", "total"]
            .into_iter()
            .chain(SCIB_COLUMNS.iter().map(|(k, _)| *k))
            .any(|k| self.values.contains_key(k))
    }

    /// Whether the row is a baseline that does not train (PCA: the "Unintegrated" row).
    pub fn is_baseline(&self) -> bool {
        scssl_models::MethodRef::parse(&self.key.method).is_ok_and(|m| !m.trains())
    }

    /// The method as tables show it: `Unintegrated (PCA)` for the PCA baseline, a method's
    /// display name otherwise (`SCDC (interpretation)`).
    pub fn method_label(&self) -> String {
        match scssl_models::MethodRef::parse(&self.key.method) {
            _ if self.is_baseline() && self.key.method == "pca" => "Unintegrated (PCA)".into(),
            Ok(m) => m.display_name().into(),
            Err(_) => self.key.method.clone(),
        }
    }

    /// `dataset · method · augmentation[ · hW][ · settings]`, for plot labels (a baseline that
    /// does not train has no augmentation to show).
    pub fn label(&self, with_width: bool) -> String {
        let k = &self.key;
        let mut l = if self.is_baseline() {
            format!("{} · {}", k.dataset, self.method_label())
        } else {
            format!(
                "{} · {} · {}",
                k.dataset,
                self.method_label(),
                k.augmentation
            )
        };
        if with_width {
            let _ = write!(l, " · h{}", self.key.hidden_dim);
        }
        if !self.key.settings.is_empty() {
            let _ = write!(l, " · {}", self.key.settings);
        }
        l
    }
}

/// Aggregates finished runs per group (failed runs are counted, never scored).
pub fn aggregate(rows: &[RunRow]) -> Vec<GroupRow> {
    let mut groups: BTreeMap<String, Vec<&RunRow>> = BTreeMap::new();
    for r in rows {
        groups.entry(r.group.clone()).or_default().push(r);
    }
    let mut out: Vec<GroupRow> = groups
        .into_iter()
        .map(|(g, rs)| {
            let done: Vec<&&RunRow> = rs.iter().filter(|r| r.state == "done").collect();
            let mut values = BTreeMap::new();
            let mut keys: Vec<String> =
                done.iter().flat_map(|r| r.values.keys().cloned()).collect();
            keys.push("train_seconds".into());
            keys.push("peak_rss_mb".into());
            keys.sort();
            keys.dedup();
            for k in keys {
                let v: Vec<f64> = done
                    .iter()
                    .filter_map(|r| match k.as_str() {
                        "train_seconds" => r.train_seconds,
                        "peak_rss_mb" => r.peak_rss_mb,
                        _ => r.values.get(&k).copied(),
                    })
                    .filter(|x| x.is_finite())
                    .collect();
                if !v.is_empty() {
                    values.insert(k, mean_std(&v));
                }
            }
            GroupRow {
                group: g,
                key: rs[0].key.clone(),
                n_done: done.len(),
                n_failed: rs.iter().filter(|r| r.state == "failed").count(),
                values,
            }
        })
        .collect();
    // rows that differ only in their settings sit together, in the settings' order
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Files written by [`write_report`].
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// The report directory.
    pub dir: PathBuf,
    /// The Markdown report (its main table is the scIB table).
    pub markdown: PathBuf,
    /// The HTML report.
    pub html: PathBuf,
    /// The scIB table as Markdown (for printing).
    pub main_table: String,
}

/// Writes the report of `results` into `results/report/`.
pub fn write_report(results: &Path) -> Result<ReportFiles> {
    let rows = collect(results)?;
    if rows.is_empty() {
        // a mistyped path must not "succeed" with an empty report
        anyhow::bail!(
            "no runs in {}: is it the --out directory of `scssl bench`?",
            results.join("runs").display()
        );
    }
    let mut groups = aggregate(&rows);
    add_scaled_totals(&mut groups);
    let dir = results.join("report");
    std::fs::create_dir_all(&dir)?;
    write_json(&dir.join("runs.json"), &rows)?;
    write_json(&dir.join("summary.json"), &groups)?;
    write_atomic(
        &dir.join("summary.csv"),
        render::summary_csv(&groups).as_bytes(),
    )?;
    write_atomic(&dir.join("runs.csv"), render::runs_csv(&rows).as_bytes())?;
    let ranking = rank_across_datasets(&groups);
    write_json(&dir.join("ranking.json"), &ranking)?;
    write_atomic(
        &dir.join("ranking.csv"),
        render::ranking_csv(&ranking).as_bytes(),
    )?;
    let mut plots: Vec<(String, String)> = vec![
        (
            "total_by_method.svg".into(),
            svg::bars(
                &groups,
                "total",
                "Total score per method (mean ± std over seeds)",
                "",
            ),
        ),
        ("metric_heatmap.svg".into(), svg::heatmap(&groups)),
        (
            "cost_time.svg".into(),
            svg::bars(&groups, "train_seconds", "Training time per run (s)", " s"),
        ),
        (
            "cost_memory.svg".into(),
            svg::bars(&groups, "peak_rss_mb", "Peak memory per run (MB)", " MB"),
        ),
    ];
    // one scIB results table per dataset
    let mut datasets: Vec<&str> = groups
        .iter()
        .filter(|g| g.has_scib())
        .map(|g| g.key.dataset.as_str())
        .collect();
    datasets.sort_unstable();
    datasets.dedup();
    for (i, d) in datasets.iter().enumerate() {
        let slug: String = d
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        plots.push((
            format!("scib_table_{i}_{slug}.svg"),
            svg::scib_table(&groups, d),
        ));
    }
    plots.push(("ranking.svg".into(), svg::ranking(&ranking)));
    for (i, d) in datasets.iter().enumerate() {
        if let Some(svg) = umap_grid::umap_grid(&rows, &groups, d) {
            let slug: String = d
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            plots.push((format!("umap_{i}_{slug}.svg"), svg));
        }
    }
    for (name, svg) in &plots {
        write_atomic(&dir.join(name), svg.as_bytes())?;
        // the same figure as PNG, for slides and papers
        crate::raster::write_png(&dir.join(name).with_extension("png"), svg)?;
    }
    // every table is rendered once, for both documents
    let sections = render::sections(&groups, &ranking);
    let failed: Vec<&RunRow> = rows.iter().filter(|r| r.state == "failed").collect();
    let markdown = dir.join("report.md");
    write_atomic(
        &markdown,
        render::markdown(&rows, &sections, &plots, &failed).as_bytes(),
    )?;
    let html = dir.join("report.html");
    write_atomic(
        &html,
        render::html(&rows, &sections, &plots, &failed).as_bytes(),
    )?;
    Ok(ReportFiles {
        dir,
        markdown,
        html,
        main_table: sections[0].table.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(dataset: &str, method: &str, metrics: &[(&str, f64)]) -> GroupRow {
        GroupRow {
            group: format!("{dataset}/{method}"),
            key: RowKey {
                dataset: dataset.into(),
                method: method.into(),
                augmentation: "clear".into(),
                hidden_dim: 64,
                settings: String::new(),
            },
            n_done: 1,
            n_failed: 0,
            values: metrics
                .iter()
                .map(|(k, v)| (k.to_string(), (*v, 0.01)))
                .collect(),
        }
    }

    #[test]
    fn methods_are_ranked_per_dataset_then_averaged() {
        let mut groups = vec![
            group("A", "x", &[("total", 0.9)]),
            group("A", "y", &[("total", 0.5)]),
            group("B", "x", &[("total", 0.4)]),
            group("B", "y", &[("total", 0.6)]),
            group("B", "z", &[("total", 0.6)]),
        ];
        groups[0]
            .values
            .insert("annotation_f1_shared".into(), (0.8, 0.0));
        let r = rank_across_datasets(&groups);
        let rank = |m: &str| r.iter().find(|r| r.method.starts_with(m)).unwrap().ranks["Batch correction (Total)"];
        // x: 1st in A, 3rd in B → 2; y: 2nd in A, tied 1st–2nd in B (1.5) → 1.75; z: 1.5 in B
        assert_eq!(rank("x"), (2.0, 2));
        assert_eq!(rank("y"), (1.75, 2));
        assert_eq!(rank("z"), (1.5, 1));
        assert_eq!(r[0].method, "z · clear · h64", "best first");
        let x = r.iter().find(|r| r.method.starts_with('x')).unwrap();
        assert_eq!(x.ranks["Annotation (Macro-F1)"], (1.0, 1));
    }

    #[test]
    fn scaled_totals_scale_each_metric_across_the_rows_of_one_dataset() {
        // three rows of dataset A (one bio and one batch metric each), one row of dataset B
        let mut groups = vec![
            group("A", "x", &[("silhouette_label", 0.5), ("ilisi_knn", 0.1)]),
            group("A", "y", &[("silhouette_label", 0.7), ("ilisi_knn", 0.3)]),
            group("A", "z", &[("silhouette_label", 0.6), ("ilisi_knn", 0.2)]),
            group("B", "x", &[("silhouette_label", 0.9), ("ilisi_knn", 0.9)]),
        ];
        add_scaled_totals(&mut groups);
        let scaled = |i: usize, k: &str| groups[i].values[k].0;
        // x is worst (0), y best (1), z halfway, on both metrics
        for (i, want) in [(0, 0.0), (1, 1.0), (2, 0.5)] {
            assert!((scaled(i, "bio_scaled") - want).abs() < 1e-12);
            assert!((scaled(i, "batch_scaled") - want).abs() < 1e-12);
            assert!((scaled(i, "total_scaled") - want).abs() < 1e-12);
        }
        // a table of one row: every metric is constant, so scales to 0 (scikit-learn's rule)
        assert_eq!(scaled(3, "total_scaled"), 0.0);
        // the unscaled values are untouched
        assert_eq!(groups[1].values["silhouette_label"], (0.7, 0.01));
    }
}

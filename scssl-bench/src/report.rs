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

use crate::config::RunConfig;
use crate::store::{RunState, list_runs, read_json, write_atomic, write_json};

/// The scIB columns, in table order: (key in metrics.json, header).
pub const SCIB_COLUMNS: &[(&str, &str)] = &[
    ("isolated_labels", "Isolated labels"),
    ("nmi_ari_cluster_labels_leiden_nmi", "Leiden NMI"),
    ("nmi_ari_cluster_labels_leiden_ari", "Leiden ARI"),
    ("silhouette_label", "Silhouette label"),
    ("clisi_knn", "cLISI"),
    ("silhouette_batch", "Silhouette batch"),
    ("ilisi_knn", "iLISI"),
    ("kbet_per_label", "KBET"),
    ("graph_connectivity", "Graph connectivity"),
    ("pcr_comparison", "PCR comparison"),
];

/// One run's row.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    /// Run id.
    pub id: String,
    /// Group (everything but the seed).
    pub group: String,
    /// Dataset.
    pub dataset: String,
    /// Method.
    pub method: String,
    /// Augmentation label.
    pub augmentation: String,
    /// Embedding width.
    pub hidden_dim: usize,
    /// The other settings that tell this run's group apart from groups with the same
    /// dataset, method, augmentation and width (`training.lr=0.01; model.temperature=0.1`);
    /// empty when nothing else differs.
    pub settings: String,
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
}

/// A group's aggregate over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRow {
    /// Group label.
    pub group: String,
    /// Dataset.
    pub dataset: String,
    /// Method.
    pub method: String,
    /// Augmentation.
    pub augmentation: String,
    /// Embedding width.
    pub hidden_dim: usize,
    /// See [`RunRow::settings`].
    pub settings: String,
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
    c.seed = 0;
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
            "name" | "seed" | "data.name" | "data.path" | "model.method" | "model.hidden_dim"
        ) && !k.starts_with("augmentation")
    });
    out
}

/// For runs whose rows would look the same (same dataset, method, augmentation and width),
/// the config keys whose values differ among them, written `key=value; …` per run.
fn distinguishing_settings(rows: &[RunRow], configs: &[BTreeMap<String, String>]) -> Vec<String> {
    let mut classes: BTreeMap<(String, String, String, usize), Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        classes
            .entry((
                r.dataset.clone(),
                r.method.clone(),
                r.augmentation.clone(),
                r.hidden_dim,
            ))
            .or_default()
            .push(i);
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
            dataset: run.data.display_name(),
            method: run.model.method.clone(),
            augmentation: run.augmentation.label(),
            hidden_dim: run.model.hidden_dim,
            settings: String::new(),
            seed: run.seed,
            state: format!("{:?}", st.state).to_lowercase(),
            error: st.error,
            values,
            train_seconds,
            peak_rss_mb: peak,
        });
    }
    let settings = distinguishing_settings(&rows, &configs);
    for (r, settings) in rows.iter_mut().zip(settings) {
        r.settings = settings;
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
    /// `dataset · method · augmentation[ · hW][ · settings]`, for plot labels.
    pub fn label(&self, with_width: bool) -> String {
        let mut l = format!("{} · {} · {}", self.dataset, self.method, self.augmentation);
        if with_width {
            let _ = write!(l, " · h{}", self.hidden_dim);
        }
        if !self.settings.is_empty() {
            let _ = write!(l, " · {}", self.settings);
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
                dataset: rs[0].dataset.clone(),
                method: rs[0].method.clone(),
                augmentation: rs[0].augmentation.clone(),
                hidden_dim: rs[0].hidden_dim,
                settings: rs[0].settings.clone(),
                n_done: done.len(),
                n_failed: rs.iter().filter(|r| r.state == "failed").count(),
                values,
            }
        })
        .collect();
    // rows that differ only in their settings sit together, in the settings' order
    out.sort_by(|a, b| {
        (
            &a.dataset,
            &a.method,
            &a.augmentation,
            a.hidden_dim,
            &a.settings,
        )
            .cmp(&(
                &b.dataset,
                &b.method,
                &b.augmentation,
                b.hidden_dim,
                &b.settings,
            ))
    });
    out
}

fn fmt(v: Option<&(f64, f64)>) -> String {
    match v {
        Some((m, s)) if *s > 0.0 => format!("{m:.3} ± {s:.3}"),
        Some((m, _)) => format!("{m:.3}"),
        None => "–".into(),
    }
}

/// `dataset,method,augmentation,hidden_dim,settings` as CSV fields.
fn row_fields(
    dataset: &str,
    method: &str,
    augmentation: &str,
    hidden_dim: usize,
    settings: &str,
) -> String {
    format!(
        "{},{},{},{hidden_dim},{}",
        csv_field(dataset),
        csv_field(method),
        csv_field(augmentation),
        csv_field(settings)
    )
}

/// A CSV field, quoted (RFC 4180) when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Width in pixels of a right-aligned label column for these labels at `font_px` (sans-serif
/// averages about 0.6 em a character), at least 120.
fn label_width(labels: impl Iterator<Item = String>, font_px: f64) -> f64 {
    let longest = labels.map(|l| l.chars().count()).max().unwrap_or(0);
    (longest as f64 * font_px * 0.6 + 20.0).max(120.0)
}

/// Bar chart of Total (mean, with ±std whiskers) per group.
fn svg_bars(groups: &[GroupRow], key: &str, title: &str, unit: &str) -> String {
    let items: Vec<(&GroupRow, (f64, f64))> = groups
        .iter()
        .filter_map(|g| g.values.get(key).map(|v| (g, *v)))
        .collect();
    // the label column grows with the longest label, so that no label is cut off
    let left = label_width(items.iter().map(|(g, _)| g.label(true)), 12.0);
    let (w, bar_h) = (left + 460.0, 22.0);
    let h = 50.0 + bar_h * items.len() as f64 + 30.0;
    let max = items
        .iter()
        .map(|(_, (m, s))| m + s)
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let scale = (w - left - 80.0) / max;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12"><text x="10" y="20" font-size="15" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for (i, (g, (m, sd))) in items.iter().enumerate() {
        let y = 40.0 + i as f64 * bar_h;
        let label = g.label(true);
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{left}" y="{}" width="{:.1}" height="{}" fill="#4c78a8"/><line x1="{:.1}" x2="{:.1}" y1="{}" y2="{}" stroke="black"/><text x="{:.1}" y="{}">{:.3}{unit}</text>"##,
            left - 6.0,
            y + 14.0,
            esc(&label),
            y + 3.0,
            m * scale,
            bar_h - 6.0,
            left + (m - sd).max(0.0) * scale,
            left + (m + sd) * scale,
            y + bar_h / 2.0,
            y + bar_h / 2.0,
            left + (m + sd) * scale + 6.0,
            y + 15.0,
            m
        );
    }
    s.push_str("</svg>");
    s
}

/// Whether a group has any batch-correction value (Total itself may be undefined: one batch or
/// one label leaves a whole aggregate undefined, and such a row still belongs in the table).
fn has_scib(g: &GroupRow) -> bool {
    ["bio", "batch", "total"]
        .into_iter()
        .chain(SCIB_COLUMNS.iter().map(|(k, _)| *k))
        .any(|k| g.values.contains_key(k))
}

/// Heatmap of the scIB metrics (rows: groups, columns: metrics; colour: value in [0, 1]).
fn svg_heatmap(groups: &[GroupRow]) -> String {
    let cols: Vec<(&str, &str)> = SCIB_COLUMNS
        .iter()
        .copied()
        .chain([("bio", "Bio"), ("batch", "Batch"), ("total", "Total")])
        .collect();
    let rows: Vec<&GroupRow> = groups.iter().filter(|g| has_scib(g)).collect();
    let left = label_width(rows.iter().map(|g| g.label(false)), 11.0);
    let (cell_w, cell_h, top) = (70.0, 22.0, 120.0);
    let w = left + cell_w * cols.len() as f64 + 20.0;
    let h = top + cell_h * rows.len() as f64 + 20.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11"><text x="10" y="20" font-size="15" font-weight="bold">scIB metrics (mean over seeds)</text>"#
    );
    for (j, (_, name)) in cols.iter().enumerate() {
        let x = left + j as f64 * cell_w + cell_w / 2.0;
        let _ = write!(
            s,
            r#"<text x="{x}" y="{}" transform="rotate(-40 {x} {})">{}</text>"#,
            top - 8.0,
            top - 8.0,
            esc(name)
        );
    }
    for (i, g) in rows.iter().enumerate() {
        let y = top + i as f64 * cell_h;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + 15.0,
            esc(&g.label(false))
        );
        for (j, (k, _)) in cols.iter().enumerate() {
            let x = left + j as f64 * cell_w;
            match g.values.get(*k) {
                Some((m, _)) => {
                    let t = m.clamp(0.0, 1.0);
                    let (r, gg, b) = (
                        (255.0 * (1.0 - t)) as u8,
                        (120.0 + 100.0 * t) as u8,
                        (255.0 * (1.0 - 0.6 * t)) as u8,
                    );
                    let _ = write!(
                        s,
                        r#"<rect x="{x}" y="{y}" width="{cell_w}" height="{cell_h}" fill="rgb({r},{gg},{b})" stroke="white"/><text x="{}" y="{}" text-anchor="middle">{m:.2}</text>"#,
                        x + cell_w / 2.0,
                        y + 15.0
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        r##"<rect x="{x}" y="{y}" width="{cell_w}" height="{cell_h}" fill="#eee" stroke="white"/>"##
                    );
                }
            }
        }
    }
    s.push_str("</svg>");
    s
}

fn table_md(groups: &[GroupRow], cols: &[(&str, &str)]) -> String {
    // a settings column only when some rows would otherwise look the same
    let with_settings = groups.iter().any(|g| !g.settings.is_empty());
    let mut s = String::from("| dataset | method | augmentation | h |");
    if with_settings {
        s.push_str(" settings |");
    }
    s.push_str(" seeds |");
    for (_, h) in cols {
        let _ = write!(s, " {h} |");
    }
    s.push_str("\n|---|---|---|---|---|");
    if with_settings {
        s.push_str("---|");
    }
    s.push_str(&"---|".repeat(cols.len()));
    s.push('\n');
    for g in groups {
        let _ = write!(
            s,
            "| {} | {} | {} | {} |",
            g.dataset, g.method, g.augmentation, g.hidden_dim
        );
        if with_settings {
            let _ = write!(s, " {} |", g.settings.replace('|', "/"));
        }
        let _ = write!(
            s,
            " {}{} |",
            g.n_done,
            if g.n_failed > 0 {
                format!(" ({} failed)", g.n_failed)
            } else {
                String::new()
            }
        );
        for (k, _) in cols {
            let _ = write!(s, " {} |", fmt(g.values.get(*k)));
        }
        s.push('\n');
    }
    s
}

fn md_to_html_table(md: &str) -> String {
    let mut s = String::from("<table>\n");
    for (i, line) in md.lines().enumerate() {
        if i == 1 {
            continue;
        }
        let tag = if i == 0 { "th" } else { "td" };
        s.push_str("<tr>");
        for cell in line.trim_matches('|').split('|') {
            let _ = write!(s, "<{tag}>{}</{tag}>", esc(cell.trim()));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    s
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
    let groups = aggregate(&rows);
    let dir = results.join("report");
    std::fs::create_dir_all(&dir)?;
    write_json(&dir.join("runs.json"), &rows)?;
    write_json(&dir.join("summary.json"), &groups)?;
    // CSVs
    let mut keys: Vec<String> = groups
        .iter()
        .flat_map(|g| g.values.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    let mut csv = String::from("dataset,method,augmentation,hidden_dim,settings,n_done,n_failed");
    for k in &keys {
        let _ = write!(csv, ",{k}_mean,{k}_std");
    }
    csv.push('\n');
    for g in &groups {
        let _ = write!(
            csv,
            "{},{},{}",
            row_fields(
                &g.dataset,
                &g.method,
                &g.augmentation,
                g.hidden_dim,
                &g.settings
            ),
            g.n_done,
            g.n_failed
        );
        for k in &keys {
            match g.values.get(k) {
                Some((m, s)) => {
                    let _ = write!(csv, ",{m},{s}");
                }
                None => csv.push_str(",,"),
            }
        }
        csv.push('\n');
    }
    write_atomic(&dir.join("summary.csv"), csv.as_bytes())?;
    let mut rcsv = String::from(
        "id,dataset,method,augmentation,hidden_dim,settings,seed,state,total,bio,batch,train_seconds,peak_rss_mb,error\n",
    );
    for r in &rows {
        let g = |k: &str| r.values.get(k).map(|v| v.to_string()).unwrap_or_default();
        let _ = writeln!(
            rcsv,
            "{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.id),
            row_fields(
                &r.dataset,
                &r.method,
                &r.augmentation,
                r.hidden_dim,
                &r.settings
            ),
            r.seed,
            r.state,
            g("total"),
            g("bio"),
            g("batch"),
            r.train_seconds.map(|v| v.to_string()).unwrap_or_default(),
            r.peak_rss_mb.map(|v| v.to_string()).unwrap_or_default(),
            csv_field(r.error.as_deref().unwrap_or_default())
        );
    }
    write_atomic(&dir.join("runs.csv"), rcsv.as_bytes())?;
    // tables
    let scib_cols: Vec<(&str, &str)> = [("bio", "Bio"), ("batch", "Batch"), ("total", "Total")]
        .into_iter()
        .chain(SCIB_COLUMNS.iter().copied())
        .collect();
    let scib: Vec<GroupRow> = groups
        .iter()
        .filter(|g| has_scib(g) || g.n_failed > 0 && g.values.is_empty())
        .cloned()
        .collect();
    let main_table = table_md(&scib, &scib_cols);
    let ann: Vec<GroupRow> = groups
        .iter()
        .filter(|g| g.values.keys().any(|k| k.starts_with("annotation")))
        .cloned()
        .collect();
    let ann_cols = [
        ("annotation_f1_shared", "Macro-F1"),
        ("annotation_acc_shared", "Accuracy"),
        ("annotation_f1_in", "Macro-F1-in"),
        ("annotation_acc_in", "Accuracy-in"),
        ("annotation_rna_f1_in", "Macro-F1 (RNA only)"),
    ];
    let modal: Vec<GroupRow> = groups
        .iter()
        .filter(|g| g.values.contains_key("modality_pearson_mean"))
        .cloned()
        .collect();
    let modal_cols = [
        ("modality_pearson_mean", "Mean Pearson"),
        ("modality_pearson_min", "Min Pearson"),
        ("modality_pearson_max", "Max Pearson"),
        ("modality_f1_predicted", "Macro-F1 with predicted protein"),
    ];
    let cost_cols = [
        ("train_seconds", "Training s"),
        ("peak_rss_mb", "Peak memory MB"),
    ];
    let bars = svg_bars(
        &groups,
        "total",
        "Total score per method (mean ± std over seeds)",
        "",
    );
    let heat = svg_heatmap(&groups);
    let cost_t = svg_bars(&groups, "train_seconds", "Training time per run (s)", " s");
    let cost_m = svg_bars(&groups, "peak_rss_mb", "Peak memory per run (MB)", " MB");
    for (name, svg) in [
        ("total_by_method.svg", &bars),
        ("metric_heatmap.svg", &heat),
        ("cost_time.svg", &cost_t),
        ("cost_memory.svg", &cost_m),
    ] {
        write_atomic(&dir.join(name), svg.as_bytes())?;
    }
    let failed: Vec<&RunRow> = rows.iter().filter(|r| r.state == "failed").collect();
    let mut md = format!(
        "# scssl benchmark report\n\n{} runs: {} done, {} failed, {} not finished. Values are mean ± std over seeds; failed runs are listed, never scored.\n\n## Batch correction (scIB)\n\n{}\n",
        rows.len(),
        rows.iter().filter(|r| r.state == "done").count(),
        failed.len(),
        rows.iter()
            .filter(|r| r.state != "done" && r.state != "failed")
            .count(),
        main_table
    );
    if !ann.is_empty() {
        let _ = write!(
            md,
            "\n## Cell-type annotation (query-to-reference, kNN k = 11)\n\n{}\n",
            table_md(&ann, &ann_cols)
        );
    }
    if !modal.is_empty() {
        let _ = write!(
            md,
            "\n## Missing-modality prediction (protein from RNA, kNN k = 5)\n\n{}\n",
            table_md(&modal, &modal_cols)
        );
    }
    let _ = write!(md, "\n## Cost\n\n{}\n", table_md(&groups, &cost_cols));
    md.push_str("\n![Total](total_by_method.svg)\n\n![Metrics](metric_heatmap.svg)\n\n![Time](cost_time.svg)\n\n![Memory](cost_memory.svg)\n");
    if !failed.is_empty() {
        md.push_str("\n## Failed runs\n\n| run | error |\n|---|---|\n");
        for r in &failed {
            let _ = writeln!(
                md,
                "| {} | {} |",
                r.id,
                r.error
                    .clone()
                    .unwrap_or_default()
                    .replace('|', "/")
                    .replace('\n', " ")
            );
        }
    }
    let markdown = dir.join("report.md");
    write_atomic(&markdown, md.as_bytes())?;
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>scssl benchmark report</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td{white-space:nowrap}th{background:#f3f3f3}svg{max-width:100%;height:auto}</style></head><body><h1>scssl benchmark report</h1>",
    );
    let _ = write!(
        html,
        "<p>{} runs, {} failed. Values are mean ± std over seeds.</p><h2>Batch correction (scIB)</h2>{}",
        rows.len(),
        failed.len(),
        md_to_html_table(&main_table)
    );
    if !ann.is_empty() {
        let _ = write!(
            html,
            "<h2>Cell-type annotation</h2>{}",
            md_to_html_table(&table_md(&ann, &ann_cols))
        );
    }
    if !modal.is_empty() {
        let _ = write!(
            html,
            "<h2>Missing-modality prediction</h2>{}",
            md_to_html_table(&table_md(&modal, &modal_cols))
        );
    }
    let _ = write!(
        html,
        "<h2>Cost</h2>{}<h2>Plots</h2>{bars}<br>{heat}<br>{cost_t}<br>{cost_m}",
        md_to_html_table(&table_md(&groups, &cost_cols))
    );
    if !failed.is_empty() {
        html.push_str("<h2>Failed runs</h2><ul>");
        for r in &failed {
            let _ = write!(
                html,
                "<li>{}: {}</li>",
                esc(&r.id),
                esc(&r.error.clone().unwrap_or_default())
            );
        }
        html.push_str("</ul>");
    }
    html.push_str("</body></html>\n");
    let html_path = dir.join("report.html");
    write_atomic(&html_path, html.as_bytes())?;
    Ok(ReportFiles {
        dir,
        markdown,
        html: html_path,
        main_table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("simclr"), "simclr");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn label_column_fits_the_longest_label() {
        let short = label_width(["a".to_string()].into_iter(), 12.0);
        assert_eq!(short, 120.0, "a minimum width");
        let long = label_width(["x".repeat(100), "y".into()].into_iter(), 12.0);
        assert!(long >= 100.0 * 12.0 * 0.6, "{long}");
    }
}

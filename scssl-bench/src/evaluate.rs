//! `scssl eval` and `scssl annotate`: score embeddings stored in an AnnData file's `obsm`
//! (made by scssl or by any other tool: scVI, scGPT, Geneformer, …).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::report::csv_field;
use anyhow::{Context, Result, bail};
use ndarray::Array2;
use scssl_data::{io, pp, split};
use scssl_metrics::annotate::{Annotation, ModalityScores, annotate, modality_prediction};
use scssl_metrics::report::{EvalInput, Metric, Report, evaluate};

/// The column order of the results table (scib-metrics' keys): scSSL-Bench's metric set from
/// scssl-metrics' registry, then Bio, Batch and Total.
pub static COLUMNS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    scssl_metrics::registry::REGISTRY
        .iter()
        .filter(|s| s.default)
        .flat_map(|s| s.results.iter().map(|r| r.key))
        .chain(["bio_conservation", "batch_correction", "total"])
        .collect()
});

/// Options of [`eval_file`].
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// obsm keys of the embeddings to score.
    pub embeddings: Vec<String>,
    /// obs column of the batch.
    pub batch_key: String,
    /// obs column of the cell type.
    pub label_key: String,
    /// obsm key of the pre-integration embedding; `None`: 50 PCs of X, as scib-metrics does.
    pub pre_embedding: Option<String>,
    /// Also report BRAS (cosine, mean-other batch silhouette).
    pub bras: bool,
    /// Seed (Leiden, approximate kNN).
    pub seed: u64,
}

/// Value of a column in a report (Bio/Batch/Total included).
pub fn value(r: &Report, key: &str) -> Option<f64> {
    match key {
        "bio_conservation" => r.bio_conservation,
        "batch_correction" => r.batch_correction,
        "total" => r.total,
        k => r.metrics.get(k).copied().flatten(),
    }
}

/// Scores every embedding; returns reports keyed by embedding name, in the given order.
pub fn eval_file(path: &Path, opts: &EvalOptions) -> Result<Vec<(String, Report)>> {
    if opts.embeddings.is_empty() {
        bail!("name at least one embedding with --embedding");
    }
    let b = io::read_backed(path).with_context(|| format!("reading {}", path.display()))?;
    let labels = b.obs.groups(&opts.label_key, "obs")?;
    let batches = b.obs.groups(&opts.batch_key, "obs")?;
    for e in &opts.embeddings {
        if !b.obsm.contains_key(e) {
            bail!(
                "obsm has no key '{e}'; available keys: [{}]",
                b.obsm.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    let pre: Array2<f32> = match &opts.pre_embedding {
        Some(k) => b.obsm.get(k).cloned().with_context(|| {
            format!(
                "obsm has no key '{k}' for --pre-embedding; available keys: [{}]",
                b.obsm.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?,
        None => {
            tracing::info!(
                "computing the pre-integration PCA (50 components of X), as scib-metrics does"
            );
            let ad = io::read(path)?;
            let n_comps = 50.min(ad.n_vars()).min(ad.n_obs().saturating_sub(1)).max(1);
            pp::pca(&ad.x, n_comps)?.embedding
        }
    };
    let mut metrics = Metric::ALL.to_vec();
    if opts.bras {
        metrics.push(Metric::Bras);
    }
    let pb = crate::progress::steps(opts.embeddings.len() as u64, "eval");
    let mut out = vec![];
    for e in &opts.embeddings {
        pb.set_message(e.clone());
        let x = &b.obsm[e];
        let input = EvalInput {
            embedding: x.view(),
            labels: &labels.codes,
            batches: &batches.codes,
            pre_integration: Some(pre.view()),
        };
        let r = evaluate(&input, &metrics, opts.seed)
            .with_context(|| format!("scoring obsm['{e}']"))?;
        out.push((e.clone(), r));
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(out)
}

/// The results as a text table (one row per embedding).
pub fn render_table(reports: &[(String, Report)], extra: &[&str]) -> String {
    let cols: Vec<&str> = COLUMNS
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect();
    let mut s = String::new();
    let w = reports.iter().map(|r| r.0.len()).max().unwrap_or(9).max(9);
    let _ = write!(s, "{:<w$}", "embedding");
    for c in &cols {
        let _ = write!(s, " {:>10}", abbreviate(c));
    }
    s.push('\n');
    for (name, r) in reports {
        let _ = write!(s, "{name:<w$}");
        for c in &cols {
            match value(r, c) {
                Some(v) => {
                    let _ = write!(s, " {v:>10.4}");
                }
                None => {
                    let _ = write!(s, " {:>10}", "NaN");
                }
            }
        }
        s.push('\n');
    }
    for (name, r) in reports {
        // one line per reason, naming every metric it leaves undefined
        let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (k, why) in &r.notes {
            by_reason.entry(why.as_str()).or_default().push(k.as_str());
        }
        for (why, keys) in by_reason {
            let (verb, list) = match keys.as_slice() {
                [one] => ("is", one.to_string()),
                many => ("are", many.join(", ")),
            };
            let _ = writeln!(s, "note: {name}: {list} {verb} undefined: {why}");
        }
    }
    s
}

fn abbreviate(c: &str) -> &str {
    match c {
        "bio_conservation" => "bio",
        "batch_correction" => "batch",
        c => scssl_metrics::registry::result_name(c).map_or(c, |(_, r)| r.short),
    }
}

/// JSON: embedding → {metric → number or null, `notes`, `timings`}.
pub fn to_json(reports: &[(String, Report)], extra: &[&str]) -> serde_json::Value {
    let mut top = serde_json::Map::new();
    for (name, r) in reports {
        let mut m = serde_json::Map::new();
        for c in COLUMNS.iter().copied().chain(extra.iter().copied()) {
            m.insert(
                c.into(),
                value(r, c)
                    .filter(|v| v.is_finite())
                    .map_or(serde_json::Value::Null, serde_json::Value::from),
            );
        }
        m.insert(
            "notes".into(),
            serde_json::to_value(&r.notes).unwrap_or_default(),
        );
        m.insert(
            "timings".into(),
            serde_json::to_value(&r.timings).unwrap_or_default(),
        );
        top.insert(name.clone(), serde_json::Value::Object(m));
    }
    serde_json::Value::Object(top)
}

/// CSV with a header row.
pub fn to_csv(reports: &[(String, Report)], extra: &[&str]) -> String {
    let cols: Vec<&str> = COLUMNS
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect();
    let mut s = format!("embedding,{}\n", cols.join(","));
    for (name, r) in reports {
        let vals: Vec<String> = cols
            .iter()
            .map(|c| value(r, c).map_or(String::new(), |v| format!("{v}")))
            .collect();
        let _ = writeln!(s, "{},{}", csv_field(name), vals.join(","));
    }
    s
}

/// Writes a file atomically (the result store's helper, re-exported for the CLI).
pub use crate::store::write_atomic;

/// Results of `scssl annotate`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AnnotateResult {
    /// Reference and query cell counts.
    pub n_reference: usize,
    /// Query cells.
    pub n_query: usize,
    /// kNN annotation scores.
    pub annotation: Annotation,
    /// Protein prediction scores, when a protein key was given.
    pub modality: Option<ModalityScores>,
}

/// Options of [`annotate_file`].
#[derive(Debug, Clone)]
pub struct AnnotateOptions {
    /// obsm key of the embedding.
    pub embedding: String,
    /// obs column of the cell type.
    pub label_key: String,
    /// obs column of the batch.
    pub batch_key: String,
    /// Batches held out as the query.
    pub query_batches: Vec<String>,
    /// obsm key of the protein measurements, for missing-modality prediction.
    pub protein_key: Option<String>,
    /// Neighbours of the classifier (scSSL-Bench: 11).
    pub k: usize,
    /// Neighbours of the protein prediction (scSSL-Bench: 5).
    pub k_protein: usize,
}

/// Query-to-reference annotation (and protein prediction) on an embedding in `obsm`.
pub fn annotate_file(path: &Path, opts: &AnnotateOptions) -> Result<AnnotateResult> {
    let b = io::read_backed(path).with_context(|| format!("reading {}", path.display()))?;
    let x = b.obsm.get(&opts.embedding).with_context(|| {
        format!(
            "obsm has no key '{}'; available keys: [{}]",
            opts.embedding,
            b.obsm.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    // split::holdout_batches needs an AnnData; build a light one with the obs table only
    let mut ad = scssl_data::AnnData::new(
        scssl_data::Matrix::Dense(Array2::zeros((b.n_obs(), 0))),
        b.obs.index.clone(),
        vec![],
    )?;
    ad.obs = b.obs.clone();
    let s = split::holdout_batches(&ad, &opts.batch_key, &opts.query_batches)?;
    let labels = ad.obs_groups(&opts.label_key)?;
    let take = |rows: &[usize]| x.select(ndarray::Axis(0), rows);
    let codes = |rows: &[usize]| rows.iter().map(|&i| labels.codes[i]).collect::<Vec<u32>>();
    let (r, q) = (take(&s.reference), take(&s.query));
    let annotation = annotate(
        r.view(),
        &codes(&s.reference),
        q.view(),
        &codes(&s.query),
        opts.k,
    )?;
    let modality = match &opts.protein_key {
        None => None,
        Some(pk) => {
            let p = b.obsm.get(pk).with_context(|| {
                format!(
                    "obsm has no key '{pk}' for --protein-key; available keys: [{}]",
                    b.obsm.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?;
            let (pr, pq) = (
                p.select(ndarray::Axis(0), &s.reference),
                p.select(ndarray::Axis(0), &s.query),
            );
            Some(modality_prediction(r.view(), pr.view(), q.view(), pq.view(), opts.k_protein)?.1)
        }
    };
    Ok(AnnotateResult {
        n_reference: s.reference.len(),
        n_query: s.query.len(),
        annotation,
        modality,
    })
}

/// Human-readable annotation results.
pub fn render_annotation(a: &AnnotateResult) -> String {
    let mut s = format!(
        "reference cells: {}, query cells: {}\n",
        a.n_reference, a.n_query
    );
    let _ = writeln!(
        s,
        "{:<28} {:>9} {:>9} {:>8}",
        "variant", "macro-F1", "accuracy", "cells"
    );
    for (name, v) in [
        ("all cell types", &a.annotation.all),
        ("shared cell types only", &a.annotation.shared_types),
    ] {
        let _ = writeln!(
            s,
            "{name:<28} {:>9.4} {:>9.4} {:>8}",
            v.macro_f1, v.accuracy, v.n_query
        );
    }
    if let Some(m) = &a.modality {
        let _ = writeln!(
            s,
            "protein prediction (Pearson per cell): mean {:.4}, min {:.4}, max {:.4}{}",
            m.pearson_mean,
            m.pearson_min,
            m.pearson_max,
            if m.n_undefined > 0 {
                format!(" ({} cells with a constant row left out)", m.n_undefined)
            } else {
                String::new()
            }
        );
    }
    s
}

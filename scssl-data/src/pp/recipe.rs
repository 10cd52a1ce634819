//! The benchmark's preprocessing as one step (scSSL-Bench, methods.md §1.1): counts →
//! `normalize_total(1e4)` → `log1p` → Seurat HVGs with the batch key → subset →
//! 50-component PCA, in memory ([`preprocess`]) or streamed over a file too large for memory
//! ([`preprocess_backed`]). `scssl preprocess` and model training both run this recipe.
//!
//! ```
//! use scssl_data::pp::recipe::{PreprocessOptions, preprocess};
//! use scssl_data::sim::{SimConfig, simulate};
//!
//! let raw = simulate(&SimConfig { n_cells: 200, n_genes: 150, ..Default::default() })?;
//! let opts = PreprocessOptions { n_hvg: 50, n_pcs: 10, ..Default::default() };
//! let (ad, summary) = preprocess(raw, &opts, &mut |step| println!("{step}"))?;
//! assert_eq!((ad.n_vars(), summary.n_pcs), (50, 10));
//! assert!(ad.layers.contains_key("counts") && ad.obsm_get("X_pca").is_ok());
//! # Ok::<(), scssl_data::Error>(())
//! ```

use std::path::Path;

use crate::CountsSource;
use crate::anndata::{AnnData, UnsValue};
use crate::error::{Error, Result};
use crate::frame::Column;
use crate::io;
use crate::pp::{self, HvgFlavor, HvgOptions};

/// Options of [`preprocess`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PreprocessOptions {
    /// obs column with the batch (HVGs are ranked per batch). `None`: one batch.
    pub batch_key: Option<String>,
    /// Number of highly variable genes to keep.
    pub n_hvg: usize,
    /// HVG method.
    pub flavor: HvgFlavor,
    /// Library size after normalisation.
    pub target_sum: f64,
    /// PCA components (capped by the data's size).
    pub n_pcs: usize,
    /// Layer holding the raw counts (`None`: `X`).
    pub counts_layer: Option<String>,
    /// Keep the raw counts of the kept genes in `layers['counts']` (as scanpy workflows do).
    /// Training turns it off: it needs only the normalised matrix, and the copy costs a full
    /// matrix of memory during normalisation.
    #[serde(default = "keep_counts_default")]
    pub keep_counts: bool,
}

fn keep_counts_default() -> bool {
    true
}

impl Default for PreprocessOptions {
    fn default() -> Self {
        Self {
            batch_key: Some("batch".into()),
            n_hvg: 2000,
            flavor: HvgFlavor::Seurat,
            target_sum: 1e4,
            n_pcs: 50,
            counts_layer: None,
            keep_counts: true,
        }
    }
}

/// What preprocessing did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PreprocessSummary {
    /// Cells.
    pub n_cells: usize,
    /// Genes before selection.
    pub n_genes: usize,
    /// Genes kept.
    pub n_hvg: usize,
    /// Batches seen (1 when no batch key).
    pub n_batches: usize,
    /// PCA components computed.
    pub n_pcs: usize,
    /// Variance ratio of the components.
    pub pca_variance_ratio: Vec<f64>,
}

impl PreprocessSummary {
    fn of(ad: &AnnData, n_cells: usize, n_genes: usize, n_batches: usize, pca: pp::Pca) -> Self {
        PreprocessSummary {
            n_cells,
            n_genes,
            n_hvg: ad.n_vars(),
            n_batches,
            n_pcs: pca.explained_variance.len(),
            pca_variance_ratio: pca.explained_variance_ratio,
        }
    }
}

/// Runs the pipeline in memory. The result has the log-normalised HVG matrix in `X`, the raw
/// counts in `layers['counts']`, the HVG statistics in `var`, and `obsm['X_pca']`.
pub fn preprocess(
    mut ad: AnnData,
    opts: &PreprocessOptions,
    on_step: &mut dyn FnMut(&str),
) -> Result<(AnnData, PreprocessSummary)> {
    if opts.n_hvg == 0 {
        return Err(Error::param("n_hvg", "must be at least 1"));
    }
    if opts.counts_layer.is_some() {
        ad = ad.with_counts_as_x(&CountsSource::from_option(opts.counts_layer.as_deref()))?;
    }
    ad.check_counts(&ad.x).map_err(|e| Error::NotRawCounts {
        source: Box::new(e),
        hint: "X must hold raw counts (use --counts-layer NAME if they are in a layer, or --counts-layer raw for raw/X)".into(),
    })?;
    let Batches {
        key: batch_key,
        n_batches,
        ..
    } = resolve_batches(&ad.obs, opts.batch_key.as_deref())?;
    let (n_cells, n_genes) = ad.x.shape();
    // PCA and HVG dispersions need spread between cells: refuse here, in the user's terms
    if n_cells < 2 || n_genes < 2 {
        return Err(Error::shape(
            "preprocessing input",
            "at least 2 cells and 2 genes",
            format!("{n_cells} cells × {n_genes} genes"),
        ));
    }
    // seurat_v3 ranks genes on the counts, so it needs them whatever keep_counts says
    let counts_needed = opts.keep_counts || opts.flavor == HvgFlavor::SeuratV3;
    if counts_needed {
        ad.layers.insert("counts".into(), ad.x.clone());
    }
    on_step("normalize_total + log1p");
    pp::normalize_total(&mut ad, opts.target_sum)?;
    pp::log1p(&mut ad);
    on_step("highly variable genes");
    let hvg_opts = HvgOptions {
        n_top_genes: opts.n_hvg.min(n_genes),
        batch_key: batch_key.clone(),
        flavor: opts.flavor,
        layer: if opts.flavor == HvgFlavor::SeuratV3 {
            Some("counts".into())
        } else {
            None
        },
        ..Default::default()
    };
    let hvg = pp::highly_variable_genes(&ad, &hvg_opts)?;
    let mut ad = ad.select_vars(&hvg.highly_variable);
    if !opts.keep_counts {
        ad.layers.remove("counts");
    }
    annotate_hvgs(&mut ad, &hvg)?;
    on_step("pca");
    let pca = finish_with_pca(&mut ad, opts, &format!("{:?}", opts.flavor).to_lowercase())?;
    let summary = PreprocessSummary::of(&ad, n_cells, n_genes, n_batches, pca);
    Ok((ad, summary))
}

/// The same pipeline over a file too large for memory: `X` (raw counts, CSR or dense) is
/// streamed three times in chunks of `chunk_rows` cells — for the HVG statistics of the
/// normalised, log-transformed data; to write the selected genes (log-normalised `X`, raw
/// `layers['counts']`) straight to `output` while their covariance accumulates; and for the
/// PCA coordinates — so memory holds one chunk, the gene × gene covariance and `X_pca`, never
/// the matrix. Results equal [`preprocess`] (Seurat flavour; PCA coordinates to 1e-4).
/// `output` is written under a temporary name and renamed. `on_progress(step, done, total)`
/// is called after each chunk and step, for a progress bar.
pub fn preprocess_backed(
    input: &Path,
    output: &Path,
    opts: &PreprocessOptions,
    chunk_rows: usize,
    on_progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<PreprocessSummary> {
    use crate::matrix::{CsrMatrix, Matrix};
    use crate::pp::GeneStats;

    if opts.flavor != HvgFlavor::Seurat {
        return Err(Error::param(
            "flavor",
            "preprocessing a backed file supports the seurat flavour only",
        ));
    }
    if opts.counts_layer.is_some() {
        return Err(Error::param(
            "counts_layer",
            "preprocessing a backed file reads the counts from X only",
        ));
    }
    if chunk_rows == 0 {
        return Err(Error::param("chunk_rows", "must be at least 1"));
    }
    let b = io::read_backed(input)?;
    let (n_cells, n_genes) = (b.n_obs(), b.n_vars());
    let Batches {
        key: batch_key,
        n_batches,
        codes,
    } = resolve_batches(&b.obs, opts.batch_key.as_deref())?;
    let n_groups = if batch_key.is_some() { n_batches } else { 1 };
    let total = 3 * n_cells.div_ceil(chunk_rows) + 2;
    let mut done = 0;
    let mut tick = |step: &str, advance: usize| {
        done += advance;
        on_progress(step, done, total);
    };
    // pass 1: statistics of expm1(log1p(normalised counts))
    let mut st = GeneStats::new(n_groups, n_genes);
    let mut log_sums = vec![0.0f64; n_genes];
    let normalise = |start: usize, m: &mut Matrix| -> Result<()> {
        m.try_for_each(|i, j, v| {
            if !v.is_finite() || v < 0.0 {
                Err(Error::InvalidCounts {
                    row: start + i,
                    col: j,
                    cell: b.obs.index[start + i].clone(),
                    gene: b.var.index[j].clone(),
                    value: v,
                })
            } else {
                Ok(())
            }
        })?;
        pp::normalize_matrix(m, opts.target_sum);
        pp::log1p_matrix(m);
        Ok(())
    };
    tick("HVG statistics", 0);
    for chunk in b.chunks(chunk_rows) {
        let (start, mut m) = chunk?;
        normalise(start, &mut m)?;
        let n = m.shape().0;
        st.add(&m, &codes[start..start + n], &|v: f32| v.exp_m1() as f64);
        // per-gene sums of the log data, in row order as `pp::pca` sums them, for its mean
        let _ = m.try_for_each(|_, j, v| {
            log_sums[j] += v as f64;
            Ok::<(), ()>(())
        });
        tick("HVG statistics", 1);
    }
    let hvg_opts = HvgOptions {
        n_top_genes: opts.n_hvg.min(n_genes),
        batch_key: batch_key.clone(),
        ..Default::default()
    };
    let hvg = pp::hvg_from_stats(&st, &b.var.index, &hvg_opts, batch_key.is_some());
    // pass 2: the selected genes go to the output as they come (log-normalised in X, raw
    // counts in layers['counts']), and their centred cross-products into the PCA
    let sel = hvg.selected();
    let mean: Vec<f64> = sel.iter().map(|&j| log_sums[j] / n_cells as f64).collect();
    let n_pcs = opts.n_pcs.min(sel.len()).min(n_cells.saturating_sub(1));
    let layers: &[&str] = if opts.keep_counts { &["counts"] } else { &[] };
    let mut writer = io::CsrStreamWriter::create(output, n_cells, sel.len(), layers)?;
    let mut acc = pp::PcaAccumulator::new(mean);
    tick("selecting genes", 0);
    for chunk in b.chunks(chunk_rows) {
        let (start, m) = chunk?;
        let counts = m.select_cols(&hvg.highly_variable).to_csr();
        let mut norm = m;
        normalise(start, &mut norm)?;
        let x = norm.select_cols(&hvg.highly_variable);
        acc.add(&x)?;
        let x = x.to_csr();
        if opts.keep_counts {
            writer.append(&[&x, &counts])?;
        } else {
            writer.append(&[&x])?;
        }
        tick("selecting genes", 1);
    }
    let model = acc.fit(n_pcs)?;
    // pass 3: the cells' PCA coordinates
    let mut x_pca = ndarray::Array2::<f32>::zeros((n_cells, n_pcs));
    tick("pca", 0);
    for chunk in b.chunks(chunk_rows) {
        let (start, mut m) = chunk?;
        normalise(start, &mut m)?;
        let e = model.project(&m.select_cols(&hvg.highly_variable));
        x_pca
            .slice_mut(ndarray::s![start..start + e.nrows(), ..])
            .assign(&e);
        tick("pca", 1);
    }
    let n_sel = sel.len();
    let mut ad = AnnData::new(
        Matrix::Csr(CsrMatrix::zeros(n_cells, n_sel)),
        b.obs.index.clone(),
        sel.iter().map(|&j| b.var.index[j].clone()).collect(),
    )?;
    ad.obs = b.obs.clone();
    ad.var = b.var.select(&sel);
    ad.obsm = b.obsm.clone();
    ad.uns = b.uns.clone();
    annotate_hvgs(&mut ad, &hvg)?;
    ad.uns
        .insert("log1p".into(), UnsValue::Dict(Default::default()));
    let pca = pp::Pca {
        embedding: x_pca,
        components: model.components,
        explained_variance: model.explained_variance,
        explained_variance_ratio: model.explained_variance_ratio,
        mean: model.mean,
    };
    record_pca(&mut ad, &pca, "seurat")?;
    tick("writing", 1);
    writer.finish(&ad)?;
    tick("written", 1);
    Ok(PreprocessSummary::of(&ad, n_cells, n_genes, n_batches, pca))
}

/// The batch column as HVG selection uses it.
struct Batches {
    /// The batch key to rank genes by; `None` without a key or when there is one batch.
    key: Option<String>,
    /// Distinct batches (1 without a key).
    n_batches: usize,
    /// Per-cell batch code (all 0 when `key` is `None`).
    codes: Vec<u32>,
}

/// Reads the batch column; a single batch falls back to unbatched HVG selection, with a warning.
fn resolve_batches(obs: &crate::frame::DataFrame, key: Option<&str>) -> Result<Batches> {
    let n = obs.n_rows();
    let Some(k) = key else {
        return Ok(Batches {
            key: None,
            n_batches: 1,
            codes: vec![0; n],
        });
    };
    let g = obs.groups(k, "obs")?;
    if g.n_groups() < 2 {
        tracing::warn!("obs['{k}'] has a single batch; selecting HVGs without a batch key");
        return Ok(Batches {
            key: None,
            n_batches: g.n_groups(),
            codes: vec![0; n],
        });
    }
    Ok(Batches {
        key: Some(k.to_string()),
        n_batches: g.n_groups(),
        codes: g.codes,
    })
}

/// Writes the HVG statistics of the kept genes into `var` (`ad` already holds only the
/// selected genes, in their original order).
fn annotate_hvgs(ad: &mut AnnData, hvg: &pp::HvgResult) -> Result<()> {
    let sel = hvg.selected();
    let pick = |v: &[f64]| sel.iter().map(|&j| v[j]).collect::<Vec<f64>>();
    ad.var.insert(
        "highly_variable",
        Column::Bool {
            values: vec![true; sel.len()],
            mask: None,
        },
    )?;
    ad.var.insert("means", Column::Float(pick(&hvg.means)))?;
    ad.var
        .insert("dispersions", Column::Float(pick(&hvg.dispersions)))?;
    ad.var.insert(
        "dispersions_norm",
        Column::Float(pick(&hvg.dispersions_norm)),
    )?;
    if let Some(nb) = &hvg.highly_variable_nbatches {
        ad.var.insert(
            "highly_variable_nbatches",
            Column::Int {
                values: sel.iter().map(|&j| nb[j] as i64).collect(),
                mask: None,
            },
        )?;
    }
    Ok(())
}

/// PCA of the HVG matrix into `obsm['X_pca']` and `uns['pca']`, plus `uns['hvg']`.
fn finish_with_pca(ad: &mut AnnData, opts: &PreprocessOptions, flavor: &str) -> Result<pp::Pca> {
    let n_pcs = opts
        .n_pcs
        .min(ad.n_vars())
        .min(ad.n_obs().saturating_sub(1));
    let pca = pp::pca(&ad.x, n_pcs)?;
    record_pca(ad, &pca, flavor)?;
    Ok(pca)
}

/// Stores a PCA as scanpy does (`obsm['X_pca']`, `uns['pca']`) with `uns['hvg']['flavor']`.
fn record_pca(ad: &mut AnnData, pca: &pp::Pca, flavor: &str) -> Result<()> {
    ad.obsm_insert("X_pca", pca.embedding.clone())?;
    let mut pca_uns = std::collections::BTreeMap::new();
    pca_uns.insert(
        "variance".into(),
        UnsValue::Numbers(pca.explained_variance.clone()),
    );
    pca_uns.insert(
        "variance_ratio".into(),
        UnsValue::Numbers(pca.explained_variance_ratio.clone()),
    );
    ad.uns.insert("pca".into(), UnsValue::Dict(pca_uns));
    let mut hvg_uns = std::collections::BTreeMap::new();
    hvg_uns.insert("flavor".into(), UnsValue::String(flavor.into()));
    ad.uns.insert("hvg".into(), UnsValue::Dict(hvg_uns));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{SimConfig, simulate};

    #[test]
    fn without_keep_counts_the_result_is_the_same_minus_the_counts_layer() {
        let raw = simulate(&SimConfig {
            n_cells: 300,
            n_genes: 200,
            seed: 3,
            ..Default::default()
        })
        .unwrap();
        let opts = PreprocessOptions {
            n_hvg: 100,
            n_pcs: 10,
            ..Default::default()
        };
        let (kept, _) = preprocess(raw.clone(), &opts, &mut |_| {}).unwrap();
        let lean_opts = PreprocessOptions {
            keep_counts: false,
            ..opts.clone()
        };
        let (lean, _) = preprocess(raw.clone(), &lean_opts, &mut |_| {}).unwrap();
        assert!(kept.layers.contains_key("counts"));
        assert!(!lean.layers.contains_key("counts"));
        assert_eq!(kept.x, lean.x);
        assert_eq!(kept.var, lean.var);
        assert_eq!(
            kept.obsm_get("X_pca").unwrap(),
            lean.obsm_get("X_pca").unwrap()
        );
        // seurat_v3 needs the counts to rank genes, and still drops them afterwards
        let v3 = PreprocessOptions {
            flavor: HvgFlavor::SeuratV3,
            keep_counts: false,
            ..opts
        };
        let (v3_ad, _) = preprocess(raw, &v3, &mut |_| {}).unwrap();
        assert!(!v3_ad.layers.contains_key("counts"));
    }
}

//! Model inputs from AnnData: the benchmark's preprocessing of raw counts (or X as stored),
//! the protein block, the raw counts of count-likelihood methods, and — for a trained model —
//! the same features rebuilt for new data: its genes in its order, its batches as codes.
//! [`FeatureSpec`] is what a trained model remembers of its inputs.
//!
//! ```
//! use scssl_data::sim::{SimConfig, simulate};
//! use scssl_models::features::{FeatureOptions, features_for, into_features, training_features};
//!
//! let raw = simulate(&SimConfig { n_cells: 200, n_genes: 150, ..Default::default() })?;
//! let train = training_features(&raw, &FeatureOptions { n_hvg: 50, ..Default::default() })?;
//! assert_eq!(train.matrices[0].shape(), (200, 50));
//! // new data gets the model's genes in the model's order, normalised the same way
//! let (inputs, missing) = features_for(&raw, &train.spec)?;
//! assert_eq!((inputs[0].clone(), missing), (train.matrices[0].clone(), 0));
//! // or by value, which hands over X itself when it already is the model's input
//! let (owned, _) = into_features(raw, &train.spec)?;
//! assert_eq!(owned, inputs);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use ndarray::Array2;
use scssl_data::CountsSource;
use scssl_data::anndata::AnnData;
use scssl_data::matrix::{CsrMatrix, Matrix};
use scssl_data::pp::recipe::{PreprocessOptions, preprocess};
use scssl_data::pp::{self, ClrAxis, HvgFlavor};
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result, invalid};

fn input_error(what: impl Into<String>, message: impl Into<String>) -> ModelError {
    ModelError::Input {
        what: what.into(),
        message: message.into(),
    }
}

/// How protein (ADT) values are transformed before training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProteinTransform {
    /// Centred log-ratio per cell (for raw ADT counts).
    #[default]
    Clr,
    /// ln(1 + x).
    Log1p,
    /// As stored (the reference's choice for its pre-processed files).
    AsIs,
}

impl ProteinTransform {
    /// Parses `clr`, `log1p` or `as_is`/`as-is`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "clr" => ProteinTransform::Clr,
            "log1p" => ProteinTransform::Log1p,
            "as_is" | "none" => ProteinTransform::AsIs,
            other => {
                return Err(invalid(
                    "data.protein_transform",
                    format!("unknown protein transform {other:?}; expected clr, log1p or as_is"),
                ));
            }
        })
    }

    fn apply(self, x: &Array2<f32>) -> Result<Array2<f32>> {
        Ok(match self {
            ProteinTransform::Clr => pp::clr(x, ClrAxis::Cells)?,
            ProteinTransform::Log1p => x.mapv(|v| v.max(0.0).ln_1p()),
            ProteinTransform::AsIs => x.clone(),
        })
    }
}

/// How to turn an AnnData file into model inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureOptions {
    /// obs column of the batch (HVGs per batch, neighbour graphs across batches).
    pub batch_key: Option<String>,
    /// Number of HVGs when X holds counts.
    pub n_hvg: usize,
    /// Library size after normalisation.
    pub target_sum: f64,
    /// Layer with raw counts (`None`: X).
    pub counts_layer: Option<String>,
    /// obsm key of protein values (multimodal when set).
    pub protein_key: Option<String>,
    /// Protein transform.
    pub protein_transform: ProteinTransform,
    /// Keep the raw counts of the selected genes too (methods with a count likelihood).
    pub keep_counts: bool,
}

impl Default for FeatureOptions {
    fn default() -> Self {
        FeatureOptions {
            batch_key: Some("batch".into()),
            n_hvg: 2000,
            target_sum: 1e4,
            counts_layer: None,
            protein_key: None,
            protein_transform: ProteinTransform::Clr,
            keep_counts: false,
        }
    }
}

/// What a model's input features are, stored with the model so that `embed` rebuilds them
/// for new data: the genes in order, whether counts were normalised, the protein block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Genes (var names) of the RNA input, in column order.
    pub genes: Vec<String>,
    /// Whether the input was raw counts that were normalised and log-transformed here
    /// (`false`: X was used as stored).
    pub normalized_here: bool,
    /// Library size used when normalising.
    pub target_sum: f64,
    /// Layer the counts came from.
    pub counts_layer: Option<String>,
    /// obsm key of the protein block.
    pub protein_key: Option<String>,
    /// Protein transform.
    pub protein_transform: ProteinTransform,
    /// Number of proteins.
    pub n_proteins: usize,
    /// obs column of the batches the model was trained with (when one was given).
    #[serde(default)]
    pub batch_key: Option<String>,
    /// The training batches in code order: batch covariates and DSBN's domains. A cell of any
    /// other batch is an unseen batch (code = the number of training batches).
    #[serde(default)]
    pub batches: Vec<String>,
}

/// Model inputs built from a dataset.
#[derive(Debug, Clone)]
pub struct Features {
    /// One matrix per modality (RNA first), cells × features. The RNA block stays in the
    /// layout it was stored or preprocessed in (CSR for a sparse file), so a million cells are
    /// never densified whole; the protein block is dense.
    pub matrices: Vec<Matrix>,
    /// How they were made.
    pub spec: FeatureSpec,
    /// 50 PCs of the RNA input, when the preprocessing here computed them (raw-count input).
    pub pca: Option<Array2<f32>>,
    /// Raw counts of the RNA input's genes, in its column order (when asked for).
    pub counts: Option<Matrix>,
}

fn protein_block(ad: &AnnData, key: &str, transform: ProteinTransform) -> Result<Array2<f32>> {
    let raw = ad.obsm_get(key)?;
    if raw.iter().any(|v| !v.is_finite()) {
        return Err(input_error(
            format!("obsm[{key:?}] (the protein block)"),
            "contains NaN or infinite values",
        ));
    }
    transform.apply(raw)
}

/// Builds training inputs: if X (or `counts_layer`) holds raw counts, normalise, log1p and keep
/// `n_hvg` Seurat HVGs (per batch) — methods.md §1.1; otherwise use X as stored (e.g. a file
/// written by `scssl preprocess`) and say so in the log.
pub fn training_features(ad: &AnnData, opts: &FeatureOptions) -> Result<Features> {
    // X, a layer or raw/X with its own genes; only this matrix travels on (not the file's
    // layers and obsm)
    let counts = ad.counts_only(&CountsSource::from_option(opts.counts_layer.as_deref()))?;
    features_from_counts(counts, ad, opts)
}

/// [`training_features`] taking the dataset by value: when the input is X (no counts layer),
/// X itself becomes the RNA block (or the preprocessing's input) instead of a copy of it — at a
/// million cells, gigabytes less at the peak of training.
pub fn into_training_features(mut ad: AnnData, opts: &FeatureOptions) -> Result<Features> {
    if opts.counts_layer.is_some() {
        return training_features(&ad, opts);
    }
    let x = take_x(&mut ad);
    let mut counts = AnnData::new(x, ad.obs.index.clone(), ad.var.index.clone())?;
    counts.obs = ad.obs.clone();
    counts.var = ad.var.clone();
    features_from_counts(counts, &ad, opts)
}

/// The features of `counts` (X, a layer or raw/X as the only matrix, with obs and its var);
/// the protein block and the batch names come from `ad`.
fn features_from_counts(counts: AnnData, ad: &AnnData, opts: &FeatureOptions) -> Result<Features> {
    let keep_counts = opts.keep_counts;
    let mut raw_counts = None;
    // Raw counts are non-negative integers; a log-normalised X is non-negative too, so
    // integrality is what tells them apart (as scanpy's `check_nonnegative_integers`).
    let is_counts = counts.check_counts(&counts.x).is_ok() && holds_integers(&counts.x);
    let (rna, genes, normalized_here, pca) = if is_counts {
        // the benchmark's preprocessing, shared with `scssl preprocess`, on the counts alone
        // (the file's other layers and obsm are not copied, and no counts layer is kept)
        let opts = PreprocessOptions {
            batch_key: opts.batch_key.clone(),
            n_hvg: opts.n_hvg,
            flavor: HvgFlavor::Seurat,
            target_sum: opts.target_sum,
            n_pcs: 50,
            counts_layer: None,
            // the HVGs' raw counts travel on only for methods with a count likelihood
            keep_counts,
        };
        let (mut pp_ad, _) = preprocess(counts, &opts, &mut |_| {})?;
        raw_counts = pp_ad.layers.remove("counts");
        let pca = pp_ad.obsm_get("X_pca").ok().cloned();
        (pp_ad.x, pp_ad.var.index, true, pca)
    } else {
        if counts
            .x
            .try_for_each(|_, _, v| if v.is_finite() { Ok(()) } else { Err(()) })
            .is_err()
        {
            return Err(input_error("X", "contains NaN or infinite values"));
        }
        tracing::info!("X does not hold raw counts: using it as stored (assumed log-normalised)");
        (counts.x, counts.var.index, false, None)
    };
    let counts_matrix = if opts.keep_counts {
        if !is_counts {
            return Err(input_error(
                opts.counts_layer
                    .as_deref()
                    .map_or("X".to_string(), |l| format!("layer {l:?}")),
                "the method needs raw counts, and this matrix does not hold them: give the layer with the counts (--counts-layer / data.counts_layer; `raw` for raw/X)",
            ));
        }
        raw_counts
    } else {
        None
    };
    let mut matrices = vec![rna];
    let mut n_proteins = 0;
    if let Some(key) = &opts.protein_key {
        let p = protein_block(ad, key, opts.protein_transform)?;
        n_proteins = p.ncols();
        matrices.push(Matrix::Dense(p));
    }
    Ok(Features {
        matrices,
        pca,
        counts: counts_matrix,
        spec: FeatureSpec {
            genes,
            normalized_here,
            target_sum: opts.target_sum,
            counts_layer: opts.counts_layer.clone(),
            protein_key: opts.protein_key.clone(),
            protein_transform: opts.protein_transform,
            n_proteins,
            batch_key: opts.batch_key.clone(),
            batches: match &opts.batch_key {
                Some(key) => ad.obs_groups(key)?.names,
                None => Vec::new(),
            },
        },
    })
}

/// Each cell's batch as the model knows it: its position among the training batches
/// ([`FeatureSpec::batches`]), or the number of training batches for a batch training never
/// saw. `None` when the model was trained without a batch key.
pub fn batch_codes_for(ad: &AnnData, spec: &FeatureSpec) -> Result<Option<Vec<u32>>> {
    let Some(key) = &spec.batch_key else {
        return Ok(None);
    };
    let groups = ad.obs_groups(key)?;
    let unseen = spec.batches.len() as u32;
    let map: Vec<u32> = groups
        .names
        .iter()
        .map(|n| {
            spec.batches
                .iter()
                .position(|b| b == n)
                .map_or(unseen, |p| p as u32)
        })
        .collect();
    Ok(Some(
        groups.codes.iter().map(|&c| map[c as usize]).collect(),
    ))
}

/// Maps the masked autoencoder's gene programmes (`model.gene_programs`, a GMT file) onto the
/// model's input genes and stores them in `model.gene_program_sets`; nothing to do for other
/// methods or random masking.
pub fn resolve_gene_programs(model: &mut ModelConfig, genes: &[String]) -> Result<()> {
    if !model.method.needs(model).gene_programs {
        return Ok(());
    }
    let Some(path) = model.gene_programs.clone() else {
        return Err(invalid(
            "model.gene_programs",
            "masking gene_program needs a GMT file of gene programmes (model.gene_programs / --gene-programs)",
        ));
    };
    let sets = scssl_data::gmt::read_gmt(&path)?;
    let programs = scssl_data::gmt::GenePrograms::encode(&sets, genes).map_err(|e| {
        input_error(
            format!(
                "gene programmes of {path} against the model's {} input genes",
                genes.len()
            ),
            e.to_string(),
        )
    })?;
    tracing::info!("{path}: {}", programs.summary());
    model.gene_program_sets = Some(programs);
    Ok(())
}

/// Reads CLAIRE's Seurat anchors (`model.claire.anchors`, a CSV with `name1`/`name2` cell
/// names) and maps them onto the training cells `obs_names`
/// ([`scssl_data::anchors::read_seurat_anchors`]: unknown names are an error that counts
/// them). Nothing to do for other methods or without the file.
pub fn resolve_anchors(model: &mut ModelConfig, obs_names: &[String]) -> Result<()> {
    if model.method != "claire" {
        return Ok(());
    }
    let Some(path) = model.claire.anchors.clone() else {
        return Ok(());
    };
    let pairs = scssl_data::anchors::read_seurat_anchors(std::path::Path::new(&path), obs_names)?;
    tracing::info!("{path}: {} anchor pairs", pairs.len());
    model.claire.anchor_pairs = Some(pairs);
    Ok(())
}

/// Rebuilds a model's input features for `ad`: the same normalisation, then the model's genes
/// in the model's order (genes the data lacks are zero-filled, like scvi-tools'
/// `prepare_query_anndata`; their number is returned so the caller can warn). The RNA block
/// keeps the stored layout (CSR from a sparse file), as in [`training_features`].
pub fn features_for(ad: &AnnData, spec: &FeatureSpec) -> Result<(Vec<Matrix>, usize)> {
    if !spec.normalized_here && spec.counts_layer.is_none() {
        // X is used as stored: read the genes straight from it, without a copy of X
        let (rna, missing) = select_genes_of(&ad.x, &ad.var.index, &spec.genes)?;
        return with_protein(ad, spec, rna, missing);
    }
    // only the counts travel through the normalisation (not the file's layers and obsm)
    let mut work = ad.counts_only(&CountsSource::from_option(spec.counts_layer.as_deref()))?;
    if spec.normalized_here {
        ad.check_counts(&work.x)
            .map_err(|e| scssl_data::Error::NotRawCounts {
                source: Box::new(e),
                hint: "the model was trained on raw counts normalised by scssl; this file's X is not raw counts".into(),
            })?;
        pp::normalize_total(&mut work, spec.target_sum)?;
        pp::log1p(&mut work);
    }
    let (rna, missing) = select_genes(&work, &spec.genes)?;
    drop(work);
    with_protein(ad, spec, rna, missing)
}

/// [`features_for`] taking the dataset by value: when the model used X as stored and the
/// file has exactly the model's genes in its order (a file `scssl preprocess` wrote), X itself
/// becomes the RNA block instead of a copy of it — at a million cells, gigabytes less.
pub fn into_features(mut ad: AnnData, spec: &FeatureSpec) -> Result<(Vec<Matrix>, usize)> {
    if spec.normalized_here || spec.counts_layer.is_some() || ad.var.index != spec.genes {
        return features_for(&ad, spec);
    }
    let rna = take_x(&mut ad);
    with_protein(&ad, spec, rna, 0)
}

/// Moves X out of `ad`, leaving an all-zero placeholder of its shape (no stored values), so
/// `ad` stays a valid dataset for its annotations.
fn take_x(ad: &mut AnnData) -> Matrix {
    let (n, g) = ad.x.shape();
    std::mem::replace(&mut ad.x, Matrix::Csr(CsrMatrix::zeros(n, g)))
}

/// The RNA block and, for a multimodal model, the protein block after it.
fn with_protein(
    ad: &AnnData,
    spec: &FeatureSpec,
    rna: Matrix,
    missing: usize,
) -> Result<(Vec<Matrix>, usize)> {
    let mut out = vec![rna];
    if let Some(key) = &spec.protein_key {
        let p = protein_block(ad, key, spec.protein_transform)?;
        if p.ncols() != spec.n_proteins {
            return Err(ModelError::Shape(format!(
                "obsm[{key:?}] has {} proteins, the model was trained on {}",
                p.ncols(),
                spec.n_proteins
            )));
        }
        out.push(Matrix::Dense(p));
    }
    Ok((out, missing))
}

/// Whether every stored value of `m` is an integer.
fn holds_integers(m: &scssl_data::matrix::Matrix) -> bool {
    m.try_for_each(|_, _, v| if v.fract() == 0.0 { Ok(()) } else { Err(()) })
        .is_ok()
}

/// Raw counts of a model's genes for `ad`, in the model's order (missing genes zero-filled):
/// the input of methods with a count likelihood (scVI) on new data.
pub fn counts_for(ad: &AnnData, spec: &FeatureSpec) -> Result<Matrix> {
    let work = ad.counts_only(&CountsSource::from_option(spec.counts_layer.as_deref()))?;
    ad.check_counts(&work.x)
        .map_err(|e| scssl_data::Error::NotRawCounts {
            source: Box::new(e),
            hint:
                "the model reads raw counts; this file's X (or its counts layer) does not hold them"
                    .into(),
        })?;
    Ok(select_genes(&work, &spec.genes)?.0)
}

/// `genes` of `work` as a cells × genes matrix in that order (CSR from CSR, dense from dense),
/// genes the data lacks zero-filled (their number is returned; none found at all is an error).
fn select_genes(work: &AnnData, genes: &[String]) -> Result<(Matrix, usize)> {
    select_genes_of(&work.x, &work.var.index, genes)
}

/// [`select_genes`] from a matrix and its gene names, built from the stored values (rows in
/// parallel): a file with 30,000 genes and a million cells never becomes a dense 120 GB
/// matrix, and a CSR input stays CSR. Genes in the file's order are taken as they are.
fn select_genes_of(x: &Matrix, var_names: &[String], genes: &[String]) -> Result<(Matrix, usize)> {
    use rayon::prelude::*;
    let index: std::collections::HashMap<&str, usize> = var_names
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    // each source gene's output columns (a gene the model lists twice fills both)
    let mut targets: Vec<Vec<u32>> = vec![Vec::new(); var_names.len()];
    let mut missing = 0;
    for (j, g) in genes.iter().enumerate() {
        match index.get(g.as_str()) {
            Some(&src) => targets[src].push(j as u32),
            None => missing += 1,
        }
    }
    if missing == genes.len() {
        return Err(input_error(
            "var names",
            format!("none of the model's {missing} genes is in this file's var names"),
        ));
    }
    if genes.len() == var_names.len() && genes.iter().zip(var_names).all(|(a, b)| a == b) {
        return Ok((x.clone(), 0));
    }
    let n = x.shape().0;
    let out = match x {
        Matrix::Csr(m) => {
            // blocks of rows in parallel, each row's entries sorted by output column
            const BLOCK: usize = 4096;
            let blocks: Vec<(Vec<usize>, Vec<u32>, Vec<f32>)> = (0..n.div_ceil(BLOCK))
                .into_par_iter()
                .map(|b| {
                    let (mut lens, mut cols, mut vals) = (Vec::new(), Vec::new(), Vec::new());
                    let mut row: Vec<(u32, f32)> = Vec::new();
                    for i in b * BLOCK..((b + 1) * BLOCK).min(n) {
                        row.clear();
                        let (c, v) = m.row(i);
                        for (&c, &v) in c.iter().zip(v) {
                            row.extend(targets[c as usize].iter().map(|&j| (j, v)));
                        }
                        row.sort_unstable_by_key(|e| e.0);
                        lens.push(row.len());
                        cols.extend(row.iter().map(|e| e.0));
                        vals.extend(row.iter().map(|e| e.1));
                    }
                    (lens, cols, vals)
                })
                .collect();
            let nnz = blocks.iter().map(|b| b.1.len()).sum();
            let mut indptr = Vec::with_capacity(n + 1);
            indptr.push(0);
            let (mut indices, mut data) = (Vec::with_capacity(nnz), Vec::with_capacity(nnz));
            for (lens, cols, vals) in blocks {
                for l in lens {
                    indptr.push(indptr[indptr.len() - 1] + l);
                }
                indices.extend(cols);
                data.extend(vals);
            }
            Matrix::Csr(CsrMatrix::new(n, genes.len(), indptr, indices, data)?)
        }
        Matrix::Dense(a) => {
            let mut out = Array2::<f32>::zeros((n, genes.len()));
            let width = genes.len().max(1);
            out.as_slice_mut()
                .unwrap_or(&mut [])
                .par_chunks_mut(width)
                .enumerate()
                .for_each(|(i, row)| {
                    for (c, &v) in a.row(i).iter().enumerate() {
                        for &j in &targets[c] {
                            row[j as usize] = v;
                        }
                    }
                });
            Matrix::Dense(out)
        }
    };
    Ok((out, missing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use scssl_data::matrix::{CsrMatrix, Matrix};

    #[test]
    fn gene_selection_reorders_repeats_and_zero_fills_from_sparse_and_dense() {
        let dense = ndarray::array![[1.0f32, 0.0, 2.0], [0.0, 3.0, 4.0]];
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let genes: Vec<String> = ["c", "x", "a", "c"].iter().map(|s| s.to_string()).collect();
        let want = ndarray::array![[2.0f32, 0.0, 1.0, 2.0], [4.0, 0.0, 0.0, 4.0]];
        for (m, sparse) in [
            (Matrix::Dense(dense.clone()), false),
            (Matrix::Csr(CsrMatrix::from_dense(dense.view())), true),
        ] {
            let (out, missing) = select_genes_of(&m, &names, &genes).unwrap();
            assert_eq!((out.to_dense(), missing), (want.clone(), 1));
            // the layout is kept, and CSR rows come out sorted by column
            assert_eq!(out.as_dense().is_none(), sparse);
            if let Matrix::Csr(c) = &out {
                assert_eq!(c.indices(), &[0, 2, 3, 0, 3]);
            }
            // the file's own genes in its own order: the matrix as it is
            assert_eq!(select_genes_of(&m, &names, &names).unwrap(), (m.clone(), 0));
        }
        let none = select_genes_of(&Matrix::Dense(dense), &names, &["z".to_string()]);
        assert!(
            none.unwrap_err()
                .to_string()
                .contains("none of the model's")
        );
    }

    #[test]
    fn features_follow_the_model_gene_order_and_zero_fill_missing_genes() {
        // 3 cells × 4 genes of counts, sparse
        let counts = ndarray::array![
            [1.0f32, 0.0, 3.0, 6.0],
            [0.0, 2.0, 2.0, 0.0],
            [5.0, 5.0, 0.0, 0.0]
        ];
        let names = |p: &str, n: usize| (0..n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
        let ad = AnnData::new(
            Matrix::Csr(CsrMatrix::from_dense(counts.view())),
            names("c", 3),
            names("g", 4),
        )
        .unwrap();
        let spec = FeatureSpec {
            genes: vec!["g2".into(), "absent".into(), "g0".into()],
            normalized_here: true,
            target_sum: 10.0,
            counts_layer: None,
            protein_key: None,
            protein_transform: ProteinTransform::Clr,
            n_proteins: 0,
            batch_key: None,
            batches: Vec::new(),
        };
        let (inputs, missing) = features_for(&ad, &spec).unwrap();
        assert_eq!(missing, 1);
        assert!(
            inputs[0].as_dense().is_none(),
            "CSR counts give CSR features"
        );
        let x = &inputs[0].to_dense();
        assert_eq!(x.dim(), (3, 3));
        // log1p(count / cell total × 10), with the total over all four genes
        for (i, total) in [10.0f32, 4.0, 10.0].into_iter().enumerate() {
            let want = |c: f32| (c / total * 10.0).ln_1p();
            assert!(
                (x[[i, 0]] - want(counts[[i, 2]])).abs() < 1e-6,
                "cell {i}, g2"
            );
            assert_eq!(x[[i, 1]], 0.0, "the absent gene is zero");
            assert!(
                (x[[i, 2]] - want(counts[[i, 0]])).abs() < 1e-6,
                "cell {i}, g0"
            );
        }
        let none = FeatureSpec {
            genes: vec!["x".into(), "y".into()],
            ..spec
        };
        let e = features_for(&ad, &none).unwrap_err().to_string();
        assert!(e.contains("none of the model's 2 genes"), "{e}");
    }

    /// Handing the dataset over by value changes nothing but memory: counts in X (normalised
    /// here, raw counts kept, protein block) and a log-normalised X used as stored give the
    /// features of the borrowing path.
    #[test]
    fn features_by_value_equal_the_borrowed_ones() {
        let ad = scssl_data::sim::simulate(&scssl_data::sim::SimConfig {
            n_cells: 300,
            n_genes: 120,
            n_proteins: 4,
            ..Default::default()
        })
        .unwrap();
        let opts = FeatureOptions {
            n_hvg: 50,
            protein_key: Some("protein_expression".into()),
            keep_counts: true,
            ..Default::default()
        };
        let mut normalised = training_features(&ad, &opts).unwrap();
        let mut log_normalised = ad.clone();
        log_normalised.x = normalised.matrices.remove(0);
        log_normalised.var = scssl_data::DataFrame::with_index(normalised.spec.genes);
        let as_stored = FeatureOptions {
            keep_counts: false,
            ..opts.clone()
        };
        for (data, opts) in [(ad, opts), (log_normalised, as_stored)] {
            let borrowed = training_features(&data, &opts).unwrap();
            let owned = into_training_features(data, &opts).unwrap();
            assert_eq!(owned.matrices, borrowed.matrices);
            assert_eq!(owned.counts, borrowed.counts);
            assert_eq!(owned.pca, borrowed.pca);
            assert_eq!(owned.spec, borrowed.spec);
        }
    }
}

//! PCA as a method (`method: pca`): the unintegrated baseline of every scIB table. Nothing is
//! trained: the first `hidden_dim` principal components of the input (zero-centred, as
//! scanpy's `sc.tl.pca` and the preprocessing's `X_pca`) are the embedding. The fitted means
//! and loadings are the checkpoint, so new cells (a query) are projected onto the reference's
//! components. With protein, each modality gets its own PCA (protein with at most
//! `n_proteins − 1` components) and the joint embedding is their concatenation.

use ndarray::{Array2, ArrayView2};

use super::{BatchNeeds, BatchRequest, BatchSource, EmbedInputs, Fitted, Method};
use crate::config::{ModelConfig, TrainConfig};
use crate::error::{ModelError, Result, invalid};
use crate::layers::NamedTensor;
use crate::model::{EmbeddingOutput, Embeddings, check_inputs};
use crate::train::TrainEvent;

/// The PCA baseline.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pca;

/// Components of modality `m` for `n_features` features.
fn n_components(config: &ModelConfig, m: usize, n_features: usize, n_cells: usize) -> usize {
    let cap = n_features.min(n_cells.saturating_sub(1));
    if m == 0 {
        config.hidden_dim
    } else {
        config.hidden_dim.min(cap.max(1))
    }
}

fn tensor<'a>(tensors: &'a [NamedTensor], name: &str) -> Result<&'a NamedTensor> {
    tensors
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| ModelError::Checkpoint {
            path: Default::default(),
            message: format!("tensor {name} is missing"),
        })
}

/// The mean and the loadings (components × features) of modality `m`, checked against the
/// configuration.
fn loadings<'a>(
    config: &ModelConfig,
    tensors: &'a [NamedTensor],
    m: usize,
) -> Result<(Vec<f32>, ArrayView2<'a, f32>)> {
    let g = config.input_dims[m];
    let mean = tensor(tensors, &format!("pca{m}.mean"))?;
    let comps = tensor(tensors, &format!("pca{m}.components"))?;
    let bad = |what: &str| ModelError::Checkpoint {
        path: Default::default(),
        message: format!("tensor pca{m}.{what} does not fit {g} features"),
    };
    if mean.shape != [g] {
        return Err(bad("mean"));
    }
    if comps.shape.len() != 2 || comps.shape[1] != g || comps.shape[0] == 0 {
        return Err(bad("components"));
    }
    let view =
        ArrayView2::from_shape((comps.shape[0], g), &comps.data).map_err(|_| bad("components"))?;
    Ok((mean.data.clone(), view))
}

/// `(x − mean) · componentsᵀ`, accumulated in f64.
fn project(x: ArrayView2<'_, f32>, mean: &[f32], comps: ArrayView2<'_, f32>) -> Array2<f32> {
    let k = comps.nrows();
    let mut out = Array2::<f32>::zeros((x.nrows(), k));
    let mut centred = vec![0.0f64; x.ncols()];
    for (i, row) in x.rows().into_iter().enumerate() {
        for ((c, &v), &mu) in centred.iter_mut().zip(row).zip(mean) {
            *c = v as f64 - mu as f64;
        }
        for (c, comp) in comps.rows().into_iter().enumerate() {
            let dot: f64 = centred.iter().zip(comp).map(|(&a, &b)| a * b as f64).sum();
            out[[i, c]] = dot as f32;
        }
    }
    out
}

impl Method for Pca {
    fn name(&self) -> &'static str {
        "pca"
    }

    fn summary(&self) -> &'static str {
        "PCA: the input's first hidden_dim principal components (the unintegrated baseline)"
    }

    fn trains(&self) -> bool {
        false
    }

    fn needs(&self, _config: &ModelConfig) -> BatchNeeds {
        BatchNeeds {
            features: true,
            all_cells: true,
            ..BatchNeeds::default()
        }
    }

    /// Nothing to check before the data is known: a `hidden_dim` above the number of genes (or
    /// cells − 1) fails at fit time, naming `model.hidden_dim`.
    fn validate(&self, _config: &ModelConfig) -> Result<()> {
        Ok(())
    }

    fn fit(
        &self,
        config: &ModelConfig,
        _training: &TrainConfig,
        n_cells: usize,
        source: &mut BatchSource<'_>,
        _progress: &mut dyn FnMut(&TrainEvent),
    ) -> Result<Fitted> {
        let cells: Vec<usize> = (0..n_cells).collect();
        let batch = source(BatchRequest {
            epoch: 0,
            step: 0,
            cells: &cells,
            needs: self.needs(config),
        })
        .map_err(|message| ModelError::Views { epoch: 0, message })?;
        let views: Vec<_> = batch.features.iter().map(|x| x.view()).collect();
        check_inputs(&config.input_dims, &views)
            .and_then(|n| {
                if n == n_cells {
                    Ok(())
                } else {
                    Err(ModelError::Shape(format!(
                        "{n} cells given, {n_cells} expected"
                    )))
                }
            })
            .map_err(|e| ModelError::Views {
                epoch: 0,
                message: e.to_string(),
            })?;
        let mut tensors = Vec::new();
        for (m, x) in views.iter().enumerate() {
            let k = n_components(config, m, x.ncols(), n_cells);
            let fitted = scssl_data::pp::pca_dense(*x, k).map_err(|e| {
                invalid(
                    "model.hidden_dim",
                    format!(
                        "PCA of modality {m} ({n_cells} cells × {} features): {e}",
                        x.ncols()
                    ),
                )
            })?;
            tensors.push(NamedTensor {
                name: format!("pca{m}.mean"),
                shape: vec![x.ncols()],
                data: fitted.mean.iter().map(|&v| v as f32).collect(),
            });
            tensors.push(NamedTensor {
                name: format!("pca{m}.components"),
                shape: vec![k, x.ncols()],
                data: fitted.components.iter().copied().collect(),
            });
            tracing::info!(
                modality = m,
                components = k,
                explained = fitted.explained_variance_ratio.iter().sum::<f64>(),
                "PCA fitted"
            );
        }
        Ok(Fitted {
            tensors,
            history: Default::default(),
        })
    }

    fn embed(
        &self,
        config: &ModelConfig,
        tensors: &[NamedTensor],
        inputs: &EmbedInputs<'_>,
        _output: EmbeddingOutput,
    ) -> Result<Embeddings> {
        let n = check_inputs(&config.input_dims, &inputs.features)?;
        let mut out = Embeddings::builder(inputs.features.len(), n);
        let mut joint: Vec<Array2<f32>> = Vec::new();
        for (m, x) in inputs.features.iter().enumerate() {
            let (mean, comps) = loadings(config, tensors, m)?;
            let e = project(*x, &mean, comps);
            out.push_modality(m, e.ncols(), e.iter().copied().collect());
            joint.push(e);
        }
        let views: Vec<_> = joint.iter().map(|e| e.view()).collect();
        let cat = ndarray::concatenate(ndarray::Axis(1), &views)
            .map_err(|e| ModelError::Inconsistent(format!("PCA joint embedding: {e}")))?;
        out.push_joint(cat.ncols(), cat.iter().copied().collect());
        out.finish()
    }

    fn check_tensors(&self, config: &ModelConfig, tensors: &[NamedTensor]) -> Result<()> {
        for m in 0..config.input_dims.len() {
            loadings(config, tensors, m)?;
        }
        let extra = tensors.iter().find(|t| {
            !(0..config.input_dims.len())
                .any(|m| t.name == format!("pca{m}.mean") || t.name == format!("pca{m}.components"))
        });
        match extra {
            Some(t) => Err(ModelError::Checkpoint {
                path: Default::default(),
                message: format!("tensor {} does not belong to this model", t.name),
            }),
            None => Ok(()),
        }
    }
}

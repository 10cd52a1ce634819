//! What every method's embedding looks like: the output choice, the joint and per-modality
//! embeddings, and the input checks shared by all methods.

use ndarray::{Array2, ArrayView2};

use crate::error::{ModelError, Result};

/// Which output a method's embedding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingOutput {
    /// The backbone output (the reference default, `predict_projection: False`).
    #[default]
    Backbone,
    /// The projector output (`predict_projection: True`; for BYOL the predictor output, as in
    /// the reference, whose `forward` returns p). Methods without a projector ignore it.
    Projection,
}

/// Embeddings of a (possibly multimodal) dataset.
#[derive(Debug, Clone)]
pub struct Embeddings {
    /// The integrated embedding (`add`/`mean`, or the concatenation).
    pub joint: Array2<f32>,
    /// Each modality's own embedding, RNA first.
    pub per_modality: Vec<Array2<f32>>,
}

impl Embeddings {
    /// Collects chunked outputs of `n_modalities` modalities for `n` cells.
    pub fn builder(n_modalities: usize, n: usize) -> EmbeddingsBuilder {
        EmbeddingsBuilder {
            n,
            parts: vec![Vec::new(); n_modalities],
            widths: vec![0; n_modalities],
            joint: Vec::new(),
            joint_width: 0,
        }
    }
}

/// Rows of embeddings appended chunk by chunk (see [`Embeddings::builder`]).
#[derive(Debug, Clone)]
pub struct EmbeddingsBuilder {
    n: usize,
    parts: Vec<Vec<f32>>,
    widths: Vec<usize>,
    joint: Vec<f32>,
    joint_width: usize,
}

impl EmbeddingsBuilder {
    /// Appends a chunk of modality `m`'s rows (row-major, `width` columns).
    pub fn push_modality(&mut self, m: usize, width: usize, rows: Vec<f32>) {
        self.widths[m] = width;
        self.parts[m].extend(rows);
    }

    /// Appends a chunk of the joint embedding's rows.
    pub fn push_joint(&mut self, width: usize, rows: Vec<f32>) {
        self.joint_width = width;
        self.joint.extend(rows);
    }

    /// The embeddings; an error (a bug of the method, not of the input) when the chunks do
    /// not add up to `n` rows.
    pub fn finish(self) -> Result<Embeddings> {
        let n = self.n;
        let per_modality = self
            .parts
            .into_iter()
            .zip(self.widths)
            .map(|(v, w)| Array2::from_shape_vec((n, w), v).map_err(shape_inconsistent))
            .collect::<Result<Vec<_>>>()?;
        let joint = Array2::from_shape_vec((n, self.joint_width), self.joint)
            .map_err(shape_inconsistent)?;
        Ok(Embeddings {
            joint,
            per_modality,
        })
    }
}

/// Checks that `inputs` has one matrix per modality with the expected widths and the same
/// number of cells, and no non-finite value; returns the number of cells.
pub fn check_inputs(dims: &[usize], inputs: &[ArrayView2<'_, f32>]) -> Result<usize> {
    if inputs.len() != dims.len() {
        return Err(ModelError::Shape(format!(
            "the model has {} modalities, {} input matrices were given",
            dims.len(),
            inputs.len()
        )));
    }
    let n = inputs.first().map(|x| x.nrows()).unwrap_or(0);
    for (m, (x, &g)) in inputs.iter().zip(dims).enumerate() {
        if x.ncols() != g {
            return Err(ModelError::Shape(format!(
                "modality {m} has {} features, the model was trained on {g}",
                x.ncols()
            )));
        }
        if x.nrows() != n {
            return Err(ModelError::Shape(format!(
                "modality {m} has {} cells, modality 0 has {n}",
                x.nrows()
            )));
        }
        if let Some(v) = x.iter().find(|v| !v.is_finite()) {
            return Err(ModelError::Shape(format!(
                "modality {m} contains a non-finite value ({v})"
            )));
        }
    }
    Ok(n)
}

/// Each embedding chunk appends (end − start) × width values, so a shape mismatch here is a
/// bug of this crate, reported as such rather than a panic.
fn shape_inconsistent(e: ndarray::ShapeError) -> ModelError {
    ModelError::Inconsistent(format!("embedding rows × width: {e}"))
}

/// Rows per chunk when embedding on the CPU (bounds the memory of one forward pass).
pub(crate) const EMBED_CHUNK: usize = 4096;

/// Rows `rows` of `x` as a CPU tensor.
pub(crate) fn rows_tensor(
    x: ArrayView2<'_, f32>,
    rows: std::ops::Range<usize>,
) -> burn::tensor::Tensor<crate::runtime::CpuBackend, 2> {
    let (len, width) = (rows.len(), x.ncols());
    let data: Vec<f32> = x.slice(ndarray::s![rows, ..]).iter().copied().collect();
    crate::layers::tensor_from(data, [len, width], &Default::default())
}

/// The embedding of `n` cells by a method with one latent space (scVI, totalVI, the masked
/// autoencoder): `encode` maps a range of rows to their latent, computed in chunks of
/// [`EMBED_CHUNK`] rows; the latent is both the joint and the only per-modality embedding.
pub(crate) fn embed_latent(
    n: usize,
    mut encode: impl FnMut(
        std::ops::Range<usize>,
    ) -> Result<burn::tensor::Tensor<crate::runtime::CpuBackend, 2>>,
) -> Result<Embeddings> {
    let mut out = Embeddings::builder(1, n);
    let mut start = 0;
    while start < n {
        let end = (start + EMBED_CHUNK).min(n);
        let latent = encode(start..end)?;
        let width = latent.dims()[1];
        let values = crate::layers::tensor_values(latent);
        out.push_modality(0, width, values.clone());
        out.push_joint(width, values);
        start = end;
    }
    out.finish()
}

/// Checks that `x` (named `what` in the error) holds raw counts for `method`: finite and
/// non-negative.
pub(crate) fn check_nonnegative(what: &str, method: &str, x: ArrayView2<'_, f32>) -> Result<()> {
    match x.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
        Some(v) => Err(ModelError::Shape(format!(
            "the {what} contain {v}; {method} needs raw (non-negative) counts"
        ))),
        None => Ok(()),
    }
}

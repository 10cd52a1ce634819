//! Neighbour inputs for `NeighbourMix`, built with `scssl-data` (feature `neighbors`), as the
//! benchmark builds them once before training on the log-normalised HVG matrix: 50-component
//! PCA, then within-batch kNN and mutual nearest neighbours between batches on the
//! L2-normalised PCA rows (CLAIRE), or BBKNN on the PCA.

use ndarray::ArrayView2;
use scssl_data::matrix::Matrix;
use scssl_data::neighbors::{KnnMethod, bbknn, knn_within_groups, mutual_nearest_neighbors};
use scssl_data::pp::pca;

use crate::error::{Error, Result};

/// Neighbour lists (global cell ids) for every cell.
#[derive(Debug, Clone, PartialEq)]
pub struct NeighbourGraphs {
    /// Within-batch kNN (self excluded).
    pub within_batch_knn: Vec<Vec<u32>>,
    /// MNN partners in other batches.
    pub mnn: Vec<Vec<u32>>,
    /// BBKNN neighbours (self excluded), strongest connectivity first.
    pub bbknn: Vec<Vec<u32>>,
}

impl NeighbourGraphs {
    /// Builds all three graphs. `k` is the within-batch kNN size and BBKNN's neighbours per
    /// batch (the reference's `knn`); `k_anchor` the MNN neighbourhood (the reference's 5).
    pub fn build(
        x: ArrayView2<'_, f32>,
        batches: &[u32],
        k: usize,
        k_anchor: usize,
        seed: u64,
    ) -> Result<Self> {
        Self::build_from_matrix(&Matrix::Dense(x.to_owned()), batches, k, k_anchor, seed)
    }

    /// [`NeighbourGraphs::build`] from a dense or CSR matrix; the PCA reads a CSR matrix in
    /// row blocks, never densifying it whole.
    pub fn build_from_matrix(
        x: &Matrix,
        batches: &[u32],
        k: usize,
        k_anchor: usize,
        seed: u64,
    ) -> Result<Self> {
        let (n, g) = x.shape();
        if batches.len() != n {
            return Err(Error::Input(format!(
                "{} batch codes for {n} cells",
                batches.len(),
            )));
        }
        let n_comps = 50.min(g).min(n.saturating_sub(1)).max(1);
        let pca = pca(x, n_comps)?.embedding;
        let mut unit = pca.clone();
        for mut r in unit.rows_mut() {
            let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                r.mapv_inplace(|v| v / norm);
            }
        }
        let within_batch_knn = knn_within_groups(unit.view(), batches, k, KnnMethod::Auto, seed)?;
        let mnn = mutual_nearest_neighbors(pca.view(), batches, k_anchor, true)?.partners(n);
        let bbknn = bbknn(pca.view(), batches, k, None)?.neighbor_lists();
        Ok(Self {
            within_batch_knn,
            mnn,
            bbknn,
        })
    }

    /// A context over `data` that uses these graphs.
    pub fn context<'a>(&'a self, data: impl Into<crate::CellRows<'a>>) -> crate::Context<'a> {
        crate::Context {
            data: data.into(),
            within_batch_knn: Some(&self.within_batch_knn),
            mnn: Some(&self.mnn),
            bbknn: Some(&self.bbknn),
        }
    }
}

//! CLAIRE's training data (methods.md §5.1): the within-batch neighbour graph and the anchor
//! pairs (Seurat's or mutual nearest neighbours between batches), the anchored cells, and the
//! GMM re-filtering of the anchors; the network, loss and method are in [`super::claire`].

use std::sync::Arc;

use ndarray::Array2;
use scssl_data::neighbors::{KnnMethod, knn_within_groups, mutual_nearest_neighbors};

use super::claire::ClaireParams;
use crate::error::{ModelError, Result, invalid};
use crate::gmm::Gmm2;

/// The training data CLAIRE's views are drawn from: every cell's features, its within-batch
/// neighbours, and the initial anchor pairs.
#[derive(Debug)]
pub struct ClaireData {
    /// Cells × genes.
    pub x: Array2<f32>,
    /// Within-batch neighbours of each cell (global ids, self excluded).
    pub knn: Vec<Vec<u32>>,
    /// Anchor pairs (global ids).
    pub pairs: Vec<(u32, u32)>,
}

/// Shared handle on the [`ClaireData`] of one `fit`; two handles are equal when they are the
/// same data.
#[derive(Debug, Clone)]
pub struct Prepared(pub(super) Arc<ClaireData>);

impl PartialEq for Prepared {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Builds CLAIRE's training data from all cells' features and batch codes: PCA, within-batch
/// kNN, and the anchors (`params.anchor_pairs` when given, else MNN between batches).
pub fn prepare(
    params: &ClaireParams,
    x: Array2<f32>,
    batches: &[u32],
    seed: u64,
) -> Result<ClaireData> {
    let n = x.nrows();
    if batches.len() != n {
        return Err(ModelError::Shape(format!(
            "{} batch codes for {n} cells",
            batches.len()
        )));
    }
    let n_comps = params.n_pcs.min(x.ncols()).min(n.saturating_sub(1)).max(1);
    let pca = scssl_data::pp::pca_dense(x.view(), n_comps)?.embedding;
    let mut unit = pca.clone();
    for mut r in unit.rows_mut() {
        let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            r.mapv_inplace(|v| v / norm);
        }
    }
    let knn = knn_within_groups(unit.view(), batches, params.knn, KnnMethod::Auto, seed)?;
    let pairs = match &params.anchor_pairs {
        Some(p) => {
            if let Some(&(a, b)) = p.iter().find(|(a, b)| *a as usize >= n || *b as usize >= n) {
                return Err(invalid(
                    "model.claire.anchors",
                    format!("anchor pair ({a}, {b}) names a cell beyond the {n} cells"),
                ));
            }
            p.clone()
        }
        None => {
            let mut present: Vec<u32> = batches.to_vec();
            present.sort_unstable();
            present.dedup();
            if present.len() < 2 {
                return Err(invalid(
                    "data.batch_key",
                    format!(
                        "CLAIRE trains on mutual-nearest-neighbour anchors between batches and the data has {} batch; give a batch key with at least two batches, or Seurat anchors (model.claire.anchors)",
                        present.len()
                    ),
                ));
            }
            mutual_nearest_neighbors(pca.view(), batches, params.k_anchor, true)?.pairs
        }
    };
    if pairs.is_empty() {
        return Err(invalid(
            "model.claire.k_anchor",
            format!(
                "no anchors between the batches (k_anchor = {}); raise k_anchor or give Seurat anchors (model.claire.anchors)",
                params.k_anchor
            ),
        ));
    }
    Ok(ClaireData { x, knn, pairs })
}

/// Each cell's anchor partners (both directions).
pub(super) fn partners(n: usize, pairs: &[(u32, u32)]) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); n];
    for &(a, b) in pairs {
        out[a as usize].push(b);
        out[b as usize].push(a);
    }
    out
}

/// The cells with at least one anchor, ascending.
pub(super) fn anchored_cells(pairs: &[(u32, u32)]) -> Vec<usize> {
    let mut cells: Vec<usize> = pairs
        .iter()
        .flat_map(|&(a, b)| [a as usize, b as usize])
        .collect();
    cells.sort_unstable();
    cells.dedup();
    cells
}

/// Which anchor pairs CLAIRE keeps given their cosine similarities: a two-component Gaussian
/// mixture of the similarities, and the pairs whose posterior for the majority component (the
/// one most pairs are assigned to) is at least `threshold`. `None` when the mixture cannot be
/// fitted (fewer than two distinct similarities, no convergence).
pub fn refilter(similarities: &[f64], threshold: f64) -> Option<Vec<bool>> {
    let gmm = Gmm2::fit(similarities)?;
    let posteriors: Vec<[f64; 2]> = similarities.iter().map(|&s| gmm.posteriors(s)).collect();
    let in_second = posteriors.iter().filter(|p| p[1] > p[0]).count();
    // scikit-learn's `predict` takes the argmax, ties to the first component
    let major = usize::from(in_second * 2 > posteriors.len());
    Some(posteriors.iter().map(|p| p[major] >= threshold).collect())
}

//! totalVI's empirical prior of the protein background (scvi-tools 1.1
//! `TOTALVI._get_totalvi_protein_priors`, methods.md §5.6): per batch, 100 cells drawn with
//! replacement; for each, a two-component Gaussian mixture fitted to log1p of its protein
//! counts (scikit-learn's `GaussianMixture(n_components=2)`: k-means start, EM to a change of
//! the mean log-likelihood below 1e-3 within 100 iterations, `reg_covar` 1e-6); the component
//! with the lower mean is the background. The batch's prior mean is the mean of those means,
//! its scale √(Σ s²)/100. A cell whose fit fails (fewer than two distinct values, or no
//! convergence: scikit-learn's `ConvergenceWarning`) contributes mean 0 and scale 0.05, and a
//! batch without cells gets mean 0 and scale 1, as there.
//!
//! One difference by design: scikit-learn starts k-means from random k-means++ centres and
//! draws the cells with NumPy's global generator; here k-means starts from the smallest and
//! largest value and the cells come from a generator keyed by (seed, batch), so the prior is
//! reproducible.

use ndarray::ArrayView2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Cells sampled per batch.
pub const CELLS_PER_BATCH: usize = 100;

/// The prior of each batch (one value per batch; scvi-tools tiles it over proteins).
#[derive(Debug, Clone, PartialEq)]
pub struct BackgroundPrior {
    /// Prior mean of log background rate, per batch.
    pub mean: Vec<f64>,
    /// Prior scale, per batch.
    pub scale: Vec<f64>,
}

/// The empirical prior of `protein` (raw counts, cells × proteins) for batches `0..n_batches`.
pub fn empirical_prior(
    protein: ArrayView2<'_, f32>,
    codes: &[u32],
    n_batches: usize,
    seed: u64,
) -> BackgroundPrior {
    let mut mean = Vec::with_capacity(n_batches);
    let mut scale = Vec::with_capacity(n_batches);
    for b in 0..n_batches {
        let rows: Vec<usize> = (0..codes.len())
            .filter(|&i| codes[i] as usize == b)
            .collect();
        if rows.is_empty() {
            mean.push(0.0);
            scale.push(1.0);
            continue;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7074_6F74_616C_7669);
        rng.set_stream(b as u64 + 1);
        let mut mus = Vec::with_capacity(CELLS_PER_BATCH);
        let mut squares = 0.0;
        for _ in 0..CELLS_PER_BATCH {
            let i = rows[rng.random_range(0..rows.len())];
            let values: Vec<f64> = protein.row(i).iter().map(|&v| (v as f64).ln_1p()).collect();
            let (mu, s) = match gmm_background(&values) {
                Some((m, var)) => (m, var.sqrt()),
                None => (0.0, 0.05),
            };
            mus.push(mu);
            squares += s * s;
        }
        mean.push(mus.iter().sum::<f64>() / CELLS_PER_BATCH as f64);
        scale.push(squares.sqrt() / CELLS_PER_BATCH as f64);
    }
    BackgroundPrior { mean, scale }
}

/// Mean and variance of the lower-mean component of a two-component 1-D Gaussian mixture
/// fitted by EM as scikit-learn does ([`crate::gmm::Gmm2`]); `None` where scikit-learn warns
/// (see the module docs).
pub fn gmm_background(x: &[f64]) -> Option<(f64, f64)> {
    let g = crate::gmm::Gmm2::fit(x)?;
    let k = if g.means[0] <= g.means[1] { 0 } else { 1 };
    Some((g.means[k], g.variances[k]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_clear_components_are_found() {
        let mut x: Vec<f64> = (0..30).map(|i| 1.0 + 0.01 * (i % 5) as f64).collect();
        x.extend((0..10).map(|i| 5.0 + 0.02 * (i % 3) as f64));
        let (m, v) = gmm_background(&x).unwrap();
        assert!((m - 1.02).abs() < 1e-9, "{m}");
        assert!(v > 0.0 && v < 0.01, "{v}");
    }

    #[test]
    fn constant_cells_fall_back_and_empty_batches_get_the_default() {
        assert_eq!(gmm_background(&[0.0; 12]), None);
        let protein = ndarray::Array2::<f32>::zeros((4, 12));
        let p = empirical_prior(protein.view(), &[0, 0, 1, 1], 3, 0);
        assert_eq!(p.mean, vec![0.0, 0.0, 0.0]);
        // 100 cells of scale 0.05: √(100 · 0.05²)/100 = 0.005; no cell: 1
        assert!((p.scale[0] - 0.005).abs() < 1e-12);
        assert_eq!(p.scale[2], 1.0);
    }
}

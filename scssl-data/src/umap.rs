//! UMAP layouts of an embedding, as umap-learn computes them: the fuzzy simplicial set of the
//! kNN graph ([`crate::neighbors::fuzzy_connectivities`]), a spectral initialisation (the
//! leading non-trivial eigenvectors of the normalised graph), and umap-learn's SGD layout
//! (`optimize_layout_euclidean`: attraction along edges sampled by weight, negative sampling,
//! `a`, `b` fitted to `min_dist`/`spread`, linearly decaying learning rate).
//!
//! The SGD runs on one thread in a fixed order from one seeded generator, so a layout depends
//! on the seed only, never on the thread count (umap-learn's parallel SGD is not
//! reproducible). The kNN search before it is parallel and deterministic.

use faer::{Mat, Side};
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::matrix::{CsrMatrix, dot};
use crate::neighbors::{KnnMethod, fuzzy_connectivities, knn};

/// UMAP parameters (umap-learn's defaults).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UmapOptions {
    /// Neighbours per cell, self included (`n_neighbors`).
    pub n_neighbors: usize,
    /// Minimum distance between points in the layout (`min_dist`).
    pub min_dist: f64,
    /// Scale of the layout (`spread`).
    pub spread: f64,
    /// SGD epochs; `None` is umap-learn's rule: 500 up to 10,000 cells, 200 above.
    pub n_epochs: Option<usize>,
    /// Negative samples per positive one (`negative_sample_rate`).
    pub negative_sample_rate: usize,
    /// Initial learning rate (`learning_rate`).
    pub learning_rate: f64,
    /// Weight of the repulsive term (`repulsion_strength`).
    pub repulsion_strength: f64,
    /// Seed of the initialisation noise, the kNN search and the negative samples.
    pub seed: u64,
}

impl Default for UmapOptions {
    fn default() -> Self {
        Self {
            n_neighbors: 15,
            min_dist: 0.1,
            spread: 1.0,
            n_epochs: None,
            negative_sample_rate: 5,
            learning_rate: 1.0,
            repulsion_strength: 1.0,
            seed: 0,
        }
    }
}

/// Fits `a`, `b` of the layout's similarity curve `1 / (1 + a·d^(2b))` to the target curve of
/// `spread` and `min_dist` on 300 points of [0, 3·spread] (umap-learn's `find_ab_params`,
/// which uses scipy's `curve_fit`; here Levenberg–Marquardt from a = b = 1).
pub fn find_ab_params(spread: f64, min_dist: f64) -> (f64, f64) {
    let xs: Vec<f64> = (0..300).map(|i| 3.0 * spread * i as f64 / 299.0).collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    let loss = |a: f64, b: f64| -> f64 {
        xs.iter()
            .zip(&ys)
            .map(|(&x, &y)| {
                let f = 1.0 / (1.0 + a * x.powf(2.0 * b));
                (f - y) * (f - y)
            })
            .sum()
    };
    let (mut a, mut b, mut lambda) = (1.0f64, 1.0f64, 1e-3f64);
    let mut current = loss(a, b);
    for _ in 0..200 {
        // normal equations of the residuals' Jacobian
        let (mut jtj, mut jtr) = ([[0.0f64; 2]; 2], [0.0f64; 2]);
        for (&x, &y) in xs.iter().zip(&ys) {
            if x <= 0.0 {
                continue; // f = 1 there whatever a and b
            }
            let u = x.powf(2.0 * b);
            let den = 1.0 + a * u;
            let f = 1.0 / den;
            let da = -u / (den * den);
            let db = -a * u * 2.0 * x.ln() / (den * den);
            let r = f - y;
            let g = [da, db];
            for p in 0..2 {
                jtr[p] += g[p] * r;
                for q in 0..2 {
                    jtj[p][q] += g[p] * g[q];
                }
            }
        }
        let (m00, m11, m01) = (
            jtj[0][0] * (1.0 + lambda),
            jtj[1][1] * (1.0 + lambda),
            jtj[0][1],
        );
        let det = m00 * m11 - m01 * m01;
        if det.abs() < 1e-300 {
            break;
        }
        let step_a = (m11 * jtr[0] - m01 * jtr[1]) / det;
        let step_b = (m00 * jtr[1] - m01 * jtr[0]) / det;
        let (na, nb) = (a - step_a, b - step_b);
        let next = if na > 0.0 && nb > 0.0 {
            loss(na, nb)
        } else {
            f64::INFINITY
        };
        if next < current {
            let done = (current - next) < 1e-15 * current.max(1e-300);
            (a, b, current) = (na, nb, next);
            lambda = (lambda / 10.0).max(1e-12);
            if done {
                break;
            }
        } else {
            lambda *= 10.0;
            if lambda > 1e12 {
                break;
            }
        }
    }
    (a, b)
}

/// The UMAP layout (cells × 2) of an embedding: kNN (self included, `n_neighbors`), the fuzzy
/// graph, then [`umap_from_graph`].
pub fn umap(x: ArrayView2<'_, f32>, opts: &UmapOptions) -> Result<Array2<f32>> {
    let n = x.nrows();
    if n < 3 {
        return Err(Error::param(
            "x",
            format!("a UMAP needs at least 3 cells, the embedding has {n}"),
        ));
    }
    if let Some(((i, j), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::param(
            "x",
            format!("the embedding has a non-finite value {v} at cell {i}, column {j}"),
        ));
    }
    let k = opts.n_neighbors.clamp(2, n);
    let nn = knn(x, k, KnnMethod::Auto, opts.seed)?;
    umap_from_graph(&fuzzy_connectivities(&nn), opts)
}

/// The UMAP layout (cells × 2) of a symmetric fuzzy graph (e.g. scanpy's
/// `obsp['connectivities']`).
pub fn umap_from_graph(graph: &CsrMatrix, opts: &UmapOptions) -> Result<Array2<f32>> {
    let n = graph.n_rows();
    if graph.n_cols() != n || n < 3 {
        return Err(Error::param(
            "graph",
            format!(
                "a UMAP needs a square graph of at least 3 cells, got {} × {}",
                n,
                graph.n_cols()
            ),
        ));
    }
    if !(opts.spread > 0.0 && opts.min_dist >= 0.0 && opts.min_dist <= opts.spread) {
        return Err(Error::param(
            "min_dist",
            format!(
                "min_dist {} and spread {} need 0 ≤ min_dist ≤ spread, spread > 0",
                opts.min_dist, opts.spread
            ),
        ));
    }
    let n_epochs = opts
        .n_epochs
        .unwrap_or(if n <= 10_000 { 500 } else { 200 })
        .max(1);
    let (a, b) = find_ab_params(opts.spread, opts.min_dist);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut emb = spectral_init(graph, &mut rng);
    // umap-learn rescales the initialisation into [0, 10] per dimension
    for d in 0..2 {
        let col = emb.column(d);
        let lo = col.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = col.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let span = if hi > lo { hi - lo } else { 1.0 };
        emb.column_mut(d).mapv_inplace(|v| 10.0 * (v - lo) / span);
    }
    // edges (both directions of the symmetric graph) weaker than max / n_epochs are dropped
    let w_max = graph.data().iter().copied().fold(0.0f32, f32::max);
    let (mut heads, mut tails, mut weights) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let (cols, vals) = graph.row(i);
        for (&j, &w) in cols.iter().zip(vals) {
            if w >= w_max / n_epochs as f32 && w > 0.0 && j as usize != i {
                heads.push(i);
                tails.push(j as usize);
                weights.push(w as f64);
            }
        }
    }
    let epochs_per_sample: Vec<f64> = weights
        .iter()
        .map(|&w| n_epochs as f64 / (n_epochs as f64 * w / w_max as f64))
        .collect();
    let mut flat: Vec<f32> = emb.iter().copied().collect();
    sgd_layout(
        &mut flat,
        &heads,
        &tails,
        &epochs_per_sample,
        n_epochs,
        (a as f32, b as f32),
        opts,
        &mut rng,
    );
    Array2::from_shape_vec((n, 2), flat)
        .map_err(|e| Error::param("layout", format!("internal shape error: {e}")))
}

/// The two leading non-trivial eigenvectors of `D^-1/2 W D^-1/2` by subspace iteration with
/// Rayleigh–Ritz steps (umap-learn uses ARPACK on the Laplacian; the vectors are the same up
/// to sign and rotation within a repeated eigenvalue), scaled as umap-learn scales them and
/// with its small noise added. A graph whose iteration does not settle still gets these
/// vectors: they are only the starting point of the SGD.
fn spectral_init(graph: &CsrMatrix, rng: &mut ChaCha8Rng) -> Array2<f32> {
    let n = graph.n_rows();
    let deg: Vec<f64> = (0..n)
        .map(|i| graph.row(i).1.iter().map(|&v| v as f64).sum::<f64>())
        .collect();
    let inv_sqrt: Vec<f64> = deg
        .iter()
        .map(|&d| if d > 0.0 { 1.0 / d.sqrt() } else { 0.0 })
        .collect();
    // the trivial eigenvector (eigenvalue 1) is D^1/2·1
    let mut trivial: Vec<f64> = deg.iter().map(|d| d.sqrt()).collect();
    normalize(&mut trivial);
    // (I + M) / 2 has the same eigenvectors with eigenvalues in [0, 1]: powers keep the top
    let apply = |v: &[f64], out: &mut [f64]| {
        for i in 0..n {
            let (cols, vals) = graph.row(i);
            let mut s = 0.0;
            for (&j, &w) in cols.iter().zip(vals) {
                s += w as f64 * inv_sqrt[j as usize] * v[j as usize];
            }
            out[i] = 0.5 * (v[i] + inv_sqrt[i] * s);
        }
    };
    let block = 6.min(n - 1).max(2);
    let mut q: Vec<Vec<f64>> = (0..block)
        .map(|_| (0..n).map(|_| rng.random::<f64>() - 0.5).collect())
        .collect();
    let mut tmp = vec![0.0; n];
    for _ in 0..300 {
        for v in q.iter_mut() {
            apply(v, &mut tmp);
            v.copy_from_slice(&tmp);
        }
        orthonormalize(&mut q, &trivial);
    }
    // Rayleigh–Ritz: the block's best approximations of the leading eigenvectors
    let mut h = Mat::<f64>::zeros(block, block);
    let aq: Vec<Vec<f64>> = q
        .iter()
        .map(|v| {
            let mut out = vec![0.0; n];
            apply(v, &mut out);
            out
        })
        .collect();
    for r in 0..block {
        for c in 0..block {
            h[(r, c)] = dot(&q[r], &aq[c]);
        }
    }
    let mut coords = Array2::<f32>::zeros((n, 2));
    if let Ok(evd) = h.self_adjoint_eigen(Side::Lower) {
        let u = evd.U();
        for d in 0..2 {
            let src = block - 1 - d; // eigenvalues ascend
            for i in 0..n {
                let v: f64 = (0..block).map(|r| u[(r, src)] * q[r][i]).sum();
                coords[[i, d]] = v as f32;
            }
        }
    } else {
        for i in 0..n {
            coords[[i, 0]] = q[0][i] as f32;
            coords[[i, 1]] = q[1][i] as f32;
        }
    }
    let max_abs = coords.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let expansion = if max_abs > 0.0 { 10.0 / max_abs } else { 1.0 };
    coords.mapv_inplace(|v| v * expansion);
    for v in coords.iter_mut() {
        // umap-learn adds normal noise of scale 1e-4; a uniform one of the same size will do
        *v += (rng.random::<f32>() - 0.5) * 2e-4;
    }
    coords
}

fn normalize(v: &mut [f64]) {
    let s = dot(v, v).sqrt();
    if s > 0.0 {
        v.iter_mut().for_each(|x| *x /= s);
    }
}

/// Gram–Schmidt of the block, against `fixed` first (twice, for stability).
fn orthonormalize(q: &mut [Vec<f64>], fixed: &[f64]) {
    for i in 0..q.len() {
        for _ in 0..2 {
            let p = dot(&q[i], fixed);
            q[i].iter_mut().zip(fixed).for_each(|(x, f)| *x -= p * f);
            for j in 0..i {
                let (head, tail) = q.split_at_mut(i);
                let p = dot(&tail[0], &head[j]);
                tail[0]
                    .iter_mut()
                    .zip(&head[j])
                    .for_each(|(x, f)| *x -= p * f);
            }
        }
        normalize(&mut q[i]);
    }
}

/// umap-learn's `optimize_layout_euclidean` with `move_other = True`, on one thread, over
/// the layout as a flat row-major cells × 2 buffer.
fn sgd_layout(
    flat: &mut [f32],
    heads: &[usize],
    tails: &[usize],
    epochs_per_sample: &[f64],
    n_epochs: usize,
    (a, b): (f32, f32),
    opts: &UmapOptions,
    rng: &mut ChaCha8Rng,
) {
    let n = flat.len() / 2;
    let gamma = opts.repulsion_strength as f32;
    let rate = opts.negative_sample_rate.max(1) as f64;
    let epochs_per_negative: Vec<f64> = epochs_per_sample.iter().map(|e| e / rate).collect();
    let mut next_sample = epochs_per_sample.to_vec();
    let mut next_negative = epochs_per_negative.clone();
    let clip = |v: f32| v.clamp(-4.0, 4.0);
    for epoch in 0..n_epochs {
        let alpha = (opts.learning_rate * (1.0 - epoch as f64 / n_epochs as f64)) as f32;
        let e = epoch as f64;
        for i in 0..heads.len() {
            if next_sample[i] > e {
                continue;
            }
            let (j, k) = (heads[i], tails[i]);
            let dx = flat[2 * j] - flat[2 * k];
            let dy = flat[2 * j + 1] - flat[2 * k + 1];
            let d2 = dx * dx + dy * dy;
            if d2 > 0.0 {
                let coeff = -2.0 * a * b * d2.powf(b - 1.0) / (a * d2.powf(b) + 1.0);
                let (gx, gy) = (clip(coeff * dx) * alpha, clip(coeff * dy) * alpha);
                flat[2 * j] += gx;
                flat[2 * j + 1] += gy;
                flat[2 * k] -= gx;
                flat[2 * k + 1] -= gy;
            }
            next_sample[i] += epochs_per_sample[i];
            let n_neg = ((e - next_negative[i]) / epochs_per_negative[i]).max(0.0) as usize;
            for _ in 0..n_neg {
                let k = rng.random_range(0..n);
                if k == j {
                    continue;
                }
                let dx = flat[2 * j] - flat[2 * k];
                let dy = flat[2 * j + 1] - flat[2 * k + 1];
                let d2 = dx * dx + dy * dy;
                if d2 > 0.0 {
                    let coeff = 2.0 * gamma * b / ((0.001 + d2) * (a * d2.powf(b) + 1.0));
                    flat[2 * j] += clip(coeff * dx) * alpha;
                    flat[2 * j + 1] += clip(coeff * dy) * alpha;
                }
            }
            next_negative[i] += n_neg as f64 * epochs_per_negative[i];
        }
    }
}

/// The share of each cell's `k` nearest neighbours in `high` (self excluded) that are also
/// among its `k` nearest in `low`, averaged over cells: how well a layout keeps neighbourhoods.
pub fn neighbourhood_preservation(
    high: ArrayView2<'_, f32>,
    low: ArrayView2<'_, f32>,
    k: usize,
) -> Result<f64> {
    if high.nrows() != low.nrows() {
        return Err(Error::param(
            "low",
            format!(
                "{} cells in the layout, {} in the embedding",
                low.nrows(),
                high.nrows()
            ),
        ));
    }
    let k1 = (k + 1).min(high.nrows());
    let a = crate::neighbors::knn_exact(high, k1)?;
    let b = crate::neighbors::knn_exact(low, k1)?;
    let n = high.nrows();
    let mut kept = 0usize;
    for i in 0..n {
        let mut theirs: Vec<u32> = b.indices.row(i).iter().skip(1).copied().collect();
        theirs.sort_unstable();
        kept += a
            .indices
            .row(i)
            .iter()
            .skip(1)
            .filter(|j| theirs.binary_search(j).is_ok())
            .count();
    }
    Ok(kept as f64 / (n * (k1 - 1)).max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ab_params_equal_umap_learns_for_its_defaults() {
        // umap-learn 0.5: find_ab_params(1.0, 0.1) = (1.5769434603113077, 0.8950608779109733)
        let (a, b) = find_ab_params(1.0, 0.1);
        assert!(
            (a - 1.577).abs() < 2e-3 && (b - 0.895).abs() < 2e-3,
            "{a} {b}"
        );
    }

    #[test]
    fn layouts_keep_clusters_and_repeat_exactly() {
        // three separated blobs in 10-D
        let n = 300;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x = Array2::from_shape_fn((n, 10), |(i, j)| {
            let c = (i % 3) as f32;
            (if j == (i % 3) { 8.0 * c + 8.0 } else { 0.0 }) + rng.random::<f32>()
        });
        let opts = UmapOptions {
            n_epochs: Some(100),
            ..Default::default()
        };
        let l1 = umap(x.view(), &opts).unwrap();
        let l2 = umap(x.view(), &opts).unwrap();
        assert_eq!(l1, l2, "same seed, same layout");
        assert!(l1.iter().all(|v| v.is_finite()));
        // a cell's layout neighbours are of its own blob
        let nn = crate::neighbors::knn_exact(l1.view(), 6).unwrap();
        let same = (0..n)
            .map(|i| {
                nn.indices
                    .row(i)
                    .iter()
                    .skip(1)
                    .filter(|&&j| j as usize % 3 == i % 3)
                    .count()
            })
            .sum::<usize>() as f64
            / (n * 5) as f64;
        assert!(same > 0.99, "{same}");
        let kept = neighbourhood_preservation(x.view(), l1.view(), 15).unwrap();
        let random = Array2::from_shape_fn((n, 2), |_| rng.random::<f32>());
        let base = neighbourhood_preservation(x.view(), random.view(), 15).unwrap();
        assert!(kept > 3.0 * base, "{kept} vs random {base}");
    }

    #[test]
    fn bad_input_is_an_error() {
        let tiny = Array2::<f32>::zeros((2, 3));
        assert!(umap(tiny.view(), &UmapOptions::default()).is_err());
        let mut nan = Array2::<f32>::zeros((10, 3));
        nan[[4, 1]] = f32::NAN;
        let e = umap(nan.view(), &UmapOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("cell 4"), "{e}");
    }
}

//! `kbet_per_label` as scib-metrics computes it (metrics.md §4.3): for each label, a diffusion
//! map of its subgraph of the 50-NN UMAP connectivities, kNN in diffusion space (self
//! included), and per cell a χ² test of the neighbourhood's batch composition against the
//! label's; the acceptance rate (p ≥ 0.05), averaged over labels (NaN labels skipped).

use faer::{Mat, Side};
use ndarray::Array2;
use rayon::prelude::*;
use scssl_data::matrix::dot;
use scssl_data::neighbors::{fuzzy_connectivities, knn_exact};
use scssl_data::{CsrMatrix, Neighbors};

use crate::codes::{dense, members};
use crate::error::{Result, check_len};

/// Regularised lower incomplete gamma function P(a, x) (series below a + 1, continued fraction
/// above), the χ² CDF: `P(dof/2, χ²/2)`.
pub fn gammainc(a: f64, x: f64) -> f64 {
    if x <= 0.0 || a <= 0.0 {
        return if x <= 0.0 { 0.0 } else { 1.0 };
    }
    let ln_pre = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        let (mut sum, mut term, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..500 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (sum * ln_pre.exp()).clamp(0.0, 1.0)
    } else {
        // Lentz's continued fraction for Q(a, x)
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..500 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (1.0 - ln_pre.exp() * h).clamp(0.0, 1.0)
    }
}

fn ln_gamma(x: f64) -> f64 {
    // Lanczos approximation (g = 7, n = 9), ~1e-15 relative
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Acceptance rate of the kBET test on a neighbour table (self included in each neighbourhood).
pub fn kbet(nn_indices: &Array2<u32>, batches: &[u32], alpha: f64) -> Option<f64> {
    let (b, nb) = dense(batches);
    if nb < 2 {
        return None;
    }
    let n = b.len() as f64;
    let freq: Vec<f64> = members(&b, nb).iter().map(|m| m.len() as f64 / n).collect();
    let k = nn_indices.ncols() as f64;
    let dof = (nb - 1) as f64;
    let accepted: usize = nn_indices
        .rows()
        .into_iter()
        .filter(|row| {
            let mut obs = vec![0f64; nb];
            for &j in row.iter() {
                obs[b[j as usize] as usize] += 1.0;
            }
            let chi2: f64 = (0..nb)
                .map(|c| (obs[c] - freq[c] * k).powi(2) / (freq[c] * k))
                .sum();
            1.0 - gammainc(dof / 2.0, chi2 / 2.0) >= alpha
        })
        .count();
    Some(accepted as f64 / n)
}

/// The `k` eigenpairs of largest magnitude of a symmetric sparse matrix (values descending):
/// dense decomposition for small matrices, Lanczos with partial reorthogonalisation otherwise.
/// Label subgraphs up to this many cells get a dense eigendecomposition; larger ones Lanczos
/// (a dense decomposition is O(n³): ten 1,000-cell labels took most of kBET's time at 10k
/// cells).
const DENSE_EIGEN_LIMIT: usize = 400;

fn top_eigen_with(t: &CsrMatrix, k: usize, dense_limit: usize) -> (Vec<f64>, Mat<f64>) {
    let n = t.n_rows();
    if n <= dense_limit {
        let mut a = Mat::<f64>::zeros(n, n);
        for i in 0..n {
            let (c, v) = t.row(i);
            for (&j, &x) in c.iter().zip(v) {
                a[(i, j as usize)] = x as f64;
            }
        }
        let Ok(e) = a.self_adjoint_eigen(Side::Lower) else {
            return (vec![], Mat::zeros(n, 0));
        };
        let vals: Vec<f64> = (0..n).map(|i| e.S()[i]).collect();
        let order = top_by_magnitude(&vals, k);
        let u = e.U();
        let vecs = Mat::<f64>::from_fn(n, order.len(), |r, c| u[(r, order[c])]);
        return (order.iter().map(|&i| vals[i]).collect(), vecs);
    }
    let m = (2 * k + 60).min(n);
    // the Lanczos basis, column-major: vector j is basis[j·n..(j+1)·n], so the first j vectors
    // form one n × j matrix for the reorthogonalisation products
    let mut basis: Vec<f64> = Vec::with_capacity(n * (m + 1));
    let start: Vec<f64> = (0..n)
        .map(|i| 1.0 + ((i * 7919) % 97) as f64 / 97.0)
        .collect();
    let norm = start.iter().map(|x| x * x).sum::<f64>().sqrt();
    basis.extend(start.iter().map(|x| x / norm));
    let (mut alpha, mut beta): (Vec<f64>, Vec<f64>) = (vec![], vec![]);
    let mut coef = Mat::<f64>::zeros(m + 1, 1);
    // Partial reorthogonalisation (Simon 1984, as in PROPACK): `omega_cur[i]` estimates
    // v_j · v_i (and `omega_prev` the row before) by Simon's recurrence, driven by the
    // tridiagonal coefficients and a rounding term. The new vector is reorthogonalised against
    // the whole basis only when some estimate passes √ε, and then once more at the next step;
    // that keeps the basis semi-orthogonal, which makes the tridiagonal matrix's eigenvalues
    // as accurate as with full reorthogonalisation, while reading the basis (the eigensolve's
    // main cost: memory traffic that grows with the square of the steps) far less often.
    let eps = f64::EPSILON;
    let sqrt_eps = eps.sqrt();
    // the rounding of one step, relative to ‖T‖
    let psi = eps * (n as f64).sqrt();
    let mut omega_prev = vec![0f64; m + 1];
    let mut omega_cur = vec![0f64; m + 1];
    let mut omega_next = vec![0f64; m + 1];
    omega_cur[0] = 1.0;
    let mut force_reorthogonalisation = false;
    // a running estimate of ‖T‖ (largest |α_j| + β_j + β_{j−1})
    let mut norm_estimate = 0f64;
    for j in 0..m {
        let vj = &basis[j * n..(j + 1) * n];
        // large chunks: labels already run in parallel, and a step is only microseconds
        let mut w: Vec<f64> = (0..n)
            .into_par_iter()
            .with_min_len(4096)
            .map(|i| {
                let (c, x) = t.row(i);
                sparse_dot(c, x, vj)
            })
            .collect();
        // the three-term recurrence
        if let (Some(&bp), Some(p)) = (beta.last(), j.checked_sub(1)) {
            let prev = &basis[p * n..(p + 1) * n];
            w.iter_mut().zip(prev).for_each(|(x, y)| *x -= bp * y);
        }
        let a = dot(&w, vj);
        alpha.push(a);
        w.iter_mut().zip(vj).for_each(|(x, y)| *x -= a * y);
        let mut b = dot(&w, &w).sqrt();
        if b < 1e-12 {
            break;
        }
        // the estimates for the new vector v_{j+1} against v_0..v_j
        norm_estimate = norm_estimate.max(a.abs() + b + beta.last().copied().unwrap_or(0.0));
        let mut worst = 0f64;
        for i in 0..j {
            let mut t_i = beta[i] * omega_cur[i + 1] + (alpha[i] - a) * omega_cur[i]
                - beta[j - 1] * omega_prev[i];
            if i > 0 {
                t_i += beta[i - 1] * omega_cur[i - 1];
            }
            // the rounding term, with the estimate's sign (the pessimistic choice)
            t_i += (psi * norm_estimate).copysign(t_i);
            omega_next[i] = t_i / b;
            worst = worst.max(omega_next[i].abs());
        }
        omega_next[j] = psi * norm_estimate / b;
        omega_next[j + 1] = 1.0;
        if force_reorthogonalisation || worst > sqrt_eps {
            // classical Gram–Schmidt against the whole basis as two matrix products (Vᵀw,
            // then w − V·h: the basis is read in blocked SIMD kernels), repeated when the first
            // pass removed most of what was left (the DGKS criterion, as ARPACK does)
            let v = faer::MatRef::from_column_major_slice(&basis[..n * (j + 1)], n, j + 1);
            let mut reorthogonalise = |w: &mut Vec<f64>| {
                let h = coef.as_mut().subrows_mut(0, j + 1);
                let wv = faer::MatRef::from_column_major_slice(w.as_slice(), n, 1);
                faer::linalg::matmul::matmul(
                    h,
                    faer::Accum::Replace,
                    v.transpose(),
                    wv,
                    1.0,
                    faer::Par::Seq,
                );
                let wm = faer::MatMut::from_column_major_slice_mut(w.as_mut_slice(), n, 1);
                faer::linalg::matmul::matmul(
                    wm,
                    faer::Accum::Add,
                    v,
                    coef.as_ref().subrows(0, j + 1),
                    -1.0,
                    faer::Par::Seq,
                );
            };
            let before = b;
            reorthogonalise(&mut w);
            b = dot(&w, &w).sqrt();
            if b < std::f64::consts::FRAC_1_SQRT_2 * before {
                reorthogonalise(&mut w);
                b = dot(&w, &w).sqrt();
            }
            omega_next[..=j].fill(psi);
            // the vector before this one was not reorthogonalised: the next one must be
            force_reorthogonalisation = !force_reorthogonalisation;
        }
        if b < 1e-12 || j + 1 == m {
            break;
        }
        beta.push(b);
        basis.extend(w.iter().map(|x| x / b));
        std::mem::swap(&mut omega_prev, &mut omega_cur);
        std::mem::swap(&mut omega_cur, &mut omega_next);
    }
    let mm = alpha.len();
    let mut tri = Mat::<f64>::zeros(mm, mm);
    for i in 0..mm {
        tri[(i, i)] = alpha[i];
        if i + 1 < mm {
            tri[(i, i + 1)] = beta[i];
            tri[(i + 1, i)] = beta[i];
        }
    }
    let Ok(e) = tri.self_adjoint_eigen(Side::Lower) else {
        return (vec![], Mat::zeros(n, 0));
    };
    let vals: Vec<f64> = (0..mm).map(|i| e.S()[i]).collect();
    let s = e.U();
    // the Ritz vectors: one product basis × (chosen eigenvectors of the tridiagonal matrix),
    // sequential inside (the caller runs labels in parallel), so the result is thread-count
    // independent
    let order = top_by_magnitude(&vals, k);
    let basis = faer::MatRef::from_column_major_slice(&basis[..n * mm], n, mm);
    let chosen = Mat::<f64>::from_fn(mm, order.len(), |r, c| s[(r, order[c])]);
    let mut ritz = Mat::<f64>::zeros(n, order.len());
    faer::linalg::matmul::matmul(
        ritz.as_mut(),
        faer::Accum::Replace,
        basis,
        chosen.as_ref(),
        1.0,
        faer::Par::Seq,
    );
    (order.iter().map(|&i| vals[i]).collect(), ritz)
}

/// `Σ x[p]·v[c[p]]` with four independent partial sums (a single running sum waits on each
/// addition); the order is fixed by the row alone.
fn sparse_dot(c: &[u32], x: &[f32], v: &[f64]) -> f64 {
    let mut lanes = [0f64; 4];
    let (cc, xc) = (c.chunks_exact(4), x.chunks_exact(4));
    let tail: f64 = cc
        .remainder()
        .iter()
        .zip(xc.remainder())
        .map(|(&j, &w)| w as f64 * v[j as usize])
        .sum();
    for (j, w) in cc.zip(xc) {
        for l in 0..4 {
            lanes[l] += w[l] as f64 * v[j[l] as usize];
        }
    }
    (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]) + tail
}

/// Indices of the `k` values of largest magnitude, in descending order of value.
fn top_by_magnitude(vals: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..vals.len()).collect();
    order.sort_by(|&a, &b| vals[b].abs().total_cmp(&vals[a].abs()));
    order.truncate(k);
    order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]));
    order
}

/// The rows and columns `cells` of `w`, renumbered in that order. `local` must hold
/// `usize::MAX` everywhere (it is left so): it maps a cell to its new number while in use.
fn subgraph(w: &CsrMatrix, cells: &[usize], local: &mut [usize]) -> CsrMatrix {
    for (p, &i) in cells.iter().enumerate() {
        local[i] = p;
    }
    let mut indptr = vec![0usize];
    let (mut idx, mut dat) = (vec![], vec![]);
    for &i in cells {
        let (c, v) = w.row(i);
        for (&j, &x) in c.iter().zip(v) {
            let l = local[j as usize];
            if l != usize::MAX {
                idx.push(l as u32);
                dat.push(x);
            }
        }
        indptr.push(idx.len());
    }
    for &i in cells {
        local[i] = usize::MAX;
    }
    CsrMatrix::new(cells.len(), cells.len(), indptr, idx, dat)
        .unwrap_or_else(|_| CsrMatrix::zeros(cells.len(), cells.len()))
}

fn components(w: &CsrMatrix) -> Vec<usize> {
    let n = w.n_rows();
    let mut comp = vec![usize::MAX; n];
    let mut next = 0;
    for s in 0..n {
        if comp[s] != usize::MAX {
            continue;
        }
        let mut stack = vec![s];
        comp[s] = next;
        while let Some(v) = stack.pop() {
            for &u in w.row(v).0 {
                if comp[u as usize] == usize::MAX {
                    comp[u as usize] = next;
                    stack.push(u as usize);
                }
            }
        }
        next += 1;
    }
    comp
}

/// Diffusion-map kNN (scanpy's density-normalised transitions, top eigenvectors by magnitude
/// scaled by λ/(1 − λ) in `f32`), `k` neighbours per cell, self included.
fn diffusion_nn(
    w: &CsrMatrix,
    k: usize,
    n_comps: usize,
    dense_limit: usize,
) -> Option<Array2<u32>> {
    let n = w.n_rows();
    if n < 2 || k > n {
        return None;
    }
    let q: Vec<f64> = (0..n)
        .map(|i| w.row(i).1.iter().map(|&x| x as f64).sum())
        .collect();
    // the density-normalised kernel, in w's sparsity pattern (one flat array, not a list per
    // row), then its symmetric normalisation
    let mut kk: Vec<f64> = Vec::with_capacity(w.nnz());
    for i in 0..n {
        let (c, v) = w.row(i);
        kk.extend(
            c.iter()
                .zip(v)
                .map(|(&j, &x)| x as f64 / (q[i] * q[j as usize])),
        );
    }
    let indptr = w.indptr();
    let z: Vec<f64> = (0..n)
        .map(|i| kk[indptr[i]..indptr[i + 1]].iter().sum::<f64>().sqrt())
        .collect();
    let mut dat = Vec::with_capacity(kk.len());
    for i in 0..n {
        let (c, _) = w.row(i);
        dat.extend(
            c.iter()
                .zip(&kk[indptr[i]..indptr[i + 1]])
                .map(|(&j, &x)| (x / (z[i] * z[j as usize])) as f32),
        );
    }
    let t = CsrMatrix::new(n, n, indptr.to_vec(), w.indices().to_vec(), dat).ok()?;
    let clock = std::time::Instant::now();
    let (vals, vecs) = top_eigen_with(&t, n_comps.min(n - 1), dense_limit);
    tracing::debug!(
        "kbet: {n} cells, {} eigenvectors in {:.2?}",
        vals.len(),
        clock.elapsed()
    );
    if vals.is_empty() {
        return None;
    }
    let mut emb = Array2::<f32>::zeros((n, vals.len()));
    for (c, &l) in vals.iter().enumerate() {
        let l = l as f32 + 1e-8;
        let scale = if l == 1.0 { 1.0 } else { l / (1.0 - l) };
        for r in 0..n {
            emb[[r, c]] = vecs[(r, c)] as f32 * scale;
        }
    }
    if emb.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let clock = std::time::Instant::now();
    let nn = knn_exact(emb.view(), k).ok().map(|nn| nn.indices);
    tracing::debug!("kbet: {n} cells, {k}-NN in {:.2?}", clock.elapsed());
    nn
}

/// `kbet_per_label` on the 50-NN table (self first). `None` when every label is skipped
/// (fewer than 10 cells or a single batch).
pub fn kbet_per_label(nn50: &Neighbors, batches: &[u32], labels: &[u32]) -> Result<Option<f64>> {
    kbet_per_label_with(nn50, batches, labels, DENSE_EIGEN_LIMIT)
}

fn kbet_per_label_with(
    nn50: &Neighbors,
    batches: &[u32],
    labels: &[u32],
    dense_limit: usize,
) -> Result<Option<f64>> {
    check_len("batches", nn50.n_cells(), batches.len())?;
    check_len("labels", nn50.n_cells(), labels.len())?;
    let conn = fuzzy_connectivities(nn50);
    let (lc, k) = dense(labels);
    let groups = members(&lc, k);
    // the largest labels first and one label per task, so that the threads finish together
    // (the mean below is still taken in label order)
    let mut by_size: Vec<usize> = (0..groups.len()).collect();
    by_size.sort_by_key(|&l| std::cmp::Reverse(groups[l].len()));
    let label_score = |cells: &[usize]| -> f64 {
        let n = cells.len();
        let b: Vec<u32> = cells.iter().map(|&i| batches[i]).collect();
        let nb = dense(&b).1;
        if n < 10 || nb < 2 {
            return f64::NAN;
        }
        let mean_batch = n as f64 / nb as f64;
        let mut k0 = ((mean_batch / 4.0).floor() as usize).clamp(10, 70);
        if k0 * n >= i32::MAX as usize {
            k0 = i32::MAX as usize / n;
        }
        let mut local = vec![usize::MAX; nn50.n_cells()];
        let sub = subgraph(&conn, cells, &mut local);
        let comp = components(&sub);
        let n_comp = comp.iter().copied().max().map_or(0, |m| m + 1);
        let run = |g: &CsrMatrix, bb: &[u32]| -> f64 {
            let n_comps = 100.min(g.n_rows().saturating_sub(1));
            match diffusion_nn(g, k0 + 1, n_comps, dense_limit) {
                Some(idx) => kbet(&idx, bb, 0.05).unwrap_or(0.0),
                None => 0.0,
            }
        };
        if n_comp <= 1 {
            return run(&sub, &b);
        }
        let mut size = vec![0usize; n_comp];
        for &c in &comp {
            size[c] += 1;
        }
        let keep: Vec<usize> = (0..n).filter(|&i| size[comp[i]] >= 3 * k0).collect();
        if (keep.len() as f64) < 0.75 * n as f64 {
            return 0.0;
        }
        let mut local2 = vec![usize::MAX; n];
        let sub2 = subgraph(&sub, &keep, &mut local2);
        let b2: Vec<u32> = keep.iter().map(|&i| b[i]).collect();
        run(&sub2, &b2)
    };
    let mut scores: Vec<(usize, f64)> = by_size
        .par_iter()
        .with_max_len(1)
        .map(|&label| (label, label_score(&groups[label])))
        .collect();
    scores.sort_by_key(|e| e.0);
    let ok: Vec<f64> = scores
        .into_iter()
        .map(|e| e.1)
        .filter(|v| !v.is_nan())
        .collect();
    Ok((!ok.is_empty()).then(|| ok.iter().sum::<f64>() / ok.len() as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi2_cdf_values() {
        // values of scipy.special.gammainc
        assert!((gammainc(1.5, 2.0) - 0.7385358700508888).abs() < 1e-12);
        assert!((gammainc(0.5, 0.5) - 0.6826894921370859).abs() < 1e-12);
        assert!((gammainc(3.0, 20.0) - 0.9999995444850495).abs() < 1e-12);
        assert!((gammainc(10.0, 3.0) - 0.0011024881301154815).abs() < 1e-12);
    }

    #[test]
    fn lanczos_agrees_with_the_dense_decomposition() {
        use rand::{Rng, SeedableRng};
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let x = Array2::from_shape_fn((400, 3), |(i, _)| (i % 4) as f32 * 3.0 + r.random::<f32>());
        let nn = knn_exact(x.view(), 10).unwrap();
        let w = fuzzy_connectivities(&nn);
        let (dense_vals, _) = top_eigen_with(&w, 20, 10_000);
        let (lanczos_vals, vecs) = top_eigen_with(&w, 20, 100);
        for (a, b) in dense_vals.iter().zip(&lanczos_vals) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        // Ritz vectors are unit length
        let norm: f64 = (0..400).map(|i| vecs[(i, 0)] * vecs[(i, 0)]).sum();
        assert!((norm - 1.0).abs() < 1e-8);
    }

    #[test]
    fn partially_reorthogonalised_lanczos_keeps_the_ritz_vectors_orthonormal() {
        // 1,000 cells in four blobs, 60 eigenpairs (180 steps): the leading eigenvalues
        // converge early, which is when plain Lanczos loses orthogonality and repeats them
        use rand::{Rng, SeedableRng};
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let x = Array2::from_shape_fn((1000, 5), |(i, _)| (i % 4) as f32 * 2.0 + r.random::<f32>());
        let nn = knn_exact(x.view(), 15).unwrap();
        let w = fuzzy_connectivities(&nn);
        let (dense_vals, _) = top_eigen_with(&w, 60, 10_000);
        let (vals, vecs) = top_eigen_with(&w, 60, 100);
        assert_eq!(vals.len(), 60);
        // no ghost copies: the leading eigenvalues are the dense ones, each once
        for (a, b) in dense_vals.iter().zip(&vals).take(12) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        let gram = vecs.transpose() * &vecs;
        for i in 0..60 {
            for j in 0..60 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!(
                    (gram[(i, j)] - want).abs() < 1e-6,
                    "Ritz vectors {i}, {j}: {}",
                    gram[(i, j)]
                );
            }
        }
    }

    #[test]
    fn lanczos_kbet_matches_the_dense_one_on_mixed_labels() {
        // three labels of 500–700 cells, three batches mixed within each (acceptance well
        // inside (0, 1), where a wrong diffusion space would show)
        use rand::{Rng, SeedableRng};
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let sizes = [500usize, 600, 700];
        let (mut labels, mut batches, mut rows) = (vec![], vec![], vec![]);
        for (l, &size) in sizes.iter().enumerate() {
            for i in 0..size {
                let b = (i % 3) as u32;
                labels.push(l as u32);
                batches.push(b);
                for d in 0..8 {
                    let centre = if d == l { 6.0 } else { 0.0 };
                    // a mild batch shift on one axis
                    let shift = if d == 7 { 0.4 * b as f32 } else { 0.0 };
                    rows.push(centre + shift + r.random::<f32>() * 2.0);
                }
            }
        }
        let x = Array2::from_shape_vec((labels.len(), 8), rows).unwrap();
        let nn = knn_exact(x.view(), 50).unwrap();
        let dense = kbet_per_label_with(&nn, &batches, &labels, 10_000)
            .unwrap()
            .unwrap();
        let lanczos = kbet_per_label_with(&nn, &batches, &labels, 100)
            .unwrap()
            .unwrap();
        assert!(dense > 0.2 && dense < 0.98, "dense {dense}");
        assert!(
            (dense - lanczos).abs() < 0.01,
            "dense {dense}, Lanczos {lanczos}"
        );
    }

    #[test]
    fn perfectly_mixed_neighbourhoods_are_accepted() {
        // neighbourhoods with exactly the global batch composition
        let idx = Array2::from_shape_fn((8, 4), |(i, j)| ((i / 4) * 4 + j) as u32);
        assert_eq!(kbet(&idx, &[0, 1, 0, 1, 0, 1, 0, 1], 0.05), Some(1.0));
        let idx = Array2::from_shape_fn((8, 4), |(i, j)| (((i / 4) * 4 + j) % 8) as u32);
        let seg = kbet(&idx, &[0, 0, 0, 0, 1, 1, 1, 1], 0.05).unwrap();
        assert!(seg < 0.5);
    }
}

//! LISI (local inverse Simpson's index) on a kNN graph, as scib-metrics computes it: a
//! perplexity-calibrated Gaussian kernel over each cell's neighbours (self masked out), found
//! by bisection in `f32`; `cLISI` on labels, `iLISI` on batches.

use rayon::prelude::*;
use scssl_data::Neighbors;

use crate::codes::dense;
use crate::error::{Error, Result, check_len};

/// The kernel's entropy at precision `beta`, writing the normalised kernel into `p`. The
/// exponentials are taken a row at a time (vectorised, in f64 and rounded to f32: the
/// correctly rounded `expf` but for rare last-bit ties); `args` and `exps` are scratch.
fn h_beta(
    d: &[f32],
    mask: &[bool],
    beta: f32,
    p: &mut [f32],
    args: &mut [f64],
    exps: &mut [f64],
) -> f32 {
    for (a, &di) in args.iter_mut().zip(d) {
        *a = (-di * beta) as f64;
    }
    scssl_data::simd::exp_into(args, exps);
    let mut sum = 0f32;
    let mut dp = 0f32;
    for (((pi, &di), &m), &e) in p.iter_mut().zip(d).zip(mask).zip(exps.iter()) {
        *pi = if m { e as f32 } else { 0.0 };
        sum += *pi;
        dp += di * *pi;
    }
    if sum == 0.0 {
        p.iter_mut().for_each(|v| *v = 0.0);
        0.0
    } else {
        p.iter_mut().for_each(|v| *v /= sum);
        sum.ln() + beta * dp / sum
    }
}

/// Per-cell LISI values over the given neighbour table and codes. A cell whose kernel sum
/// underflows gets −1, as in scib-metrics (it enters the median).
pub fn lisi_knn(nn: &Neighbors, codes: &[u32], perplexity: f32) -> Result<Vec<f64>> {
    check_len("codes", nn.n_cells(), codes.len())?;
    if perplexity.is_nan() || perplexity <= 0.0 {
        return Err(Error::Invalid(format!(
            "perplexity must be positive, got {perplexity}"
        )));
    }
    let (c, k) = dense(codes);
    let target = perplexity.ln();
    let tol = 1e-5f32;
    Ok((0..nn.n_cells())
        .into_par_iter()
        .map(|i| {
            let d: Vec<f32> = nn.distances.row(i).to_vec();
            let idx = nn.indices.row(i);
            let mask: Vec<bool> = idx.iter().map(|&j| j as usize != i).collect();
            let mut p = vec![0f32; d.len()];
            let (mut args, mut exps) = (vec![0f64; d.len()], vec![0f64; d.len()]);
            let (mut beta, mut lo, mut hi) = (1f32, f32::NEG_INFINITY, f32::INFINITY);
            let mut h = h_beta(&d, &mask, beta, &mut p, &mut args, &mut exps);
            let mut diff = h - target;
            let mut tries = 0;
            while diff.abs() > tol && tries < 50 {
                if diff > 0.0 {
                    lo = beta;
                    beta = if hi == f32::INFINITY {
                        beta * 2.0
                    } else {
                        (beta + hi) / 2.0
                    };
                } else {
                    hi = beta;
                    beta = if lo == f32::NEG_INFINITY {
                        beta / 2.0
                    } else {
                        (beta + lo) / 2.0
                    };
                }
                h = h_beta(&d, &mask, beta, &mut p, &mut args, &mut exps);
                diff = h - target;
                tries += 1;
            }
            if h == 0.0 {
                return -1.0;
            }
            let mut per = vec![0f32; k];
            for (&j, &pj) in idx.iter().zip(&p) {
                per[c[j as usize] as usize] += pj;
            }
            let simpson: f32 = per.iter().map(|v| v * v).sum();
            1.0 / simpson as f64
        })
        .collect())
}

fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len();
    if m % 2 == 1 {
        s[m / 2]
    } else {
        (s[m / 2 - 1] + s[m / 2]) / 2.0
    }
}

/// `clisi_knn`: `(L − median LISI)/(L − 1)` over labels, perplexity ⌊k/3⌋ (k = neighbours per
/// cell, self included). `None` for a single label (0/0).
pub fn clisi_knn(nn: &Neighbors, labels: &[u32]) -> Result<Option<f64>> {
    let l = dense(labels).1 as f64;
    let v = lisi_knn(nn, labels, (nn.k() / 3).max(1) as f32)?;
    Ok((l > 1.0).then(|| (l - median(&v)) / (l - 1.0)))
}

/// `ilisi_knn`: `(median LISI − 1)/(B − 1)` over batches. `None` for a single batch.
pub fn ilisi_knn(nn: &Neighbors, batches: &[u32]) -> Result<Option<f64>> {
    let b = dense(batches).1 as f64;
    let v = lisi_knn(nn, batches, (nn.k() / 3).max(1) as f32)?;
    Ok((b > 1.0).then(|| (median(&v) - 1.0) / (b - 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use scssl_data::neighbors::knn_exact;

    #[test]
    fn mixed_batches_score_high_and_separated_low() {
        // two well separated groups of 30 cells on a line
        let x = Array2::from_shape_fn((60, 1), |(i, _)| {
            if i < 30 {
                i as f32 * 0.01
            } else {
                100.0 + i as f32 * 0.01
            }
        });
        let nn = knn_exact(x.view(), 15).unwrap();
        let groups: Vec<u32> = (0..60).map(|i| (i >= 30) as u32).collect();
        let alternating: Vec<u32> = (0..60).map(|i| (i % 2) as u32).collect();
        let sep = ilisi_knn(&nn, &groups).unwrap().unwrap();
        let mix = ilisi_knn(&nn, &alternating).unwrap().unwrap();
        assert!(sep < 0.01, "separated batches: iLISI {sep}");
        assert!(mix > 0.5, "interleaved batches: iLISI {mix}");
        assert!(clisi_knn(&nn, &groups).unwrap().unwrap() > 0.99);
        assert_eq!(ilisi_knn(&nn, &[0; 60]).unwrap(), None);
    }
}

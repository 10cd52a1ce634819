//! LISI (local inverse Simpson's index) on a kNN graph, as scib-metrics computes it: a
//! perplexity-calibrated Gaussian kernel over each cell's neighbours (self masked out), found
//! by bisection in `f32`; `cLISI` on labels, `iLISI` on batches.

use rayon::prelude::*;
use scssl_data::Neighbors;

use crate::codes::dense;
use crate::error::{Error, Result, check_len};

/// The kernel's entropy at precision `beta`, writing the unnormalised kernel into `p`; returns
/// it with the kernel's sum. The exponentials are taken a row at a time (vectorised, in f64 and
/// rounded to f32: the correctly rounded `expf` but for rare last-bit ties); `args` and `exps`
/// are scratch.
#[inline(always)]
fn h_beta(
    d: &[f32],
    mask: &[bool],
    beta: f32,
    p: &mut [f32],
    args: &mut [f64],
    exps: &mut [f64],
) -> (f32, f32) {
    for (a, &di) in args.iter_mut().zip(d) {
        *a = (-di * beta) as f64;
    }
    scssl_data::simd::exp_slice(args, exps);
    let mut sum = 0f32;
    let mut dp = 0f32;
    for (((pi, &di), &m), &e) in p.iter_mut().zip(d).zip(mask).zip(exps.iter()) {
        *pi = if m { e as f32 } else { 0.0 };
        sum += *pi;
        dp += di * *pi;
    }
    if sum == 0.0 {
        (0.0, sum)
    } else {
        (sum.ln() + beta * dp / sum, sum)
    }
}

/// scib-metrics' bisection for one cell's precision (from 1, tolerance 1e-5, at most 50 steps),
/// leaving the normalised kernel in `p`; returns the entropy reached.
#[inline(always)]
fn calibrate_lanes(
    d: &[f32],
    mask: &[bool],
    target: f32,
    p: &mut [f32],
    args: &mut [f64],
    exps: &mut [f64],
) -> f32 {
    let tol = 1e-5f32;
    let (mut beta, mut lo, mut hi) = (1f32, f32::NEG_INFINITY, f32::INFINITY);
    let (mut h, mut sum) = h_beta(d, mask, beta, p, args, exps);
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
        (h, sum) = h_beta(d, mask, beta, p, args, exps);
        diff = h - target;
        tries += 1;
    }
    // the last step's kernel, normalised (only it is kept)
    if sum == 0.0 {
        p.iter_mut().for_each(|v| *v = 0.0);
    } else {
        p.iter_mut().for_each(|v| *v /= sum);
    }
    h
}

/// [`calibrate_lanes`] compiled whole for this CPU's widest vectors (the loop is short: a
/// dispatched call per step cost as much as its arithmetic); the same bits on every CPU.
fn calibrate(
    d: &[f32],
    mask: &[bool],
    target: f32,
    p: &mut [f32],
    args: &mut [f64],
    exps: &mut [f64],
) -> f32 {
    use scssl_data::simd::{Level, level};
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: each version runs only on a CPU that has its features.
        Level::Avx512 => return unsafe { calibrate_avx512(d, mask, target, p, args, exps) },
        Level::Avx2 => return unsafe { calibrate_avx2(d, mask, target, p, args, exps) },
        Level::Baseline => {}
    }
    calibrate_lanes(d, mask, target, p, args, exps)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn calibrate_avx512(
    d: &[f32],
    mask: &[bool],
    target: f32,
    p: &mut [f32],
    args: &mut [f64],
    exps: &mut [f64],
) -> f32 {
    calibrate_lanes(d, mask, target, p, args, exps)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn calibrate_avx2(
    d: &[f32],
    mask: &[bool],
    target: f32,
    p: &mut [f32],
    args: &mut [f64],
    exps: &mut [f64],
) -> f32 {
    calibrate_lanes(d, mask, target, p, args, exps)
}

/// LISI's kernel on a neighbour table: per cell, the weight of each neighbour (self 0) under
/// the Gaussian calibrated to the perplexity. It depends on the distances only, so cLISI and
/// iLISI on one table can share it ([`lisi_from_kernel`]).
#[derive(Debug, Clone)]
pub struct LisiKernel {
    /// Neighbours per cell (the table's `k`).
    k: usize,
    /// Cells × k weights, each row summing to 1.
    weights: Vec<f32>,
    /// Cells whose kernel sum underflowed (their LISI is −1, as in scib-metrics).
    underflow: Vec<bool>,
}

/// [`LisiKernel`] of `nn` at `perplexity`: for each cell, the precision found by scib-metrics'
/// bisection in `f32` (tolerance 1e-5, at most 50 steps, from 1).
pub fn lisi_kernel(nn: &Neighbors, perplexity: f32) -> Result<LisiKernel> {
    if perplexity.is_nan() || perplexity <= 0.0 {
        return Err(Error::Invalid(format!(
            "perplexity must be positive, got {perplexity}"
        )));
    }
    let k = nn.k();
    let target = perplexity.ln();
    // each cell's weights written in place (a vector per cell, then a sequential copy into one,
    // kept the other cores waiting)
    let mut weights = vec![0f32; nn.n_cells() * k];
    let mut underflow = vec![false; nn.n_cells()];
    weights
        .par_chunks_mut(k.max(1))
        .zip(underflow.par_iter_mut())
        .enumerate()
        .for_each_init(
            || (vec![0f64; k], vec![0f64; k], vec![false; k]),
            |(args, exps, mask), (i, (p, underflowed))| {
                let row = nn.distances.row(i);
                let copy;
                let d = match row.as_slice() {
                    Some(d) => d,
                    None => {
                        copy = row.to_vec();
                        &copy
                    }
                };
                for (m, &j) in mask.iter_mut().zip(nn.indices.row(i)) {
                    *m = j as usize != i;
                }
                *underflowed = calibrate(d, mask, target, p, args, exps) == 0.0;
            },
        );
    Ok(LisiKernel {
        k,
        weights,
        underflow,
    })
}

/// Per-cell LISI values from a kernel of `nn` and codes. A cell whose kernel sum underflowed
/// gets −1, as in scib-metrics (it enters the median).
pub fn lisi_from_kernel(kernel: &LisiKernel, nn: &Neighbors, codes: &[u32]) -> Result<Vec<f64>> {
    check_len("codes", nn.n_cells(), codes.len())?;
    check_len("kernel rows", nn.n_cells(), kernel.underflow.len())?;
    if kernel.k != nn.k() {
        return Err(Error::Invalid(format!(
            "the LISI kernel has {} neighbours per cell, the table {}",
            kernel.k,
            nn.k()
        )));
    }
    let (c, n_codes) = dense(codes);
    Ok((0..nn.n_cells())
        .into_par_iter()
        .map(|i| {
            if kernel.underflow[i] {
                return -1.0;
            }
            let p = &kernel.weights[i * kernel.k..(i + 1) * kernel.k];
            let mut per = vec![0f32; n_codes];
            for (&j, &pj) in nn.indices.row(i).iter().zip(p) {
                per[c[j as usize] as usize] += pj;
            }
            let simpson: f32 = per.iter().map(|v| v * v).sum();
            1.0 / simpson as f64
        })
        .collect())
}

/// Per-cell LISI values over the given neighbour table and codes. A cell whose kernel sum
/// underflows gets −1, as in scib-metrics (it enters the median).
pub fn lisi_knn(nn: &Neighbors, codes: &[u32], perplexity: f32) -> Result<Vec<f64>> {
    check_len("codes", nn.n_cells(), codes.len())?;
    lisi_from_kernel(&lisi_kernel(nn, perplexity)?, nn, codes)
}

/// The perplexity scib-metrics' `clisi_knn` and `ilisi_knn` use on a table of `k` neighbours
/// per cell (self included): ⌊k/3⌋, at least 1.
pub fn default_perplexity(k: usize) -> f32 {
    (k / 3).max(1) as f32
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
    clisi_from_kernel(&lisi_kernel(nn, default_perplexity(nn.k()))?, nn, labels)
}

/// [`clisi_knn`] from a kernel of `nn` already computed (at [`default_perplexity`]).
pub fn clisi_from_kernel(
    kernel: &LisiKernel,
    nn: &Neighbors,
    labels: &[u32],
) -> Result<Option<f64>> {
    let l = dense(labels).1 as f64;
    let v = lisi_from_kernel(kernel, nn, labels)?;
    Ok((l > 1.0).then(|| (l - median(&v)) / (l - 1.0)))
}

/// `ilisi_knn`: `(median LISI − 1)/(B − 1)` over batches. `None` for a single batch.
pub fn ilisi_knn(nn: &Neighbors, batches: &[u32]) -> Result<Option<f64>> {
    ilisi_from_kernel(&lisi_kernel(nn, default_perplexity(nn.k()))?, nn, batches)
}

/// [`ilisi_knn`] from a kernel of `nn` already computed (at [`default_perplexity`]).
pub fn ilisi_from_kernel(
    kernel: &LisiKernel,
    nn: &Neighbors,
    batches: &[u32],
) -> Result<Option<f64>> {
    let b = dense(batches).1 as f64;
    let v = lisi_from_kernel(kernel, nn, batches)?;
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

    #[test]
    fn every_calibration_version_gives_the_same_bits() {
        for k in [15usize, 90] {
            for row in 0..10 {
                let d: Vec<f32> = (0..k)
                    .map(|j| {
                        if j == 0 {
                            0.0
                        } else {
                            0.5 + (j as f32 * 0.29 + row as f32).sin().abs() * 3.0
                        }
                    })
                    .collect();
                let mask: Vec<bool> = (0..k).map(|j| j != 0).collect();
                let target = ((k / 3) as f32).ln();
                let (mut a, mut e) = (vec![0f64; k], vec![0f64; k]);
                let (mut p1, mut p2) = (vec![0f32; k], vec![0f32; k]);
                let h1 = calibrate(&d, &mask, target, &mut p1, &mut a, &mut e);
                let h2 = calibrate_lanes(&d, &mask, target, &mut p2, &mut a, &mut e);
                assert_eq!(h1.to_bits(), h2.to_bits());
                assert_eq!(p1, p2);
                assert!((h1 - target).abs() < 1e-4, "{h1} vs {target}");
                assert!((p1.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn one_kernel_serves_both_lisis_and_must_match_the_table() {
        let x = Array2::from_shape_fn((80, 2), |(i, c)| ((i * 7 + c * 13) % 17) as f32 * 0.3);
        let nn = knn_exact(x.view(), 12).unwrap();
        let labels: Vec<u32> = (0..80).map(|i| (i % 3) as u32).collect();
        let batches: Vec<u32> = (0..80).map(|i| (i / 40) as u32).collect();
        let kernel = lisi_kernel(&nn, default_perplexity(nn.k())).unwrap();
        assert_eq!(
            clisi_from_kernel(&kernel, &nn, &labels).unwrap(),
            clisi_knn(&nn, &labels).unwrap()
        );
        assert_eq!(
            ilisi_from_kernel(&kernel, &nn, &batches).unwrap(),
            ilisi_knn(&nn, &batches).unwrap()
        );
        let shorter = nn.subset(6).unwrap();
        let err = lisi_from_kernel(&kernel, &shorter, &labels).unwrap_err();
        assert!(err.to_string().contains("12 neighbours"), "{err}");
    }
}

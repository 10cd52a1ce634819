//! Principal-component regression on batch, as scib-metrics computes it with all components:
//! the share of total variance explained by batch, i.e. the between-batch sum of squares over
//! the total sum of squares (metrics.md §4.5). No SVD is needed.

use ndarray::ArrayView2;

use crate::codes::dense;
use crate::error::{Result, check_embedding, check_len};

/// Fraction of the variance of `x` explained by `batches`.
pub fn pcr(x: ArrayView2<'_, f32>, batches: &[u32]) -> Result<f64> {
    check_embedding(x)?;
    check_len("batches", x.nrows(), batches.len())?;
    let (c, k) = dense(batches);
    let (n, d) = x.dim();
    let mut mean = vec![0f64; d];
    let mut bmean = vec![vec![0f64; d]; k];
    let mut bn = vec![0usize; k];
    for (i, row) in x.rows().into_iter().enumerate() {
        bn[c[i] as usize] += 1;
        for (j, &v) in row.iter().enumerate() {
            mean[j] += v as f64;
            bmean[c[i] as usize][j] += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
    for (b, m) in bmean.iter_mut().enumerate() {
        m.iter_mut().for_each(|v| *v /= bn[b].max(1) as f64);
    }
    let mut total = 0.0;
    for row in x.rows() {
        for (j, &v) in row.iter().enumerate() {
            total += (v as f64 - mean[j]).powi(2);
        }
    }
    let between: f64 = (0..k)
        .map(|b| bn[b] as f64 * (0..d).map(|j| (bmean[b][j] - mean[j]).powi(2)).sum::<f64>())
        .sum();
    Ok(if total > 0.0 { between / total } else { 0.0 })
}

/// `pcr_comparison`: `(PCR_pre − PCR_post)/PCR_pre`, clipped at 0. `None` with one batch or
/// when `PCR_pre` is 0 (scib-metrics raises or divides by zero there).
pub fn pcr_comparison(
    pre: ArrayView2<'_, f32>,
    post: ArrayView2<'_, f32>,
    batches: &[u32],
) -> Result<Option<f64>> {
    check_len("post-integration embedding", pre.nrows(), post.nrows())?;
    if dense(batches).1 < 2 {
        check_len("batches", pre.nrows(), batches.len())?;
        return Ok(None);
    }
    let a = pcr(pre, batches)?;
    let b = pcr(post, batches)?;
    Ok((a > 0.0).then(|| ((a - b) / a).max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn batch_shift_is_explained() {
        let x = array![[0.0f32], [1.0], [10.0], [11.0]];
        let b = [0, 0, 1, 1];
        // between = 2·(0.5−5.5)²·… : means 0.5 and 10.5, grand 5.5 → 2·25 + 2·25 = 100; total 101
        assert!((pcr(x.view(), &b).unwrap() - 100.0 / 101.0).abs() < 1e-12);
        let mixed = array![[0.0f32], [10.0], [1.0], [11.0]];
        let c = pcr_comparison(x.view(), mixed.view(), &b).unwrap().unwrap();
        assert!(c > 0.95);
        assert_eq!(
            pcr_comparison(x.view(), mixed.view(), &[0; 4]).unwrap(),
            None
        );
    }
}

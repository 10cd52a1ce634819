//! Preprocessing, equivalent to `scanpy.pp`: filtering, library-size normalisation, `log1p`,
//! highly variable genes, scaling, PCA and CLR for protein counts.

mod hvg;
mod pca;
pub mod recipe;
mod stats;

pub use hvg::{
    HvgFlavor, HvgOptions, HvgResult, highly_variable_genes, highly_variable_genes_backed,
    hvg_from_stats,
};
pub use pca::{Pca, PcaAccumulator, PcaModel, pca, pca_dense};
pub use stats::GeneStats;

use std::collections::BTreeMap;

use ndarray::Array2;
use rayon::prelude::*;

use crate::anndata::{AnnData, UnsValue};
use crate::error::{Error, Result};
use crate::matrix::Matrix;

/// Keeps genes detected (non-zero) in at least `min_cells` cells; returns the keep mask.
pub fn filter_genes(ad: &mut AnnData, min_cells: usize) -> Vec<bool> {
    let (_, per_col) = ad.x.nonzero_counts();
    let keep: Vec<bool> = per_col.iter().map(|&c| c >= min_cells).collect();
    if keep.iter().any(|k| !k) {
        *ad = ad.select_vars(&keep);
    }
    keep
}

/// Keeps cells with at least `min_genes` detected genes and at least `min_counts` total counts;
/// returns the keep mask.
pub fn filter_cells(ad: &mut AnnData, min_genes: usize, min_counts: f64) -> Vec<bool> {
    let (per_row, _) = ad.x.nonzero_counts();
    let sums = ad.x.row_sums();
    let keep: Vec<bool> = per_row
        .iter()
        .zip(&sums)
        .map(|(&g, &s)| g >= min_genes && s >= min_counts)
        .collect();
    if keep.iter().any(|k| !k) {
        let rows: Vec<usize> = keep
            .iter()
            .enumerate()
            .filter(|(_, k)| **k)
            .map(|(i, _)| i)
            .collect();
        *ad = ad.select_obs(&rows);
    }
    keep
}

/// Scales each cell to `target_sum` total counts (`scanpy.pp.normalize_total`). Cells with zero
/// counts stay zero, as in scanpy. Counts must be finite and non-negative: the first offending
/// entry is named in the error.
pub fn normalize_total(ad: &mut AnnData, target_sum: f64) -> Result<()> {
    if !(target_sum.is_finite() && target_sum > 0.0) {
        return Err(Error::param(
            "target_sum",
            format!("must be a positive number, got {target_sum}"),
        ));
    }
    ad.check_counts(&ad.x)?;
    normalize_matrix(&mut ad.x, target_sum);
    Ok(())
}

/// The normalisation kernel on a matrix (no validation).
pub fn normalize_matrix(x: &mut Matrix, target_sum: f64) {
    let sums = x.row_sums();
    match x {
        Matrix::Csr(m) => m.par_rows_mut(|i, _, vals| {
            if sums[i] > 0.0 {
                let f = target_sum / sums[i];
                vals.iter_mut().for_each(|v| *v = (*v as f64 * f) as f32);
            }
        }),
        Matrix::Dense(a) => a
            .axis_iter_mut(ndarray::Axis(0))
            .into_par_iter()
            .enumerate()
            .for_each(|(i, mut row)| {
                if sums[i] > 0.0 {
                    let f = target_sum / sums[i];
                    row.iter_mut().for_each(|v| *v = (*v as f64 * f) as f32);
                }
            }),
    }
}

/// Natural-log `ln(1 + x)` of every entry (`scanpy.pp.log1p`); records `uns['log1p']` as scanpy does.
pub fn log1p(ad: &mut AnnData) {
    log1p_matrix(&mut ad.x);
    ad.uns
        .insert("log1p".into(), UnsValue::Dict(BTreeMap::new()));
}

/// The `log1p` kernel on a matrix.
pub fn log1p_matrix(x: &mut Matrix) {
    match x {
        Matrix::Csr(m) => m.data_mut().par_iter_mut().for_each(|v| *v = v.ln_1p()),
        Matrix::Dense(a) => a.par_mapv_inplace(|v| v.ln_1p()),
    }
}

/// Standardises each gene to zero mean and unit variance (`scanpy.pp.scale`, ddof = 1; genes
/// with zero variance are only centred), optionally clipping at `max_value`. Returns a dense matrix.
pub fn scale(x: &Matrix, max_value: Option<f32>) -> Result<Array2<f32>> {
    if let Some(m) = max_value
        && (m.is_nan() || m <= 0.0)
    {
        return Err(Error::param(
            "max_value",
            format!("must be positive, got {m}"),
        ));
    }
    let (n, g) = x.shape();
    let st = GeneStats::compute(x, &vec![0; n], 1, |v| v as f64);
    let mut out = x.to_dense();
    let mean: Vec<f64> = (0..g).map(|j| st.mean(0, j)).collect();
    let sd: Vec<f64> = (0..g)
        .map(|j| {
            let s = st.var(0, j).sqrt();
            if s == 0.0 { 1.0 } else { s }
        })
        .collect();
    out.axis_iter_mut(ndarray::Axis(0))
        .into_par_iter()
        .for_each(|mut row| {
            for (j, v) in row.iter_mut().enumerate() {
                let mut z = ((*v as f64 - mean[j]) / sd[j]) as f32;
                if let Some(m) = max_value {
                    z = z.clamp(-m, m);
                }
                *v = z;
            }
        });
    Ok(out)
}

/// Direction of the centred log-ratio transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ClrAxis {
    /// Per cell, across proteins (Seurat's `NormalizeData(method = "CLR", margin = 2)` and totalVI's practice).
    #[default]
    Cells,
    /// Per protein, across cells (muon's `prot.pp.clr` default).
    Features,
}

/// Centred log-ratio transform of protein (ADT) counts: `ln(1 + x / g)`, where `g` is the
/// geometric mean `exp(mean(ln(1 + x)))` over the chosen axis (the Seurat/muon formula).
/// Counts must be finite and non-negative.
pub fn clr(counts: &Array2<f32>, axis: ClrAxis) -> Result<Array2<f32>> {
    if let Some(((i, j), v)) = counts
        .indexed_iter()
        .find(|(_, v)| !v.is_finite() || **v < 0.0)
    {
        return Err(Error::InvalidCounts {
            row: i,
            col: j,
            cell: i.to_string(),
            gene: j.to_string(),
            value: *v,
        });
    }
    let mut out = counts.clone();
    match axis {
        ClrAxis::Cells => out
            .axis_iter_mut(ndarray::Axis(0))
            .into_par_iter()
            .for_each(|mut row| {
                let g = (row.iter().map(|&v| (v as f64).ln_1p()).sum::<f64>()
                    / row.len().max(1) as f64)
                    .exp();
                row.mapv_inplace(|v| (v as f64 / g).ln_1p() as f32);
            }),
        ClrAxis::Features => out
            .axis_iter_mut(ndarray::Axis(1))
            .into_par_iter()
            .for_each(|mut col| {
                let g = (col.iter().map(|&v| (v as f64).ln_1p()).sum::<f64>()
                    / col.len().max(1) as f64)
                    .exp();
                col.mapv_inplace(|v| (v as f64 / g).ln_1p() as f32);
            }),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::CsrMatrix;
    use ndarray::array;

    fn toy() -> AnnData {
        let x = array![[1.0f32, 0.0, 3.0], [0.0, 0.0, 0.0], [2.0, 2.0, 0.0]];
        AnnData::new(
            Matrix::Csr(CsrMatrix::from_dense(x.view())),
            vec!["c0".into(), "c1".into(), "c2".into()],
            vec!["g0".into(), "g1".into(), "g2".into()],
        )
        .unwrap()
    }

    #[test]
    fn normalize_and_log() {
        let mut ad = toy();
        normalize_total(&mut ad, 10.0).unwrap();
        let d = ad.x.to_dense();
        assert!((d[[0, 0]] - 2.5).abs() < 1e-6 && (d[[0, 2]] - 7.5).abs() < 1e-6);
        assert_eq!(d.row(1).sum(), 0.0, "zero-count cells stay zero");
        log1p(&mut ad);
        assert!((ad.x.to_dense()[[2, 0]] - 6f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn negative_counts_name_the_entry() {
        let x = array![[1.0f32, -2.0]];
        let mut ad = AnnData::new(
            Matrix::Dense(x),
            vec!["cellA".into()],
            vec!["g0".into(), "GENEB".into()],
        )
        .unwrap();
        let e = normalize_total(&mut ad, 1e4).unwrap_err().to_string();
        assert!(
            e.contains("cellA") && e.contains("GENEB") && e.contains("-2"),
            "{e}"
        );
        let mut ad2 = toy();
        assert!(normalize_total(&mut ad2, 0.0).is_err());
    }

    #[test]
    fn filters() {
        let mut ad = toy();
        let keep = filter_cells(&mut ad, 1, 0.0);
        assert_eq!(keep, vec![true, false, true]);
        let keep = filter_genes(&mut ad, 2);
        assert_eq!(keep, vec![true, false, false]);
        assert_eq!(ad.x.shape(), (2, 1));
    }

    #[test]
    fn scale_is_standardised() {
        let ad = toy();
        let z = scale(&ad.x, None).unwrap();
        for j in 0..3 {
            let c = z.column(j);
            assert!(c.sum().abs() < 1e-5);
        }
        let zc = scale(&ad.x, Some(0.5)).unwrap();
        assert!(zc.iter().all(|v| v.abs() <= 0.5));
    }

    #[test]
    fn clr_per_cell_matches_formula() {
        let x = array![[0.0f32, 10.0, 100.0]];
        let out = clr(&x, ClrAxis::Cells).unwrap();
        let g = ((0f64.ln_1p() + 10f64.ln_1p() + 100f64.ln_1p()) / 3.0).exp();
        assert!((out[[0, 2]] as f64 - (100.0 / g).ln_1p()).abs() < 1e-5);
        assert!(clr(&array![[f32::NAN]], ClrAxis::Cells).is_err());
    }
}

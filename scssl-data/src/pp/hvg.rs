//! Highly variable genes, as `scanpy.pp.highly_variable_genes` computes them.

use crate::anndata::AnnData;
use crate::error::{Error, Result};
use crate::io::Backed;
use crate::matrix::Matrix;

use super::stats::GeneStats;

/// HVG method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HvgFlavor {
    /// Seurat's dispersion-based method on log-normalised data (scanpy's default, the
    /// benchmark's choice): gene-for-gene the same set as scanpy, ties included.
    #[default]
    Seurat,
    /// Seurat v3's variance-stabilising method on raw counts. The LOESS fit is computed
    /// directly at every gene (scikit-misc's `surface="direct"`); scanpy uses scikit-misc's
    /// default kd-tree interpolation, so gene ranks near the cut-off can differ slightly.
    SeuratV3,
}

/// Options of [`highly_variable_genes`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HvgOptions {
    /// Number of genes to select (scanpy's `n_top_genes`).
    pub n_top_genes: usize,
    /// obs column with the batch of each cell; genes are ranked per batch, then combined.
    pub batch_key: Option<String>,
    /// The method.
    pub flavor: HvgFlavor,
    /// Number of mean bins for the Seurat flavour (scanpy: 20).
    pub n_bins: usize,
    /// LOESS span for Seurat v3 (scanpy: 0.3).
    pub span: f64,
    /// Layer to read instead of `X` (e.g. `counts` for Seurat v3).
    pub layer: Option<String>,
}

impl Default for HvgOptions {
    fn default() -> Self {
        Self {
            n_top_genes: 2000,
            batch_key: None,
            flavor: HvgFlavor::Seurat,
            n_bins: 20,
            span: 0.3,
            layer: None,
        }
    }
}

/// Per-gene results, in the original gene order (the columns scanpy writes to `var`).
#[derive(Debug, Clone, PartialEq)]
pub struct HvgResult {
    /// Selected genes.
    pub highly_variable: Vec<bool>,
    /// Mean (Seurat: `ln(1 + mean)` of the un-logged data; v3: mean of counts), averaged over batches.
    pub means: Vec<f64>,
    /// Seurat: log dispersion; v3: variance. Averaged over batches.
    pub dispersions: Vec<f64>,
    /// Seurat: normalised dispersion; v3: normalised variance. Averaged over batches (NaN skipped).
    pub dispersions_norm: Vec<f64>,
    /// Number of batches in which the gene was highly variable (with a batch key).
    pub highly_variable_nbatches: Option<Vec<u32>>,
    /// v3 only: median rank over batches (NaN where not in any batch's top genes).
    pub highly_variable_rank: Option<Vec<f64>>,
}

impl HvgResult {
    /// Indices of the selected genes, in original order.
    pub fn selected(&self) -> Vec<usize> {
        self.highly_variable
            .iter()
            .enumerate()
            .filter(|(_, h)| **h)
            .map(|(j, _)| j)
            .collect()
    }
}

fn batch_codes(
    ad_obs: &crate::frame::DataFrame,
    key: Option<&str>,
    n: usize,
) -> Result<(Vec<u32>, usize)> {
    match key {
        None => Ok((vec![0; n], 1)),
        Some(k) => {
            let g = ad_obs.groups(k, "obs")?;
            Ok((g.codes.clone(), g.n_groups()))
        }
    }
}

fn validate(opts: &HvgOptions, n_genes: usize) -> Result<()> {
    if opts.n_top_genes == 0 {
        return Err(Error::param("n_top_genes", "must be at least 1"));
    }
    if opts.n_bins == 0 {
        return Err(Error::param("n_bins", "must be at least 1"));
    }
    if !(opts.span > 0.0 && opts.span <= 1.0) {
        return Err(Error::param(
            "span",
            format!("must be in (0, 1], got {}", opts.span),
        ));
    }
    if n_genes == 0 {
        return Err(Error::param("n_top_genes", "the data has no genes"));
    }
    Ok(())
}

/// Selects highly variable genes of `X` (or `layer`). Seurat expects log-normalised data
/// (`normalize_total` + `log1p`); Seurat v3 expects counts.
pub fn highly_variable_genes(ad: &AnnData, opts: &HvgOptions) -> Result<HvgResult> {
    validate(opts, ad.n_vars())?;
    let x: &Matrix = match &opts.layer {
        Some(l) => ad.layer(l)?,
        None => &ad.x,
    };
    let (codes, nb) = batch_codes(&ad.obs, opts.batch_key.as_deref(), ad.n_obs())?;
    let names = &ad.var.index;
    match opts.flavor {
        HvgFlavor::Seurat => {
            let st = GeneStats::compute(x, &codes, nb, |v| v.exp_m1() as f64);
            Ok(seurat_from_stats(
                &st,
                names,
                opts,
                opts.batch_key.is_some(),
            ))
        }
        HvgFlavor::SeuratV3 => {
            if opts.layer.is_none() {
                ad.check_counts(x)?;
            }
            seurat_v3(x, &codes, nb, names, opts)
        }
    }
}

/// The Seurat flavour over a file in backed mode: `X` (log-normalised) is streamed in chunks.
pub fn highly_variable_genes_backed(
    b: &Backed,
    opts: &HvgOptions,
    chunk_rows: usize,
) -> Result<HvgResult> {
    validate(opts, b.n_vars())?;
    if opts.flavor != HvgFlavor::Seurat || opts.layer.is_some() {
        return Err(Error::param(
            "flavor",
            "backed mode supports the seurat flavour on X only",
        ));
    }
    let (codes, nb) = batch_codes(&b.obs, opts.batch_key.as_deref(), b.n_obs())?;
    let mut st = GeneStats::new(nb, b.n_vars());
    for chunk in b.chunks(chunk_rows) {
        let (start, m) = chunk?;
        let n = m.shape().0;
        st.add(&m, &codes[start..start + n], &|v: f32| v.exp_m1() as f64);
    }
    Ok(seurat_from_stats(
        &st,
        &b.var.index,
        opts,
        opts.batch_key.is_some(),
    ))
}

/// `pd.cut(x, n_bins)` bin index of every finite value (right-closed bins, first edge widened by 0.1 %).
fn cut_bins(x: &[f64], n_bins: usize) -> Vec<usize> {
    let finite = x.iter().copied().filter(|v| v.is_finite());
    let mn = finite.clone().fold(f64::INFINITY, f64::min);
    let mx = finite.fold(f64::NEG_INFINITY, f64::max);
    let mut edges: Vec<f64>;
    if mn == mx {
        let (lo, hi) = if mn != 0.0 {
            (mn - 0.001 * mn.abs(), mx + 0.001 * mx.abs())
        } else {
            (mn - 0.001, mx + 0.001)
        };
        edges = linspace(lo, hi, n_bins + 1);
    } else {
        edges = linspace(mn, mx, n_bins + 1);
        edges[0] -= (mx - mn) * 0.001;
    }
    x.iter()
        .map(|&v| {
            // first index with edges[idx] >= v (searchsorted left), minus one
            let idx = edges.partition_point(|&e| e < v);
            idx.saturating_sub(1).min(n_bins - 1)
        })
        .collect()
}

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    // numpy: a + step * i, with the last point set to b exactly
    let step = (b - a) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| a + step * i as f64).collect();
    if let Some(l) = v.last_mut() {
        *l = b;
    }
    v
}

/// Seurat statistics of one batch: (means, dispersions, dispersions_norm) over `genes`.
/// pandas' compensated group mean.
#[derive(Clone, Copy, Default)]
struct Kahan {
    n: usize,
    sum: f64,
    comp: f64,
}

impl Kahan {
    fn add(&mut self, v: f64) {
        self.n += 1;
        let y = v - self.comp;
        let t = self.sum + y;
        self.comp = t - self.sum - y;
        if self.comp.is_nan() {
            self.comp = 0.0;
        }
        self.sum = t;
    }
    fn mean(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            self.sum / self.n as f64
        }
    }
}

fn seurat_single(means_raw: &[f64], vars: &[f64], n_bins: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let g = means_raw.len();
    let mut mean = means_raw.to_vec();
    let mut disp = vec![0.0; g];
    for j in 0..g {
        if mean[j] == 0.0 {
            mean[j] = 1e-12;
        }
        let d = vars[j] / mean[j];
        disp[j] = if d == 0.0 { f64::NAN } else { d.ln() };
        mean[j] = mean[j].ln_1p();
    }
    let bins = cut_bins(&mean, n_bins);
    // per-bin mean and std (ddof 1) of the non-NaN dispersions, accumulated in gene order
    // exactly as pandas' groupby does (Kahan-compensated mean, Welford variance), so that
    // near-ties at the cut-off resolve as in scanpy
    let mut kahan = vec![Kahan::default(); n_bins];
    let mut welford = vec![(0usize, 0.0f64, 0.0f64); n_bins];
    for j in 0..g {
        if !disp[j].is_nan() {
            let b = bins[j];
            kahan[b].add(disp[j]);
            let w = &mut welford[b];
            w.0 += 1;
            let old = w.1;
            w.1 += (disp[j] - old) / w.0 as f64;
            w.2 += (disp[j] - old) * (disp[j] - w.1);
        }
    }
    let avg: Vec<f64> = kahan.iter().map(|k| k.mean()).collect();
    let mut dev: Vec<f64> = welford
        .iter()
        .map(|w| {
            if w.0 > 1 {
                (w.2 / (w.0 - 1) as f64).sqrt()
            } else {
                f64::NAN
            }
        })
        .collect();
    let mut avg = avg;
    for b in 0..n_bins {
        // a bin with a single gene: dev := avg, avg := 0, so that gene's normalised dispersion is 1
        if dev[b].is_nan() {
            dev[b] = avg[b];
            avg[b] = 0.0;
        }
    }
    let norm: Vec<f64> = (0..g)
        .map(|j| (disp[j] - avg[bins[j]]) / dev[bins[j]])
        .collect();
    (mean, disp, norm)
}

/// `dispersion_norm >= (n_top-th largest non-NaN value)`, NaN counted as 0 (scanpy 1.9).
fn top_by_cutoff(norm: &[f64], n_top: usize) -> Vec<bool> {
    let mut vals: Vec<f64> = norm.iter().copied().filter(|v| !v.is_nan()).collect();
    if vals.is_empty() {
        return vec![false; norm.len()];
    }
    vals.sort_by(|a, b| b.total_cmp(a));
    let k = n_top.min(vals.len()).max(1);
    let cut = vals[k - 1];
    norm.iter()
        .map(|&v| (if v.is_nan() { 0.0 } else { v }) >= cut)
        .collect()
}

/// Seurat-flavour HVGs from per-batch statistics of `expm1(X)` (as [`GeneStats`] accumulates
/// them, e.g. over the chunks of a file too large for memory). `batched` says whether the groups
/// of `st` are batches to rank separately (scanpy's `batch_key`).
pub fn hvg_from_stats(
    st: &GeneStats,
    names: &[String],
    opts: &HvgOptions,
    batched: bool,
) -> HvgResult {
    seurat_from_stats(st, names, opts, batched)
}

fn seurat_from_stats(
    st: &GeneStats,
    names: &[String],
    opts: &HvgOptions,
    batched: bool,
) -> HvgResult {
    let g = st.n_genes();
    let nb = st.n_groups();
    if !batched {
        let means: Vec<f64> = (0..g).map(|j| st.mean(0, j)).collect();
        let vars: Vec<f64> = (0..g).map(|j| st.var(0, j)).collect();
        let (m, d, n) = seurat_single(&means, &vars, opts.n_bins);
        let hv = top_by_cutoff(&n, opts.n_top_genes.min(g));
        return HvgResult {
            highly_variable: hv,
            means: m,
            dispersions: d,
            dispersions_norm: n,
            highly_variable_nbatches: None,
            highly_variable_rank: None,
        };
    }
    let mut acc_m = vec![Kahan::default(); g];
    let mut acc_d = vec![Kahan::default(); g];
    let mut acc_n = vec![Kahan::default(); g];
    let mut nbatches = vec![0u32; g];
    for b in 0..nb {
        // genes with no counts in this batch are dropped before the statistics, and get zeros
        let present: Vec<usize> = (0..g).filter(|&j| st.nnz(b, j) > 0).collect();
        let means: Vec<f64> = present.iter().map(|&j| st.mean(b, j)).collect();
        let vars: Vec<f64> = present.iter().map(|&j| st.var(b, j)).collect();
        let (m, d, n) = seurat_single(&means, &vars, opts.n_bins);
        let hv = top_by_cutoff(&n, opts.n_top_genes.min(present.len()));
        let mut vals = vec![(0.0, 0.0, 0.0); g];
        for (k, &j) in present.iter().enumerate() {
            vals[j] = (m[k], d[k], n[k]);
            nbatches[j] += hv[k] as u32;
        }
        for j in 0..g {
            let (m, d, n) = vals[j];
            acc_m[j].add(m);
            if !d.is_nan() {
                acc_d[j].add(d);
            }
            if !n.is_nan() {
                acc_n[j].add(n);
            }
        }
    }
    let means: Vec<f64> = acc_m.iter().map(|k| k.mean()).collect();
    let disp: Vec<f64> = acc_d.iter().map(|k| k.mean()).collect();
    let norm: Vec<f64> = acc_n.iter().map(|k| k.mean()).collect();
    // scanpy sorts the gene table (grouped by name, hence alphabetical) by
    // (nbatches desc, dispersions_norm desc, NaN last) with a stable sort
    let mut order: Vec<usize> = (0..g).collect();
    order.sort_by(|&a, &b| names[a].cmp(&names[b]));
    order.sort_by(|&a, &b| {
        nbatches[b]
            .cmp(&nbatches[a])
            .then_with(|| match (norm[a].is_nan(), norm[b].is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ => norm[b].total_cmp(&norm[a]),
            })
    });
    let mut hv = vec![false; g];
    for &j in order.iter().take(opts.n_top_genes.min(g)) {
        hv[j] = true;
    }
    HvgResult {
        highly_variable: hv,
        means,
        dispersions: disp,
        dispersions_norm: norm,
        highly_variable_nbatches: Some(nbatches),
        highly_variable_rank: None,
    }
}

/// Local quadratic regression with tricube weights, evaluated at every point (LOESS, `surface="direct"`).
pub(crate) fn loess_direct(x: &[f64], y: &[f64], span: f64) -> Vec<f64> {
    let n = x.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let xs: Vec<f64> = order.iter().map(|&i| x[i]).collect();
    let ys: Vec<f64> = order.iter().map(|&i| y[i]).collect();
    let q = ((span * n as f64).floor() as usize).clamp(3.min(n), n);
    let mut fitted_sorted = vec![0.0; n];
    let mut lo = 0usize;
    for i in 0..n {
        // slide a window of q points to be the q nearest neighbours of xs[i]
        while lo + q < n && (xs[lo + q] - xs[i]).abs() < (xs[i] - xs[lo]).abs() {
            lo += 1;
        }
        let hi = lo + q;
        let dmax = (xs[i] - xs[lo]).abs().max((xs[hi - 1] - xs[i]).abs());
        let dmax = if span > 1.0 { dmax * span } else { dmax } * (1.0 + 1e-12) + 1e-300;
        // weighted least squares for a + b·t + c·t², t = x − x_i
        let mut s = [0.0f64; 5];
        let mut r = [0.0f64; 3];
        for k in lo..hi {
            let t = xs[k] - xs[i];
            let u = (t.abs() / dmax).min(1.0);
            let w = (1.0 - u * u * u).powi(3);
            let mut tp = 1.0;
            for p in s.iter_mut() {
                *p += w * tp;
                tp *= t;
            }
            r[0] += w * ys[k];
            r[1] += w * ys[k] * t;
            r[2] += w * ys[k] * t * t;
        }
        let m = [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]];
        fitted_sorted[i] = solve3(m, r).map_or(r[0] / s[0].max(1e-300), |c| c[0]);
    }
    let mut fitted = vec![0.0; n];
    for (k, &i) in order.iter().enumerate() {
        fitted[i] = fitted_sorted[k];
    }
    fitted
}

fn solve3(m: [[f64; 3]; 3], r: [f64; 3]) -> Option<[f64; 3]> {
    let det = |a: [[f64; 3]; 3]| {
        a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
    };
    let d = det(m);
    let scale = m[0][0].abs() * m[1][1].abs() * m[2][2].abs();
    if d.abs() <= 1e-12 * scale.max(1e-300) {
        return None;
    }
    let mut out = [0.0; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let mut mc = m;
        for row in 0..3 {
            mc[row][c] = r[row];
        }
        *o = det(mc) / d;
    }
    Some(out)
}

fn seurat_v3(
    x: &Matrix,
    codes: &[u32],
    nb: usize,
    names: &[String],
    opts: &HvgOptions,
) -> Result<HvgResult> {
    let g = x.shape().1;
    let st = GeneStats::compute(x, codes, nb, |v| v as f64);
    let mut norm_vars = vec![vec![0.0; g]; nb];
    let mut mean_all = vec![0.0; g];
    let mut var_all = vec![0.0; g];
    for b in 0..nb {
        let n = st.group_sizes[b] as f64;
        if n < 2.0 {
            return Err(Error::param(
                "batch_key",
                format!("seurat_v3 needs at least 2 cells per batch; batch {b} has {n}"),
            ));
        }
        let mean: Vec<f64> = (0..g).map(|j| st.mean(b, j)).collect();
        let var: Vec<f64> = (0..g).map(|j| st.var(b, j)).collect();
        let nc: Vec<usize> = (0..g).filter(|&j| var[j] > 0.0).collect();
        let xs: Vec<f64> = nc.iter().map(|&j| mean[j].log10()).collect();
        let ys: Vec<f64> = nc.iter().map(|&j| var[j].log10()).collect();
        let fit = loess_direct(&xs, &ys, opts.span);
        let mut est = vec![0.0; g];
        for (k, &j) in nc.iter().enumerate() {
            est[j] = fit[k];
        }
        let reg_std: Vec<f64> = est.iter().map(|e| 10f64.powf(*e).sqrt()).collect();
        let clip: Vec<f64> = (0..g).map(|j| reg_std[j] * n.sqrt() + mean[j]).collect();
        // clipped sums over the batch's cells
        let mut s1 = vec![0.0; g];
        let mut s2 = vec![0.0; g];
        let _ = x.try_for_each::<()>(|i, j, v| {
            if codes[i] as usize == b && v != 0.0 {
                let c = (v as f64).min(clip[j]);
                s1[j] += c;
                s2[j] += c * c;
            }
            Ok(())
        });
        for j in 0..g {
            let denom = (n - 1.0) * reg_std[j] * reg_std[j];
            norm_vars[b][j] = (n * mean[j] * mean[j] + s2[j] - 2.0 * s1[j] * mean[j]) / denom;
            mean_all[j] += mean[j] / nb as f64;
            var_all[j] += var[j] / nb as f64;
        }
    }
    let n_top = opts.n_top_genes.min(g);
    let mut nbatches = vec![0u32; g];
    let mut ranks: Vec<Vec<f64>> = vec![vec![]; g];
    for nv in &norm_vars {
        let mut order: Vec<usize> = (0..g).collect();
        order.sort_by(|&a, &b| nv[b].total_cmp(&nv[a]));
        for (r, &j) in order.iter().enumerate() {
            if r < n_top {
                nbatches[j] += 1;
                ranks[j].push(r as f64);
            }
        }
    }
    let median: Vec<f64> = ranks
        .iter()
        .map(|r| {
            if r.is_empty() {
                return f64::NAN;
            }
            let mut r = r.clone();
            r.sort_by(f64::total_cmp);
            let m = r.len();
            if m % 2 == 1 {
                r[m / 2]
            } else {
                (r[m / 2 - 1] + r[m / 2]) / 2.0
            }
        })
        .collect();
    let var_norm: Vec<f64> = (0..g)
        .map(|j| norm_vars.iter().map(|v| v[j]).sum::<f64>() / nb as f64)
        .collect();
    let mut order: Vec<usize> = (0..g).collect();
    order.sort_by(|&a, &b| {
        let ka = (median[a].is_nan(), median[a]);
        let kb = (median[b].is_nan(), median[b]);
        ka.0.cmp(&kb.0)
            .then(ka.1.total_cmp(&kb.1))
            .then(nbatches[b].cmp(&nbatches[a]))
            .then(names[a].cmp(&names[b]))
    });
    let mut hv = vec![false; g];
    for &j in order.iter().take(n_top) {
        hv[j] = true;
    }
    Ok(HvgResult {
        highly_variable: hv,
        means: mean_all,
        dispersions: var_all,
        dispersions_norm: var_norm,
        highly_variable_nbatches: Some(nbatches),
        highly_variable_rank: Some(median),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_matches_pandas_edges() {
        // pd.cut([0, 1, 2, 3, 4], 4) -> codes [0, 0, 1, 2, 3]
        assert_eq!(cut_bins(&[0.0, 1.0, 2.0, 3.0, 4.0], 4), vec![0, 0, 1, 2, 3]);
        // constant input: every value in the middle bin of the widened range
        let b = cut_bins(&[1.0, 1.0], 2);
        assert_eq!(b[0], b[1]);
    }

    #[test]
    fn single_gene_bin_gets_norm_one() {
        let (_, _, n) = seurat_single(&[1.0, 100.0], &[2.0, 50.0], 20);
        assert!((n[0] - 1.0).abs() < 1e-12 && (n[1] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn loess_reproduces_a_quadratic() {
        let x: Vec<f64> = (0..50).map(|i| i as f64 / 10.0).collect();
        let y: Vec<f64> = x.iter().map(|t| 1.0 + 2.0 * t - 0.5 * t * t).collect();
        let f = loess_direct(&x, &y, 0.3);
        for (a, b) in f.iter().zip(&y) {
            assert!((a - b).abs() < 1e-8);
        }
    }
}

//! A seeded simulator of realistic single-cell counts — the built-in default dataset.
//!
//! Model (in the spirit of Splatter, Zappia et al. 2017):
//! - gene base expression rates are log-normal; each gene has its own negative-binomial
//!   dispersion (counts are Gamma–Poisson draws);
//! - every cell type has a marker programme: a set of up-regulated genes (some shared between
//!   related types) and a few down-regulated ones;
//! - every batch multiplies each gene's mean by a log-normal factor and shifts library sizes;
//!   cell-type proportions vary between batches, and some rare types can be missing from
//!   some batches;
//! - library sizes are log-normal per cell; dropout adds extra zeros to lowly expressed genes
//!   (logistic in log-mean);
//! - an optional protein (ADT) block follows cell type (`obsm['protein_expression']`).
//!
//! Each cell is generated from its own RNG stream keyed by (seed, cell), so results do not
//! depend on the thread count.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, LogNormal, Normal, Poisson};
use rayon::prelude::*;

use crate::anndata::{AnnData, UnsValue};
use crate::error::{Error, Result};
use crate::frame::Column;
use crate::matrix::{CsrMatrix, Matrix};

/// Simulation parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Number of cells.
    pub n_cells: usize,
    /// Number of genes.
    pub n_genes: usize,
    /// Number of batches.
    pub n_batches: usize,
    /// Number of cell types.
    pub n_cell_types: usize,
    /// Number of proteins (0 = RNA only).
    pub n_proteins: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Mean library size (total counts per cell).
    pub library_size: f64,
    /// Log-scale spread of library sizes between cells.
    pub library_sd: f64,
    /// Fraction of genes in each cell type's up-regulated programme.
    pub marker_fraction: f64,
    /// Mean log2 fold change of marker genes.
    pub marker_log2fc: f64,
    /// Log-scale spread of per-batch gene factors (batch-effect strength).
    pub batch_effect: f64,
    /// Log-scale spread of per-batch library-size factors.
    pub batch_library_effect: f64,
    /// Log-mean at which half of the counts drop out (lower = less dropout).
    pub dropout_midpoint: f64,
    /// Steepness of the dropout logistic (0 = no extra dropout).
    pub dropout_slope: f64,
    /// Number of rare cell types that are absent from one batch each.
    pub batch_specific_types: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            n_cells: 5000,
            n_genes: 2000,
            n_batches: 3,
            n_cell_types: 8,
            n_proteins: 0,
            seed: 0,
            library_size: 3000.0,
            library_sd: 0.35,
            marker_fraction: 0.04,
            marker_log2fc: 1.8,
            batch_effect: 0.35,
            batch_library_effect: 0.3,
            dropout_midpoint: -1.5,
            dropout_slope: 1.0,
            batch_specific_types: 1,
        }
    }
}

impl SimConfig {
    /// Checks every parameter, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        let pos = |name: &'static str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(Error::param(name, format!("must be positive, got {v}")))
            }
        };
        let nonneg = |name: &'static str, v: f64| {
            if v >= 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(Error::param(name, format!("must be ≥ 0, got {v}")))
            }
        };
        if self.n_cells < 2 {
            return Err(Error::param(
                "n_cells",
                format!("must be at least 2, got {}", self.n_cells),
            ));
        }
        if self.n_genes < 2 {
            return Err(Error::param(
                "n_genes",
                format!("must be at least 2, got {}", self.n_genes),
            ));
        }
        if self.n_batches == 0 || self.n_batches > self.n_cells {
            return Err(Error::param(
                "n_batches",
                format!("must be in 1..={}, got {}", self.n_cells, self.n_batches),
            ));
        }
        if self.n_cell_types == 0 || self.n_cell_types > self.n_cells {
            return Err(Error::param(
                "n_cell_types",
                format!("must be in 1..={}, got {}", self.n_cells, self.n_cell_types),
            ));
        }
        pos("library_size", self.library_size)?;
        nonneg("library_sd", self.library_sd)?;
        if !(self.marker_fraction > 0.0 && self.marker_fraction <= 0.5) {
            return Err(Error::param(
                "marker_fraction",
                format!("must be in (0, 0.5], got {}", self.marker_fraction),
            ));
        }
        nonneg("marker_log2fc", self.marker_log2fc)?;
        nonneg("batch_effect", self.batch_effect)?;
        nonneg("batch_library_effect", self.batch_library_effect)?;
        nonneg("dropout_slope", self.dropout_slope)?;
        if !self.dropout_midpoint.is_finite() {
            return Err(Error::param("dropout_midpoint", "must be finite"));
        }
        if self.batch_specific_types >= self.n_cell_types && self.n_batches > 1 {
            return Err(Error::param(
                "batch_specific_types",
                format!("must be below n_cell_types ({})", self.n_cell_types),
            ));
        }
        Ok(())
    }
}

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}
/// The per-gene draws that come first from the simulator's main stream: base rates,
/// dispersions and the cell types' marker programmes.
struct GeneDraws {
    base_rate: Vec<f64>,
    theta: Vec<f64>,
    type_factor: Vec<Vec<f64>>,
    /// Up-regulated genes of each cell type (shared half first), as drawn (may repeat).
    programmes: Vec<Vec<usize>>,
}

fn draw_genes(cfg: &SimConfig, rng: &mut ChaCha8Rng) -> Result<GeneDraws> {
    let (g, nt) = (cfg.n_genes, cfg.n_cell_types);
    let ln = |m: f64, s: f64| {
        LogNormal::new(m, s.max(1e-12)).map_err(|e| Error::param("sim", e.to_string()))
    };
    // gene base rates and dispersions
    let base = ln(0.0, 1.3)?;
    let base_rate: Vec<f64> = (0..g).map(|_| base.sample(rng)).collect();
    let disp_d = ln(0.7, 0.6)?;
    let theta: Vec<f64> = (0..g)
        .map(|_| disp_d.sample(rng).clamp(0.05, 100.0))
        .collect();
    // cell-type programmes: types come in related pairs that share half of their markers
    let n_markers = ((cfg.marker_fraction * g as f64).round() as usize).max(1);
    let fc = Normal::new(cfg.marker_log2fc, 0.5)
        .map_err(|e| Error::param("marker_log2fc", e.to_string()))?;
    let mut type_factor = vec![vec![1.0f64; g]; nt];
    let mut programmes = Vec::with_capacity(nt);
    let mut shared: Vec<usize> = vec![];
    for (t, tf) in type_factor.iter_mut().enumerate() {
        if t % 2 == 0 {
            shared = (0..n_markers / 2).map(|_| rng.random_range(0..g)).collect();
        }
        let own: Vec<usize> = (0..n_markers - n_markers / 2)
            .map(|_| rng.random_range(0..g))
            .collect();
        for &j in shared.iter().chain(&own) {
            tf[j] *= 2f64.powf(fc.sample(rng).max(0.3));
        }
        for _ in 0..(n_markers / 4).max(1) {
            let j = rng.random_range(0..g);
            tf[j] *= 2f64.powf(-fc.sample(rng).max(0.3));
        }
        programmes.push(shared.iter().chain(&own).copied().collect());
    }
    Ok(GeneDraws {
        base_rate,
        theta,
        type_factor,
        programmes,
    })
}

/// The simulator's cell-type marker programmes as gene sets (`TYPE_<t>_UP`: the genes type
/// `t` up-regulates, named as [`simulate`] names genes), for gene-programme masking without a
/// download. The same `cfg` gives the same sets as the dataset `simulate(cfg)` draws.
pub fn gene_programs(cfg: &SimConfig) -> Result<Vec<crate::gmt::GeneSet>> {
    cfg.validate()?;
    let draws = draw_genes(cfg, &mut rng_for(cfg.seed, 0))?;
    Ok(draws
        .programmes
        .into_iter()
        .enumerate()
        .map(|(t, mut genes)| {
            genes.sort_unstable();
            genes.dedup();
            crate::gmt::GeneSet {
                name: format!("TYPE_{t}_UP"),
                description: format!(
                    "scssl-data simulator, seed {}: markers of type_{t}",
                    cfg.seed
                ),
                genes: genes.into_iter().map(gene_name).collect(),
            }
        })
        .collect())
}

fn gene_name(j: usize) -> String {
    format!("gene_{j:05}")
}

/// Everything the simulator draws before the cells: per-gene, per-batch and per-type
/// parameters, each cell's batch. Cells are then drawn from their own streams, in any chunks.
struct Model<'c> {
    cfg: &'c SimConfig,
    cell_batch: Vec<usize>,
    props: Vec<Vec<f64>>,
    profile: Vec<Vec<Vec<f64>>>,
    theta: Vec<f64>,
    lib: LogNormal<f64>,
    batch_lib: Vec<f64>,
    prot_base: Vec<f64>,
    prot_factor: Vec<Vec<f64>>,
    prot_batch: Vec<Vec<f64>>,
}

impl<'c> Model<'c> {
    fn new(cfg: &'c SimConfig) -> Result<Self> {
        cfg.validate()?;
        let (n, g, nb, nt) = (cfg.n_cells, cfg.n_genes, cfg.n_batches, cfg.n_cell_types);
        let mut rng = rng_for(cfg.seed, 0);
        let ln = |m: f64, s: f64| {
            LogNormal::new(m, s.max(1e-12)).map_err(|e| Error::param("sim", e.to_string()))
        };
        let GeneDraws {
            base_rate,
            theta,
            type_factor,
            ..
        } = draw_genes(cfg, &mut rng)?;
        // batch effects on genes and library sizes
        let bd = ln(0.0, cfg.batch_effect)?;
        let batch_factor: Vec<Vec<f64>> = (0..nb)
            .map(|_| (0..g).map(|_| bd.sample(&mut rng)).collect())
            .collect();
        let bl = ln(0.0, cfg.batch_library_effect)?;
        let batch_lib: Vec<f64> = (0..nb).map(|_| bl.sample(&mut rng)).collect();
        // cell-type proportions per batch; the rarest types are missing from one batch each
        let global: Vec<f64> = (0..nt).map(|t| 1.0 / (1.0 + t as f64).powf(0.7)).collect();
        let jitter = ln(0.0, 0.4)?;
        let mut props: Vec<Vec<f64>> = (0..nb)
            .map(|_| global.iter().map(|p| p * jitter.sample(&mut rng)).collect())
            .collect();
        if nb > 1 {
            for r in 0..cfg.batch_specific_types {
                let t = nt - 1 - r;
                props[r % nb][t] = 0.0;
            }
        }
        // batch sizes: unequal, every batch non-empty
        let bw: Vec<f64> = (0..nb).map(|_| 0.6 + rng.random::<f64>()).collect();
        let bsum: f64 = bw.iter().sum();
        let mut sizes: Vec<usize> = bw
            .iter()
            .map(|w| ((w / bsum) * n as f64).floor() as usize)
            .collect();
        for s in sizes.iter_mut() {
            *s = (*s).max(1);
        }
        let total: usize = sizes.iter().sum();
        if total < n {
            sizes[0] += n - total;
        } else if total > n {
            let big = sizes
                .iter()
                .enumerate()
                .max_by_key(|e| *e.1)
                .map(|e| e.0)
                .unwrap_or(0);
            sizes[big] -= total - n;
        }
        let mut cell_batch = Vec::with_capacity(n);
        for (b, &s) in sizes.iter().enumerate() {
            cell_batch.extend(std::iter::repeat_n(b, s));
        }
        // per-(batch, type) normalised expression profiles
        let mut profile = vec![vec![vec![0.0f64; g]; nt]; nb];
        for b in 0..nb {
            for t in 0..nt {
                let p: Vec<f64> = (0..g)
                    .map(|j| base_rate[j] * type_factor[t][j] * batch_factor[b][j])
                    .collect();
                let s: f64 = p.iter().sum();
                profile[b][t] = p.into_iter().map(|v| v / s).collect();
            }
        }
        let lib = ln(cfg.library_size.ln(), cfg.library_sd)?;
        // proteins
        let np = cfg.n_proteins;
        let prot_base: Vec<f64> = (0..np)
            .map(|_| ln(3.0, 0.8).map(|d| d.sample(&mut rng)))
            .collect::<Result<_>>()?;
        let mut prot_factor = vec![vec![1.0f64; np]; nt];
        for p in 0..np {
            let t1 = rng.random_range(0..nt);
            prot_factor[t1][p] *= 8.0 + 8.0 * rng.random::<f64>();
            if nt > 2 && rng.random::<f64>() < 0.5 {
                let t2 = rng.random_range(0..nt);
                prot_factor[t2][p] *= 3.0 + 4.0 * rng.random::<f64>();
            }
        }
        let prot_batch: Vec<Vec<f64>> = (0..nb)
            .map(|_| {
                (0..np)
                    .map(|_| ln(0.0, 0.15).map(|d| d.sample(&mut rng)))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            cfg,
            cell_batch,
            props,
            profile,
            theta,
            lib,
            batch_lib,
            prot_base,
            prot_factor,
            prot_batch,
        })
    }

    /// Cells `range`: their counts (CSR, all genes), cell types and protein counts.
    fn cells(&self, range: std::ops::Range<usize>) -> Result<(CsrMatrix, Vec<usize>, Array2<f32>)> {
        let Self {
            cfg,
            cell_batch,
            props,
            profile,
            theta,
            lib,
            batch_lib,
            prot_base,
            prot_factor,
            prot_batch,
        } = self;
        let (g, nt, np) = (cfg.n_genes, cfg.n_cell_types, cfg.n_proteins);
        let n = range.len();
        struct Cell {
            t: usize,
            cols: Vec<u32>,
            vals: Vec<f32>,
            prot: Vec<f32>,
        }
        let cells: Vec<Cell> = range
            .into_par_iter()
            .map(|i| {
                let mut r = rng_for(cfg.seed, 1 + i as u64);
                let b = cell_batch[i];
                let w = &props[b];
                let tot: f64 = w.iter().sum();
                let mut u = r.random::<f64>() * tot;
                let mut t = 0;
                while t + 1 < nt && u >= w[t] {
                    u -= w[t];
                    t += 1;
                }
                let l = lib.sample(&mut r) * batch_lib[b];
                let mut cols = vec![];
                let mut vals = vec![];
                for j in 0..g {
                    let mu = l * profile[b][t][j];
                    if cfg.dropout_slope > 0.0 {
                        let p_drop = 1.0
                            / (1.0 + (cfg.dropout_slope * (mu.ln() - cfg.dropout_midpoint)).exp());
                        if r.random::<f64>() < p_drop {
                            continue;
                        }
                    }
                    let lam = Gamma::new(theta[j], mu / theta[j])
                        .map(|d| d.sample(&mut r))
                        .unwrap_or(mu);
                    let c = if lam > 0.0 {
                        Poisson::new(lam).map(|d| d.sample(&mut r)).unwrap_or(0.0)
                    } else {
                        0.0
                    };
                    if c > 0.0 {
                        cols.push(j as u32);
                        vals.push(c as f32);
                    }
                }
                let prot = (0..np)
                    .map(|p| {
                        let mu = prot_base[p]
                            * prot_factor[t][p]
                            * prot_batch[b][p]
                            * (l / cfg.library_size).sqrt();
                        let lam = Gamma::new(5.0, mu / 5.0)
                            .map(|d| d.sample(&mut r))
                            .unwrap_or(mu);
                        if lam > 0.0 {
                            Poisson::new(lam)
                                .map(|d| d.sample(&mut r) as f32)
                                .unwrap_or(0.0)
                        } else {
                            0.0
                        }
                    })
                    .collect();
                Cell {
                    t,
                    cols,
                    vals,
                    prot,
                }
            })
            .collect();
        let mut indptr = vec![0usize];
        let mut indices = vec![];
        let mut data = vec![];
        let mut types = Vec::with_capacity(n);
        let mut prot = Array2::<f32>::zeros((n, np));
        for (i, c) in cells.into_iter().enumerate() {
            indices.extend(c.cols);
            data.extend(c.vals);
            indptr.push(data.len());
            types.push(c.t);
            for (p, v) in c.prot.into_iter().enumerate() {
                prot[[i, p]] = v;
            }
        }
        let x = CsrMatrix::new(n, g, indptr, indices, data)?;
        Ok((x, types, prot))
    }

    /// The AnnData around `x`: obs names, batches, cell types, proteins, provenance.
    fn annotate(&self, x: Matrix, types: &[usize], prot: Array2<f32>) -> Result<AnnData> {
        let cfg = self.cfg;
        let (n, g, nb, nt, np) = (
            cfg.n_cells,
            cfg.n_genes,
            cfg.n_batches,
            cfg.n_cell_types,
            cfg.n_proteins,
        );
        let cell_batch = &self.cell_batch;
        let obs_names: Vec<String> = (0..n).map(|i| format!("cell_{i}")).collect();
        let var_names: Vec<String> = (0..g).map(gene_name).collect();
        let mut ad = AnnData::new(x, obs_names, var_names)?;
        ad.obs.insert(
            "batch",
            Column::Categorical {
                codes: cell_batch.iter().map(|&b| b as i32).collect(),
                categories: (0..nb).map(|b| format!("batch_{b}")).collect(),
                ordered: false,
                category_kind: crate::frame::CategoryKind::Text,
            },
        )?;
        ad.obs.insert(
            "cell_type",
            Column::Categorical {
                codes: types.iter().map(|&t| t as i32).collect(),
                categories: (0..nt).map(|t| format!("type_{t}")).collect(),
                ordered: false,
                category_kind: crate::frame::CategoryKind::Text,
            },
        )?;
        if np > 0 {
            ad.obsm.insert("protein_expression".into(), prot);
            ad.uns.insert(
                "protein_names".into(),
                UnsValue::Strings((0..np).map(|p| format!("protein_{p:03}")).collect()),
            );
        }
        ad.uns.insert(
            "source".into(),
            UnsValue::String(format!("scssl-data simulator, seed {}", cfg.seed)),
        );
        Ok(ad)
    }
}

/// Simulates a dataset: raw counts in `X` (CSR), `obs['batch']`, `obs['cell_type']`, and with
/// proteins `obsm['protein_expression']` plus `uns['protein_names']`. Cells are grouped by batch.
pub fn simulate(cfg: &SimConfig) -> Result<AnnData> {
    let model = Model::new(cfg)?;
    let (x, types, prot) = model.cells(0..cfg.n_cells)?;
    model.annotate(Matrix::Csr(x), &types, prot)
}

/// [`simulate`] straight into a file (`.h5ad` or `.zarr`), `chunk_rows` cells at a time, so
/// memory holds one chunk of counts instead of the whole matrix: a million cells fit where the
/// in-memory result would not. The file equals [`simulate`]'s result written with
/// [`crate::io::write`]. `on_progress(done, total)` follows the cells.
pub fn simulate_to(
    cfg: &SimConfig,
    path: &std::path::Path,
    chunk_rows: usize,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    if chunk_rows == 0 {
        return Err(Error::param("chunk_rows", "must be at least 1"));
    }
    let model = Model::new(cfg)?;
    let (n, g, np) = (cfg.n_cells, cfg.n_genes, cfg.n_proteins);
    let mut w = crate::io::CsrStreamWriter::create(path, n, g, &[])?;
    let mut types = Vec::with_capacity(n);
    let mut prot = Array2::<f32>::zeros((n, np));
    for start in (0..n).step_by(chunk_rows) {
        let end = (start + chunk_rows).min(n);
        let (x, t, p) = model.cells(start..end)?;
        w.append(&[&x])?;
        types.extend(t);
        prot.slice_mut(ndarray::s![start..end, ..]).assign(&p);
        on_progress(end, n);
    }
    let ad = model.annotate(Matrix::Csr(CsrMatrix::zeros(n, g)), &types, prot)?;
    w.finish(&ad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gene_programs_are_the_types_up_regulated_markers() {
        let cfg = SimConfig {
            n_cells: 600,
            n_genes: 400,
            ..Default::default()
        };
        let sets = gene_programs(&cfg).unwrap();
        assert_eq!(sets.len(), cfg.n_cell_types);
        assert_eq!(sets, gene_programs(&cfg).unwrap());
        let ad = simulate(&cfg).unwrap();
        let x = ad.x.to_dense();
        let types = ad.obs_groups("cell_type").unwrap();
        // a type's programme is expressed more in that type than in the other cells
        for (t, set) in sets.iter().enumerate() {
            let cols: Vec<usize> = set
                .genes
                .iter()
                .map(|g| ad.var.index.iter().position(|v| v == g).unwrap())
                .collect();
            let (mut inside, mut n_in, mut outside, mut n_out) = (0.0f64, 0, 0.0f64, 0);
            for i in 0..cfg.n_cells {
                let libsize: f32 = x.row(i).sum();
                let v: f32 = cols.iter().map(|&c| x[[i, c]]).sum::<f32>() / libsize;
                if types.names[types.codes[i] as usize] == format!("type_{t}") {
                    inside += v as f64;
                    n_in += 1;
                } else {
                    outside += v as f64;
                    n_out += 1;
                }
            }
            if n_in > 0 {
                assert!(inside / n_in as f64 > outside / n_out as f64, "type {t}");
            }
        }
    }

    #[cfg(feature = "h5ad")]
    #[test]
    fn streamed_simulation_equals_the_in_memory_one() {
        let cfg = SimConfig {
            n_cells: 900,
            n_genes: 150,
            n_proteins: 3,
            seed: 11,
            ..Default::default()
        };
        let dir = std::env::temp_dir().join(format!("scssl-sim-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.h5ad");
        let mut calls = vec![];
        simulate_to(&cfg, &path, 256, &mut |d, t| calls.push((d, t))).unwrap();
        assert_eq!(calls, [(256, 900), (512, 900), (768, 900), (900, 900)]);
        let streamed = crate::io::read(&path).unwrap();
        assert_eq!(streamed, simulate(&cfg).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shape_labels_and_determinism() {
        let cfg = SimConfig {
            n_cells: 400,
            n_genes: 300,
            n_proteins: 5,
            ..Default::default()
        };
        let a = simulate(&cfg).unwrap();
        assert_eq!(a.x.shape(), (400, 300));
        assert_eq!(a.obs_groups("batch").unwrap().n_groups(), 3);
        assert!(a.obs_groups("cell_type").unwrap().n_groups() >= 6);
        assert_eq!(a.obsm["protein_expression"].dim(), (400, 5));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| simulate(&cfg).unwrap());
        assert_eq!(a, b);
        let sums = a.x.row_sums();
        assert!(sums.iter().all(|&s| s > 0.0));
        assert!(
            simulate(&SimConfig {
                n_cells: 1,
                ..Default::default()
            })
            .is_err()
        );
    }
}

//! The augmentations. Each acts on one cell's expression vector (a private copy), given the
//! cell's global index, which view it makes, the unmodified training matrix and neighbour lists.

use ndarray::{ArrayViewMut2, Axis};
use rand::Rng;
use rand::seq::SliceRandom;
use rand::seq::index::sample;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::{Purpose, ViewKey, ViewRng, stream};
use crate::rows::CellRows;

/// What an augmentation may read besides the cell itself.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The training matrix (cells × genes, dense or CSR), never modified: partners' values
    /// come from here.
    pub data: CellRows<'a>,
    /// Within-batch kNN of every cell (global ids, self excluded), for `NeighbourMix` (MNN).
    pub within_batch_knn: Option<&'a [Vec<u32>]>,
    /// Mutual-nearest-neighbour partners in other batches (global ids), for `NeighbourMix` (MNN).
    pub mnn: Option<&'a [Vec<u32>]>,
    /// BBKNN neighbours (global ids, self excluded), for `NeighbourMix` (BBKNN).
    pub bbknn: Option<&'a [Vec<u32>]>,
}

impl<'a> Context<'a> {
    /// A context with only the training matrix (enough for every augmentation but
    /// `NeighbourMix`): a dense `ArrayView2`, a [`crate::CsrRows`] or (feature `neighbors`) a
    /// `scssl_data` matrix.
    pub fn new(data: impl Into<CellRows<'a>>) -> Self {
        Self {
            data: data.into(),
            within_batch_knn: None,
            mnn: None,
            bbknn: None,
        }
    }
}

/// One augmentation of one cell.
pub trait Augmentation: Send + Sync + std::fmt::Debug {
    /// Short name.
    fn name(&self) -> &'static str;
    /// Rewrites `x` (a private copy of cell `cell`'s row) into the augmented view `view` (0 or 1).
    fn apply(&self, x: &mut [f32], cell: usize, view: u8, ctx: &Context<'_>, rng: &mut ViewRng);
    /// Checks the inputs this augmentation needs against the data it will see.
    fn check(&self, _ctx: &Context<'_>) -> Result<()> {
        Ok(())
    }
    /// Applies to one cell with the RNG keyed by `key` (seed, epoch, cell, view).
    fn apply_cell(&self, x: &mut [f32], key: ViewKey, ctx: &Context<'_>) {
        let mut rng = stream(key, 0, Purpose::Apply, false);
        self.apply(x, key.cell as usize, key.view, ctx, &mut rng);
    }
    /// Applies to every row of `x` in place (row i is cell `cells[i]`), each row with its own
    /// keyed RNG — the same result as [`Augmentation::apply_cell`] on each row alone, in parallel.
    fn apply_batch(
        &self,
        mut x: ArrayViewMut2<'_, f32>,
        cells: &[usize],
        seed: u64,
        epoch: u64,
        view: u8,
        ctx: &Context<'_>,
    ) -> Result<()> {
        if x.nrows() != cells.len() {
            return Err(Error::Input(format!(
                "{} rows but {} cell ids",
                x.nrows(),
                cells.len()
            )));
        }
        self.check(ctx)?;
        x.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(cells.par_iter())
            .for_each(|(mut row, &cell)| {
                let key = ViewKey {
                    seed,
                    epoch,
                    cell: cell as u64,
                    view,
                };
                match row.as_slice_mut() {
                    Some(s) => self.apply_cell(s, key, ctx),
                    None => {
                        let mut v = row.to_vec();
                        self.apply_cell(&mut v, key, ctx);
                        row.assign(&ndarray::ArrayView1::from(&v[..]));
                    }
                }
            });
        Ok(())
    }
}

fn count(rate: f64, g: usize) -> usize {
    ((rate * g as f64).floor() as usize).min(g)
}

/// A uniformly random set of exactly `m` of the positions `0..g`, as a bitset. Robert Floyd's
/// algorithm draws `min(m, g − m)` numbers (the complement is drawn when `m > g/2`).
pub(crate) fn choose(rng: &mut ViewRng, g: usize, m: usize) -> Vec<u64> {
    let words = g.div_ceil(64);
    let mut sel = vec![0u64; words];
    let m = m.min(g);
    let (k, invert) = if 2 * m > g { (g - m, true) } else { (m, false) };
    let test = |s: &[u64], i: usize| s[i / 64] >> (i % 64) & 1 == 1;
    for j in (g - k)..g {
        let t = below(rng, j as u32 + 1) as usize;
        let pick = if test(&sel, t) { j } else { t };
        sel[pick / 64] |= 1 << (pick % 64);
    }
    if invert {
        for w in sel.iter_mut() {
            *w = !*w;
        }
        if !g.is_multiple_of(64)
            && let Some(last) = sel.last_mut()
        {
            *last &= (1u64 << (g % 64)) - 1;
        }
    }
    sel
}

/// A uniform draw from `0..range` (Lemire's multiply-and-reject: unbiased, rarely a second draw).
#[inline(always)]
fn below(rng: &mut ViewRng, range: u32) -> u32 {
    use rand::RngCore;
    let mut m = rng.next_u32() as u64 * range as u64;
    if (m as u32) < range {
        let threshold = range.wrapping_neg() % range;
        while (m as u32) < threshold {
            m = rng.next_u32() as u64 * range as u64;
        }
    }
    (m >> 32) as u32
}

/// Calls `f` with every position set in `sel`, in increasing order.
#[inline]
pub(crate) fn for_each_set(sel: &[u64], mut f: impl FnMut(usize)) {
    for (wi, &w) in sel.iter().enumerate() {
        let mut w = w;
        while w != 0 {
            f(wi * 64 + w.trailing_zeros() as usize);
            w &= w - 1;
        }
    }
}

/// Sets exactly `⌊rate·G⌋` randomly chosen genes to zero (CLEAR's intent; the reference code
/// instead *keeps* ⌊p·G⌋ genes — its `mask_percentage = p` is our `rate = 1 − p`, DIV-1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mask {
    /// Share of genes to zero, in [0, 1].
    pub rate: f64,
}

impl Augmentation for Mask {
    fn name(&self) -> &'static str {
        "mask"
    }
    fn apply(&self, x: &mut [f32], _: usize, _: u8, _: &Context<'_>, rng: &mut ViewRng) {
        let sel = choose(rng, x.len(), count(self.rate, x.len()));
        for_each_set(&sel, |j| x[j] = 0.0);
    }
}

/// Adds independent N(0, σ²) noise to exactly `⌊rate·G⌋` randomly chosen genes (no clipping,
/// as in the reference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianNoise {
    /// Share of genes that get noise, in [0, 1].
    pub rate: f64,
    /// Standard deviation, ≥ 0.
    pub sigma: f64,
}

impl Augmentation for GaussianNoise {
    fn name(&self) -> &'static str {
        "gauss"
    }
    fn apply(&self, x: &mut [f32], _: usize, _: u8, _: &Context<'_>, rng: &mut ViewRng) {
        let sel = choose(rng, x.len(), count(self.rate, x.len()));
        let sigma = self.sigma.max(0.0) as f32;
        for_each_set(&sel, |j| {
            let z: f32 = StandardNormal.sample(rng);
            x[j] += sigma * z;
        });
    }
}

/// Swaps exactly `⌊⌊rate·G⌋/2⌋` disjoint pairs of genes within the cell: a true permutation of
/// the cell's values (the reference draws indices with replacement, so duplicates make it
/// slightly less, and mutates storage shared with the other view, DIV-4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InnerSwap {
    /// Share of genes involved in swaps, in [0, 1].
    pub rate: f64,
}

impl Augmentation for InnerSwap {
    fn name(&self) -> &'static str {
        "innerswap"
    }
    fn apply(&self, x: &mut [f32], _: usize, _: u8, _: &Context<'_>, rng: &mut ViewRng) {
        let pairs = count(self.rate, x.len()) / 2;
        let sel = choose(rng, x.len(), 2 * pairs);
        let mut idx = Vec::with_capacity(2 * pairs);
        for_each_set(&sel, |j| idx.push(j));
        idx.shuffle(rng);
        for p in 0..pairs {
            x.swap(idx[2 * p], idx[2 * p + 1]);
        }
    }
}

/// Replaces exactly `⌊rate·G⌋` randomly chosen genes with the values of one partner cell drawn
/// uniformly from all other training cells (values read from the unmodified matrix).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossOver {
    /// Share of genes taken from the partner, in [0, 1].
    pub rate: f64,
}

impl CrossOver {
    /// The partner cell the draw picks (exposed for tests and diagnostics).
    pub fn partner(n_cells: usize, cell: usize, rng: &mut ViewRng) -> usize {
        if n_cells <= 1 {
            return cell;
        }
        let p = rng.random_range(0..n_cells - 1);
        if p >= cell { p + 1 } else { p }
    }
}

impl Augmentation for CrossOver {
    fn name(&self) -> &'static str {
        "crossover"
    }
    fn apply(&self, x: &mut [f32], cell: usize, _: u8, ctx: &Context<'_>, rng: &mut ViewRng) {
        let partner = Self::partner(ctx.data.nrows(), cell, rng);
        let row = ctx.data.row(partner);
        let sel = choose(rng, x.len(), count(self.rate, x.len()));
        for_each_set(&sel, |j| x[j] = row[j]);
    }
}

/// CLEAR's "crossover with many" (random-cell replacement): exactly `⌊rate·G⌋` randomly chosen
/// genes each take their value from their **own** partner cell, drawn uniformly from all other
/// training cells (values read from the unmodified matrix).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossOverMany {
    /// Share of genes replaced, in [0, 1].
    pub rate: f64,
}

impl Augmentation for CrossOverMany {
    fn name(&self) -> &'static str {
        "crossover_many"
    }
    fn apply(&self, x: &mut [f32], cell: usize, _: u8, ctx: &Context<'_>, rng: &mut ViewRng) {
        let n = ctx.data.nrows();
        let sel = choose(rng, x.len(), count(self.rate, x.len()));
        for_each_set(&sel, |j| {
            let partner = CrossOver::partner(n, cell, rng);
            x[j] = ctx.data.value(partner, j);
        });
    }
}

/// How a cell is combined with a neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MixOp {
    /// `λ·x + (1 − λ)·x_n` with λ ~ U[α, 1] drawn per view (CLAIRE; the reference fixes λ = α, DIV-6).
    Interpolate,
    /// Per gene, keep the cell's value with probability λ ~ U[α, 1], else take the neighbour's
    /// (CLAIRE's per-gene exchange; the reference's MNN view 1 flips one coin per cell, DIV-7).
    Exchange,
}

/// Which neighbours `NeighbourMix` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeighbourSource {
    /// CLAIRE: view 1 mixes the cell with a random within-batch neighbour; view 2 mixes a
    /// random MNN partner from another batch with one of *its* within-batch neighbours.
    Mnn,
    /// Both views mix the cell with a random BBKNN neighbour.
    Bbknn,
}

/// Neighbour-based mixing (CLAIRE's MNN views, or BBKNN neighbours). Neighbours are picked by
/// **id** from the lists (the reference indexes the data by list *position*, DIV-2/2b), and MNN
/// partners are global ids (DIV-3). A cell without MNN partners uses itself as the anchor (the
/// reference's `exclude_fn=False` behaviour); a cell without neighbours is left unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourMix {
    /// Lower bound of λ, in [0, 1].
    pub alpha: f64,
    /// Operators; one is drawn uniformly per view.
    pub ops: Vec<MixOp>,
    /// Neighbour source.
    pub source: NeighbourSource,
}

fn pick(list: &[u32], rng: &mut ViewRng) -> Option<usize> {
    if list.is_empty() {
        None
    } else {
        Some(list[rng.random_range(0..list.len())] as usize)
    }
}

impl NeighbourMix {
    fn mix(&self, out: &mut [f32], a: &[f32], b: &[f32], rng: &mut ViewRng) {
        let op = if self.ops.len() == 1 {
            self.ops[0]
        } else {
            self.ops[rng.random_range(0..self.ops.len())]
        };
        let lambda = if self.alpha >= 1.0 {
            1.0
        } else {
            rng.random_range(self.alpha..=1.0)
        };
        match op {
            MixOp::Interpolate => {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = (lambda * a[j] as f64 + (1.0 - lambda) * b[j] as f64) as f32;
                }
            }
            MixOp::Exchange => {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = if rng.random::<f64>() < lambda {
                        a[j]
                    } else {
                        b[j]
                    };
                }
            }
        }
    }
}

impl Augmentation for NeighbourMix {
    fn name(&self) -> &'static str {
        match self.source {
            NeighbourSource::Mnn => "mnn",
            NeighbourSource::Bbknn => "bbknn",
        }
    }
    fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let n = ctx.data.nrows();
        let need = |name: &str, l: Option<&[Vec<u32>]>| -> Result<()> {
            let l = l.ok_or_else(|| {
                Error::Input(format!(
                    "{} needs `{name}` neighbour lists in the context",
                    self.name()
                ))
            })?;
            if l.len() != n {
                return Err(Error::Input(format!(
                    "`{name}` has {} lists for {n} cells",
                    l.len()
                )));
            }
            if let Some((i, bad)) = l
                .iter()
                .enumerate()
                .find_map(|(i, v)| v.iter().find(|&&j| j as usize >= n).map(|b| (i, *b)))
            {
                return Err(Error::Input(format!(
                    "`{name}[{i}]` names cell {bad}, but there are {n} cells"
                )));
            }
            Ok(())
        };
        match self.source {
            NeighbourSource::Mnn => {
                need("within_batch_knn", ctx.within_batch_knn)?;
                need("mnn", ctx.mnn)
            }
            NeighbourSource::Bbknn => need("bbknn", ctx.bbknn),
        }
    }
    fn apply(&self, x: &mut [f32], cell: usize, view: u8, ctx: &Context<'_>, rng: &mut ViewRng) {
        let empty: &[Vec<u32>] = &[];
        match self.source {
            NeighbourSource::Bbknn => {
                let lists = ctx.bbknn.unwrap_or(empty);
                if let Some(nb) = lists.get(cell).and_then(|l| pick(l, rng)) {
                    let a = x.to_vec();
                    self.mix(x, &a, &ctx.data.row(nb), rng);
                }
            }
            NeighbourSource::Mnn => {
                let knn = ctx.within_batch_knn.unwrap_or(empty);
                let mnn = ctx.mnn.unwrap_or(empty);
                let anchor = if view == 0 {
                    cell
                } else {
                    mnn.get(cell).and_then(|l| pick(l, rng)).unwrap_or(cell)
                };
                if let Some(nb) = knn.get(anchor).and_then(|l| pick(l, rng)) {
                    let a: Vec<f32> = if anchor == cell {
                        x.to_vec()
                    } else {
                        ctx.data.row(anchor).into_owned()
                    };
                    self.mix(x, &a, &ctx.data.row(nb), rng);
                } else if anchor != cell {
                    ctx.data.copy_row(anchor, x);
                }
            }
        }
    }
}

/// Masks whole gene programmes (gene sets given as lists of gene indices): `⌊rate·P⌋` of the P
/// programmes are drawn per cell and all their genes set to zero (Richter et al.'s masked
/// autoencoder strategy; their code shares one draw across a mini-batch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneProgramMask {
    /// The programmes (gene indices).
    pub programs: Vec<Vec<u32>>,
    /// Share of programmes to mask, in [0, 1].
    pub rate: f64,
}

impl Augmentation for GeneProgramMask {
    fn name(&self) -> &'static str {
        "gene_program_mask"
    }
    fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let g = ctx.data.ncols();
        for (p, prog) in self.programs.iter().enumerate() {
            if let Some(bad) = prog.iter().find(|&&j| j as usize >= g) {
                return Err(Error::field(
                    format!("gene_program_mask.programs[{p}]"),
                    bad,
                    format!("gene indices 0..{g}"),
                ));
            }
        }
        Ok(())
    }
    fn apply(&self, x: &mut [f32], _: usize, _: u8, _: &Context<'_>, rng: &mut ViewRng) {
        let n = count(self.rate, self.programs.len());
        for p in sample(rng, self.programs.len(), n) {
            for &j in &self.programs[p] {
                if let Some(v) = x.get_mut(j as usize) {
                    *v = 0.0;
                }
            }
        }
    }
}

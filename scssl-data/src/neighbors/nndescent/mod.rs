//! Approximate kNN by NN-descent (Dong, Charikar & Li 2011) with a random-projection-forest
//! initialisation, the algorithm of pynndescent.
//!
//! Deterministic for a given seed whatever the thread count: every random choice is a hash of
//! (seed, iteration, point), and each round's candidate updates are applied per target point
//! as "keep the k smallest (distance, id)", which does not depend on arrival order.

use ndarray::{Array2, ArrayView2};
use std::ops::Range;

use rayon::prelude::*;

use super::{Neighbors, check_input, sqdist, sqdist_lanes, sqdist4_lanes};
#[cfg(target_arch = "x86_64")]
use super::{sqdist_avx2, sqdist4_avx2};
use crate::error::Result;

mod candidates;
mod lists;
mod trees;

use candidates::{filled, priority, reverse_candidates, sample_entries};
use lists::{Lists, key_distance, key_id, pair_key, push};
use trees::rp_tree_leaves;

/// Parameters of [`knn_nndescent`].
#[derive(Debug, Clone, PartialEq)]
pub struct NnDescentParams {
    /// Seed of every random choice.
    pub seed: u64,
    /// Random-projection trees (default: pynndescent 0.6's `max(3, min(12, round(2·log10 n)))`).
    pub n_trees: Option<usize>,
    /// Maximum points per tree leaf (raised to the list length + 1 when that is larger).
    pub leaf_size: usize,
    /// Maximum new/old candidates per point and round.
    pub max_candidates: usize,
    /// Maximum rounds (default: `max(5, round(log2 n))`).
    pub n_iters: Option<usize>,
    /// Stop when fewer than `delta · n · k` neighbours changed in a round.
    pub delta: f64,
    /// Neighbour lists are kept `oversample` times longer than `k` during the search and cut
    /// to `k` at the end: slower, but the search escapes more local optima (higher recall).
    /// Lists are also never shorter than [`min_list_len`] of the point count.
    pub oversample: f64,
    /// After the search converges, the recall of [`RECALL_SAMPLE`] evenly spaced points is
    /// measured against an exact search of all points; while it is below this target, the
    /// lists grow 1.5× and the search goes on from where it stood (up to lists
    /// [`MAX_LIST_FACTOR`]× `k` long). `None`: no check.
    pub target_recall: Option<f64>,
}

/// Points whose exact neighbours estimate the recall for [`NnDescentParams::target_recall`]
/// (0.0024 standard error at recall 0.98 and k = 15).
pub const RECALL_SAMPLE: usize = 256;
/// Lists never grow beyond this many times `k` for [`NnDescentParams::target_recall`].
pub const MAX_LIST_FACTOR: usize = 6;

/// The shortest neighbour list for `n` points: 25 at 100,000 points, 17 more per tenfold.
/// At a fixed list length NN-descent's recall falls as the data grows denser (so does
/// pynndescent's): on 50 PCs of simulated counts, lists of 25 found 0.986 of the 15-NN at
/// 100,000 cells but 0.927 at a million, where lists of 42 found 0.987. Lists for large `k`
/// are longer than this anyway.
pub fn min_list_len(n: usize) -> usize {
    (17.0 * (n.max(1) as f64).log10() - 60.0).max(0.0).round() as usize
}

impl Default for NnDescentParams {
    fn default() -> Self {
        Self {
            seed: 0,
            n_trees: None,
            leaf_size: 60,
            max_candidates: 30,
            n_iters: None,
            delta: 0.001,
            oversample: 1.75,
            target_recall: Some(0.98),
        }
    }
}

pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn key(seed: u64, a: u64, b: u64, c: u64) -> u64 {
    mix(mix(mix(seed ^ 0x5151) ^ a).wrapping_add(b.rotate_left(21)) ^ c.rotate_left(42))
}

/// The `n` rows of `x` (row-major, `d` columns) in the leaf order of one random-projection tree
/// with leaves of at most `leaf_size` rows: rows close in space get close positions.
/// `order[new] = old`; a function of the data and the seed only.
pub(crate) fn spatial_order(
    x: &[f32],
    n: usize,
    d: usize,
    leaf_size: usize,
    seed: u64,
) -> Vec<u32> {
    spatial_leaves(x, n, d, leaf_size, seed)
        .into_iter()
        .flatten()
        .collect()
}

/// The leaves of the tree of [`spatial_order`], in that order.
pub(crate) fn spatial_leaves(
    x: &[f32],
    n: usize,
    d: usize,
    leaf_size: usize,
    seed: u64,
) -> Vec<Vec<u32>> {
    rp_tree_leaves(&Data { x, d }, n, leaf_size, seed, 0)
}

struct Data<'a> {
    x: &'a [f32],
    d: usize,
}

impl Data<'_> {
    #[inline]
    fn row(&self, i: u32) -> &[f32] {
        &self.x[i as usize * self.d..(i as usize + 1) * self.d]
    }
    #[inline]
    fn sqdist(&self, a: u32, b: u32) -> f32 {
        sqdist(self.row(a), self.row(b))
    }
}

/// Defines `$name`, which runs the `#[inline(always)]` kernel `$kernel` compiled for AVX2 when
/// this CPU has it, with the squared distance (of one pair, and of one row against four) as its
/// last arguments. Both distances are the
/// same eight-lane sums without fused multiply-add, so both versions give the same bits.
macro_rules! dispatched {
    ($(#[$doc:meta])* $name:ident => $kernel:ident($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) {
                    // a closure inherits its function's target features
                    $kernel($($arg),*, |a, b| sqdist_avx2(a, b), |a, b| sqdist4_avx2(a, b))
                }
                if crate::simd::level() >= crate::simd::Level::Avx2 {
                    // SAFETY: the CPU has AVX2.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $kernel($($arg),*, sqdist_lanes, sqdist4_lanes)
        }
    };
}

// after the macro, which it uses
mod recall_check;
use recall_check::sample_recall;

/// An offer to a neighbour list: (target point, key of the pair).
type Offer = (u32, u64);

/// Points per block of a measuring pass: their offers are gathered, then applied (a few MB of
/// offers per block).
const JOIN_BLOCK: usize = 8192;
/// Points per target range: one range's lists are updated by one task.
const JOIN_RANGE: usize = 4096;

/// Offers the pair (a, b) at squared distance `d2` to both lists, where it passes the list's
/// bound as it stood before this pass (the bound only falls, so nothing that belongs is lost).
#[inline(always)]
fn offer_pair(lists: &Lists, out: &mut [Vec<Offer>], a: u32, b: u32, d2: f32) {
    let (ka, kb) = (pair_key(d2, b), pair_key(d2, a));
    if ka < lists.bound(a) {
        out[a as usize / JOIN_RANGE].push((a, ka));
    }
    if kb < lists.bound(b) {
        out[b as usize / JOIN_RANGE].push((b, kb));
    }
}

/// Every pair of a tree leaf.
#[inline(always)]
fn leaf_offers_kernel(
    data: &Data<'_>,
    lists: &Lists,
    leaf: &[u32],
    out: &mut [Vec<Offer>],
    sqdist: impl Fn(&[f32], &[f32]) -> f32,
    _sqdist4: impl Fn(&[f32], [&[f32]; 4]) -> [f32; 4],
) {
    for (ai, &a) in leaf.iter().enumerate() {
        for &b in &leaf[ai + 1..] {
            offer_pair(lists, out, a, b, sqdist(data.row(a), data.row(b)));
        }
    }
}

dispatched!(
    /// [`leaf_offers_kernel`] for this CPU.
    leaf_offers => leaf_offers_kernel(data: &Data<'_>, lists: &Lists, leaf: &[u32], out: &mut [Vec<Offer>])
);

/// The local join of one point: `candidates` holds its `n_new` new candidates, then its old
/// ones (each group sorted, without duplicates, the groups disjoint), and `bounds` their lists'
/// bounds; every pair of new candidates is measured, and every new candidate with every old one.
#[inline(always)]
fn join_offers_kernel(
    data: &Data<'_>,
    candidates: &[u32],
    bounds: &[u64],
    n_new: usize,
    out: &mut [Vec<Offer>],
    sqdist: impl Fn(&[f32], &[f32]) -> f32,
    sqdist4: impl Fn(&[f32], [&[f32]; 4]) -> [f32; 4],
) {
    let mut offer = |a: u32, bound_a: u64, b: u32, bound_b: u64, d2: f32| {
        let (ka, kb) = (pair_key(d2, b), pair_key(d2, a));
        if ka < bound_a {
            out[a as usize / JOIN_RANGE].push((a, ka));
        }
        if kb < bound_b {
            out[b as usize / JOIN_RANGE].push((b, kb));
        }
    };
    for ai in 0..n_new {
        let (a, bound_a) = (candidates[ai], bounds[ai]);
        let row = data.row(a);
        let (others, other_bounds) = (&candidates[ai + 1..], &bounds[ai + 1..]);
        // four rows at a time: four independent sums in flight
        let fours = others.len() / 4 * 4;
        for (b, bb) in others[..fours]
            .chunks_exact(4)
            .zip(other_bounds[..fours].chunks_exact(4))
        {
            let rows = [
                data.row(b[0]),
                data.row(b[1]),
                data.row(b[2]),
                data.row(b[3]),
            ];
            let d2 = sqdist4(row, rows);
            for j in 0..4 {
                offer(a, bound_a, b[j], bb[j], d2[j]);
            }
        }
        for (&b, &bound_b) in others[fours..].iter().zip(&other_bounds[fours..]) {
            offer(a, bound_a, b, bound_b, sqdist(row, data.row(b)));
        }
    }
}

dispatched!(
    /// [`join_offers_kernel`] for this CPU.
    join_offers => join_offers_kernel(data: &Data<'_>, candidates: &[u32], bounds: &[u64], n_new: usize, out: &mut [Vec<Offer>])
);

/// Runs `task(i, offers, scratch)` for every `i` of `items` in parallel (at least `min_len` per
/// task), gathering each task's offers by target range.
fn gather_offers<S, F>(
    items: Range<usize>,
    min_len: usize,
    n_ranges: usize,
    scratch: impl Fn() -> S + Sync + Send,
    task: F,
) -> Vec<Vec<Vec<Offer>>>
where
    S: Send,
    F: Fn(usize, &mut [Vec<Offer>], &mut S) + Sync + Send,
{
    items
        .into_par_iter()
        .with_min_len(min_len)
        .fold(
            || (vec![Vec::new(); n_ranges], scratch()),
            |(mut out, mut s), i| {
                task(i, &mut out, &mut s);
                (out, s)
            },
        )
        .map(|(out, _)| out)
        .collect()
}

/// Applies gathered offers: each target range's lists are updated by one task, touching only
/// its own lists, without locks. A list keeps the `cap` smallest pairs offered whatever the
/// order, so the result does not depend on how the work was split between threads.
fn apply_offers(lists: &mut Lists, buckets: &[Vec<Vec<Offer>>]) {
    let cap = lists.cap;
    lists
        .keys
        .par_chunks_mut(JOIN_RANGE * cap)
        .zip(lists.new.par_chunks_mut(JOIN_RANGE * cap))
        .enumerate()
        .for_each(|(r, (keys, new))| {
            let base = r * JOIN_RANGE;
            for offers in buckets.iter().map(|b| &b[r]) {
                for &(t, key) in offers {
                    let i = (t as usize - base) * cap;
                    push(&mut keys[i..i + cap], &mut new[i..i + cap], key);
                }
            }
        });
}

/// NN-descent rounds on `lists` (at most `n_iters`, numbered after `first_round`) until fewer
/// than `stop_below` entries arrive in a round; returns the last round's number.
#[allow(clippy::too_many_arguments)]
fn descend(
    data: &Data<'_>,
    lists: &mut Lists,
    mc: usize,
    n_iters: usize,
    stop_below: f64,
    seed: u64,
    first_round: u64,
    clock: &std::time::Instant,
) -> u64 {
    let n = data.x.len() / data.d.max(1);
    let cap = lists.cap;
    let n_ranges = n.div_ceil(JOIN_RANGE);
    let mut last = first_round;
    for it in 0..n_iters {
        let round = first_round + it as u64 + 1;
        last = round;
        // forward candidates: up to `mc` new ones sampled by random priority (then marked
        // old) and up to `mc` old ones, in flat per-point slots
        let mut fwd_new = vec![u32::MAX; n * mc];
        let mut fwd_old = vec![u32::MAX; n * mc];
        let (new_key, old_key) = (key(seed, round, 1, 0), key(seed, round, 2, 0));
        lists
            .keys
            .par_chunks(cap)
            .zip(lists.new.par_chunks_mut(cap))
            .zip(fwd_new.par_chunks_mut(mc).zip(fwd_old.par_chunks_mut(mc)))
            .enumerate()
            .for_each_init(Vec::new, |scratch, (p, ((keys, flags), (nc, oc)))| {
                let p = p as u32;
                let (old_of, new_of) = (|q| priority(old_key, p, q), |q| priority(new_key, p, q));
                sample_entries(keys, flags, false, false, old_of, oc, scratch);
                sample_entries(keys, flags, true, true, new_of, nc, scratch);
            });
        tracing::debug!("nn-descent round {it}: forward at {:.2?}", clock.elapsed());
        // reverse candidates: keep the `mc` with the smallest random priority per point
        let rev_new = reverse_candidates(&fwd_new, n, mc, key(seed, round, 3, 0));
        let rev_old = reverse_candidates(&fwd_old, n, mc, key(seed, round, 4, 0));
        tracing::debug!(
            "nn-descent round {it}: candidates at {:.2?}",
            clock.elapsed()
        );
        // Local join, block by block: the candidate pairs of a block of points are measured
        // in parallel against the list bounds as they stood before the block, then applied.
        for b0 in (0..n).step_by(JOIN_BLOCK) {
            let b1 = (b0 + JOIN_BLOCK).min(n);
            let buckets = gather_offers(
                b0..b1,
                512,
                n_ranges,
                || {
                    (
                        Vec::with_capacity(4 * mc),
                        Vec::with_capacity(2 * mc),
                        Vec::new(),
                    )
                },
                |p, out, (cands, od, bounds): &mut (Vec<u32>, Vec<u32>, Vec<u64>)| {
                    cands.clear();
                    od.clear();
                    cands.extend(filled(&fwd_new[p * mc..(p + 1) * mc]));
                    cands.extend(filled(&rev_new[p * mc..(p + 1) * mc]));
                    cands.sort_unstable();
                    cands.dedup();
                    let n_new = cands.len();
                    od.extend(filled(&fwd_old[p * mc..(p + 1) * mc]));
                    od.extend(filled(&rev_old[p * mc..(p + 1) * mc]));
                    od.sort_unstable();
                    od.dedup();
                    od.retain(|q| cands[..n_new].binary_search(q).is_err());
                    cands.extend_from_slice(od);
                    bounds.clear();
                    bounds.extend(cands.iter().map(|&q| lists.bound(q)));
                    join_offers(data, cands, bounds, n_new, out);
                },
            );
            apply_offers(lists, &buckets);
        }
        // entries that arrived this round (order-independent, unlike a count of inserts)
        let changed: usize = lists.new.par_iter().filter(|&&f| f).count();
        tracing::debug!(
            "nn-descent round {it}: {changed} new neighbours at {:.2?}",
            clock.elapsed()
        );
        if (changed as f64) < stop_below {
            break;
        }
    }
    last
}

/// Approximate `k` nearest neighbours (self first at distance 0) of every row of `x`.
pub fn knn_nndescent(
    x: ArrayView2<'_, f32>,
    k: usize,
    params: &NnDescentParams,
) -> Result<Neighbors> {
    check_input(x, k)?;
    let mut x = x.as_standard_layout().to_owned();
    let (n, d) = x.dim();
    let out_cap = k - 1; // neighbours besides self
    let cap = if out_cap == 0 {
        0
    } else {
        ((out_cap as f64 * params.oversample.max(1.0)).ceil() as usize)
            .max(min_list_len(n))
            .min(n - 1)
    };
    let seed = params.seed;
    let mut lists = Lists::new(n, cap);
    let clock = std::time::Instant::now();
    // the search runs on the points renumbered in the first tree's leaf order (see below);
    // `order[new] = old`
    let mut order: Vec<u32> = (0..n as u32).collect();
    if cap > 0 {
        let n_trees = params
            .n_trees
            .unwrap_or_else(|| ((2.0 * (n as f64).log10()).round() as usize).clamp(3, 12));
        let leaf = params.leaf_size.max(cap + 1);
        // Renumber the points in the first tree's leaf order, so that points that are close in
        // space are close in memory: the other trees' splits and the local joins below then
        // find most rows they read in cache instead of in main memory. The renumbering is a
        // function of the seed and the data only, so results stay independent of the thread
        // count.
        let first_tree = spatial_leaves(x.as_slice().unwrap_or(&[]), n, d, leaf, seed);
        order = first_tree.iter().flatten().copied().collect();
        let mut new_id = vec![0u32; n];
        for (new, &old) in order.iter().enumerate() {
            new_id[old as usize] = new as u32;
        }
        x = x.select(
            ndarray::Axis(0),
            &order.iter().map(|&o| o as usize).collect::<Vec<_>>(),
        );
        let data = Data {
            x: x.as_slice().unwrap_or(&[]),
            d,
        };
        let mut forest: Vec<Vec<Vec<u32>>> = vec![{
            let mut at = 0u32;
            first_tree
                .iter()
                .map(|l| {
                    at += l.len() as u32;
                    (at - l.len() as u32..at).collect()
                })
                .collect()
        }];
        forest.par_extend(
            (1..n_trees)
                .into_par_iter()
                .map(|t| rp_tree_leaves(&data, n, leaf, seed, t as u64)),
        );
        let t_built = clock.elapsed();
        let n_ranges = n.div_ceil(JOIN_RANGE);
        // every pair of every leaf, tree by tree, in blocks of leaves holding about
        // `JOIN_BLOCK` points
        for tree in &forest {
            let mut first = 0;
            while first < tree.len() {
                let mut last = first;
                let mut points = 0;
                while last < tree.len() && points < JOIN_BLOCK {
                    points += tree[last].len();
                    last += 1;
                }
                let buckets = gather_offers(
                    first..last,
                    16,
                    n_ranges,
                    || (),
                    |l, out, _| leaf_offers(&data, &lists, &tree[l], out),
                );
                apply_offers(&mut lists, &buckets);
                first = last;
            }
        }
        drop(forest);
        tracing::debug!(
            "nn-descent: {n_trees} RP trees built at {t_built:.2?}, their leaves joined at {:.2?}",
            clock.elapsed()
        );
        // top up lists that are still short with random points, then (rarely: tiny or
        // duplicate-ridden data) with the first points in order, so every list ends full
        lists
            .keys
            .par_chunks_mut(cap)
            .zip(lists.new.par_chunks_mut(cap))
            .enumerate()
            .for_each(|(p, (keys, new))| {
                let mut t = 0u64;
                while keys[cap - 1] == u64::MAX && t < 4 * cap as u64 + 16 {
                    let q = (key(seed, 0xFEED, p as u64, t) % n as u64) as u32;
                    t += 1;
                    if q != p as u32 {
                        push(keys, new, pair_key(data.sqdist(p as u32, q), q));
                    }
                }
                let mut q = 0;
                while keys[cap - 1] == u64::MAX {
                    if q != p as u32 {
                        push(keys, new, pair_key(data.sqdist(p as u32, q), q));
                    }
                    q += 1;
                }
            });
        let n_iters = params
            .n_iters
            .unwrap_or_else(|| ((n as f64).log2().round() as usize).max(5));
        let stop_below = params.delta * n as f64 * k as f64;
        let mut round = 0u64;
        loop {
            let mc = params.max_candidates.max(lists.cap).max(1);
            round = descend(
                &data, &mut lists, mc, n_iters, stop_below, seed, round, &clock,
            );
            let Some(target) = params.target_recall else {
                break;
            };
            let estimate = sample_recall(&data, &lists, out_cap);
            let longest = (MAX_LIST_FACTOR * out_cap).min(n - 1);
            if estimate >= target || lists.cap >= longest {
                tracing::debug!(
                    "nn-descent: sample recall {estimate:.4} with lists of {} at {:.2?}",
                    lists.cap,
                    clock.elapsed()
                );
                break;
            }
            let cap = ((lists.cap as f64 * 1.5).ceil() as usize).min(longest);
            tracing::info!(
                "nn-descent: sample recall {estimate:.4} below {target}: lists grow from {} to {cap}",
                lists.cap
            );
            lists = lists.grown(cap);
        }
    }
    // back to the caller's numbering, each row ordered by (distance, original id)
    let mut rows = vec![(0f32, 0u32); n * out_cap];
    if out_cap > 0 {
        rows.par_chunks_mut(out_cap)
            .zip(lists.keys.par_chunks(lists.cap.max(1)))
            .for_each(|(row, keys)| {
                for (r, &key) in row.iter_mut().zip(keys) {
                    *r = (key_distance(key).sqrt(), order[key_id(key) as usize]);
                }
                row.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            });
    }
    let mut indices = Array2::<u32>::zeros((n, k));
    let mut distances = Array2::<f32>::zeros((n, k));
    let mut row_of = vec![0usize; n];
    for (new, &old) in order.iter().enumerate() {
        row_of[old as usize] = new;
    }
    indices
        .outer_iter_mut()
        .into_par_iter()
        .zip(distances.outer_iter_mut())
        .enumerate()
        .for_each(|(i, (mut idx, mut dist))| {
            idx[0] = i as u32;
            let row = &rows[row_of[i] * out_cap..(row_of[i] + 1) * out_cap];
            for (c, &(d, id)) in row.iter().enumerate() {
                idx[c + 1] = id;
                dist[c + 1] = d;
            }
        });
    Neighbors::new(indices, distances)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neighbors::{knn_exact, recall};
    use rand::{Rng, SeedableRng};

    #[test]
    fn high_recall_and_deterministic() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let x = Array2::from_shape_fn((2000, 10), |(i, _)| (i % 7) as f32 + rng.random::<f32>());
        let truth = knn_exact(x.view(), 15).unwrap();
        let a = knn_nndescent(x.view(), 15, &NnDescentParams::default()).unwrap();
        let r = recall(&a, &truth);
        assert!(r > 0.97, "recall {r}");
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| knn_nndescent(x.view(), 15, &NnDescentParams::default()).unwrap());
        assert_eq!(a, b, "thread count must not change the result");
    }

    /// Lists as long as the data allows, on identical rows: every list still ends full (the
    /// top-up falls back to the points in order), each row holds every other point once.
    #[test]
    fn tiny_duplicate_data_fills_every_list() {
        let x = Array2::<f32>::from_elem((6, 3), 1.5);
        let nn = knn_nndescent(x.view(), 6, &NnDescentParams::default()).unwrap();
        for (i, row) in nn.indices.outer_iter().enumerate() {
            let mut ids: Vec<u32> = row.to_vec();
            assert_eq!(ids[0], i as u32);
            ids.sort_unstable();
            assert_eq!(ids, (0..6).collect::<Vec<u32>>());
        }
        assert!(nn.distances.iter().all(|&d| d == 0.0));
    }

    /// Uniform noise in 24 dimensions is hard for NN-descent: with short lists and few
    /// candidates the search converges well below the target, and the recall check then grows
    /// the lists until the sample says the target is met, which the exact search confirms.
    #[test]
    fn target_recall_grows_short_lists_until_it_is_met() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let x = Array2::from_shape_fn((4000, 24), |_| rng.random::<f32>());
        let truth = knn_exact(x.view(), 15).unwrap();
        let weak = NnDescentParams {
            oversample: 1.0,
            max_candidates: 8,
            target_recall: None,
            ..Default::default()
        };
        let r_weak = recall(&knn_nndescent(x.view(), 15, &weak).unwrap(), &truth);
        assert!(
            r_weak < 0.95,
            "the unchecked search should fall short: {r_weak}"
        );
        let checked = NnDescentParams {
            target_recall: Some(0.98),
            ..weak
        };
        let a = knn_nndescent(x.view(), 15, &checked).unwrap();
        let r = recall(&a, &truth);
        assert!(r >= 0.975, "recall {r} after growing from {r_weak}");
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| knn_nndescent(x.view(), 15, &checked).unwrap());
        assert_eq!(a, b, "thread count must not change the result");
    }

    #[test]
    fn lists_lengthen_with_the_point_count() {
        assert_eq!(min_list_len(100_000), 25);
        assert_eq!(min_list_len(1_000_000), 42);
        assert_eq!(min_list_len(20_000), 13);
        assert_eq!(min_list_len(1), 0);
    }

    /// The metrics' 90-NN as `KnnMethod::Auto` runs it above `LARGE_K_EXACT_MAX` cells: lists
    /// of 89 without oversampling still find nearly every true neighbour.
    #[test]
    fn large_k_without_oversampling_keeps_high_recall() {
        use crate::neighbors::{LARGE_K_EXACT_MAX, auto_is_exact};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let x = Array2::from_shape_fn((3000, 16), |(i, _)| (i % 9) as f32 + rng.random::<f32>());
        let truth = knn_exact(x.view(), 90).unwrap();
        let params = NnDescentParams {
            oversample: 1.0,
            ..Default::default()
        };
        let r = recall(&knn_nndescent(x.view(), 90, &params).unwrap(), &truth);
        assert!(r > 0.99, "recall {r}");
        assert!(auto_is_exact(LARGE_K_EXACT_MAX, 90));
        assert!(!auto_is_exact(LARGE_K_EXACT_MAX + 1, 90));
        assert!(!auto_is_exact(20_000, 15));
        assert!(auto_is_exact(19_999, 15));
    }
}

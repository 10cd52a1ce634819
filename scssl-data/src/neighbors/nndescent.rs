//! Approximate kNN by NN-descent (Dong, Charikar & Li 2011) with a random-projection-forest
//! initialisation, the algorithm of pynndescent.
//!
//! Deterministic for a given seed whatever the thread count: every random choice is a hash of
//! (seed, iteration, point), and each round's candidate updates are applied per target point
//! as "keep the k smallest (distance, id)", which does not depend on arrival order.

use ndarray::{Array2, ArrayView2};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use rayon::prelude::*;

use super::{Neighbors, check_input, dist, dot};
use crate::error::Result;

/// Parameters of [`knn_nndescent`].
#[derive(Debug, Clone, PartialEq)]
pub struct NnDescentParams {
    /// Seed of every random choice.
    pub seed: u64,
    /// Random-projection trees (default: pynndescent's `min(64, 5 + round(sqrt(n) / 20))`).
    pub n_trees: Option<usize>,
    /// Maximum points per tree leaf.
    pub leaf_size: usize,
    /// Maximum new/old candidates per point and round.
    pub max_candidates: usize,
    /// Maximum rounds (default: `max(5, round(log2 n))`).
    pub n_iters: Option<usize>,
    /// Stop when fewer than `delta · n · k` neighbours changed in a round.
    pub delta: f64,
    /// Neighbour lists are kept `oversample` times longer than `k` during the search and cut
    /// to `k` at the end: slower, but the search escapes more local optima (higher recall).
    pub oversample: f64,
}

impl Default for NnDescentParams {
    fn default() -> Self {
        Self {
            seed: 0,
            n_trees: None,
            leaf_size: 30,
            max_candidates: 30,
            n_iters: None,
            delta: 0.001,
            oversample: 2.0,
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

/// A bounded list of the `cap` smallest (distance, id) pairs, sorted ascending. Each pair is one
/// `u64` key, distance bits above id bits: distances are never negative, so their bits order
/// as the distances do, and comparisons, the duplicate check and the insertion point are
/// branch-free integer work that vectorises.
struct NnList {
    keys: Vec<u64>,
    /// Whether each entry arrived since it was last sampled as a candidate.
    new: Vec<bool>,
}

#[inline]
fn pair_key(d: f32, id: u32) -> u64 {
    // + 0.0 turns a −0 into +0, whose bits order correctly
    (((d + 0.0).to_bits() as u64) << 32) | id as u64
}

impl NnList {
    fn with_capacity(cap: usize) -> Self {
        Self {
            keys: Vec::with_capacity(cap + 1),
            new: Vec::with_capacity(cap + 1),
        }
    }
    fn len(&self) -> usize {
        self.keys.len()
    }
    fn id(&self, i: usize) -> u32 {
        self.keys[i] as u32
    }
    fn distance(&self, i: usize) -> f32 {
        f32::from_bits((self.keys[i] >> 32) as u32)
    }
    /// Offers (d, id); true when it entered the list. A point's distance to a given id is
    /// always computed the same way (the distance is symmetric to the bit), so a duplicate has
    /// the same key and sits exactly at the insertion point.
    fn push(&mut self, cap: usize, d: f32, id: u32) -> bool {
        let key = pair_key(d, id);
        let len = self.keys.len();
        if len >= cap && key >= self.keys[cap - 1] {
            return false;
        }
        let pos = count_below(&self.keys, key);
        if pos < len && self.keys[pos] == key {
            return false;
        }
        self.keys.insert(pos, key);
        self.new.insert(pos, true);
        self.keys.truncate(cap);
        self.new.truncate(cap);
        true
    }
}

/// How many of `keys` are below `key`: the insertion point in a sorted list. A full scan beats
/// a binary search here (no unpredictable branches; lists hold under a few hundred keys).
#[inline(always)]
fn count_below_lanes(keys: &[u64], key: u64) -> usize {
    keys.iter().filter(|&&k| k < key).count()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn count_below_avx2(keys: &[u64], key: u64) -> usize {
    count_below_lanes(keys, key)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn count_below_avx512(keys: &[u64], key: u64) -> usize {
    count_below_lanes(keys, key)
}

/// [`count_below_lanes`] with the widest vectors this CPU has (integer work: the same count).
#[inline]
fn count_below(keys: &[u64], key: u64) -> usize {
    use crate::simd::{Level, level};
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: each version runs only on a CPU that has its features.
        Level::Avx512 => return unsafe { count_below_avx512(keys, key) },
        Level::Avx2 => return unsafe { count_below_avx2(keys, key) },
        Level::Baseline => {}
    }
    count_below_lanes(keys, key)
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
    fn dist(&self, a: u32, b: u32) -> f32 {
        dist(self.row(a), self.row(b))
    }
}

fn rp_tree_leaves(data: &Data, n: usize, leaf_size: usize, seed: u64, tree: u64) -> Vec<Vec<u32>> {
    let mut leaves = vec![];
    let mut stack: Vec<(Vec<u32>, u64)> = vec![((0..n as u32).collect(), 1)];
    let mut side = Vec::new();
    while let Some((pts, node)) = stack.pop() {
        if pts.len() <= leaf_size {
            leaves.push(pts);
            continue;
        }
        let h = key(seed, tree, node, 0);
        let a = pts[(h % pts.len() as u64) as usize];
        let mut b = pts[(mix(h) % pts.len() as u64) as usize];
        if a == b {
            b = pts[((h as usize) + 1 + (mix(h ^ 7) as usize % (pts.len() - 1))) % pts.len()];
        }
        let (ra, rb) = (data.row(a), data.row(b));
        let normal: Vec<f32> = ra.iter().zip(rb).map(|(p, q)| p - q).collect();
        let offset: f32 = ra.iter().zip(rb).map(|(p, q)| (p * p - q * q) / 2.0).sum();
        side.clear();
        side.extend(pts.iter().map(|&p| {
            // eight-lane dot product: a single running sum would not vectorise
            let m: f32 = dot(data.row(p), &normal) - offset;
            if m > 0.0 {
                true
            } else if m < 0.0 {
                false
            } else {
                key(seed, tree, node, p as u64) & 1 == 1
            }
        }));
        let (mut l, mut r): (Vec<u32>, Vec<u32>) = (vec![], vec![]);
        for (&p, &s) in pts.iter().zip(&side) {
            if s { l.push(p) } else { r.push(p) }
        }
        if l.is_empty() || r.is_empty() {
            // degenerate hyperplane (duplicates): split at random
            let mut all = pts;
            all.sort_by_key(|&p| key(seed, tree, node ^ 0xABCD, p as u64));
            let half = all.len() / 2;
            r = all.split_off(half);
            l = all;
        }
        stack.push((l, node * 2));
        stack.push((r, node * 2 + 1));
    }
    leaves
}

/// Offers `(d, id)` to `list`; the final content of every list is the `cap` smallest
/// (distance, id) pairs offered, whatever the order of offers, so concurrent offers from
/// several threads give the same result as a sequential run.
#[inline]
fn offer(lists: &[Mutex<NnList>], worst: &[AtomicU32], cap: usize, p: u32, d: f32, id: u32) {
    // Lock-free rejection: the published worst distance only decreases, so a stale value can
    // only let an offer through to the locked check, never wrongly reject one.
    if d > f32::from_bits(worst[p as usize].load(Ordering::Relaxed)) {
        return;
    }
    let mut l = lists[p as usize].lock().unwrap_or_else(|e| e.into_inner());
    if l.push(cap, d, id) && l.len() >= cap {
        worst[p as usize].store(l.distance(cap - 1).to_bits(), Ordering::Relaxed);
    }
}

/// The used slots of a candidate row (unused slots are `u32::MAX`, at the end).
fn filled(slots: &[u32]) -> impl Iterator<Item = u32> + '_ {
    slots.iter().copied().take_while(|&q| q != u32::MAX)
}

/// An offer of the local join: (target point, candidate, distance).
type Offer = (u32, u32, f32);
/// One local-join task's offers per target range, and its new and old candidate buffers.
type JoinScratch = (Vec<Vec<Offer>>, Vec<u32>, Vec<u32>);

/// The used slots of a reverse-candidate row (`(priority, point)`, unused points `u32::MAX`).
fn filled_reverse(slots: &[(u64, u32)]) -> impl Iterator<Item = u32> + '_ {
    slots.iter().map(|e| e.1).take_while(|&q| q != u32::MAX)
}

/// Points per block of the local join: their offers are gathered, then applied (a few MB of
/// offers per block).
const JOIN_BLOCK: usize = 8192;
/// Points per target range of the local join: one range's lists are updated by one thread.
const JOIN_RANGE: usize = 4096;

/// Keeps `item` among the smallest priorities in the sorted `slots` (ties: the earlier item).
fn keep_top(slots: &mut [(u64, u32)], item: (u64, u32)) {
    if item.0 >= slots[slots.len() - 1].0 {
        return;
    }
    let pos = slots.partition_point(|s| s.0 < item.0);
    slots.copy_within(pos..slots.len() - 1, pos + 1);
    slots[pos] = item;
}

/// For every point `q`, the (up to) `mc` points `p` that list `q` among their forward
/// candidates (`fwd`, `mc` slots per point, unused slots `u32::MAX`) with the smallest random
/// priority `key(seed, round, q, p)`, sorted by priority. The sources of each `q` are gathered
/// in ascending `p` first (one counting pass), then each `q` keeps its top `mc` in parallel:
/// the same result as offering every pair in order of `p`, whatever the thread count.
fn reverse_candidates(fwd: &[u32], n: usize, mc: usize, seed: u64, round: u64) -> Vec<(u64, u32)> {
    let listed = |p: usize| {
        fwd[p * mc..(p + 1) * mc]
            .iter()
            .copied()
            .take_while(|&q| q != u32::MAX)
    };
    let mut start = vec![0usize; n + 1];
    for p in 0..n {
        for q in listed(p) {
            start[q as usize + 1] += 1;
        }
    }
    for q in 0..n {
        start[q + 1] += start[q];
    }
    let mut fill = start.clone();
    let mut sources = vec![0u32; start[n]];
    for p in 0..n {
        for q in listed(p) {
            sources[fill[q as usize]] = p as u32;
            fill[q as usize] += 1;
        }
    }
    let mut rev = vec![(u64::MAX, u32::MAX); n * mc];
    rev.par_chunks_mut(mc).enumerate().for_each(|(q, slots)| {
        for &p in &sources[start[q]..start[q + 1]] {
            keep_top(slots, (key(seed, round, q as u64, p as u64), p));
        }
    });
    rev
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
        ((out_cap as f64 * params.oversample.max(1.0)).ceil() as usize).min(n - 1)
    };
    let seed = params.seed;
    let mut lists: Vec<Mutex<NnList>> = (0..n)
        .map(|_| Mutex::new(NnList::with_capacity(cap)))
        .collect();
    let worst: Vec<AtomicU32> = (0..n)
        .map(|_| AtomicU32::new(f32::INFINITY.to_bits()))
        .collect();
    let clock = std::time::Instant::now();
    // the search runs on the points renumbered in the first tree's leaf order (see below);
    // `order[new] = old`
    let mut order: Vec<u32> = (0..n as u32).collect();
    if cap > 0 {
        let n_trees = params
            .n_trees
            .unwrap_or_else(|| (5 + ((n as f64).sqrt() / 20.0).round() as usize).min(64));
        let leaf = params.leaf_size.max(cap + 1);
        let mut forest: Vec<Vec<Vec<u32>>> = {
            let data = Data {
                x: x.as_slice().unwrap_or(&[]),
                d,
            };
            (0..n_trees)
                .into_par_iter()
                .map(|t| rp_tree_leaves(&data, n, leaf, seed, t as u64))
                .collect()
        };
        // Renumber the points in the first tree's leaf order, so that points that are close in
        // space are close in memory: the local joins below then find most rows they read in
        // cache instead of in main memory. The renumbering is a function of the seed and the
        // data only, so results stay independent of the thread count.
        order = forest[0].iter().flatten().copied().collect();
        let mut new_id = vec![0u32; n];
        for (new, &old) in order.iter().enumerate() {
            new_id[old as usize] = new as u32;
        }
        x = x.select(
            ndarray::Axis(0),
            &order.iter().map(|&o| o as usize).collect::<Vec<_>>(),
        );
        forest
            .par_iter_mut()
            .flatten()
            .flatten()
            .for_each(|p| *p = new_id[*p as usize]);
        let data = Data {
            x: x.as_slice().unwrap_or(&[]),
            d,
        };
        forest.par_iter().flatten().for_each(|leaf| {
            for (ai, &a) in leaf.iter().enumerate() {
                for &b in &leaf[ai + 1..] {
                    let dd = data.dist(a, b);
                    offer(&lists, &worst, cap, a, dd, b);
                    offer(&lists, &worst, cap, b, dd, a);
                }
            }
        });
        drop(forest);
        tracing::debug!("nn-descent: {n_trees} RP trees in {:.2?}", clock.elapsed());
        // top up lists that are still short with random points
        (0..n as u32).into_par_iter().for_each(|p| {
            let have = lists[p as usize].lock().map(|l| l.len()).unwrap_or(0);
            let mut t = 0u64;
            let mut added = 0;
            while have + added < cap && t < 4 * cap as u64 + 16 {
                let q = (key(seed, 0xFEED, p as u64, t) % n as u64) as u32;
                t += 1;
                if q != p {
                    offer(&lists, &worst, cap, p, data.dist(p, q), q);
                    added += 1;
                }
            }
        });
        let n_iters = params
            .n_iters
            .unwrap_or_else(|| ((n as f64).log2().round() as usize).max(5));
        let mc = params.max_candidates.max(1);
        let n_ranges = n.div_ceil(JOIN_RANGE);
        for it in 0..n_iters {
            // forward candidates: up to `mc` new ones sampled by random priority (then marked
            // old) and up to `mc` old ones, in flat per-point slots
            let mut fwd_new = vec![u32::MAX; n * mc];
            let mut fwd_old = vec![u32::MAX; n * mc];
            lists
                .par_iter()
                .zip(fwd_new.par_chunks_mut(mc).zip(fwd_old.par_chunks_mut(mc)))
                .enumerate()
                .for_each(|(p, (l, (nc, oc)))| {
                    let mut l = l.lock().unwrap_or_else(|e| e.into_inner());
                    let mut fresh: Vec<(u64, usize)> = (0..l.len())
                        .filter(|&i| l.new[i])
                        .map(|i| (key(seed, it as u64 + 1, p as u64, l.id(i) as u64), i))
                        .collect();
                    fresh.sort_unstable();
                    fresh.truncate(mc);
                    let mut old: Vec<(u64, u32)> = (0..l.len())
                        .filter(|&i| !l.new[i])
                        .map(|i| {
                            let id = l.id(i);
                            (key(seed, it as u64 + 1, p as u64 ^ 0xF0F0, id as u64), id)
                        })
                        .collect();
                    old.sort_unstable();
                    for (slot, &(_, i)) in fresh.iter().enumerate() {
                        l.new[i] = false;
                        nc[slot] = l.id(i);
                    }
                    for (slot, &(_, id)) in old.iter().take(mc).enumerate() {
                        oc[slot] = id;
                    }
                });
            // reverse candidates: keep the `mc` with the smallest random priority per point
            let rev_new = reverse_candidates(&fwd_new, n, mc, seed, it as u64 + 101);
            let rev_old = reverse_candidates(&fwd_old, n, mc, seed, it as u64 + 201);
            tracing::debug!(
                "nn-descent round {it}: candidates at {:.2?}",
                clock.elapsed()
            );
            // Local join, block by block: the candidate pairs of a block of points are measured
            // in parallel against the list bounds as they stood before the block, the offers
            // that pass are bucketed by target range, and each range then applies its own
            // offers without locks, touching only its own lists (which stay in cache). A list
            // keeps the `cap` smallest pairs offered whatever the order, so the result does not
            // depend on how the work was split between threads.
            let bound = |p: u32| f32::from_bits(worst[p as usize].load(Ordering::Relaxed));
            for b0 in (0..n).step_by(JOIN_BLOCK) {
                let b1 = (b0 + JOIN_BLOCK).min(n);
                let buckets: Vec<Vec<Vec<Offer>>> = (b0..b1)
                    .into_par_iter()
                    // a bounded number of per-task buckets
                    .with_min_len(512)
                    .fold(
                        || {
                            (
                                vec![Vec::new(); n_ranges],
                                Vec::with_capacity(2 * mc),
                                Vec::with_capacity(2 * mc),
                            )
                        },
                        |(mut out, mut nw, mut od): JoinScratch, p| {
                            nw.clear();
                            od.clear();
                            nw.extend(filled(&fwd_new[p * mc..(p + 1) * mc]));
                            nw.extend(filled_reverse(&rev_new[p * mc..(p + 1) * mc]));
                            nw.sort_unstable();
                            nw.dedup();
                            od.extend(filled(&fwd_old[p * mc..(p + 1) * mc]));
                            od.extend(filled_reverse(&rev_old[p * mc..(p + 1) * mc]));
                            od.sort_unstable();
                            od.dedup();
                            od.retain(|q| nw.binary_search(q).is_err());
                            for (ai, &a) in nw.iter().enumerate() {
                                for &b in nw[ai + 1..].iter().chain(od.iter()) {
                                    if a == b {
                                        continue;
                                    }
                                    let dd = data.dist(a, b);
                                    if dd <= bound(a) {
                                        out[a as usize / JOIN_RANGE].push((a, b, dd));
                                    }
                                    if dd <= bound(b) {
                                        out[b as usize / JOIN_RANGE].push((b, a, dd));
                                    }
                                }
                            }
                            (out, nw, od)
                        },
                    )
                    .map(|(out, _, _)| out)
                    .collect();
                lists
                    .par_chunks_mut(JOIN_RANGE)
                    .zip(worst.par_chunks(JOIN_RANGE))
                    .enumerate()
                    .for_each(|(r, (ls, ws))| {
                        let base = r * JOIN_RANGE;
                        for offers in buckets.iter().map(|b| &b[r]) {
                            for &(t, id, d) in offers {
                                let i = t as usize - base;
                                let l = ls[i].get_mut().unwrap_or_else(|e| e.into_inner());
                                if l.push(cap, d, id) && l.len() >= cap {
                                    ws[i].store(l.distance(cap - 1).to_bits(), Ordering::Relaxed);
                                }
                            }
                        }
                    });
            }
            // entries that arrived this round (order-independent, unlike a count of inserts)
            let changed: usize = lists
                .par_iter()
                .map(|l| {
                    l.lock()
                        .map(|l| l.new.iter().filter(|&&v| v).count())
                        .unwrap_or(0)
                })
                .sum();
            tracing::debug!(
                "nn-descent round {it}: {changed} new neighbours at {:.2?}",
                clock.elapsed()
            );
            if (changed as f64) < params.delta * n as f64 * k as f64 {
                break;
            }
        }
    }
    // back to the caller's numbering, each row ordered by (distance, original id)
    let mut indices = Array2::<u32>::zeros((n, k));
    let mut distances = Array2::<f32>::zeros((n, k));
    let mut row: Vec<(f32, u32)> = Vec::with_capacity(cap);
    for (new, l) in lists.into_iter().enumerate() {
        let l = l.into_inner().unwrap_or_else(|e| e.into_inner());
        let i = order[new] as usize;
        row.clear();
        row.extend((0..l.len().min(out_cap)).map(|c| (l.distance(c), order[l.id(c) as usize])));
        row.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        indices[[i, 0]] = i as u32;
        for (c, &(d, id)) in row.iter().enumerate() {
            indices[[i, c + 1]] = id;
            distances[[i, c + 1]] = d;
        }
    }
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

    #[test]
    fn bounded_list_keeps_the_smallest_pairs_whatever_the_order() {
        // (distance, id) offers with repeats and a distance tie broken by id
        let offers: Vec<(f32, u32)> = (0..200u32)
            .map(|i| {
                let id = (i * 37) % 61;
                (((id * 7919) % 23) as f32 * 0.5, id)
            })
            .collect();
        let run = |offers: &mut dyn Iterator<Item = &(f32, u32)>| {
            let mut l = NnList::with_capacity(10);
            for &(d, id) in offers {
                l.push(10, d, id);
            }
            (0..l.len())
                .map(|i| (l.distance(i), l.id(i)))
                .collect::<Vec<_>>()
        };
        let forward = run(&mut offers.iter());
        assert_eq!(forward, run(&mut offers.iter().rev()));
        let mut want: Vec<(f32, u32)> = offers.clone();
        want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        want.dedup();
        want.truncate(10);
        assert_eq!(forward, want);
        // −0 orders as +0
        let mut l = NnList::with_capacity(2);
        l.push(2, 0.5, 1);
        l.push(2, -0.0, 2);
        assert_eq!(l.id(0), 2);
        assert!(!l.push(2, 0.0, 2), "the same pair again is a duplicate");
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

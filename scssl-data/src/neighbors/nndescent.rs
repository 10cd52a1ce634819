//! Approximate kNN by NN-descent (Dong, Charikar & Li 2011) with a random-projection-forest
//! initialisation, the algorithm of pynndescent.
//!
//! Deterministic for a given seed whatever the thread count: every random choice is a hash of
//! (seed, iteration, point), and each round's candidate updates are applied per target point
//! as "keep the k smallest (distance, id)", which does not depend on arrival order.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::{Neighbors, check_input, dist};
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
}

impl Default for NnDescentParams {
    fn default() -> Self {
        Self { seed: 0, n_trees: None, leaf_size: 30, max_candidates: 30, n_iters: None, delta: 0.001 }
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

#[derive(Clone, Copy)]
struct Entry {
    d: f32,
    id: u32,
    new: bool,
}

/// A bounded list of the `cap` smallest (distance, id) pairs, sorted ascending.
struct NnList {
    items: Vec<Entry>,
}

impl NnList {
    fn worst(&self, cap: usize) -> f32 {
        if self.items.len() < cap { f32::INFINITY } else { self.items[cap - 1].d }
    }
    fn push(&mut self, cap: usize, d: f32, id: u32) -> bool {
        if self.items.len() >= cap {
            let w = self.items[cap - 1];
            if (d, id) >= (w.d, w.id) {
                return false;
            }
        }
        if self.items.iter().any(|e| e.id == id) {
            return false;
        }
        let pos = self.items.partition_point(|e| (e.d, e.id) < (d, id));
        self.items.insert(pos, Entry { d, id, new: true });
        self.items.truncate(cap);
        true
    }
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
            let m: f32 = data.row(p).iter().zip(&normal).map(|(v, w)| v * w).sum::<f32>() - offset;
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

fn apply(lists: &mut [NnList], mut updates: Vec<(u32, f32, u32)>, cap: usize) -> usize {
    updates.par_sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    // split the sorted updates into per-target runs, then apply runs in parallel
    let mut runs: Vec<(u32, usize, usize)> = vec![];
    let mut s = 0;
    while s < updates.len() {
        let t = updates[s].0;
        let mut e = s;
        while e < updates.len() && updates[e].0 == t {
            e += 1;
        }
        runs.push((t, s, e));
        s = e;
    }
    let mut slots: Vec<Option<&mut NnList>> = lists.iter_mut().map(Some).collect();
    let mut work: Vec<(&mut NnList, &[(u32, f32, u32)])> = Vec::with_capacity(runs.len());
    for &(t, s, e) in &runs {
        if let Some(l) = slots[t as usize].take() {
            work.push((l, &updates[s..e]));
        }
    }
    work.into_par_iter().map(|(l, ups)| ups.iter().filter(|u| l.push(cap, u.1, u.2)).count()).sum()
}

/// Approximate `k` nearest neighbours (self first at distance 0) of every row of `x`.
pub fn knn_nndescent(x: ArrayView2<'_, f32>, k: usize, params: &NnDescentParams) -> Result<Neighbors> {
    check_input(x, k)?;
    let x = x.as_standard_layout().to_owned();
    let (n, d) = x.dim();
    let data = Data { x: x.as_slice().unwrap_or(&[]), d };
    let cap = k - 1; // neighbours besides self
    let seed = params.seed;
    let mut lists: Vec<NnList> = (0..n).map(|_| NnList { items: Vec::with_capacity(cap + 1) }).collect();
    if cap > 0 {
        let n_trees = params.n_trees.unwrap_or_else(|| (5 + ((n as f64).sqrt() / 20.0).round() as usize).min(64));
        let leaf = params.leaf_size.max(cap + 1);
        for t in 0..n_trees {
            let leaves = rp_tree_leaves(&data, n, leaf, seed, t as u64);
            let thr: Vec<f32> = lists.iter().map(|l| l.worst(cap)).collect();
            let ups: Vec<(u32, f32, u32)> = leaves
                .par_iter()
                .flat_map_iter(|leaf| {
                    let mut out = vec![];
                    for (ai, &a) in leaf.iter().enumerate() {
                        for &b in &leaf[ai + 1..] {
                            let dd = data.dist(a, b);
                            if dd < thr[a as usize] {
                                out.push((a, dd, b));
                            }
                            if dd < thr[b as usize] {
                                out.push((b, dd, a));
                            }
                        }
                    }
                    out
                })
                .collect();
            apply(&mut lists, ups, cap);
        }
        // top up lists that are still short with random points
        let ups: Vec<(u32, f32, u32)> = (0..n as u32)
            .into_par_iter()
            .flat_map_iter(|p| {
                let have = lists[p as usize].items.len();
                let mut out = vec![];
                let mut t = 0u64;
                while have + out.len() < cap && t < 4 * cap as u64 + 16 {
                    let q = (key(seed, 0xFEED, p as u64, t) % n as u64) as u32;
                    t += 1;
                    if q != p {
                        out.push((p, data.dist(p, q), q));
                    }
                }
                out
            })
            .collect();
        apply(&mut lists, ups, cap);

        let n_iters = params.n_iters.unwrap_or_else(|| ((n as f64).log2().round() as usize).max(5));
        let mc = params.max_candidates.max(1);
        for it in 0..n_iters {
            // sample new (and collect old) candidates, marking sampled ones as old
            let mut new_c: Vec<Vec<u32>> = vec![vec![]; n];
            let mut old_c: Vec<Vec<u32>> = vec![vec![]; n];
            lists.par_iter_mut().zip(new_c.par_iter_mut().zip(old_c.par_iter_mut())).enumerate().for_each(|(p, (l, (nc, oc)))| {
                let mut fresh: Vec<(u64, usize)> = l.items.iter().enumerate().filter(|(_, e)| e.new).map(|(i, e)| (key(seed, it as u64 + 1, p as u64, e.id as u64), i)).collect();
                fresh.sort_unstable();
                fresh.truncate(mc);
                for &(_, i) in &fresh {
                    l.items[i].new = false;
                    nc.push(l.items[i].id);
                }
                let mut old: Vec<(u64, u32)> = l.items.iter().filter(|e| !e.new && !nc.contains(&e.id)).map(|e| (key(seed, it as u64 + 1, p as u64 ^ 0xF0F0, e.id as u64), e.id)).collect();
                old.sort_unstable();
                oc.extend(old.into_iter().take(mc).map(|(_, id)| id));
            });
            // reverse candidates, capped at random
            let mut rev_new: Vec<Vec<(u64, u32)>> = vec![vec![]; n];
            let mut rev_old: Vec<Vec<(u64, u32)>> = vec![vec![]; n];
            for p in 0..n {
                for &q in &new_c[p] {
                    rev_new[q as usize].push((key(seed, it as u64 + 101, q as u64, p as u64), p as u32));
                }
                for &q in &old_c[p] {
                    rev_old[q as usize].push((key(seed, it as u64 + 201, q as u64, p as u64), p as u32));
                }
            }
            let merged: Vec<(Vec<u32>, Vec<u32>)> = (0..n)
                .into_par_iter()
                .map(|p| {
                    let mut nw = new_c[p].clone();
                    let mut rn = rev_new[p].clone();
                    rn.sort_unstable();
                    nw.extend(rn.into_iter().take(mc).map(|(_, q)| q));
                    nw.sort_unstable();
                    nw.dedup();
                    let mut od = old_c[p].clone();
                    let mut ro = rev_old[p].clone();
                    ro.sort_unstable();
                    od.extend(ro.into_iter().take(mc).map(|(_, q)| q));
                    od.sort_unstable();
                    od.dedup();
                    od.retain(|q| nw.binary_search(q).is_err());
                    (nw, od)
                })
                .collect();
            drop(rev_new);
            drop(rev_old);
            let thr: Vec<f32> = lists.iter().map(|l| l.worst(cap)).collect();
            let ups: Vec<(u32, f32, u32)> = merged
                .par_iter()
                .flat_map_iter(|(nw, od)| {
                    let mut out = vec![];
                    for (ai, &a) in nw.iter().enumerate() {
                        for &b in nw[ai + 1..].iter().chain(od.iter()) {
                            if a == b {
                                continue;
                            }
                            let dd = data.dist(a, b);
                            if dd < thr[a as usize] {
                                out.push((a, dd, b));
                            }
                            if dd < thr[b as usize] {
                                out.push((b, dd, a));
                            }
                        }
                    }
                    out
                })
                .collect();
            let changed = apply(&mut lists, ups, cap);
            tracing::debug!("nn-descent round {it}: {changed} updates");
            if (changed as f64) < params.delta * n as f64 * k as f64 {
                break;
            }
        }
    }
    let mut indices = Array2::<u32>::zeros((n, k));
    let mut distances = Array2::<f32>::zeros((n, k));
    for (i, l) in lists.iter().enumerate() {
        indices[[i, 0]] = i as u32;
        for (c, e) in l.items.iter().take(cap).enumerate() {
            indices[[i, c + 1]] = e.id;
            distances[[i, c + 1]] = e.d;
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
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let b = pool.install(|| knn_nndescent(x.view(), 15, &NnDescentParams::default()).unwrap());
        assert_eq!(a, b, "thread count must not change the result");
    }
}

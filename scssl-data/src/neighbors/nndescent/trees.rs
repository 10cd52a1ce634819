//! The random-projection trees that seed NN-descent's lists: each leaf's points are joined.

use super::{Data, key, mix};
use crate::neighbors::dot;

/// The leaves of random-projection tree number `tree`: each split is the hyperplane halfway
/// between two points chosen from `(seed, tree, node)`, until a node holds `leaf_size` points.
pub(super) fn rp_tree_leaves(
    data: &Data,
    n: usize,
    leaf_size: usize,
    seed: u64,
    tree: u64,
) -> Vec<Vec<u32>> {
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

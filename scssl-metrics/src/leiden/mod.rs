//! Leiden community detection (Traag, Waltman & van Eck 2019) with the modularity objective
//! and a resolution parameter — the algorithm of igraph's `community_leiden` that
//! scib-metrics calls (`beta = 0.01`, `n_iterations = 2`, weighted, starting from singletons).
//!
//! Seeded and deterministic. igraph's random stream (Python's `random.Random(42)`) cannot be
//! reproduced, so partitions can differ slightly from scib-metrics' (metrics.md §8.3: within
//! 0.02 NMI).

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scssl_data::CsrMatrix;

mod graph;
mod visit;

use graph::{Graph, aggregate, breadth_first_order, from_csr, prefetch, renumbered};
use visit::{NodeQueue, Touched};

/// Local moving: visits nodes from a queue and moves each to the neighbouring (or an empty)
/// community with the largest modularity gain. Returns whether any node moved.
fn move_nodes(g: &Graph, part: &mut [usize], gamma: f64, rng: &mut ChaCha8Rng) -> bool {
    let n = g.n();
    let mut kc = vec![0.0f64; n];
    for v in 0..n {
        kc[part[v]] += g.k[v];
    }
    let mut size = vec![0usize; n];
    for &c in part.iter() {
        size[c] += 1;
    }
    // Empty communities, most recently emptied on top. Deletion is lazy (an entry whose
    // community has members again is skipped when the top is read), which keeps every step
    // O(1) where removing from the middle of a list made local moving quadratic; the top valid
    // entry is the same as in the eager list, so partitions do not change.
    let mut empty: Vec<usize> = (0..n).filter(|&c| size[c] == 0).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut queue = NodeQueue::full(order);
    let mut queued = vec![true; n];
    let mut w_to = vec![0.0f64; n];
    // a visit notes each community once when weights are positive, and at most one per edge
    // whatever they are
    let mut touched = Touched::with_room(n.max(g.max_degree()));
    let mut moved = false;
    while let Some(v) = queue.pop_front() {
        // the queue is in random order, so each node's data is a cache miss: fetch the next
        // nodes' data ahead, a few steps at a time (the row start, then the edges, then the
        // neighbours' memberships, then their communities' sums)
        if let Some(a) = queue.get(20) {
            prefetch(&g.start, a);
            prefetch(&g.k, a);
        }
        if let Some(a) = queue.get(10) {
            g.prefetch_edges(a);
        }
        if let Some(a) = queue.get(5) {
            for &u in g.neighbours(a) {
                prefetch(part, u as usize);
            }
        }
        if let Some(a) = queue.get(0) {
            for &u in g.neighbours(a) {
                let c = part[u as usize];
                prefetch(&w_to, c);
                prefetch(&kc, c);
            }
            prefetch(&size, part[a]);
        }
        queued[v] = false;
        let cur = part[v];
        for (u, w) in g.edges(v) {
            let c = part[u];
            touched.note(c, w_to[c] == 0.0);
            w_to[c] += w;
        }
        kc[cur] -= g.k[v];
        size[cur] -= 1;
        if size[cur] == 0 {
            empty.push(cur);
        }
        let gain = |c: usize, w: f64| w - gamma * g.k[v] * kc[c];
        let mut best = cur;
        let mut best_gain = gain(cur, w_to[cur]);
        for &c in touched.as_slice() {
            let gn = gain(c, w_to[c]);
            if gn > best_gain {
                best_gain = gn;
                best = c;
            }
        }
        if best_gain < 0.0 {
            // an empty community is better than any
            while empty.last().is_some_and(|&e| size[e] != 0) {
                empty.pop();
            }
            if let Some(&e) = empty.last() {
                best = e;
            }
        }
        kc[best] += g.k[v];
        size[best] += 1;
        if best != cur {
            part[v] = best;
            moved = true;
            for (u, _) in g.edges(v) {
                let add = !queued[u] & (part[u] != best);
                queued[u] |= add;
                queue.push_if(u, add);
            }
        }
        for &c in touched.as_slice() {
            w_to[c] = 0.0;
        }
        touched.clear();
    }
    moved
}

/// Refinement: inside each community, nodes start alone and merge into well-connected
/// sub-communities, chosen at random with probability ∝ exp(gain/β) among non-negative gains.
fn refine(g: &Graph, part: &[usize], gamma: f64, beta: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let n = g.n();
    let mut refined: Vec<usize> = (0..n).collect();
    let mut kr: Vec<f64> = g.k.clone();
    let mut singleton = vec![true; n];
    // K of each community and each node's weight towards its own community
    let mut kp = vec![0.0f64; n];
    for v in 0..n {
        kp[part[v]] += g.k[v];
    }
    let w_in: Vec<f64> = (0..n)
        .map(|v| {
            g.edges(v)
                .filter(|e| part[e.0] == part[v])
                .map(|e| e.1)
                .sum()
        })
        .collect();
    // weight from each refined community to the rest of its community
    let mut rw_out = w_in.clone();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut w_to = vec![0.0f64; n];
    // (as in local moving)
    let mut touched = Touched::with_room(n.max(g.max_degree()));
    // candidate targets and their weights, reused across nodes (most nodes have a few)
    let mut cand: Vec<(usize, f64)> = vec![];
    let mut weights: Vec<f64> = vec![];
    let mut exponents: Vec<f64> = vec![];
    for (i, &v) in order.iter().enumerate() {
        // random order: fetch ahead as in local moving
        if let Some(&a) = order.get(i + 12) {
            prefetch(&g.start, a);
            prefetch(&singleton, a);
            prefetch(&w_in, a);
            prefetch(part, a);
        }
        // (only for nodes that will be visited: one that has joined or been joined is skipped)
        if let Some(&a) = order.get(i + 6).filter(|&&a| singleton[a]) {
            g.prefetch_edges(a);
            prefetch(&g.k, a);
        }
        if let Some(&a) = order.get(i + 3).filter(|&&a| singleton[a]) {
            for &u in g.neighbours(a) {
                prefetch(part, u as usize);
                prefetch(&refined, u as usize);
            }
        }
        if let Some(&a) = order.get(i + 1).filter(|&&a| singleton[a]) {
            for &u in g.neighbours(a) {
                let c = refined[u as usize];
                prefetch(&w_to, c);
                prefetch(&kr, c);
                prefetch(&rw_out, c);
            }
        }
        if !singleton[v] {
            continue;
        }
        let s = part[v];
        // only well-connected nodes move
        if w_in[v] < gamma * g.k[v] * (kp[s] - g.k[v]) {
            continue;
        }
        for (u, w) in g.edges(v) {
            if part[u] == s {
                let c = refined[u];
                touched.note(c, w_to[c] == 0.0);
                w_to[c] += w;
            }
        }
        cand.clear();
        for &c in touched.as_slice() {
            if c == refined[v] {
                continue;
            }
            // the target must itself be well connected to the rest of the community
            if rw_out[c] < gamma * kr[c] * (kp[s] - kr[c]) {
                continue;
            }
            let gain = w_to[c] - gamma * g.k[v] * kr[c];
            if gain >= 0.0 {
                cand.push((c, gain));
            }
        }
        if !cand.is_empty() {
            let max = cand.iter().map(|e| e.1).fold(f64::NEG_INFINITY, f64::max);
            // staying alone has gain 0 and is a candidate too
            // the exponentials in one vectorised call (libm's `exp`, one call per candidate,
            // was a few per cent of a run); the last one is staying alone's
            exponents.clear();
            exponents.extend(cand.iter().map(|e| (e.1 - max) / beta));
            exponents.push(-max / beta);
            weights.resize(exponents.len(), 0.0);
            scssl_data::simd::exp_into(&exponents, &mut weights);
            let stay = weights.pop().unwrap_or(0.0);
            let total: f64 = weights.iter().sum::<f64>() + stay;
            let mut r = rng.random::<f64>() * total;
            let mut chosen = None;
            for (i, w) in weights.iter().enumerate() {
                if r < *w {
                    chosen = Some(cand[i].0);
                    break;
                }
                r -= w;
            }
            if let Some(c) = chosen {
                let old = refined[v];
                refined[v] = c;
                singleton[v] = false;
                kr[c] += g.k[v];
                kr[old] -= g.k[v];
                // c's outside weight: gains v's links outside c, loses the links between them
                rw_out[c] += w_in[v] - 2.0 * w_to[c];
                rw_out[old] = 0.0;
                for (u, _) in g.edges(v) {
                    if refined[u] == c && u != v {
                        singleton[u] = false;
                    }
                }
            }
        }
        for &c in touched.as_slice() {
            w_to[c] = 0.0;
        }
        touched.clear();
    }
    refined
}

/// Renumbers labels to 0..k in order of first appearance.
fn renumber(p: &mut [usize]) -> usize {
    let max = p.iter().copied().max().map_or(0, |m| m + 1);
    let mut map = vec![usize::MAX; max];
    let mut next = 0;
    for v in p.iter_mut() {
        if map[*v] == usize::MAX {
            map[*v] = next;
            next += 1;
        }
        *v = map[*v];
    }
    next
}

/// A graph prepared once for Leiden runs at several resolutions or seeds: the nodes in
/// breadth-first order (see `graph::breadth_first_order`), which makes each run about twice as
/// fast on large kNN graphs whose cells are stored in no spatial order.
#[derive(Debug, Clone)]
pub struct LeidenGraph {
    graph: Graph,
    /// `order[new] = old`.
    order: Vec<usize>,
}

impl LeidenGraph {
    /// Prepares a symmetric weighted graph (e.g. UMAP connectivities); zero entries are ignored
    /// and diagonal entries are loops.
    pub fn new(w: &CsrMatrix) -> LeidenGraph {
        let base = from_csr(w);
        let order = breadth_first_order(&base);
        LeidenGraph {
            graph: renumbered(&base, &order),
            order,
        }
    }

    /// Leiden clustering maximising modularity with `resolution` (igraph's normalised form:
    /// γ = resolution / 2m), `n_iterations` rounds, refinement randomness `beta`, seeded.
    /// Community labels are numbered 0.. in order of first appearance among the cells.
    pub fn cluster(&self, resolution: f64, n_iterations: usize, beta: f64, seed: u64) -> Vec<u32> {
        let renumbered_membership = leiden_on(&self.graph, resolution, n_iterations, beta, seed);
        let mut membership = vec![0usize; self.order.len()];
        for (new, &old) in self.order.iter().enumerate() {
            membership[old] = renumbered_membership[new];
        }
        renumber(&mut membership);
        membership.into_iter().map(|c| c as u32).collect()
    }
}

/// Leiden clustering of a symmetric weighted graph (e.g. UMAP connectivities) maximising
/// modularity with `resolution` (igraph's normalised form: γ = resolution / 2m). For several
/// runs on one graph, prepare it once with [`LeidenGraph`].
pub fn leiden(
    w: &CsrMatrix,
    resolution: f64,
    n_iterations: usize,
    beta: f64,
    seed: u64,
) -> Vec<u32> {
    LeidenGraph::new(w).cluster(resolution, n_iterations, beta, seed)
}

fn leiden_on(
    base: &Graph,
    resolution: f64,
    n_iterations: usize,
    beta: f64,
    seed: u64,
) -> Vec<usize> {
    let n = base.n();
    if n == 0 {
        return vec![];
    }
    let total = base.total();
    if total <= 0.0 {
        return (0..n).collect();
    }
    let gamma = resolution / total;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut membership: Vec<usize> = (0..n).collect();
    for _ in 0..n_iterations.max(1) {
        // the base graph is borrowed (a copy per iteration cost more than local moving on it)
        let mut g = std::borrow::Cow::Borrowed(base);
        // node → aggregated node, and the partition of the aggregated graph
        let mut node_of: Vec<usize> = (0..n).collect();
        let mut part = membership.clone();
        renumber(&mut part);
        loop {
            move_nodes(&g, &mut part, gamma, &mut rng);
            let n_comm = renumber(&mut part);
            if n_comm == g.n() {
                break;
            }
            let mut refined = refine(&g, &part, gamma, beta, &mut rng);
            let mut n_ref = renumber(&mut refined);
            if n_ref == g.n() {
                // refinement merged nothing (each node may choose to stay alone): aggregate by
                // the communities themselves, as igraph does, rather than refine again
                refined.clone_from(&part);
                n_ref = n_comm;
            }
            // the aggregated graph's initial partition is the unrefined one
            let mut agg_part = vec![0usize; n_ref];
            for v in 0..g.n() {
                agg_part[refined[v]] = part[v];
            }
            for x in node_of.iter_mut() {
                *x = refined[*x];
            }
            g = std::borrow::Cow::Owned(aggregate(&g, &refined, n_ref));
            part = agg_part;
        }
        membership = node_of.iter().map(|&a| part[a]).collect();
        renumber(&mut membership);
    }
    membership
}

/// Modularity of a partition with `resolution` (for tests and diagnostics).
pub fn modularity(w: &CsrMatrix, part: &[u32], resolution: f64) -> f64 {
    let g = from_csr(w);
    let m2 = g.total();
    if m2 <= 0.0 {
        return 0.0;
    }
    let k = part.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
    let mut kc = vec![0.0; k];
    let mut inside = 0.0;
    for v in 0..g.n() {
        kc[part[v] as usize] += g.k[v];
        inside += 2.0 * g.self_w[v];
        for (u, w) in g.edges(v) {
            if part[u] == part[v] {
                inside += w;
            }
        }
    }
    (inside - resolution * kc.iter().map(|x| x * x).sum::<f64>() / m2) / m2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(n: usize, edges: &[(usize, usize, f32)]) -> CsrMatrix {
        let mut rows = vec![vec![]; n];
        for &(a, b, w) in edges {
            rows[a].push((b as u32, w));
            rows[b].push((a as u32, w));
        }
        let mut indptr = vec![0];
        let (mut idx, mut dat) = (vec![], vec![]);
        for mut r in rows {
            r.sort_by_key(|e| e.0);
            for (c, w) in r {
                idx.push(c);
                dat.push(w);
            }
            indptr.push(idx.len());
        }
        CsrMatrix::new(n, n, indptr, idx, dat).unwrap()
    }

    #[test]
    fn repeated_entries_whose_weights_cancel_do_not_overflow_the_touched_list() {
        // node 0's row names node 1 twenty times with weights +1, −1, …: the sum towards 1's
        // community returns to zero ten times, and each return notes it again (more notes
        // than there are nodes)
        let mut edges = vec![(0, 2, 1.0), (1, 2, 1.0)];
        for i in 0..20 {
            edges.push((0, 1, if i % 2 == 0 { 1.0 } else { -1.0 }));
        }
        let w = graph(3, &edges);
        for seed in 0..4 {
            assert_eq!(leiden(&w, 1.0, 2, 0.01, seed).len(), 3);
        }
    }

    #[test]
    fn finds_two_cliques() {
        // two 5-cliques joined by one weak edge
        let mut e = vec![];
        for a in 0..5 {
            for b in a + 1..5 {
                e.push((a, b, 1.0));
                e.push((a + 5, b + 5, 1.0));
            }
        }
        e.push((0, 5, 0.1));
        let w = graph(10, &e);
        let p = leiden(&w, 1.0, 2, 0.01, 0);
        assert!(
            p[..5].iter().all(|&c| c == p[0]) && p[5..].iter().all(|&c| c == p[5]) && p[0] != p[5],
            "{p:?}"
        );
        assert!(modularity(&w, &p, 1.0) > 0.45);
        // a very high resolution splits more; determinism for a seed
        assert_eq!(leiden(&w, 1.0, 2, 0.01, 0), p);
        let hi = leiden(&w, 20.0, 2, 0.01, 0);
        assert!(hi.iter().copied().max().unwrap() >= 2);
    }

    #[test]
    fn weak_pairs_are_found_when_refinement_keeps_them_apart() {
        // six pairs joined by weak edges: local moving pairs them up, but with gains far below
        // β staying alone is about as likely as merging in refinement, so for many seeds some
        // level refines into singletons only and is aggregated by its communities instead
        let e: Vec<(usize, usize, f32)> = (0..6).map(|p| (2 * p, 2 * p + 1, 1e-3)).collect();
        let w = graph(12, &e);
        for seed in 0..40 {
            let p = leiden(&w, 1.0, 2, 0.01, seed);
            for pair in 0..6 {
                assert_eq!(p[2 * pair], p[2 * pair + 1], "seed {seed}: {p:?}");
            }
            let distinct: std::collections::BTreeSet<u32> = p.iter().copied().collect();
            assert_eq!(distinct.len(), 6, "seed {seed}: {p:?}");
        }
    }
}

//! The graph Leiden works on: compressed rows with f64 weights and loops, built from a CSR
//! matrix, aggregated by a partition, and renumbered breadth-first for cache locality.

use scssl_data::CsrMatrix;

use super::visit::Touched;

/// A weighted undirected graph in compressed-row form (node `v`'s neighbours are
/// `nbr[start[v]..start[v + 1]]`, weights alongside: one contiguous walk per node, where a list
/// per node scattered the edges over the heap); `self_w[v]` is the weight of v's loop (internal
/// weight of an aggregated community).
#[derive(Debug, Clone)]
pub(super) struct Graph {
    pub(super) start: Vec<usize>,
    pub(super) nbr: Vec<u32>,
    pub(super) wt: Vec<f64>,
    pub(super) self_w: Vec<f64>,
    /// Node strength (degree incl. twice the loop), the modularity null model's node weight.
    pub(super) k: Vec<f64>,
}

impl Graph {
    #[inline]
    pub(super) fn n(&self) -> usize {
        self.self_w.len()
    }
    pub(super) fn total(&self) -> f64 {
        self.k.iter().sum()
    }
    /// Node `v`'s edges as (neighbour, weight).
    #[inline]
    pub(super) fn edges(&self, v: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let (a, b) = (self.start[v], self.start[v + 1]);
        self.nbr[a..b]
            .iter()
            .zip(&self.wt[a..b])
            .map(|(&u, &w)| (u as usize, w))
    }
    /// Node `v`'s number of edges.
    #[inline]
    pub(super) fn degree(&self, v: usize) -> usize {
        self.start[v + 1] - self.start[v]
    }
    /// The most edges of any node: the most communities one visit can note.
    pub(super) fn max_degree(&self) -> usize {
        (0..self.n()).map(|v| self.degree(v)).max().unwrap_or(0)
    }
    /// Node `v`'s neighbours.
    #[inline]
    pub(super) fn neighbours(&self, v: usize) -> &[u32] {
        &self.nbr[self.start[v]..self.start[v + 1]]
    }
    /// Asks the cache for node `v`'s edges (neighbours and weights).
    #[inline]
    pub(super) fn prefetch_edges(&self, v: usize) {
        let (a, b) = (self.start[v], self.start[v + 1]);
        for p in (a..b).step_by(16) {
            prefetch(&self.nbr, p);
        }
        for p in (a..b).step_by(8) {
            prefetch(&self.wt, p);
        }
    }
    /// Builds the strengths from the edges and loops.
    pub(super) fn with_strengths(
        start: Vec<usize>,
        nbr: Vec<u32>,
        wt: Vec<f64>,
        self_w: Vec<f64>,
    ) -> Graph {
        let k = (0..self_w.len())
            .map(|i| wt[start[i]..start[i + 1]].iter().sum::<f64>() + 2.0 * self_w[i])
            .collect();
        Graph {
            start,
            nbr,
            wt,
            self_w,
            k,
        }
    }
}

/// A hint to load `data[i]` into the cache; no effect on results (and none off x86-64).
#[inline(always)]
pub(super) fn prefetch<T>(data: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // a prefetch never faults, so an address past the end would be harmless; stay inside
        if i < data.len() {
            // SAFETY: SSE is part of every x86-64 CPU, and a prefetch reads nothing observable
            unsafe { _mm_prefetch::<_MM_HINT_T0>(data[i..].as_ptr().cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, i);
}

pub(super) fn from_csr(w: &CsrMatrix) -> Graph {
    let n = w.n_rows();
    let mut start = Vec::with_capacity(n + 1);
    start.push(0);
    let (mut nbr, mut wt) = (vec![], vec![]);
    let mut self_w = vec![0.0; n];
    for i in 0..n {
        let (c, v) = w.row(i);
        for (&j, &x) in c.iter().zip(v) {
            if x == 0.0 {
                continue;
            }
            if j as usize == i {
                self_w[i] += x as f64;
            } else {
                nbr.push(j);
                wt.push(x as f64);
            }
        }
        start.push(nbr.len());
    }
    Graph::with_strengths(start, nbr, wt, self_w)
}

pub(super) fn aggregate(g: &Graph, refined: &[usize], n_new: usize) -> Graph {
    // members of each new node, so each new node's edges are summed in one dense scratch row
    let mut start = vec![0usize; n_new + 1];
    for &a in refined {
        start[a + 1] += 1;
    }
    for a in 0..n_new {
        start[a + 1] += start[a];
    }
    let mut fill = start.clone();
    let mut members = vec![0usize; g.n()];
    // and each new node's members' edges: a new node notes each community once when weights
    // are positive, and at most one per edge of its members whatever they are
    let mut member_edges = vec![0usize; n_new];
    for (v, &a) in refined.iter().enumerate() {
        members[fill[a]] = v;
        fill[a] += 1;
        member_edges[a] += g.degree(v);
    }
    let mut self_w = vec![0.0; n_new];
    let mut acc = vec![0.0f64; n_new];
    let mut touched =
        Touched::with_room(n_new.max(member_edges.iter().copied().max().unwrap_or(0)));
    let mut new_start = Vec::with_capacity(n_new + 1);
    new_start.push(0);
    let (mut nbr, mut wt) = (vec![], vec![]);
    for a in 0..n_new {
        // the new node's loop weight, summed in a register (in memory, each addition waited
        // on the store of the one before)
        let mut loop_w = 0.0;
        for p in start[a]..start[a + 1] {
            let v = members[p];
            // a community's members lie anywhere: fetch ahead as in local moving
            if let Some(&m) = members.get(p + 8) {
                prefetch(&g.start, m);
                prefetch(&g.self_w, m);
            }
            if let Some(&m) = members.get(p + 4) {
                g.prefetch_edges(m);
            }
            if let Some(&m) = members.get(p + 2) {
                for &u in g.neighbours(m) {
                    prefetch(refined, u as usize);
                }
            }
            loop_w += g.self_w[v];
            for (u, w) in g.edges(v) {
                let b = refined[u];
                if a == b {
                    // each internal edge is seen from both ends: half a loop each time
                    loop_w += w / 2.0;
                } else {
                    touched.note(b, acc[b] == 0.0);
                    acc[b] += w;
                }
            }
        }
        // in first-touch order (deterministic; sorting each list cost ~9 % of a run)
        for &b in touched.as_slice() {
            nbr.push(b as u32);
            wt.push(acc[b]);
        }
        new_start.push(nbr.len());
        self_w[a] = loop_w;
        for &b in touched.as_slice() {
            acc[b] = 0.0;
        }
        touched.clear();
    }
    Graph::with_strengths(new_start, nbr, wt, self_w)
}

/// Breadth-first order of the nodes (each component from its lowest-numbered node, neighbours
/// in the stored order): `order[new] = old`. Nodes that are neighbours in the graph get nearby
/// numbers, so local moving reads the memberships and community sums of a node's neighbours
/// from a few cache lines instead of from anywhere in arrays larger than the cache.
pub(super) fn breadth_first_order(g: &Graph) -> Vec<usize> {
    let n = g.n();
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    for root in 0..n {
        if seen[root] {
            continue;
        }
        seen[root] = true;
        let mut head = order.len();
        order.push(root);
        while head < order.len() {
            let v = order[head];
            head += 1;
            for (u, _) in g.edges(v) {
                if !seen[u] {
                    seen[u] = true;
                    order.push(u);
                }
            }
        }
    }
    order
}

/// `g` with node `order[i]` renumbered `i` (each node's edges sorted by new number).
pub(super) fn renumbered(g: &Graph, order: &[usize]) -> Graph {
    let n = g.n();
    let mut new_of = vec![0u32; n];
    for (new, &old) in order.iter().enumerate() {
        new_of[old] = new as u32;
    }
    let mut start = Vec::with_capacity(n + 1);
    start.push(0);
    let mut nbr = Vec::with_capacity(g.nbr.len());
    let mut wt = Vec::with_capacity(g.wt.len());
    let mut row: Vec<(u32, f64)> = vec![];
    for &old in order {
        row.clear();
        row.extend(g.edges(old).map(|(u, w)| (new_of[u], w)));
        row.sort_unstable_by_key(|e| e.0);
        nbr.extend(row.iter().map(|e| e.0));
        wt.extend(row.iter().map(|e| e.1));
        start.push(nbr.len());
    }
    let self_w = order.iter().map(|&old| g.self_w[old]).collect();
    Graph::with_strengths(start, nbr, wt, self_w)
}

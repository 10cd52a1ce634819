//! `graph_connectivity`: for each label, the share of its cells in the largest strongly
//! connected component of the directed kNN graph restricted to that label (scib-metrics'
//! definition, stricter than scib's symmetric graph), averaged over labels.

use scssl_data::Neighbors;

use crate::codes::{dense, members};
use crate::error::{Result, check_len};

/// Sizes of the strongly connected components of a directed graph (iterative Tarjan).
pub fn scc_sizes(n: usize, adj: &[Vec<usize>]) -> Vec<usize> {
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack = vec![];
    let mut sizes = vec![];
    let mut next = 0usize;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut ei)) = call.last_mut() {
            if *ei < adj[v].len() {
                let w = adj[v][*ei];
                *ei += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(u, _)) = call.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut size = 0;
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        size += 1;
                        if w == v {
                            break;
                        }
                    }
                    sizes.push(size);
                }
            }
        }
    }
    sizes
}

/// `graph_connectivity` on a kNN table (scSSL-Bench uses the 15-NN).
pub fn graph_connectivity(nn: &Neighbors, labels: &[u32]) -> Result<f64> {
    check_len("labels", nn.n_cells(), labels.len())?;
    let (c, k) = dense(labels);
    let groups = members(&c, k);
    let mut local = vec![usize::MAX; nn.n_cells()];
    let mut total = 0.0;
    for g in &groups {
        for (p, &i) in g.iter().enumerate() {
            local[i] = p;
        }
        let adj: Vec<Vec<usize>> = g
            .iter()
            .map(|&i| {
                nn.indices
                    .row(i)
                    .iter()
                    .map(|&j| j as usize)
                    .filter(|&j| c[j] == c[i])
                    .map(|j| local[j])
                    .collect()
            })
            .collect();
        let largest = scc_sizes(g.len(), &adj).into_iter().max().unwrap_or(0);
        total += largest as f64 / g.len() as f64;
    }
    Ok(total / groups.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarjan_finds_components() {
        // 0→1→2→0 is one component; 3→0 and 4 alone
        let adj = vec![vec![1], vec![2], vec![0], vec![0], vec![]];
        let mut s = scc_sizes(5, &adj);
        s.sort();
        assert_eq!(s, vec![1, 1, 3]);
    }
}

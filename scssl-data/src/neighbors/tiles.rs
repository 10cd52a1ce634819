//! Blocked dot products of query rows with database rows, never holding a queries × database
//! matrix: the engine under exact kNN (the silhouette in scssl-metrics tiles symmetrically).

use faer::{MatRef, Par};
use rayon::prelude::*;

/// Query rows per parallel block.
pub const QUERY_BLOCK: usize = 256;
/// Database rows per tile.
pub const DB_TILE: usize = 512;

/// Splits the `m` query rows (row-major, `d` columns) into blocks processed in parallel. For
/// each block, `init(start, end)` makes its state and `plan(state)` lists the database tiles to
/// visit, in order (tile `t` is database rows `tiles[t]`, at most `DB_TILE` of them); before
/// each, `wanted(state, t)` may skip it. For every tile visited, `visit(state, r, c0, dots)` receives query `start + r`'s
/// dot products with database rows `c0..c0 + dots.len()`, as one contiguous slice. Each block
/// ends with `finish(state)`; the outputs come back in block order, so results do not depend on
/// the thread count.
#[allow(clippy::too_many_arguments)]
pub fn tiled_dots<S, I, P, W, V, F, R>(
    db: &[f32],
    n: usize,
    queries: &[f32],
    m: usize,
    d: usize,
    tiles: &[std::ops::Range<usize>],
    init: I,
    plan: P,
    wanted: W,
    visit: V,
    finish: F,
) -> Vec<R>
where
    S: Send,
    I: Fn(usize, usize) -> S + Sync,
    P: Fn(&S) -> Vec<usize> + Sync,
    W: Fn(&mut S, usize) -> bool + Sync,
    V: Fn(&mut S, usize, usize, &[f32]) + Sync,
    F: Fn(S) -> R + Sync,
    R: Send,
{
    let dbm = MatRef::from_row_major_slice(db, n, d);
    let blocks: Vec<usize> = (0..m).step_by(QUERY_BLOCK).collect();
    blocks
        .par_iter()
        .map(|&s| {
            let e = (s + QUERY_BLOCK).min(m);
            let qb = MatRef::from_row_major_slice(&queries[s * d..e * d], e - s, d);
            let mut state = init(s, e);
            // tile × block product: a query's dots with the tile are one contiguous column
            let mut dt = faer::Mat::<f32>::zeros(DB_TILE.min(n), e - s);
            for t in plan(&state) {
                if !wanted(&mut state, t) {
                    continue;
                }
                let (c0, c1) = (tiles[t].start, tiles[t].end.min(n));
                debug_assert!(c1 - c0 <= DB_TILE);
                faer::linalg::matmul::matmul(
                    dt.as_mut().submatrix_mut(0, 0, c1 - c0, e - s),
                    faer::Accum::Replace,
                    dbm.subrows(c0, c1 - c0),
                    qb.transpose(),
                    1.0,
                    Par::Seq,
                );
                for r in 0..(e - s) {
                    visit(&mut state, r, c0, &dt.col_as_slice(r)[..c1 - c0]);
                }
            }
            finish(state)
        })
        .collect()
}

//! The recall check of [`NnDescentParams::target_recall`](super::NnDescentParams): a sample of
//! points searched exactly, with the search's own distance and tie order.

use rayon::prelude::*;

use super::lists::{Lists, pair_key, push};
use super::{Data, RECALL_SAMPLE};
#[cfg(target_arch = "x86_64")]
use crate::neighbors::{sqdist_avx2, sqdist4_avx2};
use crate::neighbors::{sqdist_lanes, sqdist4_lanes};

/// Exact `out.len()` nearest others of point `q` by a scan of all points, as keys (the
/// distance of the search, so ties order the same way).
#[inline(always)]
fn exact_row_kernel(
    data: &Data<'_>,
    q: u32,
    keys: &mut [u64],
    flags: &mut [bool],
    sqdist: impl Fn(&[f32], &[f32]) -> f32,
    sqdist4: impl Fn(&[f32], [&[f32]; 4]) -> [f32; 4],
) {
    keys.fill(u64::MAX);
    let row = data.row(q);
    let n = data.x.len() / data.d.max(1);
    let mut offer = |p: u32, d2: f32| {
        let key = pair_key(d2, p);
        if p != q && key < keys[keys.len() - 1] {
            push(keys, flags, key);
        }
    };
    let fours = n / 4 * 4;
    for p in (0..fours as u32).step_by(4) {
        let rows = [
            data.row(p),
            data.row(p + 1),
            data.row(p + 2),
            data.row(p + 3),
        ];
        let d2 = sqdist4(row, rows);
        for j in 0..4 {
            offer(p + j as u32, d2[j]);
        }
    }
    for p in fours as u32..n as u32 {
        offer(p, sqdist(row, data.row(p)));
    }
}

dispatched!(
    /// [`exact_row_kernel`] for this CPU.
    exact_row => exact_row_kernel(data: &Data<'_>, q: u32, keys: &mut [u64], flags: &mut [bool])
);

/// The share of the true `out_cap` nearest others that the lists' first `out_cap` entries
/// hold, over [`RECALL_SAMPLE`] evenly spaced points (a sum of integers: the same at any
/// thread count).
pub(super) fn sample_recall(data: &Data<'_>, lists: &Lists, out_cap: usize) -> f64 {
    let n = data.x.len() / data.d.max(1);
    if out_cap == 0 || n == 0 {
        return 1.0;
    }
    let m = RECALL_SAMPLE.min(n);
    let found: usize = (0..m)
        .into_par_iter()
        .map_init(
            || (vec![u64::MAX; out_cap], vec![false; out_cap]),
            |(keys, flags), i| {
                let q = (i * n / m) as u32;
                exact_row(data, q, keys, flags);
                let list = &lists.keys[q as usize * lists.cap..][..out_cap];
                // both sorted: the count of common keys
                keys.iter()
                    .filter(|k| list.binary_search(k).is_ok())
                    .count()
            },
        )
        .sum();
    found as f64 / (m * out_cap) as f64
}

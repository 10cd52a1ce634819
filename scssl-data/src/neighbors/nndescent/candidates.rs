//! The candidates of each NN-descent round: new and old entries sampled from the lists by
//! random priority, and the reverse candidates gathered from them.

use rayon::prelude::*;

use super::lists::key_id;
use super::mix;

/// The used slots of a candidate row (unused slots are `u32::MAX`, at the end).
pub(super) fn filled(slots: &[u32]) -> impl Iterator<Item = u32> + '_ {
    slots.iter().copied().take_while(|&q| q != u32::MAX)
}

/// The random priority of the pair (a, b) in one sampling (`round_key` names the sampling).
#[inline]
pub(super) fn priority(round_key: u64, a: u32, b: u32) -> u64 {
    mix(round_key ^ (((a as u64) << 32) | b as u64))
}

/// For every point `q`, the (up to) `mc` points `p` that list `q` among their forward
/// candidates (`fwd`, `mc` slots per point, unused slots `u32::MAX`): all of them when they
/// fit, else the `mc` with the smallest random priority, in `mc` slots per point (unused slots
/// `u32::MAX`). The sources of each `q` are gathered first (one counting pass); the choice
/// depends only on the set of sources, so not on the thread count.
pub(super) fn reverse_candidates(fwd: &[u32], n: usize, mc: usize, round_key: u64) -> Vec<u32> {
    let mut start = vec![0usize; n + 1];
    for &q in fwd.iter().filter(|&&q| q != u32::MAX) {
        start[q as usize + 1] += 1;
    }
    for q in 0..n {
        start[q + 1] += start[q];
    }
    let mut fill = start.clone();
    let mut sources = vec![0u32; start[n]];
    for (p, row) in fwd.chunks_exact(mc).enumerate() {
        for q in filled(row) {
            sources[fill[q as usize]] = p as u32;
            fill[q as usize] += 1;
        }
    }
    let mut rev = vec![u32::MAX; n * mc];
    rev.par_chunks_mut(mc).enumerate().for_each_init(
        Vec::new,
        |scratch: &mut Vec<(u64, u32)>, (q, slots)| {
            let from = &sources[start[q]..start[q + 1]];
            if from.len() <= mc {
                slots[..from.len()].copy_from_slice(from);
                return;
            }
            scratch.clear();
            scratch.extend(from.iter().map(|&p| (priority(round_key, q as u32, p), p)));
            scratch.select_nth_unstable(mc - 1);
            for (slot, &(_, p)) in slots.iter_mut().zip(scratch.iter()) {
                *slot = p;
            }
        },
    );
    rev
}

/// Writes into `out` the ids of the entries of one list (`keys`, `flags`) whose flag equals
/// `want`: all of them when they fit, else the `out.len()` with the smallest random priority.
/// With `mark`, the chosen entries' flags are cleared (sampled new entries become old).
pub(super) fn sample_entries(
    keys: &[u64],
    flags: &mut [bool],
    want: bool,
    mark: bool,
    priority_of: impl Fn(u32) -> u64,
    out: &mut [u32],
    scratch: &mut Vec<(u64, usize)>,
) {
    scratch.clear();
    scratch.extend(
        keys.iter()
            .take_while(|&&k| k != u64::MAX)
            .enumerate()
            .filter(|&(i, _)| flags[i] == want)
            .map(|(i, _)| (0, i)),
    );
    if scratch.len() > out.len() {
        for e in scratch.iter_mut() {
            e.0 = priority_of(key_id(keys[e.1]));
        }
        scratch.select_nth_unstable(out.len() - 1);
        scratch.truncate(out.len());
    }
    for (slot, &(_, i)) in out.iter_mut().zip(scratch.iter()) {
        *slot = key_id(keys[i]);
        if mark {
            flags[i] = false;
        }
    }
}

//! The bounded, sorted neighbour lists of NN-descent and the branch-free insertion into them.

use rayon::prelude::*;

/// The neighbour lists of the search, flat: `cap` keys per point, sorted ascending, empty slots
/// `u64::MAX` at the end. Each key is one (distance, id) pair, distance bits above id bits:
/// distances are never negative, so their bits order as the distances do, and comparisons, the
/// duplicate check and the insertion point are branch-free integer work that vectorises. Beside
/// each slot, a flag says whether its entry arrived since it was last sampled as a candidate.
pub(super) struct Lists {
    pub(super) cap: usize,
    pub(super) keys: Vec<u64>,
    pub(super) new: Vec<bool>,
}

impl Lists {
    pub(super) fn new(n: usize, cap: usize) -> Self {
        Self {
            cap,
            keys: vec![u64::MAX; n * cap],
            new: vec![false; n * cap],
        }
    }
    /// The largest key a list holds (`u64::MAX` while it has room): an offer must be below it.
    #[inline]
    pub(super) fn bound(&self, p: u32) -> u64 {
        self.keys[(p as usize + 1) * self.cap - 1]
    }
    /// The same lists with room for `cap` entries each, every entry flagged new so that the
    /// search samples it again (its neighbours' pairs that the shorter lists rejected can now
    /// enter).
    pub(super) fn grown(&self, cap: usize) -> Self {
        let n = self.keys.len() / self.cap.max(1);
        let mut out = Self::new(n, cap);
        out.keys
            .par_chunks_mut(cap)
            .zip(out.new.par_chunks_mut(cap))
            .zip(self.keys.par_chunks(self.cap.max(1)))
            .for_each(|((keys, new), old)| {
                for (i, &k) in old.iter().take_while(|&&k| k != u64::MAX).enumerate() {
                    keys[i] = k;
                    new[i] = true;
                }
            });
        out
    }
}

/// The key of the pair (squared distance `d2`, `id`).
#[inline]
pub(super) fn pair_key(d2: f32, id: u32) -> u64 {
    // + 0.0 turns a −0 into +0, whose bits order correctly
    (((d2 + 0.0).to_bits() as u64) << 32) | id as u64
}

#[inline]
pub(super) fn key_id(key: u64) -> u32 {
    key as u32
}

#[inline]
pub(super) fn key_distance(key: u64) -> f32 {
    f32::from_bits((key >> 32) as u32)
}

/// Offers `key` to one sorted bounded list (`keys`, with its flags `new`); true when it
/// entered. A point's distance to a given id is always computed the same way (the distance is
/// symmetric to the bit), so a duplicate has the same key and sits exactly at the insertion
/// point. The list ends as the `keys.len()` smallest keys offered, whatever their order.
#[inline]
pub(super) fn push(keys: &mut [u64], new: &mut [bool], key: u64) -> bool {
    let cap = keys.len();
    if cap == 0 || key >= keys[cap - 1] {
        return false;
    }
    // `key` is below the last slot, so the insertion point is inside the list
    let pos = count_below(keys, key);
    if keys[pos] == key {
        return false;
    }
    keys.copy_within(pos..cap - 1, pos + 1);
    new.copy_within(pos..cap - 1, pos + 1);
    keys[pos] = key;
    new[pos] = true;
    true
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

#[cfg(test)]
mod tests {
    use super::*;

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
            let (mut keys, mut new) = (vec![u64::MAX; 10], vec![false; 10]);
            for &(d, id) in offers {
                push(&mut keys, &mut new, pair_key(d, id));
            }
            keys.iter()
                .take_while(|&&k| k != u64::MAX)
                .map(|&k| (key_distance(k), key_id(k)))
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
        let (mut keys, mut new) = (vec![u64::MAX; 2], vec![false; 2]);
        assert!(push(&mut keys, &mut new, pair_key(0.5, 1)));
        assert!(push(&mut keys, &mut new, pair_key(-0.0, 2)));
        assert_eq!(key_id(keys[0]), 2);
        assert!(
            !push(&mut keys, &mut new, pair_key(0.0, 2)),
            "the same pair again is a duplicate"
        );
        assert!(
            !push(&mut keys, &mut new, pair_key(0.7, 3)),
            "a full list's worst is a bound"
        );
    }
}

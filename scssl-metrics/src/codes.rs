//! Label and batch codes: arbitrary `u32` codes are renumbered densely in sorted order (as
//! `pd.Categorical(labels).codes` / `np.unique` do for the reference).

/// Dense codes `0..k` in sorted order of the input codes, and `k`.
pub fn dense(codes: &[u32]) -> (Vec<u32>, usize) {
    let mut uniq: Vec<u32> = codes.to_vec();
    uniq.sort_unstable();
    uniq.dedup();
    let map = |c: u32| uniq.binary_search(&c).map(|p| p as u32).unwrap_or(0);
    (codes.iter().map(|&c| map(c)).collect(), uniq.len())
}

/// Indices of the cells of each dense code.
pub fn members(dense_codes: &[u32], k: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![]; k];
    for (i, &c) in dense_codes.iter().enumerate() {
        m[c as usize].push(i);
    }
    m
}

//! The vector pieces of attention's softmax: a branch-free f32 exponential for shifted
//! scores and sums in fixed lanes, each inlined into kernels compiled for one instruction set
//! (the same bits at every vector width: no fused multiply-add, sums in a fixed order).

/// `Σ a_i b_i` in sixteen lanes summed in a fixed order (the same bits at every vector
/// width).
#[inline(always)]
pub(super) fn sum_of_products(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..16 {
            lanes[l] += x[l] * y[l];
        }
    }
    let mut total = lanes.iter().sum::<f32>();
    for (x, y) in ar.iter().zip(br) {
        total += x * y;
    }
    total
}

/// `Σ a_i` as [`sum_of_products`] sums.
#[inline(always)]
fn lane_sum(a: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let chunks = a.chunks_exact(16);
    let rest = chunks.remainder();
    for x in chunks {
        for l in 0..16 {
            lanes[l] += x[l];
        }
    }
    let mut total = lanes.iter().sum::<f32>();
    for x in rest {
        total += x;
    }
    total
}

/// `e^x` for `x ≤ 0` in f32 (the softmax's shifted scores), branch-free so that a loop of it
/// vectorises: `x = n·ln 2 + r`, a degree-7 Taylor polynomial for `e^r` (`|r| ≤ ln 2 / 2`,
/// truncation below 1e-8 relative), scaled by `2ⁿ` through the exponent bits. Within a few
/// ulp of `f32::exp`; results below the smallest normal f32 (`x < −87.33`) are 0; NaN stays
/// NaN.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³
    let xc = x.clamp(-87.33, 0.0);
    let t = xc * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let scale = f32::from_bits(t.to_bits().wrapping_add(127) << 23);
    let v = p * scale;
    if x < -87.33 {
        0.0
    } else if x.is_nan() {
        x
    } else {
        v
    }
}

/// Row-wise softmax of `x / divisor` in place, rows of `width` (PyTorch's order: the scaled
/// scores, their maximum, `e^(x − max)`, divided by the row's sum).
#[inline(always)]
pub(super) fn softmax_rows_plain(x: &mut [f32], width: usize, divisor: f32) {
    for row in x.chunks_exact_mut(width) {
        let mut max = f32::NEG_INFINITY;
        for v in row.iter_mut() {
            *v /= divisor;
            max = max.max(*v);
        }
        for v in row.iter_mut() {
            *v = exp_nonpositive(*v - max);
        }
        let sum = lane_sum(row);
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vector_exponential_is_within_a_few_ulp() {
        let mut worst = 0u32;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let (got, want) = (exp_nonpositive(x), x.exp());
            worst = worst.max(got.to_bits().abs_diff(want.to_bits()));
        }
        assert!(worst <= 4, "worst {worst} ulp");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-100.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }
}

//! The vector instructions this CPU has, detected once. Kernels that come in several
//! instruction-set versions (compiled with `#[target_feature]`) pick theirs from [`level`];
//! each keeps the scalar version's order of operations and uses no fused multiply-add, so
//! every version gives the same bits.

/// The widest vector instruction set available to the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The target's baseline (SSE2 on x86-64; anything on other architectures).
    Baseline,
    /// AVX2 (256-bit).
    Avx2,
    /// AVX-512 Foundation (512-bit).
    Avx512,
}

/// This CPU's [`Level`] (detected on the first call).
pub fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
        *LEVEL.get_or_init(|| {
            if std::arch::is_x86_feature_detected!("avx512f") {
                Level::Avx512
            } else if std::arch::is_x86_feature_detected!("avx2") {
                Level::Avx2
            } else {
                Level::Baseline
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    Level::Baseline
}

/// `ln 2` split for Cody–Waite reduction: `LN2_HI` has trailing zero bits, so `n · LN2_HI` is
/// exact for every exponent `n` an f64 can have (fdlibm's constants).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// 1.5 · 2⁵²: adding it rounds to an integer held in the low mantissa bits.
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;

/// `e^x` for one lane, branch-free so that a loop of it vectorises: `x = n·ln 2 + r` with
/// `|r| ≤ ln 2 / 2`, a degree-13 Taylor polynomial in Horner form for `e^r` (truncation below
/// 1e-17), scaled by `2ⁿ` through the exponent bits. Within 2 ulp of the correctly rounded
/// value; results below `e^−708.3` (the subnormal range) are 0; NaN stays NaN.
#[inline(always)]
fn exp_lane(x: f64) -> f64 {
    let xc = x.clamp(-708.3, 709.7);
    let t = xc * std::f64::consts::LOG2_E + ROUND_MAGIC;
    let n = t - ROUND_MAGIC;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 6_227_020_800.0;
    p = p * r + 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // 2ⁿ: the integer n sits in t's low bits; adding the bias and shifting into the exponent
    // field keeps only those bits
    let scale = f64::from_bits(t.to_bits().wrapping_add(1023) << 52);
    let v = p * scale;
    if x < -708.3 {
        0.0
    } else if x > 709.7 {
        f64::INFINITY
    } else if x.is_nan() {
        x
    } else {
        v
    }
}

/// [`exp_into`]'s loop, not dispatched: for callers that compile a larger kernel for one
/// instruction set (`#[target_feature]`) and want it inlined there. The same bits at every
/// width.
#[inline(always)]
pub fn exp_slice(x: &[f64], out: &mut [f64]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = exp_lane(v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exp_slice_avx512(x: &[f64], out: &mut [f64]) {
    exp_slice(x, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn exp_slice_avx2(x: &[f64], out: &mut [f64]) {
    exp_slice(x, out)
}

/// `out[i] = e^{x[i]}` (over the shorter of the two), vectorised with this CPU's widest
/// registers; the same bits on every CPU (plain multiplications and additions, no fused
/// multiply-add), within 2 ulp of the correctly rounded value, so a drop-in for `f64::exp`
/// where a loop calls it many times (UMAP's bandwidth search, LISI's perplexity search).
pub fn exp_into(x: &[f64], out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: each version runs only on a CPU that has its features.
        Level::Avx512 => return unsafe { exp_slice_avx512(x, out) },
        Level::Avx2 => return unsafe { exp_slice_avx2(x, out) },
        Level::Baseline => {}
    }
    exp_slice(x, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_standard_library_everywhere() {
        let xs: Vec<f64> = (0..200_001)
            .map(|i| -708.0 + 1417.0 * i as f64 / 200_000.0)
            .chain((0..20_001).map(|i| -1.0 + i as f64 / 10_000.0))
            .chain([0.0, -0.0, 1e-300, -1e-300, 0.5 * std::f64::consts::LN_2])
            .collect();
        let mut got = vec![0.0; xs.len()];
        exp_into(&xs, &mut got);
        let mut plain = vec![0.0; xs.len()];
        exp_slice(&xs, &mut plain);
        let mut worst = 0;
        for ((&x, &g), &p) in xs.iter().zip(&got).zip(&plain) {
            assert_eq!(g.to_bits(), p.to_bits(), "vector and scalar differ at {x}");
            worst = worst.max(ulps(g, x.exp()));
        }
        assert!(worst <= 2, "worst error {worst} ulp");
        assert_eq!(got[xs.len() - 5], 1.0);
    }

    #[test]
    fn exp_limits_and_nan() {
        let xs = [
            -1e300,
            f64::NEG_INFINITY,
            -709.0,
            710.0,
            f64::INFINITY,
            f64::NAN,
        ];
        let mut out = [1.0; 6];
        exp_into(&xs, &mut out);
        assert_eq!(&out[..5], &[0.0, 0.0, 0.0, f64::INFINITY, f64::INFINITY]);
        assert!(out[5].is_nan());
    }
}

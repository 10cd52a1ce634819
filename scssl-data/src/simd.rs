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

//! `scssl` — self-supervised learning for single-cell data: simulate, preprocess, train, embed,
//! evaluate, annotate, inspect, bench, report. The commands live in [`scssl_bench::cli`].

// mimalloc keeps freed large blocks for reuse: burn-ndarray's per-operation temporaries (hundreds
// of MB per step in the transformer methods) otherwise go back to the kernel and come back as
// fresh pages that it must zero, which was ~40 % of an scCLIP step with glibc's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e` of mimalloc.h, the
/// version libmimalloc-sys 0.1 bundles; `MIMALLOC_VERBOSE=1` lists the options in order).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // Never hand freed memory back to the kernel: by default mimalloc returns it after 1 s,
    // and a training step's buffers, freed in the backward pass and allocated again in the
    // next forward pass, came back as fresh pages the kernel zeroes. Three 256-cell scCLIP
    // steps took 77 s that way and 67 s with the memory kept (peak RSS 6.6 → 9.5 GB).
    // `MIMALLOC_PURGE_DELAY` in the environment still wins.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets an integer option of the allocator in use; any value is valid.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    scssl_bench::cli::main();
}

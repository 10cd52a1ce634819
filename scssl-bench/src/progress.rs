//! Progress bars and logging set-up shared by the commands.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over named steps; hidden when stderr is not a terminal (CI logs stay clean).
pub fn steps(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    pb
}

/// Installs a `tracing` subscriber that honours `RUST_LOG` (default `info`, with the SVG
/// rasteriser's per-shape notices off: tiny-skia warns for every zero-length stroke, e.g. a
/// zero-width error bar, which correctly draws nothing), logging to stderr.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,tiny_skia=error,tiny_skia_path=error,usvg=error,resvg=error",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// A bar over `total` units of work (training steps, runs) with a rate and ETA.
pub fn bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}

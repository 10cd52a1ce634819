//! `scssl preprocess` on files, with progress bars: the recipe itself
//! ([`scssl_data::pp::recipe`]) lives in scssl-data, where its users find it.

use std::path::Path;

use anyhow::{Context, Result};
use scssl_data::CountsSource;
use scssl_data::io;
pub use scssl_data::pp::recipe::{PreprocessOptions, PreprocessSummary, preprocess};

/// Reads `input`, preprocesses it and writes `output` (atomically), with a progress bar.
pub fn preprocess_file(
    input: &Path,
    output: &Path,
    opts: &PreprocessOptions,
) -> Result<PreprocessSummary> {
    let pb = crate::progress::steps(5, "preprocess");
    pb.set_message("reading");
    // the counts source is applied while reading, so a file without X works with a layer or raw/
    let ad = io::read_counts(
        input,
        &CountsSource::from_option(opts.counts_layer.as_deref()),
    )
    .with_context(|| format!("reading {}", input.display()))?;
    pb.inc(1);
    let mut step = |name: &str| {
        pb.set_message(name.to_string());
        pb.inc(1);
    };
    let (out, summary) = preprocess(ad, opts, &mut step)?;
    pb.set_message("writing");
    io::write(&out, output).with_context(|| format!("writing {}", output.display()))?;
    pb.finish_and_clear();
    Ok(summary)
}

/// [`scssl_data::pp::recipe::preprocess_backed`] (the file streamed in chunks of `chunk_rows`
/// cells), with a progress bar.
pub fn preprocess_backed(
    input: &Path,
    output: &Path,
    opts: &PreprocessOptions,
    chunk_rows: usize,
) -> Result<PreprocessSummary> {
    let pb = crate::progress::steps(0, "preprocess (backed)");
    let summary = scssl_data::pp::recipe::preprocess_backed(
        input,
        output,
        opts,
        chunk_rows,
        &mut |step, done, total| {
            pb.set_length(total as u64);
            pb.set_position(done as u64);
            pb.set_message(step.to_string());
        },
    )
    .with_context(|| format!("preprocessing {} (backed)", input.display()))?;
    pb.finish_and_clear();
    Ok(summary)
}

//! The `scssl` command line (simulate, preprocess, inspect, train, embed, eval, annotate,
//! bench, report). It lives in the library so that other binaries — the end-to-end test
//! crate's, a site's wrapper — run exactly the same commands; `anyhow` is used only here, at
//! the command-line edge.

mod data;
mod grid;
mod model;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "scssl", version, about = "Self-supervised learning for single-cell RNA-seq and CITE-seq", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a dataset of raw counts (negative binomial, cell types, batches) and write it.
    Simulate(data::SimulateArgs),
    /// Normalise, log-transform, select HVGs and compute PCA (the benchmark's preprocessing).
    Preprocess(data::PreprocessArgs),
    /// Score embeddings in obsm with the scIB metric set (one row per embedding).
    Eval(data::EvalArgs),
    /// Query-to-reference cell-type annotation (kNN) on an embedding, and protein prediction.
    Annotate(data::AnnotateArgs),
    /// Train an SSL model on a file (raw counts are normalised, log-transformed and reduced
    /// to HVGs first; a log-normalised X is used as stored) and save it to a directory.
    Train(Box<model::TrainArgs>),
    /// Embed the cells of a file with a trained model and write the embedding into obsm (in
    /// place).
    Embed(model::EmbedArgs),
    /// Run a grid of experiments from a YAML config (dataset × method × augmentation × seed),
    /// skipping finished runs, then write the report.
    Bench(grid::BenchArgs),
    /// (internal, used by the executors) run one experiment directory.
    #[command(hide = true)]
    RunOne(grid::RunOneArgs),
    /// Write the report (CSV, JSON, Markdown, HTML, SVG) of a result store.
    Report(grid::ReportArgs),
    /// (internal) one timed step of `cargo xtask perf data`.
    #[command(hide = true)]
    PerfStep(data::PerfStepArgs),
    /// Print shapes, X encoding, obs/var columns with category counts, obsm/layers/uns keys.
    Inspect(data::InspectArgs),
    /// Rewrite an AnnData file in the other format (or the same one): .h5ad ↔ .zarr, with X,
    /// layers, obsm, obsp, raw and uns as scssl reads them.
    Convert(data::ConvertArgs),
    /// UMAP of an embedding in obsm (umap-learn's algorithm, seeded): stored as
    /// obsm['X_umap'] and drawn as an SVG scatter coloured by obs columns.
    Umap(data::UmapArgs),
}

/// Runs the `scssl` command line on the process's arguments and exits with status 1 on error.
///
/// Call it as the first statement of a binary's `main`: it sets `HDF5_USE_FILE_LOCKING`
/// before any other thread exists.
pub fn main() {
    // HDF5's advisory file locks protect nothing here (every output is written under a
    // temporary name and renamed), but a lock inherited by another process makes a file
    // unreadable ("unable to lock file"). Like many h5py users, turn them off unless the user
    // chose otherwise.
    if std::env::var_os("HDF5_USE_FILE_LOCKING").is_none() {
        // SAFETY: documented to be called first in `main`, before any other thread exists.
        unsafe { std::env::set_var("HDF5_USE_FILE_LOCKING", "FALSE") };
    }
    crate::progress::init_logging();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Simulate(args) => data::simulate(args),
        Command::Preprocess(args) => data::preprocess(args),
        Command::Eval(args) => data::eval(args),
        Command::Annotate(args) => data::annotate(args),
        Command::Train(args) => model::train(*args),
        Command::Embed(args) => model::embed(args),
        Command::Bench(args) => grid::bench(args),
        Command::RunOne(args) => grid::run_one(args),
        Command::Report(args) => grid::report(args),
        Command::PerfStep(args) => data::perf_step(args),
        Command::Inspect(args) => data::inspect(args),
        Command::Convert(args) => data::convert(args),
        Command::Umap(args) => data::umap(args),
    }
}

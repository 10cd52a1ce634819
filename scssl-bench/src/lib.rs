//! # scssl-bench
//!
//! The product people run: the `scssl` command-line tool ([`cli`]) and the glue behind it —
//! data commands on [`scssl_data`] (whose `pp::recipe` is the preprocessing), training and
//! embedding with augmented views ([`train`]; model inputs are [`scssl_models::features`]), evaluation
//! ([`evaluate`]), and experiment grids: YAML configs ([`config`]), one experiment end to end
//! ([`runner`]), the result store ([`store`]), local and Slurm executors ([`executor`]) and
//! reports ([`report`]).
//!
//! ```no_run
//! use scssl_bench::preprocess::{PreprocessOptions, preprocess_file};
//!
//! let summary = preprocess_file("in.h5ad".as_ref(), "out.h5ad".as_ref(), &PreprocessOptions::default())?;
//! println!("{} HVGs kept", summary.n_hvg);
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod cli;
pub mod config;
pub mod evaluate;
pub mod executor;
pub mod inspect;
pub mod perf;
pub mod preprocess;
pub mod progress;
pub mod raster;
pub mod report;
pub mod runner;
pub mod scatter;
pub mod store;
pub mod train;

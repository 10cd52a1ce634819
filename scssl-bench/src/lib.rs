//! # scssl-bench
//!
//! The product people run: the `scssl` command-line tool and the pipelines behind it.
//! This release provides the data commands — `scssl simulate`, `scssl preprocess` and
//! `scssl inspect` — on top of [`scssl_data`]; experiment grids, executors, the result store
//! and reports (`scssl bench`, `scssl report`) follow the project's issue queue.
//!
//! ```no_run
//! use scssl_bench::preprocess::{PreprocessOptions, preprocess_file};
//!
//! let summary = preprocess_file("in.h5ad".as_ref(), "out.h5ad".as_ref(), &PreprocessOptions::default())?;
//! println!("{} HVGs kept", summary.n_hvg);
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod config;
pub mod evaluate;
pub mod executor;
pub mod inspect;
pub mod perf;
pub mod preprocess;
pub mod progress;
pub mod report;
pub mod runner;
pub mod store;
pub mod train;

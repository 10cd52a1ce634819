//! # scssl-data
//!
//! Single-cell data in, analysis-ready matrices out: the foundation of
//! [scssl](https://github.com/scssl/scssl).
//!
//! - [`AnnData`] — an in-memory AnnData (`X` as CSR or dense `f32`, `obs`/`var` tables with
//!   categorical, string, numeric, boolean and nullable columns, `obsm`, `layers`, `uns`).
//! - [`io`] — read and write `.h5ad` (feature `h5ad`, pure-Rust HDF5 through `hdf5-pure`, Blosc
//!   through c-blosc) and `.zarr` (feature `zarr`) files as Python anndata 0.7–0.12 lays them
//!   out (what scssl writes reads back in anndata 0.10–0.12); counts from a layer or `raw/`
//!   ([`CountsSource`]); add one `obsm` entry in place; stream `X` in row chunks
//!   ([`io::read_backed`]).
//! - [`pp`] — scanpy-equivalent preprocessing: `filter_cells`/`filter_genes`,
//!   `normalize_total`, `log1p`, `highly_variable_genes` (flavours `seurat` with `batch_key`,
//!   gene-for-gene equal to scanpy's, and `seurat_v3`), `scale`, `pca`, `clr`; and
//!   [`pp::recipe`], the benchmark's whole preprocessing in memory or streamed from a file.
//! - [`neighbors`] — [`Neighbors`] (self in column 0 at distance exactly 0), exact kNN,
//!   approximate kNN (NN-descent), UMAP fuzzy connectivities, BBKNN, mutual nearest neighbours.
//! - [`umap`] — UMAP layouts as umap-learn computes them, reproducible from a seed.
//! - [`simd`] — the CPU's vector level (detected once) for multi-versioned kernels, and a
//!   vectorised `exp` over slices that gives the same bits on every CPU.
//! - [`split`] — hold out query batches; keep cell types shared by reference and query.
//! - [`sim`] — a seeded simulator of realistic counts (negative binomial, cell-type
//!   programmes, batch effects, dropout, optional protein block); its marker programmes as
//!   gene sets ([`sim::gene_programs`]).
//! - [`gmt`] — gene programmes in MSigDB's GMT format: read, write, map onto a dataset's genes.
//!
//! ```
//! use scssl_data::{pp, sim};
//!
//! // simulate a small dataset, then run the benchmark's preprocessing
//! let mut ad = sim::simulate(&sim::SimConfig { n_cells: 300, n_genes: 200, ..Default::default() })?;
//! pp::normalize_total(&mut ad, 1e4)?;
//! pp::log1p(&mut ad);
//! let hvg = pp::highly_variable_genes(&ad, &pp::HvgOptions { n_top_genes: 50, batch_key: Some("batch".into()), ..Default::default() })?;
//! assert_eq!(hvg.highly_variable.iter().filter(|&&h| h).count(), 50);
//! let ad = ad.select_vars(&hvg.highly_variable);
//! let pca = pp::pca(&ad.x, 20)?;
//! assert_eq!(pca.embedding.dim(), (300, 20));
//! # Ok::<(), scssl_data::Error>(())
//! ```

pub mod anchors;
pub mod anndata;
pub mod error;
pub mod frame;
pub mod gmt;
pub mod io;
pub mod matrix;
pub mod neighbors;
pub mod pp;
pub mod sim;
pub mod simd;
pub mod split;
pub mod umap;

pub use anndata::{AnnData, CountsSource, Raw, UnsValue};
pub use error::{Error, Result};
pub use frame::{CategoryKind, Column, DataFrame, Groups};
pub use matrix::{CsrMatrix, Matrix};
pub use neighbors::Neighbors;
pub use pp::Pca;

//! Reading and writing AnnData files (`.h5ad` via HDF5, `.zarr` via zarrs), following the
//! anndata on-disk specification (encoding types `anndata`, `csr_matrix`, `csc_matrix`,
//! `array`, `dataframe`, `categorical`, `string-array`, `nullable-*`, `dict`, `string`,
//! `numeric-scalar`), as written by Python anndata 0.8–0.13.

mod encoding;
#[cfg(feature = "h5ad")]
pub mod h5;
#[cfg(feature = "h5ad")]
mod h5_blosc;
pub mod store;
mod stream;
#[cfg(feature = "zarr")]
pub mod zarr;

use std::path::Path;

use ndarray::Array2;

pub use encoding::{Backed, ColumnSummary, FileSummary, MatrixInfo};
use scssl_atomic::{remove_path, temp_sibling};
use store::Store;
pub use stream::CsrStreamWriter;

use crate::anndata::{AnnData, CountsSource};
use crate::error::{Error, Result};

/// On-disk formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// HDF5 (`.h5ad`).
    H5ad,
    /// Zarr directory store (`.zarr`).
    Zarr,
}

impl Format {
    /// Picks the format from the file name: `.h5ad`/`.h5` → H5ad, `.zarr` → Zarr.
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "h5ad" | "h5" | "hdf5" => Ok(Format::H5ad),
            "zarr" => Ok(Format::Zarr),
            _ => Err(Error::UnsupportedFormat {
                path: path.into(),
                reason: "expected a file name ending in .h5ad or .zarr".into(),
            }),
        }
    }
}

pub(crate) fn open_store(path: &Path) -> Result<Box<dyn Store>> {
    match Format::from_path(path)? {
        #[cfg(feature = "h5ad")]
        Format::H5ad => Ok(Box::new(h5::H5Store::open(path)?)),
        #[cfg(feature = "zarr")]
        Format::Zarr => Ok(Box::new(zarr::ZarrStore::open(path)?)),
        #[allow(unreachable_patterns)]
        f => Err(disabled(path, f)),
    }
}

fn disabled(path: &Path, f: Format) -> Error {
    Error::UnsupportedFormat {
        path: path.into(),
        reason: format!(
            "scssl-data was built without the `{}` feature",
            if f == Format::H5ad { "h5ad" } else { "zarr" }
        ),
    }
}

fn create_store(path: &Path, format: Format) -> Result<Box<dyn Store>> {
    match format {
        #[cfg(feature = "h5ad")]
        Format::H5ad => Ok(Box::new(h5::H5Store::create(path)?)),
        #[cfg(feature = "zarr")]
        Format::Zarr => Ok(Box::new(zarr::ZarrStore::create(path)?)),
        #[allow(unreachable_patterns)]
        f => Err(disabled(path, f)),
    }
}

/// Reads a whole `.h5ad` file or `.zarr` store into memory. A file without X is an
/// [`Error::MissingX`] here (use [`read_counts`], or [`read_backed`] for its annotations).
pub fn read(path: impl AsRef<Path>) -> Result<AnnData> {
    read_counts(path, &CountsSource::X)
}

/// Reads a file with the count matrix of `counts` as X (a layer, or `raw/X` with `raw/var`'s
/// genes; see [`AnnData::with_counts_as_x`]). This also reads files without X.
pub fn read_counts(path: impl AsRef<Path>, counts: &CountsSource) -> Result<AnnData> {
    let path = path.as_ref();
    let store = open_store(path)?;
    encoding::read_anndata(store.as_ref(), counts)
}

/// Reads what a model trains or embeds from: `obs`, `var`, `obsm`, `uns` and the count
/// matrix `counts` names, as `X` — without the file's other layers, `obsp` or `raw`, so a
/// large file costs one copy of its matrix. Otherwise like [`read_counts`].
pub fn read_source(path: impl AsRef<Path>, counts: &CountsSource) -> Result<AnnData> {
    let path = path.as_ref();
    let store = open_store(path)?;
    encoding::read_anndata_source(store.as_ref(), counts)
}

/// Summarises a file (shapes, encodings, columns) without loading `X`.
pub fn summarize(path: impl AsRef<Path>) -> Result<FileSummary> {
    let store = open_store(path.as_ref())?;
    encoding::summarize(store.as_ref())
}

/// Opens a file in backed mode: `obs`, `var` and `obsm` are read, `X` is read on demand in row chunks.
pub fn read_backed(path: impl AsRef<Path>) -> Result<Backed> {
    let path = path.as_ref();
    Backed::new(open_store(path)?)
}

/// Writes an AnnData to `.h5ad` or `.zarr` (chosen by extension). The file is written under a
/// temporary name and renamed into place, so a failure never leaves a half-written output.
pub fn write(adata: &AnnData, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let format = Format::from_path(path)?;
    adata.validate()?;
    let tmp = temp_sibling(path);
    remove_path(&tmp)?;
    let result = (|| {
        let store = create_store(&tmp, format)?;
        encoding::write_anndata(store.as_ref(), adata)?;
        store.finish()
    })();
    match result {
        Ok(()) => Ok(scssl_atomic::replace(&tmp, path)?),
        Err(e) => {
            let _ = remove_path(&tmp);
            Err(e)
        }
    }
}

/// Adds (or replaces) one `obsm` entry in an existing file without rewriting `X`.
///
/// The row count is checked against the file's `obs`. For `.h5ad` the change is committed in
/// place when the file is in the latest HDF5 format (as scssl writes it; a failed commit
/// leaves the file as it was), otherwise made on a copy that is renamed over the original; for `.zarr` the new array is written and the consolidated
/// metadata is refreshed, so anndata sees the entry.
#[cfg_attr(not(any(feature = "h5ad", feature = "zarr")), allow(unused_variables))]
pub fn write_obsm(path: impl AsRef<Path>, key: &str, value: &Array2<f32>) -> Result<()> {
    let path = path.as_ref();
    let format = Format::from_path(path)?;
    if key.is_empty() || key.contains('/') {
        return Err(Error::param(
            "key",
            format!("obsm key {key:?} must be non-empty and contain no '/'"),
        ));
    }
    match format {
        #[cfg(feature = "h5ad")]
        Format::H5ad => {
            // A file we wrote (latest HDF5 format) is edited in place: the commit appends the
            // new dataset and repoints the root last, so a failure leaves the old file whole,
            // and X is neither copied nor rewritten. Older-format files (h5py's default) would
            // be mirrored whole in memory, so those are edited on a copy that replaces them.
            {
                let store = h5::H5Store::open_rw(path)?;
                if store.edits_in_place() {
                    encoding::write_obsm_entry(&store, key, value)?;
                    return store.finish();
                }
            }
            let tmp = temp_sibling(path);
            std::fs::copy(path, &tmp).map_err(|e| Error::Io {
                path: path.into(),
                source: e,
            })?;
            let r = (|| {
                let store = h5::H5Store::open_rw(&tmp)?;
                encoding::write_obsm_entry(&store, key, value)?;
                store.finish()
            })();
            match r {
                Ok(()) => Ok(scssl_atomic::replace(&tmp, path)?),
                Err(e) => {
                    let _ = remove_path(&tmp);
                    Err(e)
                }
            }
        }
        #[cfg(feature = "zarr")]
        Format::Zarr => {
            let store = zarr::ZarrStore::open(path)?;
            encoding::write_obsm_entry(&store, key, value)?;
            store.finish()
        }
        #[allow(unreachable_patterns)]
        f => Err(disabled(path, f)),
    }
}

//! Writing an AnnData whose sparse matrices are too large to hold: `X` and any layers arrive
//! as row chunks and go to disk as they come, so memory holds one chunk, not the matrix.

use std::path::{Path, PathBuf};

use scssl_atomic::{remove_path, temp_sibling};

use super::Format;
use super::encoding;
use super::store::{Store, join};
use crate::anndata::AnnData;
use crate::error::{Error, Result};
use crate::matrix::CsrMatrix;

/// Streams CSR matrices (`X`, and layers such as `counts`) into a new `.h5ad` or `.zarr`,
/// row chunk by row chunk; [`CsrStreamWriter::finish`] then writes the annotations and moves
/// the file into place. The file is written under a temporary name, so a failure (or a
/// writer dropped without `finish`) never leaves a half-written output.
///
/// ```
/// use scssl_data::io::CsrStreamWriter;
/// use scssl_data::matrix::{CsrMatrix, Matrix};
/// use scssl_data::AnnData;
///
/// let dir = std::env::temp_dir().join(format!("scssl-stream-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("streamed.h5ad");
/// let mut w = CsrStreamWriter::create(&path, 4, 3, &["counts"]).unwrap();
/// for start in [0, 2] {
///     // two cells per chunk; in real use each chunk comes from a simulator or a backed file
///     let rows = CsrMatrix::new(2, 3, vec![0, 1, 2], vec![0, 2], vec![1.0, start as f32 + 2.0]).unwrap();
///     w.append(&[&rows, &rows]).unwrap();
/// }
/// let names = |p: &str, n: usize| (0..n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
/// let annotations = AnnData::new(Matrix::Csr(CsrMatrix::zeros(4, 3)), names("cell", 4), names("gene", 3)).unwrap();
/// w.finish(&annotations).unwrap();
/// let back = scssl_data::io::read(&path).unwrap();
/// assert_eq!(back.x.to_dense()[[3, 2]], 4.0);
/// assert!(back.layers.contains_key("counts"));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct CsrStreamWriter {
    path: PathBuf,
    tmp: PathBuf,
    store: Option<Box<dyn Store>>,
    n_obs: usize,
    n_vars: usize,
    /// Store paths of the streamed matrices: `X`, then `layers/<name>`.
    keys: Vec<String>,
    layers: Vec<String>,
    /// Values written so far, per matrix.
    nnz: Vec<usize>,
    rows: usize,
}

impl CsrStreamWriter {
    /// Starts `path` (`.h5ad` or `.zarr`) with an `n_obs × n_vars` CSR `X` and one CSR layer
    /// per name in `layers`, all filled by [`CsrStreamWriter::append`].
    #[cfg_attr(
        not(any(feature = "h5ad", feature = "zarr")),
        allow(unreachable_code, unused_variables)
    )]
    pub fn create(path: &Path, n_obs: usize, n_vars: usize, layers: &[&str]) -> Result<Self> {
        let format = Format::from_path(path)?;
        for l in layers {
            if l.is_empty() || l.contains('/') {
                return Err(Error::param(
                    "layers",
                    format!("layer name {l:?} must be non-empty and contain no '/'"),
                ));
            }
        }
        let tmp = temp_sibling(path);
        remove_path(&tmp)?;
        let store: Box<dyn Store> = match format {
            #[cfg(feature = "h5ad")]
            Format::H5ad => Box::new(super::h5::H5Store::create_streaming(&tmp)?),
            #[cfg(feature = "zarr")]
            Format::Zarr => Box::new(super::zarr::ZarrStore::create(&tmp)?),
            #[allow(unreachable_patterns)]
            f => return Err(super::disabled(path, f)),
        };
        let mut w = Self {
            path: path.into(),
            tmp,
            store: None,
            n_obs,
            n_vars,
            keys: std::iter::once("X".to_string())
                .chain(layers.iter().map(|l| join("layers", l)))
                .collect(),
            layers: layers.iter().map(|l| l.to_string()).collect(),
            nnz: vec![0; layers.len() + 1],
            rows: 0,
        };
        // from here on, Drop removes the temporary file if anything fails
        let store = w.store.insert(store);
        encoding::write_root(store.as_ref())?;
        store.create_group("layers", &encoding::dict_attrs())?;
        for key in &w.keys {
            encoding::begin_csr(store.as_ref(), key, (n_obs, n_vars))?;
        }
        Ok(w)
    }

    /// Appends the next rows: one block per matrix (`X` first, then the layers in the order
    /// given to [`CsrStreamWriter::create`]), all with the same number of rows.
    pub fn append(&mut self, blocks: &[&CsrMatrix]) -> Result<()> {
        if blocks.len() != self.keys.len() {
            return Err(Error::shape(
                format!("{}: blocks per append (X and layers)", self.path.display()),
                self.keys.len(),
                blocks.len(),
            ));
        }
        let n = blocks[0].n_rows();
        for (b, key) in blocks.iter().zip(&self.keys) {
            if b.n_rows() != n || b.n_cols() != self.n_vars {
                return Err(Error::shape(
                    format!(
                        "{}: rows appended to {key} (rows, columns)",
                        self.path.display()
                    ),
                    format!("({n}, {})", self.n_vars),
                    format!("({}, {})", b.n_rows(), b.n_cols()),
                ));
            }
        }
        if self.rows + n > self.n_obs {
            return Err(Error::shape(
                format!("{}: rows appended", self.path.display()),
                self.n_obs,
                self.rows + n,
            ));
        }
        let store = self.store.as_ref().ok_or_else(|| finished(&self.path))?;
        for ((b, key), nnz) in blocks.iter().zip(&self.keys).zip(&mut self.nnz) {
            encoding::append_csr_rows(store.as_ref(), key, b, *nnz)?;
            *nnz += b.nnz();
        }
        self.rows += n;
        Ok(())
    }

    /// Rows appended so far.
    pub fn rows_written(&self) -> usize {
        self.rows
    }

    /// Writes everything else from `annotations` (`obs`, `var`, `obsm`, `uns`, other layers,
    /// …; its `X` and the streamed layers are ignored and may be placeholders such as
    /// [`CsrMatrix::zeros`]) and moves the file into place. Every row must have been
    /// appended, and `annotations` must have this file's shape.
    pub fn finish(mut self, annotations: &AnnData) -> Result<()> {
        if self.rows != self.n_obs {
            return Err(Error::shape(
                format!("{}: rows appended before finish", self.path.display()),
                self.n_obs,
                self.rows,
            ));
        }
        if (annotations.n_obs(), annotations.n_vars()) != (self.n_obs, self.n_vars) {
            return Err(Error::shape(
                format!("{}: annotations (cells, genes)", self.path.display()),
                format!("({}, {})", self.n_obs, self.n_vars),
                format!("({}, {})", annotations.n_obs(), annotations.n_vars()),
            ));
        }
        let store = self.store.take().ok_or_else(|| finished(&self.path))?;
        let r = (|| {
            for key in &self.keys {
                encoding::end_csr(store.as_ref(), key)?;
            }
            encoding::write_annotations(store.as_ref(), annotations, &self.layers)?;
            store.finish()
        })();
        drop(store);
        match r {
            Ok(()) => Ok(scssl_atomic::replace(&self.tmp, &self.path)?),
            Err(e) => {
                let _ = remove_path(&self.tmp);
                Err(e)
            }
        }
    }
}

fn finished(path: &Path) -> Error {
    Error::param(
        "writer",
        format!("{}: the stream writer has already finished", path.display()),
    )
}

impl Drop for CsrStreamWriter {
    fn drop(&mut self) {
        if self.store.take().is_some() {
            let _ = remove_path(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::Matrix;
    use crate::sim::{SimConfig, simulate};

    fn roundtrip(ext: &str) {
        let ad = simulate(&SimConfig {
            n_cells: 4000,
            n_genes: 1000,
            n_proteins: 4,
            seed: 5,
            ..Default::default()
        })
        .unwrap();
        let Matrix::Csr(x) = &ad.x else {
            panic!("the simulator writes CSR")
        };
        let dir = std::env::temp_dir().join(format!("scssl-stream-{ext}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("s.{ext}"));
        let mut w = CsrStreamWriter::create(&path, 4000, 1000, &["counts"]).unwrap();
        assert!(
            x.nnz() > 1 << 20,
            "enough values to fill more than one appended chunk"
        );
        // uneven chunks, one of them empty
        for (a, b) in [(0, 250), (250, 250), (250, 3999), (3999, 4000)] {
            let block = x.select_rows(&(a..b).collect::<Vec<_>>());
            w.append(&[&block, &block]).unwrap();
        }
        w.finish(&ad).unwrap();
        let back = crate::io::read(&path).unwrap();
        assert_eq!(back.x, ad.x);
        assert_eq!(back.layers["counts"], ad.x);
        assert_eq!(back.obs, ad.obs);
        assert_eq!(back.obsm, ad.obsm);
        // what a model reads: one matrix, no layers
        let x_only = crate::io::read_source(&path, &crate::CountsSource::X).unwrap();
        assert_eq!((&x_only.x, x_only.layers.len()), (&ad.x, 0));
        let layer = crate::io::read_source(&path, &crate::CountsSource::Layer("counts".into()));
        assert_eq!(layer.unwrap().x, ad.x);
        let missing = crate::io::read_source(&path, &crate::CountsSource::Layer("nope".into()));
        assert!(
            missing.unwrap_err().to_string().contains("counts"),
            "names the layers there"
        );
        // an embedding goes into the streamed file in place, and reads back
        let emb = ndarray::Array2::from_shape_fn((4000, 3), |(i, j)| (i * 3 + j) as f32);
        crate::io::write_obsm(&path, "X_test", &emb).unwrap();
        crate::io::write_obsm(&path, "X_test", &(&emb * 2.0)).unwrap();
        let back = crate::io::read(&path).unwrap();
        assert_eq!(back.obsm["X_test"], &emb * 2.0);
        assert_eq!(back.x, ad.x);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(feature = "h5ad")]
    #[test]
    fn streamed_h5ad_reads_back_equal() {
        roundtrip("h5ad");
    }

    #[cfg(feature = "zarr")]
    #[test]
    fn streamed_zarr_reads_back_equal() {
        roundtrip("zarr");
    }

    #[cfg(feature = "h5ad")]
    #[test]
    fn a_short_or_unfinished_stream_leaves_no_file() {
        let dir = std::env::temp_dir().join(format!("scssl-stream-short-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.h5ad");
        let names = |p: &str, n: usize| (0..n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
        let ad = AnnData::new(
            Matrix::Csr(CsrMatrix::zeros(3, 2)),
            names("c", 3),
            names("g", 2),
        )
        .unwrap();
        let mut w = CsrStreamWriter::create(&path, 3, 2, &[]).unwrap();
        w.append(&[&CsrMatrix::zeros(2, 2)]).unwrap();
        let wide = w.append(&[&CsrMatrix::zeros(1, 5)]).unwrap_err();
        assert!(wide.to_string().contains("rows appended to X"), "{wide}");
        let e = w.finish(&ad).unwrap_err();
        assert!(e.to_string().contains("rows appended before finish"), "{e}");
        assert!(!path.exists());
        let w = CsrStreamWriter::create(&path, 3, 2, &[]).unwrap();
        drop(w);
        assert!(!path.exists());
        assert!(!temp_sibling(&path).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The crate's error type: every variant names the file, key, column or parameter at fault.

use std::path::PathBuf;

/// Result alias used throughout `scssl-data`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `scssl-data`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O error on a path.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The storage library (HDF5 or zarr) failed on an element of a file.
    #[error("{file}: cannot access '{key}': {message}")]
    Storage {
        /// The file or store.
        file: String,
        /// The element path inside it (e.g. `obs/cell_type/codes`).
        key: String,
        /// What the storage library said.
        message: String,
    },
    /// The file's content does not follow the AnnData on-disk specification.
    #[error("{file}: '{key}' is not a valid AnnData element: {reason}")]
    Format {
        /// The file or store.
        file: String,
        /// The element path inside it.
        key: String,
        /// What was expected instead.
        reason: String,
    },
    /// The file has no `X` (valid since anndata 0.8, e.g. a file of exported embeddings) and the
    /// operation needs a matrix.
    #[error(
        "{file}: the file has no X (it holds annotations and embeddings only); preprocessing and training need counts: {hint}"
    )]
    MissingX {
        /// The file or store.
        file: String,
        /// Which counts sources the file does have, as `--counts-layer` values.
        hint: String,
    },
    /// A requested key (obs/var column, obsm/layers entry) does not exist.
    #[error("{container} has no key '{key}'; available keys: [{available}]")]
    MissingKey {
        /// Which mapping was searched (`obs`, `var`, `obsm`, `layers`, `uns`).
        container: &'static str,
        /// The requested key.
        key: String,
        /// The keys that exist, comma-separated.
        available: String,
    },
    /// Count data contains a negative, NaN or infinite value.
    #[error(
        "invalid count {value} at cell '{cell}' (row {row}), gene '{gene}' (column {col}): counts must be finite and non-negative"
    )]
    InvalidCounts {
        /// Row (cell) index.
        row: usize,
        /// Column (gene) index.
        col: usize,
        /// Cell name.
        cell: String,
        /// Gene name.
        gene: String,
        /// The offending value.
        value: f32,
    },
    /// A matrix that must hold raw counts does not (its first non-count entry is named).
    #[error("{source}; {hint}")]
    NotRawCounts {
        /// The first entry that is not a count.
        source: Box<Error>,
        /// Where the counts may be instead, in the user's terms.
        hint: String,
    },
    /// Two things that must agree in size do not.
    #[error("shape mismatch for {what}: expected {expected}, found {found}")]
    Shape {
        /// What was checked.
        what: String,
        /// The expected size.
        expected: String,
        /// The size found.
        found: String,
    },
    /// A parameter is outside its allowed range.
    #[error("invalid parameter `{name}`: {reason}")]
    Param {
        /// Parameter name.
        name: &'static str,
        /// What is allowed.
        reason: String,
    },
    /// An operation needs more distinct groups (batches, labels) than the data has.
    #[error("{what} needs at least {needed} distinct values in column '{key}', found {found}")]
    TooFewGroups {
        /// The operation.
        what: &'static str,
        /// The obs column.
        key: String,
        /// Minimum number of groups.
        needed: usize,
        /// Number present.
        found: usize,
    },
    /// A table names cells (or genes) that the data does not have.
    #[error(
        "{file}: {count} of {total} {what} names are not in the data (first: {examples}); check that the file belongs to this dataset"
    )]
    UnknownNames {
        /// The table.
        file: String,
        /// What the names are (e.g. `anchor cell`).
        what: &'static str,
        /// Distinct names not found.
        count: usize,
        /// Distinct names in the table.
        total: usize,
        /// The first few unknown names, comma-separated.
        examples: String,
    },
    /// The path is neither `.h5ad` nor `.zarr`, or the needed feature is off.
    #[error("{}: {reason}", path.display())]
    UnsupportedFormat {
        /// The path.
        path: PathBuf,
        /// Why it cannot be handled.
        reason: String,
    },
}

impl Error {
    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Error::Param {
            name,
            reason: reason.into(),
        }
    }
    pub(crate) fn shape(
        what: impl Into<String>,
        expected: impl ToString,
        found: impl ToString,
    ) -> Self {
        Error::Shape {
            what: what.into(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }
}

impl From<scssl_atomic::Error> for Error {
    fn from(e: scssl_atomic::Error) -> Self {
        Error::Io {
            path: e.path,
            source: e.source,
        }
    }
}

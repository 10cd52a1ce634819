//! Errors of `scssl-metrics`.

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Invalid input to a metric.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Lengths or shapes that must agree do not.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// The embedding has a NaN or infinite value.
    #[error("the embedding has a non-finite value {value} at row {row}, column {col}")]
    NonFinite {
        /// Row (cell).
        row: usize,
        /// Column.
        col: usize,
        /// The value.
        value: f32,
    },
    /// A parameter or input is outside what the metric accepts.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A neighbour search or other `scssl-data` step failed (its error, unchanged).
    #[error(transparent)]
    Data(#[from] scssl_data::Error),
}

pub(crate) fn check_embedding(x: ndarray::ArrayView2<'_, f32>) -> Result<()> {
    if let Some(((row, col), &value)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite { row, col, value });
    }
    Ok(())
}

pub(crate) fn check_len(what: &str, n: usize, got: usize) -> Result<()> {
    if n != got {
        return Err(Error::Shape(format!(
            "{what} has {got} entries, the embedding has {n} cells"
        )));
    }
    Ok(())
}

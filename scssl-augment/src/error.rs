//! Errors of `scssl-augment`: each names the field or input at fault and the allowed range.

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Invalid configuration or input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration field is outside its allowed range.
    #[error("invalid augmentation config: `{field}` = {value} is outside {allowed}")]
    Field {
        /// Dotted field path, e.g. `steps[2].mask.rate`.
        field: String,
        /// The value given.
        value: String,
        /// The allowed range.
        allowed: String,
    },
    /// An input is missing or has the wrong shape.
    #[error("invalid augmentation input: {0}")]
    Input(String),
    /// A neighbour search or PCA of `scssl-data` failed (its error, unchanged).
    #[cfg(feature = "neighbors")]
    #[error(transparent)]
    Data(#[from] scssl_data::Error),
    /// An unknown preset name.
    #[error("unknown augmentation preset '{name}'; presets are: {available}")]
    UnknownPreset {
        /// Requested name.
        name: String,
        /// Known names.
        available: String,
    },
}

impl Error {
    pub(crate) fn field(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        allowed: impl Into<String>,
    ) -> Self {
        Error::Field {
            field: field.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

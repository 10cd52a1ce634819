//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while building, training, saving or applying a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration value is out of range; names the parameter and what was expected.
    #[error("invalid parameter `{parameter}`: {message}")]
    InvalidParameter {
        /// Dotted name of the parameter, e.g. `model.hidden_dim`.
        parameter: String,
        /// What was expected.
        message: String,
    },
    /// The input data is unusable as given; names the element (X, a layer, an obsm key) and
    /// what is wrong with it.
    #[error("{what}: {message}")]
    Input {
        /// The element at fault, e.g. `X` or `obsm["protein_expression"]`.
        what: String,
        /// What is wrong, and where to look instead.
        message: String,
    },
    /// Reading or preprocessing the data failed (the error names the file, key, cell or gene).
    #[error(transparent)]
    Data(#[from] scssl_data::Error),
    /// Input arrays do not match the model (wrong modality count or feature count).
    #[error("input shape mismatch: {0}")]
    Shape(String),
    /// The loss became NaN or infinite; training stops and the run is failed.
    #[error(
        "loss is {value} at epoch {epoch}, step {step}: training stopped (try a lower learning rate or check the input for extreme values)"
    )]
    NonFiniteLoss {
        /// Epoch (0-based).
        epoch: usize,
        /// Step within the epoch (0-based).
        step: usize,
        /// The offending value.
        value: f64,
    },
    /// The caller's view source failed.
    #[error("the view source failed at epoch {epoch}: {message}")]
    Views {
        /// Epoch (0-based).
        epoch: usize,
        /// The source's message.
        message: String,
    },
    /// A checkpoint file could not be read or written.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A part the configuration promises is missing (a bug in this crate, not in the input).
    #[error("internal inconsistency: {0} is missing (please report this as a bug)")]
    Inconsistent(String),
    /// The requested compute device is not available in this build or on this machine.
    #[error("device unavailable: {0}")]
    Device(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

pub(crate) fn invalid(parameter: &str, message: impl Into<String>) -> ModelError {
    ModelError::InvalidParameter {
        parameter: parameter.to_string(),
        message: message.into(),
    }
}

//! Backend selection and backend-neutral trained models with checkpoints.

use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use ndarray::ArrayView2;
use scssl_atomic as atomic;
use serde::{Deserialize, Serialize};

use crate::config::{ModelConfig, TrainConfig};
use crate::error::{ModelError, Result};
use crate::layers::NamedTensor;
use crate::methods::{
    BatchRequest, BatchSource, EmbedInputs, Fitted, MiniBatch, Objective, ObjectiveFamily,
};
use crate::model::{EmbeddingOutput, Embeddings};
use crate::train::{TrainEvent, TrainHistory, train};

/// The CPU backend (burn's ndarray backend, f32).
pub type CpuBackend = burn::backend::NdArray<f32>;
/// The CPU backend with automatic differentiation.
pub type CpuTrainBackend = Autodiff<CpuBackend>;
/// The CUDA backend (CUDA is loaded at run time; the build needs neither GPU nor toolkit).
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda<f32, i32>;

/// Where training runs; written as `cpu` or `cuda:N` ([`ComputeDevice::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeDevice {
    /// The CPU (all cores).
    #[default]
    Cpu,
    /// An NVIDIA GPU by index (needs the `cuda` feature).
    Cuda(usize),
}

impl ComputeDevice {
    /// Checks that this build can train on the device: CUDA needs the `cuda` feature. (Whether
    /// a GPU is present is known only when training starts, on the machine that trains.)
    pub fn check_supported(&self) -> Result<()> {
        match self {
            ComputeDevice::Cuda(index) if !cfg!(feature = "cuda") => {
                Err(ModelError::Device(format!(
                    "cuda:{index} requested, but this build has no CUDA support (rebuild with --features cuda)"
                )))
            }
            _ => Ok(()),
        }
    }

    /// Parses `cpu`, `cuda` or `cuda:N`.
    pub fn parse(s: &str) -> Result<ComputeDevice> {
        let s = s.trim().to_ascii_lowercase();
        if s == "cpu" {
            return Ok(ComputeDevice::Cpu);
        }
        if s == "cuda" || s == "gpu" {
            return Ok(ComputeDevice::Cuda(0));
        }
        if let Some(i) = s.strip_prefix("cuda:") {
            return i
                .parse()
                .map(ComputeDevice::Cuda)
                .map_err(|_| crate::error::invalid("device", format!("bad CUDA index in {s:?}")));
        }
        Err(crate::error::invalid(
            "device",
            format!("unknown device {s:?}; expected cpu, cuda or cuda:N"),
        ))
    }
}

impl std::fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComputeDevice::Cpu => f.write_str("cpu"),
            ComputeDevice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl Serialize for ComputeDevice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ComputeDevice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ComputeDevice::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// A trained model, independent of the backend it was trained on: configuration, weights,
/// BatchNorm statistics and the training curve. Embeds on the CPU.
#[derive(Debug, Clone)]
pub struct TrainedModel {
    /// Architecture.
    pub config: ModelConfig,
    /// Training settings used.
    pub training: TrainConfig,
    /// Every tensor, by name.
    pub tensors: Vec<NamedTensor>,
    /// Loss curve and timings.
    pub history: TrainHistory,
    /// Caller metadata stored with the checkpoint (e.g. feature names, preprocessing).
    pub metadata: serde_json::Value,
}

/// Fits `model.method` on `training.device` and returns a backend-neutral model. `batches` is
/// called once per step with the batch's cell indices and what the method needs
/// ([`BatchRequest::needs`]); `progress` receives [`TrainEvent`]s.
pub fn fit<V, E, P>(
    model: &ModelConfig,
    training: &TrainConfig,
    n_cells: usize,
    mut batches: V,
    mut progress: P,
) -> Result<TrainedModel>
where
    V: FnMut(BatchRequest<'_>) -> std::result::Result<MiniBatch, E>,
    E: std::fmt::Display,
    P: FnMut(&TrainEvent),
{
    training.device.check_supported()?;
    model.validate()?;
    let mut source = |r: BatchRequest<'_>| batches(r).map_err(|e| e.to_string());
    let fitted = model
        .method
        .fit(model, training, n_cells, &mut source, &mut progress)?;
    Ok(TrainedModel {
        config: model.clone(),
        training: training.clone(),
        tensors: fitted.tensors,
        history: fitted.history,
        metadata: serde_json::Value::Null,
    })
}

/// Trains the objective of family `F` on `device` with the generic trainer and exports the
/// trained network: what a gradient-trained method's [`crate::Method::fit`] calls.
pub fn fit_objective<F: ObjectiveFamily>(
    model: &ModelConfig,
    training: &TrainConfig,
    n_cells: usize,
    source: &mut BatchSource<'_>,
    progress: &mut dyn FnMut(&TrainEvent),
) -> Result<Fitted> {
    match training.device {
        ComputeDevice::Cpu => {
            let (net, history) = train::<CpuTrainBackend, F::On<CpuTrainBackend>>(
                model,
                training,
                n_cells,
                &Default::default(),
                source,
                progress,
            )?;
            Ok(Fitted {
                tensors: <F::On<CpuTrainBackend> as Objective<CpuTrainBackend>>::export(&net),
                history,
            })
        }
        ComputeDevice::Cuda(index) => {
            fit_cuda::<F>(index, model, training, n_cells, source, progress)
        }
    }
}

#[cfg(feature = "cuda")]
fn fit_cuda<F: ObjectiveFamily>(
    index: usize,
    model: &ModelConfig,
    training: &TrainConfig,
    n_cells: usize,
    source: &mut BatchSource<'_>,
    progress: &mut dyn FnMut(&TrainEvent),
) -> Result<Fitted> {
    use burn::tensor::Tensor;
    type CudaTrain = Autodiff<CudaBackend>;
    let device = burn::backend::cuda::CudaDevice::new(index);
    // Initialising CUDA panics inside burn when no driver or GPU is present: turn that into
    // an error before any training starts.
    let probe = std::panic::catch_unwind(|| {
        let t = Tensor::<CudaBackend, 1>::zeros([1], &device);
        t.into_data();
    });
    if probe.is_err() {
        return Err(ModelError::Device(format!(
            "CUDA device {index} could not be initialised (no NVIDIA driver or GPU?)"
        )));
    }
    let (net, history) =
        train::<CudaTrain, F::On<CudaTrain>>(model, training, n_cells, &device, source, progress)?;
    Ok(Fitted {
        tensors: <F::On<CudaTrain> as Objective<CudaTrain>>::export(&net),
        history,
    })
}

// the same signature as the CUDA build's, so the call site needs no cfg
#[cfg(not(feature = "cuda"))]
#[allow(clippy::extra_unused_type_parameters)]
fn fit_cuda<F: ObjectiveFamily>(
    index: usize,
    _model: &ModelConfig,
    _training: &TrainConfig,
    _n_cells: usize,
    _source: &mut BatchSource<'_>,
    _progress: &mut dyn FnMut(&TrainEvent),
) -> Result<Fitted> {
    ComputeDevice::Cuda(index).check_supported()?;
    Err(ModelError::Inconsistent(
        "CUDA reported as supported in a build without it".into(),
    ))
}

const FORMAT_VERSION: u32 = 1;
const MANIFEST: &str = "model.json";
const WEIGHTS: &str = "weights.bin";

#[derive(Serialize, Deserialize)]
struct TensorEntry {
    name: String,
    shape: Vec<usize>,
    offset: usize,
    len: usize,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    format_version: u32,
    scssl_models_version: String,
    model: ModelConfig,
    training: TrainConfig,
    history: TrainHistory,
    metadata: serde_json::Value,
    weights_bytes: usize,
    weights_fnv1a: String,
    tensors: Vec<TensorEntry>,
}

/// Reads manifests written before the model and training settings were the config file's
/// sections: `model.vicreg {invariance, variance, covariance}` becomes `reg_lambda`,
/// `reg_alpha`, `reg_beta`; the device moves from the top level into `training`.
fn upgrade_manifest(mut manifest: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let device = manifest.as_object_mut().and_then(|m| m.remove("device"));
    if let Some(Value::Object(training)) = manifest.get_mut("training")
        && !training.contains_key("device")
    {
        // the old enum form was "cpu" or {"cuda": N}
        let name = match device {
            Some(Value::Object(d)) => d
                .get("cuda")
                .and_then(Value::as_u64)
                .map(|i| format!("cuda:{i}")),
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        if let Some(name) = name {
            training.insert("device".into(), Value::String(name));
        }
    }
    if let Some(Value::Object(model)) = manifest.get_mut("model")
        && let Some(Value::Object(w)) = model.remove("vicreg")
    {
        let get = |k: &str| w.get(k).cloned().unwrap_or(Value::Null);
        let (lambda, mu) = (get("invariance"), get("variance"));
        let alpha = if mu == lambda { Value::Null } else { mu };
        model.insert("reg_lambda".into(), lambda);
        model.insert("reg_alpha".into(), alpha);
        model.insert("reg_beta".into(), get("covariance"));
    }
    manifest
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl TrainedModel {
    /// Embeds cells on the CPU in eval mode (features only; see [`TrainedModel::embed_inputs`]
    /// for methods that also read counts or batch codes).
    pub fn embed(
        &self,
        inputs: &[ArrayView2<'_, f32>],
        output: EmbeddingOutput,
    ) -> Result<Embeddings> {
        self.embed_inputs(&EmbedInputs::features(inputs), output)
    }

    /// Embeds cells on the CPU in eval mode.
    pub fn embed_inputs(
        &self,
        inputs: &EmbedInputs<'_>,
        output: EmbeddingOutput,
    ) -> Result<Embeddings> {
        self.config
            .method
            .embed(&self.config, &self.tensors, inputs, output)
    }

    /// Writes `dir/model.json` (configuration, curve, metadata, tensor index) and
    /// `dir/weights.bin` (f32 little-endian) into a temporary directory next to `dir`, then
    /// renames it into place, so a reader never sees a half-written checkpoint.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| io_err(&parent, e))?;
        if dir.file_name().is_none() {
            return Err(io_err(dir, "not a directory name"));
        }
        let tmp = atomic::temp_sibling(dir);
        std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        let mut bytes = Vec::new();
        let mut entries = Vec::new();
        for t in &self.tensors {
            entries.push(TensorEntry {
                name: t.name.clone(),
                shape: t.shape.clone(),
                offset: bytes.len(),
                len: t.data.len(),
            });
            for v in &t.data {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        let manifest = Manifest {
            format: "scssl-model".into(),
            format_version: FORMAT_VERSION,
            scssl_models_version: env!("CARGO_PKG_VERSION").into(),
            model: self.config.clone(),
            training: self.training.clone(),
            history: self.history.clone(),
            metadata: self.metadata.clone(),
            weights_bytes: bytes.len(),
            weights_fnv1a: format!("{:016x}", fnv1a(&bytes)),
            tensors: entries,
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| io_err(dir, e))?;
        let result = atomic::write_synced(&tmp.join(WEIGHTS), &bytes)
            .and_then(|()| atomic::write_synced(&tmp.join(MANIFEST), &json))
            .and_then(|()| atomic::replace(&tmp, dir));
        if result.is_err() {
            let _ = atomic::remove_path(&tmp);
        }
        result.map_err(|e| io_err(dir, e))
    }

    /// Reads a checkpoint written by [`TrainedModel::save`]; a truncated or altered weights
    /// file is an error naming it.
    pub fn load(dir: &Path) -> Result<TrainedModel> {
        let mpath = dir.join(MANIFEST);
        let text = std::fs::read(&mpath).map_err(|e| io_err(&mpath, e))?;
        let manifest: Manifest = serde_json::from_slice::<serde_json::Value>(&text)
            .map(upgrade_manifest)
            .and_then(serde_json::from_value)
            .map_err(|e| io_err(&mpath, format!("not a scssl model manifest: {e}")))?;
        if manifest.format != "scssl-model" || manifest.format_version > FORMAT_VERSION {
            return Err(io_err(
                &mpath,
                format!(
                    "unsupported format {} v{} (this build reads scssl-model v{FORMAT_VERSION})",
                    manifest.format, manifest.format_version
                ),
            ));
        }
        let wpath = dir.join(WEIGHTS);
        let bytes = std::fs::read(&wpath).map_err(|e| io_err(&wpath, e))?;
        if bytes.len() != manifest.weights_bytes {
            return Err(io_err(
                &wpath,
                format!(
                    "has {} bytes, the manifest expects {} (truncated or replaced?)",
                    bytes.len(),
                    manifest.weights_bytes
                ),
            ));
        }
        if format!("{:016x}", fnv1a(&bytes)) != manifest.weights_fnv1a {
            return Err(io_err(
                &wpath,
                "checksum mismatch (file altered or corrupt)",
            ));
        }
        let mut tensors = Vec::with_capacity(manifest.tensors.len());
        for e in manifest.tensors {
            let end = e.offset + 4 * e.len;
            if end > bytes.len() || e.shape.iter().product::<usize>() != e.len {
                return Err(io_err(&wpath, format!("tensor {} is out of range", e.name)));
            }
            let data = bytes[e.offset..end]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            tensors.push(NamedTensor {
                name: e.name,
                shape: e.shape,
                data,
            });
        }
        let model = TrainedModel {
            config: manifest.model,
            training: manifest.training,
            tensors,
            history: manifest.history,
            metadata: manifest.metadata,
        };
        model
            .config
            .method
            .check_tensors(&model.config, &model.tensors)
            .map_err(|e| io_err(dir, format!("weights do not fit the configuration: {e}")))?;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Integration, LrSchedule};

    /// A manifest's settings as scssl wrote them before the model and training settings were
    /// the config file's sections.
    #[test]
    fn manifests_of_earlier_versions_are_read() {
        let old = serde_json::json!({
            "format": "scssl-model",
            "format_version": 1,
            "scssl_models_version": "0.1.0",
            "model": {
                "method": "vicreg",
                "input_dims": [10],
                "hidden_dim": 8,
                "vicreg": {"invariance": 25.0, "variance": 20.0, "covariance": 1.0},
                "integration": "mean",
            },
            "training": {"epochs": 3, "schedule": {"kind": "step", "step_size": 2, "gamma": 0.9}},
            "device": {"cuda": 1},
            "history": {"step_losses": [], "epochs": [], "seconds": 0.0},
            "metadata": null,
            "weights_bytes": 0,
            "weights_fnv1a": "cbf29ce484222325",
            "tensors": [],
        });
        let m: Manifest = serde_json::from_value(upgrade_manifest(old)).unwrap();
        let w = m.model.vicreg();
        assert_eq!((w.invariance, w.variance, w.covariance), (25.0, 20.0, 1.0));
        assert_eq!(m.model.integration, Integration::Mean);
        assert_eq!(m.model.input_dims, [10]);
        assert_eq!(
            m.training.schedule,
            LrSchedule::Step {
                step_size: 2,
                gamma: 0.9
            }
        );
        assert_eq!(m.training.device, ComputeDevice::Cuda(1));
        // a tied μ stays tied
        let tied = upgrade_manifest(serde_json::json!({
            "model": {"vicreg": {"invariance": 5.0, "variance": 5.0, "covariance": 1.0}},
            "training": {},
            "device": "cpu",
        }));
        assert_eq!(tied["model"]["reg_alpha"], serde_json::Value::Null);
        assert_eq!(tied["training"]["device"], "cpu");
    }

    #[test]
    fn settings_are_written_by_name() {
        let t = TrainConfig {
            schedule: LrSchedule::Cosine { min_lr: 1e-6 },
            device: ComputeDevice::Cuda(2),
            ..TrainConfig::default()
        };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["schedule"], "cosine:0.000001");
        assert_eq!(v["device"], "cuda:2");
        assert_eq!(serde_json::from_value::<TrainConfig>(v).unwrap(), t);
        let m = ModelConfig::default();
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["integrate"], "concat");
        // filled in from the data, so absent until then
        assert!(v.get("input_dims").is_none() && v.get("n_batches").is_none());
        assert_eq!(serde_json::from_value::<ModelConfig>(v).unwrap(), m);
    }
}

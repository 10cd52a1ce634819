//! What a grid gets beyond what it says: each method's training defaults for the keys a grid
//! point leaves out, and the baseline runs (the unintegrated PCA row of scIB tables).

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{ModelSection, RunConfig, TrainingSection};
use crate::train::AugmentSpec;

/// Fills the `training:` keys a grid point does not set with its method's defaults
/// ([`scssl_models::Method::default_training`]; scVI trains as scvi-tools does unless told
/// otherwise).
pub(super) fn fill_method_training_defaults(
    point: &mut serde_json::Map<String, Value>,
) -> Result<()> {
    let method = point
        .get("model")
        .and_then(|m| m.get("method"))
        .and_then(Value::as_str)
        .unwrap_or("simclr");
    let Ok(method) = scssl_models::MethodRef::parse(method) else {
        return Ok(()); // validation names the unknown method
    };
    let d = TrainingSection::from_train_config(&method.default_training(), "cpu");
    let training = point
        .entry("training")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(t) = training.as_object_mut() else {
        bail!("training: expected a mapping");
    };
    let Value::Object(defaults) = serde_json::to_value(d)? else {
        bail!("training defaults: expected a mapping");
    };
    for (key, value) in defaults {
        if key != "device" {
            t.entry(key).or_insert(value);
        }
    }
    Ok(())
}

/// Baselines every batch-correction grid gets unless it says otherwise (`baselines: []`): the
/// unintegrated PCA row of scIB tables.
pub const DEFAULT_BASELINES: &[&str] = &["pca"];

/// Adds one run of each baseline method per dataset (and embedding width) of the grid's
/// batch-correction runs, unless the grid already has it: the first such run with its model
/// replaced by the baseline's defaults and the same seed. A baseline that trains keeps that
/// run's training settings and augmentation.
pub(super) fn add_baselines(runs: &mut Vec<RunConfig>, baselines: &[String]) -> Result<()> {
    let mut extra: Vec<RunConfig> = Vec::new();
    for name in baselines {
        let method = scssl_models::MethodRef::parse(name).context("baselines")?;
        for run in runs.iter().filter(|r| r.tasks.batch_correction) {
            let same_slot = |r: &RunConfig| {
                r.data == run.data
                    && r.model.hidden_dim == run.model.hidden_dim
                    && scssl_models::MethodRef::parse(&r.model.method).ok() == Some(method)
            };
            if runs.iter().chain(&extra).any(same_slot) {
                continue;
            }
            let mut b = run.clone();
            b.model = ModelSection {
                method: method.name().to_string(),
                hidden_dim: run.model.hidden_dim,
                integrate: run.model.integrate.clone(),
                ..ModelSection::default()
            };
            if !method.trains() {
                b.training = TrainingSection {
                    device: run.training.device.clone(),
                    ..TrainingSection::default()
                };
                b.augmentation = AugmentSpec::Preset("none".into());
            }
            b.validate()
                .with_context(|| format!("baseline {name}, run {}", b.id()))?;
            extra.push(b);
        }
    }
    runs.extend(extra);
    Ok(())
}

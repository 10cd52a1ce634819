//! What a grid gets beyond what it says: each method's training defaults for the keys a grid
//! point leaves out, and the baseline runs (the unintegrated PCA row of scIB tables).

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::RunConfig;
use crate::train::AugmentSpec;

/// Fills the `training:` keys a grid point does not set with its method's defaults
/// ([`scssl_models::Method::default_training`]; scVI trains as scvi-tools does unless told
/// otherwise), and a missing `augmentation` with the method's own views when it has them
/// ([`scssl_models::Method::default_augmentation`]: CLEAR's `clear_original`), or `none` for a
/// method that makes no augmented views.
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
    // a method with its own views (CLEAR) trains with them unless the run names others; one
    // that makes no augmented views (CLAIRE, Concerto, the generative models) is labelled
    // `none` rather than with the unused default pipeline
    let own_views = method.default_augmentation().or_else(|| {
        let probe = scssl_models::ModelConfig::new(method, 1);
        (method.needs(&probe).views == 0).then_some("none")
    });
    if let Some(preset) = own_views {
        point
            .entry("augmentation")
            .or_insert_with(|| Value::from(preset));
    }
    let d = method.default_training();
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
        // the device and the seed are the run's, not the method's
        if key != "device" && key != "seed" {
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
/// replaced by the baseline's defaults, trained with the method's own training defaults on the
/// same device with the same seed. A baseline that makes no augmented views (PCA, scVI) is
/// labelled with the augmentation `none`; one that models RNA only (scVI) runs on the RNA of a
/// CITE-seq dataset, without the modality-prediction task.
pub(super) fn add_baselines(runs: &mut Vec<RunConfig>, baselines: &[String]) -> Result<()> {
    let mut extra: Vec<RunConfig> = Vec::new();
    for name in baselines {
        let method = scssl_models::MethodRef::parse(name).context("baselines")?;
        for run in runs.iter().filter(|r| r.tasks.batch_correction) {
            let mut b = run.clone();
            b.model = scssl_models::ModelConfig {
                method,
                hidden_dim: run.model.hidden_dim,
                integration: run.model.integration,
                ..Default::default()
            };
            b.training = scssl_models::TrainConfig {
                device: run.training.device,
                seed: run.training.seed,
                ..method.default_training()
            };
            if b.data.protein_key.is_some() && b.validate().is_err() {
                b.data.protein_key = None;
                b.tasks.modality_prediction = false;
            }
            let probe = b.model_config(1)?;
            if method.needs(&probe).views == 0 {
                b.augmentation = AugmentSpec::Preset("none".into());
            }
            let same_slot = |r: &RunConfig| {
                r.data == b.data
                    && r.model.hidden_dim == b.model.hidden_dim
                    && r.model.method == method
            };
            if runs.iter().chain(&extra).any(same_slot) {
                continue;
            }
            b.validate()
                .with_context(|| format!("baseline {name}, run {}", b.id()))?;
            extra.push(b);
        }
    }
    runs.extend(extra);
    Ok(())
}

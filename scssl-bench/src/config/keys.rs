//! The config schema: every known key and its kind, key checking with closest-key suggestions,
//! `key=value` overrides, and sweep expansion. Works on the JSON value tree a YAML file parses to.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

/// What kind of value a known key holds: one value (a list there is a sweep), a list (a list of
/// lists is a sweep), or a free-form value (never swept).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Scalar,
    List,
    Free,
}

/// Every key a config may contain, with its kind.
const SCHEMA: &[(&str, Kind)] = &[
    ("name", Kind::Scalar),
    ("data.name", Kind::Scalar),
    ("data.path", Kind::Scalar),
    ("data.batch_key", Kind::Scalar),
    ("data.label_key", Kind::Scalar),
    ("data.n_hvg", Kind::Scalar),
    ("data.holdout_batches", Kind::List),
    ("data.protein_key", Kind::Scalar),
    ("data.protein_transform", Kind::Scalar),
    ("data.counts_layer", Kind::Scalar),
    ("data.simulated.cells", Kind::Scalar),
    ("data.simulated.genes", Kind::Scalar),
    ("data.simulated.batches", Kind::Scalar),
    ("data.simulated.cell_types", Kind::Scalar),
    ("data.simulated.proteins", Kind::Scalar),
    ("data.simulated.seed", Kind::Scalar),
    ("model.method", Kind::Scalar),
    ("model.hidden_dim", Kind::Scalar),
    ("model.factor", Kind::Scalar),
    ("model.dropout", Kind::Scalar),
    ("model.temperature", Kind::Scalar),
    ("model.memory_bank_size", Kind::Scalar),
    ("model.momentum", Kind::Scalar),
    ("model.integrate", Kind::Scalar),
    ("model.predict_projection", Kind::Scalar),
    ("model.reg_lambda", Kind::Scalar),
    ("model.reg_alpha", Kind::Scalar),
    ("model.reg_beta", Kind::Scalar),
    ("model.barlow_lambda", Kind::Scalar),
    ("model.scvi.n_latent", Kind::Scalar),
    ("model.scvi.n_layers", Kind::Scalar),
    ("model.scvi.n_hidden", Kind::Scalar),
    ("model.scvi.gene_likelihood", Kind::Scalar),
    ("model.scvi.dispersion", Kind::Scalar),
    ("model.scvi.dropout_rate", Kind::Scalar),
    ("model.scvi.kl_warmup_epochs", Kind::Scalar),
    ("model.scvi.train_size", Kind::Scalar),
    ("model.scvi.epoch_rule", Kind::Scalar),
    ("model.totalvi.n_latent", Kind::Scalar),
    ("model.totalvi.n_hidden", Kind::Scalar),
    ("model.totalvi.n_layers_encoder", Kind::Scalar),
    ("model.totalvi.n_layers_decoder", Kind::Scalar),
    ("model.totalvi.dropout_rate", Kind::Scalar),
    ("model.totalvi.gene_likelihood", Kind::Scalar),
    ("model.totalvi.gene_dispersion", Kind::Scalar),
    ("model.totalvi.empirical_background_prior", Kind::Scalar),
    ("model.totalvi.encode_covariates", Kind::Scalar),
    ("model.totalvi.n_steps_kl_warmup", Kind::Scalar),
    ("model.totalvi.train_size", Kind::Scalar),
    ("model.totalvi.early_stopping", Kind::Scalar),
    ("model.totalvi.reduce_lr_on_plateau", Kind::Scalar),
    ("model.totalvi.epoch_rule", Kind::Scalar),
    ("model.mae.masking", Kind::Scalar),
    ("model.mae.mask_rate", Kind::Scalar),
    ("model.mae.hidden_units", Kind::List),
    ("model.mae.dropout_rate", Kind::Scalar),
    ("model.mae.deep_decoder", Kind::Scalar),
    ("model.mae.output_activation", Kind::Scalar),
    ("model.gene_programs", Kind::Scalar),
    ("model.dsbn", Kind::Scalar),
    ("model.dsbn_bn2", Kind::Scalar),
    ("augmentation", Kind::Free),
    ("training.epochs", Kind::Scalar),
    ("training.batch_size", Kind::Scalar),
    ("training.lr", Kind::Scalar),
    ("training.weight_decay", Kind::Scalar),
    ("training.schedule", Kind::Scalar),
    ("training.optimizer", Kind::Scalar),
    ("training.device", Kind::Scalar),
    ("training.gradient_clip", Kind::Scalar),
    ("tasks.batch_correction", Kind::Scalar),
    ("tasks.annotation", Kind::Scalar),
    ("tasks.modality_prediction", Kind::Scalar),
    ("tasks.kbet", Kind::Scalar),
    ("tasks.umap", Kind::Scalar),
    ("seeds", Kind::List),
    ("baselines", Kind::List),
];

fn kind_of(path: &str) -> Option<Kind> {
    SCHEMA.iter().find(|(k, _)| *k == path).map(|(_, k)| *k)
}

fn is_prefix(path: &str) -> bool {
    SCHEMA
        .iter()
        .any(|(k, _)| k.starts_with(path) && k[path.len()..].starts_with('.'))
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn unknown_key(path: &str) -> anyhow::Error {
    let best = SCHEMA
        .iter()
        .map(|(k, _)| (levenshtein(path, k), *k))
        .min()
        .map(|(_, k)| k)
        .unwrap_or("");
    anyhow::anyhow!("unknown config key `{path}` (did you mean `{best}`?)")
}

/// Checks every key of `v` against the schema (errors name the key and the closest valid one).
pub(crate) fn check_keys(v: &Value, prefix: &str) -> Result<()> {
    let Value::Object(map) = v else {
        return Ok(());
    };
    for (k, child) in map {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match kind_of(&path) {
            Some(_) => {}
            None if is_prefix(&path) => {
                if !child.is_object() {
                    bail!("config key `{path}` must be a mapping");
                }
                check_keys(child, &path)?;
            }
            None => return Err(unknown_key(&path)),
        }
    }
    Ok(())
}

/// Parses a YAML document into a JSON value tree.
pub fn parse_yaml(text: &str, origin: &Path) -> Result<Value> {
    let v: Value = yaml_serde::from_str(text)
        .with_context(|| format!("{} is not valid YAML", origin.display()))?;
    if !v.is_object() {
        bail!("{}: a config is a YAML mapping", origin.display());
    }
    Ok(v)
}

/// Applies `key=value` overrides (value parsed as YAML, so `a,b` or `[a, b]` is a sweep).
pub fn apply_overrides(root: &mut Value, overrides: &[String]) -> Result<()> {
    for o in overrides {
        let (key, raw) = o
            .split_once('=')
            .with_context(|| format!("override {o:?} is not key=value"))?;
        let key = key.trim();
        if kind_of(key).is_none() {
            return Err(unknown_key(key));
        }
        let raw = raw.trim();
        let value: Value = if raw.contains(',') && !raw.starts_with('[') && !raw.starts_with('{') {
            Value::Array(
                raw.split(',')
                    .map(|p| yaml_serde::from_str(p.trim()).unwrap_or(Value::String(p.into())))
                    .collect(),
            )
        } else {
            yaml_serde::from_str(raw).unwrap_or(Value::String(raw.into()))
        };
        let mut node = &mut *root;
        let parts: Vec<&str> = key.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            let obj = node
                .as_object_mut()
                .with_context(|| format!("override {key}: `{p}` is not a mapping"))?;
            node = obj
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        node.as_object_mut()
            .with_context(|| format!("override {key}: parent is not a mapping"))?
            .insert(parts[parts.len() - 1].to_string(), value);
    }
    Ok(())
}

/// The most grid points a config may expand to. A sweep is a cartesian product, so a few
/// long lists in a (mistyped or hostile) config would otherwise take all memory.
pub const MAX_GRID_POINTS: usize = 100_000;

/// Expands sweeps: every list where the schema expects one value (or a list of lists where it
/// expects a list) multiplies the grid. `seeds` is kept as a list (seeds are run per point).
/// More than [`MAX_GRID_POINTS`] points is an error naming the key where the limit was passed.
pub(crate) fn expand(v: &Value, prefix: &str) -> Result<Vec<Value>> {
    Ok(match v {
        Value::Object(map) => {
            let mut grid = vec![Map::new()];
            for (k, child) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let options: Vec<Value> = match kind_of(&path) {
                    Some(Kind::Scalar) => match child {
                        Value::Array(items) => items.clone(),
                        other => vec![other.clone()],
                    },
                    Some(Kind::List) if path != "seeds" => match child {
                        Value::Array(items)
                            if items.iter().all(Value::is_array) && !items.is_empty() =>
                        {
                            items.clone()
                        }
                        other => vec![other.clone()],
                    },
                    Some(Kind::Free) if path == "augmentation" => match child {
                        Value::Array(items) => items.clone(),
                        other => vec![other.clone()],
                    },
                    Some(_) => vec![child.clone()],
                    None => expand(child, &path)?,
                };
                let points = grid.len().saturating_mul(options.len());
                if points > MAX_GRID_POINTS {
                    bail!(
                        "the sweep over `{path}` makes the grid {points} points or more (the limit is {MAX_GRID_POINTS}); shorten its lists"
                    );
                }
                let mut next = Vec::with_capacity(grid.len() * options.len());
                for g in &grid {
                    for o in &options {
                        let mut m = g.clone();
                        m.insert(k.clone(), o.clone());
                        next.push(m);
                    }
                }
                grid = next;
            }
            grid.into_iter().map(Value::Object).collect()
        }
        other => vec![other.clone()],
    })
}

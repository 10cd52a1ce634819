//! The config schema: every known key and its kind, key checking with closest-key suggestions,
//! `key=value` overrides, and sweep expansion. Works on the JSON value tree a YAML file parses to.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

use super::RunConfig;

/// What kind of value a known key holds: one value (a list there is a sweep), a list (a list of
/// lists is a sweep), or a free-form value (never swept).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Scalar,
    List,
    Free,
}

/// Every key a config may contain, with its kind, read off the typed declaration itself
/// ([`RunConfig`] and its sections, serialised with their defaults): a field added to a section
/// is a config key, an override and a sweep axis with nothing else to edit. A list-valued
/// field is a [`Kind::List`]; `augmentation` is free-form; the grid-level `seeds` and
/// `baselines` stand in for a run's `training.seed`.
fn schema() -> &'static [(String, Kind)] {
    static SCHEMA: std::sync::OnceLock<Vec<(String, Kind)>> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut keys = Vec::new();
        collect_keys(default_tree(), "", &mut keys);
        keys.retain(|(k, _)| k != "training.seed");
        keys.push(("seeds".into(), Kind::List));
        keys.push(("baselines".into(), Kind::List));
        keys
    })
}

/// The default run as a JSON tree (computed once: the schema and every alias probe read it).
fn default_tree() -> &'static Value {
    static DEFAULTS: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    // serialising plain structs of numbers, strings and lists cannot fail
    DEFAULTS.get_or_init(|| serde_json::to_value(RunConfig::with_seed(0)).unwrap_or(Value::Null))
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn collect_keys(v: &Value, prefix: &str, out: &mut Vec<(String, Kind)>) {
    match v {
        Value::Object(map) if prefix != "augmentation" => {
            for (k, child) in map {
                collect_keys(child, &join(prefix, k), out);
            }
        }
        _ if prefix == "augmentation" => out.push((prefix.to_string(), Kind::Free)),
        Value::Array(_) => out.push((prefix.to_string(), Kind::List)),
        _ => out.push((prefix.to_string(), Kind::Scalar)),
    }
}

/// The kind of a known key.
fn kind_of(path: &str) -> Option<Kind> {
    schema().iter().find(|(k, _)| k == path).map(|(_, k)| *k)
}

fn is_prefix(path: &str) -> bool {
    schema()
        .iter()
        .any(|(k, _)| k.starts_with(path) && k[path.len()..].starts_with('.'))
}

/// A key the schema does not list may be a serde alias of one it does (the reference's name
/// for a field, e.g. `model.mae.masking_strategy`): `value` is set at `path` in an otherwise
/// default run and the typed declaration decides. Accepted: the canonical key whose value it
/// changed (`Ok(None)` when the value equals the default, so that no field changed); refused
/// as unknown: the unknown-key error with the closest key; refused for its value: serde's
/// message, naming the key.
fn alias_target(path: &str, value: &Value) -> Result<Option<String>> {
    // a sweep over an alias: the first item that differs from the default tells the key
    let candidates = match value {
        Value::Array(items) if !items.is_empty() => items.clone(),
        other => vec![other.clone()],
    };
    for candidate in candidates {
        let mut probe = serde_json::json!({});
        insert_at(&mut probe, path, candidate)?;
        let run: RunConfig = match serde_json::from_value(probe) {
            Ok(run) => run,
            Err(e) if e.to_string().contains("unknown field") => return Err(unknown_key(path)),
            Err(e) => bail!("config key `{path}`: {e}"),
        };
        let mut differing = Vec::new();
        diff_leaves(
            default_tree(),
            &serde_json::to_value(run)?,
            "",
            &mut differing,
        );
        if let [one] = differing.as_slice() {
            // a field that is no config key (`training.seed`: the grid's `seeds`; the input
            // widths and batch count: from the data) stays unknown under its own name
            if kind_of(one).is_none() {
                return Err(unknown_key(path));
            }
            return Ok(Some(one.clone()));
        }
    }
    Ok(None)
}

fn diff_leaves(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if prefix != "augmentation" => {
            for (k, va) in x {
                if let Some(vb) = y.get(k) {
                    diff_leaves(va, vb, &join(prefix, k), out);
                }
            }
            // a field the default run leaves out (the data-derived `model.n_batches`)
            out.extend(
                y.keys()
                    .filter(|k| !x.contains_key(*k))
                    .map(|k| join(prefix, k)),
            );
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
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
    let best = schema()
        .iter()
        .map(|(k, _)| (levenshtein(path, k), k.as_str()))
        .min()
        .map(|(_, k)| k)
        .unwrap_or("");
    anyhow::anyhow!("unknown config key `{path}` (did you mean `{best}`?)")
}

/// Checks every key of `v` against the schema (errors name the key and the closest valid
/// one), and renames serde aliases (the reference's names) to their canonical keys, so that
/// sweeps, overrides and run ids see one name per field.
pub(crate) fn check_keys(v: &mut Value, prefix: &str) -> Result<()> {
    let Value::Object(map) = v else {
        return Ok(());
    };
    let mut renames = Vec::new();
    for (k, child) in map.iter_mut() {
        let path = join(prefix, k);
        match kind_of(&path) {
            Some(_) => {}
            None if is_prefix(&path) => {
                if !child.is_object() {
                    bail!("config key `{path}` must be a mapping");
                }
                check_keys(child, &path)?;
            }
            None => {
                if let Some(canonical) = alias_target(&path, child)?
                    && let Some(last) = canonical.strip_prefix(&join(prefix, ""))
                    && !last.contains('.')
                {
                    renames.push((k.clone(), last.to_string()));
                }
            }
        }
    }
    for (from, to) in renames {
        if map.contains_key(&to) {
            bail!(
                "config keys `{}` and `{}` name the same setting; keep one",
                join(prefix, &from),
                join(prefix, &to)
            );
        }
        if let Some(value) = map.remove(&from) {
            map.insert(to, value);
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

/// Applies `key=value` overrides (value parsed as YAML, so `a,b` or `[a, b]` is a sweep). A key
/// may be a serde alias (the reference's name); it is set under its canonical key.
pub fn apply_overrides(root: &mut Value, overrides: &[String]) -> Result<()> {
    for o in overrides {
        let (key, raw) = o
            .split_once('=')
            .with_context(|| format!("override {o:?} is not key=value"))?;
        let key = key.trim();
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
        set_key(root, key, value)?;
    }
    Ok(())
}

/// Sets a known key (or a serde alias of one, set under its canonical name) in a config tree.
pub(crate) fn set_key(root: &mut Value, key: &str, value: Value) -> Result<()> {
    let key = if kind_of(key).is_some() {
        key.to_string()
    } else {
        alias_target(key, &value)?.unwrap_or_else(|| key.to_string())
    };
    insert_at(root, &key, value)
}

/// Inserts `value` at a dotted `key`, creating the mappings on the way.
fn insert_at(root: &mut Value, key: &str, value: Value) -> Result<()> {
    let mut node = &mut *root;
    let parts: Vec<&str> = key.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        let obj = node
            .as_object_mut()
            .with_context(|| format!("config key {key}: `{p}` is not a mapping"))?;
        node = obj
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    node.as_object_mut()
        .with_context(|| format!("config key {key}: its parent is not a mapping"))?
        .insert(parts[parts.len() - 1].to_string(), value);
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
                let path = join(prefix, k);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{grid_from_value, single_run};

    fn tree(yaml: &str) -> Value {
        parse_yaml(&format!("baselines: []\n{yaml}"), Path::new("t.yaml")).unwrap()
    }

    #[test]
    fn the_schema_is_the_typed_declaration() {
        let kinds: std::collections::HashMap<&str, Kind> =
            schema().iter().map(|(k, v)| (k.as_str(), *v)).collect();
        for (key, kind) in [
            ("data.path", Kind::Scalar),
            ("data.holdout_batches", Kind::List),
            ("data.simulated.proteins", Kind::Scalar),
            ("model.reg_lambda", Kind::Scalar),
            ("model.reg_alpha", Kind::Scalar),
            ("model.integrate", Kind::Scalar),
            ("model.clip_temperature", Kind::Scalar),
            ("model.predict_projection", Kind::Scalar),
            ("model.gene_programs", Kind::Scalar),
            ("training.schedule", Kind::Scalar),
            ("training.optimizer", Kind::Scalar),
            ("training.device", Kind::Scalar),
            ("model.scvi.n_latent", Kind::Scalar),
            ("model.totalvi.empirical_background_prior", Kind::Scalar),
            ("model.mae.hidden_units", Kind::List),
            ("model.dsbn_bn2", Kind::Scalar),
            ("augmentation", Kind::Free),
            ("training.gradient_clip", Kind::Scalar),
            ("tasks.umap", Kind::Scalar),
            ("seeds", Kind::List),
            ("baselines", Kind::List),
        ] {
            assert_eq!(kinds.get(key), Some(&kind), "{key}");
        }
        // a run's own seed is the grid's `seeds`; input widths and batch counts come from data
        for key in [
            "seed",
            "training.seed",
            "model.input_dims",
            "model.n_batches",
            "model.integration",
            "model.gene_program_sets",
        ] {
            assert!(!kinds.contains_key(key), "{key}");
        }
        // every field of every section, nothing else: as many keys as the default run has
        // leaves (less `training.seed`, plus `seeds` and `baselines`)
        let mut leaves = Vec::new();
        collect_keys(default_tree(), "", &mut leaves);
        assert_eq!(kinds.len(), leaves.len() + 1);
    }

    #[test]
    fn reference_names_are_accepted_as_their_canonical_keys() {
        // serde aliases of MaeParams: `masking_strategy`, `masking_rate`, `decoder`
        let mut v =
            tree("model: {method: mae, mae: {masking_strategy: random, masking_rate: 0.3}}\n");
        check_keys(&mut v, "").unwrap();
        let mae = &v["model"]["mae"];
        assert_eq!(mae["mask_rate"], Value::from(0.3));
        assert!(mae.get("masking_rate").is_none());
        // `random` is the default: nothing to rename, and serde still reads it
        assert_eq!(mae["masking_strategy"], Value::from("random"));
        let g = grid_from_value(v, "t", Path::new(".")).unwrap();
        assert_eq!(g.runs[0].model.mae.mask_rate, 0.3);
        // a sweep over an alias is a sweep over its field
        let g = grid_from_value(
            tree("model: {method: mae, mae: {masking_rate: [0.25, 0.5]}}\n"),
            "t",
            Path::new("."),
        )
        .unwrap();
        let rates: Vec<f64> = g.runs.iter().map(|r| r.model.mae.mask_rate).collect();
        assert_eq!(rates, [0.25, 0.5]);
        // overrides too
        let mut v = tree("model: {method: mae}\n");
        apply_overrides(&mut v, &["model.mae.masking_rate=0.4".into()]).unwrap();
        assert_eq!(v["model"]["mae"]["mask_rate"], Value::from(0.4));
        // one setting named twice is refused
        let mut v = tree("model: {mae: {masking_rate: 0.3, mask_rate: 0.4}}\n");
        let e = check_keys(&mut v, "").unwrap_err().to_string();
        assert!(e.contains("name the same setting"), "{e}");
        // a bad value under an alias names the key
        let mut v = tree("model: {mae: {masking_strategy: everything}}\n");
        let e = check_keys(&mut v, "").unwrap_err().to_string();
        assert!(e.contains("model.mae.masking_strategy"), "{e}");
        // an unknown key is still unknown, with a suggestion
        let mut v = tree("model: {mae: {mask_rat: 0.3}}\n");
        let e = check_keys(&mut v, "").unwrap_err().to_string();
        assert!(e.contains("did you mean `model.mae.mask_rate`"), "{e}");
    }

    #[test]
    fn the_model_and_training_sections_are_the_models_crates_declarations() {
        // the YAML sections deserialise straight into scssl-models' types, in the reference's
        // names, with scssl-models' earlier names as aliases
        let mut v = tree(
            "model: {method: vicreg, integration: mean, reg_lambda: 25, reg_beta: 2}\ntraining: {schedule: 'step:2:0.9', optimizer: adamw, device: cpu}\n",
        );
        check_keys(&mut v, "").unwrap();
        assert_eq!(v["model"]["integrate"], Value::from("mean"));
        let run = grid_from_value(v, "t", Path::new("."))
            .unwrap()
            .runs
            .remove(0);
        let w = run.model.vicreg();
        assert_eq!((w.invariance, w.variance, w.covariance), (25.0, 25.0, 2.0));
        assert_eq!(run.model.integration, scssl_models::Integration::Mean);
        assert_eq!(
            run.training.schedule,
            scssl_models::LrSchedule::Step {
                step_size: 2,
                gamma: 0.9
            }
        );
        assert_eq!(run.training.optimizer, scssl_models::OptimizerKind::AdamW);
        // the defaults are scssl-models' defaults
        let run = RunConfig::with_seed(3);
        assert_eq!(run.model, scssl_models::ModelConfig::default());
        assert_eq!(run.training.seed, 3);
        // a run's seed and the data-derived fields are no config keys
        for (bad, key) in [
            ("training: {seed: 4}\n", "training.seed"),
            ("model: {input_dims: [3, 4]}\n", "model.input_dims"),
            ("model: {n_batches: 2}\n", "model.n_batches"),
            ("model: {n_cell_types: 4}\n", "model.n_cell_types"),
        ] {
            let mut v = tree(bad);
            let e = check_keys(&mut v, "").unwrap_err().to_string();
            assert!(e.contains(&format!("config key `{key}`")), "{bad}: {e}");
        }
        // values are checked as the config is read, naming the key
        for (bad, key) in [
            ("training: {schedule: sometimes}\n", "training.schedule"),
            ("training: {optimizer: rmsprop}\n", "adamw"),
            ("model: {integrate: sum}\n", "model.integrate"),
            ("training: {device: tpu}\n", "tpu"),
        ] {
            let e = grid_from_value(tree(bad), "t", Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn a_single_run_has_the_grid_runs_defaults() {
        for method in ["simclr", "scvi", "mae", "pca"] {
            let yaml = format!("model: {{method: {method}}}\n");
            let grid = grid_from_value(tree(&yaml), "t", Path::new("."))
                .unwrap()
                .runs
                .remove(0);
            let mut root = serde_json::json!({});
            set_key(&mut root, "model.method", Value::from(method)).unwrap();
            let single = single_run(root, 0).unwrap();
            assert_eq!(single.training, grid.training, "{method}");
            assert_eq!(single.model, grid.model, "{method}");
            assert_eq!(single.data, grid.data, "{method}");
        }
        let e = single_run(serde_json::json!({"model": {"hidden_dim": [8, 16]}}), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 runs"), "{e}");
    }
}

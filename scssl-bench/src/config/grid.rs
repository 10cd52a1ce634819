//! Grids: a config file (or tree) expanded into its runs, each checked, with the method
//! training defaults and the baselines added; and the single run of `scssl train`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::RunConfig;
use super::defaults::{DEFAULT_BASELINES, add_baselines, fill_method_training_defaults};
use super::keys::{MAX_GRID_POINTS, apply_overrides, check_keys, expand, parse_yaml};

/// A parsed grid: its name and every run.
#[derive(Debug, Clone)]
pub struct Grid {
    /// Grid name (config `name`, or the file stem).
    pub name: String,
    /// Runs in a stable order.
    pub runs: Vec<RunConfig>,
}

/// Reads a config file, applies overrides, checks keys, expands the grid and checks each run.
/// Relative data paths are resolved against the config file's directory.
pub fn load_grid(path: &Path, overrides: &[String]) -> Result<Grid> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    grid_from_text(&text, path, overrides)
}

/// [`load_grid`] of a config's text; `path` names it in errors, gives the grid its default name
/// and the directory that relative data paths are resolved against.
pub fn grid_from_text(text: &str, path: &Path, overrides: &[String]) -> Result<Grid> {
    let mut root = parse_yaml(text, path)?;
    check_keys(&mut root, "").with_context(|| format!("in {}", path.display()))?;
    apply_overrides(&mut root, overrides)?;
    let name = root
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "grid".into())
        });
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    grid_from_value(root, &name, &base)
}

/// One run from a config tree without sweeps (`scssl train`'s flags and `--set` keys): the
/// same key check, method training defaults and validation as every grid run.
pub fn single_run(mut root: Value, seed: u64) -> Result<RunConfig> {
    check_keys(&mut root, "")?;
    let mut points = expand(&root, "")?;
    if points.len() != 1 {
        bail!(
            "these settings make {} runs (a list is a sweep); `scssl train` trains one model, `scssl grid` runs sweeps",
            points.len()
        );
    }
    let run = run_of_point(points.remove(0), seed, None)?;
    run.validate()?;
    Ok(run)
}

/// The run of one grid point (a mapping without sweeps): its seed (and grid name) set, the
/// `training:` keys it leaves out filled with its method's defaults.
fn run_of_point(mut point: Value, seed: u64, name: Option<&str>) -> Result<RunConfig> {
    // `expand` maps a mapping to mappings, and the root is a mapping (checked by the callers)
    let Some(obj) = point.as_object_mut() else {
        bail!("a grid point is not a mapping");
    };
    let training = obj
        .entry("training")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(training) = training.as_object_mut() else {
        bail!("training: expected a mapping");
    };
    training.insert("seed".into(), Value::from(seed));
    if let Some(name) = name {
        obj.insert("name".into(), Value::from(name));
    }
    fill_method_training_defaults(obj)?;
    Ok(serde_json::from_value(point)?)
}

/// Expands an already-parsed config tree (see [`load_grid`]).
pub fn grid_from_value(mut root: Value, name: &str, base: &Path) -> Result<Grid> {
    if !root.is_object() {
        bail!("config {name}: a config is a mapping");
    }
    check_keys(&mut root, "")?;
    let seeds: Vec<u64> = match root.as_object_mut().and_then(|m| m.remove("seeds")) {
        None => vec![0],
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| s.as_u64().context("seeds: expected non-negative integers"))
            .collect::<Result<_>>()?,
        Some(Value::Number(n)) => vec![
            n.as_u64()
                .context("seeds: expected a non-negative integer")?,
        ],
        Some(_) => bail!("seeds: expected a list of integers"),
    };
    if seeds.is_empty() {
        bail!("seeds: the list is empty");
    }
    let baselines: Vec<String> = match root.as_object_mut().and_then(|m| m.remove("baselines")) {
        None => DEFAULT_BASELINES.iter().map(|s| s.to_string()).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .context("baselines: expected method names, e.g. [pca]")
            })
            .collect::<Result<_>>()?,
        Some(Value::String(s)) => vec![s],
        Some(_) => bail!("baselines: expected a list of method names, e.g. [pca] or []"),
    };
    let mut runs = Vec::new();
    let points = expand(&root, "")?;
    if points.len().saturating_mul(seeds.len()) > MAX_GRID_POINTS {
        bail!(
            "config {name}: {} grid points × {} seeds is more than {MAX_GRID_POINTS} runs",
            points.len(),
            seeds.len()
        );
    }
    for point in points {
        for &seed in &seeds {
            let mut run = run_of_point(point.clone(), seed, Some(name))
                .map_err(|e| anyhow::anyhow!("config {name}: {e}"))?;
            if !run.data.is_simulated() {
                let p = PathBuf::from(&run.data.path);
                if p.is_relative() && !p.exists() && base.join(&p).exists() {
                    run.data.path = base.join(p).display().to_string();
                }
            }
            if let Some(gmt) = &run.model.gene_programs {
                let p = PathBuf::from(gmt);
                if p.is_relative() && !p.exists() && base.join(&p).exists() {
                    run.model.gene_programs = Some(base.join(p).display().to_string());
                }
            }
            if let Some(csv) = &run.model.claire.anchors {
                let p = PathBuf::from(csv);
                if p.is_relative() && !p.exists() && base.join(&p).exists() {
                    run.model.claire.anchors = Some(base.join(p).display().to_string());
                }
            }
            run.validate()
                .with_context(|| format!("config {name}, run {}", run.id()))?;
            runs.push(run);
        }
    }
    add_baselines(&mut runs, &baselines)?;
    Ok(Grid {
        name: name.to_string(),
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grid without the default baselines, unless the YAML names its own (the expansion
    /// tests count the grid's own runs).
    fn grid(yaml: &str, overrides: &[&str]) -> Result<Grid> {
        let yaml = if yaml.contains("baselines") {
            yaml.to_string()
        } else {
            format!("baselines: []\n{yaml}")
        };
        grid_with_baselines(&yaml, overrides)
    }

    fn grid_with_baselines(yaml: &str, overrides: &[&str]) -> Result<Grid> {
        let mut v = parse_yaml(yaml, Path::new("t.yaml"))?;
        check_keys(&mut v, "")?;
        apply_overrides(
            &mut v,
            &overrides.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        grid_from_value(v, "t", Path::new("."))
    }

    #[test]
    fn lists_expand_into_a_grid_and_seeds_multiply() {
        let g = grid(
            "model: {method: [simclr, vicreg], hidden_dim: 32}\naugmentation: [clear, mask_only]\nseeds: [1, 2]\n",
            &[],
        )
        .unwrap();
        assert_eq!(g.runs.len(), 8);
        let ids: std::collections::HashSet<_> = g.runs.iter().map(RunConfig::id).collect();
        assert_eq!(ids.len(), 8, "ids are unique");
        assert!(g.runs.iter().all(|r| r.model.hidden_dim == 32));
    }

    #[test]
    fn batch_correction_grids_get_one_pca_baseline_per_dataset_and_width() {
        let g = grid_with_baselines(
            "model: {method: [simclr, vicreg], hidden_dim: [32, 64]}\nseeds: [1, 2]\n",
            &[],
        )
        .unwrap();
        let pca: Vec<_> = g
            .runs
            .iter()
            .filter(|r| r.model.method.name() == "pca")
            .collect();
        assert_eq!(g.runs.len(), 8 + 2, "{:?}", pca);
        let mut widths: Vec<_> = pca.iter().map(|r| r.model.hidden_dim).collect();
        widths.sort();
        assert_eq!(widths, [32, 64]);
        assert!(
            pca.iter()
                .all(|r| r.seed() == 1 && r.augmentation.label() == "none")
        );
        // a grid that has its own PCA run, or says `baselines: []`, gets none added
        let own = grid_with_baselines("model: {method: [simclr, pca]}\n", &[]).unwrap();
        assert_eq!(own.runs.len(), 2);
        let none = grid_with_baselines("baselines: []\nmodel: {method: simclr}\n", &[]).unwrap();
        assert_eq!(none.runs.len(), 1);
        // annotation-only grids have no scIB table, so no baseline either
        let q = grid_with_baselines(
            "data: {holdout_batches: [b0]}\ntasks: {batch_correction: false, annotation: true}\n",
            &[],
        )
        .unwrap();
        assert_eq!(q.runs.len(), 1);
        let e = grid_with_baselines("baselines: [pcaa]\n", &[]).unwrap_err();
        assert!(
            format!("{e:#}").contains("unknown method \"pcaa\""),
            "{e:#}"
        );
    }

    #[test]
    fn overrides_set_and_sweep() {
        let g = grid(
            "model: {method: simclr}\n",
            &["model.hidden_dim=128", "model.method=simclr,byol"],
        )
        .unwrap();
        assert_eq!(g.runs.len(), 2);
        assert!(g.runs.iter().all(|r| r.model.hidden_dim == 128));
        assert_eq!(g.runs[1].model.method.name(), "byol");
    }

    #[test]
    fn unknown_keys_suggest_the_closest() {
        let e = grid("model: {hiden_dim: 3}\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.hiden_dim") && e.contains("model.hidden_dim"),
            "{e}"
        );
        let e = grid("trainig: {epochs: 3}\n", &[]).unwrap_err().to_string();
        assert!(e.contains("training"), "{e}");
        let e = grid("model: {method: simclr}\n", &["model.hiddendim=3"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.hidden_dim"), "{e}");
        // the whole chain ({:#}): the unknown name and the suggestion
        let e = format!("{:#}", grid("model: {method: simclrr}\n", &[]).unwrap_err());
        assert!(e.contains("simclrr") && e.contains("simclr"), "{e}");
    }

    #[test]
    fn a_grid_of_more_than_the_limit_is_refused_before_it_is_built() {
        // 50^4 = 6.25 million points: refused at the key where the product passes the limit
        let fifty: Vec<String> = (1..=50).map(|i| i.to_string()).collect();
        let list = format!("[{}]", fifty.join(", "));
        let yaml = format!(
            "model: {{hidden_dim: {list}, dropout: {list}}}\ntraining: {{epochs: {list}, lr: {list}}}\n"
        );
        let e = format!("{:#}", grid(&yaml, &[]).unwrap_err());
        assert!(e.contains("limit is 100000"), "{e}");
        // 50 points × 40 seeds is a grid; 2,500 points × 41 seeds (102,500 runs) is not
        let seeds = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
        let ok = format!("model: {{hidden_dim: {list}}}\nseeds: [{}]\n", seeds(40));
        assert_eq!(grid(&ok, &[]).unwrap().runs.len(), 2000);
        let too_many = format!(
            "model: {{hidden_dim: {list}}}\ntraining: {{epochs: {list}}}\nseeds: [{}]\n",
            seeds(41)
        );
        let e = format!("{:#}", grid(&too_many, &[]).unwrap_err());
        assert!(e.contains("41 seeds"), "{e}");
    }

    #[test]
    fn holdout_lists_are_values_and_lists_of_lists_sweep() {
        let g = grid(
            "data: {holdout_batches: [[batch_1], [batch_2]]}\ntasks: {annotation: true}\n",
            &[],
        )
        .unwrap();
        assert_eq!(g.runs.len(), 2);
        assert_eq!(g.runs[1].data.holdout_batches, vec!["batch_2".to_string()]);
        let g = grid(
            "data: {holdout_batches: [batch_1, batch_2]}\ntasks: {annotation: true}\n",
            &[],
        )
        .unwrap();
        assert_eq!(g.runs.len(), 1);
    }
}

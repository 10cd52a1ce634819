//! One experiment, start to finish: data → preprocessing → training → embedding → the three
//! tasks, written into its run directory. `scssl run-one DIR` calls [`run_one`] in its own
//! process, so a crash or an out-of-memory kill marks only that run failed.

use std::borrow::Cow;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::json;

use scssl_data::anndata::AnnData;
use scssl_data::matrix::Matrix;
use scssl_data::{io, pp, sim};
use scssl_metrics::report::{EvalInput, Metric, evaluate};

use crate::config::RunConfig;
use crate::store::{RunDir, RunState, npy_bytes, peak_rss_mb, write_atomic, write_json};
use crate::train::{embed_matrices, train_on};
use scssl_models::features::{
    FeatureOptions, Features, ProteinTransform, batch_codes_for, counts_for, features_for,
    into_training_features, resolve_anchors, resolve_gene_programs, training_features,
};

/// Loads a run's dataset (simulated or from its file).
pub fn load_data(run: &RunConfig) -> Result<AnnData> {
    let d = &run.data;
    if d.is_simulated() {
        let s = &d.simulated;
        return Ok(sim::simulate(&sim::SimConfig {
            n_cells: s.cells,
            n_genes: s.genes,
            n_batches: s.batches,
            n_cell_types: s.cell_types,
            n_proteins: s.proteins,
            seed: s.seed,
            ..Default::default()
        })?);
    }
    io::read_counts(
        &d.path,
        &scssl_data::CountsSource::from_option(d.counts_layer.as_deref()),
    )
    .with_context(|| format!("reading data.path {}", d.path))
}

/// Checks a dataset against a run's config: obs keys, protein key, hold-out batches.
pub fn check_data(run: &RunConfig, ad: &AnnData) -> Result<()> {
    let d = &run.data;
    for (what, key) in [
        ("data.batch_key", &d.batch_key),
        ("data.label_key", &d.label_key),
    ] {
        ad.obs_groups(key)
            .with_context(|| format!("{what} {key:?} in {}", d.display_name()))?;
    }
    if let Some(k) = &d.protein_key {
        ad.obsm_get(k)
            .with_context(|| format!("data.protein_key {k:?} in {}", d.display_name()))?;
    }
    if !d.holdout_batches.is_empty() {
        let g = ad.obs_groups(&d.batch_key)?;
        for b in &d.holdout_batches {
            if !g.names.contains(b) {
                bail!(
                    "data.holdout_batches: batch {b:?} is not in obs[{:?}] of {} (batches: {})",
                    d.batch_key,
                    d.display_name(),
                    g.names.join(", ")
                );
            }
        }
        if d.holdout_batches.len() >= g.names.len() {
            bail!("data.holdout_batches holds every batch: no reference cells remain");
        }
    }
    Ok(())
}

fn feature_options(run: &RunConfig) -> FeatureOptions {
    FeatureOptions {
        batch_key: Some(run.data.batch_key.clone()),
        n_hvg: run.data.n_hvg,
        counts_layer: run.data.counts_layer.clone(),
        protein_key: run.data.protein_key.clone(),
        protein_transform: run.data.protein_transform,
        ..Default::default()
    }
}

#[derive(Serialize)]
struct Timing {
    wall_seconds: f64,
    train_seconds: f64,
    peak_rss_mb: f64,
    threads: usize,
}

/// Reports the run's stage for progress bars. Best effort: a progress file that cannot be
/// written must not fail the experiment.
fn stage_progress(dir: &RunDir, stage: &str, epoch: usize, epochs: usize) {
    let p = crate::store::RunProgress {
        stage: stage.to_string(),
        epoch,
        epochs,
    };
    if let Err(e) = dir.set_progress(&p) {
        tracing::debug!("progress of {}: {e:#}", dir.path.display());
    }
}

/// Trains `run`'s model on `ad` (its features built as the method needs: raw counts kept for a
/// count likelihood, the protein as counts for totalVI, gene programmes mapped onto the kept
/// genes) and returns it with its features. `scssl train` and grid runs both train here. A
/// dataset given by value hands its X to the features instead of a copy (`scssl train` at a
/// million cells: one matrix in memory, not two).
pub fn train_run(
    run: &RunConfig,
    ad: Cow<'_, AnnData>,
    on_event: impl FnMut(&scssl_models::TrainEvent),
) -> Result<(scssl_models::TrainedModel, Features)> {
    let mut options = feature_options(run);
    let probe = run.model_config(1)?;
    let needs = probe.method.needs(&probe);
    options.keep_counts = needs.counts;
    if needs.protein_counts {
        // totalVI models the protein counts themselves
        options.protein_transform = ProteinTransform::AsIs;
    }
    let batches = ad.obs_groups(&run.data.batch_key)?.codes;
    let obs_names = ad.obs.index.clone();
    let n_cell_types = ad
        .obs_groups(&run.data.label_key)
        .ok()
        .map(|labels| labels.names.len());
    let feats = match ad {
        Cow::Borrowed(ad) => training_features(ad, &options)?,
        Cow::Owned(ad) => into_training_features(ad, &options)?,
    };
    let mut model = run.model_config(feats.matrices[0].ncols())?;
    resolve_gene_programs(&mut model, &feats.spec.genes)?;
    resolve_anchors(&mut model, &obs_names)?;
    if let Some(n) = n_cell_types {
        model.n_cell_types = n;
    }
    let training = run.train_config()?;
    let trained = train_on(
        &feats.matrices,
        feats.counts.as_ref(),
        &batches,
        model,
        &training,
        &run.augmentation,
        on_event,
    )?;
    Ok((trained, feats))
}

/// Trains on `ad` in a run directory (stage progress, the training curve) and returns the
/// model with its feature spec.
fn train_model(
    run: &RunConfig,
    ad: &AnnData,
    dir: &RunDir,
    tag: &str,
) -> Result<(scssl_models::TrainedModel, Features)> {
    stage_progress(dir, "preprocessing", 0, 0);
    let stage = if tag.is_empty() {
        "training".to_string()
    } else {
        format!("training ({})", tag.trim_start_matches('_'))
    };
    let epochs = run.training.epochs;
    let mut started = false;
    let (trained, feats) = train_run(run, Cow::Borrowed(ad), |e| {
        if !started {
            started = true;
            stage_progress(dir, &stage, 0, epochs);
        }
        if let scssl_models::train::TrainEvent::Epoch(rec) = e {
            stage_progress(dir, &stage, rec.epoch + 1, epochs);
        }
    })?;
    let mut csv = String::from("epoch,mean_loss,lr,seconds,cells_per_second\n");
    for e in &trained.history.epochs {
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            e.epoch, e.mean_loss, e.lr, e.seconds, e.cells_per_second
        ));
    }
    write_atomic(
        &dir.path.join(format!("training_curve{tag}.csv")),
        csv.as_bytes(),
    )?;
    Ok((trained, feats))
}

/// Runs the experiment in `dir` (its `config.json`) and writes its results. On error the run
/// is marked failed with the message, and the error is returned.
pub fn run_one(dir: &Path) -> Result<()> {
    let rd = RunDir {
        path: dir.to_path_buf(),
    };
    let run = rd.config()?;
    // Another process (e.g. an orphan of an interrupted grid) may hold the run: wait for it,
    // and keep its result if it finished.
    let _lock = loop {
        match rd.lock()? {
            Some(l) => break l,
            None => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    };
    if rd.status().state == RunState::Done {
        return Ok(());
    }
    rd.record_attempt()?;
    rd.set_status(RunState::Running, None)?;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execute(&run, &rd)))
        .unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(anyhow::anyhow!("panicked: {msg}"))
        });
    rd.clear_progress();
    match result {
        Ok(()) => rd.set_status(RunState::Done, None),
        Err(e) => {
            rd.set_status(RunState::Failed, Some(format!("{e:#}")))?;
            Err(e)
        }
    }
}

fn execute(run: &RunConfig, rd: &RunDir) -> Result<()> {
    let start = Instant::now();
    stage_progress(rd, "loading data", 0, 0);
    let ad = load_data(run)?;
    check_data(run, &ad)?;
    let labels = ad.obs_groups(&run.data.label_key)?;
    let batches = ad.obs_groups(&run.data.batch_key)?;
    let mut results = serde_json::Map::new();
    let mut train_seconds = 0.0;
    let projection = run.model.predict_projection;

    if run.tasks.batch_correction {
        let (trained, feats) = train_model(run, &ad, rd, "")?;
        train_seconds += trained.history.seconds;
        let emb = embed_matrices(
            &trained,
            &feats.matrices,
            feats.counts.as_ref(),
            Some(&batches.codes),
            projection,
        )?;
        write_atomic(&rd.path.join("embedding.npy"), &npy_bytes(&emb.joint))?;
        // pre-integration embedding: 50 PCs of the (log-normalised HVG) model input, from the
        // preprocessing when it computed them
        let pre = match &feats.pca {
            Some(p) => p.clone(),
            None => {
                let x = &feats.matrices[0];
                let n_comps = 50.min(x.ncols()).min(x.nrows().saturating_sub(1)).max(1);
                pp::pca(x, n_comps)?.embedding
            }
        };
        stage_progress(rd, "batch-correction metrics", 0, 0);
        let mut metrics = Metric::ALL.to_vec();
        if !run.tasks.kbet {
            metrics.retain(|m| *m != Metric::KbetPerLabel);
        }
        let report = evaluate(
            &EvalInput {
                embedding: emb.joint.view(),
                labels: &labels.codes,
                batches: &batches.codes,
                pre_integration: Some(pre.view()),
            },
            &metrics,
            run.seed(),
        )?;
        results.insert("batch_correction".into(), serde_json::to_value(&report)?);
        if run.tasks.umap {
            stage_progress(rd, "UMAP", 0, 0);
            let layout = scssl_data::umap::umap(
                emb.joint.view(),
                &scssl_data::umap::UmapOptions {
                    seed: run.seed(),
                    ..Default::default()
                },
            )?;
            let colouring = |key: &str, g: &scssl_data::Groups| {
                (
                    key.to_string(),
                    json!({ "codes": g.codes, "names": g.names }),
                )
            };
            write_json(
                &rd.path.join("umap.json"),
                &json!({
                    "layout": layout.iter().copied().collect::<Vec<f32>>(),
                    "n_cells": layout.nrows(),
                    "colourings": serde_json::Map::from_iter([
                        colouring(&run.data.label_key, &labels),
                        colouring(&run.data.batch_key, &batches),
                    ]),
                }),
            )?;
        }
    }

    if run.tasks.annotation || run.tasks.modality_prediction {
        let split = scssl_metrics::query::split_by_batches(
            &batches.codes,
            &batches.names,
            &run.data.holdout_batches,
        )
        .context("data.holdout_batches")?;
        let (r_idx, q_idx) = (split.reference, split.query);
        let reference = ad.select_obs(&r_idx);
        let query = ad.select_obs(&q_idx);
        let (trained, feats) = train_model(run, &reference, rd, "_reference")?;
        train_seconds += trained.history.seconds;
        stage_progress(
            rd,
            "embedding the query, annotation, modality prediction",
            0,
            0,
        );
        let (q_inputs, missing) = features_for(&query, &feats.spec)?;
        let q_counts = match feats.counts {
            Some(_) => Some(counts_for(&query, &feats.spec)?),
            None => None,
        };
        let r_codes = batch_codes_for(&reference, &feats.spec)?;
        let q_codes = batch_codes_for(&query, &feats.spec)?;
        let r_emb = embed_matrices(
            &trained,
            &feats.matrices,
            feats.counts.as_ref(),
            r_codes.as_deref(),
            projection,
        )?;
        let q_emb = embed_matrices(
            &trained,
            &q_inputs,
            q_counts.as_ref(),
            q_codes.as_deref(),
            projection,
        )?;
        let rl: Vec<u32> = r_idx.iter().map(|&i| labels.codes[i]).collect();
        let ql: Vec<u32> = q_idx.iter().map(|&i| labels.codes[i]).collect();
        fn side(e: &scssl_models::Embeddings) -> scssl_metrics::query::SideEmbeddings<'_> {
            scssl_metrics::query::SideEmbeddings {
                joint: e.joint.view(),
                per_modality: e.per_modality.iter().map(|m| m.view()).collect(),
            }
        }
        let (r_side, q_side) = (side(&r_emb), side(&q_emb));
        if run.tasks.annotation {
            let a = scssl_metrics::query::annotate_query(&r_side, &rl, &q_side, &ql)?;
            let mut a = serde_json::to_value(a)?;
            a["missing_genes"] = json!(missing);
            results.insert("annotation".into(), a);
        }
        // a method with its own translator (scButterfly, scTEL) also predicts the protein
        let own_prediction = if run.tasks.modality_prediction {
            trained.config.method.predict_modality(
                &trained.config,
                &trained.tensors,
                q_inputs[0].dense().view(),
            )?
        } else {
            None
        };
        if let Some(pred) = &own_prediction {
            let Some(measured) = q_inputs.get(1) else {
                bail!("tasks.modality_prediction needs the query's protein (data.protein_key)");
            };
            let scores =
                scssl_metrics::annotate::modality_scores(pred.view(), measured.dense().view())?;
            results.insert(
                "modality_prediction_own".into(),
                json!({ "method": trained.config.method.name(), "pearson": scores }),
            );
        }
        if run.tasks.modality_prediction && r_emb.per_modality.len() < 2 {
            if own_prediction.is_none() {
                bail!("tasks.modality_prediction needs a multimodal model (data.protein_key)");
            }
        } else if run.tasks.modality_prediction {
            // the query re-embedded with the predicted protein (a copy: the query stays intact)
            let reembed = |pred: &ndarray::Array2<f32>| -> Result<ndarray::Array2<f32>> {
                let with_pred = vec![q_inputs[0].clone(), Matrix::Dense(pred.clone())];
                Ok(embed_matrices(
                    &trained,
                    &with_pred,
                    q_counts.as_ref(),
                    q_codes.as_deref(),
                    projection,
                )?
                .joint)
            };
            let (_, m) = scssl_metrics::query::predict_query_modality(
                &r_side,
                feats.matrices[1].dense().view(),
                &rl,
                q_emb.per_modality[0].view(),
                q_inputs[1].dense().view(),
                &ql,
                reembed,
            )?;
            results.insert("modality_prediction".into(), serde_json::to_value(m)?);
        }
    }

    write_json(&rd.path.join("metrics.json"), &results)?;
    write_json(
        &rd.path.join("run.json"),
        &json!({
            "id": run.id(),
            "timing": Timing {
                wall_seconds: start.elapsed().as_secs_f64(),
                train_seconds,
                peak_rss_mb: peak_rss_mb(),
                threads: rayon::current_num_threads(),
            },
            "versions": {
                "scssl": env!("CARGO_PKG_VERSION"),
                "burn": "0.21.0",
            },
            "seeds": { "run": run.seed(), "simulator": run.data.simulated.seed },
        }),
    )?;
    Ok(())
}

/// Checks every run of a grid before anything trains: config values, files, obs keys,
/// hold-out batches. Each distinct dataset is read once.
pub fn preflight(runs: &[RunConfig]) -> Result<()> {
    let mut seen: std::collections::HashMap<String, AnnData> = Default::default();
    for run in runs {
        run.validate()?;
        let key = serde_json::to_string(&run.data.simulated)? + &run.data.path;
        if !seen.contains_key(&key) {
            if !run.data.is_simulated() && !Path::new(&run.data.path).exists() {
                bail!(
                    "data.path {} does not exist (run {})",
                    run.data.path,
                    run.id()
                );
            }
            let ad = if run.data.is_simulated() {
                // a small stand-in with the same obs schema is enough to check keys
                load_data(&RunConfig {
                    data: crate::config::DataConfig {
                        simulated: crate::config::SimulatedData {
                            cells: 200.max(run.data.simulated.batches * 20),
                            genes: 50,
                            ..run.data.simulated.clone()
                        },
                        ..run.data.clone()
                    },
                    ..run.clone()
                })?
            } else {
                load_data(run)?
            };
            if run.tasks.batch_correction {
                for (what, col) in [
                    ("batch", &run.data.batch_key),
                    ("cell type", &run.data.label_key),
                ] {
                    if ad.obs_groups(col).is_ok_and(|g| g.names.len() < 2) {
                        tracing::warn!(
                            "{} has a single {what} (obs[{col:?}]): its {} metrics are undefined and shown as –, and so is Total",
                            run.data.display_name(),
                            if what == "batch" {
                                "batch-correction"
                            } else {
                                "bio-conservation"
                            }
                        );
                    }
                }
            }
            seen.insert(key.clone(), ad);
        }
        check_data(run, &seen[&key]).with_context(|| format!("run {}", run.id()))?;
    }
    Ok(())
}

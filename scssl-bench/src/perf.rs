//! Timed steps for `cargo xtask perf data` (hidden `scssl perf-step` command). Each prints one
//! JSON line with the seconds spent in the step itself.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::Array2;
use scssl_data::io;
use scssl_data::neighbors::{self, NnDescentParams};
use scssl_data::pp::{self, HvgOptions};

/// Number of query cells whose exact neighbours define recall.
pub const RECALL_QUERIES: usize = 1000;

/// Runs one step: `read FILE`, `pipeline FILE PCA_OUT`, `knn FILE PCA_IN TRUTH_OUT`,
/// `train FILE [EMBEDDING_OUT]`, `export-x FILE OUT`, `agreement FILE EMB…`, and the others
/// named in the error for an unknown step.
pub fn run(step: &str, input: &Path, extra: &[&Path], opts: &PerfOptions) -> Result<String> {
    match step {
        // UMAP of obsm['X_pca'] with umap-learn's defaults; the layout goes to extra[0]
        // (f32 little-endian, cells × 2) for the side that scores both layouts
        "umap" => {
            let out = extra
                .first()
                .context("umap needs an output path for the layout")?;
            let backed = io::read_backed(input)?;
            let x = backed
                .obsm
                .get("X_pca")
                .context("umap needs obsm['X_pca']")?;
            let t = Instant::now();
            let layout = scssl_data::umap::umap(x.view(), &Default::default())?;
            let seconds = t.elapsed().as_secs_f64();
            let bytes: Vec<u8> = layout.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(out, bytes)?;
            Ok(format!(
                "{{\"seconds\": {seconds}, \"cells\": {}}}",
                layout.nrows()
            ))
        }
        "read" => {
            let t = Instant::now();
            let ad = io::read(input)?;
            Ok(format!(
                "{{\"seconds\": {}, \"cells\": {}}}",
                t.elapsed().as_secs_f64(),
                ad.n_obs()
            ))
        }
        "pipeline" => {
            let out = extra
                .first()
                .context("pipeline needs an output path for the PCA")?;
            let mut ad = io::read(input)?;
            let t = Instant::now();
            pp::normalize_total(&mut ad, 1e4)?;
            pp::log1p(&mut ad);
            let t_norm = t.elapsed().as_secs_f64();
            let hvg = pp::highly_variable_genes(
                &ad,
                &HvgOptions {
                    n_top_genes: 1000,
                    batch_key: Some("batch".into()),
                    ..Default::default()
                },
            )?;
            let ad = ad.select_vars(&hvg.highly_variable);
            let t_hvg = t.elapsed().as_secs_f64() - t_norm;
            let pca = pp::pca(&ad.x, 50)?;
            let secs = t.elapsed().as_secs_f64();
            tracing::info!(
                "normalize+log1p {t_norm:.2} s, HVG+subset {t_hvg:.2} s, PCA {:.2} s",
                secs - t_norm - t_hvg
            );
            let bytes: Vec<u8> = pca.embedding.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(out, bytes)?;
            Ok(format!("{{\"seconds\": {secs}}}"))
        }
        "knn" => {
            let (Some(pca_in), Some(truth_out)) = (extra.first(), extra.get(1)) else {
                bail!("knn needs the PCA file and a truth output path")
            };
            let raw = std::fs::read(pca_in)?;
            let vals: Vec<f32> = raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let n = vals.len() / 50;
            let x = Array2::from_shape_vec((n, 50), vals)?;
            let t = Instant::now();
            // parameters can be overridden for tuning sweeps
            let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
            let mut p = NnDescentParams::default();
            if let Some(v) = env("SCSSL_NND_TREES") {
                p.n_trees = Some(v as usize);
            }
            if let Some(v) = env("SCSSL_NND_OVERSAMPLE") {
                p.oversample = v;
            }
            if let Some(v) = env("SCSSL_NND_CANDIDATES") {
                p.max_candidates = v as usize;
            }
            if let Some(v) = env("SCSSL_NND_LEAF") {
                p.leaf_size = v as usize;
            }
            if let Some(v) = env("SCSSL_NND_ITERS") {
                p.n_iters = Some(v as usize);
            }
            if let Some(v) = env("SCSSL_NND_DELTA") {
                p.delta = v;
            }
            let nn = neighbors::knn_nndescent(x.view(), 15, &p)?;
            let secs = t.elapsed().as_secs_f64();
            // exact neighbours of evenly spaced query cells
            let nq = RECALL_QUERIES.min(n);
            let stride = (n / nq).max(1);
            let qs: Vec<usize> = (0..nq).map(|k| k * stride).collect();
            let q = x.select(ndarray::Axis(0), &qs);
            let (idx, _) = neighbors::knn_query(x.view(), q.view(), 15)?;
            let mut hit = 0usize;
            for (k, &i) in qs.iter().enumerate() {
                let truth: std::collections::HashSet<u32> = idx
                    .row(k)
                    .iter()
                    .copied()
                    .filter(|&j| j as usize != i)
                    .take(14)
                    .collect();
                hit += nn
                    .indices
                    .row(i)
                    .iter()
                    .skip(1)
                    .filter(|j| truth.contains(j))
                    .count();
            }
            // the truth file holds each query's row: itself, then its 14 nearest others
            let mut bytes = Vec::with_capacity(nq * 15 * 4);
            for (k, &i) in qs.iter().enumerate() {
                bytes.extend((i as u32).to_le_bytes());
                for j in idx
                    .row(k)
                    .iter()
                    .copied()
                    .filter(|&j| j as usize != i)
                    .take(14)
                {
                    bytes.extend(j.to_le_bytes());
                }
            }
            std::fs::write(truth_out, bytes)?;
            Ok(format!(
                "{{\"seconds\": {secs}, \"recall\": {}}}",
                hit as f64 / (nq * 14) as f64
            ))
        }
        "augment" => {
            // two views of a 256-cell × 4,000-gene batch with the `clear` preset (the same data
            // and cells as conformance/perf_augment.py)
            let (n, g, b) = (2048usize, 4000usize, 256usize);
            let mut state = 0x2545_F491_4F6C_DD1Du64;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32
            };
            let data =
                Array2::from_shape_fn((n, g), |_| if next() < 0.3 { next() * 4.0 } else { 0.0 });
            let cells: Vec<usize> = (0..b).map(|i| (i * 7) % n).collect();
            let pipeline = scssl_augment::Pipeline::preset("clear_as_run", 0)?;
            let ctx = scssl_augment::Context::new(data.view());
            let repeats = 50;
            // a training loop reuses its view buffers
            let mut v0 = Array2::<f32>::zeros((b, g));
            let mut v1 = Array2::<f32>::zeros((b, g));
            pipeline.views_into(&cells, 0, &ctx, v0.view_mut(), v1.view_mut())?;
            let t = Instant::now();
            for epoch in 0..repeats {
                pipeline.views_into(&cells, epoch, &ctx, v0.view_mut(), v1.view_mut())?;
                std::hint::black_box((&v0, &v1));
            }
            Ok(format!(
                "{{\"seconds\": {}, \"threads\": {}}}",
                t.elapsed().as_secs_f64() / repeats as f64,
                rayon::current_num_threads()
            ))
        }
        "metrics-gen" => {
            // a simulated embedding: 30 dimensions, 10 cell types, 4 batches with a batch shift
            let n: usize = extra
                .first()
                .and_then(|p| p.to_str())
                .and_then(|s| s.parse().ok())
                .context("metrics-gen needs a cell count")?;
            let dir = input;
            std::fs::create_dir_all(dir)?;
            let (d, types, batches) = (30usize, 10u32, 4u32);
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ n as u64;
            let mut uniform = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
            };
            let mut normal = move || {
                (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos()
            };
            let centers: Vec<f64> = (0..types as usize * d).map(|_| 3.0 * normal()).collect();
            let shifts: Vec<f64> = (0..batches as usize * d).map(|_| 0.5 * normal()).collect();
            let labels: Vec<u32> = (0..n)
                .map(|i| (i as u32 * 7 + i as u32 / 3) % types)
                .collect();
            let bs: Vec<u32> = (0..n)
                .map(|i| (i as u32 / 5 + i as u32) % batches)
                .collect();
            let mut emb = Vec::with_capacity(n * d);
            let mut pre = Vec::with_capacity(n * d);
            for i in 0..n {
                for j in 0..d {
                    let c = centers[labels[i] as usize * d + j];
                    let sh = shifts[bs[i] as usize * d + j];
                    emb.push((c + sh + normal()) as f32);
                    pre.push((c + 3.0 * sh + normal()) as f32);
                }
            }
            let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            let u32s = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            std::fs::write(dir.join("embedding.f32"), f32s(&emb))?;
            std::fs::write(dir.join("pre.f32"), f32s(&pre))?;
            std::fs::write(dir.join("labels.u32"), u32s(&labels))?;
            std::fs::write(dir.join("batches.u32"), u32s(&bs))?;
            Ok(format!("{{\"cells\": {n}, \"dims\": {d}}}"))
        }
        "train" => {
            // `opts.epochs` epochs of SimCLR or VICReg (h 64, batch 256, `clear_as_run` views
            // as the reference ran them) on X of a log-normalised file, on `opts.device`;
            // views and optimisation both timed. extra[0], when given, receives the eval-mode
            // embedding (f32 little-endian, cells × 64).
            let ad = io::read(input)?;
            // dense, as the PyTorch loops it is compared with hold it
            let x = scssl_data::matrix::Matrix::Dense(ad.x.to_dense());
            let method = scssl_models::MethodRef::parse(&opts.method)?;
            let model = scssl_models::ModelConfig::new(method, x.ncols());
            let training = scssl_models::TrainConfig {
                epochs: opts.epochs,
                seed: opts.seed,
                device: scssl_models::ComputeDevice::parse(&opts.device)?,
                ..Default::default()
            };
            let aug = crate::train::AugmentSpec::Preset("clear_as_run".into());
            let t = Instant::now();
            let trained = crate::train::train_on(
                std::slice::from_ref(&x),
                None,
                &vec![0; x.nrows()],
                model,
                &training,
                &aug,
                |_| {},
            )?;
            let secs = t.elapsed().as_secs_f64();
            let epochs = &trained.history.epochs;
            let best = epochs
                .iter()
                .map(|e| e.seconds)
                .fold(f64::INFINITY, f64::min);
            let cells = (x.nrows() / 256 * 256) as f64;
            let mut embed_seconds = None;
            if let Some(out) = extra.first() {
                let t = Instant::now();
                let emb =
                    trained.embed(&[x.dense().view()], scssl_models::EmbeddingOutput::Backbone)?;
                embed_seconds = Some(t.elapsed().as_secs_f64());
                write_f32(out, emb.joint.iter().copied())?;
            }
            Ok(serde_json::json!({
                "seconds": secs,
                "cells_per_second": cells * epochs.len() as f64 / secs,
                "best_epoch_seconds": best,
                "best_cells_per_second": cells / best,
                "epoch_seconds": epochs.iter().map(|e| e.seconds).collect::<Vec<_>>(),
                "loss": epochs.last().map(|e| e.mean_loss),
                "device": opts.device,
                "method": opts.method,
                "embed_seconds": embed_seconds,
                "threads": rayon::current_num_threads(),
            })
            .to_string())
        }
        "export-x" => {
            // X as dense f32 little-endian (cells × genes) with its shape in OUT.json, for
            // PyTorch loops on machines without anndata
            let out = extra.first().context("export-x needs an output path")?;
            let ad = io::read(input)?;
            let x = ad.x.to_dense();
            write_f32(out, x.iter().copied())?;
            let shape = serde_json::json!({"shape": [x.nrows(), x.ncols()]});
            let mut json = out.as_os_str().to_owned();
            json.push(".json");
            std::fs::write(&json, shape.to_string())?;
            Ok(shape.to_string())
        }
        "agreement" => {
            // cell-type silhouette of each embedding (f32 files, cells × d) and the share of
            // each cell's 15 nearest neighbours that it has in common with the first embedding
            let ad = io::read_backed(input)?;
            let labels = ad.obs.groups("cell_type", "obs")?.codes;
            let n = labels.len();
            let k = 15;
            let mut rows = Vec::new();
            let mut first: Option<neighbors::Neighbors> = None;
            for path in extra {
                let vals = read_f32(path)?;
                if n == 0 || vals.len() % n != 0 {
                    bail!(
                        "{}: {} values is not a multiple of {n} cells",
                        path.display(),
                        vals.len()
                    );
                }
                let x = Array2::from_shape_vec((n, vals.len() / n), vals)?;
                let silhouette =
                    scssl_metrics::silhouette::silhouette_label(x.view(), &labels, None)?;
                let nn = neighbors::knn_exact(x.view(), k + 1)?;
                let overlap = first.as_ref().map(|f| knn_overlap(f, &nn));
                rows.push(serde_json::json!({
                    "embedding": path.display().to_string(),
                    "silhouette_label": silhouette,
                    "knn15_overlap_with_first": overlap,
                }));
                if first.is_none() {
                    first = Some(nn);
                }
            }
            Ok(serde_json::Value::Array(rows).to_string())
        }
        "train-scvi" => {
            // one scVI epoch with the benchmark's settings (8 layers, 30 latent, NB) and
            // scvi-tools' train() defaults (batch 128, the 90/10 split) on the raw counts of
            // every gene of a simulated file
            let ad = io::read(input)?;
            let counts = ad.x.to_dense();
            let batches = ad.obs_groups("batch")?.codes;
            let inputs = vec![scssl_data::matrix::Matrix::Dense(counts.mapv(f32::ln_1p))];
            let counts = scssl_data::matrix::Matrix::Dense(counts);
            let method = scssl_models::MethodRef::parse("scvi")?;
            let model = scssl_models::ModelConfig {
                hidden_dim: 30,
                scvi: scssl_models::ScviParams {
                    n_layers: 8,
                    gene_likelihood: scssl_models::GeneLikelihood::Nb,
                    epoch_rule: false,
                    ..Default::default()
                },
                ..scssl_models::ModelConfig::new(method, counts.ncols())
            };
            let training = scssl_models::TrainConfig {
                epochs: 1,
                ..method.default_training()
            };
            let t = Instant::now();
            let trained = crate::train::train_on(
                &inputs,
                Some(&counts),
                &batches,
                model,
                &training,
                &crate::train::AugmentSpec::Preset("clear".into()),
                |_| {},
            )?;
            let secs = t.elapsed().as_secs_f64();
            let e = &trained.history.epochs[0];
            Ok(format!(
                "{{\"seconds\": {secs}, \"epoch_seconds\": {}, \"cells_per_second\": {}, \"loss\": {}}}",
                e.seconds, e.cells_per_second, e.mean_loss
            ))
        }
        "train-scclip" => {
            // one scCLIP epoch with the fork's network and training settings (ViT 256 × 6
            // layers per modality, batch 256) on a simulated CITE-seq file: RNA normalised to
            // 1e4 + log1p, protein CLR per cell (the method binarises it)
            let mut ad = io::read(input)?;
            let protein = ad
                .obsm_get("protein_expression")
                .context(
                    "train-scclip needs obsm['protein_expression'] (scssl simulate --proteins)",
                )?
                .clone();
            pp::normalize_total(&mut ad, 1e4)?;
            pp::log1p(&mut ad);
            let inputs = vec![
                scssl_data::matrix::Matrix::Dense(ad.x.to_dense()),
                scssl_data::matrix::Matrix::Dense(pp::clr(&protein, pp::ClrAxis::Cells)?),
            ];
            let batches = ad.obs_groups("batch")?.codes;
            let method = scssl_models::MethodRef::parse("scclip")?;
            let model = scssl_models::ModelConfig::new(method, inputs[0].ncols());
            let training = scssl_models::TrainConfig {
                epochs: 1,
                ..method.default_training()
            };
            let t = Instant::now();
            let trained = crate::train::train_on(
                &inputs,
                None,
                &batches,
                model,
                &training,
                &crate::train::AugmentSpec::Preset("clear".into()),
                |_| {},
            )?;
            let secs = t.elapsed().as_secs_f64();
            let e = &trained.history.epochs[0];
            Ok(format!(
                "{{\"seconds\": {secs}, \"epoch_seconds\": {}, \"cells_per_second\": {}, \"loss\": {}}}",
                e.seconds, e.cells_per_second, e.mean_loss
            ))
        }
        "metrics" => {
            let dir = input;
            let f32s = |name: &str| -> Result<Vec<f32>> {
                Ok(std::fs::read(dir.join(name))?
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect())
            };
            let u32s = |name: &str| -> Result<Vec<u32>> {
                Ok(std::fs::read(dir.join(name))?
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect())
            };
            let labels = u32s("labels.u32")?;
            let batches = u32s("batches.u32")?;
            let n = labels.len();
            let x = Array2::from_shape_vec((n, 30), f32s("embedding.f32")?)?;
            let pre = Array2::from_shape_vec((n, 30), f32s("pre.f32")?)?;
            let t = Instant::now();
            let input = scssl_metrics::report::EvalInput {
                embedding: x.view(),
                labels: &labels,
                batches: &batches,
                pre_integration: Some(pre.view()),
            };
            // an optional comma-separated list of metric keys (profiling one metric alone)
            let chosen: Vec<scssl_metrics::report::Metric> = match extra.first() {
                Some(list) => {
                    let list = list.to_string_lossy();
                    list.split(',')
                        .map(|k| {
                            scssl_metrics::registry::REGISTRY
                                .iter()
                                .map(|spec| spec.metric)
                                .find(|m| m.key() == k)
                                .with_context(|| format!("unknown metric '{k}'"))
                        })
                        .collect::<Result<_>>()?
                }
                None => scssl_metrics::report::Metric::ALL.to_vec(),
            };
            let r = scssl_metrics::report::evaluate(&input, &chosen, 0)?;
            let secs = t.elapsed().as_secs_f64();
            // the timing keys in table order, from the metric registry (xtask prints them so)
            let order: Vec<&str> = std::iter::once("neighbors")
                .chain(scssl_metrics::report::Metric::ALL.iter().map(|m| m.key()))
                .collect();
            Ok(serde_json::json!({
                "seconds": secs,
                "timings": r.timings,
                "total": r.total,
                "metrics": r.metrics,
                "order": order,
            })
            .to_string())
        }
        other => bail!(
            "unknown perf step '{other}' (read, pipeline, knn, augment, metrics-gen, metrics, train, train-scvi, train-scclip, export-x, agreement, umap)"
        ),
    }
}

/// Options of the training steps (`scssl perf-step train --device cuda --epochs 5`).
#[derive(Debug, Clone)]
pub struct PerfOptions {
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Epochs.
    pub epochs: usize,
    /// `simclr` or `vicreg` (any two-view method).
    pub method: String,
    /// Training seed.
    pub seed: u64,
}

impl Default for PerfOptions {
    fn default() -> Self {
        PerfOptions {
            device: "cpu".into(),
            epochs: 1,
            method: "simclr".into(),
            seed: 0,
        }
    }
}

fn write_f32(path: &Path, values: impl Iterator<Item = f32>) -> Result<()> {
    let bytes: Vec<u8> = values.flat_map(f32::to_le_bytes).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn read_f32(path: &Path) -> Result<Vec<f32>> {
    Ok(std::fs::read(path)
        .with_context(|| format!("reading {}", path.display()))?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Mean share of each cell's `k` nearest other cells that two neighbour tables agree on
/// (column 0, the cell itself, left out).
fn knn_overlap(a: &neighbors::Neighbors, b: &neighbors::Neighbors) -> f64 {
    let k = a.indices.ncols().min(b.indices.ncols()).saturating_sub(1);
    if k == 0 || a.indices.nrows() == 0 {
        return 0.0;
    }
    let shared: usize = a
        .indices
        .rows()
        .into_iter()
        .zip(b.indices.rows())
        .map(|(ra, rb)| {
            let theirs: std::collections::HashSet<u32> = rb.iter().skip(1).copied().collect();
            ra.iter().skip(1).filter(|j| theirs.contains(j)).count()
        })
        .sum();
    shared as f64 / (k * a.indices.nrows()) as f64
}

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

/// Runs one step: `read FILE`, `pipeline FILE PCA_OUT`, or `knn FILE PCA_IN TRUTH_OUT`.
pub fn run(step: &str, input: &Path, extra: &[&Path]) -> Result<String> {
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
            // one SimCLR epoch (h 64, batch 256, `clear_as_run` views as the reference ran
            // them) on X of a log-normalised file; views and optimisation both timed
            let ad = io::read(input)?;
            let x = ad.x.to_dense();
            let model = scssl_models::ModelConfig::new(
                scssl_models::MethodRef::parse("simclr")?,
                x.ncols(),
            );
            let training = scssl_models::TrainConfig {
                epochs: 1,
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
                scssl_models::ComputeDevice::Cpu,
                |_| {},
            )?;
            let secs = t.elapsed().as_secs_f64();
            let cells = (x.nrows() / 256 * 256) as f64;
            Ok(format!(
                "{{\"seconds\": {secs}, \"cells_per_second\": {}, \"loss\": {}}}",
                cells / secs,
                trained.history.epochs[0].mean_loss
            ))
        }
        "train-scvi" => {
            // one scVI epoch with the benchmark's settings (8 layers, 30 latent, NB) and
            // scvi-tools' train() defaults (batch 128, the 90/10 split) on the raw counts of
            // every gene of a simulated file
            let ad = io::read(input)?;
            let counts = ad.x.to_dense();
            let batches = ad.obs_groups("batch")?.codes;
            let inputs = vec![counts.mapv(f32::ln_1p)];
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
                scssl_models::ComputeDevice::Cpu,
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
            let r =
                scssl_metrics::report::evaluate(&input, &scssl_metrics::report::Metric::ALL, 0)?;
            let secs = t.elapsed().as_secs_f64();
            Ok(
                serde_json::json!({"seconds": secs, "timings": r.timings, "total": r.total})
                    .to_string(),
            )
        }
        other => bail!(
            "unknown perf step '{other}' (read, pipeline, knn, augment, metrics-gen, metrics, train, train-scvi)"
        ),
    }
}

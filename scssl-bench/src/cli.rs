//! The `scssl` command line (simulate, preprocess, inspect, train, embed, eval, annotate,
//! bench, report). It lives in the library so that other binaries — the end-to-end test
//! crate's, a site's wrapper — run exactly the same commands; `anyhow` is used only here, at
//! the command-line edge.

use std::path::PathBuf;

use crate::preprocess::{PreprocessOptions, preprocess_backed, preprocess_file};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use scssl_data::pp::HvgFlavor;
use scssl_data::{io, sim};

#[derive(Parser)]
#[command(name = "scssl", version, about = "Self-supervised learning for single-cell RNA-seq and CITE-seq", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a dataset of raw counts (negative binomial, cell types, batches) and write it.
    Simulate {
        /// Number of cells.
        #[arg(long, default_value_t = 5000)]
        cells: usize,
        /// Number of genes.
        #[arg(long, default_value_t = 2000)]
        genes: usize,
        /// Number of batches.
        #[arg(long, default_value_t = 3)]
        batches: usize,
        /// Number of cell types.
        #[arg(long = "cell-types", default_value_t = 8)]
        cell_types: usize,
        /// Number of proteins (an ADT block in obsm['protein_expression']); 0 for RNA only.
        #[arg(long, default_value_t = 0)]
        proteins: usize,
        /// Random seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output file (.h5ad or .zarr).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Normalise, log-transform, select HVGs and compute PCA (the benchmark's preprocessing).
    Preprocess {
        /// Input file with raw counts (.h5ad or .zarr).
        input: PathBuf,
        /// Output file (.h5ad or .zarr).
        #[arg(short, long)]
        output: PathBuf,
        /// obs column holding the batch; use --no-batch-key for none.
        #[arg(long, default_value = "batch")]
        batch_key: String,
        /// Select HVGs without a batch key.
        #[arg(long, conflicts_with = "batch_key")]
        no_batch_key: bool,
        /// Number of highly variable genes.
        #[arg(long, default_value_t = 2000)]
        n_hvg: usize,
        /// HVG flavour: seurat (log data; the benchmark's) or seurat_v3 (counts).
        #[arg(long, default_value = "seurat", value_parser = ["seurat", "seurat_v3"])]
        flavor: String,
        /// Number of principal components.
        #[arg(long, default_value_t = 50)]
        n_pcs: usize,
        /// Layer holding the raw counts, if not X.
        #[arg(long)]
        counts_layer: Option<String>,
        /// Stream X from disk in chunks (for files larger than memory; seurat flavour, counts in X).
        #[arg(long)]
        backed: bool,
        /// Cells per chunk with --backed.
        #[arg(long, default_value_t = 10_000)]
        chunk_rows: usize,
    },
    /// Score embeddings in obsm with the scIB metric set (one row per embedding).
    Eval {
        /// AnnData file (.h5ad or .zarr).
        input: PathBuf,
        /// obsm key of an embedding to score (repeatable).
        #[arg(long = "embedding", required = true)]
        embeddings: Vec<String>,
        /// obs column of the batch.
        #[arg(long, default_value = "batch")]
        batch_key: String,
        /// obs column of the cell type.
        #[arg(long, default_value = "cell_type")]
        label_key: String,
        /// obsm key of the pre-integration embedding (default: 50 PCs of X, as scib-metrics).
        #[arg(long)]
        pre_embedding: Option<String>,
        /// Also report BRAS (scib-metrics ≥ 0.6's batch silhouette).
        #[arg(long)]
        bras: bool,
        /// Write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the results as CSV here.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Seed (Leiden, approximate kNN).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Query-to-reference cell-type annotation (kNN) on an embedding, and protein prediction.
    Annotate {
        /// AnnData file (.h5ad or .zarr).
        input: PathBuf,
        /// obsm key of the embedding.
        #[arg(long)]
        embedding: String,
        /// obs column of the cell type.
        #[arg(long, default_value = "cell_type")]
        label_key: String,
        /// obs column of the batch.
        #[arg(long, default_value = "batch")]
        batch_key: String,
        /// Batches held out as the query, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        query_batches: Vec<String>,
        /// obsm key of protein measurements, for missing-modality prediction.
        #[arg(long)]
        protein_key: Option<String>,
        /// Neighbours of the classifier.
        #[arg(long, default_value_t = 11)]
        k: usize,
        /// Write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Train an SSL model on a file (raw counts are normalised, log-transformed and reduced
    /// to HVGs first; a log-normalised X is used as stored) and save it to a directory.
    Train {
        /// AnnData file (.h5ad or .zarr).
        input: PathBuf,
        /// simclr, moco, simsiam, nnclr, byol, vicreg or barlowtwins.
        #[arg(long, default_value = "simclr")]
        method: String,
        /// Augmentation preset (clear, clear_as_run, masking_only, mnn_only, bbknn_only, …) or a
        /// JSON file of pipeline steps.
        #[arg(long, default_value = "clear")]
        augment: String,
        /// Epochs.
        #[arg(long, default_value_t = 200)]
        epochs: usize,
        /// Cells per step.
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
        /// Learning rate.
        #[arg(long, default_value_t = 1e-4)]
        lr: f64,
        /// Weight decay.
        #[arg(long, default_value_t = 1e-6)]
        weight_decay: f64,
        /// Learning-rate schedule: step (the reference's ÷10 every 10 epochs), constant, cosine.
        #[arg(long, default_value = "step")]
        schedule: String,
        /// Optimiser: adam (L2 weight decay, as the reference) or adamw.
        #[arg(long, default_value = "adam", value_parser = ["adam", "adamw"])]
        optimizer: String,
        /// Embedding width h.
        #[arg(long, default_value_t = 64)]
        hidden_dim: usize,
        /// Dropout after the encoder.
        #[arg(long, default_value_t = 0.0)]
        dropout: f64,
        /// NT-Xent temperature (SimCLR, MoCo, NNCLR).
        #[arg(long, default_value_t = 0.5)]
        temperature: f64,
        /// HVGs kept when X holds raw counts.
        #[arg(long, default_value_t = 2000)]
        n_hvg: usize,
        /// obs column of the batch.
        #[arg(long, default_value = "batch")]
        batch_key: String,
        /// obsm key of protein values: trains a multimodal (RNA + protein) model.
        #[arg(long)]
        protein_key: Option<String>,
        /// Protein transform: clr, log1p or as_is.
        #[arg(long, default_value = "clr")]
        protein_transform: String,
        /// Multimodal integration: concat, add, mean or clip.
        #[arg(long, default_value = "concat")]
        integrate: String,
        /// cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output model directory.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Embed the cells of a file with a trained model and write the embedding into obsm (in
    /// place).
    Embed {
        /// AnnData file (.h5ad or .zarr).
        input: PathBuf,
        /// Model directory written by `scssl train`.
        #[arg(long)]
        model: PathBuf,
        /// obsm key to write.
        #[arg(long, default_value = "X_scssl")]
        key: String,
        /// Write the projector output instead of the backbone output.
        #[arg(long)]
        projection: bool,
    },
    /// Run a grid of experiments from a YAML config (dataset × method × augmentation × seed),
    /// skipping finished runs, then write the report.
    Bench {
        /// Config file (YAML).
        config: PathBuf,
        /// `key=value` overrides, e.g. `model.hidden_dim=128` or `model.method=simclr,vicreg`.
        overrides: Vec<String>,
        /// Result store directory.
        #[arg(long, default_value = "results/bench")]
        out: PathBuf,
        /// Experiments run at once (local executor).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// local or slurm.
        #[arg(long, default_value = "local", value_parser = ["local", "slurm"])]
        executor: String,
        /// Re-run failed runs.
        #[arg(long)]
        retry_failed: bool,
        /// Slurm: CPUs per task.
        #[arg(long, default_value_t = 4)]
        slurm_cpus: usize,
        /// Slurm: memory per task.
        #[arg(long, default_value = "16G")]
        slurm_mem: String,
        /// Slurm: time limit per task.
        #[arg(long, default_value = "04:00:00")]
        slurm_time: String,
        /// Slurm: partition.
        #[arg(long)]
        slurm_partition: Option<String>,
        /// Slurm: GPUs per task.
        #[arg(long, default_value_t = 0)]
        slurm_gpus: usize,
        /// Slurm: only write the job script, do not call sbatch.
        #[arg(long)]
        no_submit: bool,
        /// Slurm: wait for the job array to finish, then write the report.
        #[arg(long, conflicts_with = "no_submit")]
        slurm_wait: bool,
    },
    /// (internal, used by the executors) run one experiment directory.
    #[command(hide = true)]
    RunOne {
        /// A run directory holding config.json.
        dir: PathBuf,
        /// Run it in a child process and record a crash or kill in its status (Slurm tasks).
        #[arg(long)]
        supervised: bool,
    },
    /// Write the report (CSV, JSON, Markdown, HTML, SVG) of a result store.
    Report {
        /// Result store directory (the --out of `scssl bench`).
        results: PathBuf,
    },
    /// (internal) one timed step of `cargo xtask perf data`.
    #[command(hide = true)]
    PerfStep {
        /// read | pipeline | knn
        step: String,
        /// Input h5ad.
        input: PathBuf,
        /// Step-specific paths.
        extra: Vec<PathBuf>,
    },
    /// Print shapes, X encoding, obs/var columns with category counts, obsm/layers/uns keys.
    Inspect {
        /// File to summarise (.h5ad or .zarr).
        input: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// The grid ran to the end and its report is written; runs that failed make the command fail
/// too (exit status 1), so scripts and CI notice.
fn failed_runs(n: usize, report: &std::path::Path) -> Result<()> {
    if n > 0 {
        anyhow::bail!(
            "{n} run{} failed; the other runs and the report are complete (errors under 'Failed runs' in {}); `--retry-failed` runs them again",
            if n == 1 { "" } else { "s" },
            report.display()
        );
    }
    Ok(())
}

/// Runs the `scssl` command line on the process's arguments and exits with status 1 on error.
///
/// Call it as the first statement of a binary's `main`: it sets `HDF5_USE_FILE_LOCKING`
/// before any other thread exists.
pub fn main() {
    // HDF5's advisory file locks protect nothing here (every output is written under a
    // temporary name and renamed), but a lock inherited by another process makes a file
    // unreadable ("unable to lock file"). Like many h5py users, turn them off unless the user
    // chose otherwise.
    if std::env::var_os("HDF5_USE_FILE_LOCKING").is_none() {
        // SAFETY: documented to be called first in `main`, before any other thread exists.
        unsafe { std::env::set_var("HDF5_USE_FILE_LOCKING", "FALSE") };
    }
    crate::progress::init_logging();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Simulate {
            cells,
            genes,
            batches,
            cell_types,
            proteins,
            seed,
            output,
        } => {
            let cfg = sim::SimConfig {
                n_cells: cells,
                n_genes: genes,
                n_batches: batches,
                n_cell_types: cell_types,
                n_proteins: proteins,
                seed,
                ..Default::default()
            };
            let pb = crate::progress::steps(2, "simulate");
            pb.set_message("sampling counts");
            let ad = sim::simulate(&cfg)?;
            pb.inc(1);
            pb.set_message("writing");
            io::write(&ad, &output).with_context(|| format!("writing {}", output.display()))?;
            pb.finish_and_clear();
            println!(
                "wrote {} ({} cells × {} genes, {} batches, {} cell types{})",
                output.display(),
                cells,
                genes,
                batches,
                cell_types,
                if proteins > 0 {
                    format!(", {proteins} proteins")
                } else {
                    String::new()
                }
            );
        }
        Command::Preprocess {
            input,
            output,
            batch_key,
            no_batch_key,
            n_hvg,
            flavor,
            n_pcs,
            counts_layer,
            backed,
            chunk_rows,
        } => {
            let opts = PreprocessOptions {
                batch_key: if no_batch_key { None } else { Some(batch_key) },
                n_hvg,
                flavor: if flavor == "seurat_v3" {
                    HvgFlavor::SeuratV3
                } else {
                    HvgFlavor::Seurat
                },
                n_pcs,
                counts_layer,
                ..Default::default()
            };
            let s = if backed {
                preprocess_backed(&input, &output, &opts, chunk_rows)?
            } else {
                preprocess_file(&input, &output, &opts)?
            };
            println!(
                "wrote {}: {} cells, {} of {} genes kept as HVGs ({} batch{}), X_pca with {} components ({:.1}% of variance)",
                output.display(),
                s.n_cells,
                s.n_hvg,
                s.n_genes,
                s.n_batches,
                if s.n_batches == 1 { "" } else { "es" },
                s.n_pcs,
                100.0 * s.pca_variance_ratio.iter().sum::<f64>()
            );
        }
        Command::Eval {
            input,
            embeddings,
            batch_key,
            label_key,
            pre_embedding,
            bras,
            json,
            csv,
            seed,
        } => {
            use crate::evaluate::{
                EvalOptions, eval_file, render_table, to_csv, to_json, write_atomic,
            };
            let opts = EvalOptions {
                embeddings,
                batch_key,
                label_key,
                pre_embedding,
                bras,
                seed,
            };
            let reports = eval_file(&input, &opts)?;
            let extra: &[&str] = if bras { &["bras"] } else { &[] };
            print!("{}", render_table(&reports, extra));
            if let Some(p) = json {
                write_atomic(
                    &p,
                    serde_json::to_string_pretty(&to_json(&reports, extra))?.as_bytes(),
                )?;
                println!("wrote {}", p.display());
            }
            if let Some(p) = csv {
                write_atomic(&p, to_csv(&reports, extra).as_bytes())?;
                println!("wrote {}", p.display());
            }
        }
        Command::Annotate {
            input,
            embedding,
            label_key,
            batch_key,
            query_batches,
            protein_key,
            k,
            json,
        } => {
            use crate::evaluate::{
                AnnotateOptions, annotate_file, render_annotation, write_atomic,
            };
            let r = annotate_file(
                &input,
                &AnnotateOptions {
                    embedding,
                    label_key,
                    batch_key,
                    query_batches,
                    protein_key,
                    k,
                    k_protein: 5,
                },
            )?;
            print!("{}", render_annotation(&r));
            if let Some(p) = json {
                write_atomic(&p, serde_json::to_string_pretty(&r)?.as_bytes())?;
                println!("wrote {}", p.display());
            }
        }
        Command::Train {
            input,
            method,
            augment,
            epochs,
            batch_size,
            lr,
            weight_decay,
            schedule,
            optimizer,
            hidden_dim,
            dropout,
            temperature,
            n_hvg,
            batch_key,
            protein_key,
            protein_transform,
            integrate,
            device,
            seed,
            output,
        } => {
            use crate::train::{AugmentSpec, FeatureOptions, ProteinTransform};
            use scssl_models::{
                ComputeDevice, Integration, LrSchedule, Method, ModelConfig, OptimizerKind,
                TrainConfig,
            };
            let model = ModelConfig {
                hidden_dim,
                dropout,
                temperature,
                integration: Integration::parse(&integrate)?,
                ..ModelConfig::new(Method::parse(&method)?, 1)
            };
            let training = TrainConfig {
                epochs,
                batch_size,
                lr,
                weight_decay,
                optimizer: if optimizer == "adamw" {
                    OptimizerKind::AdamW
                } else {
                    OptimizerKind::Adam
                },
                schedule: LrSchedule::parse(&schedule)?,
                seed,
            };
            let augment = if augment.ends_with(".json") {
                let text = std::fs::read_to_string(&augment)
                    .with_context(|| format!("reading {augment}"))?;
                AugmentSpec::Steps(
                    serde_json::from_str(&text).with_context(|| format!("parsing {augment}"))?,
                )
            } else {
                AugmentSpec::Preset(augment)
            };
            augment.config()?;
            let device = ComputeDevice::parse(&device)?;
            let ad = io::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let batches = ad
                .obs_groups(&batch_key)
                .with_context(|| format!("batch key {batch_key:?}"))?
                .codes;
            let feats = crate::train::training_features(
                &ad,
                &FeatureOptions {
                    batch_key: Some(batch_key.clone()),
                    n_hvg,
                    protein_key,
                    protein_transform: ProteinTransform::parse(&protein_transform)?,
                    ..Default::default()
                },
            )?;
            let steps = (ad.n_obs() / batch_size.max(1) * epochs) as u64;
            let pb = crate::progress::bar(steps, &format!("train {method}"));
            let mut trained = crate::train::train_on(
                &feats.matrices,
                &batches,
                model,
                &training,
                &augment,
                device,
                |e| match e {
                    scssl_models::TrainEvent::Step { loss, epoch, .. } => {
                        pb.set_message(format!("epoch {epoch} loss {loss:.4}"));
                        pb.inc(1);
                    }
                    scssl_models::TrainEvent::Epoch(r) => {
                        tracing::debug!(epoch = r.epoch, loss = r.mean_loss, "epoch");
                    }
                },
            )?;
            pb.finish_and_clear();
            trained.metadata = serde_json::json!({
                "features": feats.spec,
                "augment": augment,
                "batch_key": batch_key,
                "source": input.display().to_string(),
            });
            trained.save(&output)?;
            let last = trained.history.epochs.last();
            println!(
                "trained {} on {} cells × {} features for {} epochs ({:.1} s, final loss {:.4}); model in {}",
                method,
                ad.n_obs(),
                feats.matrices.iter().map(|m| m.ncols()).sum::<usize>(),
                epochs,
                trained.history.seconds,
                last.map(|r| r.mean_loss).unwrap_or(f64::NAN),
                output.display()
            );
        }
        Command::Embed {
            input,
            model,
            key,
            projection,
        } => {
            let trained = scssl_models::TrainedModel::load(&model)?;
            let spec: crate::train::FeatureSpec =
                serde_json::from_value(trained.metadata.get("features").cloned().context(
                    "the model has no feature description (not written by scssl train)",
                )?)?;
            let ad = io::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let (inputs, missing) = crate::train::features_for(&ad, &spec)?;
            if missing > 0 {
                eprintln!(
                    "warning: {missing} of the model's {} genes are missing in {}; they are set to 0",
                    spec.genes.len(),
                    input.display()
                );
            }
            let emb = crate::train::embed_matrices(&trained, &inputs, projection)?;
            io::write_obsm(&input, &key, &emb.joint)
                .with_context(|| format!("writing obsm[{key:?}] into {}", input.display()))?;
            println!(
                "wrote obsm[{key:?}] ({} × {}) into {}",
                emb.joint.nrows(),
                emb.joint.ncols(),
                input.display()
            );
        }
        Command::Bench {
            config,
            overrides,
            out,
            jobs,
            executor,
            retry_failed,
            slurm_cpus,
            slurm_mem,
            slurm_time,
            slurm_partition,
            slurm_gpus,
            no_submit,
            slurm_wait,
        } => {
            use crate::executor::{SlurmOptions, plan, run_local, wait_for_slurm, write_slurm};
            let grid = crate::config::load_grid(&config, &overrides)?;
            // every file, key and value is checked before anything trains
            crate::runner::preflight(&grid.runs)?;
            let p = plan(&grid, &out, retry_failed)?;
            println!(
                "grid {}: {} runs ({} finished earlier, {} to run) in {}",
                grid.name,
                grid.runs.len(),
                p.done,
                p.todo.len(),
                out.display()
            );
            let exe = std::env::current_exe()?;
            if executor == "slurm" {
                // GPUs requested for CPU runs sit idle; CUDA runs without a GPU fail
                let cuda_runs = grid
                    .runs
                    .iter()
                    .filter(|r| r.training.device.starts_with("cuda"))
                    .count();
                if slurm_gpus > 0 && cuda_runs == 0 {
                    tracing::warn!(
                        "--slurm-gpus {slurm_gpus} but every run trains on the CPU; set training.device=cuda to use the GPUs"
                    );
                } else if slurm_gpus == 0 && cuda_runs > 0 {
                    tracing::warn!(
                        "{cuda_runs} runs train on CUDA but no GPU is requested; add --slurm-gpus 1"
                    );
                }
                if p.todo.is_empty() {
                    let files = crate::report::write_report(&out)?;
                    println!(
                        "every run is finished; nothing to submit. report: {}",
                        files.html.display()
                    );
                    return Ok(());
                }
                let sub = write_slurm(
                    &exe,
                    &out,
                    &p.todo,
                    &SlurmOptions {
                        cpus: slurm_cpus,
                        mem: slurm_mem,
                        time: slurm_time,
                        partition: slurm_partition,
                        gpus: slurm_gpus,
                        submit: !no_submit,
                    },
                )?;
                println!("job array script: {}", sub.script.display());
                let Some(job) = sub.job_id else {
                    println!(
                        "not submitted; submit it with: sbatch {}",
                        sub.script.display()
                    );
                    return Ok(());
                };
                println!("submitted job array {job} ({} tasks)", p.todo.len());
                if !slurm_wait {
                    println!("when the jobs finish: scssl report {}", out.display());
                    return Ok(());
                }
                let o = wait_for_slurm(&job, &p.todo, std::time::Duration::from_secs(5))?;
                let files = crate::report::write_report(&out)?;
                println!("{}", files.main_table);
                println!(
                    "{} runs done, {} failed, {} unfinished (resubmit with the same command); report: {} (also {})",
                    o.done,
                    o.failed,
                    o.unfinished,
                    files.html.display(),
                    files.markdown.display()
                );
                return failed_runs(o.failed, &files.markdown);
            }
            let o = run_local(&exe, &p.todo, jobs)?;
            let files = crate::report::write_report(&out)?;
            println!("{}", files.main_table);
            println!(
                "{} runs done, {} failed this time; report: {} (also {})",
                o.done,
                o.failed,
                files.html.display(),
                files.markdown.display()
            );
            failed_runs(o.failed, &files.markdown)?;
        }
        Command::RunOne { dir, supervised } => {
            if supervised {
                let threads = std::env::var("RAYON_NUM_THREADS")
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
                    .unwrap_or(1);
                crate::executor::run_supervised(&std::env::current_exe()?, &dir, threads, None)?;
            } else {
                crate::runner::run_one(&dir)?;
            }
        }
        Command::Report { results } => {
            let files = crate::report::write_report(&results)?;
            println!("{}", files.main_table);
            println!(
                "report: {} (also {})",
                files.html.display(),
                files.markdown.display()
            );
        }
        Command::PerfStep { step, input, extra } => {
            let extra: Vec<&std::path::Path> = extra.iter().map(|p| p.as_path()).collect();
            println!("{}", crate::perf::run(&step, &input, &extra)?);
        }
        Command::Inspect { input, json } => {
            let s =
                io::summarize(&input).with_context(|| format!("reading {}", input.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", crate::inspect::render(&s));
            }
        }
    }
    Ok(())
}

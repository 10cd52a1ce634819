//! Model commands: train a model on a file, embed a file with a trained model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use scssl_data::io;
use scssl_models::{ModelConfig, TrainConfig};

/// `--method`'s help: every registered method with its one-line summary.
fn methods_help() -> String {
    let mut s = String::from("Method:");
    for m in scssl_models::MethodRef::all() {
        s.push_str(&format!("\n  {}: {}", m.name(), m.summary()));
    }
    s
}

/// Arguments of `scssl train`.
#[derive(clap::Args)]
pub(super) struct TrainArgs {
    /// AnnData file (.h5ad or .zarr).
    pub(super) input: PathBuf,
    #[arg(long, default_value = "simclr", help = methods_help())]
    pub(super) method: String,
    /// Augmentation preset (clear, clear_as_run, masking_only, mnn_only, bbknn_only, …) or a
    /// JSON file of pipeline steps.
    #[arg(long, default_value = "clear")]
    pub(super) augment: String,
    /// Epochs [default: the method's; 100 for the generic methods, 400 for scVI].
    #[arg(long)]
    pub(super) epochs: Option<usize>,
    /// Cells per step [default: the method's; 256, scVI 128].
    #[arg(long)]
    pub(super) batch_size: Option<usize>,
    /// Learning rate [default: the method's; 1e-4, scVI 1e-3].
    #[arg(long)]
    pub(super) lr: Option<f64>,
    /// Weight decay [default: the method's; 1e-6].
    #[arg(long)]
    pub(super) weight_decay: Option<f64>,
    /// Learning-rate schedule: step (the reference's ÷10 every 10 epochs), step:SIZE:GAMMA,
    /// constant, cosine, cosine:MIN_LR [default: the method's; step, scVI constant, MAE
    /// step:2:0.9].
    #[arg(long)]
    pub(super) schedule: Option<String>,
    /// scVI: hidden layers of the encoder and decoder (the benchmark: 8).
    #[arg(long, default_value_t = scssl_models::ScviParams::default().n_layers)]
    pub(super) n_layers: usize,
    /// scVI: count likelihood, nb, zinb or poisson (the benchmark: nb).
    #[arg(long, default_value = "zinb", value_parser = ["nb", "zinb", "poisson"])]
    pub(super) gene_likelihood: String,
    /// Masked autoencoder: masking, random or gene_program.
    #[arg(long, default_value = "random", value_parser = ["random", "gene_program"])]
    pub(super) masking: String,
    /// Masked autoencoder: share of entries (random) or of gene programmes masked.
    #[arg(long, default_value_t = scssl_models::MaeParams::default().mask_rate)]
    pub(super) mask_rate: f64,
    /// Masked autoencoder: GMT file of gene programmes (for --masking gene_program).
    #[arg(long = "gene-programs", value_name = "GMT")]
    pub(super) gene_programs: Option<String>,
    /// Domain-specific BatchNorm in the backbone (the two-view methods, RNA only).
    #[arg(long)]
    pub(super) dsbn: bool,
    /// DSBN's second BatchNorm: shared-per-subset (the reference branch) or shared-mixed.
    #[arg(long = "dsbn-bn2", default_value = "shared-per-subset", value_parser = ["shared-per-subset", "shared-mixed"])]
    pub(super) dsbn_bn2: String,
    /// Clip the gradients' global norm [default: the method's; none, MAE 1.0].
    #[arg(long)]
    pub(super) gradient_clip: Option<f64>,
    /// Optimiser: adam (L2 weight decay, as the reference) or adamw [default: the method's;
    /// adam, MAE adamw].
    #[arg(long, value_parser = ["adam", "adamw"])]
    pub(super) optimizer: Option<String>,
    /// Embedding width h.
    #[arg(long, default_value_t = ModelConfig::default().hidden_dim)]
    pub(super) hidden_dim: usize,
    /// Dropout after the encoder.
    #[arg(long, default_value_t = ModelConfig::default().dropout)]
    pub(super) dropout: f64,
    /// NT-Xent temperature (SimCLR, MoCo, NNCLR).
    #[arg(long, default_value_t = ModelConfig::default().temperature)]
    pub(super) temperature: f64,
    /// HVGs kept when X holds raw counts.
    #[arg(long, default_value_t = 2000)]
    pub(super) n_hvg: usize,
    /// obs column of the batch.
    #[arg(long, default_value = "batch")]
    pub(super) batch_key: String,
    /// obsm key of protein values: trains a multimodal (RNA + protein) model.
    #[arg(long)]
    pub(super) protein_key: Option<String>,
    /// Where the raw counts are when X does not hold them: a layer name, or `raw` for raw/X
    /// (with raw/var's genes).
    #[arg(long)]
    pub(super) counts_layer: Option<String>,
    /// Protein transform: clr, log1p or as_is.
    #[arg(long, default_value = "clr")]
    pub(super) protein_transform: String,
    /// Multimodal integration: concat, add, mean or clip.
    #[arg(long, default_value = "concat")]
    pub(super) integrate: String,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub(super) device: String,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
    /// Output model directory.
    #[arg(short, long)]
    pub(super) output: PathBuf,
}

/// `scssl train`.
pub(super) fn train(args: TrainArgs) -> Result<()> {
    let TrainArgs {
        input,
        method,
        augment,
        epochs,
        batch_size,
        lr,
        weight_decay,
        schedule,
        n_layers,
        gene_likelihood,
        masking,
        mask_rate,
        gene_programs,
        dsbn,
        dsbn_bn2,
        gradient_clip,
        optimizer,
        hidden_dim,
        dropout,
        temperature,
        n_hvg,
        batch_key,
        protein_key,
        counts_layer,
        protein_transform,
        integrate,
        device,
        seed,
        output,
    } = args;
    use crate::train::{AugmentSpec, FeatureOptions, ProteinTransform};
    use scssl_models::{ComputeDevice, Integration, LrSchedule, MethodRef, OptimizerKind};
    let method_ref = MethodRef::parse(&method)?;
    let mut model = ModelConfig {
        hidden_dim,
        dropout,
        temperature,
        integration: Integration::parse(&integrate)?,
        scvi: scssl_models::ScviParams {
            n_layers,
            gene_likelihood: serde_json::from_value(serde_json::Value::from(gene_likelihood))?,
            ..Default::default()
        },
        mae: scssl_models::MaeParams {
            masking: serde_json::from_value(serde_json::Value::from(masking))?,
            mask_rate,
            ..Default::default()
        },
        dsbn,
        dsbn_bn2: serde_json::from_value(serde_json::Value::from(dsbn_bn2))?,
        ..ModelConfig::new(method_ref, 1)
    };
    // what the flags do not set comes from the method's own training defaults
    let defaults = method_ref.default_training();
    let training = TrainConfig {
        epochs: epochs.unwrap_or(defaults.epochs),
        batch_size: batch_size.unwrap_or(defaults.batch_size),
        lr: lr.unwrap_or(defaults.lr),
        weight_decay: weight_decay.unwrap_or(defaults.weight_decay),
        optimizer: match optimizer.as_deref() {
            Some("adamw") => OptimizerKind::AdamW,
            Some(_) => OptimizerKind::Adam,
            None => defaults.optimizer,
        },
        schedule: match &schedule {
            Some(s) => LrSchedule::parse(s)?,
            None => defaults.schedule,
        },
        seed,
        gradient_clip: gradient_clip.or(defaults.gradient_clip),
    };
    let (epochs, batch_size) = (training.epochs, training.batch_size);
    let augment = if augment.ends_with(".json") {
        let text =
            std::fs::read_to_string(&augment).with_context(|| format!("reading {augment}"))?;
        AugmentSpec::Steps(
            serde_json::from_str(&text).with_context(|| format!("parsing {augment}"))?,
        )
    } else {
        AugmentSpec::Preset(augment)
    };
    augment.config()?;
    let device = ComputeDevice::parse(&device)?;
    let ad = io::read_counts(
        &input,
        &scssl_data::CountsSource::from_option(counts_layer.as_deref()),
    )
    .with_context(|| format!("reading {}", input.display()))?;
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
            // totalVI models the protein counts themselves
            protein_transform: if method_ref.needs(&model).protein_counts {
                ProteinTransform::AsIs
            } else {
                ProteinTransform::parse(&protein_transform)?
            },
            counts_layer,
            keep_counts: method_ref.needs(&model).counts,
            ..Default::default()
        },
    )?;
    crate::train::resolve_gene_programs(&mut model, gene_programs.as_deref(), &feats.spec.genes)?;
    let steps = (ad.n_obs() / batch_size.max(1) * epochs) as u64;
    let pb = crate::progress::bar(steps, &format!("train {method}"));
    let mut trained = crate::train::train_on(
        &feats.matrices,
        feats.counts.as_ref(),
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
    if !trained.config.method.trains() {
        println!(
            "fitted {} on {} cells × {} features ({} components); model in {}",
            method,
            ad.n_obs(),
            feats.matrices.iter().map(|m| m.ncols()).sum::<usize>(),
            trained.config.hidden_dim,
            output.display()
        );
        return Ok(());
    }
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
    Ok(())
}

/// Arguments of `scssl embed`.
#[derive(clap::Args)]
pub(super) struct EmbedArgs {
    /// AnnData file (.h5ad or .zarr).
    pub(super) input: PathBuf,
    /// Model directory written by `scssl train`.
    #[arg(long)]
    pub(super) model: PathBuf,
    /// obsm key to write.
    #[arg(long, default_value = "X_scssl")]
    pub(super) key: String,
    /// Write the projector output instead of the backbone output.
    #[arg(long)]
    pub(super) projection: bool,
}

/// `scssl embed`.
pub(super) fn embed(args: EmbedArgs) -> Result<()> {
    let EmbedArgs {
        input,
        model,
        key,
        projection,
    } = args;
    let trained = scssl_models::TrainedModel::load(&model)?;
    let spec: crate::train::FeatureSpec = serde_json::from_value(
        trained
            .metadata
            .get("features")
            .cloned()
            .context("the model has no feature description (not written by scssl train)")?,
    )?;
    let ad = io::read_counts(
        &input,
        &scssl_data::CountsSource::from_option(spec.counts_layer.as_deref()),
    )
    .with_context(|| format!("reading {}", input.display()))?;
    let (inputs, missing) = crate::train::features_for(&ad, &spec)?;
    if missing > 0 {
        eprintln!(
            "warning: {missing} of the model's {} genes are missing in {}; they are set to 0",
            spec.genes.len(),
            input.display()
        );
    }
    let counts = if trained.config.method.needs(&trained.config).counts {
        Some(crate::train::counts_for(&ad, &spec)?)
    } else {
        None
    };
    let codes = crate::train::batch_codes_for(&ad, &spec)?;
    let emb = crate::train::embed_matrices(
        &trained,
        &inputs,
        counts.as_ref(),
        codes.as_deref(),
        projection,
    )?;
    io::write_obsm(&input, &key, &emb.joint)
        .with_context(|| format!("writing obsm[{key:?}] into {}", input.display()))?;
    println!(
        "wrote obsm[{key:?}] ({} × {}) into {}",
        emb.joint.nrows(),
        emb.joint.ncols(),
        input.display()
    );
    Ok(())
}

//! Model commands: train a model on a file, embed a file with a trained model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use scssl_data::io;

/// `--method`'s help: every registered method with its one-line summary.
fn methods_help() -> String {
    let mut s = String::from("Method:");
    for m in scssl_models::MethodRef::all() {
        s.push_str(&format!("\n  {}: {}", m.name(), m.summary()));
    }
    s
}

/// Arguments of `scssl train`. Every flag is a shorthand for one config key (named in its
/// help), `--set KEY=VALUE` reaches any other; what is not given takes the config's default
/// and the method's training defaults, exactly as in a grid run — the same declaration
/// ([`crate::config::RunConfig`]), validation and training code.
#[derive(clap::Args)]
pub(super) struct TrainArgs {
    /// AnnData file (.h5ad or .zarr) [data.path].
    pub(super) input: PathBuf,
    /// [model.method; default simclr]
    #[arg(long, help = methods_help())]
    pub(super) method: Option<String>,
    /// Augmentation preset (clear, clear_as_run, masking_only, mnn_only, bbknn_only, …) or a
    /// JSON file of pipeline steps [augmentation; default clear].
    #[arg(long)]
    pub(super) augment: Option<String>,
    /// Epochs [training.epochs; default: the method's, 100 for the generic methods, 400 for
    /// scVI].
    #[arg(long)]
    pub(super) epochs: Option<usize>,
    /// Cells per step [training.batch_size; default: the method's, 256, scVI 128].
    #[arg(long)]
    pub(super) batch_size: Option<usize>,
    /// Learning rate [training.lr; default: the method's, 1e-4, scVI 1e-3].
    #[arg(long)]
    pub(super) lr: Option<f64>,
    /// Weight decay [training.weight_decay; default: the method's, 1e-6].
    #[arg(long)]
    pub(super) weight_decay: Option<f64>,
    /// Learning-rate schedule: step (the reference's ÷10 every 10 epochs), step:SIZE:GAMMA,
    /// constant, cosine, cosine:MIN_LR [training.schedule; default: the method's, step, scVI
    /// constant, MAE step:2:0.9].
    #[arg(long)]
    pub(super) schedule: Option<String>,
    /// scVI: hidden layers of the encoder and decoder (the benchmark: 8) [model.scvi.n_layers].
    #[arg(long)]
    pub(super) n_layers: Option<usize>,
    /// scVI: count likelihood, nb, zinb or poisson (the benchmark: nb)
    /// [model.scvi.gene_likelihood].
    #[arg(long, value_parser = ["nb", "zinb", "poisson"])]
    pub(super) gene_likelihood: Option<String>,
    /// Masked autoencoder: masking, random or gene_program [model.mae.masking].
    #[arg(long, value_parser = ["random", "gene_program"])]
    pub(super) masking: Option<String>,
    /// Masked autoencoder: share of entries (random) or of gene programmes masked
    /// [model.mae.mask_rate].
    #[arg(long)]
    pub(super) mask_rate: Option<f64>,
    /// Masked autoencoder: GMT file of gene programmes (for --masking gene_program)
    /// [model.gene_programs].
    #[arg(long = "gene-programs", value_name = "GMT")]
    pub(super) gene_programs: Option<String>,
    /// Domain-specific BatchNorm in the backbone (the two-view methods, RNA only) [model.dsbn].
    #[arg(long)]
    pub(super) dsbn: bool,
    /// DSBN's second BatchNorm: shared-per-subset (the reference branch) or shared-mixed
    /// [model.dsbn_bn2].
    #[arg(long = "dsbn-bn2", value_parser = ["shared-per-subset", "shared-mixed"])]
    pub(super) dsbn_bn2: Option<String>,
    /// Clip the gradients' global norm [training.gradient_clip; default: the method's, none,
    /// MAE 1.0].
    #[arg(long)]
    pub(super) gradient_clip: Option<f64>,
    /// Optimiser: adam (L2 weight decay, as the reference) or adamw [training.optimizer;
    /// default: the method's, adam, MAE adamw].
    #[arg(long, value_parser = ["adam", "adamw"])]
    pub(super) optimizer: Option<String>,
    /// Embedding width h [model.hidden_dim].
    #[arg(long)]
    pub(super) hidden_dim: Option<usize>,
    /// Dropout after the encoder [model.dropout].
    #[arg(long)]
    pub(super) dropout: Option<f64>,
    /// NT-Xent temperature (SimCLR, MoCo, NNCLR) [model.temperature].
    #[arg(long)]
    pub(super) temperature: Option<f64>,
    /// HVGs kept when X holds raw counts [data.n_hvg].
    #[arg(long)]
    pub(super) n_hvg: Option<usize>,
    /// obs column of the batch [data.batch_key].
    #[arg(long)]
    pub(super) batch_key: Option<String>,
    /// obsm key of protein values: trains a multimodal (RNA + protein) model
    /// [data.protein_key].
    #[arg(long)]
    pub(super) protein_key: Option<String>,
    /// Where the raw counts are when X does not hold them: a layer name, or `raw` for raw/X
    /// (with raw/var's genes) [data.counts_layer].
    #[arg(long)]
    pub(super) counts_layer: Option<String>,
    /// Protein transform: clr, log1p or as_is [data.protein_transform].
    #[arg(long)]
    pub(super) protein_transform: Option<String>,
    /// Multimodal integration: concat, add, mean or clip [model.integrate].
    #[arg(long)]
    pub(super) integrate: Option<String>,
    /// cpu, cuda or cuda:N [training.device].
    #[arg(long)]
    pub(super) device: Option<String>,
    /// Seed of every random choice [seed; default 0].
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// Any config key, e.g. `--set model.totalvi.n_latent=10` or `--set model.reg_lambda=25`
    /// (the keys of a grid config; repeatable; one value each: `scssl grid` sweeps).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(super) set: Vec<String>,
    /// Output model directory.
    #[arg(short, long)]
    pub(super) output: PathBuf,
}

impl TrainArgs {
    /// The run these flags describe: each given flag set at its config key, then `--set`,
    /// then the config's defaults and the method's training defaults for the rest.
    fn run_config(&self) -> Result<crate::config::RunConfig> {
        use serde_json::Value;
        let text = |s: &Option<String>| s.as_ref().map(|v| Value::from(v.as_str()));
        let augmentation = match &self.augment {
            Some(a) if a.ends_with(".json") => {
                let raw = std::fs::read_to_string(a).with_context(|| format!("reading {a}"))?;
                Some(serde_json::from_str(&raw).with_context(|| format!("parsing {a}"))?)
            }
            other => text(other),
        };
        let flags: Vec<(&str, Option<Value>)> = vec![
            (
                "data.path",
                Some(Value::from(self.input.display().to_string())),
            ),
            ("data.n_hvg", self.n_hvg.map(Value::from)),
            ("data.batch_key", text(&self.batch_key)),
            ("data.protein_key", text(&self.protein_key)),
            ("data.counts_layer", text(&self.counts_layer)),
            ("data.protein_transform", text(&self.protein_transform)),
            ("model.method", text(&self.method)),
            ("model.hidden_dim", self.hidden_dim.map(Value::from)),
            ("model.dropout", self.dropout.map(Value::from)),
            ("model.temperature", self.temperature.map(Value::from)),
            ("model.integrate", text(&self.integrate)),
            ("model.scvi.n_layers", self.n_layers.map(Value::from)),
            ("model.scvi.gene_likelihood", text(&self.gene_likelihood)),
            ("model.mae.masking", text(&self.masking)),
            ("model.mae.mask_rate", self.mask_rate.map(Value::from)),
            ("model.gene_programs", text(&self.gene_programs)),
            ("model.dsbn", self.dsbn.then_some(Value::Bool(true))),
            ("model.dsbn_bn2", text(&self.dsbn_bn2)),
            ("augmentation", augmentation),
            ("training.epochs", self.epochs.map(Value::from)),
            ("training.batch_size", self.batch_size.map(Value::from)),
            ("training.lr", self.lr.map(Value::from)),
            ("training.weight_decay", self.weight_decay.map(Value::from)),
            ("training.schedule", text(&self.schedule)),
            ("training.optimizer", text(&self.optimizer)),
            (
                "training.gradient_clip",
                self.gradient_clip.map(Value::from),
            ),
            ("training.device", text(&self.device)),
        ];
        let mut root = serde_json::json!({});
        for (key, value) in flags {
            if let Some(value) = value {
                crate::config::set_key(&mut root, key, value)?;
            }
        }
        crate::config::apply_overrides(&mut root, &self.set)?;
        crate::config::single_run(root, self.seed.unwrap_or(0))
    }
}

/// The file a model trains or embeds from. Counts in X: only X and the annotations are read
/// (not the file's layers, such as the `counts` layer `scssl preprocess` writes, which at a
/// million cells is another 5 GB); a counts layer: the whole file, as the features name it.
fn read_model_input(
    input: &std::path::Path,
    counts_layer: Option<&str>,
) -> Result<scssl_data::AnnData> {
    let source = scssl_data::CountsSource::from_option(counts_layer);
    let ad = if source == scssl_data::CountsSource::X {
        io::read_source(input, &source)
    } else {
        io::read_counts(input, &source)
    };
    ad.with_context(|| format!("reading {}", input.display()))
}

/// `scssl train`.
pub(super) fn train(args: TrainArgs) -> Result<()> {
    let run = args.run_config()?;
    let (input, output) = (args.input, args.output);
    let ad = read_model_input(&input, run.data.counts_layer.as_deref())?;
    let method = run.model.method;
    let (epochs, batch_size) = (run.training.epochs, run.training.batch_size);
    let n_obs = ad.n_obs();
    let steps = (n_obs / batch_size.max(1) * epochs) as u64;
    let pb = crate::progress::bar(steps, &format!("train {method}"));
    // by value: X itself becomes the training matrix
    let owned = std::borrow::Cow::Owned(ad);
    let (mut trained, feats) = crate::runner::train_run(&run, owned, |e| match e {
        scssl_models::TrainEvent::Step { loss, epoch, .. } => {
            pb.set_message(format!("epoch {epoch} loss {loss:.4}"));
            pb.inc(1);
        }
        scssl_models::TrainEvent::Epoch(r) => {
            tracing::debug!(epoch = r.epoch, loss = r.mean_loss, "epoch");
        }
    })?;
    pb.finish_and_clear();
    trained.metadata = serde_json::json!({
        "features": feats.spec,
        "augment": run.augmentation,
        "batch_key": run.data.batch_key,
        "source": input.display().to_string(),
        "config": run,
    });
    trained.save(&output)?;
    if !trained.config.method.trains() {
        println!(
            "fitted {} on {} cells × {} features ({} components); model in {}",
            method,
            n_obs,
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
        n_obs,
        feats.matrices.iter().map(|m| m.ncols()).sum::<usize>(),
        trained.history.epochs.len(),
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
    let spec: scssl_models::features::FeatureSpec = serde_json::from_value(
        trained
            .metadata
            .get("features")
            .cloned()
            .context("the model has no feature description (not written by scssl train)")?,
    )?;
    let ad = read_model_input(&input, spec.counts_layer.as_deref())?;
    let counts = if trained.config.method.needs(&trained.config).counts {
        Some(scssl_models::features::counts_for(&ad, &spec)?)
    } else {
        None
    };
    let codes = scssl_models::features::batch_codes_for(&ad, &spec)?;
    // the file is not needed after this: X may become the input itself, without a copy
    let (inputs, missing) = scssl_models::features::into_features(ad, &spec)?;
    if missing > 0 {
        eprintln!(
            "warning: {missing} of the model's {} genes are missing in {}; they are set to 0",
            spec.genes.len(),
            input.display()
        );
    }
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

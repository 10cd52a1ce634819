//! Data commands: simulate, preprocess, eval, annotate, inspect, and the hidden perf step.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use scssl_data::pp::HvgFlavor;
use scssl_data::{io, sim};

use crate::preprocess::{PreprocessOptions, preprocess_backed, preprocess_file};

/// Arguments of `scssl simulate`.
#[derive(clap::Args)]
pub(super) struct SimulateArgs {
    /// Number of cells.
    #[arg(long, default_value_t = 5000)]
    pub(super) cells: usize,
    /// Number of genes.
    #[arg(long, default_value_t = 2000)]
    pub(super) genes: usize,
    /// Number of batches.
    #[arg(long, default_value_t = 3)]
    pub(super) batches: usize,
    /// Number of cell types.
    #[arg(long = "cell-types", default_value_t = 8)]
    pub(super) cell_types: usize,
    /// Number of proteins (an ADT block in obsm['protein_expression']); 0 for RNA only.
    #[arg(long, default_value_t = 0)]
    pub(super) proteins: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
    /// Output file (.h5ad or .zarr).
    #[arg(short, long)]
    pub(super) output: PathBuf,
    /// Also write the cell types' marker programmes as a GMT file (for the masked
    /// autoencoder's gene-programme masking, `model.gene_programs`).
    #[arg(long = "gene-programs", value_name = "GMT")]
    pub(super) gene_programs: Option<PathBuf>,
}

/// Cells per chunk of `scssl simulate` (about 50 MB of counts at 2,000 genes).
const SIMULATE_CHUNK_CELLS: usize = 20_000;

/// `scssl simulate`.
pub(super) fn simulate(args: SimulateArgs) -> Result<()> {
    let SimulateArgs {
        cells,
        genes,
        batches,
        cell_types,
        proteins,
        seed,
        output,
        gene_programs,
    } = args;
    let cfg = sim::SimConfig {
        n_cells: cells,
        n_genes: genes,
        n_batches: batches,
        n_cell_types: cell_types,
        n_proteins: proteins,
        seed,
        ..Default::default()
    };
    // cells are drawn and written a chunk at a time, so memory holds one chunk of counts
    let pb = crate::progress::bar(cells as u64, "simulate (cells)");
    sim::simulate_to(&cfg, &output, SIMULATE_CHUNK_CELLS, &mut |done, _| {
        pb.set_position(done as u64)
    })
    .with_context(|| format!("simulating into {}", output.display()))?;
    if let Some(gmt) = &gene_programs {
        scssl_data::gmt::write_gmt(gmt, &sim::gene_programs(&cfg)?)
            .with_context(|| format!("writing {}", gmt.display()))?;
    }
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
    Ok(())
}

/// Arguments of `scssl preprocess`.
#[derive(clap::Args)]
pub(super) struct PreprocessArgs {
    /// Input file with raw counts (.h5ad or .zarr).
    pub(super) input: PathBuf,
    /// Output file (.h5ad or .zarr).
    #[arg(short, long)]
    pub(super) output: PathBuf,
    /// obs column holding the batch; use --no-batch-key for none.
    #[arg(long, default_value = "batch")]
    pub(super) batch_key: String,
    /// Select HVGs without a batch key.
    #[arg(long, conflicts_with = "batch_key")]
    pub(super) no_batch_key: bool,
    /// Number of highly variable genes.
    #[arg(long, default_value_t = 2000)]
    pub(super) n_hvg: usize,
    /// HVG flavour: seurat (log data; the benchmark's) or seurat_v3 (counts).
    #[arg(long, default_value = "seurat", value_parser = ["seurat", "seurat_v3"])]
    pub(super) flavor: String,
    /// Number of principal components.
    #[arg(long, default_value_t = 50)]
    pub(super) n_pcs: usize,
    /// Layer holding the raw counts, if not X.
    #[arg(long)]
    pub(super) counts_layer: Option<String>,
    /// Stream X from disk in chunks (for files larger than memory; seurat flavour, counts in X).
    #[arg(long)]
    pub(super) backed: bool,
    /// Cells per chunk with --backed.
    #[arg(long, default_value_t = 10_000)]
    pub(super) chunk_rows: usize,
}

/// `scssl preprocess`.
pub(super) fn preprocess(args: PreprocessArgs) -> Result<()> {
    let PreprocessArgs {
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
    } = args;
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
    Ok(())
}

/// Arguments of `scssl eval`.
#[derive(clap::Args)]
pub(super) struct EvalArgs {
    /// AnnData file (.h5ad or .zarr).
    pub(super) input: PathBuf,
    /// obsm key of an embedding to score (repeatable).
    #[arg(long = "embedding", required = true)]
    pub(super) embeddings: Vec<String>,
    /// obs column of the batch.
    #[arg(long, default_value = "batch")]
    pub(super) batch_key: String,
    /// obs column of the cell type.
    #[arg(long, default_value = "cell_type")]
    pub(super) label_key: String,
    /// obsm key of the pre-integration embedding (default: 50 PCs of X, as scib-metrics).
    #[arg(long)]
    pub(super) pre_embedding: Option<String>,
    /// Also report BRAS (scib-metrics ≥ 0.6's batch silhouette).
    #[arg(long)]
    pub(super) bras: bool,
    /// Write the results as JSON here.
    #[arg(long)]
    pub(super) json: Option<PathBuf>,
    /// Write the results as CSV here.
    #[arg(long)]
    pub(super) csv: Option<PathBuf>,
    /// Seed (Leiden, approximate kNN).
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
}

/// `scssl eval`.
pub(super) fn eval(args: EvalArgs) -> Result<()> {
    let EvalArgs {
        input,
        embeddings,
        batch_key,
        label_key,
        pre_embedding,
        bras,
        json,
        csv,
        seed,
    } = args;
    use crate::evaluate::{EvalOptions, eval_file, render_table, to_csv, to_json, write_atomic};
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
    Ok(())
}

/// Arguments of `scssl annotate`.
#[derive(clap::Args)]
pub(super) struct AnnotateArgs {
    /// AnnData file (.h5ad or .zarr).
    pub(super) input: PathBuf,
    /// obsm key of the embedding.
    #[arg(long)]
    pub(super) embedding: String,
    /// obs column of the cell type.
    #[arg(long, default_value = "cell_type")]
    pub(super) label_key: String,
    /// obs column of the batch.
    #[arg(long, default_value = "batch")]
    pub(super) batch_key: String,
    /// Batches held out as the query, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub(super) query_batches: Vec<String>,
    /// obsm key of protein measurements, for missing-modality prediction.
    #[arg(long)]
    pub(super) protein_key: Option<String>,
    /// Neighbours of the classifier.
    #[arg(long, default_value_t = 11)]
    pub(super) k: usize,
    /// Write the results as JSON here.
    #[arg(long)]
    pub(super) json: Option<PathBuf>,
}

/// `scssl annotate`.
pub(super) fn annotate(args: AnnotateArgs) -> Result<()> {
    let AnnotateArgs {
        input,
        embedding,
        label_key,
        batch_key,
        query_batches,
        protein_key,
        k,
        json,
    } = args;
    use crate::evaluate::{AnnotateOptions, annotate_file, render_annotation, write_atomic};
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
    Ok(())
}

/// Arguments of `scssl inspect`.
#[derive(clap::Args)]
pub(super) struct InspectArgs {
    /// File to summarise (.h5ad or .zarr).
    pub(super) input: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

/// `scssl inspect`.
pub(super) fn inspect(args: InspectArgs) -> Result<()> {
    let InspectArgs { input, json } = args;
    let s = io::summarize(&input).with_context(|| format!("reading {}", input.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", crate::inspect::render(&s));
    }
    Ok(())
}

/// Arguments of `scssl convert`.
#[derive(clap::Args)]
pub(super) struct ConvertArgs {
    /// Input file (.h5ad or .zarr).
    pub(super) input: PathBuf,
    /// Output file; its extension chooses the format.
    #[arg(short, long)]
    pub(super) output: PathBuf,
}

/// `scssl convert`: read whole, write whole (under a temporary name, then renamed).
pub(super) fn convert(args: ConvertArgs) -> Result<()> {
    let ConvertArgs { input, output } = args;
    let adata = io::read(&input).with_context(|| format!("reading {}", input.display()))?;
    io::write(&adata, &output).with_context(|| format!("writing {}", output.display()))?;
    println!(
        "wrote {} ({} cells × {} genes)",
        output.display(),
        adata.n_obs(),
        adata.n_vars()
    );
    Ok(())
}

/// Arguments of `scssl umap`.
#[derive(clap::Args)]
pub(super) struct UmapArgs {
    /// AnnData file (.h5ad or .zarr); X is not read.
    pub(super) input: PathBuf,
    /// obsm key of the embedding to lay out (e.g. X_pca, X_scvi).
    #[arg(long)]
    pub(super) embedding: String,
    /// obs columns to colour by, comma-separated (one panel each).
    #[arg(long, value_delimiter = ',', default_value = "cell_type,batch")]
    pub(super) color: Vec<String>,
    /// Write the scatter plot here: .svg, or .png (rendered at 2×).
    #[arg(short, long)]
    pub(super) output: Option<PathBuf>,
    /// obsm key the layout is stored under (in place).
    #[arg(long, default_value = "X_umap")]
    pub(super) key: String,
    /// Do not store the layout in the file.
    #[arg(long)]
    pub(super) no_write: bool,
    /// Neighbours per cell (umap-learn's n_neighbors).
    #[arg(long, default_value_t = 15)]
    pub(super) n_neighbors: usize,
    /// umap-learn's min_dist.
    #[arg(long, default_value_t = 0.1)]
    pub(super) min_dist: f64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
}

/// `scssl umap`.
pub(super) fn umap(args: UmapArgs) -> Result<()> {
    let png = match args
        .output
        .as_ref()
        .map(|o| (o, o.extension().and_then(|e| e.to_str())))
    {
        None => false,
        Some((_, Some(e))) if e.eq_ignore_ascii_case("png") => true,
        Some((_, Some(e))) if e.eq_ignore_ascii_case("svg") => false,
        Some((out, _)) => bail!(
            "-o {}: the plot is written as .svg or .png; name the file so",
            out.display()
        ),
    };
    let backed = io::read_backed(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let emb = backed.obsm.get(&args.embedding).with_context(|| {
        format!(
            "{}: no obsm['{}'] (obsm has: {})",
            args.input.display(),
            args.embedding,
            backed.obsm.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let panels: Vec<(&str, &scssl_data::Column)> = args
        .color
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| Ok((c.as_str(), backed.obs.column(c, "obs")?)))
        .collect::<Result<_, scssl_data::Error>>()
        .with_context(|| format!("in {}", args.input.display()))?;
    let started = std::time::Instant::now();
    let layout = scssl_data::umap::umap(
        emb.view(),
        &scssl_data::umap::UmapOptions {
            n_neighbors: args.n_neighbors,
            min_dist: args.min_dist,
            seed: args.seed,
            ..Default::default()
        },
    )
    .with_context(|| format!("UMAP of obsm['{}']", args.embedding))?;
    tracing::info!(
        "UMAP of {} cells in {:.1} s",
        layout.nrows(),
        started.elapsed().as_secs_f64()
    );
    if let Some(out) = &args.output {
        let title = format!(
            "{}: UMAP of obsm['{}']",
            args.input
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            args.embedding
        );
        let svg = crate::scatter::scatter_svg(layout.view(), &panels, &title);
        if png {
            crate::raster::write_png(out, &svg)?;
        } else {
            scssl_atomic::write_file(out, svg.as_bytes())?;
        }
        println!("wrote {}", out.display());
    }
    if !args.no_write {
        io::write_obsm(&args.input, &args.key, &layout)?;
        println!("stored obsm['{}'] in {}", args.key, args.input.display());
    }
    Ok(())
}

/// Arguments of `scssl perf-step`.
#[derive(clap::Args)]
pub(super) struct PerfStepArgs {
    /// read | pipeline | knn | train | export-x | agreement | …
    pub(super) step: String,
    /// Input h5ad.
    pub(super) input: PathBuf,
    /// Step-specific paths.
    pub(super) extra: Vec<PathBuf>,
    /// Training steps: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub(super) device: String,
    /// Training steps: epochs.
    #[arg(long, default_value_t = 1)]
    pub(super) epochs: usize,
    /// Training steps: the two-view method.
    #[arg(long, default_value = "simclr")]
    pub(super) method: String,
    /// Training steps: seed.
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
}

/// `scssl perf-step`.
pub(super) fn perf_step(args: PerfStepArgs) -> Result<()> {
    let PerfStepArgs {
        step,
        input,
        extra,
        device,
        epochs,
        method,
        seed,
    } = args;
    let extra: Vec<&std::path::Path> = extra.iter().map(|p| p.as_path()).collect();
    let opts = crate::perf::PerfOptions {
        device,
        epochs,
        method,
        seed,
    };
    println!("{}", crate::perf::run(&step, &input, &extra, &opts)?);
    Ok(())
}

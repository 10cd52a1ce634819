//! Grid commands: run a config's grid (locally or on Slurm), one run of it, its report.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::Grid;
use crate::executor::{SlurmOptions, plan, run_local, wait_for_slurm, write_slurm};
use crate::store::RunDir;

/// Arguments of `scssl bench`.
#[derive(clap::Args)]
pub(super) struct BenchArgs {
    /// Config file (YAML).
    pub(super) config: PathBuf,
    /// `key=value` overrides, e.g. `model.hidden_dim=128` or `model.method=simclr,vicreg`.
    pub(super) overrides: Vec<String>,
    /// Result store directory.
    #[arg(long, default_value = "results/bench")]
    pub(super) out: PathBuf,
    /// Experiments run at once (local executor).
    #[arg(long, default_value_t = 1)]
    pub(super) jobs: usize,
    /// local or slurm.
    #[arg(long, default_value = "local", value_parser = ["local", "slurm"])]
    pub(super) executor: String,
    /// Re-run failed runs.
    #[arg(long)]
    pub(super) retry_failed: bool,
    /// Slurm: CPUs per task.
    #[arg(long, default_value_t = 4)]
    pub(super) slurm_cpus: usize,
    /// Slurm: memory per task.
    #[arg(long, default_value = "16G")]
    pub(super) slurm_mem: String,
    /// Slurm: time limit per task.
    #[arg(long, default_value = "04:00:00")]
    pub(super) slurm_time: String,
    /// Slurm: partition.
    #[arg(long)]
    pub(super) slurm_partition: Option<String>,
    /// Slurm: GPUs per task.
    #[arg(long, default_value_t = 0)]
    pub(super) slurm_gpus: usize,
    /// Slurm: only write the job script, do not call sbatch.
    #[arg(long)]
    pub(super) no_submit: bool,
    /// Slurm: wait for the job array to finish, then write the report.
    #[arg(long, conflicts_with = "no_submit")]
    pub(super) slurm_wait: bool,
}

/// `scssl bench`: check the whole grid, plan it against the store, run what is left locally
/// or on Slurm, then report.
pub(super) fn bench(args: BenchArgs) -> Result<()> {
    let grid = crate::config::load_grid(&args.config, &args.overrides)?;
    // every file, key and value is checked before anything trains
    crate::runner::preflight(&grid.runs)?;
    let p = plan(&grid, &args.out, args.retry_failed)?;
    println!(
        "grid {}: {} runs ({} finished earlier, {} to run) in {}",
        grid.name,
        grid.runs.len(),
        p.done,
        p.todo.len(),
        args.out.display()
    );
    let exe = std::env::current_exe()?;
    if args.executor == "slurm" {
        return on_slurm(&args, &grid, &p.todo, &exe);
    }
    let o = run_local(&exe, &p.todo, args.jobs)?;
    finish(
        &args.out,
        &format!("{} runs done, {} failed this time", o.done, o.failed),
        o.failed,
    )
}

/// Submits the pending runs as a job array and, with `--slurm-wait`, follows it and reports.
fn on_slurm(args: &BenchArgs, grid: &Grid, todo: &[RunDir], exe: &Path) -> Result<()> {
    // GPUs requested for CPU runs sit idle; CUDA runs without a GPU fail
    let cuda_runs = grid
        .runs
        .iter()
        .filter(|r| matches!(r.training.device, scssl_models::ComputeDevice::Cuda(_)))
        .count();
    if args.slurm_gpus > 0 && cuda_runs == 0 {
        tracing::warn!(
            "--slurm-gpus {} but every run trains on the CPU; set training.device=cuda to use the GPUs",
            args.slurm_gpus
        );
    } else if args.slurm_gpus == 0 && cuda_runs > 0 {
        tracing::warn!(
            "{cuda_runs} runs train on CUDA but no GPU is requested; add --slurm-gpus 1"
        );
    }
    if todo.is_empty() {
        let files = crate::report::write_report(&args.out)?;
        println!(
            "every run is finished; nothing to submit. report: {}",
            files.html.display()
        );
        return Ok(());
    }
    let sub = write_slurm(
        exe,
        &args.out,
        todo,
        &SlurmOptions {
            cpus: args.slurm_cpus,
            mem: args.slurm_mem.clone(),
            time: args.slurm_time.clone(),
            partition: args.slurm_partition.clone(),
            gpus: args.slurm_gpus,
            submit: !args.no_submit,
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
    println!("submitted job array {job} ({} tasks)", todo.len());
    if !args.slurm_wait {
        println!("when the jobs finish: scssl report {}", args.out.display());
        return Ok(());
    }
    let o = wait_for_slurm(&job, todo, std::time::Duration::from_secs(5))?;
    finish(
        &args.out,
        &format!(
            "{} runs done, {} failed, {} unfinished (resubmit with the same command)",
            o.done, o.failed, o.unfinished
        ),
        o.failed,
    )
}

/// Writes the report, prints its main table, the outcome and where the report is; runs that
/// failed make the command fail too (exit status 1), so scripts and CI notice.
fn finish(out: &Path, outcome: &str, failed: usize) -> Result<()> {
    let files = crate::report::write_report(out)?;
    println!("{}", files.main_table);
    println!(
        "{outcome}; report: {} (also {})",
        files.html.display(),
        files.markdown.display()
    );
    if failed > 0 {
        anyhow::bail!(
            "{failed} run{} failed; the other runs and the report are complete (errors under 'Failed runs' in {}); `--retry-failed` runs them again",
            if failed == 1 { "" } else { "s" },
            files.markdown.display()
        );
    }
    Ok(())
}

/// Arguments of `scssl run-one`.
#[derive(clap::Args)]
pub(super) struct RunOneArgs {
    /// A run directory holding config.json.
    pub(super) dir: PathBuf,
    /// Run it in a child process and record a crash or kill in its status (Slurm tasks).
    #[arg(long)]
    pub(super) supervised: bool,
}

/// `scssl run-one`: one run of a grid, in this process or supervised in a child.
pub(super) fn run_one(args: RunOneArgs) -> Result<()> {
    let RunOneArgs { dir, supervised } = args;
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
    Ok(())
}

/// Arguments of `scssl report`.
#[derive(clap::Args)]
pub(super) struct ReportArgs {
    /// Result store directory (the --out of `scssl bench`).
    pub(super) results: PathBuf,
}

/// `scssl report`: the report of a result store.
pub(super) fn report(args: ReportArgs) -> Result<()> {
    let ReportArgs { results } = args;
    let files = crate::report::write_report(&results)?;
    println!("{}", files.main_table);
    println!(
        "report: {} (also {})",
        files.html.display(),
        files.markdown.display()
    );
    Ok(())
}

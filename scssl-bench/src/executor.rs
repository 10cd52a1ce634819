//! Executors: run a grid's pending runs locally (several child processes at once, progress
//! bars per run and overall) or on Slurm (a job array submitted with `sbatch`). Both call
//! `scssl run-one RUN_DIR` per run, so a crash, NaN loss or out-of-memory kill fails only
//! that run, and finished runs are skipped on every re-run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};

use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::config::Grid;
use crate::store::{RunDir, RunState, write_atomic};

/// What the grid's directories hold before execution.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Runs still to do (pending, failed, or interrupted), in grid order.
    pub todo: Vec<RunDir>,
    /// Runs already finished (skipped).
    pub done: usize,
}

/// Creates every run directory (config written once) and lists what remains to run.
/// `retry_failed` re-runs failed runs; otherwise they are left as they are.
pub fn plan(grid: &Grid, results: &Path, retry_failed: bool) -> Result<Plan> {
    let mut p = Plan::default();
    for run in &grid.runs {
        let dir = RunDir::of(results, run);
        dir.prepare(run)?;
        match dir.status().state {
            RunState::Done => p.done += 1,
            RunState::Failed if !retry_failed => {}
            _ => p.todo.push(dir),
        }
    }
    Ok(p)
}

/// Outcome counts of an execution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Runs that finished.
    pub done: usize,
    /// Runs that failed.
    pub failed: usize,
}

/// Runs `todo` with `jobs` child processes at a time. `exe` is the `scssl` binary.
pub fn run_local(exe: &Path, todo: &[RunDir], jobs: usize) -> Result<Outcome> {
    let jobs = jobs.max(1);
    let mp = MultiProgress::new();
    let overall = mp.add(ProgressBar::new(todo.len() as u64));
    overall.set_style(
        ProgressStyle::with_template(
            "grid [{bar:30}] {pos}/{len} runs ({elapsed}, eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let queue = Mutex::new(todo.iter());
    let outcome = Mutex::new(Outcome::default());
    // Each child uses its share of the cores, so `jobs` runs do not oversubscribe them.
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = (cores / jobs).max(1);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                    let Some(dir) = next else { break };
                    let name = dir
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let pb = mp.add(ProgressBar::new_spinner());
                    pb.set_message(name.clone());
                    pb.enable_steady_tick(std::time::Duration::from_millis(250));
                    let ok = run_child(exe, &dir.path, threads);
                    pb.finish_and_clear();
                    let mut o = outcome.lock().unwrap_or_else(PoisonError::into_inner);
                    match ok {
                        Ok(()) => o.done += 1,
                        Err(e) => {
                            o.failed += 1;
                            tracing::warn!("run {name} failed: {e:#}");
                        }
                    }
                    overall.set_message(format!("{} failed", o.failed));
                    overall.inc(1);
                }
            });
        }
    });
    overall.finish_and_clear();
    Ok(outcome.into_inner().unwrap_or_else(PoisonError::into_inner))
}

fn run_child(exe: &Path, dir: &Path, threads: usize) -> Result<()> {
    let log = std::fs::File::create(dir.join("log.txt"))?;
    let status = Command::new(exe)
        .arg("run-one")
        .arg(dir)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env("MATMUL_NUM_THREADS", threads.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .context("starting scssl run-one")?;
    let rd = RunDir {
        path: dir.to_path_buf(),
    };
    let st = rd.status();
    if status.success() && st.state == RunState::Done {
        return Ok(());
    }
    if st.state != RunState::Failed {
        // the child died without recording why (signal, out of memory)
        let tail: String = std::fs::read_to_string(dir.join("log.txt"))
            .unwrap_or_default()
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        use std::os::unix::process::ExitStatusExt;
        // Ctrl-C or a polite stop interrupts the run; it is left to run again on resume
        if matches!(
            status.signal(),
            Some(libc::SIGINT | libc::SIGTERM | libc::SIGHUP)
        ) {
            rd.set_status(RunState::Pending, None)?;
            bail!("interrupted");
        }
        let why = match status.code() {
            Some(c) => format!("process exited with status {c}"),
            None => "process killed by a signal (out of memory?)".to_string(),
        };
        rd.set_status(RunState::Failed, Some(format!("{why}; log tail: {tail}")))?;
    }
    bail!("{}", rd.status().error.unwrap_or_default())
}

/// Resources of each Slurm array task.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// CPUs per task.
    pub cpus: usize,
    /// Memory per task, e.g. `16G`.
    pub mem: String,
    /// Wall-time limit, e.g. `04:00:00`.
    pub time: String,
    /// Partition (optional).
    pub partition: Option<String>,
    /// GPUs per task (0: none).
    pub gpus: usize,
    /// Submit with `sbatch` (false: only write the script).
    pub submit: bool,
}

/// Writes `RESULTS/slurm/runs.txt` (one run directory per line) and a job-array script that
/// runs line `SLURM_ARRAY_TASK_ID + 1`; submits it with `sbatch` when asked. Results land in
/// the shared result store; `scssl report RESULTS` collects them.
pub fn write_slurm(
    exe: &Path,
    results: &Path,
    todo: &[RunDir],
    opts: &SlurmOptions,
) -> Result<PathBuf> {
    if todo.is_empty() {
        bail!("nothing to submit: every run is finished");
    }
    let dir = results.join("slurm");
    std::fs::create_dir_all(&dir)?;
    let list: String = todo
        .iter()
        .map(|d| {
            std::fs::canonicalize(&d.path)
                .unwrap_or_else(|_| d.path.clone())
                .display()
                .to_string()
                + "\n"
        })
        .collect();
    let list_path = dir.join("runs.txt");
    write_atomic(&list_path, list.as_bytes())?;
    let list_abs = std::fs::canonicalize(&list_path)?;
    let logs = std::fs::canonicalize(&dir)?;
    let mut s = String::from("#!/bin/bash\n");
    s.push_str("#SBATCH --job-name=scssl-bench\n");
    s.push_str(&format!("#SBATCH --array=0-{}\n", todo.len() - 1));
    s.push_str(&format!("#SBATCH --cpus-per-task={}\n", opts.cpus));
    s.push_str(&format!("#SBATCH --mem={}\n", opts.mem));
    s.push_str(&format!("#SBATCH --time={}\n", opts.time));
    s.push_str(&format!(
        "#SBATCH --output={}/task-%a.out\n",
        logs.display()
    ));
    if let Some(p) = &opts.partition {
        s.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    if opts.gpus > 0 {
        s.push_str(&format!("#SBATCH --gres=gpu:{}\n", opts.gpus));
    }
    s.push_str("set -euo pipefail\n");
    s.push_str("export RAYON_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}\n");
    s.push_str("export MATMUL_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}\n");
    s.push_str(&format!(
        "RUN=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {})\n",
        list_abs.display()
    ));
    s.push_str(&format!(
        "exec {} run-one \"$RUN\" 2> \"$RUN/log.txt\"\n",
        std::fs::canonicalize(exe)
            .unwrap_or_else(|_| exe.to_path_buf())
            .display()
    ));
    let script = dir.join("array.sbatch");
    write_atomic(&script, s.as_bytes())?;
    if opts.submit {
        let out = Command::new("sbatch").arg(&script).output().context(
            "running sbatch (is Slurm installed? use --no-submit to only write the script)",
        )?;
        if !out.status.success() {
            bail!(
                "sbatch failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        println!("{}", String::from_utf8_lossy(&out.stdout).trim());
    }
    Ok(script)
}

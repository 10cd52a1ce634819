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
    /// Runs that neither finished nor failed (a Slurm task that was cancelled or hit its time
    /// limit); they are pending again.
    pub unfinished: usize,
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
                    let pb = mp.add(ProgressBar::new(0));
                    pb.set_style(run_style(false));
                    pb.set_prefix(name.clone());
                    pb.set_message("starting");
                    pb.enable_steady_tick(std::time::Duration::from_millis(250));
                    let ok = run_supervised(exe, &dir.path, threads, Some(&pb));
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

/// A run's progress bar: epochs while it trains, else its stage with a spinner.
fn run_style(training: bool) -> ProgressStyle {
    let template = if training {
        "{spinner} {prefix} [{bar:20}] {pos}/{len} epochs · {msg} ({elapsed})"
    } else {
        "{spinner} {prefix} · {msg} ({elapsed})"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Runs `exe run-one DIR` as a child process with `threads` threads and records how it ended:
/// a child that dies without recording an error (a signal, an out-of-memory kill, an abort)
/// marks the run failed with the exit status and the tail of its log; one stopped by
/// SIGINT/SIGTERM/SIGHUP (Ctrl-C, `scancel`, a polite stop) goes back to pending so that a
/// re-run does it. Used by the local executor for every run and by each Slurm array task
/// (`scssl run-one --supervised`).
///
/// With `bar`, the child's stage and epoch (its `progress.json`) are shown there while it runs.
pub fn run_supervised(
    exe: &Path,
    dir: &Path,
    threads: usize,
    bar: Option<&ProgressBar>,
) -> Result<()> {
    // appended, not truncated: a second grid on the same store may start a child for a run
    // that another child is computing (it waits for the lock), and must not erase its log
    let log_path = dir.join("log.txt");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    {
        use std::io::Write;
        writeln!(
            log,
            "== scssl run-one (supervisor pid {})",
            std::process::id()
        )?;
    }
    let mut cmd = Command::new(exe);
    cmd.arg("run-one")
        .arg(dir)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env("MATMUL_NUM_THREADS", threads.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log);
    // An executable that was just written (a rebuilt binary) is briefly "busy" while another
    // thread's freshly forked child still holds its write descriptor: retry a few times.
    let mut tries = 0;
    let mut child = loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => break other.with_context(|| format!("starting {} run-one", exe.display()))?,
        }
    };
    let rd = RunDir {
        path: dir.to_path_buf(),
    };
    let status = match bar {
        None => child.wait().context("waiting for scssl run-one")?,
        Some(pb) => loop {
            if let Some(st) = child.try_wait().context("waiting for scssl run-one")? {
                break st;
            }
            if let Some(p) = rd.progress() {
                // an epoch bar while training, the stage alone otherwise
                if pb.length() != Some(p.epochs as u64) {
                    pb.set_style(run_style(p.epochs > 0));
                    pb.set_length(p.epochs as u64);
                }
                pb.set_position(p.epoch as u64);
                pb.set_message(p.stage);
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        },
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
            None => match status.signal() {
                Some(libc::SIGKILL) => {
                    "process killed by SIGKILL (the out-of-memory killer, or a hard stop)"
                        .to_string()
                }
                Some(libc::SIGABRT) => {
                    "process aborted (SIGABRT: a failed memory allocation or an abort)".to_string()
                }
                Some(libc::SIGSEGV) => "process crashed (SIGSEGV)".to_string(),
                Some(sig) => format!("process killed by a signal ({sig})"),
                None => "process ended without an exit status".to_string(),
            },
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

/// What [`write_slurm`] did.
#[derive(Debug, Clone)]
pub struct SlurmSubmission {
    /// The job-array script.
    pub script: PathBuf,
    /// The array's job id, when it was submitted.
    pub job_id: Option<String>,
}

/// Writes `RESULTS/slurm/runs.txt` (one run directory per line) and a job-array script that
/// runs line `SLURM_ARRAY_TASK_ID + 1`; submits it with `sbatch` when asked. Each task runs
/// `scssl run-one --supervised`, so a task that crashes or is killed for memory records that
/// in the run's status. Results land in the shared result store; `scssl report RESULTS`
/// collects them.
pub fn write_slurm(
    exe: &Path,
    results: &Path,
    todo: &[RunDir],
    opts: &SlurmOptions,
) -> Result<SlurmSubmission> {
    if todo.is_empty() {
        bail!("nothing to submit: every run is finished");
    }
    let dir = results.join("slurm");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
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
        "exec {} run-one --supervised \"$RUN\"\n",
        std::fs::canonicalize(exe)
            .unwrap_or_else(|_| exe.to_path_buf())
            .display()
    ));
    let script = dir.join("array.sbatch");
    write_atomic(&script, s.as_bytes())?;
    let mut job_id = None;
    if opts.submit {
        let out = Command::new("sbatch")
            .arg("--parsable")
            .arg(&script)
            .output()
            .context(
                "running sbatch (is Slurm installed? use --no-submit to only write the script)",
            )?;
        if !out.status.success() {
            bail!(
                "sbatch failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        // `--parsable` prints `JOBID` or `JOBID;CLUSTER`
        let id = String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        if id.is_empty() {
            bail!("sbatch printed no job id");
        }
        job_id = Some(id);
    }
    Ok(SlurmSubmission { script, job_id })
}

/// Waits until Slurm job `job_id` (the whole array) has left the queue, showing how many of
/// `todo` have finished, polling `squeue` every `poll`. Then any run a task left unfinished
/// (cancelled, time limit, node failure: the task could not record it) goes back to pending
/// so that the same command resubmits it. Returns the outcome counts.
pub fn wait_for_slurm(job_id: &str, todo: &[RunDir], poll: std::time::Duration) -> Result<Outcome> {
    let pb = ProgressBar::new(todo.len() as u64);
    pb.set_style(
        ProgressStyle::with_template("slurm job {msg} [{bar:30}] {pos}/{len} runs ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(job_id.to_string());
    let finished = |todo: &[RunDir]| {
        todo.iter()
            .filter(|d| matches!(d.status().state, RunState::Done | RunState::Failed))
            .count() as u64
    };
    loop {
        let out = Command::new("squeue")
            .args(["-h", "-o", "%i", "-j", job_id])
            .output()
            .context("running squeue")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // once the controller has purged the job, squeue calls the id invalid
        let gone = if out.status.success() {
            String::from_utf8_lossy(&out.stdout).trim().is_empty()
        } else if stderr.contains("Invalid job id") {
            true
        } else {
            bail!("squeue -j {job_id} failed: {}", stderr.trim());
        };
        pb.set_position(finished(todo));
        if gone {
            break;
        }
        std::thread::sleep(poll);
    }
    pb.finish_and_clear();
    let mut o = Outcome::default();
    for d in todo {
        match d.status().state {
            RunState::Done => o.done += 1,
            RunState::Failed => o.failed += 1,
            RunState::Pending | RunState::Running => {
                d.set_status(RunState::Pending, None)?;
                o.unfinished += 1;
            }
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for `scssl` that ends the way `body` says (a shell script).
    fn fake_exe(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("fake-scssl");
        std::fs::write(&p, format!("#!/bin/sh\necho 'working on it' >&2\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn run_dir(dir: &Path) -> RunDir {
        let rd = RunDir {
            path: dir.join("run"),
        };
        std::fs::create_dir_all(&rd.path).unwrap();
        rd.set_status(RunState::Running, None).unwrap();
        rd
    }

    #[test]
    fn a_killed_child_is_recorded_as_failed_with_its_log() {
        let d = tempfile::tempdir().unwrap();
        let rd = run_dir(d.path());
        let exe = fake_exe(d.path(), "kill -9 $$");
        let e = run_supervised(&exe, &rd.path, 1, None)
            .unwrap_err()
            .to_string();
        let st = rd.status();
        assert_eq!(st.state, RunState::Failed);
        let why = st.error.unwrap();
        assert!(why.contains("SIGKILL"), "{why}");
        assert!(why.contains("working on it"), "log tail: {why}");
        assert!(e.contains("killed"), "{e}");
    }

    #[test]
    fn an_aborted_child_is_recorded_as_failed() {
        let d = tempfile::tempdir().unwrap();
        let rd = run_dir(d.path());
        let exe = fake_exe(d.path(), "kill -ABRT $$");
        assert!(run_supervised(&exe, &rd.path, 1, None).is_err());
        let st = rd.status();
        assert_eq!(st.state, RunState::Failed);
        assert!(st.error.unwrap().contains("SIGABRT"));
    }

    #[test]
    fn a_crashing_child_is_recorded_with_its_exit_status() {
        let d = tempfile::tempdir().unwrap();
        let rd = run_dir(d.path());
        let exe = fake_exe(d.path(), "exit 101");
        assert!(run_supervised(&exe, &rd.path, 1, None).is_err());
        let st = rd.status();
        assert_eq!(st.state, RunState::Failed);
        assert!(st.error.unwrap().contains("status 101"));
    }

    #[test]
    fn an_interrupted_child_goes_back_to_pending() {
        let d = tempfile::tempdir().unwrap();
        let rd = run_dir(d.path());
        let exe = fake_exe(d.path(), "kill -TERM $$");
        assert!(run_supervised(&exe, &rd.path, 1, None).is_err());
        assert_eq!(rd.status().state, RunState::Pending);
    }

    #[test]
    fn a_child_that_records_its_own_failure_keeps_its_message() {
        let d = tempfile::tempdir().unwrap();
        let rd = run_dir(d.path());
        // the child writes status.json itself (as `run-one` does on a NaN loss), then exits 1
        let status =
            r#"{"state":"failed","error":"loss became NaN at epoch 3","updated":0,"pid":1}"#;
        let exe = fake_exe(
            d.path(),
            &format!("echo '{status}' > \"$2/status.json\"; exit 1"),
        );
        let e = run_supervised(&exe, &rd.path, 1, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("NaN at epoch 3"), "{e}");
        assert_eq!(
            rd.status().error.as_deref(),
            Some("loss became NaN at epoch 3")
        );
    }
}

//! `scssl bench` on Slurm: the job-array script runs a task as Slurm would, and a grid runs to
//! its report on a real one-node cluster when one answers (`bash .ci/slurm-up`).

use std::path::Path;
use std::process::Command;

mod common;
use common::{GRID, bench_cmd, scssl, statuses, write_config};

#[test]
fn slurm_job_array_script_runs_a_task() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), GRID);
    let out = dir.path().join("results");
    let o = bench_cmd(&cfg, &out)
        .args([
            "--executor",
            "slurm",
            "--slurm-cpus",
            "2",
            "--slurm-mem",
            "4G",
            "--no-submit",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let script = std::fs::read_to_string(out.join("slurm/array.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-8"), "{script}");
    assert!(script.contains("--cpus-per-task=2") && script.contains("--mem=4G"));
    assert!(script.contains("run-one --supervised"), "{script}");
    let list = std::fs::read_to_string(out.join("slurm/runs.txt")).unwrap();
    assert_eq!(list.lines().count(), 9);
    // run the first array task's command line by hand, as Slurm would
    let run = list.lines().next().unwrap();
    let o = scssl()
        .args(["run-one", "--supervised"])
        .arg(run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::read_to_string(Path::new(run).join("status.json"))
            .unwrap()
            .contains("\"done\"")
    );
}

/// Why a real Slurm cannot be used here, or `None` when a controller answers with a usable
/// node (`.ci/slurm-up` starts one on localhost).
fn slurm_unavailable() -> Option<String> {
    match Command::new("sinfo").args(["-h", "-o", "%T"]).output() {
        Err(e) => Some(format!("sinfo not found ({e})")),
        Ok(o) if !o.status.success() => Some(format!(
            "sinfo failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(o) => {
            let states = String::from_utf8_lossy(&o.stdout).into_owned();
            if ["idle", "mix", "alloc"].iter().any(|s| states.contains(s)) {
                None
            } else {
                Some(format!("no usable Slurm node (states: {})", states.trim()))
            }
        }
    }
}

#[test]
fn slurm_grid_runs_on_a_real_cluster() {
    if let Some(why) = slurm_unavailable() {
        println!(
            "NOTICE: {why}; the job array is not submitted to a real Slurm here \
             (run .ci/slurm-up as root to start a one-node cluster)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), GRID);
    let out = dir.path().join("results");
    let bench = |extra: &[&str]| {
        let mut child = scssl()
            .arg("bench")
            .arg(&cfg)
            .args(["seeds=0", "--out"])
            .arg(&out)
            .args([
                "--executor",
                "slurm",
                "--slurm-cpus",
                "1",
                "--slurm-mem",
                "1G",
                "--slurm-time",
                "00:10:00",
            ])
            .args(extra)
            // files, not pipes: nobody reads a pipe while the loop below waits
            .stdout(std::fs::File::create(dir.path().join("stdout.txt")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr.txt")).unwrap())
            .spawn()
            .unwrap();
        // a cluster that stops running jobs must fail this test, not hang the suite
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = Command::new("scancel")
                    .args(["--name", "scssl-bench"])
                    .status();
                let queue = Command::new("squeue")
                    .output()
                    .map(|o| o.stdout)
                    .unwrap_or_default();
                panic!(
                    "the Slurm grid did not finish in 600 s; squeue:\n{}",
                    String::from_utf8_lossy(&queue)
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let status = child.wait().unwrap();
        let stdout = std::fs::read_to_string(dir.path().join("stdout.txt")).unwrap();
        let stderr = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap();
        assert!(status.success(), "{stdout}\n{stderr}");
        stdout
    };
    let stdout = bench(&["--slurm-wait"]);
    assert!(stdout.contains("submitted job array"), "{stdout}");
    assert!(
        stdout.contains("5 runs done, 0 failed, 0 unfinished"),
        "{stdout}"
    );
    assert!(out.join("report/report.html").exists());
    // 2 methods × 2 augmentations, and the PCA baseline
    assert_eq!(statuses(&out).len(), 5);
    assert!(statuses(&out).iter().all(|(_, s)| s.contains("\"done\"")));
    // each task wrote its Slurm log next to the script
    for t in 0..5 {
        assert!(
            out.join(format!("slurm/task-{t}.out")).exists(),
            "task {t} log"
        );
    }
    // a finished grid submits nothing again
    let stdout = bench(&[]);
    assert!(stdout.contains("5 finished earlier, 0 to run"), "{stdout}");
    assert!(!stdout.contains("submitted"), "{stdout}");
}

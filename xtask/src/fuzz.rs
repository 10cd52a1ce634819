//! `cargo xtask fuzz`: runs every `cargo fuzz` target of `fuzz/` for N minutes and prints a
//! table (target, minutes, executions, crashes); `--seeds` rewrites the seed corpora;
//! `--sweep` runs the damaged-file sweep (`tests/tests/damaged_files.rs`).
//!
//! cargo-fuzz needs nightly compiler flags (`-Zsanitizer`): a `nightly` rustup toolchain is
//! used when there is one, otherwise the stable compiler with `RUSTC_BOOTSTRAP=1`. The
//! fuzzer's growing corpus and its crash artifacts live under the target directory, never in
//! the repository; a crash found is minimised into `fuzz/regressions/<target>/` by hand and
//! replayed by `tests/tests/fuzz_corpus.rs`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::{Result, arg_value, cargo, root, run_status, target_dir};

/// The targets, in the order they run (the names of `fuzz/fuzz_targets/*.rs`).
const TARGETS: &[&str] = &["h5ad_read", "zarr_read", "config_grid", "augment_config"];

pub(crate) fn run(args: &[String]) -> Result {
    if args.iter().any(|a| a == "--seeds") {
        let mut c = cargo();
        c.args(["run", "--quiet", "-p", "scssl-tests", "--bin", "fuzz-seeds"]);
        return run_status(c, "fuzz-seeds");
    }
    if args.iter().any(|a| a == "--sweep") {
        let mut c = cargo();
        c.args([
            "test",
            "-p",
            "scssl-tests",
            "--test",
            "damaged_files",
            "--",
            "--nocapture",
        ]);
        return run_status(c, "the damaged-file sweep");
    }
    let minutes: f64 = arg_value(args, "--minutes")
        .map(|m| {
            m.parse()
                .map_err(|_| format!("--minutes {m}: not a number"))
        })
        .transpose()?
        .unwrap_or(15.0);
    let only = arg_value(args, "--target");
    let targets: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| only.as_deref().is_none_or(|o| o == *t))
        .collect();
    if targets.is_empty() {
        return Err(format!(
            "--target: no such fuzz target (targets: {})",
            TARGETS.join(", ")
        ));
    }
    ensure_cargo_fuzz()?;
    let work = target_dir().join("fuzz-work");
    let mut rows = Vec::new();
    for t in &targets {
        rows.push(fuzz_one(t, minutes, &work)?);
    }
    println!("\n| target | minutes | executions | crashes |\n|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.1} | {} | {} |",
            r.target, r.minutes, r.executions, r.crashes
        );
    }
    let crashed: Vec<&Row> = rows.iter().filter(|r| r.crashes > 0).collect();
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "crashes found; the inputs are in {}",
            crashed
                .iter()
                .map(|r| r.artifacts.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

struct Row {
    target: String,
    minutes: f64,
    executions: u64,
    crashes: usize,
    artifacts: PathBuf,
}

/// `cargo fuzz` with the nightly toolchain, or stable with `RUSTC_BOOTSTRAP=1`.
fn cargo_fuzz() -> Command {
    let nightly = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("nightly"))
        .unwrap_or(false);
    let mut c = Command::new("cargo");
    if nightly {
        c.arg("+nightly");
    } else {
        c.env("RUSTC_BOOTSTRAP", "1");
    }
    c.arg("fuzz").current_dir(root().join("fuzz"));
    c
}

fn ensure_cargo_fuzz() -> Result {
    let present = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("installing cargo-fuzz from crates.io…");
    let mut c = Command::new("cargo");
    c.args(["install", "cargo-fuzz", "--locked"]);
    run_status(c, "cargo install cargo-fuzz")
}

fn fuzz_one(target: &str, minutes: f64, work: &std::path::Path) -> Result<Row> {
    let corpus = work.join("corpus").join(target);
    let artifacts = work.join("artifacts").join(target);
    for d in [&corpus, &artifacts] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let seeds = root().join("fuzz/seeds").join(target);
    // cargo-fuzz passes its own -artifact_prefix (fuzz/artifacts/<target>/) before ours; count
    // crash files in both, whichever libFuzzer honours
    let default_artifacts = root().join("fuzz/artifacts").join(target);
    let crash_files = || count_files(&artifacts) + count_files(&default_artifacts);
    let before = crash_files();
    println!("\n== fuzzing {target} for {minutes} min");
    let mut c = cargo_fuzz();
    c.args(["run", "--release", "--debug-assertions", "--target-dir"])
        .arg(target_dir().join("fuzz"))
        .arg(target)
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!(
            "-max_total_time={}",
            (minutes * 60.0).round() as u64
        ))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        // a read that takes 20 s is a hang; 4 GB is far more than any seed needs
        .args([
            "-timeout=20",
            "-rss_limit_mb=4096",
            "-max_len=262144",
            "-print_final_stats=1",
        ])
        .stderr(Stdio::piped());
    let out = c
        .output()
        .map_err(|e| format!("cargo fuzz run {target}: cannot start: {e}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    let log_file = work.join(format!("{target}.log"));
    std::fs::write(&log_file, log.as_bytes())
        .map_err(|e| format!("{}: {e}", log_file.display()))?;
    let executions = log
        .lines()
        .filter_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .next_back()
        .unwrap_or(0);
    let crashes = crash_files().saturating_sub(before);
    if !out.status.success() && crashes == 0 {
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        return Err(format!(
            "cargo fuzz run {target} failed ({}) without a crash artifact; log {}:\n{}",
            out.status,
            log_file.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    println!(
        "{target}: {executions} executions, {crashes} crashes (log {})",
        log_file.display()
    );
    Ok(Row {
        target: target.into(),
        minutes,
        executions,
        crashes,
        artifacts,
    })
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter(|e| e.is_ok()).count())
        .unwrap_or(0)
}

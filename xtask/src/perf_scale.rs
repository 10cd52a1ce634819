//! `cargo xtask perf scale [--cells N] [--keep]`: the whole pipeline at scale, each stage a
//! `scssl` command in its own process (so its peak memory is its own): simulate → preprocess
//! (backed) → train SimCLR one epoch → embed → the full metric set. Prints each stage's wall
//! time and peak RSS against the goal of the performance issue (a million cells in under 30
//! minutes and 16 GB on 2 cores).

use std::path::Path;
use std::process::Command;

use crate::perf::{Measured, cores, measure};
use crate::{Result, root, scssl_release};

/// Wall-time goal for a million cells, seconds.
const GOAL_SECONDS: f64 = 30.0 * 60.0;
/// Peak-memory goal for a million cells, MB.
const GOAL_MB: f64 = 16_000.0;

pub fn run(args: &[String]) -> Result {
    let cells: usize = crate::arg_value(args, "--cells")
        .map(|s| s.parse().map_err(|_| "--cells needs a number"))
        .transpose()?
        .unwrap_or(1_000_000);
    let keep = args.iter().any(|a| a == "--keep");
    let scssl = scssl_release()?;
    let dir = root().join(format!("results/perf-scale/n{cells}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (raw, pp, model) = (
        dir.join("counts.h5ad"),
        dir.join("preprocessed.h5ad"),
        dir.join("simclr"),
    );
    let step = |name: &str, f: &dyn Fn(&mut Command)| -> Result<(String, Measured)> {
        let mut c = Command::new(&scssl);
        f(&mut c);
        println!("{name}…");
        let m = measure(c, &format!("scssl {name}"))?;
        println!("  {:.1} s, peak {:.0} MB", m.wall, m.max_rss_mb);
        Ok((name.to_string(), m))
    };
    let arg = |p: &Path| p.as_os_str().to_owned();
    let stages = vec![
        step("simulate", &|c| {
            c.args(["simulate", "--cells", &cells.to_string(), "--genes", "2000"])
                .args(["--batches", "4", "--seed", "1", "-o"])
                .arg(arg(&raw));
        })?,
        step("preprocess --backed", &|c| {
            c.arg("preprocess")
                .arg(arg(&raw))
                .arg("-o")
                .arg(arg(&pp))
                .arg("--backed");
        })?,
        step("train simclr, 1 epoch", &|c| {
            c.arg("train")
                .arg(arg(&pp))
                .args(["--method", "simclr", "--epochs", "1", "--output"])
                .arg(arg(&model));
        })?,
        step("embed", &|c| {
            c.arg("embed")
                .arg(arg(&pp))
                .arg("--model")
                .arg(arg(&model))
                .args(["--key", "X_simclr"]);
        })?,
        step("eval (full metric set)", &|c| {
            c.arg("eval")
                .arg(arg(&pp))
                .args(["--embedding", "X_simclr", "--pre-embedding", "X_pca"])
                .arg("--json")
                .arg(arg(&dir.join("metrics.json")));
        })?,
    ];
    let total: f64 = stages.iter().map(|(_, m)| m.wall).sum();
    let peak = stages.iter().map(|(_, m)| m.max_rss_mb).fold(0.0, f64::max);
    println!(
        "\nperf scale: {cells} simulated cells × 2,000 genes, 4 batches, {} cores",
        cores()
    );
    println!("| stage | wall s | peak RSS MB |");
    println!("|---|---|---|");
    for (name, m) in &stages {
        println!("| {name} | {:.1} | {:.0} |", m.wall, m.max_rss_mb);
    }
    println!("| **total** | **{total:.1}** | **{peak:.0}** (largest stage) |");
    println!(
        "goal at 1,000,000 cells: under {:.0} min and {:.0} GB{}: {}",
        GOAL_SECONDS / 60.0,
        GOAL_MB / 1000.0,
        if cells == 1_000_000 {
            String::new()
        } else {
            format!(" (this run is {cells} cells; the goal is only judged at a million)")
        },
        if cells != 1_000_000 {
            "not judged".to_string()
        } else if total <= GOAL_SECONDS && peak <= GOAL_MB {
            "met".to_string()
        } else {
            format!("not met ({:.1} min, {:.1} GB)", total / 60.0, peak / 1000.0)
        }
    );
    if !keep {
        std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())?;
    }
    Ok(())
}

//! Helpers shared by the `scssl bench` end-to-end tests (each test crate uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn scssl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scssl-e2e"))
}

/// 2 methods × 2 augmentations × 2 seeds, and the PCA baseline the grid gets by default: 9 runs.
pub const GRID: &str = "name: small
data:
  path: simulated
  simulated: {cells: 400, genes: 200, batches: 3, cell_types: 4, proteins: 6}
  n_hvg: 100
  protein_key: protein_expression
  holdout_batches: [batch_2]
model: {method: [simclr, byol], hidden_dim: 16}
augmentation: [clear, mask_only]
training: {epochs: 2, batch_size: 64, lr: 0.001, schedule: constant}
tasks: {batch_correction: true, annotation: true, modality_prediction: true, kbet: false}
seeds: [0, 1]
";

/// `scssl bench CFG --out OUT`, to add arguments to.
pub fn bench_cmd(cfg: &Path, out: &Path) -> Command {
    let mut c = scssl();
    c.arg("bench").arg(cfg).arg("--out").arg(out);
    c
}

/// A one-run grid on 300 simulated cells with `batches` batches and learning rate(s) `lr`,
/// batch correction only, without the PCA baseline.
pub fn tiny_grid(name: &str, batches: usize, lr: &str) -> String {
    format!(
        "name: {name}
data:
  path: simulated
  simulated: {{cells: 300, genes: 150, batches: {batches}, cell_types: 4}}
  n_hvg: 100
model: {{method: simclr, hidden_dim: 16}}
augmentation: clear
training: {{epochs: 1, batch_size: 64, lr: {lr}}}
tasks: {{batch_correction: true, kbet: false}}
seeds: [0]
baselines: []
"
    )
}

pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("grid.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

pub fn statuses(out: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(out.join("runs")) else {
        return Vec::new();
    };
    let mut v: Vec<(String, String)> = entries
        .flatten()
        .map(|e| {
            let s = std::fs::read_to_string(e.path().join("status.json")).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), s)
        })
        .collect();
    v.sort();
    v
}

/// Lines of a run's `attempts.txt` (one per process that started computing it).
pub fn attempts(out: &Path, run: &str) -> usize {
    std::fs::read_to_string(out.join("runs").join(run).join("attempts.txt"))
        .unwrap_or_default()
        .lines()
        .count()
}

//! `cargo xtask perf train`: one training epoch, ours against PyTorch loops (the reference's,
//! lightly's, batched views), scvi-tools (`--method scvi`) and a PyTorch scCLIP
//! (`--method scclip`), in one run on the same machine.

use std::path::Path;
use std::process::Command;

use crate::fixtures::venv_python;
use crate::perf::{Measured, ensure_module, field, measure};
use crate::{Result, root, scssl_release};

/// One SimCLR epoch, ours against the reference's PyTorch loop (and the same loop with lightly's
/// loss and head) and against a PyTorch loop whose views are made on whole mini-batches, and one
/// VICReg epoch against the latter, on the same log-normalised simulated file; with
/// `--method scvi`, one scVI epoch against scvi-tools on the same raw counts.
pub fn train(args: &[String]) -> Result {
    let given: Option<usize> = match args.iter().position(|a| a == "--cells") {
        Some(i) => Some(
            args.get(i + 1)
                .and_then(|v| v.parse().ok())
                .ok_or("--cells needs a number")?,
        ),
        None => None,
    };
    let cells = given.unwrap_or(50_000);
    match crate::arg_value(args, "--method").as_deref() {
        None | Some("simclr") => {}
        Some("scvi") => return train_scvi(cells),
        Some("scclip") => return train_scclip(given.unwrap_or(20_000)),
        Some(other) => {
            return Err(format!(
                "perf train: --method simclr, scvi or scclip, not {other}"
            ));
        }
    }
    let scssl = scssl_release()?;
    let py = venv_python()?;
    for (module, pkg) in [
        ("torch", "torch"),
        ("lightly", "lightly==1.5.10"),
        ("anndata", "anndata"),
    ] {
        ensure_module(&py, module, pkg)?;
    }
    let raw = simulated_counts(&scssl, cells)?;
    let pp = root().join(format!("target/perf/train_pp_{cells}.h5ad"));
    if !pp.exists() {
        let mut c = Command::new(&scssl);
        c.arg("preprocess")
            .arg(&raw)
            .args(["--n-hvg", "2000", "-o"])
            .arg(&pp);
        crate::run_status(c, "scssl preprocess")?;
    }
    let cores = crate::perf::cores();
    let ours_of = |method: &str| -> Result<Measured> {
        let mut c = Command::new(&scssl);
        c.args(["perf-step", "train"])
            .arg(&pp)
            .args(["--method", method]);
        measure(c, "scssl perf-step train")
    };
    let reference = |variant: &str| -> Result<Measured> {
        let mut c = Command::new(&py);
        c.arg(root().join("conformance/perf_train.py"))
            .arg(&pp)
            .arg(variant)
            .env("OMP_NUM_THREADS", cores.to_string())
            .env("OMP_WAIT_POLICY", "PASSIVE");
        measure(c, "perf_train.py")
    };
    // the best loop a user would write: views made on whole mini-batches with tensor ops
    let batched = |method: &str, masks: &str| -> Result<Measured> {
        let mut c = Command::new(&py);
        c.arg(root().join("conformance/perf_train_batched.py"))
            .arg(&pp)
            .arg(method)
            .args(["--threads", &cores.to_string(), "--masks", masks])
            .env("OMP_WAIT_POLICY", "PASSIVE");
        measure(c, "perf_train_batched.py")
    };
    let ours = ours_of("simclr")?;
    let ours_vicreg = ours_of("vicreg")?;
    let torch = reference("torch")?;
    let lightly = reference("lightly")?;
    let batched_simclr = batched("simclr", "exact")?;
    let batched_vicreg = batched("vicreg", "exact")?;
    let bernoulli_simclr = batched("simclr", "bernoulli")?;
    let bernoulli_vicreg = batched("vicreg", "bernoulli")?;
    println!(
        "\nperf train: one epoch, {cells} simulated cells × 2,000 genes (log-normalised), batch 256, `clear` views as the reference ran them, {cores} cores"
    );
    println!("| method | implementation | epoch s | cells/s | ours vs it | peak RSS MB |");
    println!("|---|---|---|---|---|---|");
    use crate::perf_all::record;
    for (method, theirs, goal, name) in [
        ("SimCLR", &torch, None, "reference loop (per-cell views)"),
        (
            "SimCLR",
            &batched_simclr,
            Some(1.5),
            "batched views, exact sizes",
        ),
        (
            "SimCLR",
            &bernoulli_simclr,
            Some(1.5),
            "batched views, Bernoulli masks",
        ),
        (
            "VICReg",
            &batched_vicreg,
            Some(1.5),
            "batched views, exact sizes",
        ),
        (
            "VICReg",
            &bernoulli_vicreg,
            Some(1.5),
            "batched views, Bernoulli masks",
        ),
    ] {
        let mine = if method == "SimCLR" {
            &ours
        } else {
            &ours_vicreg
        };
        record(
            "train",
            format!("{method} epoch, {cells} cells vs PyTorch {name}"),
            mine.seconds,
            theirs.seconds,
            goal,
            "CPU; scssl bit-identical at 1 and 2 threads",
        );
    }
    for (method, name, m, mine) in [
        (
            "SimCLR",
            "PyTorch (reference loop: per-cell Python augmentation)",
            &torch,
            &ours,
        ),
        (
            "SimCLR",
            "PyTorch + lightly NTXentLoss / SimCLRProjectionHead",
            &lightly,
            &ours,
        ),
        (
            "SimCLR",
            "PyTorch, views batched on tensors (perf_train_batched.py)",
            &batched_simclr,
            &ours,
        ),
        (
            "SimCLR",
            "PyTorch, batched views with Bernoulli masks (expected, not exact, subset sizes)",
            &bernoulli_simclr,
            &ours,
        ),
        ("SimCLR", "scssl (burn, CPU)", &ours, &ours),
        (
            "VICReg",
            "PyTorch, views batched on tensors (perf_train_batched.py)",
            &batched_vicreg,
            &ours_vicreg,
        ),
        (
            "VICReg",
            "PyTorch, batched views with Bernoulli masks (expected, not exact, subset sizes)",
            &bernoulli_vicreg,
            &ours_vicreg,
        ),
        ("VICReg", "scssl (burn, CPU)", &ours_vicreg, &ours_vicreg),
    ] {
        println!(
            "| {method} | {name} | {:.2} | {:.0} | {:.2}× | {:.0} |",
            m.seconds,
            field(&m.json, "cells_per_second").unwrap_or(0.0),
            m.seconds / mine.seconds,
            m.max_rss_mb
        );
    }
    Ok(())
}

/// `target/perf/train_sim_<cells>.h5ad`: `cells` simulated cells × 2,000 genes of raw counts,
/// simulated on first use.
fn simulated_counts(scssl: &Path, cells: usize) -> Result<std::path::PathBuf> {
    let dir = root().join("target/perf");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let raw = dir.join(format!("train_sim_{cells}.h5ad"));
    if !raw.exists() {
        let mut c = Command::new(scssl);
        c.args([
            "simulate",
            "--cells",
            &cells.to_string(),
            "--genes",
            "2000",
            "-o",
        ])
        .arg(&raw);
        crate::run_status(c, "scssl simulate")?;
    }
    Ok(raw)
}

/// One scVI epoch (the benchmark's 8 layers, 30 latent, NB; batch 128) on `cells` simulated
/// cells × 2,000 genes of raw counts: ours against scvi-tools in the same run.
fn train_scvi(cells: usize) -> Result {
    let scssl = scssl_release()?;
    let py = crate::fixtures::scvi_venv()?;
    let raw = simulated_counts(&scssl, cells)?;
    let cores = crate::perf::cores();
    let mut c = Command::new(&scssl);
    c.args(["perf-step", "train-scvi"]).arg(&raw);
    let ours = measure(c, "scssl perf-step train-scvi")?;
    let mut c = Command::new(&py);
    c.arg(root().join("conformance/perf_train_scvi.py"))
        .arg(&raw);
    let theirs = measure(c, "perf_train_scvi.py")?;
    println!(
        "\nperf train --method scvi: one epoch, {cells} simulated cells × 2,000 genes (raw counts), 8 layers × 128, 30 latent, NB, batch 128, 90 % trained on, {cores} cores"
    );
    println!("| implementation | train s | cells/s | ours vs it | peak RSS MB |");
    println!("|---|---|---|---|---|");
    for (name, m) in [
        ("scvi-tools 1.1.6 (PyTorch)", &theirs),
        ("scssl (burn, CPU)", &ours),
    ] {
        println!(
            "| {name} | {:.2} | {:.0} | {:.2}× | {:.0} |",
            field(&m.json, "seconds").unwrap_or(m.seconds),
            field(&m.json, "cells_per_second").unwrap_or(0.0),
            field(&theirs.json, "cells_per_second")
                .unwrap_or(0.0)
                .max(1e-9)
                .recip()
                * field(&m.json, "cells_per_second").unwrap_or(0.0),
            m.max_rss_mb
        );
    }
    Ok(())
}

/// One scCLIP epoch (the fork's ViTs: hidden 256, 6 layers, 8 heads, FFN 512, 128 patches;
/// batch 256) on `cells` simulated CITE-seq cells × 2,000 genes + 134 proteins: ours (release
/// build) against the same network and training loop in PyTorch on the CPU with as many
/// threads, on the same file.
fn train_scclip(cells: usize) -> Result {
    let scssl = scssl_release()?;
    let py = venv_python()?;
    for (module, pkg) in [("torch", "torch"), ("anndata", "anndata")] {
        ensure_module(&py, module, pkg)?;
    }
    let dir = root().join("target/perf");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let raw = dir.join(format!("train_cite_{cells}.h5ad"));
    if !raw.exists() {
        let mut c = Command::new(&scssl);
        c.args([
            "simulate",
            "--cells",
            &cells.to_string(),
            "--genes",
            "2000",
            "--proteins",
            "134",
            "-o",
        ])
        .arg(&raw);
        crate::run_status(c, "scssl simulate")?;
    }
    let cores = crate::perf::cores();
    let mut c = Command::new(&scssl);
    c.args(["perf-step", "train-scclip"]).arg(&raw);
    let ours = measure(c, "scssl perf-step train-scclip")?;
    let mut c = Command::new(&py);
    c.arg(root().join("conformance/perf_train_scclip.py"))
        .arg(&raw)
        .args(["--threads", &cores.to_string()])
        .env("OMP_NUM_THREADS", cores.to_string())
        .env("OMP_WAIT_POLICY", "PASSIVE");
    let theirs = measure(c, "perf_train_scclip.py")?;
    println!(
        "\nperf train --method scclip: one epoch, {cells} simulated CITE-seq cells × 2,000 genes + 134 proteins, ViT 256 × 6 layers × 8 heads per modality, batch 256, {cores} cores"
    );
    println!("| implementation | fit s | epoch s | cells/s | ours vs it | peak RSS MB |");
    println!("|---|---|---|---|---|---|");
    let rate = |m: &Measured| field(&m.json, "cells_per_second").unwrap_or(0.0);
    for (name, m) in [
        ("PyTorch (CPU), the same network and loop", &theirs),
        ("scssl (burn, CPU, release)", &ours),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} | {:.1} | {:.2}× | {:.0} |",
            m.seconds,
            field(&m.json, "epoch_seconds").unwrap_or(m.seconds),
            rate(m),
            rate(m) / rate(&theirs).max(1e-9),
            m.max_rss_mb
        );
    }
    Ok(())
}

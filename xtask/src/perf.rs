//! `cargo xtask perf data`: our data pipeline against anndata/scanpy/pynndescent, in one run on
//! the same machine. Each step runs in its own process so that peak memory (max RSS, from
//! `wait4`) belongs to that step alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::fixtures::venv_python;
use crate::{Result, root, scssl_release};

pub(crate) struct Measured {
    pub(crate) seconds: f64,
    pub(crate) wall: f64,
    pub(crate) max_rss_mb: f64,
    pub(crate) json: String,
}

pub(crate) fn measure(mut c: Command, what: &str) -> Result<Measured> {
    let start = Instant::now();
    let child = c
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // Read stdout before reaping so a full pipe cannot block the child.
    let mut stdout = child.stdout.ok_or("no stdout")?;
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).map_err(|e| e.to_string())?;
    // SAFETY: pid is our direct child, status/usage point to valid memory.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    if r < 0 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{what} failed (status {status}); output: {out}"));
    }
    let line = out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or("{}")
        .to_string();
    let seconds = field(&line, "seconds").unwrap_or(wall);
    Ok(Measured {
        seconds,
        wall,
        max_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        json: line,
    })
}

/// `scssl simulate`: `cells` × 2,000 genes of counts in `batches` batches, seed 1, into `out`.
fn simulate_counts(scssl: &Path, out: &Path, cells: usize, batches: usize) -> Result {
    let mut c = Command::new(scssl);
    c.args(["simulate", "--cells", &cells.to_string(), "--genes", "2000"])
        .args(["--batches", &batches.to_string(), "--seed", "1", "-o"])
        .arg(out);
    crate::run_status(c, "scssl simulate")
}

/// Installs `pkg` into the venv unless `module` already imports.
pub(crate) fn ensure_module(py: &Path, module: &str, pkg: &str) -> Result {
    let ok = Command::new(py)
        .args(["-c", &format!("import {module}")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        println!("installing {pkg} into the venv…");
        let mut c = Command::new(py);
        c.args(["-m", "pip", "install", "--quiet", pkg]);
        crate::run_status(c, &format!("pip install {pkg}"))?;
    }
    Ok(())
}

/// The cores this machine offers (1 when unknown): printed with every comparison and given to
/// the Python side's thread settings.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Extracts a number from a flat JSON line without a JSON dependency.
pub(crate) fn field(json: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\":");
    let i = json.find(&pat)? + pat.len();
    let rest = json[i..].trim_start();
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// `--sizes A,B,…` (cell counts; `default` when absent) and `--python-max N` (the largest size
/// the Python side runs at; all when absent).
pub(crate) fn sizes_and_python_max(args: &[String], default: &str) -> Result<(Vec<usize>, usize)> {
    let sizes = crate::arg_value(args, "--sizes")
        .unwrap_or_else(|| default.into())
        .split(',')
        .map(|s| s.trim().parse().map_err(|_| format!("bad size {s}")))
        .collect::<Result<_>>()?;
    let py_max = crate::arg_value(args, "--python-max")
        .map(|s| s.parse().map_err(|_| "--python-max needs a number"))
        .transpose()?
        .unwrap_or(usize::MAX);
    Ok((sizes, py_max))
}

pub fn run(args: &[String]) -> Result {
    match args.first().map(String::as_str) {
        Some("data") => data(&args[1..]),
        Some("augment") => augment(),
        Some("metrics") => metrics(&args[1..]),
        Some("train") => crate::perf_train::train(&args[1..]),
        Some("umap") => umap(&args[1..]),
        Some("python") => crate::perf_python::run(&args[1..]),
        Some("all") => crate::perf_all::run(&args[1..]),
        Some("scale") => crate::perf_scale::run(&args[1..]),
        _ => Err("usage: cargo xtask perf <all [--quick] | data [--cells N] [--keep] | augment | metrics [--sizes 10000,50000,100000] [--python-max N] | train [--cells N] [--method simclr|scvi] | umap [--sizes 10000,100000] | python [--sizes 10000,100000] [--python-max N] | scale [--cells 1000000] [--keep]>".into()),
    }
}

fn data(args: &[String]) -> Result {
    let cells: usize = crate::arg_value(args, "--cells")
        .map(|s| s.parse().map_err(|_| "--cells needs a number"))
        .transpose()?
        .unwrap_or(100_000);
    let scssl = scssl_release()?;
    let py = venv_python()?;
    let dir: PathBuf = root().join("results/perf-data");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let h5 = dir.join(format!("counts_{cells}.h5ad"));
    if !h5.exists() {
        println!("simulating {cells} cells × 2,000 genes, 4 batches…");
        simulate_counts(&scssl, &h5, cells, 4)?;
    }
    let pca = dir.join("pca_ours.f32");
    let truth = dir.join("knn_truth.u32");
    let script = root().join("conformance/perf_data.py");
    let ours = |step: &str, extra: &[&Path]| -> Result<Measured> {
        let mut c = Command::new(&scssl);
        c.args(["perf-step", step]).arg(&h5);
        for e in extra {
            c.arg(e);
        }
        measure(c, &format!("scssl perf-step {step}"))
    };
    let theirs = |step: &str, extra: &[&Path]| -> Result<Measured> {
        let mut c = Command::new(&py);
        c.arg(&script).arg(step).arg(&h5);
        for e in extra {
            c.arg(e);
        }
        c.env("PYTHONWARNINGS", "ignore");
        measure(c, &format!("perf_data.py {step}"))
    };
    // read the file once so both sides start from a warm page cache
    let _ = std::fs::read(&h5).map_err(|e| e.to_string())?;
    println!("running (each step in its own process)…");
    let r_ours = ours("read", &[])?;
    let r_py = theirs("read", &[])?;
    let p_ours = ours("pipeline", &[&pca])?;
    let p_py = theirs("pipeline", &[])?;
    let k_ours = ours("knn", &[&pca, &truth])?;
    let k_py = theirs("knn", &[&pca, &truth])?;
    let rec_ours = field(&k_ours.json, "recall").unwrap_or(f64::NAN);
    let rec_py = field(&k_py.json, "recall").unwrap_or(f64::NAN);
    let first_py = field(&k_py.json, "first_call_seconds").unwrap_or(f64::NAN);
    println!(
        "\nperf data: {cells} cells × 2,000 genes (CSR counts h5ad, 4 batches), {} cores",
        crate::perf::cores()
    );
    println!(
        "| step | scssl s | scanpy/anndata s | speed-up | scssl peak RSS MB | Python peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, a: &Measured, b: &Measured| {
        println!(
            "| {name} | {:.2} | {:.2} | {:.1}× | {:.0} | {:.0} |",
            a.seconds,
            b.seconds,
            b.seconds / a.seconds.max(1e-9),
            a.max_rss_mb,
            b.max_rss_mb
        );
    };
    row("read h5ad", &r_ours, &r_py);
    row(
        "normalize → log1p → HVG(1000, batch) → PCA(50)",
        &p_ours,
        &p_py,
    );
    row("kNN k=15 on the PCA (pynndescent warm)", &k_ours, &k_py);
    use crate::perf_all::record;
    record(
        "data",
        format!("read h5ad, {cells} cells"),
        r_ours.seconds,
        r_py.seconds,
        None,
        "anndata",
    );
    record(
        "data",
        format!("normalize → HVG → PCA, {cells} cells"),
        p_ours.seconds,
        p_py.seconds,
        None,
        "scanpy",
    );
    record(
        "kNN",
        format!("k = 15, {cells} × 50 PCs"),
        k_ours.seconds,
        k_py.seconds,
        Some(1.0),
        format!(
            "pynndescent warm; recall scssl {rec_ours:.3} (goal ≥ 0.98), pynndescent {rec_py:.3}"
        ),
    );
    println!(
        "\nkNN recall@15 (1,000 query cells vs exact): scssl {rec_ours:.4}, pynndescent {rec_py:.4}; pynndescent's first call (JIT) took {first_py:.1} s"
    );
    println!(
        "process wall times incl. start-up: scssl {:.1}/{:.1}/{:.1} s, Python {:.1}/{:.1}/{:.1} s",
        r_ours.wall, p_ours.wall, k_ours.wall, r_py.wall, p_py.wall, k_py.wall
    );
    if !args.iter().any(|a| a == "--keep") {
        let _ = std::fs::remove_file(&pca);
        let _ = std::fs::remove_file(&truth);
    }
    Ok(())
}

/// UMAP of the 50 PCs of simulated data: ours against umap-learn (its defaults, parallel SGD),
/// wall time, peak memory and neighbourhood preservation (k = 15) of both layouts.
fn umap(args: &[String]) -> Result {
    let sizes: Vec<usize> = crate::arg_value(args, "--sizes")
        .unwrap_or_else(|| "10000,100000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| format!("--sizes: {s} is not a number"))
        })
        .collect::<Result<_>>()?;
    let scssl = scssl_release()?;
    let py = venv_python()?;
    ensure_module(&py, "umap", "umap-learn")?;
    let dir: PathBuf = root().join("results/perf-umap");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let script = root().join("conformance/perf_umap.py");
    let mut rows = Vec::new();
    for &cells in &sizes {
        let raw = dir.join(format!("sim_{cells}.h5ad"));
        let pp = dir.join(format!("sim_{cells}.pp.h5ad"));
        if !pp.exists() {
            println!("simulating and preprocessing {cells} cells…");
            simulate_counts(&scssl, &raw, cells, 3)?;
            let mut c = Command::new(&scssl);
            c.arg("preprocess")
                .arg(&raw)
                .arg("-o")
                .arg(&pp)
                .args(["--n-hvg", "1000"]);
            crate::run_status(c, "scssl preprocess")?;
        }
        let (ours_layout, theirs_layout) = (dir.join("ours.f32"), dir.join("theirs.f32"));
        let mut c = Command::new(&scssl);
        c.args(["perf-step", "umap"]).arg(&pp).arg(&ours_layout);
        let ours = measure(c, "scssl perf-step umap")?;
        let mut c = Command::new(&py);
        c.arg(&script).arg("run").arg(&pp).arg(&theirs_layout);
        let theirs = measure(c, "perf_umap.py run")?;
        let score = |layout: &Path| -> Result<f64> {
            let mut c = Command::new(&py);
            c.arg(&script).arg("score").arg(&pp).arg(layout);
            let m = measure(c, "perf_umap.py score")?;
            Ok(field(&m.json, "preservation").unwrap_or(f64::NAN))
        };
        rows.push((
            cells,
            score(&ours_layout)?,
            score(&theirs_layout)?,
            ours,
            theirs,
        ));
    }
    println!(
        "\nperf umap: UMAP of 50 PCs (simulated, 2,000 genes → 1,000 HVGs), {} cores; umap-learn with its defaults (no random_state: its parallel SGD)",
        crate::perf::cores()
    );
    println!(
        "| cells | scssl s | umap-learn s | speed-up | scssl peak MB | umap-learn peak MB | preservation scssl | preservation umap-learn |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (cells, p_ours, p_theirs, a, b) in &rows {
        println!(
            "| {cells} | {:.1} | {:.1} | {:.1}× | {:.0} | {:.0} | {p_ours:.4} | {p_theirs:.4} |",
            a.seconds,
            b.seconds,
            b.seconds / a.seconds.max(1e-9),
            a.max_rss_mb,
            b.max_rss_mb
        );
    }
    println!("(umap-learn's time includes its numba compilation on the first size)");
    Ok(())
}

/// Two views of a 256-cell × 4,000-gene batch (the `clear` pipeline): ours against the
/// reference's per-cell Python/torch approach, same machine, one run.
fn augment() -> Result {
    let scssl = scssl_release()?;
    let py = venv_python()?;
    if ensure_module(&py, "torch", "torch").is_err() {
        println!("torch could not be installed; the reference pipeline runs on numpy instead");
    }
    let ours = |threads: Option<usize>| -> Result<Measured> {
        let mut c = Command::new(&scssl);
        c.args(["perf-step", "augment", "-"]);
        if let Some(t) = threads {
            c.env("RAYON_NUM_THREADS", t.to_string());
        }
        measure(c, "scssl perf-step augment")
    };
    let all = ours(None)?;
    let one = ours(Some(1))?;
    let mut c = Command::new(&py);
    c.arg(root().join("conformance/perf_augment.py"))
        .arg("3")
        .env("OMP_NUM_THREADS", "1");
    let reference = measure(c, "perf_augment.py")?;
    let backend = reference
        .json
        .split("\"backend\": \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("?")
        .to_string();
    let cores = crate::perf::cores();
    println!(
        "\nperf augment: two views of a 256-cell × 4,000-gene batch, `clear` pipeline (probability 0.5 per step), {cores} cores"
    );
    println!("| implementation | s per batch | cells/s (two views) | ratio vs reference |");
    println!("|---|---|---|---|");
    let row = |name: &str, m: &Measured| {
        println!(
            "| {name} | {:.5} | {:.0} | {:.1}× |",
            m.seconds,
            256.0 / m.seconds,
            reference.seconds / m.seconds
        );
    };
    row(
        &format!("reference: per-cell Python ({backend}), 1 thread"),
        &reference,
    );
    row("scssl, 1 thread", &one);
    row(&format!("scssl, {cores} threads"), &all);
    Ok(())
}

/// The whole metric set, ours and scib-metrics', on the same simulated embeddings.
fn metrics(args: &[String]) -> Result {
    let (sizes, py_max) = sizes_and_python_max(args, "10000,50000,100000")?;
    let scssl = scssl_release()?;
    // the scib-metrics venv only when some size is compared against it
    let py = if sizes.iter().any(|&n| n <= py_max) {
        Some(crate::fixtures::scib_venv()?)
    } else {
        None
    };
    let mut first = true;
    for n in sizes {
        let dir = root().join(format!("results/perf-metrics/n{n}"));
        let mut g = Command::new(&scssl);
        g.args(["perf-step", "metrics-gen"])
            .arg(&dir)
            .arg(n.to_string());
        crate::run_status(g, "scssl perf-step metrics-gen")?;
        let mut c = Command::new(&scssl);
        c.args(["perf-step", "metrics"]).arg(&dir);
        let ours = measure(c, "scssl perf-step metrics")?;
        let theirs = if let (true, Some(py)) = (n <= py_max, &py) {
            let mut c = Command::new(py);
            c.arg(root().join("conformance/perf_metrics.py"))
                .arg(&dir)
                .env("PYTHONWARNINGS", "ignore");
            if first {
                c.arg("--warmup");
            }
            first = false;
            Some(measure(c, "perf_metrics.py")?)
        } else {
            None
        };
        println!(
            "\nperf metrics: {n} cells × 30 dims, 10 cell types, 4 batches, {} cores",
            crate::perf::cores()
        );
        println!("| metric | scssl s | scib-metrics s | speed-up |");
        println!("|---|---|---|---|");
        let timing =
            |m: &Measured, k: &str| field(m.json.split("\"timings\"").nth(1).unwrap_or(""), k);
        // the metrics in table order, as scssl-metrics' registry lists them
        let keys: Vec<String> = serde_json::from_str::<serde_json::Value>(&ours.json)
            .ok()
            .and_then(|v| v.get("order").cloned())
            .and_then(|o| serde_json::from_value(o).ok())
            .unwrap_or_default();
        for k in keys.iter().map(String::as_str) {
            let a = timing(&ours, k).unwrap_or(f64::NAN);
            match &theirs {
                Some(t) => {
                    let b = timing(t, k).unwrap_or(f64::NAN);
                    println!("| {k} | {a:.2} | {b:.2} | {:.0}× |", b / a.max(1e-9));
                }
                None => println!("| {k} | {a:.2} | (not run) | |"),
            }
        }
        match &theirs {
            Some(t) => {
                crate::perf_all::record(
                    "metrics",
                    format!("full scIB set, {n} cells"),
                    ours.seconds,
                    t.seconds,
                    Some(30.0),
                    format!(
                        "scib-metrics' JAX compilation excluded; peak MB {:.0} vs {:.0}",
                        ours.max_rss_mb, t.max_rss_mb
                    ),
                );
                println!(
                    "| **all** | {:.2} | {:.2} | {:.0}× |",
                    ours.seconds,
                    t.seconds,
                    t.seconds / ours.seconds.max(1e-9)
                );
                println!(
                    "peak RSS: scssl {:.0} MB, scib-metrics {:.0} MB{}",
                    ours.max_rss_mb,
                    t.max_rss_mb,
                    field(&t.json, "jit_seconds")
                        .map(|j| format!(
                            "; scib-metrics' one-off JIT warm-up on 1,000 cells: {j:.1} s"
                        ))
                        .unwrap_or_default()
                );
            }
            None => println!(
                "| **all** | {:.2} | | |\npeak RSS: scssl {:.0} MB",
                ours.seconds, ours.max_rss_mb
            ),
        }
    }
    Ok(())
}

//! `cargo xtask` — project automation in pure Rust (it must run before HDF5 is installed).
//!
//! - `cargo xtask quickstart [--out DIR]`: checks system dependencies (installs them with apt
//!   when it may), builds the `scssl` binary and runs the main job on the built-in simulated
//!   dataset (plus the real files in `../shared/data` when present).
//! - `cargo xtask test`: the same dependency check, then the whole test suite: cargo test and
//!   the Python package's (wheel built with maturin into `~/.cache/scssl-venv-py`, pytest).
//! - `cargo xtask perf data [--cells N]`: ours vs scanpy/anndata/pynndescent, same machine, one run;
//!   `perf metrics|train|python|umap|augment` the other comparisons, `perf all [--quick]` all of them;
//!   `perf scale [--cells N] [--keep]` the whole pipeline at a million cells, stage by stage
//!   and one table of every ratio.
//! - `cargo xtask fuzz [--minutes N] [--target T]`: runs the `cargo fuzz` targets of `fuzz/`
//!   (15 minutes each by default); `--seeds` rewrites their seed corpora, `--sweep` runs the
//!   damaged-file sweep.
//! - `cargo xtask fixtures`: regenerates the golden files in `conformance/` with the Python tools.
//! - `cargo xtask package`: packages and verifies every publishable crate (`cargo package` for
//!   all of them at once, so crates that depend on not-yet-published siblings verify too).

mod fixtures;
mod fuzz;
mod perf;
mod perf_all;
mod perf_python;
mod perf_scale;
mod perf_train;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("quickstart") => quickstart(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("perf") => perf::run(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("fixtures") => fixtures::run(),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("package") => package(),
        _ => {
            eprintln!(
                "usage: cargo xtask <quickstart [--out DIR] | bench [--quick] [--data-dir DIR] [--out DIR] [--jobs N] [-- KEY=VALUE…] | test [-- CARGO_TEST_ARGS] | perf data|augment|metrics|train|python|umap|scale|all | fixtures | fuzz [--minutes N] [--target T] [--seeds] [--sweep] | package>"
            );
            Err("unknown command".into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

pub(crate) fn root() -> PathBuf {
    // `cargo xtask` (cargo run) sets CARGO_MANIFEST_DIR for the running binary too; prefer it
    // to the compile-time path, which is stale when a target cache shared between checkouts
    // serves a binary built in another one
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub(crate) fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

pub(crate) fn run_status(mut c: Command, what: &str) -> Result {
    let st = c
        .status()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({st})"))
    }
}

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

pub(crate) fn scssl_release() -> Result<PathBuf> {
    let mut c = cargo();
    c.args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "scssl-bench",
        "--bin",
        "scssl",
    ]);
    println!("building scssl (release)…");
    run_status(c, "cargo build --release")?;
    Ok(target_dir().join("release").join("scssl"))
}

pub(crate) fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn quickstart(args: &[String]) -> Result {
    let out = arg_value(args, "--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("results/quickstart"));
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let scssl = scssl_release()?;
    let started = std::time::Instant::now();
    let sim = out.join("simulated.h5ad");
    let pp = out.join("simulated.preprocessed.h5ad");
    let step = |args: &[&str]| -> Result {
        let mut c = Command::new(&scssl);
        c.args(args);
        run_status(c, &format!("scssl {}", args.first().copied().unwrap_or("")))
    };
    println!(
        "\n== simulating the built-in default dataset (5,000 cells × 2,000 genes, 3 batches, 8 cell types)"
    );
    step(&[
        "simulate",
        "--cells",
        "5000",
        "--genes",
        "2000",
        "--batches",
        "3",
        "--cell-types",
        "8",
        "--proteins",
        "20",
        "--seed",
        "0",
        "-o",
        &sim.to_string_lossy(),
    ])?;
    println!("\n== preprocessing (normalize_total → log1p → 1,000 batch-aware HVGs → 50 PCs)");
    step(&[
        "preprocess",
        &sim.to_string_lossy(),
        "-o",
        &pp.to_string_lossy(),
        "--batch-key",
        "batch",
        "--n-hvg",
        "1000",
    ])?;
    step(&["inspect", &pp.to_string_lossy()])?;
    // scores obsm['X_pca'] of a preprocessed file with the scIB metric set
    let eval_pca = |file: &Path, csv: &Path, json: Option<&Path>| -> Result {
        let mut c = Command::new(&scssl);
        c.args(["eval"])
            .arg(file)
            .args([
                "--embedding",
                "X_pca",
                "--batch-key",
                "batch",
                "--label-key",
                "cell_type",
                "--csv",
            ])
            .arg(csv);
        if let Some(j) = json {
            c.arg("--json").arg(j);
        }
        run_status(c, "scssl eval")
    };
    println!("\n== scoring the PCA embedding with the scIB metric set");
    let scores_json = out.join("simulated.scores.json");
    let scores_csv = out.join("simulated.scores.csv");
    eval_pca(&pp, &scores_csv, Some(&scores_json))?;
    println!(
        "\n== cell-type annotation of a held-out batch, and protein prediction, on the PCA embedding"
    );
    step(&[
        "annotate",
        &pp.to_string_lossy(),
        "--embedding",
        "X_pca",
        "--query-batches",
        "batch_2",
        "--protein-key",
        "protein_expression",
    ])?;
    let shared = root().join("../shared/data");
    if shared.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&shared)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "h5ad"))
            .collect();
        files.sort();
        for f in files {
            let name = f
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let o = out.join(format!("{name}.preprocessed.h5ad"));
            println!(
                "\n== preprocessing and scoring (PCA) the real dataset {}",
                f.display()
            );
            step(&[
                "preprocess",
                &f.to_string_lossy(),
                "-o",
                &o.to_string_lossy(),
                "--batch-key",
                "batch",
                "--n-hvg",
                "2000",
            ])?;
            let scores = out.join(format!("{name}.scores.csv"));
            eval_pca(&o, &scores, None)?;
        }
    } else {
        println!(
            "\n(notice: {} not found; only the simulated dataset was processed)",
            shared.display()
        );
    }
    println!(
        "\n== the quick benchmark grid (train → embed → batch correction, annotation, protein prediction)"
    );
    let report = run_bench(&scssl, true, None, &out.join("bench"), 2, &[])?;
    println!(
        "\nquickstart finished: {:.1} s of work after the build; outputs are in {}\nreport: {}",
        started.elapsed().as_secs_f64(),
        out.display(),
        report.display()
    );
    Ok(())
}

/// Dataset files of methods.md §1.3 and the paper configs that use them.
const PAPER_DATASETS: &[&str] = &[
    "ImmHuman",
    "Pancreas",
    "ImmuneAtlas",
    "Lung",
    "MCA",
    "PBMC",
    "sapiens",
    "Luecken_Core",
];

fn bench(args: &[String]) -> Result {
    let quick = args.iter().any(|a| a == "--quick");
    let out = arg_value(args, "--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            root().join(if quick {
                "results/bench-quick"
            } else {
                "results/bench-paper"
            })
        });
    let jobs: usize = arg_value(args, "--jobs")
        .and_then(|j| j.parse().ok())
        .unwrap_or(1);
    let data_dir = arg_value(args, "--data-dir").map(PathBuf::from);
    // `-- key=value …`: overrides applied to every grid (e.g. training.epochs=10)
    let overrides: Vec<String> = args
        .iter()
        .skip_while(|a| *a != "--")
        .skip(1)
        .cloned()
        .collect();
    let scssl = scssl_release()?;
    let started = std::time::Instant::now();
    let report = run_bench(&scssl, quick, data_dir.as_deref(), &out, jobs, &overrides)?;
    println!(
        "\nbench finished: {:.1} s after the build; report: {}",
        started.elapsed().as_secs_f64(),
        report.display()
    );
    Ok(())
}

/// Runs the quick grid (simulated data, plus ../shared/data when present) or the paper grid
/// (configs/paper/*.yaml over the datasets found in `data_dir`) into `out`; returns the report.
fn run_bench(
    scssl: &Path,
    quick: bool,
    data_dir: Option<&Path>,
    out: &Path,
    jobs: usize,
    overrides: &[String],
) -> Result<PathBuf> {
    // A grid with failed runs (or a config that does not apply) must not stop the grids after
    // it: each failure is noted, the rest run, and the whole fails at the end, after the report.
    let failures = std::cell::RefCell::new(Vec::<String>::new());
    let bench = |config: &Path, grid_overrides: &[String]| {
        let mut c = Command::new(scssl);
        c.arg("bench")
            .arg(config)
            .args(grid_overrides)
            .args(overrides)
            .arg("--out")
            .arg(out)
            .args(["--jobs", &jobs.to_string()]);
        if let Err(e) = run_status(c, &format!("scssl bench {}", config.display())) {
            println!("(notice: {e}; going on with the next grid)");
            failures.borrow_mut().push(e);
        }
    };
    if quick {
        bench(&root().join("configs/quick.yaml"), &[]);
        let shared = root().join("../shared/data");
        if shared.is_dir() {
            let mut candidates: Vec<PathBuf> = std::fs::read_dir(&shared)
                .map_err(|e| e.to_string())?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "h5ad"))
                .collect();
            candidates.sort();
            let mut any = false;
            for f in candidates {
                let info = inspect(scssl, &f)?;
                let (b, l) = (info.distinct("batch"), info.distinct("cell_type"));
                // batch correction needs two batches and two cell types; a file without them
                // would only give a row of undefined metrics
                if !(b.is_some_and(|b| b >= 2) && l.is_some_and(|l| l >= 2)) {
                    println!(
                        "(notice: {} has {} and {}; batch correction is undefined for it, so the quick grid skips it)",
                        f.display(),
                        count(b, "batch", "batches"),
                        count(l, "cell type", "cell types"),
                    );
                    continue;
                }
                if !any {
                    println!(
                        "\n== the quick grid on the real files in {}",
                        shared.display()
                    );
                    any = true;
                }
                // all tasks: the smallest batch is the query of the annotation task, and a
                // CITE-seq file (protein in obsm) trains multimodal models and predicts protein
                let mut file_overrides = vec![format!("data.path={}", f.display())];
                if let Some(query) = info.smallest("batch") {
                    file_overrides.push(format!("data.holdout_batches=[{query}]"));
                    file_overrides.push("tasks.annotation=true".into());
                }
                if info.obsm.iter().any(|k| k == "protein_expression") {
                    file_overrides.push("data.protein_key=protein_expression".into());
                    file_overrides.push("tasks.modality_prediction=true".into());
                }
                bench(&root().join("configs/quick_real.yaml"), &file_overrides);
            }
        } else {
            println!(
                "(notice: {} not found; the quick grid ran on simulated data only)",
                shared.display()
            );
        }
    } else {
        let dir = data_dir
            .ok_or("the paper grid needs --data-dir DIR (file names as in methods.md §1.3)")?;
        let mut configs: Vec<PathBuf> = std::fs::read_dir(root().join("configs/paper"))
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        configs.sort();
        let mut ran = 0;
        for config in configs {
            let text = std::fs::read_to_string(&config).map_err(|e| e.to_string())?;
            let wanted: Vec<&str> = PAPER_DATASETS
                .iter()
                .copied()
                .chain(["PBMC_multimodal", "NeurIPS_CITE"])
                .filter(|d| text.contains(&format!("{d}.h5ad")))
                .collect();
            let present: Vec<String> = wanted
                .iter()
                .filter(|d| dir.join(format!("{d}.h5ad")).exists())
                .map(|d| dir.join(format!("{d}.h5ad")).display().to_string())
                .collect();
            for d in wanted
                .iter()
                .filter(|d| !dir.join(format!("{d}.h5ad")).exists())
            {
                println!(
                    "(notice: {d}.h5ad not in {}; skipped in {})",
                    dir.display(),
                    config.display()
                );
            }
            if present.is_empty() {
                continue;
            }
            ran += 1;
            bench(&config, &[format!("data.path={}", present.join(","))]);
        }
        if ran == 0 {
            return Err(format!(
                "none of the paper's datasets is in {} (expected file names: {}.h5ad)",
                dir.display(),
                PAPER_DATASETS
                    .iter()
                    .chain(&["PBMC_multimodal", "NeurIPS_CITE"])
                    .copied()
                    .collect::<Vec<_>>()
                    .join(".h5ad, ")
            ));
        }
    }
    let mut c = Command::new(scssl);
    c.arg("report").arg(out);
    run_status(c, "scssl report")?;
    let failures = failures.into_inner();
    if !failures.is_empty() {
        return Err(format!(
            "{} grid(s) did not finish cleanly (the report {} holds everything else):\n  {}",
            failures.len(),
            out.join("report/report.html").display(),
            failures.join("\n  ")
        ));
    }
    Ok(out.join("report/report.html"))
}

/// "1 batch", "3 batches", or "no such obs column".
fn count(n: Option<u64>, one: &str, many: &str) -> String {
    match n {
        None => format!("no obs column for {many}"),
        Some(1) => format!("1 {one}"),
        Some(n) => format!("{n} {many}"),
    }
}

/// An obs column as `scssl inspect --json` lists it: name, distinct values, and the largest
/// categories with their cell counts.
struct ObsColumn {
    name: String,
    n_distinct: u64,
    top: Vec<(String, u64)>,
}

/// What `scssl inspect --json` says of a file that the quick grid needs.
struct FileInfo {
    obs: Vec<ObsColumn>,
    /// obsm keys.
    obsm: Vec<String>,
}

impl FileInfo {
    /// Distinct values of obs column `key`; `None` when the column is absent.
    fn distinct(&self, key: &str) -> Option<u64> {
        self.obs
            .iter()
            .find(|c| c.name == key)
            .map(|c| c.n_distinct)
    }

    /// The category of obs column `key` with the fewest cells (among those listed).
    fn smallest(&self, key: &str) -> Option<String> {
        let col = self.obs.iter().find(|c| c.name == key)?;
        col.top
            .iter()
            .min_by_key(|(_, n)| *n)
            .map(|(c, _)| c.clone())
    }
}

fn inspect(scssl: &Path, file: &Path) -> Result<FileInfo> {
    let out = Command::new(scssl)
        .arg("inspect")
        .arg("--json")
        .arg(file)
        .output()
        .map_err(|e| format!("running scssl inspect: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scssl inspect {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("scssl inspect --json {}: {e}", file.display()))?;
    let obs = v["obs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let top = c["top"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p[0].as_str()?.to_string(), p[1].as_u64()?)))
                .collect();
            ObsColumn {
                name: c["name"].as_str().unwrap_or_default().to_string(),
                n_distinct: c["n_distinct"].as_u64().unwrap_or(0),
                top,
            }
        })
        .collect();
    let obsm = v["obsm"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e[0].as_str().map(str::to_string))
        .collect();
    Ok(FileInfo { obs, obsm })
}

fn test(args: &[String]) -> Result {
    let shared = root().join("../shared/data");
    if !shared.is_dir() {
        println!(
            "NOTICE: {} not found; the tests on the real shared datasets will skip (they pass vacuously)",
            shared.display()
        );
    }
    // the test prints the same notice, but libtest hides a passing test's output
    let slurm_up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| {
            let s = String::from_utf8_lossy(&o.stdout);
            o.status.success() && ["idle", "mix", "alloc"].iter().any(|t| s.contains(t))
        });
    if !slurm_up {
        println!(
            "NOTICE: no Slurm controller answers; the real-Slurm grid test will skip (as root, `bash .ci/slurm-up` starts a one-node cluster)"
        );
    }
    let mut c = cargo();
    c.args(["test", "--workspace", "--all-targets"]);
    let extra: Vec<&String> = args.iter().skip_while(|a| *a != "--").skip(1).collect();
    if !extra.is_empty() {
        c.arg("--");
        c.args(extra);
    }
    run_status(c, "cargo test --workspace --all-targets")?;
    let mut d = cargo();
    d.args(["test", "--workspace", "--doc"]);
    run_status(d, "cargo test --workspace --doc")?;
    // the Python package: wheel built with maturin, installed in its venv, pytest
    fixtures::python_package_tests()
}

fn package() -> Result {
    // `cargo package` verifies each crate against its siblings through a temporary local
    // registry and extracts them under ~/.cargo/registry/src/-<hash>/; an extraction left from
    // an earlier run of the same version would be reused although the sources changed.
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let registries = cargo_home.and_then(|h| std::fs::read_dir(h.join("registry/src")).ok());
    for d in registries
        .into_iter()
        .flatten()
        .flatten()
        .filter(|d| d.file_name().to_string_lossy().starts_with('-'))
    {
        for e in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with("scssl-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    // the verification builds of the siblings are cached by (name, version, local registry):
    // forget them so that changed sources are rebuilt
    let verify_dir = target_dir().join("package-verify");
    for sub in ["debug/.fingerprint", "debug/deps"] {
        for e in std::fs::read_dir(verify_dir.join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("scssl-")
                || name.starts_with("scssl_")
                || name.starts_with("libscssl_")
            {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
    let mut c = cargo();
    c.args([
        "package",
        "--workspace",
        "--exclude",
        "xtask",
        "--exclude",
        "scssl-tests",
        "--allow-dirty",
        "--target-dir",
    ])
    .arg(&verify_dir);
    run_status(c, "cargo package --workspace")
}

//! `cargo xtask fixtures`: the Python venvs (current and pinned older anndata releases) and
//! the conformance scripts that regenerate the goldens and check that Python reads our files.

use std::path::PathBuf;
use std::process::Command;

use crate::{Result, root, run_status, scssl_release};

/// `~/.cache`, where the venvs live (outside the clone, like the target directory).
fn cache_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join(".cache")
}

/// A venv `~/.cache/NAME` in which the Python code `check` runs: created when missing, and
/// `packages` installed from PyPI whenever `check` fails (so an older venv is repaired).
fn ensure_venv(name: &str, check: &str, packages: &[&str]) -> Result<PathBuf> {
    let venv = cache_dir().join(name);
    let py = venv.join("bin/python");
    if !py.exists() {
        println!(
            "creating Python venv {} ({} from PyPI)…",
            venv.display(),
            packages.join(", ")
        );
        let mut c = Command::new("python3");
        c.args(["-m", "venv"]).arg(&venv);
        run_status(c, "python3 -m venv")?;
    }
    let ready = Command::new(&py)
        .args(["-c", check])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        let mut c = Command::new(&py);
        c.args(["-m", "pip", "install", "--quiet"]).args(packages);
        run_status(c, &format!("pip install {}", packages.join(" ")))?;
    }
    Ok(py)
}

/// The conformance venv `~/.cache/scssl-venv`: anndata, scanpy, zarr, pynndescent, umap-learn.
pub(crate) fn venv_python() -> Result<PathBuf> {
    ensure_venv(
        "scssl-venv",
        "import anndata, scanpy, zarr, pynndescent, hdf5plugin, umap",
        &[
            "anndata",
            "scanpy",
            "zarr",
            "pynndescent",
            "hdf5plugin",
            "umap-learn",
        ],
    )
}

/// The scib-metrics venv `~/.cache/scssl-venv-scib` (scib-metrics 0.5, the newest for Python
/// 3.11, with anndata): its own, since lightly (in the conformance venv, for `perf train`)
/// pins numpy < 2, which breaks scib-metrics' JAX.
pub(crate) fn scib_venv() -> Result<PathBuf> {
    ensure_venv(
        "scssl-venv-scib",
        "import scib_metrics, anndata, pynndescent, numpy; assert numpy.__version__ >= '2'",
        &["scib-metrics<0.6", "anndata", "pynndescent", "numpy>=2"],
    )
}

/// anndata releases (with the pins they need) that `cargo xtask fixtures` also checks our
/// files in.
const OLDER_ANNDATA: &[(&str, &[&str])] = &[
    ("0.10.9", &["numpy<2", "zarr<3", "hdf5plugin"]),
    ("0.11.4", &["zarr<3", "hdf5plugin"]),
];

/// A venv `~/.cache/scssl-venv-anndata-VERSION` holding that anndata release.
fn pinned_venv(version: &str, pins: &[&str]) -> Result<PathBuf> {
    let anndata = format!("anndata=={version}");
    let packages: Vec<&str> = std::iter::once(anndata.as_str())
        .chain(pins.iter().copied())
        .collect();
    ensure_venv(
        &format!("scssl-venv-anndata-{version}"),
        &format!("import anndata; assert anndata.__version__ == '{version}'"),
        &packages,
    )
}

/// scvi-tools 1.1.6 with the pins its imports need today (numpyro, jax, anndata and pandas of
/// its time; `pkg_resources` from an older setuptools).
const SCVI_TOOLS: &[&str] = &[
    "scvi-tools==1.1.6",
    "numpyro==0.15.0",
    "jax==0.4.28",
    "jaxlib==0.4.28",
    "flax==0.8.4",
    "optax==0.2.2",
    "chex==0.1.86",
    "orbax-checkpoint==0.5.16",
    "anndata==0.10.9",
    // pandas 3 reads strings as StringArray, which anndata 0.10 cannot write
    "pandas==2.2.3",
    "setuptools<70",
];

/// A venv `~/.cache/scssl-venv-scvi` holding scvi-tools (for the scVI goldens).
pub(crate) fn scvi_venv() -> Result<PathBuf> {
    // pandas too: a venv made before its pin has pandas 3, which anndata 0.10 cannot write
    ensure_venv(
        "scssl-venv-scvi",
        "import scvi, pandas; assert scvi.__version__ == '1.1.6' and pandas.__version__ == '2.2.3'",
        SCVI_TOOLS,
    )
}

pub(crate) fn run() -> Result {
    let scvi_py = scvi_venv()?;
    let mut c = Command::new(&scvi_py);
    c.arg(root().join("conformance/make_scvi_fixtures.py"))
        .current_dir(root());
    run_status(c, "conformance/make_scvi_fixtures.py")?;
    // scib-metrics' values: every metric, and its own Benchmarker's table
    let scib_py = scib_venv()?;
    for script in ["make_metric_fixtures.py", "make_benchmarker_fixtures.py"] {
        let mut c = Command::new(&scib_py);
        c.arg(root().join("conformance").join(script))
            .current_dir(root());
        run_status(c, &format!("conformance/{script}"))?;
    }
    let py = venv_python()?;
    let mut c = Command::new(&py);
    c.arg(root().join("conformance/make_data_fixtures.py"))
        .current_dir(root());
    run_status(c, "conformance/make_data_fixtures.py")?;
    let mut c = Command::new(&py);
    c.arg(root().join("conformance/make_anndata_fixtures.py"))
        .current_dir(root());
    run_status(c, "conformance/make_anndata_fixtures.py")?;
    // PyTorch (CPU) for the method goldens; scikit-learn comes with scanpy
    crate::perf::ensure_module(&py, "torch", "torch")?;
    for script in [
        "make_umap_fixtures.py",
        // the single-cell methods' networks and losses against PyTorch (and scikit-learn)
        "make_claire_fixtures.py",
        "make_concerto_fixtures.py",
        "make_scclip_fixtures.py",
        "make_scbutterfly_fixtures.py",
        "make_sctel_fixtures.py",
    ] {
        let mut c = Command::new(&py);
        c.arg(root().join("conformance").join(script))
            .current_dir(root());
        run_status(c, &format!("conformance/{script}"))?;
    }
    // files written by us must read back in Python anndata with identical content
    let scssl = scssl_release()?;
    let dir = std::env::temp_dir().join(format!("scssl-fixtures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for ext in ["h5ad", "zarr"] {
        let sim = dir.join(format!("sim.{ext}"));
        let pp = dir.join(format!("pp.{ext}"));
        let mut s = Command::new(&scssl);
        s.args([
            "simulate",
            "--cells",
            "500",
            "--genes",
            "300",
            "--proteins",
            "5",
            "-o",
        ])
        .arg(&sim);
        run_status(s, "scssl simulate")?;
        let mut p = Command::new(&scssl);
        p.args(["preprocess"])
            .arg(&sim)
            .arg("-o")
            .arg(&pp)
            .args(["--n-hvg", "100", "--n-pcs", "20"]);
        run_status(p, "scssl preprocess")?;
        let mut c = Command::new(&py);
        c.arg(root().join("conformance/check_python_reads.py"))
            .arg(&sim)
            .arg(&pp);
        run_status(c, "conformance/check_python_reads.py")?;
    }
    // every anndata-written fixture, rewritten by scssl (h5ad and zarr), reads back the same
    let mut c = Command::new(&py);
    c.arg(root().join("conformance/check_python_roundtrip.py"))
        .arg(&scssl)
        .arg(root().join("conformance/fixtures/anndata"))
        .arg(dir.join("roundtrip"));
    run_status(c, "conformance/check_python_roundtrip.py")?;
    // and in the older anndata releases users still run (each in a venv of its own)
    for (version, pins) in OLDER_ANNDATA {
        let py = pinned_venv(version, pins)?;
        let mut c = Command::new(&py);
        c.arg(root().join("conformance/check_python_roundtrip.py"))
            .arg(&scssl)
            .arg(root().join("conformance/fixtures/anndata"))
            .arg(dir.join(format!("roundtrip-{version}")));
        run_status(c, &format!("check_python_roundtrip.py (anndata {version})"))?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("fixtures regenerated and Python reads our files back");
    Ok(())
}

/// The venv of the Python package's tests (`~/.cache/scssl-venv-py`): maturin, pytest and what
/// the tests import, from PyPI; created or repaired on first use.
fn package_venv() -> Result<PathBuf> {
    ensure_venv(
        "scssl-venv-py",
        "import maturin, pytest, numpy, pandas, anndata, matplotlib",
        &[
            "maturin>=1.7,<2",
            "pytest>=7",
            "numpy",
            "pandas",
            "anndata>=0.10",
            "matplotlib",
        ],
    )
}

/// Builds the `scssl` Python package (scssl-py) as a wheel with maturin (`release`: optimised,
/// for timings) and installs it into its venv; returns that venv's Python.
pub(crate) fn python_package(release: bool) -> Result<PathBuf> {
    let py = package_venv()?;
    let wheels = crate::target_dir().join("wheels");
    // a wheel left from an earlier build must not be the one installed
    if let Ok(entries) = std::fs::read_dir(&wheels) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("scssl-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let mut build = Command::new(&py);
    build
        .args(["-m", "maturin", "build", "--manifest-path"])
        .arg(root().join("scssl-py/Cargo.toml"))
        .arg("--out")
        .arg(&wheels)
        .arg("-i")
        .arg(&py)
        .env("CARGO_TARGET_DIR", crate::target_dir());
    if release {
        build.arg("--release");
    }
    run_status(build, "maturin build (scssl-py)")?;
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| format!("{}: {e}", wheels.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("maturin built no wheel")?;
    let mut install = Command::new(&py);
    install
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--force-reinstall",
            "--no-deps",
        ])
        .arg(&wheel);
    run_status(install, "pip install the scssl wheel")?;
    Ok(py)
}

/// Builds and installs the Python package, then runs its pytest suite: part of
/// `cargo xtask test`.
pub(crate) fn python_package_tests() -> Result {
    let py = python_package(false)?;
    let mut test = Command::new(&py);
    test.args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root().join("scssl-py/tests"))
        .current_dir(root().join("scssl-py"))
        .env("MPLBACKEND", "Agg");
    run_status(test, "pytest scssl-py/tests")
}

//! `cargo xtask perf python`: the `Benchmarker` with the same metric set on both sides, scssl's Python
//! package against scib-metrics', on the same simulated embeddings, in one run.

use std::process::Command;

use crate::perf::{field, measure};
use crate::{Result, root};

/// Runs both sides at each size (`--sizes 10000,100000`; scib-metrics only up to
/// `--python-max`) and prints wall time, peak memory and the speed-up.
///
/// Where scib-metrics runs, ours runs before and after it and counts with the mean of the two:
/// this machine's speed drifts by up to a quarter over minutes, and scib-metrics' minutes-long
/// run averages over that drift where one seconds-long run of ours would sample one moment.
pub fn run(args: &[String]) -> Result {
    let (sizes, py_max) = crate::perf::sizes_and_python_max(args, "10000,100000")?;
    // ours: the release wheel in the package's venv
    let ours_py = crate::fixtures::python_package(true)?;
    // theirs: scib-metrics in its own venv
    let scib_py = crate::fixtures::scib_venv()?;
    let script = root().join("conformance/perf_python.py");
    let cores = crate::perf::cores();
    println!(
        "\nperf python: Benchmarker, the same metrics on both sides (scSSL-Bench's bio set with Leiden NMI/ARI; BRAS, iLISI, kBET, graph connectivity, PCR), 30-dim simulated embedding, 10 cell types, 4 batches, {cores} cores; JAX compilation excluded (untimed warm-up)"
    );
    println!(
        "| cells | scssl s | scssl runs (before / after scib-metrics) | scib-metrics s | speed-up | scssl peak MB | scib-metrics peak MB | Total (scssl / scib-metrics) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let side = |py: &std::path::Path, which: &str| {
            let mut c = Command::new(py);
            c.arg(&script)
                .arg(which)
                .arg(n.to_string())
                .env("PYTHONWARNINGS", "ignore");
            measure(c, "perf_python.py")
        };
        let ours = side(&ours_py, "ours")?;
        let theirs = if n <= py_max {
            Some(side(&scib_py, "scib")?)
        } else {
            None
        };
        let ours_after = match theirs {
            Some(_) => Some(side(&ours_py, "ours")?),
            None => None,
        };
        let o_before = field(&ours.json, "seconds").unwrap_or(f64::NAN);
        let (o, runs, ours_mb) = match &ours_after {
            Some(a) => {
                let o_after = field(&a.json, "seconds").unwrap_or(f64::NAN);
                (
                    (o_before + o_after) / 2.0,
                    format!("{o_before:.2} / {o_after:.2}"),
                    ours.max_rss_mb.max(a.max_rss_mb),
                )
            }
            None => (o_before, format!("{o_before:.2}"), ours.max_rss_mb),
        };
        let (t, t_mb, t_total) = match &theirs {
            Some(m) => (
                field(&m.json, "seconds").unwrap_or(f64::NAN),
                format!("{:.0}", m.max_rss_mb),
                format!("{:.3}", field(&m.json, "total").unwrap_or(f64::NAN)),
            ),
            None => (f64::NAN, "—".into(), "—".into()),
        };
        if !t.is_nan() {
            crate::perf_all::record(
                "python",
                format!("Benchmarker, {n} cells"),
                o,
                t,
                Some(30.0),
                format!(
                    "scib-metrics' JAX compilation excluded; Total {:.3} / {t_total}",
                    field(&ours.json, "total").unwrap_or(f64::NAN)
                ),
            );
        }
        println!(
            "| {n} | {o:.2} | {runs} | {} | {} | {ours_mb:.0} | {t_mb} | {:.3} / {t_total} |",
            if t.is_nan() {
                "—".into()
            } else {
                format!("{t:.2}")
            },
            if t.is_nan() {
                "—".into()
            } else {
                format!("{:.1}×", t / o)
            },
            field(&ours.json, "total").unwrap_or(f64::NAN),
        );
    }
    Ok(())
}

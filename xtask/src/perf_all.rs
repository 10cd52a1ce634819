//! `cargo xtask perf all`: every side-by-side comparison of `cargo xtask perf` in one run, then
//! one table of their ratios against the goals of the performance issue. Each comparison
//! records its headline rows here as it prints its own table.

use std::sync::Mutex;

use crate::Result;

/// One headline comparison: ours against a reference tool, in seconds (lower is better).
struct Ratio {
    area: &'static str,
    what: String,
    ours_s: f64,
    theirs_s: f64,
    /// The speed-up the goal asks for (`theirs / ours`), when there is one.
    goal: Option<f64>,
    note: String,
}

static RATIOS: Mutex<Vec<Ratio>> = Mutex::new(Vec::new());

/// Records one comparison for the summary table of `perf all` (a no-op cost elsewhere).
pub(crate) fn record(
    area: &'static str,
    what: impl Into<String>,
    ours_s: f64,
    theirs_s: f64,
    goal: Option<f64>,
    note: impl Into<String>,
) {
    if let Ok(mut v) = RATIOS.lock() {
        v.push(Ratio {
            area,
            what: what.into(),
            ours_s,
            theirs_s,
            goal,
            note: note.into(),
        });
    }
}

/// Runs `perf data`, `perf metrics`, `perf train` and `perf python` (smaller sizes with
/// `--quick`), then prints every recorded ratio in one table. A comparison that fails is
/// reported and the others still run.
pub fn run(args: &[String]) -> Result {
    let quick = args.iter().any(|a| a == "--quick");
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let steps: Vec<(&str, Vec<String>)> = if quick {
        vec![
            ("data", s(&["--cells", "20000"])),
            ("metrics", s(&["--sizes", "10000"])),
            ("train", s(&["--cells", "10000"])),
            ("python", s(&["--sizes", "10000"])),
        ]
    } else {
        vec![
            ("data", s(&["--cells", "100000"])),
            ("metrics", s(&["--sizes", "10000,100000"])),
            ("train", s(&["--cells", "50000"])),
            ("python", s(&["--sizes", "10000,100000"])),
        ]
    };
    let mut failed = vec![];
    for (name, rest) in &steps {
        let mut a = vec![name.to_string()];
        a.extend(rest.iter().cloned());
        println!("\n== cargo xtask perf {} ==", a.join(" "));
        if let Err(e) = crate::perf::run(&a) {
            println!("perf {name} failed: {e}");
            failed.push(*name);
        }
    }
    let cores = crate::perf::cores();
    println!(
        "\nperf all{}: every ratio, {cores} cores (ratio = reference time / scssl time; higher is better)",
        if quick { " --quick" } else { "" }
    );
    println!("| area | comparison | scssl s | reference s | ratio | goal | met | note |");
    println!("|---|---|---|---|---|---|---|---|");
    let ratios = RATIOS.lock().map_err(|_| "the ratio table is poisoned")?;
    for r in ratios.iter() {
        let ratio = r.theirs_s / r.ours_s.max(1e-12);
        let (goal, met) = match r.goal {
            Some(g) => (
                format!("≥ {g}×"),
                if ratio >= g { "yes" } else { "**no**" }.to_string(),
            ),
            None => ("—".into(), "—".into()),
        };
        println!(
            "| {} | {} | {:.3} | {:.3} | {ratio:.2}× | {goal} | {met} | {} |",
            r.area, r.what, r.ours_s, r.theirs_s, r.note
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("perf all: {} failed", failed.join(", ")))
    }
}

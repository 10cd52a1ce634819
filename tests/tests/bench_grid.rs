//! `scssl bench` end to end: a small grid gives a complete report; a grid killed midway resumes
//! without recomputing or losing runs; bad configs are rejected before anything trains; every
//! shipped config parses.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{GRID, attempts, bench_cmd, scssl, statuses, tiny_grid, write_config};

#[test]
fn small_grid_produces_a_complete_report() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), GRID);
    let out = dir.path().join("results");
    let o = bench_cmd(&cfg, &out)
        .args(["--jobs", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("9 runs (0 finished earlier, 9 to run)"),
        "{stdout}"
    );
    assert!(stdout.contains("9 runs done, 0 failed"), "{stdout}");
    let report = out.join("report");
    for f in [
        "report.md",
        "report.html",
        "summary.csv",
        "summary.json",
        "runs.csv",
        "runs.json",
        "total_by_method.svg",
        "metric_heatmap.svg",
        "cost_time.svg",
        "cost_memory.svg",
        "ranking.svg",
        "ranking.csv",
        "ranking.json",
        "scib_table_0_simulated.svg",
    ] {
        let len = std::fs::metadata(report.join(f))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 0, "{f} missing or empty");
    }
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    // every picture the Markdown report shows is a file next to it; the HTML inlines them all
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    let pictures: Vec<&str> = md
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .collect();
    assert!(pictures.len() >= 6, "{pictures:?}");
    for p in &pictures {
        let len = std::fs::metadata(report.join(p))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 0, "report.md shows {p}, which is missing or empty");
    }
    // each figure as SVG and as PNG (a real PNG, linked from both documents)
    let svgs: Vec<&&str> = pictures.iter().filter(|p| p.ends_with(".svg")).collect();
    for svg in &svgs {
        let png = svg.replace(".svg", ".png");
        assert!(pictures.contains(&png.as_str()), "report.md links {png}");
        assert!(
            html.contains(&format!("href=\"{png}\"")),
            "report.html links {png}"
        );
        let bytes = std::fs::read(report.join(&png)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{png}");
    }
    assert_eq!(
        html.matches("<svg").count(),
        svgs.len(),
        "the HTML inlines every plot"
    );
    let summary = std::fs::read_to_string(report.join("summary.csv")).unwrap();
    assert!(summary.contains("total_scaled_mean") && summary.contains("total_mean"));
    for m in [
        "simclr",
        "byol",
        "clear",
        "mask_only",
        "Macro-F1",
        "Mean Pearson",
        "Training s",
    ] {
        assert!(md.contains(m), "{m} not in the report:\n{md}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("summary.json")).unwrap())
            .unwrap();
    let groups = summary.as_array().unwrap();
    assert_eq!(groups.len(), 5, "2 methods × 2 augmentations, and PCA");
    for g in groups {
        let baseline = g["method"] == "pca";
        assert_eq!(
            g["n_done"],
            if baseline { 1 } else { 2 },
            "two seeds each, PCA once"
        );
        assert!(g["values"]["total"][0].as_f64().unwrap() > 0.0);
    }
    // the scIB table ends with the unintegrated baseline, as scib-metrics' tables do
    let table = std::fs::read_to_string(report.join("scib_table_0_simulated.svg")).unwrap();
    let pca_at = table.find("Unintegrated (PCA)").expect("the PCA row");
    for m in ["simclr", "byol"] {
        assert!(
            table.rfind(m).unwrap() < pca_at,
            "{m} is listed after the baseline"
        );
    }
    assert!(md.contains("Unintegrated (PCA)"), "{md}");
    // the baseline's UMAP panel is named the same way
    assert!(
        html.contains("Unintegrated (PCA) · h16 (seed 0)"),
        "the PCA panel"
    );
    // every run directory is complete
    for e in std::fs::read_dir(out.join("runs")).unwrap().flatten() {
        for f in [
            "config.json",
            "status.json",
            "metrics.json",
            "run.json",
            "embedding.npy",
            "training_curve.csv",
            "attempts.txt",
        ] {
            assert!(
                e.path().join(f).exists(),
                "{f} missing in {}",
                e.path().display()
            );
        }
        for f in ["progress.json", "lock"] {
            assert!(
                !e.path().join(f).exists(),
                "{f} left in {}",
                e.path().display()
            );
        }
    }
    // a run directory with a damaged config is left out of the report, with a warning
    let victim = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let saved = std::fs::read(victim.join("config.json")).unwrap();
    std::fs::write(victim.join("config.json"), &saved[..saved.len() / 2]).unwrap();
    let o = scssl().arg("report").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("config.json"),
        "the warning names the file"
    );
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("8 runs"), "{md}");
    std::fs::write(victim.join("config.json"), saved).unwrap();
    // a re-run skips everything
    let o = bench_cmd(&cfg, &out).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("9 finished earlier, 0 to run"), "{stdout}");
}

#[test]
fn an_interrupted_grid_resumes_without_recomputing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &GRID.replace("tasks: {batch_correction: true, annotation: true, modality_prediction: true, kbet: false}", "tasks: {batch_correction: true, kbet: false}"),
    );
    let out = dir.path().join("results");
    let mut child = bench_cmd(&cfg, &out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // wait until at least two runs are done, then kill the whole grid
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let done = statuses(&out)
            .iter()
            .filter(|(_, s)| s.contains("\"done\""))
            .count();
        if done >= 2 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // kill the grid, then its `scssl run-one` children (collected first: once the grid is
    // dead they are orphans), so nothing is left to record the interruption
    let parent = child.id().to_string();
    let children: Vec<std::ffi::OsString> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            stat.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                == Some(parent.as_str())
        })
        .map(|e| e.file_name())
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    for pid in children {
        let _ = Command::new("kill").arg("-9").arg(pid).status();
    }
    let before: Vec<(String, String)> = statuses(&out)
        .into_iter()
        .filter(|(_, s)| s.contains("\"done\""))
        .collect();
    assert!(
        before.len() >= 2 && before.len() < 9,
        "{} runs done at the kill",
        before.len()
    );
    let o = bench_cmd(&cfg, &out).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "{} finished earlier, {} to run",
            before.len(),
            9 - before.len()
        )),
        "{stdout}"
    );
    let after = statuses(&out);
    assert_eq!(after.len(), 9, "no run lost");
    assert!(after.iter().all(|(_, s)| s.contains("\"done\"")));
    for (name, s) in &before {
        let now = &after.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(s, now, "{name} was recomputed");
        assert_eq!(attempts(&out, name), 1, "{name} was recomputed");
    }
}

#[test]
fn two_grids_on_one_store_compute_each_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &GRID.replace(
            "tasks: {batch_correction: true, annotation: true, modality_prediction: true, kbet: false}",
            "tasks: {batch_correction: true, kbet: false}",
        ),
    );
    let out = dir.path().join("results");
    let start = || {
        bench_cmd(&cfg, &out)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    for child in [a, b] {
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let runs = statuses(&out);
    assert_eq!(runs.len(), 9);
    for (name, s) in &runs {
        assert!(s.contains("\"done\""), "{name}: {s}");
        assert_eq!(attempts(&out, name), 1, "{name} computed twice");
        assert!(!out.join("runs").join(name).join("lock").exists());
    }
    // the report both wrote is complete
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary.as_array().unwrap().len(), 5);
}

#[test]
fn bad_configs_are_rejected_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let fails = |text: &str, args: &[&str]| -> String {
        let cfg = write_config(dir.path(), text);
        let o = scssl()
            .arg("bench")
            .arg(&cfg)
            .args(args)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(!out.join("runs").exists(), "nothing may start");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = fails("model: {method: simclr, hiden_dim: 8}\n", &[]);
    assert!(
        e.contains("model.hiden_dim") && e.contains("model.hidden_dim"),
        "{e}"
    );
    let e = fails("model: {method: simclrr}\n", &[]);
    assert!(e.contains("simclrr"), "{e}");
    let e = fails("data: {path: /nonexistent/x.h5ad}\n", &[]);
    assert!(e.contains("/nonexistent/x.h5ad"), "{e}");
    let e = fails("data: {path: simulated, label_key: celltype}\n", &[]);
    assert!(e.contains("celltype"), "{e}");
    let e = fails("model: {method: simclr}\n", &["training.epoch=3"]);
    assert!(e.contains("training.epochs"), "{e}");
    // this test crate builds scssl without the `cuda` feature
    let e = fails("model: {method: simclr}\n", &["training.device=cuda"]);
    assert!(e.contains("no CUDA support"), "{e}");
    let e = fails("model: {method: [simclr\n", &[]);
    assert!(e.contains("YAML"), "{e}");
    let e = fails(
        "data: {path: simulated, holdout_batches: [batch_9]}\ntasks: {annotation: true}\n",
        &[],
    );
    assert!(e.contains("batch_9"), "{e}");
}

#[test]
fn shipped_configs_parse() {
    // the run-time CARGO_MANIFEST_DIR first (right even for a binary built in another checkout)
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../configs");
    let mut n = 0;
    for dir in [root.clone(), root.join("paper")] {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "yaml") {
                let g = scssl_bench::config::load_grid(&p, &[])
                    .unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
                assert!(!g.runs.is_empty());
                let mut ids = std::collections::HashSet::new();
                for run in &g.runs {
                    // every value (method, preset or steps, schedule, …) is valid
                    run.validate()
                        .unwrap_or_else(|e| panic!("{}: {}: {e:#}", p.display(), run.id()));
                    let id = run.id();
                    assert!(id.len() < 200, "{id}: too long for a directory name");
                    assert!(ids.insert(id.clone()), "{}: {id} twice", p.display());
                }
                n += 1;
            }
        }
    }
    assert!(n >= 27, "{n} configs");
    // the methods comparison: scVI as the benchmark ran it, with scvi-tools' training
    // defaults, the generic methods with the reference's, and the unintegrated PCA row
    let g = scssl_bench::config::load_grid(&root.join("paper/methods_pbmc.yaml"), &[]).unwrap();
    let scvi = g.runs.iter().find(|r| r.model.method == "scvi").unwrap();
    assert_eq!(scvi.model.scvi.n_layers, 8);
    assert_eq!(scvi.model.scvi.n_latent, Some(30));
    assert_eq!(
        (
            scvi.training.lr,
            scvi.training.batch_size,
            scvi.training.epochs
        ),
        (1e-3, 128, 400)
    );
    let simclr = g.runs.iter().find(|r| r.model.method == "simclr").unwrap();
    assert_eq!(
        (
            simclr.training.lr,
            simclr.training.batch_size,
            simclr.training.epochs
        ),
        (1e-4, 256, 100)
    );
    assert_eq!(simclr.training.schedule.to_string(), "step");
    // the masked autoencoder with its own defaults (AdamW, StepLR(2, 0.9), clipping at 1)
    let mae = g.runs.iter().find(|r| r.model.method == "mae").unwrap();
    assert_eq!(serde_json::json!(mae.training.optimizer), "adamw");
    assert_eq!(mae.training.schedule.to_string(), "step:2:0.9");
    assert_eq!(mae.training.gradient_clip, Some(1.0));
    assert_eq!(g.runs.iter().filter(|r| r.model.method == "pca").count(), 1);
    assert_eq!(g.runs.len(), 9 * 2 + 1);
    // the DSBN ablation: the seven generic methods with and without DSBN, plus PCA
    let g = scssl_bench::config::load_grid(&root.join("paper/dsbn_immune.yaml"), &[]).unwrap();
    assert_eq!(g.runs.iter().filter(|r| r.model.dsbn).count(), 7 * 2);
    assert_eq!(g.runs.len(), 7 * 2 * 2 + 1);
    // totalVI on CITE-seq with scvi-tools' training defaults
    let g = scssl_bench::config::load_grid(&root.join("paper/totalvi_neurips.yaml"), &[]).unwrap();
    let t = g.runs.iter().find(|r| r.model.method == "totalvi").unwrap();
    assert_eq!((t.training.lr, t.training.batch_size), (4e-3, 256));
}

#[test]
fn a_single_batch_dataset_reports_undefined_batch_scores() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &tiny_grid("one-batch", 1, "0.001"));
    let out = dir.path().join("results");
    let o = bench_cmd(&cfg, &out).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("single batch"),
        "a warning names it: {stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report/summary.json")).unwrap())
            .unwrap();
    // the row stays in the main table, with its undefined values shown as –
    let md = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    assert!(
        md.lines()
            .any(|l| l.contains("| simclr |") && l.contains("| – |")),
        "{md}"
    );
    let g = &summary[0];
    assert_eq!(g["n_done"], 1);
    assert!(g["values"]["bio"][0].as_f64().is_some(), "{g}");
    for k in ["batch", "total", "graph_connectivity"] {
        assert!(
            g["values"].get(k).is_none_or(|v| v[0].is_null()),
            "{k} must be undefined: {g}"
        );
    }
}

#[test]
fn a_failing_run_is_recorded_and_the_grid_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // a learning rate of 1e30 turns the loss into NaN at the first step
    let cfg = write_config(dir.path(), &tiny_grid("one-fails", 3, "[1.0e+30, 0.001]"));
    let out = dir.path().join("results");
    let o = bench_cmd(&cfg, &out).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a failed run fails the command");
    assert!(stdout.contains("1 runs done, 1 failed"), "{stdout}");
    assert!(stderr.contains("1 run failed"), "{stderr}");
    let md = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    assert!(md.contains("## Failed runs") && md.contains("NaN"), "{md}");
    // the two rows differ only in the learning rate, and the table says so
    assert!(
        md.contains("training.lr=0.001") && md.contains("training.lr=1e+30"),
        "{md}"
    );
    let runs = statuses(&out);
    assert_eq!(
        runs.iter()
            .filter(|(_, s)| s.contains("\"failed\""))
            .count(),
        1
    );
    // a re-run leaves the failed run alone; --retry-failed runs it again (and it fails again)
    let o = bench_cmd(&cfg, &out).output().unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 finished earlier, 0 to run"));
    let o = bench_cmd(&cfg, &out)
        .arg("--retry-failed")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 to run"));
}

#[test]
fn results_do_not_depend_on_the_number_of_parallel_runs() {
    // --jobs 1 gives each run every core, --jobs 2 half of them: same embeddings, same scores
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &GRID
            .replace("method: [simclr, byol]", "method: simclr")
            .replace("augmentation: [clear, mask_only]", "augmentation: clear"),
    );
    let run = |jobs: &str| {
        let out = dir.path().join(format!("results-{jobs}"));
        let o = bench_cmd(&cfg, &out)
            .args(["--jobs", jobs])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let (a, b) = (run("1"), run("2"));
    let names: Vec<String> = statuses(&a).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 3, "two seeds and the PCA baseline");
    for name in &names {
        let file =
            |root: &Path, f: &str| std::fs::read(root.join("runs").join(name).join(f)).unwrap();
        assert_eq!(
            file(&a, "embedding.npy"),
            file(&b, "embedding.npy"),
            "{name}: embedding differs"
        );
        let scores = |root: &Path| {
            let mut m: serde_json::Value =
                serde_json::from_slice(&file(root, "metrics.json")).unwrap();
            // timings differ by nature; everything else must not
            m["batch_correction"]["timings"] = serde_json::Value::Null;
            m
        };
        assert_eq!(scores(&a), scores(&b), "{name}: scores differ");
    }
}

#[test]
fn combined_presets_and_explicit_steps_run_and_are_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &tiny_grid("augs", 3, "0.001").replace(
            "augmentation: clear",
            "augmentation: [mask+gauss, {steps: [{augment: {mask: {rate: 0.3}}, prob: 0.5}]}, \
             {steps: [{augment: {mask: {rate: 0.7}}, prob: 0.5}]}]",
        ),
    );
    let out = dir.path().join("results");
    let o = bench_cmd(&cfg, &out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    for label in [
        "| mask+gauss |",
        "| mask(rate=0.3)@0.5 |",
        "| mask(rate=0.7)@0.5 |",
    ] {
        assert!(md.contains(label), "{label} not in\n{md}");
    }
    assert!(
        !md.contains("settings"),
        "labels alone tell the rows apart:\n{md}"
    );
}

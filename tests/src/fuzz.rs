//! The fuzz harnesses: what each `cargo fuzz` target of `fuzz/` does with its input bytes.
//!
//! They live here, on stable Rust, so that `tests/tests/fuzz_corpus.rs` replays every seed
//! and every crash the fuzzer found (`fuzz/seeds/<target>/`, `fuzz/regressions/<target>/`)
//! through exactly the code the fuzzer ran. A harness returns normally whatever the input
//! is: an error from the code under test is the expected answer to a damaged input; a panic,
//! a crash, a hang or an allocation beyond the fuzzer's memory limit is a bug.

use std::path::Path;

use ndarray::Array2;

/// The fuzz targets, by name (each is a file `fuzz/fuzz_targets/<name>.rs`).
pub const TARGETS: &[&str] = &["h5ad_read", "zarr_read", "config_grid", "augment_config"];

/// Runs the harness of `target` on `data`; `false` for an unknown target name.
pub fn run(target: &str, data: &[u8]) -> bool {
    match target {
        "h5ad_read" => h5ad_read(data),
        "zarr_read" => zarr_read(data),
        "config_grid" => config_grid(data),
        "augment_config" => augment_config(data),
        _ => return false,
    }
    true
}

/// Reads every view of an AnnData file the way `scssl inspect`, `eval` and `preprocess` do.
fn read_every_way(path: &Path) {
    let _ = scssl_data::io::summarize(path);
    if let Ok(backed) = scssl_data::io::read_backed(path) {
        let n = backed.n_obs();
        let _ = backed.read_rows(0..n.min(64));
    }
    let _ = scssl_data::io::read(path);
    let _ = scssl_data::io::read_counts(path, &scssl_data::CountsSource::Raw);
}

/// `h5ad_read`: the bytes are an `.h5ad` file.
pub fn h5ad_read(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("fuzz.h5ad");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    read_every_way(&path);
}

/// The separator between the files of a zarr store in a `zarr_read` input.
pub const ZARR_FILE_MARK: &[u8] = b"\n@@file ";

/// Packs the files of a zarr store (paths relative to its root, `/`-separated) into one
/// `zarr_read` input: each file is `ZARR_FILE_MARK`, its path, a newline, its bytes.
pub fn pack_zarr(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, bytes) in files {
        out.extend_from_slice(ZARR_FILE_MARK);
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(bytes);
    }
    out
}

/// Packs the zarr store at `root` (see [`pack_zarr`]), files in name order.
pub fn pack_zarr_dir(root: &Path) -> std::io::Result<Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out)?;
            } else {
                let rel = p.strip_prefix(root).unwrap_or(&p);
                let name = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((name, std::fs::read(&p)?));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(root, root, &mut files)?;
    Ok(pack_zarr(&files))
}

/// Splits a `zarr_read` input into (relative path, bytes); paths that would leave the store
/// (absolute, `..`, empty parts) are dropped.
pub fn unpack_zarr(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + ZARR_FILE_MARK.len() <= data.len() {
        if &data[i..i + ZARR_FILE_MARK.len()] == ZARR_FILE_MARK {
            starts.push(i);
            i += ZARR_FILE_MARK.len();
        } else {
            i += 1;
        }
    }
    let mut files = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(data.len());
        let body = &data[s + ZARR_FILE_MARK.len()..end];
        let Some(nl) = body.iter().position(|&b| b == b'\n') else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(&body[..nl]) else {
            continue;
        };
        let safe = !name.is_empty()
            && !name.starts_with('/')
            && name
                .split('/')
                .all(|p| !p.is_empty() && p != "." && p != ".." && !p.contains('\0'));
        if safe {
            files.push((name.to_string(), body[nl + 1..].to_vec()));
        }
    }
    files
}

/// `zarr_read`: the bytes are the files of a zarr store (see [`pack_zarr`]), metadata and
/// chunks alike.
pub fn zarr_read(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let root = dir.path().join("fuzz.zarr");
    if std::fs::create_dir_all(&root).is_err() {
        return;
    }
    for (name, bytes) in unpack_zarr(data) {
        let p = root.join(&name);
        // a name used both as a file and as a directory: the first one wins
        if let Some(parent) = p.parent()
            && std::fs::create_dir_all(parent).is_ok()
            && !p.is_dir()
        {
            let _ = std::fs::write(&p, bytes);
        }
    }
    read_every_way(&root);
}

/// `config_grid`: the bytes are a YAML config, then (after the first NUL byte) one
/// `key=value` override per line, as `scssl bench config.yaml key=value …` gets them.
pub fn config_grid(data: &[u8]) {
    let (yaml, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(yaml) = std::str::from_utf8(yaml) else {
        return;
    };
    let overrides: Vec<String> = String::from_utf8_lossy(rest)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if let Ok(grid) = scssl_bench::config::grid_from_text(yaml, Path::new("fuzz.yaml"), &overrides)
    {
        for run in &grid.runs {
            let _ = run.id();
            let _ = run.model_config(16);
            let _ = run.train_config();
            let _ = run.augmentation.config();
            let _ = run.augmentation.label();
        }
    }
}

/// `augment_config`: the bytes are an augmentation (a preset name or `steps:` as YAML, as a
/// config's `augmentation:` holds it), then the first byte after a NUL seeds the pipeline.
/// A valid pipeline is built and makes views of a small matrix with neighbour graphs.
pub fn augment_config(data: &[u8]) {
    let (yaml, seed) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], data.get(i + 1).copied().unwrap_or(0) as u64),
        None => (data, 0),
    };
    let Ok(yaml) = std::str::from_utf8(yaml) else {
        return;
    };
    let Ok(spec) = yaml_serde::from_str::<scssl_bench::train::AugmentSpec>(yaml) else {
        return;
    };
    let Ok(cfg) = spec.config() else { return };
    let _ = spec.label();
    let Ok(pipe) = scssl_augment::Pipeline::new(&cfg, seed) else {
        return;
    };
    // 12 cells × 8 genes in two batches: enough for kNN, MNN and BBKNN partners to exist
    let (n, g) = (12, 8);
    let x = Array2::from_shape_fn((n, g), |(i, j)| ((i * 7 + j * 3) % 5) as f32);
    let batches: Vec<u32> = (0..n as u32).map(|i| i % 2).collect();
    let Ok(graphs) = scssl_augment::NeighbourGraphs::build(x.view(), &batches, 3, 3, seed) else {
        return;
    };
    let ctx = graphs.context(x.view());
    if pipe.check(&ctx).is_err() {
        return;
    }
    let cells: Vec<usize> = (0..n).collect();
    for epoch in 0..2 {
        let _ = pipe.views(&cells, epoch, &ctx);
    }
}

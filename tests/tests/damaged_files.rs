//! The damaged-file sweep: 300 seeded random damages (a few bytes overwritten, or the file cut
//! short) of small `.h5ad` files and 300 of `.zarr` stores, each read by `scssl inspect` in a
//! child process. None may die of a signal or run past 20 s; every failure is an error message
//! that names the file, never a panic. Half of the originals come from scssl's writer, half
//! from anndata's (`conformance/fixtures/anndata/`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DAMAGES_PER_ORIGINAL: usize = 150;
const HANG_LIMIT: Duration = Duration::from_secs(20);

/// splitmix64: the sweep's own seeded generator (the damages must be the same on every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Damages `bytes`: a third of the time cuts them short, otherwise overwrites 1–8 bytes.
fn damage(bytes: &mut Vec<u8>, rng: &mut Rng) -> String {
    if bytes.is_empty() {
        return "empty file".into();
    }
    if rng.below(3) == 0 {
        let cut = rng.below(bytes.len());
        bytes.truncate(cut);
        format!("cut to {cut} bytes")
    } else {
        let n = 1 + rng.below(8);
        let mut at = Vec::new();
        for _ in 0..n {
            let i = rng.below(bytes.len());
            bytes[i] = rng.next() as u8;
            at.push(i);
        }
        format!("bytes {at:?} overwritten")
    }
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    for f in files_under(from) {
        let dest = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap();
    }
}

#[derive(Default)]
struct Tally {
    read_fine: usize,
    clear_errors: usize,
    problems: Vec<String>,
}

/// Runs `scssl inspect path`; a signal, a hang, a panic or an error not naming `name` is a problem.
fn inspect(path: &Path, name: &str, what: &str, tally: &mut Tally) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scssl-e2e"))
        .arg("inspect")
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > HANG_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            tally.problems.push(format!("{what}: hung for over 20 s"));
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    use std::io::Read;
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    if status.success() {
        tally.read_fine += 1;
    } else if status.code().is_none() {
        tally
            .problems
            .push(format!("{what}: killed by a signal ({status}); {stderr}"));
    } else if stderr.contains("panicked") || !stderr.contains(name) {
        tally
            .problems
            .push(format!("{what}: unclear failure: {stderr}"));
    } else {
        tally.clear_errors += 1;
    }
}

fn originals(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let own = dir.join(format!("own.{ext}"));
    let sim = scssl_data::sim::simulate(&scssl_data::sim::SimConfig {
        n_cells: 40,
        n_genes: 20,
        n_batches: 2,
        n_cell_types: 3,
        n_proteins: 3,
        seed: 11,
        ..Default::default()
    })
    .unwrap();
    scssl_data::io::write(&sim, &own).unwrap();
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../conformance/fixtures/anndata")
        .join(format!("strings_nullable.{ext}"));
    vec![own, fixture]
}

fn report(kind: &str, tally: &Tally) {
    println!(
        "{kind} sweep: {} damaged copies, {} still read, {} clear errors, {} problems",
        tally.read_fine + tally.clear_errors + tally.problems.len(),
        tally.read_fine,
        tally.clear_errors,
        tally.problems.len()
    );
    assert!(
        tally.problems.is_empty(),
        "{kind}: {} of the damaged copies crashed, hung or failed unclearly:\n{}",
        tally.problems.len(),
        tally.problems.join("\n")
    );
}

#[test]
fn damaged_h5ad_files_give_errors_never_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5C55_1DA7);
    let mut tally = Tally::default();
    for original in originals(dir.path(), "h5ad") {
        let bytes = std::fs::read(&original).unwrap();
        for i in 0..DAMAGES_PER_ORIGINAL {
            let mut b = bytes.clone();
            let how = damage(&mut b, &mut rng);
            let name = format!("damaged{i}.h5ad");
            let p = dir.path().join(&name);
            std::fs::write(&p, &b).unwrap();
            let what = format!("{} {how}", original.display());
            inspect(&p, &name, &what, &mut tally);
            std::fs::remove_file(&p).unwrap();
        }
    }
    report("h5ad", &tally);
}

#[test]
fn damaged_zarr_stores_give_errors_never_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x2A44_D0C5);
    let mut tally = Tally::default();
    for original in originals(dir.path(), "zarr") {
        let files = files_under(&original);
        for i in 0..DAMAGES_PER_ORIGINAL {
            let name = format!("damaged{i}.zarr");
            let store = dir.path().join(&name);
            copy_dir(&original, &store);
            let victim = &files[rng.below(files.len())];
            let rel = victim.strip_prefix(&original).unwrap();
            let mut b = std::fs::read(victim).unwrap();
            let how = damage(&mut b, &mut rng);
            std::fs::write(store.join(rel), &b).unwrap();
            let what = format!("{} {}: {how}", original.display(), rel.display());
            inspect(&store, &name, &what, &mut tally);
            std::fs::remove_dir_all(&store).unwrap();
        }
    }
    report("zarr", &tally);
}

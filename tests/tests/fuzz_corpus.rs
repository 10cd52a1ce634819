//! Replays every fuzz seed (`fuzz/seeds/<target>/`) and every input the fuzzer once crashed
//! on (`fuzz/regressions/<target>/`) through the same harness `cargo fuzz` runs, on stable
//! Rust: a crash that was fixed stays fixed.

use std::path::PathBuf;

use scssl_tests::fuzz::{TARGETS, run};

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file());
    files.sort();
    files
}

#[test]
fn every_target_has_seeds_and_replays_them() {
    for target in TARGETS {
        let seeds = inputs("seeds", target);
        assert!(
            !seeds.is_empty(),
            "fuzz/seeds/{target} is empty (cargo xtask fuzz --seeds writes it)"
        );
        for p in seeds {
            let data = std::fs::read(&p).unwrap();
            assert!(run(target, &data), "{target} is not a harness");
        }
    }
}

#[test]
fn every_crash_the_fuzzer_found_stays_fixed() {
    for target in TARGETS {
        for p in inputs("regressions", target) {
            eprintln!("replaying {}", p.display());
            run(target, &std::fs::read(&p).unwrap());
        }
    }
}

#[test]
fn zarr_inputs_pack_and_unpack() {
    use scssl_tests::fuzz::{pack_zarr, unpack_zarr};
    let files = vec![
        (".zgroup".to_string(), b"{}".to_vec()),
        ("X/0".to_string(), vec![0, 1, 2, b'\n', 3]),
        ("../escape".to_string(), b"x".to_vec()),
    ];
    let back = unpack_zarr(&pack_zarr(&files));
    assert_eq!(
        back,
        files[..2].to_vec(),
        "paths leaving the store are dropped"
    );
}

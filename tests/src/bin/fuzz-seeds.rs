//! Writes the seed corpora of the fuzz targets into `fuzz/seeds/<target>/` (run by
//! `cargo xtask fuzz --seeds`): small AnnData files from `conformance/fixtures/anndata/`
//! (written by anndata) and from scssl's own writer, the repository's configs, and every
//! augmentation preset. Seeds are inputs the readers accept, so the fuzzer starts from deep
//! inside the formats instead of rediscovering their magic numbers.

use std::path::{Path, PathBuf};

use scssl_tests::fuzz::pack_zarr_dir;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no repository root")?
        .to_path_buf();
    let corpus = root.join("fuzz/seeds");
    let fixtures = root.join("conformance/fixtures/anndata");
    let put = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)
    };

    // scssl's own writer: 16 cells × 12 genes, 2 batches, protein in obsm, sparse X
    let tmp = tempfile::tempdir()?;
    let sim = scssl_data::sim::simulate(&scssl_data::sim::SimConfig {
        n_cells: 16,
        n_genes: 12,
        n_batches: 2,
        n_cell_types: 3,
        n_proteins: 2,
        ..Default::default()
    })?;
    let own_h5ad = tmp.path().join("own.h5ad");
    let own_zarr = tmp.path().join("own.zarr");
    scssl_data::io::write(&sim, &own_h5ad)?;
    scssl_data::io::write(&sim, &own_zarr)?;
    put("h5ad_read", "own_writer.h5ad", &std::fs::read(&own_h5ad)?)?;
    put("zarr_read", "own_writer.zarr", &pack_zarr_dir(&own_zarr)?)?;

    // anndata-written fixtures, the smaller ones (libFuzzer mutates small inputs faster)
    for name in [
        "legacy_categorical.h5ad",
        "legacy_compound.h5ad",
        "no_x.h5ad",
        "strings_nullable.h5ad",
        "compression_lzf.h5ad",
        "compression_blosc.h5ad",
    ] {
        put("h5ad_read", name, &std::fs::read(fixtures.join(name))?)?;
    }
    for name in [
        "legacy_categorical.zarr",
        "no_x.zarr",
        "strings_nullable.v3.zarr",
        "compression_zstd.zarr",
        "compression_blosc.v3.zarr",
    ] {
        put("zarr_read", name, &pack_zarr_dir(&fixtures.join(name))?)?;
    }

    // configs: the quick grids and the paper's, plus one with overrides after the NUL
    let mut configs: Vec<PathBuf> = std::fs::read_dir(root.join("configs"))?
        .chain(std::fs::read_dir(root.join("configs/paper"))?)
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    configs.sort();
    for c in &configs {
        put("config_grid", &file_name(c), &std::fs::read(c)?)?;
    }
    let mut with_overrides = std::fs::read(root.join("configs/quick.yaml"))?;
    with_overrides.extend_from_slice(
        b"\0training.epochs=2\nmodel.method=simclr,byol\naugmentation=[clear, mask_only]\n",
    );
    put("config_grid", "quick_with_overrides.yaml", &with_overrides)?;

    // augmentations: every preset by name, and explicit steps of every kind
    for preset in scssl_augment::PRESETS {
        put(
            "augment_config",
            &format!("preset_{preset}"),
            preset.as_bytes(),
        )?;
        let steps = scssl_augment::PipelineConfig::preset(preset)?;
        let yaml = yaml_serde::to_string(&steps)?;
        put(
            "augment_config",
            &format!("steps_{preset}.yaml"),
            yaml.as_bytes(),
        )?;
    }
    put(
        "augment_config",
        "gene_program_mask.yaml",
        b"steps:\n- augment: {gene_program_mask: {rate: 0.5, programs: [[0, 1, 2], [5, 7]]}}\n  prob: 1.0\n  coin: shared\n\0\x07",
    )?;
    println!("seed corpora written to {}", corpus.display());
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

//! `scssl umap`: the layout is stored in obsm and drawn; a missing embedding or obs column is
//! an error that lists what the file has.

use std::process::Command;

fn scssl(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scssl-e2e"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn umap_stores_the_layout_and_draws_every_panel() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("s.h5ad");
    let pp = dir.path().join("s.pp.h5ad");
    let svg = dir.path().join("umap.svg");
    let p = |x: &std::path::Path| x.to_string_lossy().into_owned();
    assert!(
        scssl(&[
            "simulate",
            "--cells",
            "300",
            "--genes",
            "200",
            "--batches",
            "2",
            "--cell-types",
            "3",
            "-o",
            &p(&raw)
        ])
        .0
    );
    assert!(
        scssl(&[
            "preprocess",
            &p(&raw),
            "-o",
            &p(&pp),
            "--n-hvg",
            "100",
            "--n-pcs",
            "10"
        ])
        .0
    );
    let (ok, err) = scssl(&["umap", &p(&pp), "--embedding", "X_pca", "-o", &p(&svg)]);
    assert!(ok, "{err}");
    let ad = scssl_data::io::read(&pp).unwrap();
    assert_eq!(ad.obsm["X_umap"].dim(), (300, 2));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(
        text.matches("<circle").count(),
        2 * 300 + 3 + 2,
        "two panels and legends"
    );

    // the same plot as PNG (2×, on a white page); other extensions are refused
    let plot_to = |name: &str| {
        let out = p(&dir.path().join(name));
        scssl(&[
            "umap",
            &p(&pp),
            "--embedding",
            "X_pca",
            "--no-write",
            "-o",
            &out,
        ])
    };
    let (ok, err) = plot_to("umap.png");
    assert!(ok, "{err}");
    let bytes = std::fs::read(dir.path().join("umap.png")).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    assert!(
        bytes.len() > 5_000,
        "a scatter of 300 cells: {} bytes",
        bytes.len()
    );
    let (ok, err) = plot_to("umap.pdf");
    assert!(!ok && err.contains(".svg or .png"), "{err}");
    let (ok, err) = scssl(&["umap", &p(&pp), "--embedding", "X_scvi", "--no-write"]);
    assert!(
        !ok && err.contains("X_scvi") && err.contains("X_pca"),
        "{err}"
    );
    let (ok, err) = scssl(&[
        "umap",
        &p(&pp),
        "--embedding",
        "X_pca",
        "--color",
        "donor",
        "--no-write",
    ]);
    assert!(
        !ok && err.contains("donor") && err.contains("batch"),
        "{err}"
    );
}

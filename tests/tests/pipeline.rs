//! End to end across crates: simulator → file (both formats) → the bench crate's preprocessing
//! → neighbours, splits and graphs built on the result.

use scssl_data::neighbors::{self, KnnMethod};
use scssl_data::pp::recipe::{PreprocessOptions, preprocess};
use scssl_data::sim::{SimConfig, simulate};
use scssl_data::{io, split};

#[test]
fn simulated_data_flows_through_every_stage() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        n_cells: 900,
        n_genes: 400,
        n_proteins: 6,
        seed: 11,
        ..Default::default()
    };
    let raw = simulate(&cfg).unwrap();
    for ext in ["h5ad", "zarr"] {
        let p = dir.path().join(format!("raw.{ext}"));
        io::write(&raw, &p).unwrap();
        let back = io::read(&p).unwrap();
        assert_eq!(back, raw, "{ext} round trip");
    }
    let opts = PreprocessOptions {
        n_hvg: 200,
        n_pcs: 30,
        ..Default::default()
    };
    let (pp, summary) = preprocess(raw.clone(), &opts, &mut |_| {}).unwrap();
    assert_eq!(summary.n_hvg, 200);
    assert_eq!(summary.n_batches, 3);
    let pca = pp.obsm_get("X_pca").unwrap();
    // cell types separate in PCA space: each cell's nearest neighbours mostly share its type
    let nn = neighbors::knn(pca.view(), 15, KnnMethod::Exact, 0).unwrap();
    let types = pp.obs_groups("cell_type").unwrap();
    let same: usize = (0..pp.n_obs())
        .map(|i| {
            nn.indices
                .row(i)
                .iter()
                .skip(1)
                .filter(|&&j| types.codes[j as usize] == types.codes[i])
                .count()
        })
        .sum();
    let purity = same as f64 / (pp.n_obs() * 14) as f64;
    let chance: f64 = types
        .sizes()
        .iter()
        .map(|&s| (s as f64 / pp.n_obs() as f64).powi(2))
        .sum();
    assert!(
        purity > 2.0 * chance && purity > 0.5,
        "kNN label purity {purity} (chance {chance})"
    );
    // the batch effect is visible too (batches are not perfectly mixed among neighbours)
    let batches = pp.obs_groups("batch").unwrap();
    let mnn = neighbors::mutual_nearest_neighbors(pca.view(), &batches.codes, 5, true).unwrap();
    assert!(!mnn.pairs.is_empty());
    let bb = neighbors::bbknn(pca.view(), &batches.codes, 3, None).unwrap();
    assert_eq!(bb.neighbors.k(), 1 + 3 * 3);
    // hold out a batch and keep shared cell types
    let s = split::holdout_batches(&pp, "batch", &["batch_2".into()]).unwrap();
    let shared = split::shared_cell_types(&pp, "cell_type", &s).unwrap();
    assert!(shared.reference.len() <= s.reference.len() && !shared.query.is_empty());
    // an embedding added in place is visible to a fresh read
    let p = dir.path().join("pp.h5ad");
    io::write(&pp, &p).unwrap();
    io::write_obsm(&p, "X_test", pca).unwrap();
    assert_eq!(io::read(&p).unwrap().obsm_get("X_test").unwrap(), pca);
}

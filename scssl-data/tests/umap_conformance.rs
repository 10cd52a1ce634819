//! scssl's UMAP against umap-learn (`conformance/make_umap_fixtures.py`): the fitted curve
//! parameters, and how well the layout keeps each point's 15 nearest neighbours on a
//! 1,500-point embedding of eight clusters (at least umap-learn's mean over 3 seeds − 0.02).

use ndarray::Array2;
use scssl_data::umap::{UmapOptions, find_ab_params, neighbourhood_preservation, umap};
use serde_json::Value;

fn fixtures() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/fixtures/umap")
}

fn golden() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("umap_golden.json")).unwrap())
        .unwrap()
}

#[test]
fn ab_params_equal_umap_learns() {
    let g = golden();
    for (key, spread, min_dist) in [
        ("spread_1_min_dist_0.1", 1.0, 0.1),
        ("spread_1_min_dist_0.5", 1.0, 0.5),
    ] {
        let want: Vec<f64> = serde_json::from_value(g["ab_params"][key].clone()).unwrap();
        let (a, b) = find_ab_params(spread, min_dist);
        assert!(
            (a - want[0]).abs() < 1e-4 * want[0] && (b - want[1]).abs() < 1e-4 * want[1],
            "{key}: ({a}, {b}) vs umap-learn {want:?}"
        );
    }
}

#[test]
fn layout_keeps_neighbourhoods_as_well_as_umap_learn() {
    let bytes = std::fs::read(fixtures().join("blobs.f32")).unwrap();
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let x = Array2::from_shape_vec((1500, 16), values).unwrap();
    let want = golden()["preservation_k15_mean"].as_f64().unwrap();
    let mut kept = Vec::new();
    for seed in 0..3 {
        let layout = umap(
            x.view(),
            &UmapOptions {
                seed,
                ..Default::default()
            },
        )
        .unwrap();
        kept.push(neighbourhood_preservation(x.view(), layout.view(), 15).unwrap());
    }
    let ours = kept.iter().sum::<f64>() / 3.0;
    println!("neighbourhood preservation (k = 15): ours {ours:.4} {kept:?}, umap-learn {want:.4}");
    assert!(ours >= want - 0.02, "ours {ours} vs umap-learn {want}");
}

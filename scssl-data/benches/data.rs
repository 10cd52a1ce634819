//! Criterion benchmarks of the data pipeline on the simulator's default dataset.

use criterion::{Criterion, criterion_group, criterion_main};
use scssl_data::neighbors::{self, NnDescentParams};
use scssl_data::pp::{self, HvgOptions};
use scssl_data::sim::{SimConfig, simulate};

fn bench(c: &mut Criterion) {
    let raw = simulate(&SimConfig::default()).expect("simulate");
    let mut g = c.benchmark_group("data_5k_x_2k");
    g.sample_size(10);
    g.bench_function("simulate", |b| {
        b.iter(|| simulate(&SimConfig::default()).unwrap())
    });
    g.bench_function("normalize_log1p", |b| {
        b.iter(|| {
            let mut ad = raw.clone();
            pp::normalize_total(&mut ad, 1e4).unwrap();
            pp::log1p(&mut ad);
            ad
        })
    });
    let mut log = raw.clone();
    pp::normalize_total(&mut log, 1e4).unwrap();
    pp::log1p(&mut log);
    let opts = HvgOptions {
        n_top_genes: 1000,
        batch_key: Some("batch".into()),
        ..Default::default()
    };
    g.bench_function("hvg_seurat_batch", |b| {
        b.iter(|| pp::highly_variable_genes(&log, &opts).unwrap())
    });
    let hvg = pp::highly_variable_genes(&log, &opts).unwrap();
    let sub = log.select_vars(&hvg.highly_variable);
    g.bench_function("pca_50", |b| b.iter(|| pp::pca(&sub.x, 50).unwrap()));
    let pca = pp::pca(&sub.x, 50).unwrap();
    g.bench_function("knn_exact_15", |b| {
        b.iter(|| neighbors::knn_exact(pca.embedding.view(), 15).unwrap())
    });
    g.bench_function("knn_nndescent_15", |b| {
        b.iter(|| {
            neighbors::knn_nndescent(pca.embedding.view(), 15, &NnDescentParams::default()).unwrap()
        })
    });
    let nn = neighbors::knn_exact(pca.embedding.view(), 15).unwrap();
    g.bench_function("umap_connectivities", |b| {
        b.iter(|| neighbors::fuzzy_connectivities(&nn))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

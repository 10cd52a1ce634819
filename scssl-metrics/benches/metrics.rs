//! Criterion benchmarks per metric on a simulated 5,000-cell embedding (30 dimensions,
//! 10 cell types, 4 batches).

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use scssl_data::neighbors::{KnnMethod, knn};
use scssl_metrics::{annotate, cluster, graph, kbet, lisi, pcr, silhouette};

fn data(n: usize) -> (Array2<f32>, Vec<u32>, Vec<u32>) {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let centers = Array2::from_shape_fn((10, 30), |_| r.random::<f32>() * 6.0);
    let labels: Vec<u32> = (0..n).map(|i| (i % 10) as u32).collect();
    let batches: Vec<u32> = (0..n).map(|i| ((i / 10) % 4) as u32).collect();
    let x = Array2::from_shape_fn((n, 30), |(i, j)| {
        centers[[labels[i] as usize, j]] + batches[i] as f32 * 0.3 + r.random::<f32>()
    });
    (x, labels, batches)
}

fn bench(c: &mut Criterion) {
    let (x, labels, batches) = data(5000);
    let nn = knn(x.view(), 90, KnnMethod::Exact, 0).unwrap();
    let nn15 = nn.subset(15).unwrap();
    let nn50 = nn.subset(50).unwrap();
    let mut g = c.benchmark_group("metrics_5k");
    g.sample_size(10);
    g.bench_function("knn_90_exact", |b| {
        b.iter(|| knn(x.view(), 90, KnnMethod::Exact, 0).unwrap())
    });
    g.bench_function("silhouette_samples", |b| {
        b.iter(|| silhouette::silhouette_samples(x.view(), &labels).unwrap())
    });
    g.bench_function("silhouette_batch", |b| {
        b.iter(|| silhouette::silhouette_batch(x.view(), &labels, &batches).unwrap())
    });
    g.bench_function("clisi_knn", |b| {
        b.iter(|| lisi::clisi_knn(&nn, &labels).unwrap())
    });
    g.bench_function("ilisi_knn", |b| {
        b.iter(|| lisi::ilisi_knn(&nn, &batches).unwrap())
    });
    g.bench_function("graph_connectivity", |b| {
        b.iter(|| graph::graph_connectivity(&nn15, &labels).unwrap())
    });
    g.bench_function("pcr_comparison", |b| {
        b.iter(|| pcr::pcr_comparison(x.view(), x.view(), &batches).unwrap())
    });
    g.bench_function("kbet_per_label", |b| {
        b.iter(|| kbet::kbet_per_label(&nn50, &batches, &labels).unwrap())
    });
    g.bench_function("nmi_ari_cluster_labels_leiden", |b| {
        b.iter(|| cluster::nmi_ari_cluster_labels_leiden(&nn15, &labels, 0).unwrap())
    });
    g.bench_function("annotate_knn11", |b| {
        b.iter(|| annotate::annotate(x.view(), &labels, x.view(), &labels, 11).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

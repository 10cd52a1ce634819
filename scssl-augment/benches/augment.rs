//! Two views of a 256-cell × 4,000-gene batch, per augmentation and for the `clear` preset.

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use scssl_augment::{
    AugmentConfig, Context, CrossOver, GaussianNoise, GeneProgramMask, InnerSwap, Mask, MixOp,
    NeighbourMix, NeighbourSource, Pipeline, PipelineConfig, StepConfig,
};

fn bench(c: &mut Criterion) {
    let (n, g) = (2048usize, 4000usize);
    let mut rng = scssl_augment::ViewRng::seed_from_u64(0);
    let data = Array2::from_shape_fn((n, g), |_| {
        if rng.random::<f32>() < 0.3 {
            rng.random::<f32>() * 4.0
        } else {
            0.0
        }
    });
    let knn: Vec<Vec<u32>> = (0..n)
        .map(|i| (1..=5).map(|d| ((i + d) % n) as u32).collect())
        .collect();
    let mnn: Vec<Vec<u32>> = (0..n).map(|i| vec![((i + n / 2) % n) as u32]).collect();
    let ctx = Context {
        data: data.view().into(),
        within_batch_knn: Some(&knn),
        mnn: Some(&mnn),
        bbknn: Some(&knn),
    };
    let cells: Vec<usize> = (0..256).map(|i| i * 7 % n).collect();
    let programs: Vec<Vec<u32>> = (0..200)
        .map(|p| (0..20).map(|k| ((p * 20 + k) % g) as u32).collect())
        .collect();
    let one = |a: AugmentConfig| PipelineConfig {
        steps: vec![StepConfig {
            augment: a,
            prob: 1.0,
            coin: Default::default(),
        }],
    };
    let cases: Vec<(&str, PipelineConfig)> = vec![
        ("mask", one(AugmentConfig::Mask(Mask { rate: 0.5 }))),
        (
            "gauss",
            one(AugmentConfig::Gauss(GaussianNoise {
                rate: 0.8,
                sigma: 0.2,
            })),
        ),
        (
            "innerswap",
            one(AugmentConfig::InnerSwap(InnerSwap { rate: 0.3 })),
        ),
        (
            "crossover",
            one(AugmentConfig::CrossOver(CrossOver { rate: 0.25 })),
        ),
        (
            "mnn",
            one(AugmentConfig::NeighbourMix(NeighbourMix {
                alpha: 0.5,
                ops: vec![MixOp::Interpolate],
                source: NeighbourSource::Mnn,
            })),
        ),
        (
            "bbknn",
            one(AugmentConfig::NeighbourMix(NeighbourMix {
                alpha: 0.3,
                ops: vec![MixOp::Exchange],
                source: NeighbourSource::Bbknn,
            })),
        ),
        (
            "gene_program_mask",
            one(AugmentConfig::GeneProgramMask(GeneProgramMask {
                programs,
                rate: 0.3,
            })),
        ),
        (
            "clear_preset",
            PipelineConfig::preset("clear").expect("preset"),
        ),
    ];
    let mut grp = c.benchmark_group("two_views_256x4000");
    for (name, cfg) in cases {
        let p = Pipeline::new(&cfg, 0).expect("valid");
        grp.bench_function(name, |b| {
            b.iter(|| p.views(&cells, 0, &ctx).expect("views"))
        });
    }
    grp.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

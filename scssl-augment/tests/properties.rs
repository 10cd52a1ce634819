//! Property tests of every augmentation and of the pipeline's randomness contract.

use ndarray::{Array2, ArrayView2};
use proptest::prelude::*;
use rand::SeedableRng;
use scssl_augment::*;

fn matrix(max_n: usize, max_g: usize) -> impl Strategy<Value = Array2<f32>> {
    (3..max_n, 4..max_g).prop_flat_map(|(n, g)| {
        // distinct non-zero values per row make "which gene changed" observable
        proptest::collection::vec(1.0f32..100.0, n * g)
            .prop_map(move |v| Array2::from_shape_vec((n, g), v).unwrap())
    })
}

fn run(
    a: &dyn Augmentation,
    data: ArrayView2<'_, f32>,
    ctx: &Context<'_>,
    cell: usize,
    view: u8,
    seed: u64,
) -> Vec<f32> {
    let mut x = data.row(cell).to_vec();
    let mut rng = ViewRng::seed_from_u64(seed);
    a.apply(&mut x, cell, view, ctx, &mut rng);
    x
}

fn changed(a: &[f32], b: &[f32]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mask_zeroes_exactly_floor_rate_g(data in matrix(8, 60), rate in 0.0f64..=1.0, seed in 0u64..1000) {
        let ctx = Context::new(data.view());
        let x = run(&Mask { rate }, data.view(), &ctx, 1, 0, seed);
        let orig = data.row(1);
        let n = (rate * data.ncols() as f64).floor() as usize;
        prop_assert_eq!(x.iter().filter(|v| **v == 0.0).count(), n);
        for (j, v) in x.iter().enumerate() {
            prop_assert!(*v == 0.0 || *v == orig[j], "untouched genes unchanged");
        }
    }

    #[test]
    fn gauss_touches_exactly_floor_rate_g(data in matrix(8, 60), rate in 0.0f64..=1.0, seed in 0u64..1000) {
        let ctx = Context::new(data.view());
        let x = run(&GaussianNoise { rate, sigma: 1.0 }, data.view(), &ctx, 0, 0, seed);
        let n = (rate * data.ncols() as f64).floor() as usize;
        // noise is continuous: a touched gene keeps its value with probability 0
        prop_assert_eq!(changed(&x, data.row(0).as_slice().unwrap()), n);
        let zero = run(&GaussianNoise { rate, sigma: 0.0 }, data.view(), &ctx, 0, 0, seed);
        prop_assert_eq!(changed(&zero, data.row(0).as_slice().unwrap()), 0);
    }

    #[test]
    fn innerswap_permutes_exact_pairs(data in matrix(6, 60), rate in 0.0f64..=1.0, seed in 0u64..1000) {
        let ctx = Context::new(data.view());
        let x = run(&InnerSwap { rate }, data.view(), &ctx, 2, 1, seed);
        let orig = data.row(2).to_vec();
        let pairs = (rate * data.ncols() as f64).floor() as usize / 2;
        let mut a = x.clone();
        let mut b = orig.clone();
        a.sort_by(f32::total_cmp);
        b.sort_by(f32::total_cmp);
        prop_assert_eq!(a, b, "multiset of values preserved");
        // values are distinct with probability ~1, so each swapped gene changes
        let distinct = { let mut o = orig.clone(); o.sort_by(f32::total_cmp); o.windows(2).all(|w| w[0] != w[1]) };
        if distinct {
            prop_assert_eq!(changed(&x, &orig), 2 * pairs);
        }
    }

    #[test]
    fn crossover_takes_values_from_one_partner(data in matrix(8, 60), rate in 0.0f64..=1.0, seed in 0u64..1000) {
        let ctx = Context::new(data.view());
        let cell = 3 % data.nrows();
        let x = run(&CrossOver { rate }, data.view(), &ctx, cell, 0, seed);
        let mut rng = ViewRng::seed_from_u64(seed);
        let partner = CrossOver::partner(data.nrows(), cell, &mut rng);
        prop_assert_ne!(partner, cell);
        let n = (rate * data.ncols() as f64).floor() as usize;
        let orig = data.row(cell);
        let p = data.row(partner);
        let mut from_partner = 0;
        for j in 0..x.len() {
            prop_assert!(x[j] == orig[j] || x[j] == p[j], "gene {} comes from the cell or the partner", j);
            if x[j] == p[j] && x[j] != orig[j] { from_partner += 1; }
        }
        prop_assert!(from_partner <= n);
    }

    #[test]
    fn crossover_many_takes_each_gene_from_its_own_cell(data in matrix(8, 60), rate in 0.0f64..=1.0, seed in 0u64..1000) {
        let ctx = Context::new(data.view());
        let cell = 2 % data.nrows();
        let x = run(&CrossOverMany { rate }, data.view(), &ctx, cell, 0, seed);
        let n = (rate * data.ncols() as f64).floor() as usize;
        let mut changed = 0;
        for j in 0..x.len() {
            // every value is the cell's own or another cell's value of the same gene
            prop_assert!((0..data.nrows()).any(|c| data[[c, j]] == x[j]), "gene {} comes from a cell of the data", j);
            if x[j] != data[[cell, j]] { changed += 1; }
        }
        prop_assert!(changed <= n);
    }

    #[test]
    fn interpolation_stays_between_cell_and_neighbour(data in matrix(8, 40), alpha in 0.0f64..=1.0, seed in 0u64..1000) {
        let n = data.nrows();
        let nb: Vec<Vec<u32>> = (0..n).map(|i| vec![((i + 1) % n) as u32]).collect();
        let ctx = Context { data: data.view().into(), within_batch_knn: None, mnn: None, bbknn: Some(&nb) };
        let m = NeighbourMix { alpha, ops: vec![MixOp::Interpolate], source: NeighbourSource::Bbknn };
        let x = run(&m, data.view(), &ctx, 0, 0, seed);
        let (a, b) = (data.row(0), data.row(1));
        for j in 0..x.len() {
            let (lo, hi) = (a[j].min(b[j]), a[j].max(b[j]));
            prop_assert!(x[j] >= lo - 1e-4 && x[j] <= hi + 1e-4);
            // λ ≥ α: at least α of the way to the cell itself
            prop_assert!(((x[j] - b[j]) as f64).abs() + 1e-3 >= alpha * ((a[j] - b[j]) as f64).abs());
        }
    }

    #[test]
    fn exchange_takes_each_gene_from_one_of_the_two(data in matrix(8, 40), alpha in 0.0f64..=1.0, seed in 0u64..1000) {
        let n = data.nrows();
        let knn: Vec<Vec<u32>> = (0..n).map(|i| vec![((i + 1) % n) as u32]).collect();
        let mnn: Vec<Vec<u32>> = (0..n).map(|i| vec![((i + 2) % n) as u32]).collect();
        let ctx = Context { data: data.view().into(), within_batch_knn: Some(&knn), mnn: Some(&mnn), bbknn: None };
        let m = NeighbourMix { alpha, ops: vec![MixOp::Exchange], source: NeighbourSource::Mnn };
        // view 1: the cell and its within-batch neighbour
        let x = run(&m, data.view(), &ctx, 0, 0, seed);
        for j in 0..x.len() {
            prop_assert!(x[j] == data[[0, j]] || x[j] == data[[1, j]]);
        }
        // view 2: the MNN partner (cell 2) and the partner's neighbour (cell 3); not the cell itself
        let y = run(&m, data.view(), &ctx, 0, 1, seed);
        for j in 0..y.len() {
            prop_assert!(y[j] == data[[2, j]] || y[j] == data[[3 % n, j]]);
        }
    }

    #[test]
    fn gene_programs_mask_whole_sets(data in matrix(5, 60), rate in 0.0f64..=1.0, seed in 0u64..1000) {
        let g = data.ncols() as u32;
        let programs: Vec<Vec<u32>> = (0..4).map(|p| (0..g).filter(|j| j % 4 == p).collect()).collect();
        let ctx = Context::new(data.view());
        let x = run(&GeneProgramMask { programs: programs.clone(), rate }, data.view(), &ctx, 0, 0, seed);
        let masked: Vec<bool> = programs.iter().map(|p| p.iter().all(|&j| x[j as usize] == 0.0)).collect();
        prop_assert_eq!(masked.iter().filter(|m| **m).count(), (rate * 4.0).floor() as usize);
        for (p, prog) in programs.iter().enumerate() {
            if !masked[p] {
                for &j in prog { prop_assert_eq!(x[j as usize], data[[0, j as usize]]); }
            }
        }
    }

    #[test]
    fn pipeline_contract(data in matrix(12, 30), preset in prop::sample::select(vec!["clear", "clear_as_run", "masking_only", "gauss_only", "innerswap_only", "crossover_only"]), seed in 0u64..100, epoch in 0u64..5) {
        let before = data.clone();
        let ctx = Context::new(data.view());
        let p = Pipeline::preset(preset, seed).unwrap();
        let n = data.nrows();
        let all: Vec<usize> = (0..n).collect();
        let (a0, a1) = p.views(&all, epoch, &ctx).unwrap();
        prop_assert_eq!(&data, &before, "input bit-identical afterwards");
        // same key ⇒ same view, whatever the batch composition and order
        let rev: Vec<usize> = all.iter().rev().copied().collect();
        let (b0, b1) = p.views(&rev, epoch, &ctx).unwrap();
        let sub = vec![n - 1, 0];
        let (c0, _) = p.views(&sub, epoch, &ctx).unwrap();
        for (k, &c) in rev.iter().enumerate() {
            prop_assert_eq!(a0.row(c), b0.row(k));
            prop_assert_eq!(a1.row(c), b1.row(k));
        }
        prop_assert_eq!(c0.row(0), a0.row(n - 1));
        // into caller-owned buffers: identical
        let mut o0 = Array2::<f32>::from_elem(a0.dim(), -1.0);
        let mut o1 = Array2::<f32>::from_elem(a0.dim(), -1.0);
        p.views_into(&all, epoch, &ctx, o0.view_mut(), o1.view_mut()).unwrap();
        prop_assert_eq!(&o0, &a0);
        prop_assert_eq!(&o1, &a1);
        // views do not share memory
        prop_assert_ne!(a0.as_ptr(), a1.as_ptr());
        // the same with one thread
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let (d0, d1) = pool.install(|| p.views(&all, epoch, &ctx).unwrap());
        prop_assert_eq!(&d0, &a0);
        prop_assert_eq!(&d1, &a1);
    }
}

#[test]
fn batch_application_equals_one_cell_at_a_time() {
    let data = Array2::from_shape_fn((40, 30), |(i, j)| 1.0 + ((i * 31 + j * 7) % 17) as f32);
    let n = 40;
    let nb: Vec<Vec<u32>> = (0..n)
        .map(|i| vec![((i + 1) % n) as u32, ((i + 5) % n) as u32])
        .collect();
    let ctx = Context {
        data: data.view().into(),
        within_batch_knn: Some(&nb),
        mnn: Some(&nb),
        bbknn: Some(&nb),
    };
    let augs: Vec<Box<dyn Augmentation>> = vec![
        Box::new(Mask { rate: 0.3 }),
        Box::new(GaussianNoise {
            rate: 0.5,
            sigma: 0.3,
        }),
        Box::new(InnerSwap { rate: 0.4 }),
        Box::new(CrossOver { rate: 0.25 }),
        Box::new(NeighbourMix {
            alpha: 0.5,
            ops: vec![MixOp::Interpolate, MixOp::Exchange],
            source: NeighbourSource::Mnn,
        }),
        Box::new(NeighbourMix {
            alpha: 0.2,
            ops: vec![MixOp::Exchange],
            source: NeighbourSource::Bbknn,
        }),
        Box::new(GeneProgramMask {
            programs: vec![vec![0, 1, 2], vec![10, 11], vec![20, 29]],
            rate: 0.5,
        }),
    ];
    let cells: Vec<usize> = vec![5, 0, 39, 12];
    for a in &augs {
        for view in 0..2u8 {
            let mut batch = data.select(ndarray::Axis(0), &cells);
            a.apply_batch(batch.view_mut(), &cells, 9, 2, view, &ctx)
                .unwrap();
            for (r, &c) in cells.iter().enumerate() {
                let mut x = data.row(c).to_vec();
                a.apply_cell(
                    &mut x,
                    ViewKey {
                        seed: 9,
                        epoch: 2,
                        cell: c as u64,
                        view,
                    },
                    &ctx,
                );
                assert_eq!(
                    batch.row(r).to_vec(),
                    x,
                    "{} view {view} cell {c}",
                    a.name()
                );
            }
        }
    }
}

/// A training matrix given as CSR (unsorted columns in one row) makes the same views, bit for
/// bit, as the dense matrix: for every preset and for the per-gene partner of crossover_many.
#[test]
fn csr_training_matrix_gives_the_views_of_the_dense_one() {
    let (n, g) = (60, 40);
    // about two thirds zeros, like a log-normalised expression matrix
    let data = Array2::from_shape_fn((n, g), |(i, j)| {
        let h = (i * 31 + j * 17) % 29;
        if h % 3 == 0 { 0.5 + h as f32 } else { 0.0 }
    });
    let csr = scssl_data::matrix::CsrMatrix::from_dense(data.view());
    // reverse row 3's columns: readers may hand over unsorted rows
    let (indptr, mut indices, mut values) = (
        csr.indptr().to_vec(),
        csr.indices().to_vec(),
        csr.data().to_vec(),
    );
    indices[indptr[3]..indptr[4]].reverse();
    values[indptr[3]..indptr[4]].reverse();
    let rows = CsrRows::new(g, &indptr, &indices, &values).unwrap();
    let nb: Vec<Vec<u32>> = (0..n)
        .map(|i| vec![((i + 1) % n) as u32, ((i + 7) % n) as u32])
        .collect();
    fn with_lists<'a>(data: CellRows<'a>, nb: &'a [Vec<u32>]) -> Context<'a> {
        let mut c = Context::new(data);
        (c.within_batch_knn, c.mnn, c.bbknn) = (Some(nb), Some(nb), Some(nb));
        c
    }
    let (dense_ctx, csr_ctx) = (
        with_lists(data.view().into(), &nb),
        with_lists(rows.into(), &nb),
    );
    let cells: Vec<usize> = vec![3, 0, 59, 12, 3, 33];
    let many = PipelineConfig {
        steps: vec![StepConfig {
            augment: AugmentConfig::CrossOverMany(CrossOverMany { rate: 0.5 }),
            prob: 1.0,
            coin: Coin::PerView,
        }],
    };
    let mut pipelines: Vec<(String, Pipeline)> = PRESETS
        .iter()
        .map(|p| (p.to_string(), Pipeline::preset(p, 5).unwrap()))
        .collect();
    pipelines.push(("crossover_many".into(), Pipeline::new(&many, 5).unwrap()));
    for (name, p) in &pipelines {
        for epoch in 0..2 {
            let want = p.views(&cells, epoch, &dense_ctx).unwrap();
            let got = p.views(&cells, epoch, &csr_ctx).unwrap();
            assert_eq!(got, want, "{name} epoch {epoch}");
        }
    }
}

#[test]
fn probability_zero_is_identity_and_one_always_applies() {
    let data = Array2::from_shape_fn((50, 40), |(i, j)| 1.0 + (i * 40 + j) as f32);
    let ctx = Context::new(data.view());
    let cells: Vec<usize> = (0..50).collect();
    let mk = |prob| PipelineConfig {
        steps: vec![StepConfig {
            augment: AugmentConfig::Mask(Mask { rate: 0.5 }),
            prob,
            coin: Coin::PerView,
        }],
    };
    let (v0, v1) = Pipeline::new(&mk(0.0), 1)
        .unwrap()
        .views(&cells, 0, &ctx)
        .unwrap();
    assert_eq!(v0, data);
    assert_eq!(v1, data);
    let (w0, w1) = Pipeline::new(&mk(1.0), 1)
        .unwrap()
        .views(&cells, 0, &ctx)
        .unwrap();
    for r in w0.rows().into_iter().chain(w1.rows()) {
        assert_eq!(r.iter().filter(|v| **v == 0.0).count(), 20);
    }
    // different views draw independently: the two masks differ for (almost) every cell
    let same = (0..50).filter(|&i| w0.row(i) == w1.row(i)).count();
    assert!(same <= 1, "{same} cells got identical views");
    // different epochs draw independently too
    let (e0, _) = Pipeline::new(&mk(1.0), 1)
        .unwrap()
        .views(&cells, 1, &ctx)
        .unwrap();
    assert!((0..50).filter(|&i| e0.row(i) == w0.row(i)).count() <= 1);
}

/// Observed application rates match the configured probabilities. With N = 40,000 coin flips,
/// Hoeffding's inequality bounds P(|p̂ − p| ≥ t) by 2·exp(−2Nt²); t = 0.0135 makes that ≤ 1e-6.
#[test]
fn application_rates_match_probabilities() {
    let n_cells = 20_000u64;
    let t = 0.0135;
    assert!(2.0 * (-2.0 * (2 * n_cells) as f64 * t * t).exp() <= 1e-6);
    for p in [0.1, 0.5, 0.9] {
        let cfg = PipelineConfig {
            steps: vec![
                StepConfig {
                    augment: AugmentConfig::Mask(Mask { rate: 0.1 }),
                    prob: p,
                    coin: Coin::PerView,
                },
                StepConfig {
                    augment: AugmentConfig::InnerSwap(InnerSwap { rate: 0.1 }),
                    prob: 1.0 - p,
                    coin: Coin::PerView,
                },
            ],
        };
        let pl = Pipeline::new(&cfg, 7).unwrap();
        let mut on = [0u64; 2];
        let mut both_views = 0u64;
        for cell in 0..n_cells {
            let a = pl.applied_steps(ViewKey {
                seed: 7,
                epoch: 3,
                cell,
                view: 0,
            });
            let b = pl.applied_steps(ViewKey {
                seed: 7,
                epoch: 3,
                cell,
                view: 1,
            });
            on[0] += a[0] as u64 + b[0] as u64;
            on[1] += a[1] as u64 + b[1] as u64;
            both_views += (a[0] && b[0]) as u64;
        }
        let flips = (2 * n_cells) as f64;
        assert!(
            (on[0] as f64 / flips - p).abs() < t,
            "step 0 at p={p}: {}",
            on[0] as f64 / flips
        );
        assert!(
            (on[1] as f64 / flips - (1.0 - p)).abs() < t,
            "step 1 at p={}: {}",
            1.0 - p,
            on[1] as f64 / flips
        );
        // per-view coins are independent: P(both) ≈ p²
        assert!(
            (both_views as f64 / n_cells as f64 - p * p).abs() < 0.02,
            "independence at p={p}"
        );
    }
    // a shared coin decides both views together
    let cfg = PipelineConfig {
        steps: vec![StepConfig {
            augment: AugmentConfig::Mask(Mask { rate: 0.1 }),
            prob: 0.5,
            coin: Coin::Shared,
        }],
    };
    let pl = Pipeline::new(&cfg, 7).unwrap();
    for cell in 0..1000 {
        assert_eq!(
            pl.applied_steps(ViewKey {
                seed: 7,
                epoch: 0,
                cell,
                view: 0
            }),
            pl.applied_steps(ViewKey {
                seed: 7,
                epoch: 0,
                cell,
                view: 1
            })
        );
    }
}

#[test]
fn configs_are_validated_with_named_fields() {
    let bad = PipelineConfig {
        steps: vec![StepConfig {
            augment: AugmentConfig::Mask(Mask { rate: 1.5 }),
            prob: 0.5,
            coin: Coin::PerView,
        }],
    };
    let e = Pipeline::new(&bad, 0).unwrap_err().to_string();
    assert!(
        e.contains("steps[0].mask.rate") && e.contains("1.5") && e.contains("[0, 1]"),
        "{e}"
    );
    let bad = PipelineConfig {
        steps: vec![StepConfig {
            augment: AugmentConfig::Gauss(GaussianNoise {
                rate: 0.5,
                sigma: -1.0,
            }),
            prob: 0.5,
            coin: Coin::PerView,
        }],
    };
    assert!(
        Pipeline::new(&bad, 0)
            .unwrap_err()
            .to_string()
            .contains("steps[0].gauss.sigma")
    );
    let bad = PipelineConfig {
        steps: vec![StepConfig {
            augment: AugmentConfig::Mask(Mask { rate: 0.5 }),
            prob: 2.0,
            coin: Coin::PerView,
        }],
    };
    assert!(
        Pipeline::new(&bad, 0)
            .unwrap_err()
            .to_string()
            .contains("steps[0].prob")
    );
    let e = Pipeline::preset("clearr", 0).unwrap_err().to_string();
    assert!(e.contains("clearr") && e.contains("masking_only"), "{e}");
    // serde: unknown fields are rejected, the YAML/JSON shape round-trips
    let cfg = PipelineConfig::preset("clear").unwrap();
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<PipelineConfig>(&json).unwrap(), cfg);
    assert!(
        serde_json::from_str::<PipelineConfig>(
            r#"{"steps":[{"augment":{"mask":{"rate":0.2,"ratee":1}},"prob":0.5}]}"#
        )
        .is_err()
    );
    // neighbour mixing without neighbour lists is an input error, not a panic
    let data = Array2::<f32>::zeros((4, 3));
    let p = Pipeline::preset("mnn_only", 0).unwrap();
    let e = p
        .views(&[0, 1], 0, &Context::new(data.view()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("within_batch_knn"), "{e}");
    assert!(p.views(&[9], 0, &Context::new(data.view())).is_err());
}

#[test]
fn neighbour_graphs_from_scssl_data_drive_mnn_views() {
    let ad = scssl_data::sim::simulate(&scssl_data::sim::SimConfig {
        n_cells: 300,
        n_genes: 100,
        seed: 2,
        ..Default::default()
    })
    .unwrap();
    let mut ad = ad;
    scssl_data::pp::normalize_total(&mut ad, 1e4).unwrap();
    scssl_data::pp::log1p(&mut ad);
    let x = ad.x.to_dense();
    let b = ad.obs_groups("batch").unwrap();
    let knn = scssl_data::neighbors::knn_within_groups(
        x.view(),
        &b.codes,
        5,
        scssl_data::neighbors::KnnMethod::Exact,
        0,
    )
    .unwrap();
    let mnn = scssl_data::neighbors::mutual_nearest_neighbors(x.view(), &b.codes, 5, true)
        .unwrap()
        .partners(300);
    let ctx = Context {
        data: x.view().into(),
        within_batch_knn: Some(&knn),
        mnn: Some(&mnn),
        bbknn: None,
    };
    let p = Pipeline::preset("mnn_only", 0).unwrap();
    let (v0, v1) = p.views(&(0..300).collect::<Vec<_>>(), 0, &ctx).unwrap();
    assert_eq!(v0.dim(), (300, 100));
    assert!(v0 != v1);
}

#[cfg(feature = "neighbors")]
#[test]
fn neighbour_graphs_build_and_feed_every_neighbour_preset() {
    let mut ad = scssl_data::sim::simulate(&scssl_data::sim::SimConfig {
        n_cells: 400,
        n_genes: 120,
        seed: 4,
        ..Default::default()
    })
    .unwrap();
    scssl_data::pp::normalize_total(&mut ad, 1e4).unwrap();
    scssl_data::pp::log1p(&mut ad);
    let x = ad.x.to_dense();
    let b = ad.obs_groups("batch").unwrap();
    let g = NeighbourGraphs::build(x.view(), &b.codes, 5, 5, 0).unwrap();
    assert!(g.within_batch_knn.iter().enumerate().all(|(i, l)| {
        l.iter()
            .all(|&j| b.codes[j as usize] == b.codes[i] && j as usize != i)
    }));
    assert!(
        g.mnn
            .iter()
            .enumerate()
            .all(|(i, l)| l.iter().all(|&j| b.codes[j as usize] != b.codes[i]))
    );
    assert!(
        g.mnn.iter().filter(|l| !l.is_empty()).count() > 50,
        "MNN pairs found"
    );
    let ctx = g.context(x.view());
    for preset in ["mnn_only", "bbknn_only"] {
        let (v0, v1) = Pipeline::preset(preset, 1)
            .unwrap()
            .views(&(0..400).collect::<Vec<_>>(), 0, &ctx)
            .unwrap();
        assert_eq!(v0.dim(), (400, 120));
        assert!(v0 != v1, "{preset}");
    }
    assert!(
        NeighbourGraphs::build(x.view(), &vec![0; 400], 5, 5, 0).is_err(),
        "one batch has no MNN"
    );
}

use ndarray::Array2;
use scssl_augment::{Context, Pipeline};
use scssl_data::pp::{log1p, normalize_total};
use scssl_data::sim::{SimConfig, simulate};
use scssl_models::*;
fn main() {
    let mut ad = simulate(&SimConfig::default()).unwrap();
    normalize_total(&mut ad, 1e4).unwrap();
    log1p(&mut ad);
    let labels = ad.obs_groups("cell_type").unwrap().codes;
    let x: Array2<f32> = ad.x.to_dense();
    let sil = |e: &Array2<f32>| scssl_metrics::silhouette::silhouette_label(e.view(), &labels, None).unwrap();
    let batches = ad.obs_groups("batch").unwrap().codes;
    let pc = scssl_data::pp::pca_dense(x.view(), 50).unwrap();
    println!("pca sil {:.3} batch-sil {:.3}", sil(&pc.embedding), scssl_metrics::silhouette::silhouette_label(pc.embedding.view(), &batches, None).unwrap());
    let preset = std::env::var("PRESET").unwrap_or("clear".into());
    let pipe = Pipeline::preset(&preset, 0).unwrap();
    let graphs = scssl_augment::NeighbourGraphs::build(x.view(), &batches, 5, 5, 0).unwrap();
    let epochs: usize = std::env::args().nth(2).unwrap().parse().unwrap();
    let lr: f64 = std::env::args().nth(3).unwrap().parse().unwrap();
    for name in std::env::args().nth(1).unwrap().split(',') {
        let method = Method::parse(name).unwrap();
        let mut model = ModelConfig::new(method, x.ncols()); if let Ok(m) = std::env::var("MOM") { model.momentum = m.parse().unwrap(); }
        let training = TrainConfig { epochs, lr, schedule: LrSchedule::Constant, ..TrainConfig::default() };
        let t = fit(ComputeDevice::Cpu, &model, &training, x.nrows(), |r| {
            let (a, b) = pipe.views(r.cells, r.epoch as u64, &graphs.context(x.view())).map_err(|e| e.to_string())?;
            Ok::<_, String>(TwoViews { first: vec![a], second: vec![b] })
        }, |_| {}).unwrap();
        let e = t.embed(&[x.view()], EmbeddingOutput::Backbone).unwrap();
        let l = &t.history.step_losses;
        println!("  batch-sil {:.3}", scssl_metrics::silhouette::silhouette_label(e.joint.view(), &batches, None).unwrap());
        println!("{method} ep{epochs} lr{lr}: sil {:.3} loss {:.3} -> {:.3} ({:.1}s)", sil(&e.joint), l[0], l[l.len()-1], t.history.seconds);
    }
}

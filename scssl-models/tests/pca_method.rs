//! PCA as a method: its embedding is the input's principal components (as the preprocessing's
//! `X_pca`), it projects new cells onto the reference's components, it survives a checkpoint,
//! and bad checkpoints or widths are errors naming the problem.

use ndarray::{Array2, s};
use scssl_models::{
    EmbeddingOutput, MethodRef, MiniBatch, ModelConfig, ModelError, TrainConfig, TrainedModel, fit,
};

fn data() -> Array2<f32> {
    Array2::from_shape_fn((120, 30), |(i, j)| {
        let group = (i % 4) as f32;
        ((i * 7 + j * 13) % 19) as f32 / 19.0 + group * ((j % 5) as f32) * 0.4
    })
}

fn fit_pca(x: &Array2<f32>, hidden_dim: usize) -> Result<TrainedModel, ModelError> {
    let model = ModelConfig {
        hidden_dim,
        ..ModelConfig::new(MethodRef::parse("pca").unwrap(), x.ncols())
    };
    fit(
        &model,
        &TrainConfig::default(),
        x.nrows(),
        |r| {
            assert!(r.needs.features && r.needs.views == 0 && r.needs.all_cells);
            assert_eq!(r.cells.len(), x.nrows(), "PCA asks for every cell at once");
            Ok::<_, String>(MiniBatch {
                features: vec![x.select(ndarray::Axis(0), r.cells)],
                ..MiniBatch::default()
            })
        },
        |_| {},
    )
}

#[test]
fn pca_embedding_is_the_inputs_principal_components() {
    let x = data();
    let trained = fit_pca(&x, 8).unwrap();
    assert!(trained.history.step_losses.is_empty(), "nothing is trained");
    let emb = trained
        .embed(&[x.view()], EmbeddingOutput::Backbone)
        .unwrap();
    let want = scssl_data::pp::pca_dense(x.view(), 8).unwrap().embedding;
    assert_eq!(emb.joint.dim(), (120, 8));
    let worst = emb
        .joint
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "largest difference to pca_dense: {worst}");
    // the projection option does not apply to PCA
    let proj = trained
        .embed(&[x.view()], EmbeddingOutput::Projection)
        .unwrap();
    assert_eq!(proj.joint, emb.joint);
}

#[test]
fn pca_projects_a_query_onto_the_reference_components_and_reloads() {
    let x = data();
    let reference = x.slice(s![..80, ..]).to_owned();
    let query = x.slice(s![80.., ..]).to_owned();
    let trained = fit_pca(&reference, 5).unwrap();
    let q = trained
        .embed(&[query.view()], EmbeddingOutput::Backbone)
        .unwrap();
    // by hand: (x − reference mean) · componentsᵀ
    let fitted = scssl_data::pp::pca_dense(reference.view(), 5).unwrap();
    for i in 0..query.nrows() {
        for c in 0..5 {
            let v: f64 = (0..30)
                .map(|j| (query[[i, j]] as f64 - fitted.mean[j]) * fitted.components[[c, j]] as f64)
                .sum();
            assert!(
                (q.joint[[i, c]] as f64 - v).abs() < 1e-4,
                "cell {i}, PC {c}"
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    trained.save(&dir.path().join("m")).unwrap();
    let back = TrainedModel::load(&dir.path().join("m")).unwrap();
    let q2 = back
        .embed(&[query.view()], EmbeddingOutput::Backbone)
        .unwrap();
    assert_eq!(q.joint, q2.joint);
    // a checkpoint whose loadings do not fit the configuration is refused
    let mut broken = trained.clone();
    broken.tensors[1].shape = vec![5, 29];
    let e = broken
        .embed(&[query.view()], EmbeddingOutput::Backbone)
        .unwrap_err()
        .to_string();
    assert!(e.contains("pca0.components"), "{e}");
}

#[test]
fn too_many_components_name_hidden_dim() {
    let x = data();
    let e = fit_pca(&x, 31).unwrap_err().to_string();
    assert!(e.contains("model.hidden_dim"), "{e}");
}

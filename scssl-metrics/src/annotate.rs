//! Query-to-reference tasks: kNN cell-type annotation (k = 11, Euclidean, uniform votes, ties to
//! the smallest label as scikit-learn breaks them) scored by macro-F1 and accuracy, and
//! missing-modality (protein) prediction by cosine kNN (k = 5) scored by per-cell Pearson.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use scssl_data::neighbors::knn_query;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, check_embedding, check_len};

/// Both embeddings finite, with the same dimensions, and a non-empty reference.
fn check_pair(reference: ArrayView2<'_, f32>, query: ArrayView2<'_, f32>) -> Result<()> {
    check_embedding(reference)?;
    check_embedding(query)?;
    if reference.ncols() != query.ncols() {
        return Err(Error::Shape(format!(
            "reference has {} dimensions, query {}",
            reference.ncols(),
            query.ncols()
        )));
    }
    if reference.nrows() == 0 {
        return Err(Error::Invalid("the reference has no cells".into()));
    }
    Ok(())
}

/// Predicts a label for each query cell from its `k` nearest reference cells (Euclidean,
/// uniform votes; a tie goes to the smallest label value, like scikit-learn's argmax over its
/// sorted `classes_`).
pub fn knn_classify(
    reference: ArrayView2<'_, f32>,
    ref_labels: &[u32],
    query: ArrayView2<'_, f32>,
    k: usize,
) -> Result<Vec<u32>> {
    check_pair(reference, query)?;
    check_len("reference labels", reference.nrows(), ref_labels.len())?;
    if query.nrows() == 0 {
        return Ok(vec![]);
    }
    let k = k.min(reference.nrows()).max(1);
    let (idx, _) = knn_query(reference, query, k)?;
    Ok(idx
        .rows()
        .into_iter()
        .map(|r| {
            let mut votes: std::collections::BTreeMap<u32, usize> = Default::default();
            for &j in r {
                *votes.entry(ref_labels[j as usize]).or_default() += 1;
            }
            // BTreeMap iterates labels in ascending order; keep the first maximum
            votes
                .iter()
                .fold(
                    (u32::MAX, 0usize),
                    |best, (&l, &c)| if c > best.1 { (l, c) } else { best },
                )
                .0
        })
        .collect())
}

/// Macro-F1 over the sorted union of true and predicted labels (scikit-learn's
/// `f1_score(average="macro")`; a label with no true and no predicted cells cannot occur, a
/// label predicted but absent from the truth scores 0).
pub fn macro_f1(truth: &[u32], pred: &[u32]) -> Result<f64> {
    check_len("predictions", truth.len(), pred.len())?;
    let mut labels: Vec<u32> = truth.iter().chain(pred).copied().collect();
    labels.sort_unstable();
    labels.dedup();
    if labels.is_empty() {
        return Ok(f64::NAN);
    }
    let f1: f64 = labels
        .iter()
        .map(|&l| {
            let tp = truth
                .iter()
                .zip(pred)
                .filter(|(t, p)| **t == l && **p == l)
                .count() as f64;
            let fp = truth
                .iter()
                .zip(pred)
                .filter(|(t, p)| **t != l && **p == l)
                .count() as f64;
            let fneg = truth
                .iter()
                .zip(pred)
                .filter(|(t, p)| **t == l && **p != l)
                .count() as f64;
            let denom = 2.0 * tp + fp + fneg;
            if denom == 0.0 { 0.0 } else { 2.0 * tp / denom }
        })
        .sum();
    Ok(f1 / labels.len() as f64)
}

/// Share of correct predictions.
pub fn accuracy(truth: &[u32], pred: &[u32]) -> Result<f64> {
    check_len("predictions", truth.len(), pred.len())?;
    Ok(truth.iter().zip(pred).filter(|(t, p)| t == p).count() as f64 / truth.len().max(1) as f64)
}

/// Scores of one annotation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotationScores {
    /// Macro-F1 over the union of true and predicted labels.
    pub macro_f1: f64,
    /// Accuracy.
    pub accuracy: f64,
    /// Query cells scored.
    pub n_query: usize,
}

/// Annotation with and without the "shared cell types only" filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// All cells (the reference's "-in" variant).
    pub all: AnnotationScores,
    /// Only cell types present in both reference and query (the reference's `exclude=True`).
    pub shared_types: AnnotationScores,
}

/// Trains the kNN classifier on the reference and scores it on the query, both with all cells
/// and after removing the cell types found on only one side.
pub fn annotate(
    reference: ArrayView2<'_, f32>,
    ref_labels: &[u32],
    query: ArrayView2<'_, f32>,
    query_labels: &[u32],
    k: usize,
) -> Result<Annotation> {
    check_len("query labels", query.nrows(), query_labels.len())?;
    let score = |r: ArrayView2<'_, f32>,
                 rl: &[u32],
                 q: ArrayView2<'_, f32>,
                 ql: &[u32]|
     -> Result<AnnotationScores> {
        let pred = knn_classify(r, rl, q, k)?;
        Ok(AnnotationScores {
            macro_f1: macro_f1(ql, &pred)?,
            accuracy: accuracy(ql, &pred)?,
            n_query: ql.len(),
        })
    };
    let all = score(reference, ref_labels, query, query_labels)?;
    let rset: std::collections::HashSet<u32> = ref_labels.iter().copied().collect();
    let qset: std::collections::HashSet<u32> = query_labels.iter().copied().collect();
    let keep_r: Vec<usize> = (0..ref_labels.len())
        .filter(|&i| qset.contains(&ref_labels[i]))
        .collect();
    let keep_q: Vec<usize> = (0..query_labels.len())
        .filter(|&i| rset.contains(&query_labels[i]))
        .collect();
    let shared_types = if keep_r.is_empty() || keep_q.is_empty() {
        AnnotationScores {
            macro_f1: f64::NAN,
            accuracy: f64::NAN,
            n_query: 0,
        }
    } else {
        let r = reference.select(ndarray::Axis(0), &keep_r);
        let q = query.select(ndarray::Axis(0), &keep_q);
        let rl: Vec<u32> = keep_r.iter().map(|&i| ref_labels[i]).collect();
        let ql: Vec<u32> = keep_q.iter().map(|&i| query_labels[i]).collect();
        score(r.view(), &rl, q.view(), &ql)?
    };
    Ok(Annotation { all, shared_types })
}

/// Missing-modality prediction scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModalityScores {
    /// Mean per-cell Pearson r between predicted and measured protein.
    pub pearson_mean: f64,
    /// Minimum per-cell r.
    pub pearson_min: f64,
    /// Maximum per-cell r.
    pub pearson_max: f64,
    /// Query cells whose r is undefined (a constant predicted or measured row) and that are
    /// therefore left out of mean/min/max. The reference lets such NaNs poison the mean.
    pub n_undefined: usize,
}

/// Predicts each query cell's protein row as the mean of its `k` nearest reference cells'
/// rows (cosine distance between embeddings, e.g. RNA-branch embeddings). Returns the
/// predictions (query × proteins).
pub fn predict_modality(
    reference: ArrayView2<'_, f32>,
    ref_protein: ArrayView2<'_, f32>,
    query: ArrayView2<'_, f32>,
    k: usize,
) -> Result<Array2<f32>> {
    check_pair(reference, query)?;
    check_len("reference protein", reference.nrows(), ref_protein.nrows())?;
    // cosine distance ranks like Euclidean distance between unit vectors
    let unit = |m: ArrayView2<'_, f32>| {
        let mut u = m.to_owned();
        for mut r in u.rows_mut() {
            let n = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            if n > 0.0 {
                r.mapv_inplace(|v| v / n);
            }
        }
        u
    };
    let (ru, qu) = (unit(reference), unit(query));
    let k = k.min(reference.nrows()).max(1);
    if query.nrows() == 0 {
        return Ok(Array2::zeros((0, ref_protein.ncols())));
    }
    let (idx, _) = knn_query(ru.view(), qu.view(), k)?;
    let mut out = Array2::<f32>::zeros((query.nrows(), ref_protein.ncols()));
    out.axis_iter_mut(ndarray::Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut row)| {
            for &j in idx.row(i) {
                for (o, v) in row.iter_mut().zip(ref_protein.row(j as usize)) {
                    *o += *v / k as f32;
                }
            }
        });
    Ok(out)
}

/// Pearson r of each row pair (NaN where either row is constant).
pub fn rowwise_pearson(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
    if a.dim() != b.dim() {
        return Err(Error::Shape(format!(
            "predicted {:?} vs measured {:?}",
            a.dim(),
            b.dim()
        )));
    }
    Ok(a.rows()
        .into_iter()
        .zip(b.rows())
        .map(|(x, y)| {
            let n = x.len() as f64;
            let mx = x.iter().map(|&v| v as f64).sum::<f64>() / n;
            let my = y.iter().map(|&v| v as f64).sum::<f64>() / n;
            let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
            for (&u, &v) in x.iter().zip(y) {
                let (du, dv) = (u as f64 - mx, v as f64 - my);
                sxy += du * dv;
                sxx += du * du;
                syy += dv * dv;
            }
            if sxx == 0.0 || syy == 0.0 {
                f64::NAN
            } else {
                sxy / (sxx * syy).sqrt()
            }
        })
        .collect())
}

/// Cosine-kNN protein prediction scored by per-cell Pearson r (mean, min, max over the cells
/// where r is defined; see [`ModalityScores::n_undefined`]).
pub fn modality_prediction(
    reference: ArrayView2<'_, f32>,
    ref_protein: ArrayView2<'_, f32>,
    query: ArrayView2<'_, f32>,
    query_protein: ArrayView2<'_, f32>,
    k: usize,
) -> Result<(Array2<f32>, ModalityScores)> {
    check_len("query protein", query.nrows(), query_protein.nrows())?;
    let pred = predict_modality(reference, ref_protein, query, k)?;
    let scores = modality_scores(pred.view(), query_protein)?;
    Ok((pred, scores))
}

/// Per-cell Pearson r of a protein prediction (from any predictor: the kNN of
/// [`modality_prediction`], or a method's own translator) against the measured protein,
/// summarised; cells whose r is undefined are counted apart.
pub fn modality_scores(
    predicted: ArrayView2<'_, f32>,
    measured: ArrayView2<'_, f32>,
) -> Result<ModalityScores> {
    let r = rowwise_pearson(predicted, measured)?;
    let ok: Vec<f64> = r.iter().copied().filter(|v| v.is_finite()).collect();
    Ok(ModalityScores {
        pearson_mean: if ok.is_empty() {
            f64::NAN
        } else {
            ok.iter().sum::<f64>() / ok.len() as f64
        },
        pearson_min: ok.iter().copied().fold(f64::NAN, f64::min),
        pearson_max: ok.iter().copied().fold(f64::NAN, f64::max),
        n_undefined: r.len() - ok.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn f1_has_sklearn_semantics() {
        // sklearn f1_score([0,0,1,1],[0,1,1,2], average='macro') = (2/3 + 1/2 + 0)/3 = 0.3888…
        assert!((macro_f1(&[0, 0, 1, 1], &[0, 1, 1, 2]).unwrap() - 7.0 / 18.0).abs() < 1e-12);
        assert!((accuracy(&[0, 0, 1, 1], &[0, 1, 1, 2]).unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn knn_votes_and_ties() {
        let r = array![[0.0f32], [1.0], [10.0], [11.0]];
        let q = array![[0.5f32], [10.5], [5.5]];
        let p = knn_classify(r.view(), &[7, 7, 3, 3], q.view(), 2).unwrap();
        assert_eq!(&p[..2], &[7, 3]);
        // 4 neighbours, 2 votes each: the tie goes to the smaller label
        assert_eq!(
            knn_classify(r.view(), &[7, 7, 3, 3], q.view(), 4).unwrap()[2],
            3
        );
        let a = annotate(r.view(), &[7, 7, 3, 3], q.view(), &[7, 3, 9], 1).unwrap();
        assert_eq!(a.shared_types.n_query, 2);
        assert_eq!(a.shared_types.accuracy, 1.0);
        assert!(a.all.accuracy < 1.0);
    }

    #[test]
    fn modality_prediction_averages_neighbours() {
        let r = array![[1.0f32, 0.0], [0.9, 0.1], [0.0, 1.0]];
        let prot = array![[1.0f32, 2.0, 3.0], [3.0, 2.0, 1.0], [9.0, 9.0, 0.0]];
        let q = array![[2.0f32, 0.1]];
        let (pred, s) = modality_prediction(
            r.view(),
            prot.view(),
            q.view(),
            array![[2.0f32, 2.0, 2.0]].view(),
            2,
        )
        .unwrap();
        assert_eq!(pred.row(0).to_vec(), vec![2.0, 2.0, 2.0]);
        assert_eq!(s.n_undefined, 1, "a constant row has no Pearson r");
        assert!(s.pearson_mean.is_nan());
        let (_, s) = modality_prediction(
            r.view(),
            prot.view(),
            q.view(),
            array![[1.0f32, 2.0, 3.5]].view(),
            1,
        )
        .unwrap();
        assert!((s.pearson_mean - 0.9933992677987828).abs() < 1e-9);
    }
}

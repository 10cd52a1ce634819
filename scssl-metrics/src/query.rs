//! scSSL-Bench's query-to-reference protocol (methods.md §4.4): hold out whole batches as the
//! query, train on the rest (the caller's model), embed both sides, then annotate the query
//! from the reference with a kNN classifier (k = 11; with all cell types and with only those
//! both sides share) and, for CITE-seq, predict the query's protein from its RNA embedding
//! (k = 5, cosine), score it by per-cell Pearson r, and annotate the query once more with the
//! predicted protein in place of the measured one.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::annotate::{Annotation, ModalityScores, annotate, modality_prediction};
use crate::error::{Error, Result};

/// Neighbours of the kNN classifier (scSSL-Bench: 11).
pub const ANNOTATION_K: usize = 11;
/// Neighbours of the protein prediction (scSSL-Bench: 5).
pub const MODALITY_K: usize = 5;

/// Which cells are the reference and which the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerySplit {
    /// Cells of the batches kept for training, in order.
    pub reference: Vec<usize>,
    /// Cells of the held-out batches, in order.
    pub query: Vec<usize>,
}

/// Splits cells by batch: the batches named in `holdout` are the query. `batch_codes[i]` is
/// cell i's position in `batch_names`. An unknown name, an empty list, or a list that holds
/// out every batch is an error that says so.
pub fn split_by_batches(
    batch_codes: &[u32],
    batch_names: &[String],
    holdout: &[String],
) -> Result<QuerySplit> {
    if holdout.is_empty() {
        return Err(Error::Invalid(
            "no query batches: name at least one batch to hold out".into(),
        ));
    }
    let held: Vec<u32> = holdout
        .iter()
        .map(|b| {
            batch_names
                .iter()
                .position(|n| n == b)
                .map(|i| i as u32)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "query batch {b:?} is not a batch of the data (batches: {})",
                        batch_names.join(", ")
                    ))
                })
        })
        .collect::<Result<_>>()?;
    let (query, reference): (Vec<usize>, Vec<usize>) =
        (0..batch_codes.len()).partition(|&i| held.contains(&batch_codes[i]));
    if reference.is_empty() {
        return Err(Error::Invalid(
            "the query holds every batch: no reference cells remain".into(),
        ));
    }
    Ok(QuerySplit { reference, query })
}

/// One side's embeddings: the joint one, and each modality's own (RNA first) for a multimodal
/// model (empty or one entry for a unimodal one).
#[derive(Debug, Clone)]
pub struct SideEmbeddings<'a> {
    /// The integrated embedding.
    pub joint: ArrayView2<'a, f32>,
    /// Per-modality embeddings, RNA first.
    pub per_modality: Vec<ArrayView2<'a, f32>>,
}

/// The annotation task's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryAnnotation {
    /// From the joint embedding.
    pub joint: Annotation,
    /// From the RNA modality's own embedding (multimodal models only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rna_only: Option<Annotation>,
}

/// Annotates the query from the reference: on the joint embedding, and for a multimodal model
/// also on the RNA embedding alone.
pub fn annotate_query(
    reference: &SideEmbeddings<'_>,
    reference_labels: &[u32],
    query: &SideEmbeddings<'_>,
    query_labels: &[u32],
) -> Result<QueryAnnotation> {
    let joint = annotate(
        reference.joint,
        reference_labels,
        query.joint,
        query_labels,
        ANNOTATION_K,
    )?;
    let rna_only = match (&reference.per_modality[..], &query.per_modality[..]) {
        ([r, _, ..], [q, ..]) => Some(annotate(
            *r,
            reference_labels,
            *q,
            query_labels,
            ANNOTATION_K,
        )?),
        _ => None,
    };
    Ok(QueryAnnotation { joint, rna_only })
}

/// The modality-prediction task's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryModality {
    /// Per-cell Pearson r of predicted against measured protein.
    pub pearson: ModalityScores,
    /// The query annotated from its re-embedding with the predicted protein.
    pub annotation_with_predicted_protein: Annotation,
}

/// Predicts each query cell's protein from its RNA embedding (the mean of its
/// [`MODALITY_K`] nearest reference cells' protein, cosine), scores it, re-embeds the query
/// with the prediction through `reembed` (the caller's model: predicted protein → the query's
/// joint embedding) and annotates that embedding from the reference's joint one. Returns the
/// predicted protein too.
pub fn predict_query_modality<E: std::fmt::Display>(
    reference: &SideEmbeddings<'_>,
    reference_protein: ArrayView2<'_, f32>,
    reference_labels: &[u32],
    query_rna: ArrayView2<'_, f32>,
    query_protein: ArrayView2<'_, f32>,
    query_labels: &[u32],
    reembed: impl FnOnce(&Array2<f32>) -> std::result::Result<Array2<f32>, E>,
) -> Result<(Array2<f32>, QueryModality)> {
    let Some(reference_rna) = reference.per_modality.first() else {
        return Err(Error::Invalid(
            "modality prediction needs the reference's RNA embedding (a multimodal model)".into(),
        ));
    };
    let (predicted, pearson) = modality_prediction(
        *reference_rna,
        reference_protein,
        query_rna,
        query_protein,
        MODALITY_K,
    )?;
    let joint = reembed(&predicted).map_err(|e| {
        Error::Invalid(format!(
            "re-embedding the query with predicted protein: {e}"
        ))
    })?;
    let annotation_with_predicted_protein = annotate(
        reference.joint,
        reference_labels,
        joint.view(),
        query_labels,
        ANNOTATION_K,
    )?;
    Ok((
        predicted,
        QueryModality {
            pearson,
            annotation_with_predicted_protein,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn split_holds_out_the_named_batches_and_names_bad_ones() {
        let codes = [0, 1, 2, 1, 0, 2];
        let s = split_by_batches(&codes, &names(&["a", "b", "c"]), &names(&["c"])).unwrap();
        assert_eq!(s.query, [2, 5]);
        assert_eq!(s.reference, [0, 1, 3, 4]);
        let e = split_by_batches(&codes, &names(&["a", "b", "c"]), &names(&["d"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"d\"") && e.contains("a, b, c"), "{e}");
        let e = split_by_batches(&codes, &names(&["a", "b", "c"]), &names(&["a", "b", "c"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("every batch"), "{e}");
        assert!(split_by_batches(&codes, &names(&["a"]), &[]).is_err());
    }

    #[test]
    fn the_protocol_annotates_and_predicts_protein() {
        // two well-separated cell types; protein follows the type
        let n = 60;
        let x = Array2::from_shape_fn((n, 3), |(i, j)| {
            (i % 2) as f32 * 5.0 + j as f32 * 0.1 + (i % 7) as f32 * 0.01
        });
        let protein = Array2::from_shape_fn((n, 4), |(i, j)| {
            (i % 2) as f32 * (j + 1) as f32 + 0.1 * (i % 5) as f32
        });
        let labels: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
        let (r, q) = (0..40, 40..n);
        let side = |rows: std::ops::Range<usize>| x.slice(ndarray::s![rows, ..]).to_owned();
        let (rx, qx) = (side(r.clone()), side(q.clone()));
        let reference = SideEmbeddings {
            joint: rx.view(),
            per_modality: vec![rx.view(), rx.view()],
        };
        let query = SideEmbeddings {
            joint: qx.view(),
            per_modality: vec![qx.view(), qx.view()],
        };
        let a = annotate_query(&reference, &labels[..40], &query, &labels[40..]).unwrap();
        assert_eq!(a.joint.all.accuracy, 1.0);
        assert!(a.rna_only.is_some());
        let (pred, m) = predict_query_modality(
            &reference,
            protein.slice(ndarray::s![..40, ..]),
            &labels[..40],
            qx.view(),
            protein.slice(ndarray::s![40.., ..]),
            &labels[40..],
            |_| Ok::<_, String>(qx.clone()),
        )
        .unwrap();
        assert_eq!(pred.dim(), (20, 4));
        assert!(m.pearson.pearson_mean > 0.9, "{:?}", m.pearson);
        assert_eq!(m.annotation_with_predicted_protein.all.accuracy, 1.0);
        let e = predict_query_modality(
            &reference,
            protein.slice(ndarray::s![..40, ..]),
            &labels[..40],
            qx.view(),
            protein.slice(ndarray::s![40.., ..]),
            &labels[40..],
            |_| Err("no model"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no model"), "{e}");
    }
}

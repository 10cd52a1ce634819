//! Query/reference splits for the annotation task: hold out whole batches as the query, and
//! optionally keep only the cell types present on both sides (the reference's "exclude" variant).

use std::collections::HashSet;

use crate::anndata::AnnData;
use crate::error::{Error, Result};

/// Row indices of the reference and query cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Cells the model is trained on.
    pub reference: Vec<usize>,
    /// Held-out cells.
    pub query: Vec<usize>,
}

/// Holds out the cells whose `batch_key` value is in `query_batches`. Every query batch must
/// exist, and both sides must be non-empty.
pub fn holdout_batches(ad: &AnnData, batch_key: &str, query_batches: &[String]) -> Result<Split> {
    let g = ad.obs_groups(batch_key)?;
    if query_batches.is_empty() {
        return Err(Error::param(
            "query_batches",
            "name at least one batch to hold out",
        ));
    }
    let mut hold = HashSet::new();
    for q in query_batches {
        match g.names.iter().position(|n| n == q) {
            Some(p) => {
                hold.insert(p as u32);
            }
            None => {
                return Err(Error::param(
                    "query_batches",
                    format!(
                        "batch '{q}' is not in obs['{batch_key}']; batches are: {}",
                        g.names.join(", ")
                    ),
                ));
            }
        }
    }
    let (mut reference, mut query) = (vec![], vec![]);
    for (i, &c) in g.codes.iter().enumerate() {
        if hold.contains(&c) {
            query.push(i)
        } else {
            reference.push(i)
        }
    }
    if reference.is_empty() {
        return Err(Error::param(
            "query_batches",
            "holding out every batch leaves no reference cells",
        ));
    }
    Ok(Split { reference, query })
}

/// Removes from both sides every cell type found on only one side (the symmetric difference of
/// the two label sets), as the reference's `exclude=True` variant does.
pub fn shared_cell_types(ad: &AnnData, label_key: &str, split: &Split) -> Result<Split> {
    let g = ad.obs_groups(label_key)?;
    let r: HashSet<u32> = split.reference.iter().map(|&i| g.codes[i]).collect();
    let q: HashSet<u32> = split.query.iter().map(|&i| g.codes[i]).collect();
    let shared: HashSet<u32> = r.intersection(&q).copied().collect();
    Ok(Split {
        reference: split
            .reference
            .iter()
            .copied()
            .filter(|&i| shared.contains(&g.codes[i]))
            .collect(),
        query: split
            .query
            .iter()
            .copied()
            .filter(|&i| shared.contains(&g.codes[i]))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Column;
    use crate::matrix::Matrix;

    #[test]
    fn holdout_and_exclude() {
        let mut ad = AnnData::new(
            Matrix::Dense(ndarray::Array2::zeros((4, 1))),
            (0..4).map(|i| i.to_string()).collect(),
            vec!["g".into()],
        )
        .unwrap();
        ad.obs
            .insert(
                "batch",
                Column::categorical_from_strings(&["a", "a", "b", "b"]),
            )
            .unwrap();
        ad.obs
            .insert(
                "ct",
                Column::categorical_from_strings(&["x", "y", "x", "z"]),
            )
            .unwrap();
        let s = holdout_batches(&ad, "batch", &["b".into()]).unwrap();
        assert_eq!(
            s,
            Split {
                reference: vec![0, 1],
                query: vec![2, 3]
            }
        );
        let e = shared_cell_types(&ad, "ct", &s).unwrap();
        assert_eq!(
            e,
            Split {
                reference: vec![0],
                query: vec![2]
            }
        );
        let err = holdout_batches(&ad, "batch", &["c".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("batches are: a, b"), "{err}");
        assert!(holdout_batches(&ad, "batch", &["a".into(), "b".into()]).is_err());
    }
}

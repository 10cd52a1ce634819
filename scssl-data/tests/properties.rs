//! Property tests of the matrix, neighbour and preprocessing invariants.

use ndarray::Array2;
use proptest::prelude::*;
use scssl_data::neighbors::{fuzzy_connectivities, knn_exact};
use scssl_data::{CsrMatrix, Matrix};

fn dense(max_r: usize, max_c: usize) -> impl Strategy<Value = Array2<f32>> {
    (1..max_r, 1..max_c).prop_flat_map(|(r, c)| {
        proptest::collection::vec(prop_oneof![3 => Just(0.0f32), 1 => 0.0f32..50.0], r * c)
            .prop_map(move |v| Array2::from_shape_vec((r, c), v).unwrap())
    })
}

proptest! {
    #[test]
    fn csr_transpose_and_selection_agree_with_dense(x in dense(12, 9)) {
        let m = CsrMatrix::from_dense(x.view());
        prop_assert_eq!(m.to_dense(), x.clone());
        prop_assert_eq!(m.transpose().transpose(), m.clone());
        prop_assert_eq!(m.transpose().to_dense(), x.t().to_owned());
        let keep: Vec<bool> = (0..x.ncols()).map(|j| j % 2 == 0).collect();
        let cols: Vec<usize> = (0..x.ncols()).filter(|j| j % 2 == 0).collect();
        prop_assert_eq!(m.select_cols(&keep).to_dense(), x.select(ndarray::Axis(1), &cols));
    }

    #[test]
    fn normalize_makes_row_sums_the_target(x in dense(10, 8)) {
        let mut m = Matrix::Csr(CsrMatrix::from_dense(x.view()));
        scssl_data::pp::normalize_matrix(&mut m, 100.0);
        for (s, orig) in m.row_sums().iter().zip(x.rows()) {
            if orig.sum() > 0.0 { prop_assert!((s - 100.0).abs() < 1e-3); } else { prop_assert_eq!(*s, 0.0); }
        }
    }

    #[test]
    fn knn_self_first_sorted_and_connectivities_symmetric(x in dense(30, 4)) {
        let k = x.nrows().min(5);
        let nn = knn_exact(x.view(), k).unwrap();
        for i in 0..x.nrows() {
            prop_assert_eq!(nn.indices[[i, 0]] as usize, i);
            prop_assert_eq!(nn.distances[[i, 0]], 0.0);
            for c in 1..k { prop_assert!(nn.distances[[i, c - 1]] <= nn.distances[[i, c]]); }
        }
        let w = fuzzy_connectivities(&nn).to_dense();
        for i in 0..x.nrows() {
            prop_assert_eq!(w[[i, i]], 0.0);
            for j in 0..x.nrows() {
                prop_assert!((w[[i, j]] - w[[j, i]]).abs() < 1e-6);
                prop_assert!((0.0..=1.0 + 1e-6).contains(&w[[i, j]]));
            }
        }
    }
}

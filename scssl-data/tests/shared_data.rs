//! Every real dataset in ../shared/data reads, preprocesses and writes back (skipped with a
//! notice where the folder is absent, e.g. in a fresh clone).

mod common;

use common::shared_data;
use scssl_data::pp::{self, HvgOptions};
use scssl_data::{Matrix, io};

#[test]
fn shared_files_read_preprocess_and_write_back() {
    let Some(dir) = shared_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|s| s.to_str()) != Some("h5ad") {
            continue;
        }
        n += 1;
        let ad = io::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(matches!(ad.x, Matrix::Csr(_)));
        assert!(ad.obs.get("batch").is_some() && ad.obs.get("cell_type").is_some());
        // write back unchanged, in both formats
        for ext in ["h5ad", "zarr"] {
            let out = tmp.path().join(format!(
                "{}.{ext}",
                p.file_stem().unwrap().to_string_lossy()
            ));
            io::write(&ad, &out).unwrap();
            let back = io::read(&out).unwrap();
            assert_eq!(back.x, ad.x, "{}", out.display());
            // NaN-aware comparison (NaN != NaN under PartialEq)
            assert!(
                format!("{:?}", back.obs) == format!("{:?}", ad.obs),
                "{}: obs differs",
                out.display()
            );
            assert!(back.obsm == ad.obsm, "{}: obsm differs", out.display());
            assert!(
                format!("{:?}", back.uns) == format!("{:?}", ad.uns),
                "{}: uns differs",
                out.display()
            );
        }
        // the benchmark's preprocessing
        let mut pre = ad.clone();
        pp::normalize_total(&mut pre, 1e4).unwrap();
        pp::log1p(&mut pre);
        let nb = pre.obs_groups("batch").unwrap().n_groups();
        let opts = HvgOptions {
            n_top_genes: 500.min(pre.n_vars()),
            batch_key: (nb > 1).then(|| "batch".into()),
            ..Default::default()
        };
        let hvg = pp::highly_variable_genes(&pre, &opts).unwrap();
        let sub = pre.select_vars(&hvg.highly_variable);
        let pca = pp::pca(&sub.x, 30).unwrap();
        assert_eq!(pca.embedding.nrows(), ad.n_obs());
        if let Some(prot) = ad.obsm.get("protein_expression") {
            let c = pp::clr(prot, pp::ClrAxis::Cells).unwrap();
            assert!(c.iter().all(|v| v.is_finite()));
        }
    }
    assert!(n >= 3, "expected the three shared datasets, found {n}");
}

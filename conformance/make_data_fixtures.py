"""Golden fixtures for scssl-data, written by the Python reference tools.

Run with a venv that has anndata, scanpy and zarr (``cargo xtask fixtures`` makes one):

    python conformance/make_data_fixtures.py [--shared ../shared/data]

Writes, under conformance/fixtures/:
  * anndata_types.h5ad / anndata_types.zarr / anndata_csc.h5ad / anndata_dense_int.h5ad:
    every element type scssl reads (CSR/CSC/dense-int X, layers, categorical/string/numeric/
    bool/nullable columns, obsm, uns strings), plus anndata_types.json describing the content;
  * hvg_counts.h5ad + hvg_golden.json: raw counts with 3 batches and scanpy's
    normalize_total -> log1p -> highly_variable_genes(seurat, batch_key) -> pca results;
  * shared_pbmc_golden.json: the same on ../shared/data/pbmc_3batch_symphony_small.h5ad
    (1,000 HVGs, batch_key='batch') when that file exists.
"""
import argparse
import json
import os
from importlib.metadata import version

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")


def types_fixture():
    rng = np.random.default_rng(7)
    n, g = 12, 6
    X = sp.random(n, g, density=0.4, format="csr", dtype=np.float32, random_state=1)
    X.data = np.round(X.data * 10).astype(np.float32) + 1
    obs = pd.DataFrame(
        {
            "batch": pd.Categorical(["b1", "b2", "b1", "b3"] * 3),
            "cell_type": pd.Categorical(["T", "B", "NK"] * 4, categories=["NK", "T", "B"], ordered=True),
            "label_str": [f"s{i}" for i in range(n)],
            "score": rng.normal(size=n),
            "count": np.arange(n, dtype=np.int64),
            "flag": np.arange(n) % 2 == 0,
            "nullable_int": pd.array([1, None, 3, 4, None, 6, 7, 8, 9, 10, 11, 12], dtype="Int64"),
            "nullable_bool": pd.array([True, False, None] * 4, dtype="boolean"),
        },
        index=[f"cell_{i}" for i in range(n)],
    )
    var = pd.DataFrame({"gene_symbol": [f"SYM{j}" for j in range(g)], "mean": np.linspace(0, 1, g)}, index=[f"gene_{j}" for j in range(g)])
    a = ad.AnnData(X=X, obs=obs, var=var)
    a.layers["counts"] = X.copy()
    a.layers["dense"] = X.toarray()
    a.obsm["X_pca"] = rng.normal(size=(n, 3)).astype(np.float32)
    a.obsm["protein_expression"] = rng.poisson(5, size=(n, 4)).astype(np.float32)
    a.uns["protein_names"] = np.array(["CD3", "CD4", "CD8", "CD19"], dtype=object)
    a.uns["source"] = "scssl conformance fixture"
    a.write_h5ad(os.path.join(OUT, "anndata_types.h5ad"))
    a.write_zarr(os.path.join(OUT, "anndata_types.zarr"))
    # Zarr v3 (anndata >= 0.11 with zarr-python 3), with consolidated metadata in zarr.json
    ad.settings.zarr_write_format = 3
    a.write_zarr(os.path.join(OUT, "anndata_types_v3.zarr"))
    ad.settings.zarr_write_format = 2
    desc = {
        "shape": [n, g],
        "x_dense": a.X.toarray().tolist(),
        "obs_names": list(a.obs_names),
        "var_names": list(a.var_names),
        "batch_codes": a.obs["batch"].cat.codes.tolist(),
        "batch_categories": list(a.obs["batch"].cat.categories),
        "cell_type_categories": list(a.obs["cell_type"].cat.categories),
        "cell_type_ordered": True,
        "score": a.obs["score"].tolist(),
        "nullable_int_mask": a.obs["nullable_int"].isna().tolist(),
        "nullable_bool_mask": a.obs["nullable_bool"].isna().tolist(),
        "obsm_X_pca": a.obsm["X_pca"].tolist(),
        "protein_names": list(a.uns["protein_names"]),
        "uns_source": a.uns["source"],
        "obs_columns": list(a.obs.columns),
        "versions": {"anndata": version("anndata"), "scanpy": version("scanpy")},
    }
    # CSC X and an integer dense X
    b = a.copy()
    b.X = sp.csc_matrix(a.X)
    b.write_h5ad(os.path.join(OUT, "anndata_csc.h5ad"))
    c = ad.AnnData(X=a.X.toarray().astype(np.int32), obs=a.obs[["batch"]].copy(), var=a.var[[]].copy())
    c.write_h5ad(os.path.join(OUT, "anndata_dense_int.h5ad"))
    with open(os.path.join(OUT, "anndata_types.json"), "w") as f:
        json.dump(desc, f, indent=1)


def golden(a, n_top, batch_key, n_comps):
    a = a.copy()
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    sc.pp.highly_variable_genes(a, n_top_genes=n_top, batch_key=batch_key, flavor="seurat")
    hv = a.var["highly_variable"].to_numpy()
    res = {
        "n_top_genes": n_top,
        "batch_key": batch_key,
        "hvg_genes": list(a.var_names[hv]),
        "dispersions_norm": [None if np.isnan(v) else float(v) for v in a.var["dispersions_norm"]],
        "highly_variable_nbatches": a.var["highly_variable_nbatches"].astype(int).tolist() if batch_key else None,
    }
    a = a[:, hv].copy()
    sc.pp.pca(a, n_comps=n_comps, svd_solver="arpack")
    res["pca_explained_variance"] = a.uns["pca"]["variance"].tolist()
    res["pca_explained_variance_ratio"] = a.uns["pca"]["variance_ratio"].tolist()
    res["versions"] = {"anndata": version("anndata"), "scanpy": version("scanpy")}
    return res


def hvg_fixture():
    rng = np.random.default_rng(11)
    n, g, nb = 900, 400, 3
    base = rng.lognormal(0, 1.2, size=g)
    types = rng.integers(0, 5, size=n)
    tf = rng.lognormal(0, 0.8, size=(5, g))
    batch = np.repeat(np.arange(nb), n // nb)
    bf = rng.lognormal(0, 0.3, size=(nb, g))
    lib = rng.lognormal(np.log(1500), 0.4, size=n)
    mu = base[None, :] * tf[types] * bf[batch]
    mu = mu / mu.sum(1, keepdims=True) * lib[:, None]
    counts = rng.negative_binomial(2, 2 / (2 + mu)).astype(np.float32)
    counts[batch == 1, 5] = 0  # a gene absent from one batch
    X = sp.csr_matrix(counts)
    obs = pd.DataFrame({"batch": pd.Categorical([f"b{b}" for b in batch]), "cell_type": pd.Categorical([f"t{t}" for t in types])}, index=[f"c{i}" for i in range(n)])
    var = pd.DataFrame(index=[f"g{j:04d}" for j in range(g)])
    a = ad.AnnData(X=X, obs=obs, var=var)
    a.write_h5ad(os.path.join(OUT, "hvg_counts.h5ad"))
    res = {"batched": golden(a, 100, "batch", 30), "unbatched": golden(a, 100, None, 30)}
    with open(os.path.join(OUT, "hvg_golden.json"), "w") as f:
        json.dump(res, f, indent=1)


def shared_fixture(path):
    if not os.path.exists(path):
        print(f"skipping shared golden: {path} not found")
        return
    a = ad.read_h5ad(path)
    res = golden(a, 1000, "batch", 50)
    with open(os.path.join(OUT, "shared_pbmc_golden.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared", "data"))
    args = p.parse_args()
    os.makedirs(OUT, exist_ok=True)
    types_fixture()
    hvg_fixture()
    shared_fixture(os.path.join(args.shared, "pbmc_3batch_symphony_small.h5ad"))
    print("fixtures written to", OUT)

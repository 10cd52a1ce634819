"""Checks that files written by scssl read back in Python anndata with the expected content.

    python check_python_reads.py SIMULATED.(h5ad|zarr) PREPROCESSED.(h5ad|zarr)
"""
import sys

import anndata as ad
import numpy as np


def read(p):
    return ad.read_zarr(p) if p.endswith(".zarr") else ad.read_h5ad(p)


sim, pp = read(sys.argv[1]), read(sys.argv[2])
assert sim.obs["batch"].dtype == "category" and sim.obs["cell_type"].dtype == "category", sim.obs.dtypes
assert sim.X.dtype == np.float32 and sim.X.format == "csr"
assert np.all(sim.X.data == np.round(sim.X.data)) and sim.X.data.min() > 0, "simulated X holds positive integer counts"
assert "protein_expression" in sim.obsm and len(sim.uns["protein_names"]) == sim.obsm["protein_expression"].shape[1]
assert pp.n_obs == sim.n_obs and pp.var["highly_variable"].all()
assert "counts" in pp.layers and pp.layers["counts"].shape == pp.X.shape
assert pp.obsm["X_pca"].shape[0] == pp.n_obs
assert list(pp.obs_names) == list(sim.obs_names)
# X is the log-normalised counts layer
c = pp.layers["counts"].toarray().astype(np.float64)
full_sums = np.asarray(sim[:, :].X.sum(1)).ravel()
expect = np.log1p(c / full_sums[:, None] * 1e4)
assert np.allclose(pp.X.toarray(), expect, atol=1e-4), "X = log1p(normalize_total(counts))"
print(f"ok: {sys.argv[1]} and {sys.argv[2]} read back in anndata {ad.__version__}")

"""AnnData fidelity fixtures: one small file per on-disk encoding and compression that the
Python stack writes, and the content anndata itself reads back from each.

Run with the conformance venv (``cargo xtask fixtures`` makes it and runs this script):

    python conformance/make_anndata_fixtures.py

Writes conformance/fixtures/anndata/<case>.{h5ad,zarr,v3.zarr} and <case>.json. Each JSON holds
what ``anndata.read_h5ad`` / ``anndata.read_zarr`` returns for that file (X, obs/var with their
dtypes, obsm, layers, raw, uns keys), or, for a file anndata itself no longer reads, the error
scssl must give (``expect_error``). The Rust test ``scssl-data/tests/anndata_fidelity.rs`` reads
every file and compares values, not only shapes.

Cases:
  strings_nullable   pandas' string dtype (``future.infer_string``) in obs/var columns and in
                     the index: ``nullable-string-array`` (anndata >= 0.11), with missing values
  compression_*      gzip / lzf / blosc (h5ad; blosc through hdf5plugin), gzip / zstd / blosc
                     (zarr v2 and v3)
  no_x               an AnnData without X (only obs, var and obsm, like an exported embedding)
  raw                counts in raw/ (raw/X CSC with raw/var's genes), X log-normalised on a
                     gene subset, layers, obsp, nested uns, an obsm dataframe (not read: skipped)
  legacy_categorical anndata 0.7-era dataframes: categorical codes in obs/<col> with the
                     categories in obs/__categories/<col> (h5ad: an object reference attribute;
                     zarr: the attribute names the array), no encoding attributes anywhere
  legacy_compound    anndata < 0.7: obs/var as compound datasets (scssl refuses with a message)
"""
import json
import os
import shutil
from importlib.metadata import version

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
import zarr

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "anndata")


def clean(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def _floats(values):
    return [None if (v is None or (isinstance(v, float) and np.isnan(v))) else float(v) for v in values]


def describe_column(s: pd.Series):
    if isinstance(s.dtype, pd.CategoricalDtype):
        return {
            "kind": "categorical",
            "categories": [str(c) for c in s.cat.categories],
            "codes": [int(c) for c in s.cat.codes],
            "ordered": bool(s.cat.ordered),
        }
    if pd.api.types.is_bool_dtype(s.dtype):
        mask = s.isna().tolist()
        return {
            "kind": "bool",
            "values": [bool(v) if not m else False for v, m in zip(s.tolist(), mask)],
            "mask": mask if isinstance(s.dtype, pd.BooleanDtype) else None,
        }
    if pd.api.types.is_integer_dtype(s.dtype):
        mask = s.isna().tolist()
        return {
            "kind": "int",
            "values": [int(v) if not m else 0 for v, m in zip(s.tolist(), mask)],
            "mask": mask if isinstance(s.dtype, pd.Int64Dtype) or s.dtype.name[0] == "I" else None,
        }
    if pd.api.types.is_float_dtype(s.dtype):
        return {"kind": "float", "values": _floats(s.tolist())}
    return {"kind": "string", "values": [None if pd.isna(v) else str(v) for v in s.tolist()]}


def dense(m):
    if m is None:
        return None
    if sp.issparse(m):
        m = m.toarray()
    return np.asarray(m, dtype=np.float64).tolist()


def describe(a: ad.AnnData, skipped=()):
    return {
        "shape": list(a.shape),
        "x": dense(a.X),
        "obs_names": [str(x) for x in a.obs_names],
        "var_names": [str(x) for x in a.var_names],
        "obs": {c: describe_column(a.obs[c]) for c in a.obs.columns},
        "var": {c: describe_column(a.var[c]) for c in a.var.columns},
        "obsm": {k: dense(v) for k, v in a.obsm.items() if not isinstance(v, pd.DataFrame)},
        "layers": {k: dense(v) for k, v in a.layers.items()},
        "raw": None
        if a.raw is None
        else {"var_names": [str(x) for x in a.raw.var_names], "x": dense(a.raw.X)},
        "uns_keys": sorted(a.uns.keys()),
        "skipped": list(skipped),
        "versions": {k: version(k) for k in ["anndata", "h5py", "zarr", "pandas"]},
    }


def save(case, desc):
    with open(os.path.join(OUT, case + ".json"), "w") as f:
        json.dump(desc, f, indent=1, allow_nan=False)


def base(n=8, g=5, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, g, density=0.5, format="csr", dtype=np.float32, random_state=seed)
    X.data = np.round(X.data * 9).astype(np.float32) + 1
    obs = pd.DataFrame(
        {
            "batch": pd.Categorical(["b1", "b2"] * (n // 2)),
            "cell_type": pd.Categorical(["T", "B", "NK", "T"] * (n // 4)),
            "score": rng.normal(size=n),
        },
        index=[f"cell_{i}" for i in range(n)],
    )
    var = pd.DataFrame({"gene_ids": [f"ENSG{j:05d}" for j in range(g)]}, index=[f"gene_{j}" for j in range(g)])
    return ad.AnnData(X=X, obs=obs, var=var)


def strings_nullable():
    # pandas' string dtype, as pandas 3 makes the default (and infer_string before it)
    with pd.option_context("future.infer_string", True):
        a = base()
        a.obs["donor"] = pd.array(["d1", None, "d2", "d3", "d1", "d2", None, "d3"], dtype="string")
        a.obs["note"] = pd.array([f"n{i}" for i in range(8)], dtype="string")
        a.var["symbol"] = pd.array(["CD3E", "CD4", None, "MS4A1", "NKG7"], dtype="string")
        a.obs.index = pd.Index([f"cell_{i}" for i in range(8)], dtype="string")
        a.var.index = pd.Index([f"gene_{j}" for j in range(5)], dtype="string")
        ad.settings.allow_write_nullable_strings = True
        try:
            for path, fmt in [("strings_nullable.h5ad", None), ("strings_nullable.zarr", 2), ("strings_nullable.v3.zarr", 3)]:
                p = os.path.join(OUT, path)
                clean(p)
                if fmt is None:
                    a.write_h5ad(p, convert_strings_to_categoricals=False)
                else:
                    ad.settings.zarr_write_format = fmt
                    a.write_zarr(p, convert_strings_to_categoricals=False)
                    ad.settings.zarr_write_format = 2
            with h5py.File(os.path.join(OUT, "strings_nullable.h5ad")) as f:
                assert f["obs/_index"].attrs["encoding-type"] == "nullable-string-array"
                assert f["obs/donor"].attrs["encoding-type"] == "nullable-string-array"
            back = ad.read_h5ad(os.path.join(OUT, "strings_nullable.h5ad"))
        finally:
            ad.settings.allow_write_nullable_strings = False
    save("strings_nullable", describe(back))


def compression():
    a = base(seed=1)
    a.layers["counts"] = a.X.copy()
    a.obsm["X_pca"] = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    for comp, opts in [("gzip", {}), ("lzf", {})]:
        p = os.path.join(OUT, f"compression_{comp}.h5ad")
        clean(p)
        a.write_h5ad(p, compression=comp, **opts)
    import hdf5plugin

    # Blosc through hdf5plugin on every numeric dataset (h5py's blosc filter crashes on
    # variable-length strings, so those stay uncompressed, as a user's file would have them)
    p = os.path.join(OUT, "compression_blosc.h5ad")
    clean(p)
    big = a.copy()
    big.obsm["wide"] = np.zeros((8, 4000), dtype=np.float32)  # big enough that Blosc really compresses
    big.write_h5ad(p)
    blosc = hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)
    with h5py.File(p, "r+") as f:
        numeric = []
        f.visititems(lambda n, o: numeric.append(n) if isinstance(o, h5py.Dataset) and o.dtype.kind in "fiub" and o.shape else None)
        for n in numeric:
            data, attrs = f[n][()], dict(f[n].attrs)
            del f[n]
            f.create_dataset(n, data=data, chunks=True, **blosc)
            f[n].attrs.update(attrs)
        assert numeric
    from numcodecs import GZip, Zstd, Blosc
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

    for comp, v2, v3 in [
        ("gzip", GZip(level=5), GzipCodec(level=5)),
        ("zstd", Zstd(level=3), ZstdCodec(level=3)),
        ("blosc", Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE), BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")),
    ]:
        for fmt, codec, suffix in [(2, v2, ".zarr"), (3, v3, ".v3.zarr")]:
            p = os.path.join(OUT, f"compression_{comp}{suffix}")
            clean(p)
            g = zarr.open_group(p, mode="w", zarr_format=fmt)
            ad.io.write_elem(g, "/", a, dataset_kwargs={"compressors": [codec] if fmt == 3 else codec})
            zarr.consolidate_metadata(p)
    save("compression", describe(ad.read_h5ad(os.path.join(OUT, "compression_gzip.h5ad"))))


def no_x():
    a = base(seed=2)
    b = ad.AnnData(obs=a.obs, var=a.var)
    b.obsm["X_scvi"] = np.random.default_rng(2).normal(size=(8, 4)).astype(np.float32)
    assert b.X is None
    for path in ["no_x.h5ad", "no_x.zarr"]:
        p = os.path.join(OUT, path)
        clean(p)
        (b.write_h5ad if path.endswith("h5ad") else b.write_zarr)(p)
    with h5py.File(os.path.join(OUT, "no_x.h5ad")) as f:
        assert "X" not in f
    save("no_x", describe(ad.read_h5ad(os.path.join(OUT, "no_x.h5ad"))))


def raw():
    counts = base(n=8, g=7, seed=3)
    counts.X = sp.csc_matrix(counts.X)
    a = counts.copy()
    a.raw = counts
    a = a[:, [0, 2, 3, 5]].copy()
    x = a.X.toarray()
    x = np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4)
    a.X = x.astype(np.float32)
    a.layers["log"] = a.X.copy()
    a.obsp["connectivities"] = sp.random(8, 8, density=0.3, format="csr", random_state=3)
    a.obsm["X_umap"] = np.random.default_rng(3).normal(size=(8, 2))
    a.obsm["sparse_emb"] = sp.random(8, 3, density=0.5, format="csr", dtype=np.float32, random_state=4)
    a.obsm["meta"] = pd.DataFrame({"u": np.arange(8.0), "v": list("abcdefgh")}, index=a.obs_names)
    a.obs["n_genes"] = pd.array([1, 2, None, 4, 5, 6, 7, None], dtype="Int64")
    a.obs["is_doublet"] = pd.array([True, False, None, False, True, False, None, True], dtype="boolean")
    a.obs["group_int"] = pd.Categorical([1, 2, 1, 3, 2, 1, 3, 2])
    a.uns["neighbors"] = {"params": {"n_neighbors": 15, "method": "umap", "nested": {"deep": "yes"}}}
    a.uns["title"] = "raw fixture"
    a.uns["table"] = pd.DataFrame({"x": [1, 2]})
    for path in ["raw.h5ad", "raw.zarr"]:
        p = os.path.join(OUT, path)
        clean(p)
        (a.write_h5ad if path.endswith("h5ad") else a.write_zarr)(p)
    save("raw", describe(ad.read_h5ad(os.path.join(OUT, "raw.h5ad")), skipped=["obsm/meta", "uns/table"]))


def zstrings(group, name, values):
    arr = group.create_array(name, shape=(len(values),), dtype=str)
    arr[:] = np.asarray(values, dtype=object)
    return arr


def legacy_categorical():
    """anndata 0.7's layout, written by hand (anndata 0.7 does not install on Python 3.11)."""
    rng = np.random.default_rng(4)
    n, g = 6, 3
    X = rng.poisson(2, size=(n, g)).astype(np.float32)
    cell_names = np.array([f"c{i}" for i in range(n)], dtype=object)
    gene_names = np.array([f"g{j}" for j in range(g)], dtype=object)
    batch_codes = np.array([0, 1, 0, 1, -1, 0], dtype=np.int8)
    batch_cats = np.array(["batch_a", "batch_b"], dtype=object)
    ct_codes = np.array([2, 0, 1, 2, 0, 1], dtype=np.int8)
    ct_cats = np.array(["B", "NK", "T"], dtype=object)
    n_counts = X.sum(1)
    pca = rng.normal(size=(n, 2)).astype(np.float32)
    str_dt = h5py.special_dtype(vlen=str)

    p = os.path.join(OUT, "legacy_categorical.h5ad")
    clean(p)
    with h5py.File(p, "w") as f:
        f.create_dataset("X", data=X)
        obs = f.create_group("obs")
        obs.attrs["encoding-type"] = "dataframe"
        obs.attrs["encoding-version"] = "0.1.0"
        obs.attrs["_index"] = "_index"
        obs.attrs["column-order"] = np.array(["batch", "cell_type", "n_counts"], dtype=object).astype(str_dt)
        obs.create_dataset("_index", data=cell_names, dtype=str_dt)
        cats = obs.create_group("__categories")
        cats.create_dataset("batch", data=batch_cats, dtype=str_dt)
        cats.create_dataset("cell_type", data=ct_cats, dtype=str_dt)
        obs.create_dataset("batch", data=batch_codes)
        obs["batch"].attrs["categories"] = cats["batch"].ref
        obs.create_dataset("cell_type", data=ct_codes)
        obs["cell_type"].attrs["categories"] = cats["cell_type"].ref
        obs.create_dataset("n_counts", data=n_counts)
        var = f.create_group("var")
        var.attrs["encoding-type"] = "dataframe"
        var.attrs["encoding-version"] = "0.1.0"
        var.attrs["_index"] = "_index"
        var.attrs["column-order"] = np.array([], dtype="float64")
        var.create_dataset("_index", data=gene_names, dtype=str_dt)
        f.create_group("obsm").create_dataset("X_pca", data=pca)
        f.create_group("uns")

    pz = os.path.join(OUT, "legacy_categorical.zarr")
    clean(pz)
    root = zarr.open_group(pz, mode="w", zarr_format=2)
    root.create_array("X", data=X)
    obs = root.create_group("obs")
    obs.attrs.update({"encoding-type": "dataframe", "encoding-version": "0.1.0", "_index": "_index", "column-order": ["batch", "cell_type", "n_counts"]})
    zstrings(obs, "_index", cell_names)
    cats = obs.create_group("__categories")
    zstrings(cats, "batch", batch_cats)
    zstrings(cats, "cell_type", ct_cats)
    bc = obs.create_array("batch", data=batch_codes)
    bc.attrs["categories"] = "__categories/batch"
    cc = obs.create_array("cell_type", data=ct_codes)
    cc.attrs["categories"] = "__categories/cell_type"
    obs.create_array("n_counts", data=n_counts)
    var = root.create_group("var")
    var.attrs.update({"encoding-type": "dataframe", "encoding-version": "0.1.0", "_index": "_index", "column-order": []})
    zstrings(var, "_index", gene_names)
    root.create_group("obsm").create_array("X_pca", data=pca)
    root.create_group("uns")

    back = ad.read_h5ad(p)
    assert isinstance(back.obs["batch"].dtype, pd.CategoricalDtype), back.obs.dtypes
    save("legacy_categorical", describe(back))


def legacy_compound():
    n, g = 4, 3
    p = os.path.join(OUT, "legacy_compound.h5ad")
    clean(p)
    with h5py.File(p, "w") as f:
        f.create_dataset("X", data=np.ones((n, g), dtype=np.float32))
        obs = np.zeros(n, dtype=[("index", "S8"), ("batch", "i1"), ("n_counts", "f4")])
        obs["index"] = [f"c{i}".encode() for i in range(n)]
        obs["batch"] = [0, 1, 0, 1]
        f.create_dataset("obs", data=obs)
        var = np.zeros(g, dtype=[("index", "S8")])
        var["index"] = [f"g{j}".encode() for j in range(g)]
        f.create_dataset("var", data=var)
        f.create_group("uns").create_dataset("batch_categories", data=np.array([b"a", b"b"]))
    save("legacy_compound", {"expect_error": "predates anndata 0.7"})


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    strings_nullable()
    compression()
    no_x()
    raw()
    legacy_categorical()
    legacy_compound()
    print("wrote", sorted(os.listdir(OUT)))

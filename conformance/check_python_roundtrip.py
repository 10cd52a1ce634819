"""Checks that what scssl writes reads back in Python anndata with the content anndata reads
from the original: every fixture of conformance/fixtures/anndata/ (written by anndata 0.12) is
rewritten by `scssl convert` as .h5ad and as .zarr, and anndata reads the original and both
rewrites. Run by `cargo xtask fixtures` (and `cargo xtask fixtures --roundtrip-only`), once per
anndata version it is given.

    python check_python_roundtrip.py SCSSL_BINARY FIXTURES_DIR WORK_DIR

What may differ, by design (see scssl-data's README): string columns come back as plain object
strings (pandas' string dtype is written as `string-array`), and elements scssl skips with a
warning (obsm dataframes, uns dataframes, awkward arrays) are absent.
"""
import json
import os
import subprocess
import sys
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

try:
    import hdf5plugin  # noqa: F401 - registers Blosc, so anndata can read the Blosc fixture
except ImportError:
    pass

warnings.filterwarnings("ignore")
scssl, fixtures, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)


def read(p):
    return ad.read_zarr(p) if p.endswith(".zarr") else ad.read_h5ad(p)


def dense(m):
    return m.toarray() if sp.issparse(m) else np.asarray(m)


def same_matrix(a, b, what):
    a, b = dense(a), dense(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs {b.shape}"
    assert np.allclose(a.astype(np.float64), b.astype(np.float64), equal_nan=True), f"{what}: values differ"


def same_frame(a, b, what):
    assert list(a.index) == list(b.index), f"{what}: index differs"
    assert list(a.columns) == list(b.columns), f"{what}: columns {list(a.columns)} vs {list(b.columns)}"
    for c in a.columns:
        x, y = a[c], b[c]
        if isinstance(x.dtype, pd.CategoricalDtype):
            assert isinstance(y.dtype, pd.CategoricalDtype), f"{what}[{c}]: no longer categorical"
            assert list(x.cat.categories) == list(y.cat.categories), f"{what}[{c}]: categories differ"
        xs = x.astype(object).where(x.notna(), None).tolist()
        ys = y.astype(object).where(y.notna(), None).tolist()
        assert [str(v) if v is not None else None for v in xs] == [str(v) if v is not None else None for v in ys], f"{what}[{c}]: values differ"


def same_uns(a, b, what):
    for k, v in a.items():
        if isinstance(v, pd.DataFrame):
            continue  # skipped by scssl, with a warning
        assert k in b, f"{what}: uns[{k!r}] missing"
        if isinstance(v, dict):
            same_uns(v, b[k], f"{what}/{k}")
        elif isinstance(v, (np.ndarray, list)) and np.asarray(v).dtype.kind in "fiub":
            assert np.allclose(np.asarray(v), np.asarray(b[k])), f"{what}: uns[{k!r}] differs"
        else:
            assert str(np.asarray(v).tolist()) == str(np.asarray(b[k]).tolist()), f"{what}: uns[{k!r}] differs"


def same(orig, back, what):
    same_matrix(orig.X, back.X, f"{what} X")
    same_frame(orig.obs, back.obs, f"{what} obs")
    same_frame(orig.var, back.var, f"{what} var")
    for k in orig.layers:
        same_matrix(orig.layers[k], back.layers[k], f"{what} layers[{k}]")
    for k, v in orig.obsm.items():
        if isinstance(v, pd.DataFrame):
            continue
        same_matrix(v, back.obsm[k], f"{what} obsm[{k}]")
    for k in orig.obsp:
        same_matrix(orig.obsp[k], back.obsp[k], f"{what} obsp[{k}]")
    assert (orig.raw is None) == (back.raw is None), f"{what}: raw present in one only"
    if orig.raw is not None:
        same_matrix(orig.raw.X, back.raw.X, f"{what} raw.X")
        assert list(orig.raw.var_names) == list(back.raw.var_names), f"{what}: raw.var_names differ"
    same_uns(orig.uns, back.uns, what)


checked = 0
for name in sorted(os.listdir(fixtures)):
    if not (name.endswith(".h5ad") or name.endswith(".zarr")):
        continue
    if name.startswith("legacy_compound") or name.startswith("no_x"):
        continue  # refused by design (pre-0.7), and no X to convert
    src = os.path.join(fixtures, name)
    outs = []
    for ext in ("h5ad", "zarr"):
        out = os.path.join(work, f"{name}.scssl.{ext}")
        subprocess.run([scssl, "convert", src, "-o", out], check=True, stdout=subprocess.DEVNULL)
        outs.append(out)
    try:
        orig = read(src)
    except Exception as e:  # noqa: BLE001 - e.g. this anndata cannot read a newer encoding
        # an older anndata that cannot read the original must still read what scssl wrote:
        # both rewrites agree, and agree with what anndata 0.12 read (the fixture's JSON)
        h5, zr = read(outs[0]), read(outs[1])
        same(h5, zr, f"{name} (h5ad vs zarr rewrite)")
        case = name.split(".")[0]
        case = "compression" if case.startswith("compression_") else case
        with open(os.path.join(fixtures, case + ".json")) as f:
            golden = json.load(f)
        assert list(h5.shape) == golden["shape"], f"{name}: shape {h5.shape} vs {golden['shape']}"
        assert list(h5.obs_names) == golden["obs_names"], f"{name}: obs_names differ"
        print(f"{name}: anndata {ad.__version__} cannot read the original ({type(e).__name__}); it reads scssl's rewrites")
        checked += 2
        continue
    for out in outs:
        same(orig, read(out), f"{name} → {out.rsplit('.', 1)[1]}")
        checked += 1
assert checked > 0, "no fixture was checked"
print(f"ok: {checked} rewrites by scssl read back in anndata {ad.__version__} with the original's content")

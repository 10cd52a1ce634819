"""Input checks shared by every function: embeddings become C-contiguous float32 matrices,
label and batch arrays of any dtype become integer codes, and bad input raises ValueError."""
from __future__ import annotations

import numpy as np


def embedding(X, what: str = "X") -> np.ndarray:
    """``X`` as a C-contiguous float32 matrix (sparse matrices are densified)."""
    if hasattr(X, "toarray"):
        X = X.toarray()
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{what} must be a 2-d array (cells × dimensions), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"{what} must be numeric, got dtype {X.dtype}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        bad = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(
            f"{what} has a non-finite value {X[bad[0], bad[1]]} at row {bad[0]}, column {bad[1]}"
        )
    return X


def codes(values, what: str, n: int | None = None) -> np.ndarray:
    """Integer codes (uint32) of a label or batch array of any dtype, in sorted category order."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-d, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{what} has {arr.shape[0]} entries, the embedding has {n} cells")
    if arr.dtype.kind == "O":
        missing = [i for i, v in enumerate(arr) if v is None or (isinstance(v, float) and v != v)]
        if missing:
            raise ValueError(f"{what} has missing values (first at position {missing[0]})")
        arr = arr.astype(str)
    elif arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError(f"{what} has missing values (first at position {int(np.argmax(np.isnan(arr)))})")
    _, inverse = np.unique(arr, return_inverse=True)
    return np.ascontiguousarray(inverse.reshape(-1), dtype=np.uint32)

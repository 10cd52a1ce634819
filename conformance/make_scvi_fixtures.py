"""Golden values for scssl's scVI, computed with scvi-tools itself.

    pip install scvi-tools==1.1.6   # (with numpyro 0.15, jax 0.4.28, anndata 0.10.9)
    python conformance/make_scvi_fixtures.py   # writes conformance/fixtures/models/scvi.json

* `log_nb_positive`, `log_zinb_positive` (scvi.distributions) and the Normal KL
  (torch.distributions.kl_divergence against N(0, 1), summed over the latent dimensions) on
  fixed float64 inputs;
* the number of trainable parameters of `SCVI` for a fixed data shape, for the benchmark's
  setting (8 layers, 30 latent, NB) and the library default (1 layer, 10 latent, ZINB), with
  the parameters scssl does not build (the library encoder and heads scvi-tools creates but
  does not use with these settings) counted apart.

The Rust test `scssl-models/tests/scvi_conformance.rs` reads the JSON; cargo test needs no
Python.
"""
import json
import pathlib

import anndata
import numpy as np
import scvi
import torch
from scvi.distributions._negative_binomial import log_nb_positive, log_zinb_positive
from torch.distributions import Normal, kl_divergence

torch.manual_seed(0)
N, G, D = 5, 7, 3
x = torch.poisson(torch.rand(N, G, dtype=torch.float64) * 6.0)
x[0, :3] = 0.0
mu = torch.rand(N, G, dtype=torch.float64) * 5.0 + 0.05
theta = torch.rand(N, G, dtype=torch.float64) * 3.0 + 0.1
pi = torch.randn(N, G, dtype=torch.float64)
m = torch.randn(N, D, dtype=torch.float64)
v = torch.rand(N, D, dtype=torch.float64) + 0.1

out = {
    "scvi_tools_version": scvi.__version__,
    "torch_version": torch.__version__,
    "x": x.tolist(),
    "mu": mu.tolist(),
    "theta": theta.tolist(),
    "pi": pi.tolist(),
    "mean": m.tolist(),
    "var": v.tolist(),
    "log_nb_positive": log_nb_positive(x, mu, theta).tolist(),
    "log_zinb_positive": log_zinb_positive(x, mu, theta, pi).tolist(),
    "kl_normal": kl_divergence(Normal(m, v.sqrt()), Normal(torch.zeros_like(m), torch.ones_like(v)))
    .sum(dim=1)
    .tolist(),
}

# parameter counts for 200 cells x 50 genes, 3 batches
rng = np.random.default_rng(0)
ad = anndata.AnnData(rng.poisson(2.0, size=(200, 50)).astype(np.float32))
ad.obs["batch"] = [f"b{i % 3}" for i in range(200)]
scvi.model.SCVI.setup_anndata(ad, batch_key="batch")
counts = {}
for name, kwargs in {
    "benchmark": dict(n_layers=8, n_latent=30, gene_likelihood="nb"),
    "default": dict(),
}.items():
    model = scvi.model.SCVI(ad, **kwargs)
    params = dict(model.module.named_parameters())
    # scvi-tools builds these whatever the settings: the library encoder (unused with the
    # observed library size), px_r_decoder (unused with a per-gene dispersion) and, with NB,
    # px_dropout_decoder
    unused = ["l_encoder.", "decoder.px_r_decoder"]
    if kwargs.get("gene_likelihood") == "nb":
        unused.append("decoder.px_dropout_decoder")
    n_unused = sum(p.numel() for k, p in params.items() if any(k.startswith(u) for u in unused))
    counts[name] = {
        "settings": kwargs,
        "n_parameters": sum(p.numel() for p in params.values()),
        "n_unused_heads": n_unused,
        "names": sorted(params),
    }
out["parameter_counts"] = {"cells": 200, "genes": 50, "batches": 3, **counts}

path = pathlib.Path(__file__).parent / "fixtures" / "models" / "scvi.json"
path.write_text(json.dumps(out, indent=1))
print("wrote", path)

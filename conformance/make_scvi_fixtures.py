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

* totalVI: `log_mixture_nb` and the KL of two Normals on fixed float64 inputs, the number of
  trainable parameters of `TOTALVI` (defaults, and NB with gene-batch dispersion) for a fixed
  data shape, and the empirical background prior's inputs and output are not compared (it
  uses scikit-learn's random k-means start);
* a small scVI and a small totalVI trained by scvi-tools, exported (every parameter and
  BatchNorm buffer, with the inputs) together with their ELBO terms and posterior means on
  those inputs computed in eval mode with z at its posterior mean and (totalVI) the protein
  background at its mean, so that scssl can load the weights and compare.

The Rust tests `scssl-models/tests/scvi_conformance.rs` and `totalvi_conformance.rs` read the
JSON; cargo test needs no Python.
"""
import json
import pathlib

import anndata
import numpy as np
import scvi
import torch
from scvi.distributions._negative_binomial import (
    log_mixture_nb,
    log_nb_positive,
    log_zinb_positive,
)
from torch.distributions import Normal, kl_divergence

# scvi-tools 1.1.6 passes `verbose` to ReduceLROnPlateau, which newer PyTorch removed
import scvi.train._trainingplans as _plans


class _ReduceLROnPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    def __init__(self, *args, verbose=None, **kwargs):
        super().__init__(*args, **kwargs)


_plans.ReduceLROnPlateau = _ReduceLROnPlateau

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


def trained_scvi():
    """A 2-epoch scVI on 60 cells x 12 genes, 2 batches; weights, inputs, terms, means."""
    scvi.settings.seed = 1
    r = np.random.default_rng(1)
    ad = anndata.AnnData(r.poisson(3.0, size=(60, 12)).astype(np.float32))
    ad.obs["batch"] = [f"b{i % 2}" for i in range(60)]
    scvi.model.SCVI.setup_anndata(ad, batch_key="batch")
    model = scvi.model.SCVI(ad, n_latent=4, n_hidden=16, n_layers=2, gene_likelihood="zinb")
    model.train(max_epochs=2, batch_size=32)
    m = model.module.eval()
    x = torch.tensor(ad.X)
    b = torch.tensor([[i % 2] for i in range(60)])
    with torch.no_grad():
        inf = m.inference(x, b)
        qz = inf["qz"]
        gen = m.generative(qz.loc, inf["library"], b)
        rec = -gen["px"].log_prob(x).sum(-1)
        kl = kl_divergence(qz, Normal(torch.zeros_like(qz.loc), torch.ones_like(qz.scale))).sum(1)
    return {
        "settings": {"n_latent": 4, "n_hidden": 16, "n_layers": 2, "gene_likelihood": "zinb"},
        "x": ad.X.tolist(),
        "batch": [i % 2 for i in range(60)],
        "state_dict": {k: v.double().tolist() for k, v in m.state_dict().items()},
        "reconstruction": rec.tolist(),
        "kl": kl.tolist(),
        "latent_mean": qz.loc.tolist(),
    }


def trained_totalvi():
    """A 2-epoch totalVI on 80 cells x 15 genes x 12 proteins, 2 batches."""
    scvi.settings.seed = 2
    r = np.random.default_rng(2)
    ad = anndata.AnnData(r.poisson(3.0, size=(80, 15)).astype(np.float32))
    ad.obsm["protein"] = (r.poisson(20.0, size=(80, 12)) + r.poisson(1.0, size=(80, 12)) * 50).astype(
        np.float32
    )
    ad.obs["batch"] = [f"b{i % 2}" for i in range(80)]
    scvi.model.TOTALVI.setup_anndata(ad, protein_expression_obsm_key="protein", batch_key="batch")
    model = scvi.model.TOTALVI(ad, n_latent=5, n_hidden=24)
    model.train(max_epochs=2, batch_size=32)
    m = model.module.eval()
    x = torch.tensor(ad.X)
    y = torch.tensor(ad.obsm["protein"])
    b = torch.tensor([[i % 2] for i in range(80)])
    with torch.no_grad():
        inf = m.inference(x, y, b)
        qz = inf["qz"]
        z = qz.loc
        lib = x.sum(1, keepdim=True)
        dec = m.decoder
        cov = (b,)
        px = dec.px_decoder(z, *cov)
        scale = dec.px_scale_activation(dec.px_scale_decoder(torch.cat([px, z], -1), *cov))
        rate = lib * scale
        pb = dec.py_back_decoder(z, *cov)
        pbz = torch.cat([pb, z], -1)
        back_alpha = dec.py_back_mean_log_alpha(pbz, *cov)
        back_beta = torch.exp(dec.py_back_mean_log_beta(pbz, *cov))
        rate_back = torch.exp(back_alpha)  # the background at its posterior mean
        pf = dec.py_fore_decoder(z, *cov)
        fore = dec.py_fore_scale_decoder(torch.cat([pf, z], -1), *cov) + 1 + 1e-8
        rate_fore = rate_back * fore
        pm = dec.sigmoid_decoder(z, *cov)
        mixing = dec.py_background_decoder(torch.cat([pm, z], -1), *cov)
        px_r = torch.exp(m.px_r)
        py_r = torch.exp(m.py_r)
        rec_gene = -log_nb_positive(x, rate, px_r).sum(-1)
        rec_prot = -log_mixture_nb(y, rate_back, rate_fore, py_r, None, mixing).sum(-1)
        kl_z = kl_divergence(qz, Normal(torch.zeros_like(z), torch.ones_like(z))).sum(1)
        oh = torch.nn.functional.one_hot(b.ravel(), 2).float()
        prior = Normal(
            torch.nn.functional.linear(oh, m.background_pro_alpha),
            torch.nn.functional.linear(oh, torch.exp(m.background_pro_log_beta)),
        )
        kl_back = kl_divergence(Normal(back_alpha, back_beta), prior).sum(1)
    return {
        "settings": {"n_latent": 5, "n_hidden": 24},
        "x": ad.X.tolist(),
        "y": ad.obsm["protein"].tolist(),
        "batch": [i % 2 for i in range(80)],
        "state_dict": {k: v.double().tolist() for k, v in m.state_dict().items()},
        "reconstruction_genes": rec_gene.tolist(),
        "reconstruction_proteins": rec_prot.tolist(),
        "kl_z": kl_z.tolist(),
        "kl_background": kl_back.tolist(),
        "latent_mean": z.tolist(),
    }


out["trained_scvi"] = trained_scvi()

path = pathlib.Path(__file__).parent / "fixtures" / "models" / "scvi.json"
path.write_text(json.dumps(out, indent=1))
print("wrote", path)

# totalVI goldens
torch.manual_seed(3)
N, P = 4, 6
y = torch.poisson(torch.rand(N, P, dtype=torch.float64) * 40.0)
mu1 = torch.rand(N, P, dtype=torch.float64) * 10.0 + 0.5
mu2 = mu1 * (torch.rand(N, P, dtype=torch.float64) * 5.0 + 1.0)
th = torch.rand(P, dtype=torch.float64) * 5.0 + 0.2
mix = torch.randn(N, P, dtype=torch.float64) * 2.0
m1, m2 = torch.randn(N, P, dtype=torch.float64), torch.randn(N, P, dtype=torch.float64)
s1, s2 = torch.rand(N, P, dtype=torch.float64) + 0.1, torch.rand(N, P, dtype=torch.float64) + 0.1
tv = {
    "y": y.tolist(),
    "mu1": mu1.tolist(),
    "mu2": mu2.tolist(),
    "theta": th.tolist(),
    "mixing": mix.tolist(),
    "log_mixture_nb": log_mixture_nb(y, mu1, mu2, th, None, mix).tolist(),
    "m1": m1.tolist(),
    "s1": s1.tolist(),
    "m2": m2.tolist(),
    "s2": s2.tolist(),
    "kl_normal": kl_divergence(Normal(m1, s1), Normal(m2, s2)).tolist(),
}
r = np.random.default_rng(0)
ad = anndata.AnnData(r.poisson(2.0, size=(200, 50)).astype(np.float32))
ad.obsm["protein"] = r.poisson(30.0, size=(200, 14)).astype(np.float32)
ad.obs["batch"] = [f"b{i % 3}" for i in range(200)]
scvi.model.TOTALVI.setup_anndata(ad, protein_expression_obsm_key="protein", batch_key="batch")
tcounts = {}
for name, kwargs in {
    "default": dict(),
    "gene_batch": dict(gene_dispersion="gene-batch", n_latent=10),
}.items():
    model = scvi.model.TOTALVI(ad, **kwargs)
    params = dict(model.module.named_parameters())
    tcounts[name] = {
        "settings": kwargs,
        "n_parameters": sum(p.numel() for p in params.values()),
        "names": sorted(params),
    }
tv["parameter_counts"] = {"cells": 200, "genes": 50, "proteins": 14, "batches": 3, **tcounts}
tv["trained_totalvi"] = trained_totalvi()
tv["scvi_tools_version"] = scvi.__version__
path = pathlib.Path(__file__).parent / "fixtures" / "models" / "totalvi.json"
path.write_text(json.dumps(tv, indent=1))
print("wrote", path)

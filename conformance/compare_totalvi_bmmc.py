"""totalVI in scssl against scvi-tools on the same CITE-seq file, both with scvi-tools 1.1's
defaults (20 latent, NB genes, empirical background prior, lr 4e-3, batches of 256, early
stopping and LR on plateau, the batch as covariate), both scored by `scssl eval`.

    python conformance/compare_totalvi_bmmc.py SCSSL_BINARY DATA.h5ad OUT_DIR [SEEDS]

Run in the scvi-tools venv that `cargo xtask fixtures` makes (~/.cache/scssl-venv-scvi).
Steps: `scssl preprocess` (all genes kept as HVGs, so both tools see the same genes; X_pca is
the pre-integration embedding of the PCR metric), scvi-tools' TOTALVI on layers['counts'] and
the raw protein counts for each seed, `scssl train --method totalvi` + `scssl embed` for each
seed, then one `scssl eval` over every embedding. Prints the per-seed table and each tool's
mean Total.
"""
import csv
import pathlib
import subprocess
import sys
import time

import anndata
import numpy as np
import scvi
import scvi.train._trainingplans as _plans
import torch


# scvi-tools 1.1.6 passes `verbose` to ReduceLROnPlateau, which newer PyTorch removed
class _ReduceLROnPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    def __init__(self, *args, verbose=None, **kwargs):
        super().__init__(*args, **kwargs)


_plans.ReduceLROnPlateau = _ReduceLROnPlateau

scssl, data, out = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
seeds = [int(s) for s in (sys.argv[4] if len(sys.argv) > 4 else "0,1,2").split(",")]
out.mkdir(parents=True, exist_ok=True)
n_genes = anndata.read_h5ad(data, backed="r").n_vars
pp = out / "pp.h5ad"
subprocess.run([scssl, "preprocess", str(data), "-o", str(pp), "--n-hvg", str(n_genes)], check=True)

ad = anndata.read_h5ad(pp)
raw = anndata.read_h5ad(data)
ad.obsm["protein_expression"] = np.asarray(
    raw[ad.obs_names].obsm["protein_expression"], dtype=np.float32
)
times = {}
for seed in seeds:
    scvi.settings.seed = seed
    scvi.model.TOTALVI.setup_anndata(
        ad, layer="counts", protein_expression_obsm_key="protein_expression", batch_key="batch"
    )
    model = scvi.model.TOTALVI(ad)
    t = time.time()
    model.train()
    times[f"scvi-tools s{seed}"] = time.time() - t
    ad.obsm[f"X_scvitools_s{seed}"] = model.get_latent_representation().astype(np.float32)
both = out / "both.h5ad"
# newer pandas reads string columns as StringArray, which anndata 0.10 cannot write
ad.obs.index = ad.obs.index.astype(object)
ad.var.index = ad.var.index.astype(object)
for frame in (ad.obs, ad.var):
    for col in frame.columns:
        if str(frame[col].dtype) in ("string", "str"):
            frame[col] = frame[col].astype(object)
ad.write_h5ad(both)

for seed in seeds:
    model_dir = out / f"scssl_totalvi_s{seed}"
    t = time.time()
    subprocess.run(
        [scssl, "train", str(both), "--method", "totalvi", "--counts-layer", "counts",
         "--protein-key", "protein_expression", "--n-hvg", str(n_genes), "--seed", str(seed),
         "-o", str(model_dir)],
        check=True,
    )
    times[f"scssl s{seed}"] = time.time() - t
    subprocess.run(
        [scssl, "embed", str(both), "--model", str(model_dir), "--key", f"X_scssl_s{seed}"],
        check=True,
    )

keys = [f"X_scssl_s{s}" for s in seeds] + [f"X_scvitools_s{s}" for s in seeds]
cmd = [scssl, "eval", str(both), "--batch-key", "batch", "--label-key", "cell_type",
       "--pre-embedding", "X_pca", "--csv", str(out / "scores.csv")]
for k in keys:
    cmd += ["--embedding", k]
subprocess.run(cmd, check=True)
rows = list(csv.DictReader(open(out / "scores.csv")))
print("\nembedding,total,bio,batch")
means = {"scssl": [], "scvitools": []}
for r in rows:
    print(f"{r['embedding']},{r['total']},{r['bio_conservation']},{r['batch_correction']}")
    tool = "scssl" if "scssl" in r["embedding"] else "scvitools"
    means[tool].append(float(r["total"]))
for tool, v in means.items():
    print(f"mean total {tool}: {np.mean(v):.4f} over {len(v)} seeds")
for k, v in times.items():
    print(f"train seconds {k}: {v:.1f}")

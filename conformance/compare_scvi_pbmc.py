"""scVI in scssl against scvi-tools on the same file, trained the benchmark's way
(n_layers 8, n_latent 30, NB, scvi-tools' default train()), both scored by `scssl eval`.

    python conformance/compare_scvi_pbmc.py SCSSL_BINARY DATA.h5ad OUT_DIR [SEEDS]

Run in the scvi-tools venv that `cargo xtask fixtures` makes (~/.cache/scssl-venv-scvi).
Steps: `scssl preprocess` (all genes kept as HVGs, so both tools see the same genes; X_pca is
the pre-integration embedding of the PCR metric), scvi-tools on layers['counts'] for each seed,
`scssl train --method scvi` + `scssl embed` for each seed, then one `scssl eval` over every
embedding. Prints the per-seed table and the mean Total of each tool.
"""
import csv
import pathlib
import subprocess
import sys
import time

import anndata
import numpy as np
import scvi

scssl, data, out = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
seeds = [int(s) for s in (sys.argv[4] if len(sys.argv) > 4 else "0,1,2").split(",")]
out.mkdir(parents=True, exist_ok=True)
n_genes = anndata.read_h5ad(data, backed="r").n_vars
pp = out / "pp.h5ad"
subprocess.run([scssl, "preprocess", str(data), "-o", str(pp), "--n-hvg", str(n_genes)], check=True)

ad = anndata.read_h5ad(pp)
times = {}
for seed in seeds:
    scvi.settings.seed = seed
    scvi.model.SCVI.setup_anndata(ad, layer="counts", batch_key="batch")
    model = scvi.model.SCVI(ad, n_layers=8, n_latent=30, gene_likelihood="nb")
    t = time.time()
    model.train()
    times[f"scvi-tools s{seed}"] = time.time() - t
    ad.obsm[f"X_scvitools_s{seed}"] = model.get_latent_representation().astype(np.float32)
both = out / "both.h5ad"
ad.write_h5ad(both)

for seed in seeds:
    model_dir = out / f"scssl_scvi_s{seed}"
    t = time.time()
    subprocess.run(
        [scssl, "train", str(both), "--method", "scvi", "--counts-layer", "counts",
         "--n-hvg", str(n_genes), "--n-layers", "8", "--hidden-dim", "30",
         "--gene-likelihood", "nb", "--seed", str(seed), "-o", str(model_dir)],
        check=True,
    )
    times[f"scssl s{seed}"] = time.time() - t
    subprocess.run([scssl, "embed", str(both), "--model", str(model_dir), "--key", f"X_scssl_s{seed}"], check=True)

keys = [f"X_scssl_s{s}" for s in seeds] + [f"X_scvitools_s{s}" for s in seeds]
cmd = [scssl, "eval", str(both), "--batch-key", "batch", "--label-key", "cell_type",
       "--pre-embedding", "X_pca", "--csv", str(out / "scores.csv")]
for k in keys:
    cmd += ["--embedding", k]
subprocess.run(cmd, check=True)
rows = list(csv.DictReader(open(out / "scores.csv")))
print("training seconds:", {k: round(v, 1) for k, v in times.items()})
for tool in ("scssl", "scvitools"):
    totals = [float(r["total"]) for r in rows if tool in r["embedding"]]
    print(f"{tool}: Total per seed {[round(t, 4) for t in totals]}, mean {np.mean(totals):.4f} ± {np.std(totals):.4f}")

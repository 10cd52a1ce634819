"""scvi-tools' side of `cargo xtask perf train --method scvi`: one SCVI epoch with the
benchmark's settings (n_layers 8, n_latent 30, NB) and scvi-tools' train() defaults (batch
128, the 90/10 split) on the raw counts of a simulated file, the batch as covariate.

    python perf_train_scvi.py FILE.h5ad

Prints one JSON line: seconds of `model.train(max_epochs=1)` and training cells per second.
Run in the scvi-tools venv (`cargo xtask fixtures` makes ~/.cache/scssl-venv-scvi).
"""
import json
import sys
import time

import anndata
import scvi
import torch

scvi.settings.seed = 0
torch.set_num_threads(max(1, torch.get_num_threads()))
ad = anndata.read_h5ad(sys.argv[1])
scvi.model.SCVI.setup_anndata(ad, batch_key="batch")
model = scvi.model.SCVI(ad, n_layers=8, n_latent=30, gene_likelihood="nb")
t = time.time()
model.train(max_epochs=1, enable_progress_bar=False)
secs = time.time() - t
n_train = int(0.9 * ad.n_obs + 0.999999)
print(json.dumps({"seconds": secs, "cells_per_second": n_train / secs}))

"""The PyTorch side of `cargo xtask perf train --method scclip`: one scCLIP epoch on the CPU.

    python conformance/perf_train_scclip.py CITE.h5ad --threads N

The network is the one of `make_scclip_fixtures.py` (the fork's ViT, HF `ViTLayer` written
out) at the fork's sizes (hidden 256, 6 layers, 8 heads, FFN 512, 128 patches, projection 128,
dropout 0.1), trained as the fork trains it: AdamW (1.5e-4, 0.05), linear warm-up over 2,000
steps then cosine (transformers' `get_cosine_schedule_with_warmup`, stepped every step), batch
256 shuffled with the last short batch kept, gradient norm clipped at 5. The input is prepared
as scssl prepares it: RNA normalised to 1e4 + log1p then divided per gene by its max |x|,
protein CLR per cell then binarised (x > 0). Prints one JSON line (seconds of the whole fit,
preparation included; the epoch's seconds and cells per second).
"""
import argparse
import importlib.util
import json
import math
import pathlib
import time

import anndata
import numpy as np
import torch


def network_module():
    path = pathlib.Path(__file__).parent / "make_scclip_fixtures.py"
    spec = importlib.util.spec_from_file_location("scclip_net", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("h5ad")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    ad = anndata.read_h5ad(args.h5ad)
    x = ad.X.toarray() if hasattr(ad.X, "toarray") else np.asarray(ad.X)
    x = x.astype(np.float64)
    protein = np.asarray(ad.obsm["protein_expression"], dtype=np.float64)

    start = time.perf_counter()
    lib = x.sum(axis=1, keepdims=True)
    lib[lib == 0] = 1.0
    rna = np.log1p(x / lib * 1e4)
    g = np.exp(np.log1p(protein).mean(axis=1, keepdims=True))
    clr = np.log1p(protein / g)
    scale = np.abs(rna).max(axis=0)
    scale[scale == 0] = 1.0
    rna = torch.tensor(rna / scale, dtype=torch.float32)
    prot = torch.tensor((clr > 0).astype(np.float32))

    m = network_module()
    m.HIDDEN, m.LAYERS, m.HEADS, m.FFN, m.PATCHES, m.PROJ = 256, 6, 8, 512, 128, 128
    m.G, m.P = rna.shape[1], prot.shape[1]
    model = m.Clip()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1.5e-4, weight_decay=0.05)
    n, batch = rna.shape[0], 256
    steps_per_epoch = math.ceil(n / batch)
    total = steps_per_epoch * args.epochs
    warmup = 2000

    def lr_lambda(step):
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    epoch_seconds, losses = 0.0, []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for s in range(0, n, batch):
            i = perm[s : s + batch]
            *_, loss = model(rna[i], prot[i])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        epoch_seconds = time.perf_counter() - t0
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "epoch_seconds": epoch_seconds,
                "cells_per_second": n / epoch_seconds,
                "loss": float(np.mean(losses[-steps_per_epoch:])),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()

"""The best PyTorch loop a user would write for `cargo xtask perf train` and the GPU check:
SimCLR or VICReg epochs with the `clear` views as the reference ran them (mask keeps 20 %,
Gauss on 80 % of genes with σ 0.2, inner swap of 10 %, crossover of 25 % with another cell;
each step with probability 0.5 per cell and view), but made on whole mini-batches with tensor
operations on the training device instead of cell by cell in Python. The network and the
optimiser are those of perf_train.py (Linear(G,128)-BN-ReLU-Linear(128,64)-BN, a 64-64-64
projection head, Adam(lr 1e-4, weight_decay 1e-6)); batch 256, shuffled, drop_last.

    python perf_train_batched.py INPUT {simclr,vicreg} [--device cpu|cuda] [--epochs N]
                                 [--threads N] [--embed-out OUT.f32] [--masks exact|bernoulli]

``--masks exact`` (default) draws gene subsets of exactly the reference's size (the smallest k
of G uniform keys per cell); ``bernoulli`` draws each gene independently with that share, the
cheaper draw a user would write on a CPU (the same expected size, not the same exact one).

INPUT is a .f32 file of cells × genes little-endian floats (`scssl perf-step export-x`,
the shape in INPUT.json) or an .h5ad (needs anndata). Prints one JSON line: seconds and
cells/s over all epochs, and of the fastest epoch. With --embed-out the encoder's eval-mode
embedding of every cell is written (f32, cells × 64).
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("input")
ap.add_argument("method", choices=["simclr", "vicreg"])
ap.add_argument("--device", default="cpu")
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--threads", type=int, default=0)
ap.add_argument("--embed-out")
ap.add_argument("--masks", choices=["exact", "bernoulli"], default="exact")
args = ap.parse_args()
if args.threads > 0:
    torch.set_num_threads(args.threads)
torch.manual_seed(0)
dev = torch.device(args.device)

if args.input.endswith(".f32"):
    with open(args.input + ".json") as f:
        shape = json.load(f)["shape"]
    X = np.fromfile(args.input, dtype="<f4").reshape(shape)
else:
    import anndata as ad

    X = ad.read_h5ad(args.input).X
    X = np.asarray(X.todense() if hasattr(X, "todense") else X, dtype=np.float32)
X = torch.from_numpy(X).to(dev)
N, G = X.shape
B = 256


def coin(b):
    # one Bernoulli(0.5) per cell: does this step apply to this cell's view?
    return (torch.rand(b, 1, device=dev) < 0.5)


def top_fraction(b, k):
    if args.masks == "bernoulli":
        # each gene independently, with probability k / G
        return torch.rand(b, G, device=dev) < (k / G)
    # per row, a uniformly random set of k genes (the k smallest of G uniform keys)
    keys = torch.rand(b, G, device=dev)
    idx = keys.topk(k, dim=1, largest=False).indices
    return torch.zeros(b, G, dtype=torch.bool, device=dev).scatter_(1, idx, True)


def view(x):
    b = x.shape[0]
    # mask: keep 20 % of the genes
    x = torch.where(coin(b), x * top_fraction(b, int(0.2 * G)), x)
    # Gaussian noise on 80 % of the genes
    noise = torch.randn(b, G, device=dev) * 0.2 * top_fraction(b, int(0.8 * G))
    x = torch.where(coin(b), x + noise, x)
    # inner swap: n random pairs of genes exchange values
    n = int(int(0.1 * G) / 2)
    a = torch.randint(0, G, (b, n), device=dev)
    c = torch.randint(0, G, (b, n), device=dev)
    xa, xc = x.gather(1, a), x.gather(1, c)
    swapped = x.clone().scatter_(1, a, xc).scatter_(1, c, xa)
    x = torch.where(coin(b), swapped, x)
    # crossover: 25 % of the genes from another random cell of the data set
    partner = X[torch.randint(0, N, (b,), device=dev)]
    x = torch.where(coin(b) & top_fraction(b, int(0.25 * G)), partner, x)
    return x


encoder = nn.Sequential(
    nn.Linear(G, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 64), nn.BatchNorm1d(64)
).to(dev)
head = nn.Sequential(
    nn.Linear(64, 64, bias=False), nn.BatchNorm1d(64), nn.ReLU(),
    nn.Linear(64, 64, bias=False), nn.BatchNorm1d(64),
).to(dev)


def ntxent(u, v, t=0.5):
    u, v = F.normalize(u, dim=1), F.normalize(v, dim=1)
    b = u.shape[0]
    uv = u @ v.T / t
    eye = torch.eye(b, dtype=torch.bool, device=dev)
    uu = (u @ u.T / t).masked_fill(eye, float("-inf"))
    vv = (v @ v.T / t).masked_fill(eye, float("-inf"))
    logits = torch.cat([torch.cat([uv, uu], 1), torch.cat([uv.T, vv], 1)], 0)
    target = torch.arange(b, device=dev).repeat(2)
    return F.cross_entropy(logits, target)


def vicreg(u, v, lam=5.0, mu=5.0, nu=1.0, eps=1e-4):
    b, d = u.shape
    inv = F.mse_loss(u, v)
    var = 0.0
    cov = 0.0
    for z in (u, v):
        z = z - z.mean(0)
        std = torch.sqrt(z.var(0) + eps)
        var = var + F.relu(1.0 - std).mean()
        c = (z.T @ z) / (b - 1)
        off = c - torch.diag(torch.diag(c))
        cov = cov + off.pow(2).sum() / d
    return lam * inv + mu * var + nu * cov


loss_fn = ntxent if args.method == "simclr" else vicreg
opt = torch.optim.Adam(list(encoder.parameters()) + list(head.parameters()), lr=1e-4,
                       weight_decay=1e-6)


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


epoch_seconds = []
start = time.perf_counter()
for epoch in range(args.epochs):
    t0 = time.perf_counter()
    order = torch.randperm(N, device=dev)
    last = 0.0
    for s in range(0, N // B * B, B):
        x = X[order[s:s + B]]
        z0, z1 = head(encoder(view(x))), head(encoder(view(x)))
        loss = loss_fn(z0, z1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        last = loss.detach()
    sync()
    epoch_seconds.append(time.perf_counter() - t0)
secs = time.perf_counter() - start
cells = N // B * B
out = {"seconds": secs, "cells_per_second": cells * args.epochs / secs,
       "best_epoch_seconds": min(epoch_seconds),
       "best_cells_per_second": cells / min(epoch_seconds),
       "epoch_seconds": epoch_seconds, "loss": float(last), "method": args.method,
       "device": str(dev), "masks": args.masks, "torch": torch.__version__,
       "threads": torch.get_num_threads()}
if dev.type == "cuda":
    out["gpu"] = torch.cuda.get_device_name(dev)
if args.embed_out:
    encoder.eval()
    with torch.no_grad():
        emb = torch.cat([encoder(X[s:s + 4096]) for s in range(0, N, 4096)]).cpu().numpy()
    emb.astype("<f4").tofile(args.embed_out)
print(json.dumps(out))

"""The reference's training loop for `cargo xtask perf train`: one SimCLR epoch as scSSL-Bench
runs it — a torch Dataset that augments each cell in Python (`clear_pipeline` as the code ran
it: mask keeps 20 %, Gauss 80 % σ 0.2, InnerSwap 10 %, CrossOver 25 %, each with
probability 0.5 per view), a DataLoader (batch 256, shuffle, drop_last), the two-layer encoder
(Linear(G,128)-BN-ReLU-Linear(128,64)-BN), lightly's SimCLR projection head, NT-Xent with
T = 0.5, Adam(lr 1e-4, weight_decay 1e-6).

    python perf_train.py FILE.h5ad {torch,lightly}

`torch` writes the NT-Xent loss out in PyTorch; `lightly` uses lightly's NTXentLoss and
SimCLRProjectionHead. Prints one JSON line: seconds for the epoch and cells per second.
"""
import json
import sys
import time

import anndata as ad
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

path, variant = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
X = ad.read_h5ad(path).X
X = torch.from_numpy(np.asarray(X.todense() if hasattr(X, "todense") else X, dtype=np.float32))
N, G = X.shape


def coin():
    return float(torch.rand(1)) < 0.5


def mask(x, p=0.2):
    m = torch.zeros(G, dtype=torch.bool)
    m[: int(p * G)] = True
    return x * m[torch.randperm(G)]


def gauss(x, q=0.8, sigma=0.2):
    idx = torch.randperm(G)[: int(q * G)]
    x = x.clone()
    x[idx] += torch.normal(0.0, sigma, size=(idx.shape[0],))
    return x


def innerswap(x, r=0.1):
    n = int(int(r * G) / 2)
    a, b = torch.randint(0, G, (n,)), torch.randint(0, G, (n,))
    x = x.clone()
    x[a], x[b] = x[b], x[a]
    return x


def crossover(x, c=0.25):
    j = int(torch.randint(0, N, (1,)))
    idx = torch.randperm(G)[: int(c * G)]
    x = x.clone()
    x[idx] = X[j, idx]
    return x


PIPE = [mask, gauss, innerswap, crossover]


def view(x):
    for f in PIPE:
        if coin():
            x = f(x)
    return x


class Cells(torch.utils.data.Dataset):
    def __len__(self):
        return N

    def __getitem__(self, i):
        x = X[i]
        return view(x), view(x)


encoder = nn.Sequential(
    nn.Linear(G, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 64), nn.BatchNorm1d(64)
)
if variant == "lightly":
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead

    head = SimCLRProjectionHead(64, 64, 64)
    ntx = NTXentLoss(temperature=0.5)
    loss_fn = lambda a, b: ntx(a, b)
else:
    head = nn.Sequential(
        nn.Linear(64, 64, bias=False), nn.BatchNorm1d(64), nn.ReLU(),
        nn.Linear(64, 64, bias=False), nn.BatchNorm1d(64),
    )

    def loss_fn(u, v, t=0.5):
        u, v = F.normalize(u, dim=1), F.normalize(v, dim=1)
        b = u.shape[0]
        uv = u @ v.T / t
        eye = torch.eye(b, dtype=torch.bool)
        uu = (u @ u.T / t).masked_fill(eye, float("-inf"))
        vv = (v @ v.T / t).masked_fill(eye, float("-inf"))
        logits = torch.cat([torch.cat([uv, uu], 1), torch.cat([uv.T, vv], 1)], 0)
        target = torch.arange(b).repeat(2)
        return F.cross_entropy(logits, target)

params = list(encoder.parameters()) + list(head.parameters())
opt = torch.optim.Adam(params, lr=1e-4, weight_decay=1e-6)
loader = torch.utils.data.DataLoader(Cells(), batch_size=256, shuffle=True, drop_last=True)
start = time.perf_counter()
total = 0.0
for x0, x1 in loader:
    z0, z1 = head(encoder(x0)), head(encoder(x1))
    loss = loss_fn(z0, z1)
    opt.zero_grad()
    loss.backward()
    opt.step()
    total += float(loss)
secs = time.perf_counter() - start
cells = N // 256 * 256
print(json.dumps({"seconds": secs, "cells_per_second": cells / secs, "variant": variant,
                  "torch": torch.__version__, "threads": torch.get_num_threads()}))

"""The reference's augmentation approach, for `cargo xtask perf augment`: a per-cell Python/torch
pipeline as scSSL-Bench runs it inside `Dataset.__getitem__` (methods.md §3.1–3.2): for each cell
and each of two views, every transform of the `clear_pipeline` (Mask → Gauss → InnerSwap →
CrossOver, probability 0.5 each) draws its own coin and, if applied, acts on the 1×G tensor.

    python perf_augment.py REPEATS

Prints one JSON line: seconds per 256-cell × 4,000-gene batch (two views), using one thread.
"""
import json
import sys
import time

import numpy as np

try:
    import torch

    BACKEND = "torch " + torch.__version__
except ImportError:  # the per-cell structure is what costs; numpy keeps it when torch is absent
    torch = None
    BACKEND = "numpy"

N, G, B = 2048, 4000, 256
rng = np.random.default_rng(0)
data_np = ((rng.random((N, G)) < 0.3) * rng.random((N, G)) * 4).astype(np.float32)

if torch is not None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = torch.from_numpy(data_np)

    def mask(x, p=0.2):
        # the reference: a shuffled boolean vector with floor(p*G) ones, x * mask
        m = torch.zeros(x.shape[1], dtype=torch.bool)
        m[: int(p * x.shape[1])] = True
        m = m[torch.randperm(x.shape[1])]
        return x * m

    def gauss(x, q=0.8, sigma=0.2):
        idx = torch.randperm(x.shape[1])[: int(q * x.shape[1])]
        x = x.clone()
        x[:, idx] += torch.normal(0.0, sigma, size=(idx.shape[0],))
        return x

    def innerswap(x, r=0.1):
        n = int(int(r * x.shape[1]) / 2)
        a = torch.randint(0, x.shape[1], (n,))
        b = torch.randint(0, x.shape[1], (n,))
        x = x.clone()
        x[:, a], x[:, b] = x[:, b], x[:, a]
        return x

    def crossover(x, c=0.25):
        j = int(torch.randint(0, N, (1,)))
        idx = torch.randperm(x.shape[1])[: int(c * x.shape[1])]
        x = x.clone()
        x[:, idx] = data[j : j + 1, idx]
        return x

    def coin():
        return float(torch.rand(1)) < 0.5

    def row(i):
        return data[i : i + 1]

    def stack(vs):
        return torch.cat(vs, 0)
else:
    def mask(x, p=0.2):
        m = np.zeros(x.shape[1], dtype=bool)
        m[: int(p * x.shape[1])] = True
        rng.shuffle(m)
        return x * m

    def gauss(x, q=0.8, sigma=0.2):
        idx = rng.permutation(x.shape[1])[: int(q * x.shape[1])]
        x = x.copy()
        x[:, idx] += rng.normal(0.0, sigma, size=idx.shape[0])
        return x

    def innerswap(x, r=0.1):
        n = int(int(r * x.shape[1]) / 2)
        a, b = rng.integers(0, x.shape[1], n), rng.integers(0, x.shape[1], n)
        x = x.copy()
        x[:, a], x[:, b] = x[:, b], x[:, a]
        return x

    def crossover(x, c=0.25):
        j = int(rng.integers(0, N))
        idx = rng.permutation(x.shape[1])[: int(c * x.shape[1])]
        x = x.copy()
        x[:, idx] = data_np[j : j + 1, idx]
        return x

    def coin():
        return rng.random() < 0.5

    def row(i):
        return data_np[i : i + 1]

    def stack(vs):
        return np.concatenate(vs, 0)


def view(x):
    for t in (mask, gauss, innerswap, crossover):
        if coin():
            x = t(x)
    return x


cells = [(i * 7) % N for i in range(B)]
repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
view(row(0))  # warm-up
t = time.perf_counter()
for _ in range(repeats):
    v1, v2 = [], []
    for i in cells:
        x = row(i)
        v1.append(view(x))
        v2.append(view(x))
    stack(v1), stack(v2)
sec = (time.perf_counter() - t) / repeats
print(json.dumps({"seconds": sec, "backend": BACKEND}))

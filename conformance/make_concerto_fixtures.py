"""Golden values of Concerto's networks and loss (methods.md §5.3), built in PyTorch (float64)
as the original TensorFlow code builds them (`bgi/models/DeepSingleCell.py`
`multi_embedding_attention_transfer`, `bgi/layers/attention.py` `AttentionWithContext`,
`bgi/losses/contrastive_loss.py` `simclr_loss`), with Keras semantics where they differ from
PyTorch's:

* BatchNormalization: ε 1e-3, momentum 0.99 (the batch weighs 0.01), moving variance updated
  with the biased batch variance; the teacher's BN-1 acts on the (B, G, 1) value tensor, i.e.
  one scalar mean and variance over every (cell, gene) entry;
* the teacher's inputs are every gene's identity 0..G-1 and its value x + 1e-5
  (`create_tfrecord(zero_filter=False)`); the attention is computed literally:
  u = tanh(x W + b), a = exp(u·ctx) / (Σ exp(u·ctx) + 1e-7), f = BN-3(tanh(Σ a x));
* the loss is TensorFlow's: l2_normalize (‖·‖² floored at 1e-12), logits_aa/bb minus 1e10 on
  the diagonal, mean over cells of loss_a + loss_b.

Weights are random (not Keras' initial values) so every path is exercised. Two cases: RNA
only, and RNA + protein (modalities added before the heads). Each case has eval-mode outputs
(moving statistics, no dropout) and one train-mode pass with dropout 0 (batch statistics and
the moving statistics after the pass).

    ~/.cache/scssl-venv/bin/python conformance/make_concerto_fixtures.py
    # writes conformance/fixtures/models/concerto.json

The Rust test `scssl-models/tests/concerto_conformance.rs` reads the JSON.
"""
import json
import pathlib

import torch
from torch import nn

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)

N_CELLS, D, H, T = 8, 16, 16, 0.1
OFFSET, BN_EPS, BN_MOMENTUM, ATT_EPS = 1e-5, 1e-3, 0.99, 1e-7


class KerasBN(nn.Module):
    """Keras BatchNormalization over the last axis of a 2-D input."""

    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(1.0 + 0.2 * torch.randn(c))
        self.bias = nn.Parameter(0.2 * torch.randn(c))
        self.register_buffer("running_mean", 0.3 * torch.randn(c))
        self.register_buffer("running_var", 0.5 + torch.rand(c))

    def forward(self, x, train):
        if train:
            mean = x.mean(0)
            var = x.var(0, unbiased=False)
            with torch.no_grad():
                self.running_mean.mul_(BN_MOMENTUM).add_((1 - BN_MOMENTUM) * mean)
                self.running_var.mul_(BN_MOMENTUM).add_((1 - BN_MOMENTUM) * var)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) / torch.sqrt(var + BN_EPS) * self.weight + self.bias


class AttentionWithContext(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.W = nn.Parameter(torch.empty(d, d).uniform_(-(3 / d) ** 0.5, (3 / d) ** 0.5))
        self.b = nn.Parameter(0.1 * torch.randn(d))
        self.u = nn.Parameter(0.7 * torch.randn(d))

    def forward(self, x):  # x: (B, G, d)
        uit = torch.tanh(x @ self.W + self.b)
        a = torch.exp(uit @ self.u)
        a = a / (a.sum(1, keepdim=True) + ATT_EPS)
        return x * a.unsqueeze(-1)


class TeacherBranch(nn.Module):
    def __init__(self, g, d):
        super().__init__()
        self.embedding = nn.Embedding(g, d)
        nn.init.normal_(self.embedding.weight, std=0.5)
        self.bn_value = KerasBN(1)
        self.attention = AttentionWithContext(d)
        self.bn_out = KerasBN(d)

    def forward(self, x, train):
        n, g = x.shape
        ids = torch.arange(g).expand(n, g)  # every gene (zero_filter=False)
        v = self.bn_value((x + OFFSET).reshape(n * g, 1), train).reshape(n, g, 1)
        e = self.embedding(ids) * v
        weighted = self.attention(e)
        return self.bn_out(torch.tanh(weighted.sum(1)), train)


class StudentBranch(nn.Module):
    def __init__(self, g, h):
        super().__init__()
        self.bn_in = KerasBN(g)
        self.dense = nn.Linear(g, h)
        self.bn_out = KerasBN(h)

    def forward(self, x, train):
        return self.bn_out(torch.relu(self.dense(self.bn_in(x + OFFSET, train))), train)


class Concerto(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.teacher = nn.ModuleList([TeacherBranch(g, D) for g in dims])
        self.teacher_head = nn.Linear(D, H)
        self.student = nn.ModuleList([StudentBranch(g, H) for g in dims])
        self.student_head = nn.Linear(H, H)

    def forward(self, xs, train):
        ft = [b(x, train) for b, x in zip(self.teacher, xs)]
        fs = [b(x, train) for b, x in zip(self.student, xs)]
        zt = torch.relu(self.teacher_head(sum(ft)))  # Add → Dropout(0) → Dense(relu)
        zs = torch.relu(self.student_head(sum(fs)))
        per_mod = [torch.relu(self.teacher_head(f)) for f in ft]
        return ft, zt, zs, per_mod


def l2_normalize(x):
    return x / torch.sqrt(torch.clamp((x * x).sum(1, keepdim=True), min=1e-12))


def simclr_loss(z1, z2, temperature=T, large=10e9):
    z1, z2 = l2_normalize(z1), l2_normalize(z2)
    n = z1.shape[0]
    masks = torch.eye(n)
    aa = z1 @ z1.T / temperature - masks * large
    bb = z2 @ z2.T / temperature - masks * large
    ab = z1 @ z2.T / temperature
    ba = z2 @ z1.T / temperature
    target = torch.arange(n)
    ce = nn.functional.cross_entropy
    loss_a = ce(torch.cat([ab, aa], 1), target, reduction="none")
    loss_b = ce(torch.cat([ba, bb], 1), target, reduction="none")
    return (loss_a + loss_b).mean()


def values(t):
    return t.detach().tolist()


def case(dims):
    model = Concerto(dims)
    xs = []
    for g in dims:
        counts = torch.poisson(torch.rand(N_CELLS, g) * 3.0) * (torch.rand(N_CELLS, g) < 0.6)
        xs.append(torch.log1p(counts))
    state = {k: values(v) for k, v in model.state_dict().items()}
    ft, zt, zs, per_mod = model(xs, train=False)
    out = {
        "dims": dims,
        "state_dict": state,
        "inputs": [values(x) for x in xs],
        "eval": {
            "teacher_features": [values(f) for f in ft],
            "teacher": values(zt),
            "student": values(zs),
            "embedding": values(l2_normalize(zt)),
            "embedding_per_modality": [values(l2_normalize(z)) for z in per_mod],
            "loss": simclr_loss(zt, zs).item(),
        },
    }
    ft, zt, zs, _ = model(xs, train=True)
    out["train"] = {
        "teacher": values(zt),
        "student": values(zs),
        "loss": simclr_loss(zt, zs).item(),
        "state_dict_after": {
            k: values(v) for k, v in model.state_dict().items() if "running" in k
        },
    }
    return out


fixture = {
    "torch_version": torch.__version__,
    "sizes": {"cells": N_CELLS, "embedding_dim": D, "head_dim": H, "temperature": T},
    "rna": case([50]),
    "rna_protein": case([50, 10]),
}
# a loss alone, on vectors with a zero row (ReLU outputs can be all zero)
z1 = torch.randn(6, 5).clamp(min=0)
z1[2] = 0.0
z2 = torch.randn(6, 5)
fixture["loss_only"] = {"z1": values(z1), "z2": values(z2), "loss": simclr_loss(z1, z2).item()}

path = pathlib.Path(__file__).parent / "fixtures" / "models" / "concerto.json"
path.write_text(json.dumps(fixture))
print(f"wrote {path} ({path.stat().st_size} bytes)")

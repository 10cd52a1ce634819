"""Golden values for scssl's scTEL (methods.md §5.9), computed with PyTorch.

    ~/.cache/scssl-venv/bin/python conformance/make_sctel_fixtures.py
    # writes conformance/fixtures/models/sctel.json

Builds scTEL's network as `142857cyy/scTEL@9f80d5a` (`Network/scTEL.py`, `TE_Layer.py`)
defines it, with the same module names, from `torch.nn` parts: `TransformerEncoderLayer(d, h,
dim_feedforward=d, dropout=0.2, batch_first=True)`, `LSTMCell`, `PReLU` (shared scalar and
per-channel), `BatchNorm1d` (over the token axis on (B, d, d)), `LayerNorm` ε 1e-5; and the
reference's protein loss (`Losses.py: sse_quantile`). Tiny sizes: G = 30 genes, P = 6
proteins, d = 16, 2 heads, 8 cells, quantiles (0.1, 0.25, 0.75, 0.9).

Every parameter and BatchNorm buffer is randomised (away from the identity initialisation) and
rounded to 8 significant digits before use, so the JSON holds the exact weights the goldens
were computed with (float64). Exported:

* `state_dict`: PyTorch names and layouts (Linear weights `[out, in]`), without the modules the
  reference defines but never calls (listed in `unused`) and `num_batches_tracked`;
* `x` (8 × 30), `y` (8 × 6);
* `eval`: h3, the protein mean and the quantile outputs (8 × 6 × 4) in eval mode, and the loss;
* `train`: the same in train mode with every dropout set to 0 (batch statistics in every
  BatchNorm), the loss, and the running statistics of three BatchNorms after that pass.

The Rust test `scssl-models/tests/sctel_conformance.rs` reads the JSON; cargo test needs no
Python.
"""
import json
import pathlib

import torch
from torch import nn

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)

G, P, D, H, N = 30, 6, 16, 2, 8
QUANTILES = [0.1, 0.25, 0.75, 0.9]
DROP = 0.15


def encoder_layer():
    return nn.TransformerEncoderLayer(
        d_model=D, nhead=H, dim_feedforward=D, dropout=0.2, batch_first=True
    )


class InputEmbedding(nn.Module):
    """Linear(G, d) -> BN -> scalar PReLU -> tokens -> BN over tokens -> same PReLU -> drop."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Linear(G, D)
        self.bnorm_in = nn.BatchNorm1d(D)
        self.Linear_out = nn.Linear(1, D)
        self.bnorm_out = nn.BatchNorm1d(D)
        self.act = nn.PReLU()
        self.dropout_out = nn.Dropout(DROP)

    def forward(self, x):
        x = self.act(self.bnorm_in(self.embedding(x)))
        x = self.Linear_out(x.unsqueeze(-1))
        return self.dropout_out(self.act(self.bnorm_out(x)))


class InputTE(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = InputEmbedding()
        self.bnorm_out = nn.BatchNorm1d(D)
        self.act = nn.PReLU(num_parameters=D)
        self.dropout_out = nn.Dropout(DROP)  # defined, never called (as the reference)
        self.Linear_in = nn.Linear(1, D)  # defined, never called (as the reference)
        self.TE = encoder_layer()
        self.Linear_out = nn.Linear(D, 1)

    def forward(self, x):
        x = self.TE(self.embedding(x))
        return self.act(self.bnorm_out(self.Linear_out(x))).squeeze(-1)


class FFEmbedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.FC = nn.Linear(1, D)
        self.BN = nn.BatchNorm1d(D)  # defined, never called (as the reference)
        self.act = nn.PReLU()

    def forward(self, x):
        return self.act(self.FC(x.unsqueeze(-1)))


class FFTE(nn.Module):
    def __init__(self):
        super().__init__()
        self.FF_Em = FFEmbedding()
        self.TE = encoder_layer()
        self.FC = nn.Linear(D, 1)
        self.BN = nn.BatchNorm1d(D)
        self.act = nn.PReLU(num_parameters=D)
        self.Dropout = nn.Dropout(DROP)

    def forward(self, x):
        x = self.TE(self.FF_Em(x))
        return self.Dropout(self.act(self.BN(self.FC(x)))).squeeze(-1)


class ProteinLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.FC1 = nn.Linear(D, D)
        self.BN1 = nn.BatchNorm1d(D)
        self.FC2 = nn.Linear(D, 256)
        self.BN2 = nn.BatchNorm1d(256)  # defined, never called (as the reference)
        self.Dropout = nn.Dropout(DROP)
        self.FC3 = nn.Linear(256, P)
        self.act = nn.PReLU()

    def forward(self, x):
        x = self.Dropout(self.act(self.BN1(self.FC1(x))))
        x = self.act(self.FC2(x))
        return self.act(self.FC3(x))


class DualForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.MSE_layer = ProteinLinear()
        self.Quantile_layer = nn.Sequential(nn.Linear(D, P * len(QUANTILES)))

    def forward(self, x):
        q = self.Quantile_layer(x).view(-1, P, len(QUANTILES))
        return self.MSE_layer(x), q


class ScTEL(nn.Module):
    def __init__(self):
        super().__init__()
        self.LSTMCell1 = nn.LSTMCell(D, D)
        self.LSTMCell2 = nn.LSTMCell(D, D)
        self.LSTMCell3 = nn.LSTMCell(D, D)
        self.input_TE_1 = InputTE()
        self.FF_TE_2 = FFTE()
        self.FF_TE_3 = FFTE()
        self.mod2_out = DualForward()

    def forward(self, x):
        x = self.input_TE_1(x)
        h, c = self.LSTMCell1(x, (torch.zeros_like(x), torch.zeros_like(x)))
        x = self.FF_TE_2(x)
        h, c = self.LSTMCell2(x, (h, c))
        x = self.FF_TE_3(x)
        h, c = self.LSTMCell3(x, (h, c))
        return h, self.mod2_out(x)


def protein_loss(mean, quant, y, bools):
    """sse_quantile.multi_call: mean of bools * [(mean - y)^2 + mean_q pinball]."""
    mse = (mean - y) ** 2
    bias = quant - y[:, :, None]
    over = bias.detach() > 0.0
    q = torch.tensor(QUANTILES)
    weight = over * (1 - q) + torch.logical_not(over) * q
    qloss = (torch.abs(bias) * weight).mean(axis=2)
    return ((mse + qloss) * bools).mean()


def round9(t):
    return torch.tensor([float("%.8g" % v) for v in t.flatten().tolist()]).reshape(t.shape)


UNUSED = [
    "input_TE_1.Linear_in.",
    "FF_TE_2.FF_Em.BN.",
    "FF_TE_3.FF_Em.BN.",
    "mod2_out.MSE_layer.BN2.",
]

model = ScTEL()
with torch.no_grad():
    for name, t in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        if name.endswith("running_var"):
            t.copy_(torch.rand_like(t) * 1.5 + 0.5)
        elif name.endswith("running_mean"):
            t.copy_(torch.randn_like(t) * 0.3)
        elif ".act." in name or name.endswith("act.weight"):
            t.copy_(torch.rand_like(t) * 0.5)  # PReLU slopes in [0, 0.5)
        elif "norm" in name or "BN" in name:
            # LayerNorm / BatchNorm affine parameters
            if name.endswith("weight"):
                t.copy_(1.0 + 0.2 * torch.randn_like(t))
            else:
                t.copy_(0.1 * torch.randn_like(t))
        elif name.endswith("bias") or name.endswith("in_proj_bias"):
            t.copy_(0.1 * torch.randn_like(t))
        t.copy_(round9(t))

x = round9(torch.randn(N, G))
y = round9(torch.randn(N, P))
bools = torch.ones(N, P)


def tolist(t):
    return t.detach().tolist()


state = {
    name: tolist(t)
    for name, t in model.state_dict().items()
    if not name.endswith("num_batches_tracked") and not any(name.startswith(u) for u in UNUSED)
}

model.eval()
with torch.no_grad():
    h3, (mean, quant) = model(x)
    loss = protein_loss(mean, quant, y, bools)
eval_out = {
    "h3": tolist(h3),
    "protein": tolist(mean),
    "quantiles": tolist(quant),
    "loss": loss.item(),
}

# train mode, every dropout off: BatchNorm batch statistics (and running-statistic updates)
for m in model.modules():
    if isinstance(m, nn.Dropout):
        m.p = 0.0
    if isinstance(m, nn.MultiheadAttention):
        m.dropout = 0.0
model.train()
h3, (mean, quant) = model(x)
loss = protein_loss(mean, quant, y, bools)
train_out = {
    "h3": tolist(h3),
    "protein": tolist(mean),
    "quantiles": tolist(quant),
    "loss": loss.item(),
    "running": {
        name: tolist(t)
        for name, t in model.state_dict().items()
        if name
        in (
            "input_TE_1.embedding.bnorm_out.running_mean",
            "input_TE_1.embedding.bnorm_out.running_var",
            "FF_TE_3.BN.running_var",
            "mod2_out.MSE_layer.BN1.running_mean",
        )
    },
}

out = {
    "sizes": {"genes": G, "proteins": P, "d": D, "heads": H, "cells": N},
    "quantiles": QUANTILES,
    "torch_version": torch.__version__,
    "unused": UNUSED,
    "state_dict": state,
    "x": tolist(x),
    "y": tolist(y),
    "eval": eval_out,
    "train": train_out,
}
path = pathlib.Path(__file__).parent / "fixtures" / "models" / "sctel.json"
path.write_text(json.dumps(out))
print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB); eval loss {eval_out['loss']:.6f}, "
      f"train loss {train_out['loss']:.6f}")

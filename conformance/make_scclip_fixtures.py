"""Golden values for scssl's scCLIP (methods.md §5.4), from a PyTorch build of the fork's network.

    python conformance/make_scclip_fixtures.py   # writes conformance/fixtures/models/scclip.json

The fork (`OlgaOvcharenko/scCLIP`, `scclip/vit.py` + `scclip/clip.py`) builds its ViT from
HuggingFace `ViTEncoder`/`ViTPooler`; transformers is not in this venv, so the same modules are
written out here with HF's parameter names and order of operations:

* patch embedding: `F.pad(x, (0, pad)).view(b, T, ceil(G/T))` → Linear(patch, hidden);
* CLS prepended, position embeddings added (the fork zero-initialises both; here they are
  random so that the test sees them), dropout;
* `ViTLayer` (pre-LN): h = h + Dropout(Linear(Attn(LN_before(h)))), attention with qkv bias,
  scores / sqrt(head_dim), softmax, dropout on the probabilities; h = h +
  Dropout(Linear(GELU(Linear(LN_after(h))))); exact erf GELU; LayerNorm eps 1e-12;
* final LayerNorm; pooler tanh(Linear(hidden, hidden)(CLS));
* head Linear(hidden, projection, bias=False) → x / ||x||;
* CLIP loss: logits = exp(logit_scale) · protein · rnaᵀ, ½[CE(logits) + CE(logitsᵀ)] with
  logit_scale = 1 (`--logit_scale 1`, not trained).

The input goes through the benchmark's preparation first: RNA divided per gene by its max |x|
over the cells (sklearn's `maxabs_scale`, a zero column keeps scale 1), protein binarised
(`X[X > 0] = 1`, the fork's `_preprocess_atac`).

Tiny sizes (hidden 24, 2 layers, 4 heads, FFN 48, 16 patches, projection 16; 300 genes, 20
proteins, 8 cells). Every parameter is rounded to 4 decimals before use (short JSON), the
forward pass runs in float64 in eval mode (dropout off); the gradients of the loss with respect
to one parameter of each kind are exported too. The Rust test
`scssl-models/tests/scclip_conformance.rs` loads the weights and compares.
"""
import json
import math
import pathlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HIDDEN, LAYERS, HEADS, FFN, PATCHES, PROJ = 24, 2, 4, 48, 16, 16
G, P, N = 300, 20, 8
EPS = 1e-12


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN, bias=True)
        self.key = nn.Linear(HIDDEN, HIDDEN, bias=True)
        self.value = nn.Linear(HIDDEN, HIDDEN, bias=True)
        self.dropout = nn.Dropout(0.1)

    def split(self, x):
        b, t, _ = x.shape
        return x.view(b, t, HEADS, HIDDEN // HEADS).permute(0, 2, 1, 3)

    def forward(self, h):
        q, k, v = self.split(self.query(h)), self.split(self.key(h)), self.split(self.value(h))
        scores = q @ k.transpose(-1, -2) / math.sqrt(HIDDEN // HEADS)
        probs = self.dropout(scores.softmax(dim=-1))
        ctx = (probs @ v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(h.shape)


class SelfOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(HIDDEN, HIDDEN)
        self.dropout = nn.Dropout(0.1)

    def forward(self, h):
        return self.dropout(self.dense(h))


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = SelfAttention()
        self.output = SelfOutput()

    def forward(self, h):
        return self.output(self.attention(h))


class Intermediate(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(HIDDEN, FFN)

    def forward(self, h):
        return F.gelu(self.dense(h))  # exact (erf) GELU, HF's "gelu"


class Output(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(FFN, HIDDEN)
        self.dropout = nn.Dropout(0.1)

    def forward(self, h, residual):
        return self.dropout(self.dense(h)) + residual


class Layer(nn.Module):
    """HF `ViTLayer`."""

    def __init__(self):
        super().__init__()
        self.attention = Attention()
        self.intermediate = Intermediate()
        self.output = Output()
        self.layernorm_before = nn.LayerNorm(HIDDEN, eps=EPS)
        self.layernorm_after = nn.LayerNorm(HIDDEN, eps=EPS)

    def forward(self, h):
        h = self.attention(self.layernorm_before(h)) + h
        return self.output(self.intermediate(self.layernorm_after(h)), h)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.ModuleList([Layer() for _ in range(LAYERS)])

    def forward(self, h):
        for layer in self.layer:
            h = layer(h)
        return h


class PatchEmbeddings(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.patch_size = math.ceil(features / PATCHES)
        self.pad = PATCHES * self.patch_size - features
        self.projection = nn.Linear(self.patch_size, HIDDEN)

    def forward(self, x):
        x = F.pad(x, (0, self.pad)).view(x.shape[0], PATCHES, self.patch_size)
        return self.projection(x)


class Embeddings(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, HIDDEN))
        self.patch_embeddings = PatchEmbeddings(features)
        self.position_embeddings = nn.Parameter(torch.zeros(1, PATCHES + 1, HIDDEN))
        self.dropout = nn.Dropout(0.1)

    def forward(self, x):
        e = self.patch_embeddings(x)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return self.dropout(torch.cat((cls, e), dim=1) + self.position_embeddings)


class Pooler(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, h):
        return torch.tanh(self.dense(h[:, 0]))


class ViTModel(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.embeddings = Embeddings(features)
        self.encoder = Encoder()
        self.layernorm = nn.LayerNorm(HIDDEN, eps=EPS)
        self.pooler = Pooler()

    def forward(self, x):
        return self.pooler(self.layernorm(self.encoder(self.embeddings(x))))


class Clip(nn.Module):
    def __init__(self):
        super().__init__()
        self.rna_model = ViTModel(G)
        self.protein_model = ViTModel(P)
        self.rna_projection = nn.Linear(HIDDEN, PROJ, bias=False)
        self.protein_projection = nn.Linear(HIDDEN, PROJ, bias=False)
        self.logit_scale = nn.Parameter(torch.ones([]) * 1.0, requires_grad=False)

    def forward(self, rna, protein):
        r = self.rna_model(rna)
        p = self.protein_model(protein)
        a = self.rna_projection(r)
        b = self.protein_projection(p)
        a = a / a.norm(dim=-1, keepdim=True)
        b = b / b.norm(dim=-1, keepdim=True)
        logits = (b @ a.t()) * self.logit_scale.exp()
        target = torch.arange(len(logits))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        return r, p, a, b, loss


def main():
    torch.manual_seed(0)
    model = Clip().double()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("cls_token", "position_embeddings")):
                param.normal_(0.0, 0.5)  # the fork starts them at zero; random to test them
            elif "layernorm" in name:
                param.add_(torch.randn_like(param) * 0.1)  # not (1, 0), to test them
            param.copy_(torch.round(param * 1e4) / 1e4)
    model.eval()

    rng = np.random.default_rng(0)
    rna = np.round(np.log1p(rng.poisson(1.5, size=(N, G)) * rng.uniform(0.5, 3, size=(1, G))), 4)
    rna[:, 5] = 0.0  # a gene without expression keeps scale 1
    rna[3, 7] = -0.5  # max |x| takes absolute values
    protein = np.round(rng.poisson(2.0, size=(N, P)) * rng.uniform(0, 1, size=(N, P)), 4)
    protein[:, :3] = 0.0
    scale = np.abs(rna).max(axis=0)
    scale[scale == 0] = 1.0
    rna_in = rna / scale
    protein_in = (protein > 0).astype(np.float64)

    r, p, a, b, loss = model(torch.tensor(rna_in), torch.tensor(protein_in))
    loss.backward()
    # gradients of the loss (eval mode) for a selection of parameters, one of each kind
    grad_names = [
        "rna_model.embeddings.patch_embeddings.projection.weight",
        "rna_model.embeddings.cls_token",
        "rna_model.encoder.layer.0.attention.attention.query.weight",
        "rna_model.encoder.layer.0.attention.attention.key.bias",
        "rna_model.encoder.layer.0.layernorm_before.weight",
        "rna_model.encoder.layer.1.intermediate.dense.weight",
        "rna_model.pooler.dense.bias",
        "protein_model.embeddings.position_embeddings",
        "protein_model.encoder.layer.1.attention.attention.value.weight",
        "protein_model.layernorm.bias",
        "rna_projection.weight",
        "protein_projection.weight",
    ]
    named = dict(model.named_parameters())
    # 7 significant digits (the test compares them to a relative 1e-4)
    grads = {
        n: np.vectorize(lambda v: float(f"{v:.7g}"))(named[n].grad.numpy()).tolist()
        for n in grad_names
    }
    r, p, a, b = (t.detach() for t in (r, p, a, b))
    params = {
        name: t.detach().numpy().tolist()
        for name, t in model.state_dict().items()
        if name != "logit_scale"
    }
    out = {
        "sizes": {
            "hidden": HIDDEN,
            "layers": LAYERS,
            "heads": HEADS,
            "intermediate": FFN,
            "patches": PATCHES,
            "projection": PROJ,
            "genes": G,
            "proteins": P,
            "cells": N,
            "logit_scale": 1.0,
        },
        "params": params,
        "rna": rna.tolist(),
        "protein": protein.tolist(),
        "rna_maxabs": scale.tolist(),
        "rna_pooled": r.numpy().tolist(),
        "protein_pooled": p.numpy().tolist(),
        "rna_embedding": a.numpy().tolist(),
        "protein_embedding": b.numpy().tolist(),
        "loss": loss.item(),
        "grads": grads,
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
    }
    path = pathlib.Path(__file__).parent / "fixtures" / "models" / "scclip.json"
    path.write_text(json.dumps(out, separators=(",", ":")))
    print(f"wrote {path} ({path.stat().st_size} bytes), loss {loss.item():.6f}")


if __name__ == "__main__":
    main()

"""Golden values of the SSL losses, computed with lightly 1.5.10's loss classes (and, for the
CLIP loss, scSSL-Bench's `clip_loss` formula in PyTorch).

    pip install torch lightly==1.5.10
    python conformance/make_loss_fixtures.py   # writes conformance/fixtures/models/losses.json

The Rust test `scssl-models/tests/losses.rs` reads the JSON; Python is not needed by cargo test.
"""
import json
import math
import pathlib

import torch
import torch.nn.functional as F
import lightly
from lightly.loss import BarlowTwinsLoss, NegativeCosineSimilarity, NTXentLoss, VICRegLoss

torch.manual_seed(0)
B, D, K = 6, 5, 7
u = torch.randn(B, D, dtype=torch.float64)
v = u + 0.5 * torch.randn(B, D, dtype=torch.float64)
w = torch.randn(B, D, dtype=torch.float64)
bank = F.normalize(torch.randn(K, D, dtype=torch.float64), dim=1)

out = {
    "lightly_version": lightly.__version__,
    "torch_version": torch.__version__,
    "u": u.tolist(),
    "v": v.tolist(),
    "w": w.tolist(),
    "bank": bank.tolist(),
}

for t in (0.5, 0.1):
    out[f"nt_xent_t{t}"] = NTXentLoss(temperature=t)(u, v).item()

# MoCo: lightly's bank stores (dim, size) and is used before the keys are enqueued.
moco = NTXentLoss(temperature=0.5, memory_bank_size=(K, D))
moco = moco.double()
assert tuple(moco.bank.shape) == (K, D), moco.bank.shape
moco.bank = bank.clone()
moco.bank_ptr = torch.zeros(1, dtype=torch.long)
out["nt_xent_bank_t0.5"] = moco(u, v).item()

negcos = NegativeCosineSimilarity()
out["negative_cosine_uv"] = negcos(u, v).item()
out["symmetric_negative_cosine"] = (0.5 * negcos(u, w.detach()) + 0.5 * negcos(v, u.detach())).item()

out["vicreg_5_5_1"] = VICRegLoss(lambda_param=5.0, mu_param=5.0, nu_param=1.0)(u, v).item()
out["vicreg_25_25_1"] = VICRegLoss(lambda_param=25.0, mu_param=25.0, nu_param=1.0)(u, w).item()
out["barlow_5e-3"] = BarlowTwinsLoss(lambda_param=5e-3, gather_distributed=False)(u, v).item()


def clip_loss(a, b, t):
    # scSSL-Bench models/model_utils.clip_loss: logits = exp(t)·āb̄ᵀ, mean of both CEs.
    a = F.normalize(a, dim=1)
    b = F.normalize(b, dim=1)
    logits = torch.exp(t) * a @ b.T
    labels = torch.arange(a.shape[0])
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


out["clip_log_scale"] = math.log(1 / 0.07)
out["clip"] = clip_loss(u, w, torch.tensor(out["clip_log_scale"], dtype=torch.float64)).item()

path = pathlib.Path(__file__).parent / "fixtures" / "models" / "losses.json"
path.write_text(json.dumps(out, indent=1))
print("wrote", path)

"""Golden values for scssl's CLAIRE, computed with PyTorch and scikit-learn.

    python conformance/make_claire_fixtures.py   # writes conformance/fixtures/models/claire.json

* CLAIRE's MoCo step as CLAIRE-release's `moco/builder.py` (`ClaireNet.forward`,
  `contrastive_loss`, `_momentum_update_key_encoder`, `_dequeue_and_enqueue`) and its encoder
  (`moco/base_encoder.py`, `EncoderL2` with `block_level=1`), written out here without the
  `.cuda()` calls: three steps on fixed views with a queue of 12 keys and batches of 4, so
  that the pointer wraps; the query encoder is held fixed and the key encoder starts from its
  own weights so that the momentum update shows. Encoders in eval mode (no dropout).
* The anchor re-filtering of `moco/dataset.py` (`filter_anchors`, fltr='gmm'):
  `GaussianMixture(n_components=2, random_state=0)` on 1,000 similarities (70 % from a
  "right pair" mode, 30 % from a "wrong pair" mode), the majority component and the kept mask.

The Rust test `scssl-models/tests/claire_conformance.rs` reads the JSON.
"""
import json
import pathlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.mixture import GaussianMixture

torch.manual_seed(0)
G, LAT, K, B, T, M = 32, 6, 12, 4, 0.07, 0.999


def encoder():
    # EncoderL2(block_level=1): Dropout_block, Dropout_block, Naive_block, then F.normalize
    return nn.Sequential(
        nn.Linear(G, G // 4), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(G // 4, G // 8), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(G // 8, LAT), nn.ReLU(),
    )


enc_q, enc_k = encoder().double().eval(), encoder().double().eval()


def state(enc):
    return {f"{i}.{n}": p.detach().tolist() for i, layer in enumerate(enc) if isinstance(layer, nn.Linear)
            for n, p in layer.named_parameters()}


initial = {"query": state(enc_q), "key": state(enc_k)}
queue = torch.zeros(LAT, K, dtype=torch.float64)
queue = F.normalize(queue, dim=0)
ptr = 0


def forward(enc, x):
    return F.normalize(enc(x), dim=1)


def contrastive_loss(im_q, im_k):
    q = F.normalize(forward(enc_q, im_q), dim=1)
    with torch.no_grad():
        k = F.normalize(forward(enc_k, im_k), dim=1)
    l_pos = torch.einsum("nc,nc->n", [q, k]).unsqueeze(-1)
    l_neg = torch.einsum("nc,ck->nk", [q, queue.clone().detach()])
    logits = torch.cat([l_pos, l_neg], dim=1) / T
    labels = torch.zeros(logits.shape[0], dtype=torch.long)
    return nn.CrossEntropyLoss()(logits, labels), q, k


def enqueue(keys):
    global ptr, queue
    n = keys.shape[0]
    assert K % n == 0
    queue[:, ptr:ptr + n] = keys.t()
    ptr = (ptr + n) % K


steps = []
for s in range(3):
    x1 = torch.rand(B, G, dtype=torch.float64) * 3
    x2 = torch.rand(B, G, dtype=torch.float64) * 3
    with torch.no_grad():
        for pq, pk in zip(enc_q.parameters(), enc_k.parameters()):
            pk.data = pk.data * M + pq.data * (1.0 - M)
    loss_12, q1, k2 = contrastive_loss(x1, x2)
    loss_21, q2, k1 = contrastive_loss(x2, x1)
    loss = (loss_12 + loss_21) * 0.5
    enqueue(k1)
    enqueue(k2)
    steps.append({
        "x1": x1.tolist(), "x2": x2.tolist(), "loss": loss.item(),
        "q1": q1.tolist(), "queue_after": queue.t().tolist(), "ptr_after": ptr,
        "key_after": state(enc_k),
    })

rng = np.random.default_rng(0)
right = rng.normal(0.75, 0.08, 700)
wrong = rng.normal(0.25, 0.12, 300)
sims = np.concatenate([right, wrong])
perm = rng.permutation(len(sims))
sims, is_right = sims[perm], (perm < 700)
gm = GaussianMixture(n_components=2, random_state=0).fit(sims.reshape(-1, 1))
gmm_c = gm.predict(sims.reshape(-1, 1))
gmm_p = gm.predict_proba(sims.reshape(-1, 1))
_, num_c = np.unique(gmm_c, return_counts=True)
c = int(np.argmax(num_c))
keep = gmm_p[:, c] >= 0.5

out = {
    "genes": G, "latent": LAT, "queue": K, "batch": B, "temperature": T, "momentum": M,
    "initial": initial, "steps": steps,
    "gmm": {
        "similarities": sims.tolist(), "right": is_right.tolist(), "keep": keep.tolist(),
        "means": gm.means_.ravel().tolist(), "majority": c,
    },
}
path = pathlib.Path(__file__).parent / "fixtures" / "models" / "claire.json"
path.write_text(json.dumps(out))
print(f"wrote {path}: loss {[s['loss'] for s in steps]}, kept {keep.sum()} "
      f"(right kept {keep[is_right].mean():.3f}, wrong removed {1 - keep[~is_right].mean():.3f})")

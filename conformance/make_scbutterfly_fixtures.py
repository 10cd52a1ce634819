"""Golden values for scButterfly-B (methods.md §5.8): the networks built in PyTorch as the spec
describes them (NetBlock = input dropout, then Linear (Xavier-uniform) -> BatchNorm1d ->
activation per layer, dropout between layers; BN and activation on the output layer too; the
translator with per-side mu / logvar heads and shared to_rna / to_adt heads; single translators;
discriminators Linear -> BN(1) -> sigmoid), at tiny sizes, with random BatchNorm statistics.

Writes conformance/fixtures/models/scbutterfly.json: every tensor under scssl's names (linear
weights in PyTorch's [out, in] layout), the inputs (x_rna, x_adt, the noise eps of every
sampled latent, the soft labels), the eval-mode forward outputs, and the losses (eval mode with
the given eps; and train mode, i.e. BatchNorm batch statistics, with every dropout set to 0).

Run: ~/.cache/scssl-venv/bin/python conformance/make_scbutterfly_fixtures.py
"""

import copy
import json
import os

import torch
import torch.nn as nn

torch.manual_seed(7)
torch.set_default_dtype(torch.float64)

G, P = 40, 10
RNA_HIDDEN, ADT_HIDDEN, ENC, EMB = 16, 12, 8, 6
N = 8
DROPOUT, RNA_NOISE, ADT_NOISE = 0.1, 0.5, 0.0


class Layer(nn.Module):
    def __init__(self, d_in, d_out, act):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        nn.init.xavier_uniform_(self.linear.weight)
        self.bn = nn.BatchNorm1d(d_out)
        self.act = act

    def forward(self, x):
        return self.act(self.bn(self.linear(x)))


class Block(nn.Module):
    def __init__(self, dims, acts, p, q):
        super().__init__()
        self.noise = nn.Dropout(q)
        self.layers = nn.ModuleList(Layer(a, b, f) for a, b, f in zip(dims[:-1], dims[1:], acts))
        self.drops = nn.ModuleList(nn.Dropout(p) for _ in range(len(self.layers) - 1))

    def forward(self, x):
        x = self.noise(x)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.drops):
                x = self.drops[i](x)
        return x


def lrelu():
    return nn.LeakyReLU(0.01)


def reparam(mu, logvar, eps):
    return mu if eps is None else mu + eps * torch.exp(logvar / 2)


class Translator(nn.Module):
    def __init__(self):
        super().__init__()
        self.rna_mu = Layer(ENC, EMB, lrelu())
        self.adt_mu = Layer(ENC, EMB, lrelu())
        self.rna_logvar = Layer(ENC, EMB, lrelu())
        self.adt_logvar = Layer(ENC, EMB, lrelu())
        self.to_rna = Layer(EMB, ENC, lrelu())
        self.to_adt = Layer(EMB, ENC, lrelu())

    def forward(self, h, side, eps):
        mu = (self.rna_mu if side == "rna" else self.adt_mu)(h)
        lv = (self.rna_logvar if side == "rna" else self.adt_logvar)(h)
        z = reparam(mu, lv, eps)
        return self.to_rna(z), self.to_adt(z), mu, lv


class Single(nn.Module):
    def __init__(self):
        super().__init__()
        self.mu = Layer(ENC, EMB, lrelu())
        self.logvar = Layer(ENC, EMB, lrelu())
        self.out = Layer(EMB, ENC, lrelu())

    def forward(self, h, eps):
        mu, lv = self.mu(h), self.logvar(h)
        return self.out(reparam(mu, lv, eps)), mu, lv


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rna_encoder = Block([G, RNA_HIDDEN, ENC], [lrelu(), lrelu()], DROPOUT, RNA_NOISE)
        self.adt_encoder = Block([P, ADT_HIDDEN, ENC], [lrelu(), lrelu()], DROPOUT, ADT_NOISE)
        self.rna_decoder = Block([ENC, RNA_HIDDEN, G], [lrelu(), lrelu()], DROPOUT, 0.0)
        self.adt_decoder = Block([ENC, ADT_HIDDEN, P], [lrelu(), nn.Identity()], DROPOUT, 0.0)
        self.rna_translator = Single()
        self.adt_translator = Single()
        self.translator = Translator()
        self.rna_discriminator = Block([ENC, 1], [nn.Sigmoid()], 0.0, 0.0)
        self.adt_discriminator = Block([ENC, 1], [nn.Sigmoid()], 0.0, 0.0)


def mse(a, b):
    return ((a - b) ** 2).mean()


def kl(mu, lv):
    return -0.5 * torch.mean(1 + lv - mu.pow(2) - lv.exp())


def translate(net, xr, xa, eps_r, eps_a):
    hr, ha = net.rna_encoder(xr), net.adt_encoder(xa)
    return hr, ha, net.translator(hr, "rna", eps_r), net.translator(ha, "adt", eps_a)


def disc_loss(net, xr, xa, eps_r, eps_a, labels):
    hr, ha, (_, r2a, _, _), (a2r, _, _, _) = translate(net, xr, xa, eps_r, eps_a)
    real = (labels > 0.5).double().unsqueeze(1)
    in_a = ha * real + r2a * (1 - real)
    in_r = hr * real + a2r * (1 - real)
    bce = nn.BCELoss()
    return bce(net.adt_discriminator(in_a).reshape(-1), labels) + bce(
        net.rna_discriminator(in_r).reshape(-1), labels
    )


def gen_terms(net, xr, xa, eps_r, eps_a, w_rna, w_adt):
    _, _, (r_r, r_a, mu_r, lv_r), (a_r, a_a, mu_a, lv_a) = translate(net, xr, xa, eps_r, eps_a)
    r2r, r2a = net.rna_decoder(r_r), net.adt_decoder(r_a)
    a2r, a2a = net.rna_decoder(a_r), net.adt_decoder(a_a)
    rec = w_rna * (mse(r2r, xr) + mse(a2r, xr)) + w_adt * (mse(r2a, xa) + mse(a2a, xa))
    return rec, kl(mu_r, lv_r) + kl(mu_a, lv_a)


def pretrain(net, side, x, eps):
    enc, tr, dec = (
        (net.rna_encoder, net.rna_translator, net.rna_decoder)
        if side == "rna"
        else (net.adt_encoder, net.adt_translator, net.adt_decoder)
    )
    out, mu, lv = tr(enc(x), eps)
    return mse(dec(out), x), kl(mu, lv)


def losses(net, inp, w):
    xr, xa = inp["x_rna"], inp["x_adt"]
    rec_r, kl_r = pretrain(net, "rna", xr, inp["eps_pretrain_rna"])
    rec_a, kl_a = pretrain(net, "adt", xa, inp["eps_pretrain_adt"])
    ld = disc_loss(net, xr, xa, inp["eps_disc_rna"], inp["eps_disc_adt"], inp["labels"])
    rec, klg = gen_terms(net, xr, xa, inp["eps_gen_rna"], inp["eps_gen_adt"], w["rna"], w["adt"])
    total = w["kl"] * klg + rec
    # the same with the gate opened (gate 2.0 > L_d): L_g - 1 * L_d
    total_open = total - w["discriminator"] * ld
    if ld.item() < w["gate"]:
        total = total - w["discriminator"] * ld
    return {
        "generator_total_gate_2": total_open.item(),
        "pretrain_rna_reconstruction": rec_r.item(),
        "pretrain_rna_kl": kl_r.item(),
        "pretrain_adt_reconstruction": rec_a.item(),
        "pretrain_adt_kl": kl_a.item(),
        "discriminator": ld.item(),
        "generator_reconstruction": rec.item(),
        "generator_kl": klg.item(),
        "generator_total": total.item(),
    }


def state(net):
    out = {}
    for name, t in net.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        name = name.replace(".layers.", ".").replace("bn.weight", "bn.gamma").replace(
            "bn.bias", "bn.beta"
        )
        out[name] = t.tolist()
    return out


def main():
    net = Net()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    xr = torch.log1p(torch.poisson(torch.full((N, G), 2.0)))
    xa = torch.randn(N, P)
    u = torch.tensor([0.95, 0.6, 0.3, 0.1, 0.85, 0.45, 0.7, 0.15])
    labels = torch.where(u > 0.8, u, torch.where(u > 0.5, 0.8, torch.where(u > 0.2, 0.2, u)))
    inp = {"x_rna": xr, "x_adt": xa, "labels": labels}
    for k in ["pretrain_rna", "pretrain_adt", "disc_rna", "disc_adt", "gen_rna", "gen_adt"]:
        inp["eps_" + k] = torch.randn(N, EMB)
    w = {"rna": 1.0, "adt": 2.0, "discriminator": 1.0, "kl": 0.3, "gate": 1.35}

    net.eval()
    with torch.no_grad():
        hr, ha = net.rna_encoder(xr), net.adt_encoder(xa)
        r_r, r_a, mu_r, lv_r = net.translator(hr, "rna", None)
        a_r, a_a, mu_a, lv_a = net.translator(ha, "adt", None)
        p_r, _, _ = net.rna_translator(hr, None)
        p_a, _, _ = net.adt_translator(ha, None)
        forward = {
            "rna_latent": hr,
            "adt_latent": ha,
            "mu_rna": mu_r,
            "logvar_rna": lv_r,
            "mu_adt": mu_a,
            "logvar_adt": lv_a,
            "rna_to_rna": net.rna_decoder(r_r),
            "rna_to_adt": net.adt_decoder(r_a),
            "adt_to_rna": net.rna_decoder(a_r),
            "adt_to_adt": net.adt_decoder(a_a),
            "pretrain_rna_to_rna": net.rna_decoder(p_r),
            "pretrain_adt_to_adt": net.adt_decoder(p_a),
            "discriminator_rna": net.rna_discriminator(hr),
            "discriminator_adt": net.adt_discriminator(ha),
        }
        eval_losses = losses(net, inp, w)

    # train mode (BatchNorm batch statistics) without dropout, on a copy
    train_net = copy.deepcopy(net)
    for m in train_net.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    train_net.train()
    with torch.no_grad():
        train_losses = losses(train_net, inp, w)

    out = {
        "sizes": {
            "genes": G,
            "proteins": P,
            "rna_hidden": RNA_HIDDEN,
            "adt_hidden": ADT_HIDDEN,
            "encoder_dim": ENC,
            "embed_dim": EMB,
            "cells": N,
        },
        "weights": w,
        "tensors": state(net),
        "inputs": {k: v.tolist() for k, v in inp.items()},
        "forward": {k: v.tolist() for k, v in forward.items()},
        "eval_losses": eval_losses,
        "train_losses": train_losses,
        "torch_version": torch.__version__,
    }
    path = os.path.join(os.path.dirname(__file__), "fixtures", "models", "scbutterfly.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print(path, os.path.getsize(path), "bytes")
    print(eval_losses)
    print(train_losses)


if __name__ == "__main__":
    main()

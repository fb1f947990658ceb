"""PyTorch reference for the engine parity tests (test/unit/engine-parity.test.ts).

  engine_ref.py block DIR   -- DIR/spec.json + .npy inputs; writes y.npy and <name>_grad.npy
  engine_ref.py adamw DIR   -- runs torch.optim.AdamW steps; writes <name>.npy, <name>.exp_avg(_sq).npy
Written independently of the TypeScript engine: plain torch modules and torch's own optimizer.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def load(d: str, name: str) -> torch.Tensor:
    return torch.from_numpy(np.load(os.path.join(d, name + ".npy"))).double()


def save(d: str, name: str, t: torch.Tensor) -> None:
    np.save(os.path.join(d, name + ".npy"), t.detach().float().numpy())


def block(d: str) -> None:
    spec = json.load(open(os.path.join(d, "spec.json")))
    names = spec["params"]
    p = {n: load(d, n).requires_grad_(True) for n in names}
    x = load(d, "x").requires_grad_(True)
    r = load(d, "r")
    keep = load(d, "keep") if spec["masked"] else None
    y = F.conv2d(x, p["b.conv_dw.weight"], p["b.conv_dw.bias"], padding=3, groups=x.shape[1])
    if keep is not None:
        y = y * keep
    y = y.permute(0, 2, 3, 1)  # (N, H, W, C)
    y = F.layer_norm(y, (y.shape[-1],), p["b.norm.weight"], p["b.norm.bias"], eps=1e-6)
    y = F.gelu(F.linear(y, p["b.mlp.fc1.weight"], p["b.mlp.fc1.bias"]))
    if spec["v2"]:
        visible = y if keep is None else y * keep.permute(0, 2, 3, 1)
        gx = torch.norm(visible, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        y = p["b.mlp.grn.weight"] * (y * nx) + p["b.mlp.grn.bias"] + y
    y = F.linear(y, p["b.mlp.fc2.weight"], p["b.mlp.fc2.bias"])
    if not spec["v2"]:
        y = p["b.gamma"] * y
    y = x + y.permute(0, 3, 1, 2)
    if keep is not None:
        y = y * keep
    (y * r).sum().backward()
    save(d, "y", y)
    save(d, "x_grad", x.grad)
    for n in names:
        save(d, n + "_grad", p[n].grad)


def adamw(d: str) -> None:
    spec = json.load(open(os.path.join(d, "spec.json")))
    params = {n: load(d, n).float().requires_grad_(True) for n in spec["params"]}
    groups = [{"params": [params[g["name"]]], "weight_decay": g["wd"], "lr_scale": g["lrScale"]} for g in spec["groups"]]
    opt = torch.optim.AdamW(groups, lr=1.0, betas=tuple(spec["betas"]), eps=spec["eps"])
    coef = {n: load(d, "G_" + n).float() for n in spec["params"]}
    for lr in spec["lrs"]:
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_scale"]
        loss = sum((params[n] ** 2 * coef[n]).sum() for n in spec["params"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), spec["clip"])
        opt.step()
        opt.zero_grad()
    for n, t in params.items():
        save(d, n, t)
        save(d, n + ".exp_avg", opt.state[t]["exp_avg"])
        save(d, n + ".exp_avg_sq", opt.state[t]["exp_avg_sq"])


if __name__ == "__main__":
    torch.set_num_threads(1)
    {"block": block, "adamw": adamw}[sys.argv[1]](sys.argv[2])

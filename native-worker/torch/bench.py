#!/usr/bin/env python3
"""Training-step speed of the PyTorch engine against eager PyTorch, measured in the same run on the same device.

  bench.py --arch convnextv2_atto --job finetune|fcmae --batch 256 --size 224 --precision bf16 [--compile]
           [--steps 20] [--warmup 5] [--device cuda] [--reference SCRIPT]
Ours: this engine's model, channels_last, autocast (GRN reductions kept in fp32), fused AdamW where torch has
it, optional torch.compile. Reference: test/python/eager_convnext.py (eager; timm's model when importable) run
as a child process with the same job, batch, size and precision. Last line: JSON with both and the ratio.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnx_torch.fcmae import create_fcmae  # noqa: E402
from cnx_torch.job import autocast, pick_device, to_channels_last, Precision  # noqa: E402
from cnx_torch.models import create_model  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_REFERENCE = os.path.join(HERE, "..", "..", "test", "python", "eager_convnext.py")


def ours(a: argparse.Namespace, device: torch.device) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    model = (create_fcmae(a.arch) if a.job == "fcmae" else create_model(a.arch, num_classes=1000)).to(device)
    to_channels_last(model)
    kwargs = {"lr": 1e-4}
    fused = device.type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
    if fused:
        kwargs["fused"] = True
    opt = torch.optim.AdamW(model.parameters(), **kwargs)
    step_model = torch.compile(model) if a.compile and hasattr(torch, "compile") else model
    precision = Precision("bf16", torch.bfloat16, False) if a.precision == "bf16" else Precision("fp32", None, False)
    x = torch.randn(a.batch, 3, a.size, a.size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (a.batch,), device=device)

    def step() -> None:
        with autocast(device, precision):
            loss = step_model(x).loss if a.job == "fcmae" else F.cross_entropy(step_model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(a.warmup):
        step()
    sync()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    dt = (time.perf_counter() - t) / a.steps
    return {"impl": f"cnx torch engine (fused AdamW: {fused}, compile: {bool(a.compile)})", "img_per_s": round(a.batch / dt, 2),
            "ms_per_step": round(dt * 1000, 2)}


def reference(a: argparse.Namespace, device: torch.device) -> dict:
    if not os.path.isfile(a.reference):
        raise SystemExit(f"{a.reference}: no such reference script (pass --reference)")
    cmd = [sys.executable, a.reference, "--job", a.job, "--arch", a.arch, "--batch", str(a.batch), "--size", str(a.size),
           "--precision", a.precision, "--steps", str(a.steps), "--warmup", str(a.warmup), "--device", device.type]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"the reference failed ({r.returncode}): {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="convnextv2_atto")
    p.add_argument("--job", default="finetune", choices=["finetune", "fcmae"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--reference", default=DEFAULT_REFERENCE)
    a = p.parse_args()
    device = pick_device(a.device)
    mine = ours(a, device)
    ref = reference(a, device)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    print(json.dumps({"job": a.job, "arch": a.arch, "batch": a.batch, "size": a.size, "precision": a.precision, "device": name,
                      "torch": torch.__version__, "ours": mine, "reference": ref, "ours_img_s": mine["img_per_s"],
                      "torch_img_s": ref["img_per_s"], "ratio": round(mine["img_per_s"] / ref["img_per_s"], 3)}))


if __name__ == "__main__":
    main()

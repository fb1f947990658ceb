"""PyTorch side of `npm run bench:engine`: times the same training step on the CPU in eager PyTorch.

  torch_step.py --job finetune|fcmae --arch convnextv2_atto --batch 32 --size 224 --steps 5 --threads 2
Prints one JSON line with img_per_s, ms_per_step and peak RSS. The model is the eager reference of
../shared/device/torch_reference.py (dense-masked FCMAE as in the paper's JAX code), run channels_last.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "..", "shared", "device"))
import torch_reference  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--job", default="finetune", choices=["finetune", "fcmae"])
    p.add_argument("--arch", default="convnextv2_atto")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--layout", default="channels_last", choices=["channels_last", "nchw"])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    v2 = a.arch.startswith("convnextv2_")
    depths, dims = torch_reference.VARIANTS[a.arch.split("_", 1)[1]]
    if a.job == "fcmae":
        model: torch.nn.Module = torch_reference.FCMAE(depths, dims)
    else:
        model = torch_reference.ConvNeXt(depths, dims, v2, num_classes=a.classes)
    fmt = torch.channels_last if a.layout == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(a.batch, 3, a.size, a.size).to(memory_format=fmt)
    y = torch.randint(0, a.classes, (a.batch,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = model(x) if a.job == "fcmae" else F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"impl": "torch " + torch.__version__ + " " + a.layout, "threads": torch.get_num_threads(),
                      "ms_per_step": round(med * 1000, 1), "img_per_s": round(a.batch / med, 2),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()

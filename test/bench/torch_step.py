"""PyTorch side of `npm run bench:engine`: times the same training step on the CPU in eager PyTorch.

  torch_step.py --job finetune|fcmae --arch convnextv2_atto --batch 32 --size 224 --steps 5 --threads 2
Prints one JSON line with img_per_s, ms_per_step and peak RSS. The model is the tests' eager reference
(test/python/eager_convnext.py: plain functions, FCMAE in dense masked form with mask ratio 0.6), channels_last.
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
sys.path.insert(0, os.path.join(here, "..", "python"))
import eager_convnext as ref  # noqa: E402


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
    depths, dims = ref.WIDTHS[a.arch.split("_", 1)[1]]
    fcmae = a.job == "fcmae"
    params = ref.fcmae_params(depths, dims, 512, 0) if fcmae else ref.classifier_params(depths, dims, v2, a.classes, 0)
    fmt = torch.channels_last if a.layout == "channels_last" else torch.contiguous_format
    params = {k: (v.detach().float().contiguous(memory_format=fmt) if v.ndim == 4 else v.detach().float()).requires_grad_(True)
              for k, v in params.items()}
    x = torch.randn(a.batch, 3, a.size, a.size).to(memory_format=fmt)
    y = torch.randint(0, a.classes, (a.batch,))
    grid = a.size // 32
    opt = torch.optim.AdamW(params.values(), lr=1e-4)

    def step() -> None:
        if fcmae:
            loss = ref.fcmae(params, x, (torch.rand(a.batch, grid, grid) < 0.6).float(), depths)[0]
        else:
            loss = F.cross_entropy(ref.classify(params, x, depths), y)
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

"""PyTorch side of `npm run bench:explain`: Grad-CAM of one image in eager PyTorch (test/python/eager_convnext.py
gradcam: forward, autograd.grad of the top-1 logit w.r.t. the last stage, the map), timed, and its map.

  explain_torch.py --weights W.safetensors --arch convnextv2_atto --input x.npy --out cam.npy [--repeats 10] [--threads 2]
Prints one JSON line with ms (median), the target class and the map's max.
"""
import argparse
import json
import os
import sys
import time

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "python"))
sys.path.insert(0, os.path.join(here, "..", "..", "native-worker", "torch"))
import eager_convnext as ref  # noqa: E402
from cnx_torch.checkpoint import load_weights_file  # noqa: E402
from cnx_torch.npy_io import load_npy, save_npy  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--arch", default="convnextv2_atto")
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    depths = ref.WIDTHS[a.arch.split("_")[-1]][0]
    # timm's conv-MLP variants store the pointwise weights as (out, in, 1, 1); the eager functions take (out, in).
    p = {k: (v.flatten(1) if ".mlp.fc" in k and v.dim() == 4 else v).float() for k, v in load_weights_file(a.weights).items()}
    x = load_npy(a.input).float()
    times = []
    for i in range(a.repeats + 2):
        t0 = time.perf_counter()
        cam, peak, logits = ref.gradcam(p, x, depths)
        if i >= 2:
            times.append((time.perf_counter() - t0) * 1000)
    save_npy(a.out, cam)
    times.sort()
    print(json.dumps({"impl": "eager PyTorch %s (test/python/eager_convnext.py gradcam)" % torch.__version__,
                      "ms": round(times[len(times) // 2], 1), "target": int(logits.argmax(1)[0]), "cam_max": float(peak[0])}))


if __name__ == "__main__":
    main()
